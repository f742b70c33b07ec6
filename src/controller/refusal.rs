//! Refusals: an API request the server (or the network) turned down, sorted into the classes the
//! Canary's `Ready` condition names — `AdmissionDenied` (a ValidatingAdmissionPolicy or admission
//! webhook said no), `QuotaExceeded` (ResourceQuota, LimitRange), `Forbidden` (RBAC), `Invalid`
//! (422/400), `Conflict` (409 that persists), `NotFound`, `RoutingFailed` (a router could not do
//! its job), `APIUnavailable` (5xx, 429, timeouts, connections). The message names the verb and the
//! object and quotes the server's own words, so `kubectl describe canary` says what happened
//! without the controller's log. Must not decide anything about the rollout.

use crate::router::RouterError;

/// The class of a refusal (its `Ready` condition reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A ValidatingAdmissionPolicy or an admission webhook denied the request.
    AdmissionDenied,
    /// A ResourceQuota or LimitRange refused it.
    QuotaExceeded,
    /// RBAC: the controller's ServiceAccount may not do this.
    Forbidden,
    /// The server found the object invalid (422, 400).
    Invalid,
    /// Someone else wrote the object first (409).
    Conflict,
    /// The object or its kind does not exist (404).
    NotFound,
    /// A router could not do its job for a reason of its own.
    RoutingFailed,
    /// The API server did not answer usefully (5xx, 429, timeout, connection).
    ApiUnavailable,
}

impl Class {
    /// The condition reason and Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Class::AdmissionDenied => "AdmissionDenied",
            Class::QuotaExceeded => "QuotaExceeded",
            Class::Forbidden => "Forbidden",
            Class::Invalid => "Invalid",
            Class::Conflict => "Conflict",
            Class::NotFound => "NotFound",
            Class::RoutingFailed => "RoutingFailed",
            Class::ApiUnavailable => "APIUnavailable",
        }
    }

    /// Whether a condition reason is one of these classes'.
    pub fn is_reason(reason: &str) -> bool {
        [
            Class::AdmissionDenied,
            Class::QuotaExceeded,
            Class::Forbidden,
            Class::Invalid,
            Class::Conflict,
            Class::NotFound,
            Class::RoutingFailed,
            Class::ApiUnavailable,
        ]
        .iter()
        .any(|c| c.reason() == reason)
    }

    /// How many refusals in a row before the Canary shows it: a 409 or a 5xx that the next try
    /// gets past is ordinary weather, not news; a policy's "no" is news at once.
    pub fn shown_after(self) -> u32 {
        match self {
            Class::Conflict => 5,
            Class::ApiUnavailable => 2,
            _ => 1,
        }
    }

    /// Whether a retry should come soon (transient) rather than after a growing pause.
    pub fn transient(self) -> bool {
        matches!(self, Class::Conflict | Class::ApiUnavailable)
    }
}

/// One refused request, ready for a condition message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its class.
    pub class: Class,
    /// `<verb> <resource>/<name>: <the server's message>`.
    pub message: String,
}

/// Longest message kept (conditions and Events are for people, not for dumps).
const MAX_MESSAGE: usize = 1000;

/// The class of a Kubernetes API error.
pub fn classify(err: &kube::Error) -> Class {
    let kube::Error::Api(status) = err else {
        return Class::ApiUnavailable;
    };
    let m = status.message.as_str();
    if (m.contains("ValidatingAdmissionPolicy") && m.contains("denied request"))
        || (m.contains("admission webhook") && m.contains("denied the request"))
    {
        return Class::AdmissionDenied;
    }
    if m.contains("exceeded quota")
        || m.contains("forbidden: maximum")
        || m.contains("forbidden: minimum")
    {
        return Class::QuotaExceeded;
    }
    match status.code {
        403 => Class::Forbidden,
        400 | 422 => Class::Invalid,
        409 => Class::Conflict,
        404 => Class::NotFound,
        _ => Class::ApiUnavailable,
    }
}

impl Refusal {
    /// A refusal of `verb` on `object` (used when the server's answer does not name the object).
    pub fn of_kube(verb: &str, object: &str, err: &kube::Error) -> Refusal {
        let (named, text) = match err {
            kube::Error::Api(s) => {
                let named = s
                    .details
                    .as_ref()
                    .filter(|d| !d.name.is_empty() && !d.kind.is_empty())
                    .map(|d| format!("{}/{}", plural_of(&d.kind), d.name));
                (named, s.message.clone())
            }
            other => (None, other.to_string()),
        };
        Refusal {
            class: classify(err),
            message: shorten(format!(
                "{verb} {}: {text}",
                named.as_deref().unwrap_or(object)
            )),
        }
    }

    /// A refusal from a router.
    pub fn of_router(verb: &str, object: &str, err: &RouterError) -> Refusal {
        match err {
            RouterError::Kube(e) => Refusal::of_kube(verb, object, e),
            other => Refusal {
                class: Class::RoutingFailed,
                message: shorten(format!("{verb} {object}: {other}")),
            },
        }
    }

    /// A refusal from the controller's own error type.
    pub fn of_error(verb: &str, object: &str, err: &super::Error) -> Refusal {
        match err {
            super::Error::Kube(e) => Refusal::of_kube(verb, object, e),
            super::Error::Router(e) => Refusal::of_router(verb, object, e),
            super::Error::Conflict(what) => Refusal {
                class: Class::Conflict,
                message: shorten(format!("{verb} {object}: conflict while writing {what}")),
            },
            super::Error::Permissions(why) => Refusal {
                class: Class::Forbidden,
                message: shorten(why.clone()),
            },
        }
    }
}

/// 422 answers name the Kind (`Deployment`), others the resource (`deployments`): show the
/// resource either way.
fn plural_of(kind: &str) -> String {
    if kind.chars().next().is_some_and(char::is_uppercase) {
        let lower = kind.to_lowercase();
        if lower.ends_with('s') {
            lower + "es"
        } else {
            lower + "s"
        }
    } else {
        kind.to_string()
    }
}

fn shorten(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str, kind: &str) -> kube::Error {
        let mut s = kube::core::Status::failure(message, "x").with_code(code);
        s.details = serde_json::from_value(
            serde_json::json!({"name": "podinfo", "kind": kind, "group": "apps"}),
        )
        .ok();
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn every_class_of_refusal_is_told_apart() {
        let vap = "deployments.apps \"podinfo\" is forbidden: ValidatingAdmissionPolicy 'min-replicas' with binding 'min-replicas' denied request: failed expression: object.spec.replicas > 0";
        assert_eq!(
            classify(&api(422, vap, "deployments")),
            Class::AdmissionDenied
        );
        assert_eq!(
            classify(&api(403, vap, "deployments")),
            Class::AdmissionDenied
        );
        let hook = "admission webhook \"validate.kyverno.svc\" denied the request: no";
        assert_eq!(
            classify(&api(400, hook, "deployments")),
            Class::AdmissionDenied
        );
        let quota =
            "deployments.apps \"podinfo\" is forbidden: exceeded quota: q, requested: pods=1";
        assert_eq!(
            classify(&api(403, quota, "deployments")),
            Class::QuotaExceeded
        );
        let rbac = "deployments.apps \"podinfo\" is forbidden: User \"system:serviceaccount:serin-system:serin\" cannot patch resource \"deployments\"";
        assert_eq!(classify(&api(403, rbac, "deployments")), Class::Forbidden);
        assert_eq!(classify(&api(422, "invalid", "Deployment")), Class::Invalid);
        assert_eq!(
            classify(&api(409, "conflict", "deployments")),
            Class::Conflict
        );
        assert_eq!(
            classify(&api(503, "unavailable", "")),
            Class::ApiUnavailable
        );
        assert_eq!(classify(&api(429, "slow down", "")), Class::ApiUnavailable);
    }

    #[test]
    fn the_message_names_verb_and_object_and_quotes_the_server() {
        let r = Refusal::of_kube(
            "patch",
            "deployments/x",
            &api(422, "bad replicas", "Deployment"),
        );
        assert_eq!(r.message, "patch deployments/podinfo: bad replicas");
        let r = Refusal::of_kube("patch", "deployments/x", &api(403, "no", "deployments"));
        assert_eq!(r.message, "patch deployments/podinfo: no");
        let long = "y".repeat(5000);
        let r = Refusal::of_kube("patch", "deployments/x", &api(500, &long, ""));
        assert!(r.message.chars().count() <= MAX_MESSAGE + 1);
        assert!(r.message.starts_with("patch deployments/x: yyy"));
    }
}

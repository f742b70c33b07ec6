//! Faults a test can inject into the embedded API server, each answered the way kube-apiserver
//! answers it: error responses for the next requests to a resource, latency on every answer,
//! watch streams cut as by a dead proxy, and a compacted watch history. Reached through
//! `cluster.state().lock()` (`SimState::inject_errors` and friends).
//! Must not import the controller or the decision core.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::state::SimState;
use super::status::{self, Reply};

/// The cause named in injected 500s. The shape is kube-apiserver's; the text says where it came
/// from rather than pretending to be a particular etcd error.
pub const INJECTED_CAUSE: &str = "serin-sim: injected fault";

/// One injected error: the next `left` requests to `resource` answer `code`.
#[derive(Debug, Clone)]
struct Injected {
    resource: String,
    code: u16,
    left: u32,
}

/// The fault settings.
#[derive(Debug)]
pub struct Faults {
    /// In the order they were injected; the first one that applies to a request is used.
    errors: Vec<Injected>,
    latency: Duration,
    watch_latency: Duration,
    /// Bumped by `drop_watches`; every watch stream holds a receiver and ends when it moves.
    drops: tokio::sync::watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            errors: Vec::new(),
            latency: Duration::ZERO,
            watch_latency: Duration::ZERO,
            drops: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Where in kube-apiserver's filter chain an injected error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// API Priority and Fairness, before authorization and routing (429 only).
    Fairness,
    /// Storage, after routing: 5xx for any verb, 409 for writes of a named object.
    Storage {
        /// PUT, PATCH or DELETE of one named object.
        named_write: bool,
    },
}

/// Whether an injected error for `rule` applies to a request to `resource` at `stage`.
pub fn applies(rule_resource: &str, code: u16, resource: &str, stage: Stage) -> bool {
    if rule_resource != "*" && rule_resource != resource {
        return false;
    }
    match stage {
        Stage::Fairness => code == 429,
        Stage::Storage { named_write } => code != 429 && (code != 409 || named_write),
    }
}

impl Faults {
    /// Takes one injected error for a request to `resource` (qualified), if one applies.
    pub fn take(&mut self, resource: &str, stage: Stage) -> Option<u16> {
        let i = self
            .errors
            .iter()
            .position(|e| e.left > 0 && applies(&e.resource, e.code, resource, stage))?;
        let code = self.errors[i].code;
        self.errors[i].left -= 1;
        if self.errors[i].left == 0 {
            self.errors.remove(i);
        }
        Some(code)
    }

    /// A receiver that sees every later `drop_watches`.
    pub fn drops(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drops.subscribe()
    }
}

impl SimState {
    /// Makes the next `n` requests to `resource` (qualified like kube-apiserver's messages:
    /// `deployments.apps`, `canaries.serin.io`, `configmaps`; `"*"` = any resource) answer `code`
    /// with kube-apiserver's answer for it (see [`injected_reply`]). Requests to subresources
    /// (`/status`, `/scale`) count as requests to their resource. 409 applies only to writes of a
    /// named object (PUT, PATCH, DELETE); 500, 503, 504 and 429 to any verb, list, get and the
    /// start of a watch included (429 is answered before authorization, as API Priority and
    /// Fairness does; the others after routing, where storage errors arise). Calling it again for
    /// the same resource and code replaces the count; `n = 0` removes it.
    pub fn inject_errors(&mut self, resource: &str, code: u16, n: u32) {
        let errors = &mut self.faults.errors;
        errors.retain(|e| !(e.resource == resource && e.code == code));
        if n > 0 {
            errors.push(Injected {
                resource: resource.to_string(),
                code,
                left: n,
            });
        }
    }

    /// Makes the next `n` writes (PUT, PATCH, DELETE of a named object) to `resource` (qualified,
    /// e.g. `deployments.apps`, `canaries.serin.io`) answer 409 Conflict exactly as kube-apiserver
    /// does when a concurrent writer got there first. For tests of retry behaviour.
    pub fn inject_conflicts(&mut self, resource: &str, n: u32) {
        self.inject_errors(resource, 409, n);
    }

    /// How many injected `code` answers for `resource` are still to come.
    pub fn injected_left(&self, resource: &str, code: u16) -> u32 {
        self.faults
            .errors
            .iter()
            .filter(|e| e.resource == resource && e.code == code)
            .map(|e| e.left)
            .sum()
    }

    /// Delays every answer but watch streams by `latency` (zero turns it off). The delay is
    /// slept before the request is handled and without the state lock, so other requests and the
    /// simulated controllers go on meanwhile.
    pub fn set_latency(&mut self, latency: Duration) {
        self.faults.latency = latency;
    }

    /// The latency set by [`SimState::set_latency`].
    pub fn latency(&self) -> Duration {
        self.faults.latency
    }

    /// Holds every change event of the watches started from now on for `latency` before it is
    /// sent (zero turns it off): a watch cache that lags the writes, as a busy API server's does.
    /// Events that arrive meanwhile wait their turn, so under a burst the lag grows.
    pub fn set_watch_latency(&mut self, latency: Duration) {
        self.faults.watch_latency = latency;
    }

    /// The latency set by [`SimState::set_watch_latency`].
    pub fn watch_latency(&self) -> Duration {
        self.faults.watch_latency
    }

    /// Ends every open watch stream now, abruptly: the connection closes in the middle of the
    /// chunked response, as when a proxy or load balancer between client and server dies.
    /// Clients see a broken stream (not a clean end) and watch again from their last
    /// resourceVersion, which still works because the history is kept.
    pub fn drop_watches(&mut self) {
        self.faults.drops.send_modify(|n| *n += 1);
    }

    /// Forgets the watch history now: a watch from any resourceVersion older than the current
    /// one gets the in-band `ERROR` event with 410 Expired (k8s-transcripts 12 step 21), and its
    /// client has to list again. What the real server does when its watch cache evicted the
    /// events (or after a restart, whose cache starts at the current resourceVersion).
    pub fn compact(&mut self) {
        self.store.compact();
    }
}

/// kube-apiserver's answer for an injected error `code` on `resource` (qualified):
/// * 500: `errors.NewInternalError` (apimachinery): reason InternalError, message
///   `Internal error occurred: <cause>`, the cause repeated in `details.causes`.
/// * 503: `errors.NewServiceUnavailable`: reason ServiceUnavailable, no details; the message is
///   the one client-go shows for a 503.
/// * 504: what the apiserver's request-timeout filter sends (`WithTimeoutForNonLongRunningRequests`
///   -> `errors.NewTimeoutError(..., 0)`): reason Timeout, message `Timeout: request did not
///   complete within requested timeout - context deadline exceeded`, empty `details`.
/// * 429: API Priority and Fairness rejects with Go's `http.Error`: a plain-text body
///   `Too many requests, please try again later.`, `Retry-After: 1` (its minimum), not a Status.
///   (apiserver/pkg/server/filters/priority-and-fairness.go, maxinflight.go `tooManyRequests`.)
/// * 409: the Conflict of a stale resourceVersion, named after the object.
/// * anything else: a Status with that code and no reason.
pub fn injected_reply(code: u16, resource: &str, group: &str, name: Option<&str>) -> Reply {
    match code {
        500 => status::status(
            500,
            "InternalError",
            format!("Internal error occurred: {INJECTED_CAUSE}"),
            Some(json!({"causes": [{"message": INJECTED_CAUSE}]})),
        ),
        503 => status::status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
            None,
        ),
        504 => status::status(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
                .into(),
            Some(json!({})),
        ),
        429 => {
            let mut r = Reply::text(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests, please try again later.\n",
            );
            r.headers.push(("retry-after", "1".into()));
            r.headers.push(("x-content-type-options", "nosniff".into()));
            r
        }
        409 => {
            let qualified = if group.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}.{group}")
            };
            let name = name.unwrap_or_default();
            let mut details = json!({"name": name});
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            details["kind"] = json!(resource);
            status::status(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
                Some(details),
            )
        }
        other => status::bare(other, format!("injected {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn conflicts_only_hit_named_writes_and_429_only_the_first_stage() {
        let w = Stage::Storage { named_write: true };
        let r = Stage::Storage { named_write: false };
        assert!(applies("configmaps", 409, "configmaps", w));
        assert!(!applies("configmaps", 409, "configmaps", r));
        assert!(!applies("configmaps", 409, "configmaps", Stage::Fairness));
        assert!(applies("*", 503, "deployments.apps", r));
        assert!(!applies("*", 429, "deployments.apps", r));
        assert!(applies("*", 429, "deployments.apps", Stage::Fairness));
        assert!(!applies("deployments", 500, "deployments.apps", r));
    }

    #[test]
    fn counts_run_out_and_replace() {
        let mut st = SimState::new();
        st.inject_errors("configmaps", 500, 2);
        st.inject_errors("configmaps", 500, 3);
        assert_eq!(st.injected_left("configmaps", 500), 3);
        let r = Stage::Storage { named_write: false };
        for _ in 0..3 {
            assert_eq!(st.faults.take("configmaps", r), Some(500));
        }
        assert_eq!(st.faults.take("configmaps", r), None);
        st.inject_conflicts("configmaps", 1);
        assert_eq!(st.faults.take("configmaps", r), None, "a list is no write");
        assert_eq!(st.injected_left("configmaps", 409), 1);
    }

    proptest! {
        /// The matcher: a rule fires only for its resource (or `*`) and its stage, and taking
        /// never hands out more errors than were injected.
        #[test]
        fn injected_errors_match_and_count(
            rules in prop::collection::vec((
                prop::sample::select(vec!["*", "configmaps", "deployments.apps", "canaries.serin.io"]),
                prop::sample::select(vec![409u16, 429, 500, 503, 504]),
                0u32..4,
            ), 0..6),
            requests in prop::collection::vec((
                prop::sample::select(vec!["configmaps", "deployments.apps", "canaries.serin.io", "pods"]),
                0u8..3,
            ), 0..20),
        ) {
            let mut st = SimState::new();
            for (res, code, n) in &rules {
                st.inject_errors(res, *code, *n);
            }
            let before: u32 = st.faults.errors.iter().map(|e| e.left).sum();
            let mut taken = 0;
            for (res, kind) in requests {
                let stage = match kind {
                    0 => Stage::Fairness,
                    1 => Stage::Storage { named_write: false },
                    _ => Stage::Storage { named_write: true },
                };
                if let Some(code) = st.faults.take(res, stage) {
                    taken += 1;
                    prop_assert!(rules.iter().any(|(r, c, n)| *c == code && *n > 0 && applies(r, code, res, stage)));
                }
            }
            let after: u32 = st.faults.errors.iter().map(|e| e.left).sum();
            prop_assert_eq!(before, after + taken);
        }
    }
}

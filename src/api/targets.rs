//! What the objects Serin derives from a Canary must be: routable by the provider in effect
//! (weights, request matches and mirroring only where the router can express them), validly
//! named (`<apex>-primary` and `<apex>-canary` Services, the `<target>-primary` copy, route host
//! names), and nobody else's (a target another Canary has, or a copy Serin generated). Pure.

use super::Canary;
use super::validate::{Errors, FieldError};

/// Longest Service name (an RFC 1035 label).
const MAX_SERVICE_NAME: usize = 63;
/// Longest object name (an RFC 1123 subdomain).
const MAX_OBJECT_NAME: usize = 253;
/// Most host names an HTTPRoute takes (Gateway API's `hostnames` maxItems).
const MAX_ROUTE_HOSTNAMES: usize = 16;

/// What only some routers can do: split by weight, match requests, mirror; and what an adopted
/// route (spec.routeRef, whose weights alone Serin changes) cannot carry.
pub(super) fn check_routing(errs: &mut Errors, provider: &str, canary: &Canary) {
    let a = &canary.spec.analysis;
    let has_match = a.r#match.as_ref().is_some_and(|m| !m.is_empty());
    let mirror = a.mirror == Some(true);
    if provider == "kubernetes" {
        if has_match {
            errs.add("spec.analysis.match", "the kubernetes provider switches Service selectors and cannot route requests by header or cookie; A/B testing needs a mesh or gateway provider");
        }
        if mirror {
            errs.add(
                "spec.analysis.mirror",
                "the kubernetes provider cannot mirror traffic; use a mesh or gateway provider",
            );
        }
    }
    // APISIX's routeRef is the route Serin copies, not one it adopts: its copy carries all.
    if canary.spec.route_ref.is_some() && provider != "apisix" {
        if has_match {
            errs.add("spec.analysis.match", "an adopted route (spec.routeRef) only has its weights changed; A/B matches need Serin's own route (remove spec.routeRef)");
        }
        if mirror {
            errs.add("spec.analysis.mirror", "an adopted route (spec.routeRef) only has its weights changed; mirroring needs Serin's own route (remove spec.routeRef)");
        }
    }
    super::router_limits::check(errs, provider, canary);
    let hosts = canary.spec.service.hosts.iter().flatten();
    for (i, host) in hosts.enumerate() {
        if !valid_host(host) {
            errs.add(
                format!("spec.service.hosts[{i}]"),
                format!("'{host}' is not a host name (lowercase DNS name, optionally starting with '*.')"),
            );
        }
    }
    let count = canary.spec.service.hosts.as_ref().map_or(0, Vec::len);
    if provider.starts_with("gatewayapi") && count > MAX_ROUTE_HOSTNAMES {
        errs.add(
            "spec.service.hosts",
            format!("{count} host names; an HTTPRoute takes at most {MAX_ROUTE_HOSTNAMES}"),
        );
    }
}

/// What a core Service target (`targetRef: {apiVersion: v1, kind: Service}`) needs: Serin copies
/// the target into `-primary` and `-canary` and routes between the copies through a mesh or
/// gateway, with the target itself as the apex.
pub(super) fn check_service_target(errs: &mut Errors, provider: &str, canary: &Canary) {
    let spec = &canary.spec;
    let target = &spec.target_ref;
    if target.api_version != "v1" {
        errs.add(
            "spec.targetRef.apiVersion",
            format!("must be v1 for a core Service (serving.knative.dev/v1 for a Knative Service), not '{}'", target.api_version),
        );
    }
    if provider == "kubernetes" {
        let path = if spec.provider.is_some() {
            "spec.provider"
        } else {
            "spec.targetRef.kind"
        };
        errs.add(path, "the kubernetes provider switches Service selectors between Serin's own primary and canary pods, and a Service target has none; route with a mesh or gateway provider (e.g. gatewayapi, istio, linkerd)");
    }
    if spec.autoscaler_ref.is_some() {
        errs.add(
            "spec.autoscalerRef",
            "a Service target has no replicas to autoscale; remove autoscalerRef",
        );
    }
    if let Some(name) = &spec.service.name
        && *name != target.name
    {
        errs.add(
            "spec.service.name",
            format!("for a Service target the apex is the target Service '{}' itself (its copies are '{0}-primary' and '{0}-canary'); omit spec.service.name or set it to '{0}'", target.name),
        );
    }
    let generated = [
        ("spec.service.apex", spec.service.apex.is_some()),
        ("spec.service.primary", spec.service.primary.is_some()),
        ("spec.service.canary", spec.service.canary.is_some()),
    ];
    for (path, set) in generated {
        if set {
            errs.add(path, "the Services of a Service target are the target and copies of it; set labels and annotations on the target Service instead");
        }
    }
}

/// A DNS name (RFC 1123 subdomain), optionally a wildcard `*.example.com`, as routes accept them.
fn valid_host(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= MAX_OBJECT_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Names Serin derives from the Canary's must be valid objects names: `<apex>-primary` and
/// `<apex>-canary` Services, the `<target>-primary` copy.
pub(super) fn check_names(errs: &mut Errors, canary: &Canary) {
    let apex = canary.apex_name();
    let path = if canary.spec.service.name.is_some() {
        "spec.service.name"
    } else {
        "spec.targetRef.name"
    };
    let longest = format!("{apex}-primary");
    if longest.len() > MAX_SERVICE_NAME {
        errs.add(
            path,
            format!(
                "the Service '{longest}' would have {} characters; Service names have at most {MAX_SERVICE_NAME}, so this name can have at most {}",
                longest.len(),
                MAX_SERVICE_NAME - "-primary".len()
            ),
        );
    }
    let target = &canary.spec.target_ref.name;
    if target.len() + "-primary".len() > MAX_OBJECT_NAME {
        errs.add(
            "spec.targetRef.name",
            format!("'{target}-primary' would be longer than {MAX_OBJECT_NAME} characters"),
        );
    }
}

/// Serin's generated copies of a target, by suffix; a Canary must not target one of them.
const GENERATED_SUFFIXES: [&str; 3] = ["-primary", "-canary", "-baseline"];

/// Who was there first: a Canary that has already acted (it has a status) before one that has
/// not, then the older, then (creation times have a one-second grain) the name.
fn seniority(c: &Canary) -> (bool, Option<jiff::Timestamp>, &str) {
    let acted = c
        .status
        .as_ref()
        .is_some_and(|s| s.last_applied_spec.is_some() || s.phase != super::CanaryPhase::Unknown);
    (
        !acted,
        c.metadata.creation_timestamp.as_ref().map(|t| t.0),
        c.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Which objects of a target's world already belong to a Canary (the controller reads them from
/// its caches).
#[derive(Debug, Clone, Copy, Default)]
pub struct Owners<'a> {
    /// The Canary that owns the target object itself (Serin generated it).
    pub target: Option<&'a str>,
    /// The Canary that owns the target's `-primary` copy.
    pub primary: Option<&'a str>,
}

/// Refuses a target that another Canary already has (the one there first keeps it: see
/// `seniority`; or the one that owns the `-primary` copy), or that Serin generated for one (the
/// target is owned by a Canary, or is a `-primary`, `-canary` or `-baseline` copy of another
/// Canary's target). Acting on such a target would scale another app's primary to zero.
pub fn target_conflicts<'a>(
    canary: &Canary,
    others: impl Iterator<Item = &'a Canary>,
    owners: Owners<'_>,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    let me = &canary.spec.target_ref;
    let kind = format!("{:?}", me.kind);
    let my_name = canary.metadata.name.as_deref().unwrap_or_default();
    if let Some(owner) = owners.target.filter(|o| *o != my_name) {
        out.push(FieldError {
            path: "spec.targetRef.name".into(),
            message: format!("{kind} {} was generated by Serin for Canary {owner}; target the app's own {kind} instead", me.name),
        });
    }
    if let Some(owner) = owners.primary.filter(|o| *o != my_name) {
        out.push(FieldError {
            path: "spec.targetRef.name".into(),
            message: format!("{kind} {} is already the target of Canary {owner} (it owns {}-primary); a target can have one Canary", me.name, me.name),
        });
        return out;
    }
    let my_age = seniority(canary);
    for other in others {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        if other.metadata.namespace != canary.metadata.namespace || other_name == my_name {
            continue;
        }
        let theirs = &other.spec.target_ref;
        if theirs.kind != me.kind {
            continue;
        }
        let older = seniority(other) < my_age;
        if theirs.name == me.name && older {
            out.push(FieldError {
                path: "spec.targetRef.name".into(),
                message: format!("{kind} {} is already the target of Canary {other_name}; a target can have one Canary", me.name),
            });
        }
        if let Some(suffix) = GENERATED_SUFFIXES
            .iter()
            .find(|s| me.name == format!("{}{s}", theirs.name))
        {
            out.push(FieldError {
                path: "spec.targetRef.name".into(),
                message: format!("{kind} {} is the {suffix} copy Serin makes for Canary {other_name}; target the app's own {kind} ({}) instead", me.name, theirs.name),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::{validate, validate_for};

    fn canary(name: &str, target: &str, created: &str, extra: serde_json::Value) -> Canary {
        let mut c = serde_json::json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "test", "creationTimestamp": created},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 2, "iterations": 3}}});
        json_patch::merge(&mut c["spec"], &extra);
        serde_json::from_value(c).unwrap()
    }

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_second_canary_on_a_target_is_refused_and_the_first_keeps_it() {
        let first = canary("a", "web", "2026-01-01T00:00:00Z", serde_json::json!({}));
        let second = canary("b", "web", "2026-01-02T00:00:00Z", serde_json::json!({}));
        let all = [first.clone(), second.clone()];
        assert!(target_conflicts(&first, all.iter(), Owners::default()).is_empty());
        assert_eq!(
            messages(target_conflicts(&second, all.iter(), Owners::default())),
            [
                "spec.targetRef.name: Deployment web is already the target of Canary a; a target can have one Canary"
            ]
        );
    }

    #[test]
    fn the_canary_that_already_acted_keeps_its_target_whatever_the_names_and_times() {
        // Created in the same second (the grain of creationTimestamp), "a" sorts first by name,
        // but "web" has already initialised: "web" keeps the target.
        let mut web = canary("web", "web", "2026-01-01T00:00:00Z", serde_json::json!({}));
        web.status = Some(crate::api::CanaryStatus {
            phase: crate::api::CanaryPhase::Initialized,
            ..Default::default()
        });
        let a = canary("a", "web", "2026-01-01T00:00:00Z", serde_json::json!({}));
        let all = [web.clone(), a.clone()];
        assert!(target_conflicts(&web, all.iter(), Owners::default()).is_empty());
        assert_eq!(target_conflicts(&a, all.iter(), Owners::default()).len(), 1);
        // The owner of the -primary copy says it all, even before the cache shows the other.
        let owners = Owners {
            target: None,
            primary: Some("web"),
        };
        let got = messages(target_conflicts(&a, std::iter::empty(), owners));
        assert!(
            got[0].contains("already the target of Canary web (it owns web-primary)"),
            "{got:?}"
        );
        assert!(target_conflicts(&web, std::iter::empty(), owners).is_empty());
    }

    #[test]
    fn a_copy_serin_generated_is_never_a_target() {
        let app = canary("web", "web", "2026-01-01T00:00:00Z", serde_json::json!({}));
        let thief = canary(
            "x",
            "web-primary",
            "2026-01-02T00:00:00Z",
            serde_json::json!({}),
        );
        let all = [app.clone(), thief.clone()];
        let got = messages(target_conflicts(&thief, all.iter(), Owners::default()));
        assert_eq!(got.len(), 1);
        assert!(
            got[0].contains("the -primary copy Serin makes for Canary web"),
            "{got:?}"
        );
        assert!(target_conflicts(&app, all.iter(), Owners::default()).is_empty());
        let owners = Owners {
            target: Some("web"),
            primary: None,
        };
        let owned = messages(target_conflicts(&thief, std::iter::empty(), owners));
        assert!(
            owned[0].contains("was generated by Serin for Canary web"),
            "{owned:?}"
        );
    }

    #[test]
    fn a_weight_plan_on_the_kubernetes_provider_is_refused_whoever_chose_the_provider() {
        let weighted = serde_json::json!({"analysis": {"iterations": null, "stepWeight": 20, "maxWeight": 80}});
        let c = canary("web", "web", "2026-01-01T00:00:00Z", weighted);
        let errs = messages(validate(&c).unwrap_err());
        assert!(
            errs[0].starts_with(
                "spec.analysis.iterations: the kubernetes provider cannot split traffic"
            ),
            "{errs:?}"
        );
        assert!(validate_for(&c, "istio").is_ok());
        assert!(validate_for(&c, "kubernetes").is_err());
    }

    #[test]
    fn what_a_router_cannot_express_is_refused_naming_the_field() {
        let ab = serde_json::json!({"analysis": {"match": [{"headers": {"x-canary": {"exact": "1"}}}], "mirror": true}});
        let c = canary("web", "web", "2026-01-01T00:00:00Z", ab.clone());
        let errs = messages(validate_for(&c, "kubernetes").unwrap_err());
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.analysis.match: the kubernetes provider")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.analysis.mirror: the kubernetes provider")),
            "{errs:?}"
        );
        let mut adopted = ab;
        adopted["routeRef"] = serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": "r"});
        let c = canary("web", "web", "2026-01-01T00:00:00Z", adopted);
        let errs = messages(validate_for(&c, "gatewayapi").unwrap_err());
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.analysis.match: an adopted route")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.analysis.mirror: an adopted route")),
            "{errs:?}"
        );
    }

    #[test]
    fn host_names_and_derived_names_must_be_valid() {
        let hosts: Vec<String> = (0..17).map(|i| format!("h{i}.example.com")).collect();
        let c = canary(
            "web",
            "web",
            "2026-01-01T00:00:00Z",
            serde_json::json!({"service": {"hosts": hosts}}),
        );
        let errs = messages(validate_for(&c, "gatewayapi").unwrap_err());
        assert_eq!(
            errs,
            ["spec.service.hosts: 17 host names; an HTTPRoute takes at most 16"]
        );
        assert!(validate_for(&c, "istio").is_ok());
        let c = canary(
            "web",
            "web",
            "2026-01-01T00:00:00Z",
            serde_json::json!({"service": {"hosts": ["", "*.ok.example", "Bad_Host"]}}),
        );
        let errs = messages(validate_for(&c, "istio").unwrap_err());
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("spec.service.hosts[0]: '' is not a host name"));
        assert!(errs[1].starts_with("spec.service.hosts[2]: 'Bad_Host' is not a host name"));
        let long = "a".repeat(56);
        let c = canary("web", &long, "2026-01-01T00:00:00Z", serde_json::json!({}));
        let errs = messages(validate(&c).unwrap_err());
        assert!(
            errs[0].starts_with(&format!(
                "spec.targetRef.name: the Service '{long}-primary' would have 64 characters"
            )),
            "{errs:?}"
        );
    }

    #[test]
    fn a_service_target_needs_v1_a_mesh_or_gateway_and_its_own_name_as_apex() {
        let svc = |extra: serde_json::Value| {
            let mut c = canary("web", "web", "2026-01-01T00:00:00Z", extra);
            c.spec.target_ref = serde_json::from_value(
                serde_json::json!({"apiVersion": "v1", "kind": "Service", "name": "web"}),
            )
            .unwrap();
            c
        };
        let ok = svc(serde_json::json!({"provider": "gatewayapi"}));
        assert_eq!(validate_for(&ok, "gatewayapi"), Ok(()));
        assert_eq!(validate_for(&ok, "istio"), Ok(()));
        let named = svc(
            serde_json::json!({"provider": "gatewayapi", "service": {"port": 80, "name": "web"}}),
        );
        assert_eq!(
            validate_for(&named, "gatewayapi"),
            Ok(()),
            "the target's own name is fine"
        );
        let got = |c: &Canary, provider: &str| messages(validate_for(c, provider).unwrap_err());
        let kube = got(
            &svc(serde_json::json!({"provider": "kubernetes"})),
            "kubernetes",
        );
        assert_eq!(kube.len(), 1, "{kube:?}");
        assert!(
            kube[0].starts_with("spec.provider: the kubernetes provider"),
            "{kube:?}"
        );
        let default = got(&svc(serde_json::json!({})), "kubernetes");
        assert!(
            default[0].starts_with("spec.targetRef.kind: the kubernetes provider"),
            "{default:?}"
        );
        let mut wrong = svc(serde_json::json!({"provider": "gatewayapi"}));
        wrong.spec.target_ref.api_version = "apps/v1".into();
        assert_eq!(
            got(&wrong, "gatewayapi"),
            [
                "spec.targetRef.apiVersion: must be v1 for a core Service (serving.knative.dev/v1 for a Knative Service), not 'apps/v1'"
            ]
        );
        let scaled = svc(serde_json::json!({"provider": "gatewayapi",
            "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "web"}}));
        assert!(
            got(&scaled, "gatewayapi")[0]
                .starts_with("spec.autoscalerRef: a Service target has no replicas")
        );
        let other = svc(
            serde_json::json!({"provider": "gatewayapi", "service": {"port": 80, "name": "shop"}}),
        );
        assert_eq!(
            got(&other, "gatewayapi"),
            [
                "spec.service.name: for a Service target the apex is the target Service 'web' itself (its copies are 'web-primary' and 'web-canary'); omit spec.service.name or set it to 'web'"
            ]
        );
        let meta = svc(
            serde_json::json!({"provider": "gatewayapi", "service": {"port": 80, "canary": {"labels": {"a": "b"}}}}),
        );
        assert!(
            got(&meta, "gatewayapi")[0]
                .starts_with("spec.service.canary: the Services of a Service target")
        );
        let deploy = canary(
            "d",
            "d",
            "2026-01-01T00:00:00Z",
            serde_json::json!({"provider": "gatewayapi", "service": {"port": 80, "name": "shop"}}),
        );
        assert_eq!(
            validate_for(&deploy, "gatewayapi"),
            Ok(()),
            "a Deployment target names its apex freely"
        );
    }
}

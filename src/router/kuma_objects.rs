//! The objects Serin generates for `provider: kuma` (pure), one per Kuma generation:
//! - Kuma up to 2.14 (it serves TrafficRoute): Flagger's TrafficRoute `<apex>` (kuma.io/v1alpha1,
//!   cluster-scoped, `mesh` from the Canary's `kuma.io/mesh` annotation, else `default`) splitting
//!   the apex's `kuma.io/service` (`<apex>_<ns>_svc_<port>`) between the primary's and the
//!   canary's, weights only.
//! - Newer Kuma (no TrafficRoute): a MeshHTTPRoute `<apex>` in the Canary's namespace from the whole
//!   mesh to the apex MeshService, selected by the labels Kuma gives the MeshServices it makes of
//!   Kubernetes Services (`kuma.io/display-name`, `k8s.kuma.io/namespace`; Kuma's newest schema
//!   has no name/namespace refs), with weighted primary/canary backendRefs, a RequestMirror filter
//!   while mirroring and one rule per `analysis.match` entry for A/B testing.
//!
//! Also reads the routes back. Imports only `api` and the analysis' `Routes`.

use serde_json::{Value, json};

use crate::analysis::Routes;
use crate::api::{AnalysisMatch, Canary};

/// API version of both kinds.
pub const API_VERSION: &str = "kuma.io/v1alpha1";
/// Annotation of the Canary naming its Kuma mesh (Flagger's).
pub const MESH_ANNOTATION: &str = "kuma.io/mesh";
/// Annotation on a TrafficRoute naming the Canary (`<namespace>/<name>`) that wrote it: a
/// cluster-scoped object has no owner reference to tell.
pub const CANARY_ANNOTATION: &str = "serin.io/canary";

/// The Kuma mesh of the Canary's workloads.
pub fn mesh(canary: &Canary) -> String {
    canary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MESH_ANNOTATION))
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".into())
}

/// `<namespace>/<name>` of the Canary, as the TrafficRoute's annotation holds it.
pub fn canary_key(canary: &Canary) -> String {
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    format!("{}/{name}", canary.namespace_or_default())
}

/// The `kuma.io/service` tag Kuma gives a Kubernetes Service's port.
fn service_tag(canary: &Canary, service: &str) -> String {
    let (ns, port) = (canary.namespace_or_default(), canary.spec.service.port);
    format!("{service}_{ns}_svc_{port}")
}

fn names(canary: &Canary) -> (String, String) {
    let apex = canary.apex_name();
    (format!("{apex}-primary"), format!("{apex}-canary"))
}

/// Name and labels only: `service.apex`'s metadata is for the Service (Kuma's own per-port
/// protocol annotations, in Flagger's tutorial), not for the route.
fn metadata(canary: &Canary, labels: Value) -> Value {
    json!({"name": canary.apex_name(), "labels": labels, "annotations": {}})
}

/// The TrafficRoute for these weights (Kuma ≤ 2.14), shaped as Flagger's.
pub fn traffic_route(canary: &Canary, routes: Routes) -> Value {
    let (primary, canary_svc) = names(canary);
    let mut metadata = metadata(canary, json!({}));
    metadata["annotations"][CANARY_ANNOTATION] = json!(canary_key(canary));
    let split = |name: &str, weight: i32| json!({"weight": weight.max(0), "destination": {"kuma.io/service": service_tag(canary, name)}});
    json!({"apiVersion": API_VERSION, "kind": "TrafficRoute", "mesh": mesh(canary),
    "metadata": metadata,
    "spec": {
        "sources": [{"match": {"kuma.io/service": "*"}}],
        "destinations": [{"match": {"kuma.io/service": service_tag(canary, &canary.apex_name())}}],
        "conf": {"split": [split(&primary, routes.primary), split(&canary_svc, routes.canary)]}
    }})
}

/// The routes a TrafficRoute carries (its split's weights; it cannot mirror or match).
pub fn traffic_route_routes(canary: &Canary, route: &Value) -> Routes {
    let (primary, canary_svc) = names(canary);
    let weight = |name: &str| {
        let tag = service_tag(canary, name);
        route["spec"]["conf"]["split"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["destination"]["kuma.io/service"] == tag.as_str())
            .map_or(0, |s| {
                s["weight"].as_i64().unwrap_or(0).clamp(0, 100) as i32
            })
    };
    Routes {
        primary: weight(&primary),
        canary: weight(&canary_svc),
        ..Routes::PRIMARY
    }
}

/// A MeshService of a Kubernetes Service in the Canary's namespace, by Kuma's labels.
fn mesh_service(canary: &Canary, service: &str) -> Value {
    json!({"kind": "MeshService", "labels": {
        "kuma.io/display-name": service, "k8s.kuma.io/namespace": canary.namespace_or_default()}})
}

fn backend(canary: &Canary, service: &str, weight: i32) -> Value {
    let mut b = mesh_service(canary, service);
    b["port"] = json!(canary.spec.service.port);
    b["weight"] = json!(weight.max(0));
    b
}

/// Header names are matched lower case by Kuma (its schema refuses upper case).
fn header_matches(m: &AnalysisMatch) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, h) in m.headers.iter().flatten() {
        let (kind, value) = match (&h.exact, &h.prefix, &h.suffix, &h.regex) {
            (Some(v), ..) => ("Exact", v.clone()),
            (_, Some(p), ..) => ("Prefix", p.clone()),
            // Envoy matches a regular expression against the whole value.
            (_, _, Some(s), _) => ("RegularExpression", format!(".*{}", regex::escape(s))),
            (.., Some(r)) => ("RegularExpression", r.clone()),
            _ => {
                out.push(json!({"type": "Present", "name": name.to_lowercase()}));
                continue;
            }
        };
        out.push(json!({"type": kind, "name": name.to_lowercase(), "value": value}));
    }
    out
}

fn query_matches(m: &AnalysisMatch) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, q) in m.query_params.iter().flatten() {
        let (kind, value) = match (&q.exact, &q.prefix, &q.regex) {
            (Some(v), ..) => ("Exact", v.clone()),
            (_, Some(p), _) => ("RegularExpression", format!("{}.*", regex::escape(p))),
            (.., Some(r)) => ("RegularExpression", r.clone()),
            _ => ("RegularExpression", ".*".to_string()),
        };
        out.push(json!({"type": kind, "name": name, "value": value}));
    }
    out
}

/// The MeshHTTPRoute for these routes (Kuma without TrafficRoute); `owner` is the Canary's owner
/// reference.
pub fn mesh_http_route(canary: &Canary, routes: Routes, owner: Option<Value>) -> Value {
    let (primary, canary_svc) = names(canary);
    let mut rules = Vec::new();
    if routes.ab_match {
        for m in canary.spec.analysis.r#match.iter().flatten() {
            let mut matched = json!({"path": {"type": "PathPrefix", "value": "/"}});
            let (headers, query) = (header_matches(m), query_matches(m));
            if !headers.is_empty() {
                matched["headers"] = json!(headers);
            }
            if !query.is_empty() {
                matched["queryParams"] = json!(query);
            }
            rules.push(json!({"matches": [matched],
                "default": {"backendRefs": [backend(canary, &canary_svc, 100)]}}));
        }
    }
    let mut weighted = json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "default": {"backendRefs": [backend(canary, &primary, routes.primary),
            backend(canary, &canary_svc, routes.canary)]}});
    if routes.mirror {
        let mut mirror = json!({"backendRef": backend(canary, &canary_svc, 1)});
        if let Some(w) = canary
            .spec
            .analysis
            .mirror_weight
            .filter(|w| (1..100).contains(w))
        {
            mirror["percentage"] = json!(w);
        }
        weighted["default"]["filters"] =
            json!([{"type": "RequestMirror", "requestMirror": mirror}]);
    }
    rules.push(weighted);
    let mut metadata = metadata(canary, json!({MESH_ANNOTATION: mesh(canary)}));
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({"apiVersion": API_VERSION, "kind": "MeshHTTPRoute", "metadata": metadata,
        "spec": {"targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": mesh_service(canary, &canary.apex_name()), "rules": rules}]}})
}

fn backend_weight(rule: &Value, service: &str) -> Option<i32> {
    rule["default"]["backendRefs"]
        .as_array()?
        .iter()
        .find(|b| b["labels"]["kuma.io/display-name"] == service)
        .map(|b| b["weight"].as_i64().unwrap_or(1).clamp(0, 100) as i32)
}

/// The routes a MeshHTTPRoute of Serin's carries: the weights of the rule with both backends,
/// its RequestMirror to the canary, and whether a rule sends only to the canary (A/B). One
/// without the weighted rule reads as 0/0 (the core repairs it).
pub fn mesh_http_route_routes(canary: &Canary, route: &Value) -> Routes {
    let (primary, canary_svc) = names(canary);
    let rules: Vec<&Value> = route["spec"]["to"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let weighted = rules.iter().find(|r| {
        backend_weight(r, &primary).is_some() && backend_weight(r, &canary_svc).is_some()
    });
    let Some(weighted) = weighted else {
        return Routes {
            primary: 0,
            ..Routes::PRIMARY
        };
    };
    let mirror = weighted["default"]["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| {
            f["type"] == "RequestMirror"
                && f["requestMirror"]["backendRef"]["labels"]["kuma.io/display-name"]
                    == canary_svc.as_str()
        });
    let ab_match = rules.iter().any(|r| {
        r["default"]["backendRefs"]
            .as_array()
            .is_some_and(|b| b.len() == 1)
            && backend_weight(r, &canary_svc).is_some()
    });
    Routes {
        baseline: 0,
        primary: backend_weight(weighted, &primary).unwrap_or(0),
        canary: backend_weight(weighted, &canary_svc).unwrap_or(0),
        mirror,
        ab_match,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(extra: Value) -> Canary {
        let mut c = json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"provider": "kuma",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898}, "analysis": {"interval": "1m", "threshold": 2}}});
        json_patch::merge(&mut c, &extra);
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn the_traffic_route_is_flaggers() {
        let c = canary(json!({"metadata": {"annotations": {"kuma.io/mesh": "shop"}}}));
        let routes = Routes::split(30);
        let r = traffic_route(&c, routes);
        assert_eq!(r["mesh"], "shop");
        assert_eq!(r["metadata"]["name"], "podinfo");
        assert_eq!(
            r["metadata"]["annotations"][CANARY_ANNOTATION],
            "test/podinfo"
        );
        assert_eq!(
            r["spec"],
            json!({"sources": [{"match": {"kuma.io/service": "*"}}],
                "destinations": [{"match": {"kuma.io/service": "podinfo_test_svc_9898"}}],
                "conf": {"split": [
                    {"weight": 70, "destination": {"kuma.io/service": "podinfo-primary_test_svc_9898"}},
                    {"weight": 30, "destination": {"kuma.io/service": "podinfo-canary_test_svc_9898"}}]}})
        );
        assert_eq!(traffic_route_routes(&c, &r), routes);
        assert_eq!(mesh(&canary(json!({}))), "default");
    }

    #[test]
    fn the_mesh_http_route_splits_mirrors_and_matches() {
        let c = canary(json!({"spec": {"analysis": {"mirrorWeight": 20, "match": [
            {"headers": {"X-Canary": {"exact": "insider"}, "user-agent": {"suffix": "Mobile"}},
             "queryParams": {"beta": {"prefix": "y"}}}]}}}));
        let r = mesh_http_route(&c, Routes::split(40), None);
        assert_eq!(r["metadata"]["labels"]["kuma.io/mesh"], "default");
        let to = &r["spec"]["to"][0];
        assert_eq!(
            to["targetRef"],
            json!({"kind": "MeshService", "labels": {"kuma.io/display-name": "podinfo", "k8s.kuma.io/namespace": "test"}})
        );
        assert_eq!(
            to["rules"][0]["default"]["backendRefs"][1],
            json!({"kind": "MeshService", "labels": {"kuma.io/display-name": "podinfo-canary", "k8s.kuma.io/namespace": "test"},
                "port": 9898, "weight": 40})
        );
        assert_eq!(mesh_http_route_routes(&c, &r), Routes::split(40));

        let mirrored = Routes {
            mirror: true,
            ..Routes::PRIMARY
        };
        let r = mesh_http_route(&c, mirrored, None);
        let filter = &r["spec"]["to"][0]["rules"][0]["default"]["filters"][0];
        assert_eq!(filter["requestMirror"]["percentage"], 20);
        assert_eq!(mesh_http_route_routes(&c, &r), mirrored);

        let ab = Routes {
            ab_match: true,
            ..Routes::PRIMARY
        };
        let r = mesh_http_route(&c, ab, None);
        let first = &r["spec"]["to"][0]["rules"][0]["matches"][0];
        assert_eq!(
            first["headers"],
            json!([{"type": "Exact", "name": "x-canary", "value": "insider"},
                {"type": "RegularExpression", "name": "user-agent", "value": ".*Mobile"}])
        );
        assert_eq!(
            first["queryParams"],
            json!([{"type": "RegularExpression", "name": "beta", "value": "y.*"}])
        );
        assert_eq!(mesh_http_route_routes(&c, &r), ab);
        let back = mesh_http_route(&c, Routes::PRIMARY, None);
        assert_eq!(mesh_http_route_routes(&c, &back), Routes::PRIMARY);
    }
}

//! The HTTPProxy Serin generates for `provider: contour` (pure), named and shaped as Flagger's:
//! `<apex>` (projectcontour.io/v1, no virtual host: the user's root HTTPProxy includes it), one
//! route on the path prefix (`service.match[0].uri.prefix`, else `/`) to `<apex>-primary` and
//! `<apex>-canary` with their weights and Linkerd's `l5d-dst-override` header, the timeout
//! (`response`, idle 5m) and retry policy, the request and response header policies; while
//! mirroring, a mirror entry for the canary (`mirrorWeight` as its weight); for A/B testing one
//! route per `analysis.match` entry (its headers and query parameters all required, as in the
//! other routers) sending matching requests to the canary ahead of it. Also reads the routes back.

use serde_json::{Value, json};

use crate::analysis::Routes;
use crate::api::{AnalysisMatch, Canary, HeaderOperation};

/// API version of the generated HTTPProxy (Contour's only served version).
pub const API_VERSION: &str = "projectcontour.io/v1";

/// The path prefix the routes answer.
fn path_prefix(canary: &Canary) -> String {
    canary
        .spec
        .service
        .r#match
        .iter()
        .flatten()
        .next()
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into())
}

fn service(canary: &Canary, name: &str, weight: i32) -> Value {
    let s = &canary.spec.service;
    let dst = format!(
        "{name}.{}.svc.cluster.local:{}",
        canary.namespace_or_default(),
        s.port
    );
    json!({"name": name, "port": s.port, "weight": weight,
        "requestHeadersPolicy": {"set": [{"name": "l5d-dst-override", "value": dst}]}})
}

fn header_policy(op: &HeaderOperation) -> Value {
    let mut out = json!({});
    let set: Vec<Value> = op
        .set
        .iter()
        .flatten()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    if !set.is_empty() {
        out["set"] = json!(set);
    }
    if let Some(r) = op.remove.as_ref().filter(|r| !r.is_empty()) {
        out["remove"] = json!(r);
    }
    out
}

/// A string condition of Contour's (a header has no prefix or suffix: a regex says it).
fn header_condition(name: &str, h: &crate::api::HeaderMatch) -> Value {
    let mut c = json!({"name": name});
    match (&h.exact, &h.prefix, &h.suffix, &h.regex) {
        (Some(v), ..) => c["exact"] = json!(v),
        (_, Some(p), ..) => c["regex"] = json!(format!("{}.*", regex::escape(p))),
        (_, _, Some(s), _) => c["regex"] = json!(format!(".*{}", regex::escape(s))),
        (.., Some(r)) => c["regex"] = json!(r),
        _ => c["present"] = json!(true),
    }
    json!({"header": c})
}

fn query_condition(name: &str, q: &crate::api::StringMatch) -> Value {
    let mut c = json!({"name": name});
    match (&q.exact, &q.prefix, &q.regex) {
        (Some(v), ..) => c["exact"] = json!(v),
        (_, Some(p), _) => c["prefix"] = json!(p),
        (.., Some(r)) => c["regex"] = json!(r),
        _ => c["present"] = json!(true),
    }
    json!({"queryParameter": c})
}

/// The conditions of the route for one `analysis.match` entry: the prefix and each condition.
fn match_conditions(canary: &Canary, m: &AnalysisMatch) -> Vec<Value> {
    let mut out = vec![json!({"prefix": path_prefix(canary)})];
    for (name, h) in m.headers.iter().flatten() {
        out.push(header_condition(name, h));
    }
    for (name, q) in m.query_params.iter().flatten() {
        out.push(query_condition(name, q));
    }
    out
}

fn route(canary: &Canary, conditions: Vec<Value>, routes: Routes) -> Value {
    let s = &canary.spec.service;
    let apex = canary.apex_name();
    let (primary, canary_svc) = (format!("{apex}-primary"), format!("{apex}-canary"));
    let mut services = vec![
        service(canary, &primary, routes.primary),
        service(canary, &canary_svc, routes.canary),
    ];
    if routes.mirror {
        let mut m = service(canary, &canary_svc, 0);
        m["mirror"] = json!(true);
        match canary
            .spec
            .analysis
            .mirror_weight
            .filter(|w| (1..=100).contains(w))
        {
            // An explicit 0 would mirror everything; no weight is 100%.
            Some(w) => m["weight"] = json!(w),
            None => _ = m.as_object_mut().map(|o| o.remove("weight")),
        }
        services.push(m);
    }
    let mut r = json!({"conditions": conditions, "services": services});
    if let Some(t) = &s.timeout {
        r["timeoutPolicy"] = json!({"response": t, "idle": "5m"});
    }
    if let Some(retries) = &s.retries {
        let mut p = json!({});
        if let Some(n) = retries.attempts {
            p["count"] = json!(n);
        }
        if let Some(t) = &retries.per_try_timeout {
            p["perTryTimeout"] = json!(t);
        }
        let on: Vec<&str> = retries
            .retry_on
            .iter()
            .flat_map(|r| r.split(','))
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        if !on.is_empty() {
            p["retryOn"] = json!(on);
        }
        r["retryPolicy"] = p;
    }
    if let Some(h) = &s.headers {
        if let Some(req) = &h.request {
            r["requestHeadersPolicy"] = header_policy(req);
        }
        if let Some(resp) = &h.response {
            r["responseHeadersPolicy"] = header_policy(resp);
        }
    }
    r
}

/// The HTTPProxy for these routes; `owner` is the Canary's owner reference (None for a proxy the
/// user had, which Serin takes over).
pub fn http_proxy(canary: &Canary, routes: Routes, owner: Option<Value>) -> Value {
    let mut out = Vec::new();
    if routes.ab_match {
        for m in canary.spec.analysis.r#match.iter().flatten() {
            out.push(route(canary, match_conditions(canary, m), Routes::CANARY));
        }
    }
    let main = Routes {
        ab_match: false,
        ..routes
    };
    out.push(route(
        canary,
        vec![json!({"prefix": path_prefix(canary)})],
        main,
    ));
    let meta = canary.spec.service.apex.clone().unwrap_or_default();
    let mut metadata = json!({"name": canary.apex_name(), "labels": meta.labels.unwrap_or_default(),
        "annotations": meta.annotations.unwrap_or_default()});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({"apiVersion": API_VERSION, "kind": "HTTPProxy", "metadata": metadata, "spec": {"routes": out}})
}

/// The weight of the (non-mirror) entry for `name` in a route.
fn weight(route: &Value, name: &str) -> Option<i32> {
    route["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name && s["mirror"] != true)
        .map(|s| s["weight"].as_i64().unwrap_or(0) as i32)
}

fn has_match(route: &Value) -> bool {
    route["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c.get("header").is_some() || c.get("queryParameter").is_some())
}

/// The routes an HTTPProxy carries: the weights of the route without request conditions, its
/// canary mirror, and whether a match route sends to the canary. A proxy without such a route
/// reads as 0/0 (no write of Serin's leaves it so: the core repairs it).
pub fn routes_of(canary: &Canary, proxy: &Value) -> Routes {
    let apex = canary.apex_name();
    let (primary, canary_svc) = (format!("{apex}-primary"), format!("{apex}-canary"));
    let all: Vec<&Value> = proxy["spec"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let main = all.iter().find(|r| {
        !has_match(r) && weight(r, &primary).is_some() && weight(r, &canary_svc).is_some()
    });
    let Some(main) = main else {
        return Routes {
            baseline: 0,
            primary: 0,
            canary: 0,
            mirror: false,
            ab_match: false,
        };
    };
    let mirror = main["services"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["name"] == canary_svc.as_str() && s["mirror"] == true);
    let ab_match = all
        .iter()
        .any(|r| has_match(r) && weight(r, &canary_svc).is_some_and(|w| w > 0));
    Routes {
        baseline: 0,
        primary: weight(main, &primary).unwrap_or(0),
        canary: weight(main, &canary_svc).unwrap_or(0),
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
            "spec": {"provider": "contour", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80, "timeout": "15s", "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "gateway-error, connect-failure"}},
                "analysis": {"interval": "1m", "threshold": 2, "iterations": 2}}});
        json_patch::merge(&mut c["spec"], &extra);
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn the_proxy_is_flaggers_with_weights_timeout_and_retries() {
        let c = canary(json!({}));
        let p = http_proxy(&c, Routes::split(20), None);
        assert_eq!(
            p["spec"]["routes"],
            json!([{"conditions": [{"prefix": "/"}],
                "timeoutPolicy": {"response": "15s", "idle": "5m"},
                "retryPolicy": {"count": 3, "perTryTimeout": "5s", "retryOn": ["gateway-error", "connect-failure"]},
                "services": [
                    {"name": "podinfo-primary", "port": 80, "weight": 80, "requestHeadersPolicy": {"set": [{"name": "l5d-dst-override", "value": "podinfo-primary.test.svc.cluster.local:80"}]}},
                    {"name": "podinfo-canary", "port": 80, "weight": 20, "requestHeadersPolicy": {"set": [{"name": "l5d-dst-override", "value": "podinfo-canary.test.svc.cluster.local:80"}]}}]}])
        );
        assert_eq!(routes_of(&c, &p), Routes::split(20));
    }

    #[test]
    fn ab_routes_require_all_of_an_entry_and_any_entry() {
        let c = canary(json!({"analysis": {"match": [
            {"headers": {"user-agent": {"prefix": "Mobile"}, "x-canary": {"exact": "1"}}},
            {"queryParams": {"beta": {"exact": "on"}}, "headers": {"cookie": {"suffix": "a.b"}}}]}}));
        let ab = Routes {
            ab_match: true,
            ..Routes::PRIMARY
        };
        let p = http_proxy(&c, ab, None);
        let routes = p["spec"]["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(
            routes[0]["conditions"],
            json!([{"prefix": "/"}, {"header": {"name": "user-agent", "regex": "Mobile.*"}}, {"header": {"name": "x-canary", "exact": "1"}}])
        );
        assert_eq!(
            routes[1]["conditions"],
            json!([{"prefix": "/"}, {"header": {"name": "cookie", "regex": ".*a\\.b"}}, {"queryParameter": {"name": "beta", "exact": "on"}}])
        );
        assert_eq!(routes[0]["services"][1]["weight"], 100);
        assert_eq!(routes_of(&c, &p), ab);
    }

    #[test]
    fn mirroring_adds_a_mirror_entry_with_its_percentage() {
        let c = canary(
            json!({"service": {"match": [{"uri": {"prefix": "/api"}}]}, "analysis": {"mirrorWeight": 30}}),
        );
        let m = Routes {
            mirror: true,
            ..Routes::PRIMARY
        };
        let p = http_proxy(&c, m, None);
        let r = &p["spec"]["routes"][0];
        assert_eq!(r["conditions"], json!([{"prefix": "/api"}]));
        assert_eq!(r["services"][2]["mirror"], true);
        assert_eq!(r["services"][2]["weight"], 30);
        assert_eq!(routes_of(&c, &p), m);
        let none = json!({"spec": {"routes": []}});
        assert_eq!(routes_of(&c, &none).primary, 0);
    }
}

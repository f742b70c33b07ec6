//! The HTTPRoute Serin generates for `provider: gatewayapi` (pure): named after the apex, attached
//! to `service.gatewayRefs` for `service.hosts`; one catch-all rule with the weighted primary and
//! canary backendRefs, timeouts, header and URL-rewrite filters and, while mirroring, a
//! RequestMirror filter; in A/B mode one rule per `analysis.match` entry sending matching requests
//! to the canary ahead of it; a third, baseline backendRef while the baseline has a share
//! (`analysis.baseline`). Also reads the weights back from a route (`routes_of`).

use serde_json::{Value, json};

use super::affinity::{cookie_regex, is_sticky_match, set_cookie, sticky};
use crate::analysis::Routes;
use crate::api::{AnalysisMatch, Canary, HeaderOperation};
use crate::workload::primary_name;

/// Whether the Canary's service speaks gRPC (then a GRPCRoute replaces the HTTPRoute).
pub fn is_grpc(canary: &Canary) -> bool {
    let s = &canary.spec.service;
    s.app_protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("grpc") || p == "kubernetes.io/h2c")
        || s.port_name
            .as_deref()
            .is_some_and(|n| n == "grpc" || n.starts_with("grpc-"))
}

/// Kind and plural of the route for this Canary.
pub fn route_kind(canary: &Canary) -> (&'static str, &'static str) {
    if is_grpc(canary) {
        ("GRPCRoute", "grpcroutes")
    } else {
        ("HTTPRoute", "httproutes")
    }
}

/// A GRPCRoute knows no paths, query parameters, URL rewrites or timeouts: keep what it has.
fn grpc_rule(mut r: Value) -> Value {
    if let Some(o) = r.as_object_mut() {
        o.remove("timeouts");
    }
    // `get_mut`, not indexing: indexing a missing key would insert a null the API refuses.
    if let Some(ms) = r.get_mut("matches").and_then(Value::as_array_mut) {
        for m in ms.iter_mut().filter_map(Value::as_object_mut) {
            m.remove("path");
            m.remove("queryParams");
        }
        ms.retain(|m| m.as_object().is_some_and(|o| !o.is_empty()));
        if ms.is_empty() {
            r.as_object_mut().map(|o| o.remove("matches"));
        }
    }
    if let Some(fs) = r.get_mut("filters").and_then(Value::as_array_mut) {
        fs.retain(|f| f["type"] != "URLRewrite");
        if fs.is_empty() {
            r.as_object_mut().map(|o| o.remove("filters"));
        }
    }
    r
}

/// Names of the primary and canary Services of a Canary.
pub fn backends(canary: &Canary) -> (String, String) {
    let apex = canary.apex_name();
    (primary_name(&apex), format!("{apex}-canary"))
}

fn backend(name: &str, port: i32, weight: i32) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}

fn regex_escape(s: &str) -> String {
    regex::escape(s)
}

fn header_ops(op: &HeaderOperation) -> Value {
    let pairs = |m: &Option<crate::api::StringMap>| -> Vec<Value> {
        m.iter()
            .flatten()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect()
    };
    let mut out = json!({});
    if op.set.is_some() {
        out["set"] = json!(pairs(&op.set));
    }
    if op.add.is_some() {
        out["add"] = json!(pairs(&op.add));
    }
    if let Some(r) = &op.remove {
        out["remove"] = json!(r);
    }
    out
}

/// The filters every generated rule carries (headers, rewrite) plus the mirror while mirroring.
fn filters(canary: &Canary, mirror: bool) -> Vec<Value> {
    let s = &canary.spec.service;
    let mut out = Vec::new();
    if let Some(h) = &s.headers {
        if let Some(req) = &h.request {
            out.push(
                json!({"type": "RequestHeaderModifier", "requestHeaderModifier": header_ops(req)}),
            );
        }
        if let Some(resp) = &h.response {
            out.push(json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": header_ops(resp)}));
        }
    }
    if let Some(r) = &s.rewrite {
        let mut rewrite = json!({});
        if let Some(host) = &r.authority {
            rewrite["hostname"] = json!(host);
        }
        if let Some(uri) = &r.uri {
            rewrite["path"] = match r.r#type.as_deref() {
                Some("ReplaceFullPath") => {
                    json!({"type": "ReplaceFullPath", "replaceFullPath": uri})
                }
                _ => json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": uri}),
            };
        }
        out.push(json!({"type": "URLRewrite", "urlRewrite": rewrite}));
    }
    if mirror {
        let (_, canary_svc) = backends(canary);
        let mut m = json!({"backendRef": {"group": "", "kind": "Service", "name": canary_svc, "port": s.port}});
        if let Some(p) = canary.spec.analysis.mirror_weight {
            m["percent"] = json!(p);
        }
        out.push(json!({"type": "RequestMirror", "requestMirror": m}));
    }
    out
}

/// A/B conditions as Gateway API matches (prefix/suffix become anchored regular expressions).
fn matches_of(m: &AnalysisMatch) -> Value {
    let mut headers = Vec::new();
    for (name, h) in m.headers.iter().flatten() {
        let (kind, value) = match (&h.exact, &h.prefix, &h.suffix, &h.regex) {
            (Some(v), ..) => ("Exact", v.clone()),
            (_, Some(p), ..) => ("RegularExpression", format!("^{}.*", regex_escape(p))),
            (_, _, Some(s), _) => ("RegularExpression", format!(".*{}$", regex_escape(s))),
            (_, _, _, Some(r)) => ("RegularExpression", r.clone()),
            _ => continue,
        };
        headers.push(json!({"type": kind, "name": name, "value": value}));
    }
    let mut params = Vec::new();
    for (name, q) in m.query_params.iter().flatten() {
        let (kind, value) = match (&q.exact, &q.prefix, &q.regex) {
            (Some(v), ..) => ("Exact", v.clone()),
            (_, Some(p), _) => ("RegularExpression", format!("^{}.*", regex_escape(p))),
            (_, _, Some(r)) => ("RegularExpression", r.clone()),
            _ => continue,
        };
        params.push(json!({"type": kind, "name": name, "value": value}));
    }
    let mut out = json!({"path": {"type": "PathPrefix", "value": "/"}});
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    if !params.is_empty() {
        out["queryParams"] = json!(params);
    }
    out
}

fn timeouts(canary: &Canary) -> Option<Value> {
    let s = &canary.spec.service;
    let mut t = json!({});
    if let Some(r) = &s.timeout {
        t["request"] = json!(r);
    }
    if let Some(b) = &s.backend_timeout {
        t["backendRequest"] = json!(b);
    }
    (t != json!({})).then_some(t)
}

/// A backendRef whose responses set these cookies.
fn with_cookies(mut b: Value, cookies: &[String]) -> Value {
    if !cookies.is_empty() {
        let add: Vec<Value> = cookies
            .iter()
            .map(|c| json!({"name": "Set-Cookie", "value": c}))
            .collect();
        b["filters"] =
            json!([{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": add}}]);
    }
    b
}

fn rule(canary: &Canary, matches: Value, routes: Routes, mirror: bool) -> Value {
    let (primary, canary_svc) = backends(canary);
    let port = canary.spec.service.port;
    let (mut on_primary, mut on_canary) = (Vec::new(), Vec::new());
    if let Some((sa, s)) = sticky(canary, routes) {
        on_canary.extend(s.canary.iter().map(|c| set_cookie(sa, c, sa.max_age)));
        on_primary.extend(s.primary.iter().map(|c| set_cookie(sa, c, sa.max_age)));
        on_primary.extend(s.expire.iter().map(|c| set_cookie(sa, c, -1)));
    }
    let mut r = json!({
        "matches": [matches],
        "backendRefs": [with_cookies(backend(&primary, port, routes.primary), &on_primary),
            with_cookies(backend(&canary_svc, port, routes.canary), &on_canary)],
    });
    if routes.baseline > 0 {
        // Only while the baseline has a share: its Service exists and its pods are ready.
        let b = backend(&super::baseline_backend(canary), port, routes.baseline);
        if let Some(refs) = r["backendRefs"].as_array_mut() {
            refs.push(b);
        }
    }
    let f = filters(canary, mirror);
    if !f.is_empty() {
        r["filters"] = json!(f);
    }
    if let Some(t) = timeouts(canary) {
        r["timeouts"] = t;
    }
    r
}

/// The whole HTTPRoute (`api_version` is gateway.networking.k8s.io/v1 or v1beta1). `mesh` routes
/// (GAMMA, as Linkerd uses them) attach to the apex Service instead of Gateways.
pub fn build(
    canary: &Canary,
    routes: Routes,
    api_version: &str,
    owner: Value,
    mesh: bool,
) -> Value {
    let s = &canary.spec.service;
    let grpc = is_grpc(canary);
    let mut rules = Vec::new();
    // Cookies mean nothing to gRPC clients: no session affinity on a GRPCRoute.
    if let Some((_, s)) = sticky(canary, routes).filter(|_| !grpc) {
        // Clients that hold a cookie stay where it pins them.
        for (cookie, to) in [(&s.canary, Routes::CANARY), (&s.primary, Routes::PRIMARY)] {
            if let Some(c) = cookie {
                let m = json!({"path": {"type": "PathPrefix", "value": "/"},
                    "headers": [{"type": "RegularExpression", "name": "Cookie", "value": cookie_regex(c)}]});
                let mut r = rule(canary, m, to, false);
                for b in r["backendRefs"].as_array_mut().into_iter().flatten() {
                    b.as_object_mut().map(|o| o.remove("filters"));
                }
                rules.push(r);
            }
        }
    }
    if routes.ab_match {
        for m in canary.spec.analysis.r#match.iter().flatten() {
            // A GRPCRoute matches headers only; a condition it cannot express must not
            // become a rule that catches everything.
            if grpc && m.headers.as_ref().is_none_or(|h| h.is_empty()) {
                continue;
            }
            rules.push(rule(canary, matches_of(m), Routes::CANARY, false));
        }
    }
    let main = Routes {
        ab_match: false,
        ..routes
    };
    rules.push(rule(
        canary,
        json!({"path": {"type": "PathPrefix", "value": "/"}}),
        main,
        routes.mirror,
    ));
    let parents: Vec<Value> = s
        .gateway_refs
        .iter()
        .flatten()
        .map(|p| {
            let mut v = json!({"group": p.group, "kind": p.kind, "name": p.name});
            if let Some(ns) = &p.namespace {
                v["namespace"] = json!(ns);
            }
            if let Some(sec) = &p.section_name {
                v["sectionName"] = json!(sec);
            }
            if let Some(port) = p.port {
                v["port"] = json!(port);
            }
            v
        })
        .collect();
    let parents = if mesh {
        vec![json!({"group": "", "kind": "Service", "name": canary.apex_name(), "port": s.port})]
    } else {
        parents
    };
    let meta = s.apex.clone().unwrap_or_default();
    let (kind, _) = route_kind(canary);
    if grpc {
        rules = rules.into_iter().map(grpc_rule).collect();
    }
    let mut spec = json!({"parentRefs": parents, "rules": rules});
    if let Some(h) = &s.hosts {
        spec["hostnames"] = json!(h);
    }
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": canary.apex_name(), "labels": meta.labels.unwrap_or_default(),
            "annotations": meta.annotations.unwrap_or_default(), "ownerReferences": [owner]},
        "spec": spec,
    })
}

/// The weights of a route: from the rule whose backendRefs name both of our Services and has no
/// header or query matches (the catch-all); `ab_match` when another rule sends matches to the
/// canary; `mirror` when that rule mirrors to the canary. None when no rule names both.
pub fn routes_of(canary: &Canary, route: &Value) -> Option<Routes> {
    let (primary, canary_svc) = backends(canary);
    let rules = route["spec"]["rules"].as_array()?;
    let weight_of = |r: &Value, name: &str| {
        r["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["name"] == name)
            .map(|b| b["weight"].as_i64().unwrap_or(1) as i32)
    };
    let has_conditions = |r: &Value| {
        r["matches"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m.get("headers").is_some() || m.get("queryParams").is_some())
    };
    let is_sticky = |r: &Value| {
        r["matches"].as_array().into_iter().flatten().any(|m| {
            m["headers"].as_array().into_iter().flatten().any(|h| {
                is_sticky_match(
                    canary,
                    h["name"].as_str().unwrap_or_default(),
                    h["value"].as_str().unwrap_or_default(),
                )
            })
        })
    };
    let main = rules.iter().find(|r| {
        weight_of(r, &primary).is_some()
            && weight_of(r, &canary_svc).is_some()
            && !has_conditions(r)
    })?;
    let ab_match = rules.iter().any(|r| {
        has_conditions(r) && !is_sticky(r) && weight_of(r, &canary_svc).is_some_and(|w| w > 0)
    });
    let mirror = main["filters"].as_array().into_iter().flatten().any(|f| {
        f["type"] == "RequestMirror"
            && f["requestMirror"]["backendRef"]["name"] == canary_svc.as_str()
    });
    Some(Routes {
        baseline: weight_of(main, &super::baseline_backend(canary)).unwrap_or(0),
        primary: weight_of(main, &primary)?,
        canary: weight_of(main, &canary_svc)?,
        mirror,
        ab_match,
    })
}

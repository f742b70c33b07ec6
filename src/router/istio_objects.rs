//! The Istio objects Serin generates (pure): VirtualService `<apex>` with weighted routes to the
//! `<apex>-primary` and `<apex>-canary` hosts (A/B match routes ahead of it, mirroring, retries,
//! timeout, headers, CORS, rewrite; TCP routes for TCP services; no hosts or gateways for a
//! delegate; a third, baseline destination while `analysis.baseline` gives it a share), and
//! DestinationRules `<apex>-primary` / `<apex>-canary` with the user's
//! trafficPolicy. Also reads the weights back (`routes_of`).

use serde_json::{Value, json};

use super::affinity::{cookie_regex, is_sticky_match, set_cookie, sticky};
use super::gateway_api_route::backends;
use crate::analysis::Routes;
use crate::api::{AnalysisMatch, Canary, HeaderOperations};

/// API version of the generated objects (Istio's storage version).
pub const API_VERSION: &str = "networking.istio.io/v1";

fn string_match(
    exact: &Option<String>,
    prefix: &Option<String>,
    suffix: Option<&String>,
    regex: &Option<String>,
) -> Option<Value> {
    match (exact, prefix, suffix, regex) {
        (Some(v), ..) => Some(json!({"exact": v})),
        (_, Some(v), ..) => Some(json!({"prefix": v})),
        (_, _, Some(v), _) => Some(json!({"regex": format!(".*{}$", regex::escape(v))})),
        (_, _, _, Some(v)) => Some(json!({"regex": v})),
        _ => None,
    }
}

fn match_of(m: &AnalysisMatch) -> Value {
    let mut out = json!({});
    let headers: serde_json::Map<String, Value> = m
        .headers
        .iter()
        .flatten()
        .filter_map(|(k, h)| {
            string_match(&h.exact, &h.prefix, h.suffix.as_ref(), &h.regex).map(|v| (k.clone(), v))
        })
        .collect();
    if !headers.is_empty() {
        out["headers"] = Value::Object(headers);
    }
    let params: serde_json::Map<String, Value> = m
        .query_params
        .iter()
        .flatten()
        .filter_map(|(k, q)| {
            string_match(&q.exact, &q.prefix, None, &q.regex).map(|v| (k.clone(), v))
        })
        .collect();
    if !params.is_empty() {
        out["queryParams"] = Value::Object(params);
    }
    if let Some(l) = &m.source_labels {
        out["sourceLabels"] = json!(l);
    }
    out
}

fn headers_of(h: &HeaderOperations) -> Value {
    serde_json::to_value(h).unwrap_or(Value::Null)
}

fn destination(host: &str, port: i32, weight: i32) -> Value {
    json!({"destination": {"host": host, "port": {"number": port}}, "weight": weight})
}

/// Whether the Canary's service is TCP (routes go under `tcp`, not `http`).
pub fn is_tcp(canary: &Canary) -> bool {
    let s = &canary.spec.service;
    s.app_protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
        || s.port_name
            .as_deref()
            .is_some_and(|n| n == "tcp" || n.starts_with("tcp-"))
}

/// A destination whose responses set `cookie` (Istio headers are a map: one Set-Cookie each).
fn with_cookie(mut d: Value, cookie: Option<String>) -> Value {
    if let Some(c) = cookie {
        d["headers"] = json!({"response": {"add": {"Set-Cookie": c}}});
    }
    d
}

fn http_route(canary: &Canary, routes: Routes, matches: Option<Value>, mirror: bool) -> Value {
    let s = &canary.spec.service;
    let (primary, canary_svc) = backends(canary);
    let (mut on_primary, mut on_canary) = (None, None);
    if let (Some((sa, st)), None) = (sticky(canary, routes), &matches) {
        on_canary = st.canary.as_ref().map(|c| set_cookie(sa, c, sa.max_age));
        on_primary = st
            .primary
            .as_ref()
            .map(|c| set_cookie(sa, c, sa.max_age))
            .or_else(|| st.expire.as_ref().map(|c| set_cookie(sa, c, -1)));
    }
    let mut r = json!({"route": [with_cookie(destination(&primary, s.port, routes.primary), on_primary),
        with_cookie(destination(&canary_svc, s.port, routes.canary), on_canary)]});
    if routes.baseline > 0 {
        push_baseline(&mut r, canary, routes.baseline);
    }
    if let Some(m) = matches {
        r["match"] = json!([m]);
    }
    if let Some(t) = &s.timeout {
        r["timeout"] = json!(t);
    }
    if let Some(retries) = &s.retries {
        r["retries"] = serde_json::to_value(retries).unwrap_or_default();
    }
    if let Some(h) = &s.headers {
        r["headers"] = headers_of(h);
    }
    if let Some(c) = &s.cors_policy {
        r["corsPolicy"] = serde_json::to_value(c).unwrap_or_default();
    }
    if let Some(rw) = &s.rewrite {
        let mut v = json!({});
        if let Some(u) = &rw.uri {
            v["uri"] = json!(u);
        }
        if let Some(a) = &rw.authority {
            v["authority"] = json!(a);
        }
        r["rewrite"] = v;
    }
    if mirror {
        r["mirror"] = json!({"host": canary_svc, "port": {"number": s.port}});
        if let Some(p) = canary.spec.analysis.mirror_weight {
            r["mirrorPercentage"] = json!({"value": f64::from(p)});
        }
    }
    r
}

/// A third destination, the baseline's Service, while it has a share (`analysis.baseline`).
fn push_baseline(route: &mut Value, canary: &Canary, weight: i32) {
    let d = destination(
        &super::baseline_backend(canary),
        canary.spec.service.port,
        weight,
    );
    if let Some(r) = route["route"].as_array_mut() {
        r.push(d);
    }
}

/// The VirtualService for these routes.
pub fn virtual_service(canary: &Canary, routes: Routes, owner: Value) -> Value {
    let s = &canary.spec.service;
    let apex = canary.apex_name();
    let mut spec = json!({});
    if s.delegation != Some(true) {
        let mut hosts = vec![apex.clone()];
        hosts.extend(s.hosts.iter().flatten().filter(|h| **h != apex).cloned());
        spec["hosts"] = json!(hosts);
        if let Some(g) = &s.gateways {
            spec["gateways"] = json!(g);
        }
    }
    let main = Routes {
        ab_match: false,
        ..routes
    };
    if is_tcp(canary) {
        let (primary, canary_svc) = backends(canary);
        let mut tcp = json!({"route": [destination(&primary, s.port, main.primary), destination(&canary_svc, s.port, main.canary)]});
        if main.baseline > 0 {
            push_baseline(&mut tcp, canary, main.baseline);
        }
        spec["tcp"] = json!([tcp]);
    } else {
        let mut http = Vec::new();
        if let Some((_, st)) = sticky(canary, routes) {
            // Clients that hold a cookie stay where it pins them.
            for (cookie, to) in [(&st.canary, Routes::CANARY), (&st.primary, Routes::PRIMARY)] {
                if let Some(c) = cookie {
                    let m = json!({"headers": {"cookie": {"regex": cookie_regex(c)}}});
                    http.push(http_route(canary, to, Some(m), false));
                }
            }
        }
        if routes.ab_match {
            for m in canary.spec.analysis.r#match.iter().flatten() {
                http.push(http_route(canary, Routes::CANARY, Some(match_of(m)), false));
            }
        }
        http.push(http_route(canary, main, None, routes.mirror));
        spec["http"] = json!(http);
    }
    let meta = s.apex.clone().unwrap_or_default();
    json!({
        "apiVersion": API_VERSION, "kind": "VirtualService",
        "metadata": {"name": apex, "labels": meta.labels.unwrap_or_default(), "annotations": meta.annotations.unwrap_or_default(),
            "ownerReferences": [owner]},
        "spec": spec,
    })
}

/// The DestinationRule of one side (`name` is `<apex>-primary` or `<apex>-canary`).
pub fn destination_rule(canary: &Canary, name: &str, owner: Value) -> Value {
    let mut spec = json!({"host": name});
    if let Some(tp) = &canary.spec.service.traffic_policy {
        spec["trafficPolicy"] = serde_json::to_value(tp).unwrap_or_default();
    }
    json!({"apiVersion": API_VERSION, "kind": "DestinationRule",
        "metadata": {"name": name, "ownerReferences": [owner]}, "spec": spec})
}

/// The weights of a VirtualService: from the route without `match` naming both hosts.
pub fn routes_of(canary: &Canary, vs: &Value) -> Option<Routes> {
    let (primary, canary_svc) = backends(canary);
    let weight = |r: &Value, host: &str| {
        r["route"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["host"] == host)
            .map(|d| d["weight"].as_i64().unwrap_or(0) as i32)
    };
    let spec = &vs["spec"];
    let all: Vec<&Value> = spec["http"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["tcp"].as_array().into_iter().flatten())
        .collect();
    let main = all.iter().find(|r| {
        r.get("match").is_none()
            && weight(r, &primary).is_some()
            && weight(r, &canary_svc).is_some()
    })?;
    let sticky_route = |r: &Value| {
        r["match"].as_array().into_iter().flatten().any(|m| {
            m["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .any(|(k, v)| is_sticky_match(canary, k, v["regex"].as_str().unwrap_or_default()))
        })
    };
    let ab_match = all.iter().any(|r| {
        r.get("match").is_some()
            && !sticky_route(r)
            && weight(r, &canary_svc).is_some_and(|w| w > 0)
    });
    Some(Routes {
        baseline: weight(main, &super::baseline_backend(canary)).unwrap_or(0),
        primary: weight(main, &primary)?,
        canary: weight(main, &canary_svc)?,
        mirror: main["mirror"]["host"] == canary_svc.as_str(),
        ab_match,
    })
}

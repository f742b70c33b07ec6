//! The Gloo objects Serin generates for `provider: gloo` (pure), named and shaped as Flagger's so
//! dashboards and GitOps exclusions keep working: the Upstreams
//! `<ns>-<apex>-primaryupstream-<port>` and `<ns>-<apex>-canaryupstream-<port>` (gloo.solo.io/v1)
//! on the `-primary` and `-canary` Services, with the connection settings of the
//! `spec.upstreamRef` template copied in; and the RouteTable `<apex>` (gateway.solo.io/v1) the
//! user's VirtualService delegates to: one route inheriting the parent's path matchers with the
//! weighted primary and canary upstreams (0 written, not omitted), the service's timeout, retries
//! and header operations as route options, shadowing a share to the canary while mirroring (none
//! of which Flagger's Gloo router writes), and for A/B testing one route per
//! `analysis.match` entry ahead of it sending matching requests to the canary. Also reads the
//! routes back (`routes_of`). Imports only `api` and `analysis::Routes`; no I/O.

use serde_json::{Map, Value, json};

use crate::analysis::Routes;
use crate::api::duration::parse_duration;
use crate::api::{
    AnalysisMatch, Canary, CustomMetadata, HeaderMatch, HeaderOperation, StringMatch,
};

/// API version of the generated RouteTable.
pub const ROUTE_TABLE_API_VERSION: &str = "gateway.solo.io/v1";
/// API version of the generated Upstreams.
pub const UPSTREAM_API_VERSION: &str = "gloo.solo.io/v1";

/// The fields of a template Upstream copied into both generated ones (Flagger's list, with the
/// proxy host name under the CRD's spelling `httpProxyHostname`: Flagger's `httpProxyHostName`
/// is pruned by the API server). Everything else (the template's own `kube`, `static`, health
/// checks…) describes a different destination and is not copied.
pub const TEMPLATE_FIELDS: [&str; 8] = [
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostname",
];

/// Names of the (primary, canary) Upstreams, as Flagger names them.
pub fn upstream_names(canary: &Canary) -> (String, String) {
    let (ns, apex, port) = (
        canary.namespace_or_default(),
        canary.apex_name(),
        canary.spec.service.port,
    );
    (
        format!("{ns}-{apex}-primaryupstream-{port}"),
        format!("{ns}-{apex}-canaryupstream-{port}"),
    )
}

fn metadata(name: String, meta: Option<&CustomMetadata>, owner: Option<Value>) -> Value {
    let meta = meta.cloned().unwrap_or_default();
    let mut out = json!({"name": name, "labels": meta.labels.unwrap_or_default(),
        "annotations": meta.annotations.unwrap_or_default()});
    if let Some(owner) = owner {
        out["ownerReferences"] = json!([owner]);
    }
    out
}

/// The Upstream of one side (`canary_side`: the `-canary` Service, else `-primary`) with the
/// labels and annotations of `service.canary` / `service.primary`; `template` is the spec of the
/// `spec.upstreamRef` Upstream.
pub fn upstream(
    canary: &Canary,
    canary_side: bool,
    template: Option<&Value>,
    owner: Value,
) -> Value {
    let (primary, canary_up) = upstream_names(canary);
    let apex = canary.apex_name();
    let s = &canary.spec.service;
    let (name, service, meta) = if canary_side {
        (canary_up, format!("{apex}-canary"), s.canary.as_ref())
    } else {
        (primary, format!("{apex}-primary"), s.primary.as_ref())
    };
    let mut spec = Map::new();
    spec.insert(
        "kube".into(),
        json!({"serviceName": service, "serviceNamespace": canary.namespace_or_default(),
            "servicePort": s.port}),
    );
    for field in TEMPLATE_FIELDS {
        // A null would be applied as "unset"; a missing field simply is not copied.
        if let Some(v) = template.and_then(|t| t.get(field)).filter(|v| !v.is_null()) {
            spec.insert(field.into(), v.clone());
        }
    }
    json!({"apiVersion": UPSTREAM_API_VERSION, "kind": "Upstream",
        "metadata": metadata(name, meta, Some(owner)), "spec": spec})
}

/// A matcher's string condition: exact, or a full-match regex (Gloo has no prefix or suffix for
/// headers and query parameters, so they become regexes with the value escaped).
fn condition(
    name: &str,
    exact: &Option<String>,
    prefix: &Option<String>,
    suffix: Option<&String>,
    regex: &Option<String>,
) -> Value {
    let (value, is_regex) = match (exact, prefix, suffix, regex) {
        (Some(v), ..) => (v.clone(), false),
        (_, Some(p), ..) => (format!("{}.*", regex::escape(p)), true),
        (_, _, Some(s), _) => (format!(".*{}", regex::escape(s)), true),
        (.., Some(r)) => (r.clone(), true),
        // No value: Gloo matches on the header being present.
        _ => return json!({"name": name}),
    };
    let mut c = json!({"name": name, "value": value});
    if is_regex {
        c["regex"] = json!(true);
    }
    c
}

fn header(name: &str, h: &HeaderMatch) -> Value {
    condition(name, &h.exact, &h.prefix, h.suffix.as_ref(), &h.regex)
}

fn query(name: &str, q: &StringMatch) -> Value {
    condition(name, &q.exact, &q.prefix, None, &q.regex)
}

/// The matcher of one `analysis.match` entry: all its headers and query parameters at once.
fn matcher(m: &AnalysisMatch) -> Value {
    let mut out = json!({});
    let headers: Vec<Value> = m
        .headers
        .iter()
        .flatten()
        .map(|(n, h)| header(n, h))
        .collect();
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    let params: Vec<Value> = m
        .query_params
        .iter()
        .flatten()
        .map(|(n, q)| query(n, q))
        .collect();
    if !params.is_empty() {
        out["queryParameters"] = json!(params);
    }
    out
}

fn destination(ns: &str, upstream: &str, weight: i32) -> Value {
    json!({"destination": {"upstream": {"name": upstream, "namespace": ns}}, "weight": weight.max(0)})
}

/// A duration as protobuf's JSON writes one (seconds with an `s`): Gloo refuses Go's `1m`.
fn proto_duration(d: &str) -> Option<Value> {
    parse_duration(d)
        .ok()
        .map(|d| json!(format!("{}s", d.as_secs_f64())))
}

/// Gloo's header manipulation for one side: `add` appends, `set` overwrites.
fn header_ops(out: &mut Map<String, Value>, side: &str, op: &HeaderOperation) {
    let mut to_add = Vec::new();
    for (values, append) in [(&op.add, true), (&op.set, false)] {
        for (k, v) in values.iter().flatten() {
            to_add.push(json!({"header": {"key": k, "value": v}, "append": append}));
        }
    }
    if !to_add.is_empty() {
        out.insert(format!("{side}HeadersToAdd"), json!(to_add));
    }
    if let Some(r) = op.remove.as_ref().filter(|r| !r.is_empty()) {
        out.insert(format!("{side}HeadersToRemove"), json!(r));
    }
}

/// The route options of `service` (timeout, retries, header manipulation) and, while mirroring,
/// the shadowing of `mirrorWeight` percent (all when unset) to the canary Upstream.
fn options(canary: &Canary, mirror: bool) -> Map<String, Value> {
    let s = &canary.spec.service;
    let mut out = Map::new();
    if let Some(t) = s.timeout.as_deref().and_then(proto_duration) {
        out.insert("timeout".into(), t);
    }
    if let Some(r) = &s.retries {
        let mut p = Map::new();
        if let Some(n) = r.attempts {
            p.insert("numRetries".into(), json!(n.max(0)));
        }
        if let Some(t) = r.per_try_timeout.as_deref().and_then(proto_duration) {
            p.insert("perTryTimeout".into(), t);
        }
        if let Some(on) = r.retry_on.as_deref().filter(|o| !o.trim().is_empty()) {
            let on: Vec<&str> = on
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            p.insert("retryOn".into(), json!(on.join(",")));
        }
        out.insert("retries".into(), Value::Object(p));
    }
    let mut headers = Map::new();
    if let Some(h) = &s.headers {
        if let Some(req) = &h.request {
            header_ops(&mut headers, "request", req);
        }
        if let Some(resp) = &h.response {
            header_ops(&mut headers, "response", resp);
        }
    }
    if !headers.is_empty() {
        out.insert("headerManipulation".into(), Value::Object(headers));
    }
    if mirror {
        let (_, canary_up) = upstream_names(canary);
        let percent = canary
            .spec
            .analysis
            .mirror_weight
            .unwrap_or(100)
            .clamp(0, 100);
        out.insert(
            "shadowing".into(),
            json!({"upstream": {"name": canary_up, "namespace": canary.namespace_or_default()},
                "percentage": percent}),
        );
    }
    out
}

/// One route: the path matchers come from the delegating VirtualService (`inheritablePathMatchers`),
/// so the RouteTable answers whatever prefix the user delegates.
fn route(canary: &Canary, matchers: Option<Value>, routes: Routes) -> Value {
    let ns = canary.namespace_or_default();
    let (primary, canary_up) = upstream_names(canary);
    let mut r = json!({"inheritablePathMatchers": true, "routeAction": {"multi": {"destinations": [
        destination(&ns, &primary, routes.primary),
        destination(&ns, &canary_up, routes.canary),
    ]}}});
    if let Some(m) = matchers {
        r["matchers"] = json!([m]);
    }
    let options = options(canary, routes.mirror);
    if !options.is_empty() {
        r["options"] = Value::Object(options);
    }
    r
}

/// The RouteTable for these routes; `owner` is the Canary's owner reference (None for a table the
/// user had, which Serin takes over).
pub fn route_table(canary: &Canary, routes: Routes, owner: Option<Value>) -> Value {
    let mut out = Vec::new();
    if routes.ab_match {
        for m in canary.spec.analysis.r#match.iter().flatten() {
            out.push(route(canary, Some(matcher(m)), Routes::CANARY));
        }
    }
    let main = Routes {
        ab_match: false,
        ..routes
    };
    out.push(route(canary, None, main));
    let meta = metadata(canary.apex_name(), canary.spec.service.apex.as_ref(), owner);
    json!({"apiVersion": ROUTE_TABLE_API_VERSION, "kind": "RouteTable", "metadata": meta,
        "spec": {"routes": out}})
}

/// The weight of the destination sending to `upstream` in a route (an absent weight is 0, as
/// Flagger omits it).
fn weight(route: &Value, upstream: &str) -> Option<i32> {
    route["routeAction"]["multi"]["destinations"]
        .as_array()?
        .iter()
        .find(|d| d["destination"]["upstream"]["name"] == upstream)
        .map(|d| d["weight"].as_i64().unwrap_or(0) as i32)
}

fn has_match(route: &Value) -> bool {
    route["matchers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m.get("headers").is_some() || m.get("queryParameters").is_some())
}

/// The routes a RouteTable carries: the weights of the route without request conditions, its
/// shadowing to the canary, and whether a match route sends to the canary. A table without such a
/// route reads as 0/0 (no write of Serin's leaves it so: the core repairs it).
pub fn routes_of(canary: &Canary, table: &Value) -> Routes {
    let (primary, canary_up) = upstream_names(canary);
    let all: Vec<&Value> = table["spec"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let main = all.iter().find(|r| {
        !has_match(r) && weight(r, &primary).is_some() && weight(r, &canary_up).is_some()
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
    Routes {
        baseline: 0,
        primary: weight(main, &primary).unwrap_or(0),
        canary: weight(main, &canary_up).unwrap_or(0),
        mirror: main["options"]["shadowing"]["upstream"]["name"] == canary_up.as_str(),
        ab_match: all
            .iter()
            .any(|r| has_match(r) && weight(r, &canary_up).is_some_and(|w| w > 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(extra: Value) -> Canary {
        let mut c = json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"provider": "gloo", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898, "apex": {"labels": {"team": "shop"}}},
                "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10}}});
        json_patch::merge(&mut c["spec"], &extra);
        serde_json::from_value(c).unwrap()
    }

    fn dest(name: &str, weight: i32) -> Value {
        json!({"destination": {"upstream": {"name": name, "namespace": "test"}}, "weight": weight})
    }

    #[test]
    fn the_route_table_is_flaggers_with_zero_written_and_is_read_back() {
        let c = canary(json!({}));
        let t = route_table(&c, Routes::PRIMARY, None);
        assert_eq!(t["metadata"]["name"], "podinfo");
        assert_eq!(t["metadata"]["labels"], json!({"team": "shop"}));
        assert!(t["metadata"]["ownerReferences"].is_null());
        assert_eq!(
            t["spec"],
            json!({"routes": [{"inheritablePathMatchers": true, "routeAction": {"multi": {"destinations": [
                dest("test-podinfo-primaryupstream-9898", 100),
                dest("test-podinfo-canaryupstream-9898", 0)]}}}]})
        );
        assert_eq!(routes_of(&c, &t), Routes::PRIMARY);
        for routes in [Routes::split(30), Routes::CANARY] {
            assert_eq!(routes_of(&c, &route_table(&c, routes, None)), routes);
        }
        // Flagger omits a weight of 0: still read as 0.
        let mut flaggers = t.clone();
        let canary_dest =
            &mut flaggers["spec"]["routes"][0]["routeAction"]["multi"]["destinations"][1];
        canary_dest.as_object_mut().unwrap().remove("weight");
        assert_eq!(routes_of(&c, &flaggers), Routes::PRIMARY);
        assert_eq!(routes_of(&c, &json!({"spec": {"routes": []}})).primary, 0);
    }

    #[test]
    fn ab_routes_match_all_of_an_entry_and_go_first() {
        let c = canary(
            json!({"analysis": {"stepWeight": null, "iterations": 2, "match": [
            {"headers": {"user-agent": {"prefix": "Mobile"}, "x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"suffix": "a.b"}, "x-re": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}},
             "queryParams": {"beta": {"prefix": "o+"}}}]}}),
        );
        let ab = Routes {
            ab_match: true,
            ..Routes::PRIMARY
        };
        let t = route_table(&c, ab, None);
        let routes = t["spec"]["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(
            routes[0]["matchers"],
            json!([{"headers": [{"name": "user-agent", "value": "Mobile.*", "regex": true},
                {"name": "x-canary", "value": "insider"}]}])
        );
        assert_eq!(
            routes[1]["matchers"],
            json!([{"headers": [{"name": "cookie", "value": ".*a\\.b", "regex": true},
                {"name": "x-re", "value": "^(.*?;)?(canary=always)(;.*)?$", "regex": true}],
                "queryParameters": [{"name": "beta", "value": "o\\+.*", "regex": true}]}])
        );
        assert_eq!(
            routes[0]["routeAction"]["multi"]["destinations"],
            json!([
                dest("test-podinfo-primaryupstream-9898", 0),
                dest("test-podinfo-canaryupstream-9898", 100)
            ])
        );
        assert!(routes[2]["matchers"].is_null());
        assert_eq!(routes_of(&c, &t), ab);
        // Without A/B routes, the same Canary reads as no match.
        assert_eq!(
            routes_of(&c, &route_table(&c, Routes::PRIMARY, None)),
            Routes::PRIMARY
        );
    }

    #[test]
    fn mirroring_shadows_its_percentage_to_the_canary_upstream() {
        let c = canary(json!({"analysis": {"mirror": true, "mirrorWeight": 20}}));
        let m = Routes {
            mirror: true,
            ..Routes::PRIMARY
        };
        let t = route_table(&c, m, None);
        assert_eq!(
            t["spec"]["routes"][0]["options"],
            json!({"shadowing": {"upstream": {"name": "test-podinfo-canaryupstream-9898", "namespace": "test"}, "percentage": 20}})
        );
        assert_eq!(routes_of(&c, &t), m);
    }

    #[test]
    fn timeout_retries_and_headers_are_route_options_on_every_route() {
        let c = canary(
            json!({"service": {"timeout": "1m", "retries": {"attempts": 3,
                "perTryTimeout": "500ms", "retryOn": "gateway-error, connect-failure"},
                "headers": {"request": {"add": {"x-a": "1"}, "set": {"x-b": "2"}, "remove": ["x-c"]},
                    "response": {"remove": ["server"]}}},
            "analysis": {"match": [{"headers": {"x": {"exact": "1"}}}]}}),
        );
        let ab = Routes {
            ab_match: true,
            ..Routes::PRIMARY
        };
        let t = route_table(&c, ab, None);
        let expected = json!({"timeout": "60s",
            "retries": {"numRetries": 3, "perTryTimeout": "0.5s", "retryOn": "gateway-error,connect-failure"},
            "headerManipulation": {
                "requestHeadersToAdd": [{"header": {"key": "x-a", "value": "1"}, "append": true},
                    {"header": {"key": "x-b", "value": "2"}, "append": false}],
                "requestHeadersToRemove": ["x-c"],
                "responseHeadersToRemove": ["server"]}});
        for r in t["spec"]["routes"].as_array().unwrap() {
            assert_eq!(r["options"], expected);
        }
        assert_eq!(routes_of(&c, &t), ab);
    }

    #[test]
    fn upstreams_point_at_the_services_and_copy_only_the_template_fields() {
        let c =
            canary(json!({"service": {"name": "web", "canary": {"labels": {"side": "canary"}}}}));
        let owner = json!({"kind": "Canary", "name": "podinfo"});
        let p = upstream(&c, false, None, owner.clone());
        assert_eq!(p["metadata"]["name"], "test-web-primaryupstream-9898");
        assert_eq!(p["metadata"]["ownerReferences"], json!([owner]));
        assert_eq!(
            p["spec"],
            json!({"kube": {"serviceName": "web-primary", "serviceNamespace": "test", "servicePort": 9898}})
        );
        let template = json!({"kube": {"serviceName": "other"}, "useHttp2": true, "httpProxyHostname": "h",
            "loadBalancerConfig": {"roundRobin": {}}, "healthChecks": [{}], "sslConfig": null});
        let up = upstream(&c, true, Some(&template), owner);
        assert_eq!(up["metadata"]["name"], "test-web-canaryupstream-9898");
        assert_eq!(up["metadata"]["labels"], json!({"side": "canary"}));
        assert_eq!(
            up["spec"],
            json!({"kube": {"serviceName": "web-canary", "serviceNamespace": "test", "servicePort": 9898},
                "useHttp2": true, "httpProxyHostname": "h", "loadBalancerConfig": {"roundRobin": {}}})
        );
    }
}

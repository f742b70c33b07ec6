//! The ApisixRoute Serin generates for `provider: apisix` (pure), named and shaped as Flagger's:
//! `<routeRef.name>-<apex>-canary` (apisix.apache.org/v2) holding a copy of the one `http[]` rule
//! of the user's ApisixRoute whose only backend is the apex Service, at priority 10000 so it wins
//! over the user's rule for the same requests, with two weighted backends `<apex>-primary` and
//! `<apex>-canary` (port, subset and resolveGranularity of the user's backend). For A/B testing
//! one more rule per `analysis.match` entry (priority 10001: ahead of the weighted one) sending
//! requests whose headers and query parameters all match to the canary, as `match.exprs`. While
//! mirroring (Flagger's APISIX router cannot), the weighted rule carries APISIX's `proxy-mirror`
//! plugin copying `mirrorWeight` percent (all when unset) to the canary Service. Also reads the
//! routes back (`routes_of`). Imports only `api` and the analysis' `Routes`.

use serde_json::{Value, json};

use crate::analysis::Routes;
use crate::api::{AnalysisMatch, Canary, HeaderMatch, StringMatch};

/// API version of the generated ApisixRoute (the CRD's only served version).
pub const API_VERSION: &str = "apisix.apache.org/v2";
/// Priority of the weighted rule (Flagger's): above any rule a user writes by hand.
pub const PRIORITY: i64 = 10000;
/// The APISIX plugin that copies requests to another host.
const MIRROR_PLUGIN: &str = "proxy-mirror";

/// Name of the generated ApisixRoute: `<routeRef.name>-<apex>-canary`, as Flagger names it.
pub fn route_name(canary: &Canary) -> String {
    let source = canary
        .spec
        .route_ref
        .as_ref()
        .map_or("", |r| r.name.as_str());
    format!("{source}-{}-canary", canary.apex_name())
}

fn names(canary: &Canary) -> (String, String) {
    let apex = canary.apex_name();
    (format!("{apex}-primary"), format!("{apex}-canary"))
}

/// The `http[]` rule of the user's ApisixRoute that Serin copies: the one whose only backend is
/// the apex Service. Err says, in one sentence, why there is none to take.
pub fn source_rule<'a>(canary: &Canary, route: &'a Value) -> Result<&'a Value, String> {
    let apex = canary.apex_name();
    let name = route["metadata"]["name"].as_str().unwrap_or_default();
    let rules: Vec<&Value> = route["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| match r["backends"].as_array() {
            Some(b) => b.len() == 1 && b[0]["serviceName"] == apex.as_str(),
            None => false,
        })
        .collect();
    match rules.as_slice() {
        [rule] => Ok(rule),
        [] => Err(format!(
            "ApisixRoute {name} has no http rule whose only backend is the Service {apex}; point one at {apex}"
        )),
        _ => Err(format!(
            "ApisixRoute {name} has {} http rules whose only backend is the Service {apex}; Serin splits one, so keep one",
            rules.len()
        )),
    }
}

/// A backend like the user's (port, subset, resolution) for another Service.
fn backend(source: &Value, name: &str, weight: Option<i32>) -> Value {
    let mut b = source["backends"][0].clone();
    b["serviceName"] = json!(name);
    match weight {
        Some(w) => b["weight"] = json!(w.max(0)),
        None => _ = b.as_object_mut().map(|o| o.remove("weight")),
    }
    b
}

/// `proxy-mirror` to the canary Service, `mirrorWeight` percent of the requests (all unset).
fn mirror_plugin(canary: &Canary, source: &Value) -> Value {
    let (_, canary_svc) = names(canary);
    let port = match &source["backends"][0]["servicePort"] {
        Value::Number(n) => n.to_string(),
        // A named port: the canary Service is Serin's and serves `service.port`.
        _ => canary.spec.service.port.to_string(),
    };
    let host = format!(
        "http://{canary_svc}.{}.svc.cluster.local:{port}",
        canary.namespace_or_default()
    );
    let mut config = json!({"host": host});
    if let Some(w) = canary
        .spec
        .analysis
        .mirror_weight
        .filter(|w| (1..100).contains(w))
    {
        config["sample_ratio"] = json!(f64::from(w) / 100.0);
    }
    json!({"name": MIRROR_PLUGIN, "enable": true, "config": config})
}

fn header_expr(scope: &str, name: &str, exact: Option<&String>, regex: Option<String>) -> Value {
    let (op, value) = match (exact, regex) {
        (Some(v), _) => ("Equal", v.clone()),
        (None, Some(r)) => ("RegexMatch", r),
        // The schema requires one of them; present-only reads as "any value".
        (None, None) => ("RegexMatch", ".*".to_string()),
    };
    json!({"subject": {"scope": scope, "name": name}, "op": op, "value": value})
}

fn header_regex(h: &HeaderMatch) -> Option<String> {
    match (&h.prefix, &h.suffix, &h.regex) {
        (Some(p), ..) => Some(format!("^{}", regex::escape(p))),
        (_, Some(s), _) => Some(format!("{}$", regex::escape(s))),
        (.., Some(r)) => Some(r.clone()),
        _ => None,
    }
}

fn query_regex(q: &StringMatch) -> Option<String> {
    match (&q.prefix, &q.regex) {
        (Some(p), _) => Some(format!("^{}", regex::escape(p))),
        (_, Some(r)) => Some(r.clone()),
        _ => None,
    }
}

/// The user's rule narrowed to one `analysis.match` entry (its conditions added to the rule's
/// own exprs), everything to the canary.
fn ab_rule(canary: &Canary, source: &Value, i: usize, m: &AnalysisMatch) -> Value {
    let (_, canary_svc) = names(canary);
    let mut rule = source.clone();
    let base = source["name"].as_str().unwrap_or("rule");
    rule["name"] = json!(format!("{base}-ab-{i}"));
    rule["priority"] = json!(PRIORITY + 1);
    let mut exprs: Vec<Value> = source["match"]["exprs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (name, h) in m.headers.iter().flatten() {
        exprs.push(header_expr(
            "Header",
            name,
            h.exact.as_ref(),
            header_regex(h),
        ));
    }
    for (name, q) in m.query_params.iter().flatten() {
        exprs.push(header_expr("Query", name, q.exact.as_ref(), query_regex(q)));
    }
    rule["match"]["exprs"] = json!(exprs);
    rule["backends"] = json!([backend(source, &canary_svc, None)]);
    rule
}

/// The ApisixRoute for these routes, from the user's rule (`source_rule`); `owner` is the Canary's
/// owner reference.
pub fn apisix_route(
    canary: &Canary,
    source: &Value,
    routes: Routes,
    owner: Option<Value>,
) -> Value {
    let (primary, canary_svc) = names(canary);
    let mut weighted = source.clone();
    weighted["priority"] = json!(PRIORITY);
    weighted["backends"] = json!([
        backend(source, &primary, Some(routes.primary)),
        backend(source, &canary_svc, Some(routes.canary)),
    ]);
    let plugins = weighted["plugins"].as_array().cloned().unwrap_or_default();
    let mut plugins: Vec<Value> = plugins
        .into_iter()
        .filter(|p| !(routes.mirror && p["name"] == MIRROR_PLUGIN))
        .collect();
    if routes.mirror {
        plugins.push(mirror_plugin(canary, source));
    }
    if let Some(w) = weighted.as_object_mut() {
        if plugins.is_empty() {
            w.remove("plugins");
        } else {
            w.insert("plugins".into(), json!(plugins));
        }
    }
    let mut http = Vec::new();
    if routes.ab_match {
        for (i, m) in canary.spec.analysis.r#match.iter().flatten().enumerate() {
            http.push(ab_rule(canary, source, i, m));
        }
    }
    http.push(weighted);
    let meta = canary.spec.service.apex.clone().unwrap_or_default();
    let mut metadata = json!({"name": route_name(canary), "labels": meta.labels.unwrap_or_default(),
        "annotations": meta.annotations.unwrap_or_default()});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({"apiVersion": API_VERSION, "kind": "ApisixRoute", "metadata": metadata,
        "spec": {"http": http}})
}

fn weight_of(rule: &Value, service: &str) -> Option<i32> {
    rule["backends"]
        .as_array()?
        .iter()
        .find(|b| b["serviceName"] == service)
        .map(|b| b["weight"].as_i64().unwrap_or(0).clamp(0, 100) as i32)
}

/// The routes an ApisixRoute of Serin's carries: the weights of the rule with both backends,
/// mirroring when that rule copies to the canary, A/B when a rule sends only to the canary. One
/// without the weighted rule reads as 0/0 (no write of Serin's leaves it so: the core repairs it).
pub fn routes_of(canary: &Canary, route: &Value) -> Routes {
    let (primary, canary_svc) = names(canary);
    let rules: Vec<&Value> = route["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let weighted = rules
        .iter()
        .find(|r| weight_of(r, &primary).is_some() && weight_of(r, &canary_svc).is_some());
    let Some(weighted) = weighted else {
        return Routes {
            primary: 0,
            ..Routes::PRIMARY
        };
    };
    let mirror_host = format!("http://{canary_svc}.");
    let mirror = weighted["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            p["name"] == MIRROR_PLUGIN
                && p["enable"] != false
                && p["config"]["host"]
                    .as_str()
                    .is_some_and(|h| h.starts_with(&mirror_host))
        });
    let ab_match = rules.iter().any(|r| {
        r["backends"].as_array().is_some_and(|b| b.len() == 1)
            && weight_of(r, &canary_svc).is_some()
    });
    Routes {
        baseline: 0,
        primary: weight_of(weighted, &primary).unwrap_or(0),
        canary: weight_of(weighted, &canary_svc).unwrap_or(0),
        mirror,
        ab_match,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(extra: Value) -> Canary {
        let mut spec = json!({"provider": "apisix",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "routeRef": {"apiVersion": API_VERSION, "kind": "ApisixRoute", "name": "podinfo"},
            "service": {"port": 9898}, "analysis": {"interval": "1m", "threshold": 2}});
        json_patch::merge(&mut spec, &extra);
        serde_json::from_value(json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"}, "spec": spec}))
        .unwrap()
    }

    fn user_route() -> Value {
        json!({"metadata": {"name": "podinfo"}, "spec": {"http": [
            {"name": "other", "match": {"paths": ["/x"]}, "backends": [{"serviceName": "x", "servicePort": 80}]},
            {"name": "method", "match": {"hosts": ["app.example.com"], "paths": ["/*"],
                "exprs": [{"subject": {"scope": "Header", "name": "x-env"}, "op": "Equal", "value": "prod"}]},
             "plugins": [{"name": "cors", "enable": true}],
             "backends": [{"serviceName": "podinfo", "servicePort": 9898, "resolveGranularity": "service"}]}
        ]}})
    }

    #[test]
    fn the_weighted_copy_of_the_users_rule_has_both_backends_like_the_users() {
        let c = canary(json!({}));
        let user = user_route();
        let rule = source_rule(&c, &user).unwrap();
        let routes = Routes {
            primary: 70,
            canary: 30,
            ..Routes::PRIMARY
        };
        let r = apisix_route(&c, rule, routes, None);
        assert_eq!(r["metadata"]["name"], "podinfo-podinfo-canary");
        let http = r["spec"]["http"].as_array().unwrap();
        assert_eq!(http.len(), 1);
        assert_eq!(http[0]["name"], "method");
        assert_eq!(http[0]["priority"], PRIORITY);
        assert_eq!(http[0]["match"], user["spec"]["http"][1]["match"]);
        assert_eq!(
            http[0]["plugins"],
            json!([{"name": "cors", "enable": true}])
        );
        assert_eq!(
            http[0]["backends"],
            json!([
                {"serviceName": "podinfo-primary", "servicePort": 9898, "resolveGranularity": "service", "weight": 70},
                {"serviceName": "podinfo-canary", "servicePort": 9898, "resolveGranularity": "service", "weight": 30}
            ])
        );
        assert_eq!(routes_of(&c, &r), routes);
    }

    #[test]
    fn a_route_without_one_rule_to_the_apex_says_why() {
        let c = canary(json!({}));
        let none = json!({"metadata": {"name": "web"}, "spec": {"http": []}});
        assert_eq!(
            source_rule(&c, &none).unwrap_err(),
            "ApisixRoute web has no http rule whose only backend is the Service podinfo; point one at podinfo"
        );
        let mut two = user_route();
        let dup = two["spec"]["http"][1].clone();
        two["spec"]["http"].as_array_mut().unwrap().push(dup);
        assert!(
            source_rule(&c, &two)
                .unwrap_err()
                .contains("has 2 http rules")
        );
    }

    #[test]
    fn ab_rules_add_the_match_to_the_users_exprs_and_go_first() {
        let c = canary(json!({"analysis": {"match": [
            {"headers": {"x-canary": {"exact": "insider"}, "user-agent": {"prefix": "Mozilla/5.0 ("}},
             "queryParams": {"beta": {"regex": "^(1|yes)$"}}}]}}));
        let user = user_route();
        let rule = source_rule(&c, &user).unwrap();
        let routes = Routes {
            ab_match: true,
            ..Routes::PRIMARY
        };
        let r = apisix_route(&c, rule, routes, None);
        let ab = &r["spec"]["http"][0];
        assert_eq!(ab["name"], "method-ab-0");
        assert_eq!(ab["priority"], PRIORITY + 1);
        assert_eq!(
            ab["match"]["exprs"],
            json!([
                {"subject": {"scope": "Header", "name": "x-env"}, "op": "Equal", "value": "prod"},
                {"subject": {"scope": "Header", "name": "user-agent"}, "op": "RegexMatch", "value": "^Mozilla/5\\.0 \\("},
                {"subject": {"scope": "Header", "name": "x-canary"}, "op": "Equal", "value": "insider"},
                {"subject": {"scope": "Query", "name": "beta"}, "op": "RegexMatch", "value": "^(1|yes)$"}
            ])
        );
        assert_eq!(
            ab["backends"],
            json!([{"serviceName": "podinfo-canary", "servicePort": 9898, "resolveGranularity": "service"}])
        );
        assert_eq!(routes_of(&c, &r), routes);
        let back = apisix_route(&c, rule, Routes::PRIMARY, None);
        assert_eq!(routes_of(&c, &back), Routes::PRIMARY);
    }

    #[test]
    fn mirroring_copies_mirror_weight_percent_to_the_canary_service() {
        let c = canary(json!({"analysis": {"mirror": true, "mirrorWeight": 25}}));
        let user = user_route();
        let rule = source_rule(&c, &user).unwrap();
        let routes = Routes {
            mirror: true,
            ..Routes::PRIMARY
        };
        let r = apisix_route(&c, rule, routes, None);
        let plugins = &r["spec"]["http"][0]["plugins"];
        assert_eq!(
            plugins[1],
            json!({"name": "proxy-mirror", "enable": true, "config": {
                "host": "http://podinfo-canary.test.svc.cluster.local:9898", "sample_ratio": 0.25}})
        );
        assert_eq!(routes_of(&c, &r), routes);
        let off = apisix_route(&c, rule, Routes::PRIMARY, None);
        assert!(!routes_of(&c, &off).mirror);
    }
}

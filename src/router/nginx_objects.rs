//! The canary Ingress Serin generates for `provider: nginx` (pure), named and shaped as Flagger's:
//! `<ingressRef>-canary`, a copy of the user's Ingress whose backends naming the apex Service name
//! `<apex>-canary` instead, with the user's labels and annotations (less every
//! `<prefix>/canary*` key and kubectl's last-applied record), Flux's two "leave it alone"
//! annotations, and the ingress-nginx canary annotations for the routes: `canary: "true"`,
//! `canary-weight` (scaled to `canary-weight-total` when the user's Ingress sets one above 100)
//! and, for A/B testing, `canary-by-header` (+ `-value` or `-pattern`) and `canary-by-cookie`.
//! Also reads the routes back (`routes_of`) and finds canary keys Serin did not write
//! (`stale_keys`), which are removed by key. Which matches ingress-nginx can express is checked
//! on the spec, before anything is written (`api::validate`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{FLUX_ANNOTATIONS, LAST_APPLIED, ingress_services_mut};
use crate::analysis::Routes;
use crate::api::{Canary, HeaderMatch};

/// ingress-nginx's default annotation prefix (its `--annotations-prefix`).
pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The name of the canary Ingress for the user's Ingress `ingress`.
pub fn canary_ingress_name(ingress: &str) -> String {
    format!("{ingress}-canary")
}

fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}/{name}")
}

fn is_canary_key(prefix: &str, k: &str) -> bool {
    k.starts_with(&key(prefix, "canary"))
}

/// The `canary-weight-total` the user set on their Ingress; 100 otherwise (ingress-nginx reads
/// a total only above 100).
pub fn weight_total(user: &Value, prefix: &str) -> i64 {
    user["metadata"]["annotations"][key(prefix, "canary-weight-total")]
        .as_str()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|t| *t > 100)
        .unwrap_or(100)
}

/// A header condition as ingress-nginx's pattern (a PCRE it searches for, so anchored here:
/// `regex` matches the whole value, as in the other routers).
fn pattern(h: &HeaderMatch) -> Option<String> {
    match (&h.prefix, &h.suffix, &h.regex) {
        (Some(p), ..) => Some(format!("^{}", regex::escape(p))),
        (_, Some(s), _) => Some(format!("{}$", regex::escape(s))),
        (.., Some(r)) => Some(format!("^({r})$")),
        _ => None,
    }
}

/// The A/B annotations (name without prefix, value) for `analysis.match`: the `cookie` header's
/// exact value names the cookie (requests carrying it set to `always` go to the canary, as in
/// Flagger); any other header becomes `canary-by-header` with an exact value or a pattern.
pub fn match_annotations(canary: &Canary) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let matches = canary.spec.analysis.r#match.iter().flatten();
    for (name, h) in matches.flat_map(|m| m.headers.iter().flatten()) {
        if name.eq_ignore_ascii_case("cookie") {
            if let Some(cookie) = &h.exact {
                out.push(("canary-by-cookie", cookie.clone()));
            }
            continue;
        }
        out.push(("canary-by-header", name.clone()));
        match (&h.exact, pattern(h)) {
            (Some(v), _) => out.push(("canary-by-header-value", v.clone())),
            (None, Some(p)) => out.push(("canary-by-header-pattern", p)),
            _ => {}
        }
    }
    out
}

/// The canary annotations for these routes.
pub fn canary_annotations(
    canary: &Canary,
    prefix: &str,
    routes: Routes,
    total: i64,
) -> BTreeMap<String, String> {
    let weight = (i64::from(routes.canary.clamp(0, 100)) * total + 50) / 100;
    let mut out = BTreeMap::from([
        (key(prefix, "canary"), "true".to_string()),
        (key(prefix, "canary-weight"), weight.to_string()),
    ]);
    if total != 100 {
        out.insert(key(prefix, "canary-weight-total"), total.to_string());
    }
    if routes.ab_match {
        for (name, value) in match_annotations(canary) {
            out.insert(key(prefix, name), value);
        }
    }
    out
}

/// The canary Ingress for these routes, from the user's Ingress `user`; `owner` is the Canary's
/// owner reference (None for a canary Ingress that was there before the Canary). Err when no
/// backend of the user's Ingress is the apex Service.
pub fn canary_ingress(
    canary: &Canary,
    user: &Value,
    prefix: &str,
    routes: Routes,
    owner: Option<Value>,
) -> Result<Value, String> {
    let apex = canary.apex_name();
    let mut spec = user["spec"].clone();
    let mut found = false;
    for svc in ingress_services_mut(&mut spec) {
        if svc["name"] == apex.as_str() {
            svc["name"] = json!(format!("{apex}-canary"));
            found = true;
        }
    }
    let name = user["metadata"]["name"].as_str().unwrap_or_default();
    if !found {
        return Err(format!(
            "spec.ingressRef: Ingress {name} has no backend that is the Service {apex}"
        ));
    }
    let mut annotations: BTreeMap<String, String> = user["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !is_canary_key(prefix, k) && k.as_str() != LAST_APPLIED)
        .filter(|(k, _)| k.as_str() != super::ORIGINAL_SPEC)
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    for (k, v) in FLUX_ANNOTATIONS {
        annotations.insert(k.into(), v.into());
    }
    annotations.extend(canary_annotations(
        canary,
        prefix,
        routes,
        weight_total(user, prefix),
    ));
    let mut metadata = json!({"name": canary_ingress_name(name), "annotations": annotations});
    if let Some(labels) = user["metadata"]["labels"].as_object() {
        metadata["labels"] = json!(labels);
    }
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    Ok(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}),
    )
}

/// The routes a canary Ingress carries. Without `canary: "true"` (or with a weight that is not
/// an integer) the Ingress is not a working canary: 0/0, which the core sees as needing repair.
pub fn routes_of(ingress: &Value, prefix: &str) -> Routes {
    let annotations = &ingress["metadata"]["annotations"];
    let get = |name: &str| annotations[key(prefix, name)].as_str();
    let broken = Routes {
        baseline: 0,
        primary: 0,
        canary: 0,
        mirror: false,
        ab_match: false,
    };
    if get("canary") != Some("true") {
        return broken;
    }
    let total = weight_total(ingress, prefix);
    let Some(weight) = get("canary-weight").map_or(Some(0), |w| w.trim().parse::<i64>().ok())
    else {
        return broken;
    };
    let canary = ((weight.clamp(0, total) * 100 + total / 2) / total) as i32;
    Routes {
        baseline: 0,
        primary: 100 - canary,
        canary,
        mirror: false,
        ab_match: get("canary-by-header").is_some() || get("canary-by-cookie").is_some(),
    }
}

/// Canary annotations (`<prefix>/canary*`) on `ingress` that `desired` does not carry, with their
/// values: keys someone else added, which server-side apply leaves alone. They are removed by
/// key (Flagger filters by value and so keeps a stale `canary-by-*` key from an earlier run).
pub fn stale_keys(ingress: &Value, desired: &Value, prefix: &str) -> Vec<(String, String)> {
    ingress["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| is_canary_key(prefix, k))
        .filter(|(k, _)| desired["metadata"]["annotations"].get(k.as_str()).is_none())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: Value) -> Canary {
        let mut c = json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
            "spec": {"provider": "nginx", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web"},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 2, "iterations": 2}}});
        json_patch::merge(&mut c["spec"]["analysis"], &analysis);
        serde_json::from_value(c).unwrap()
    }

    fn user(extra: Value) -> Value {
        let mut u = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "labels": {"app": "podinfo"}, "annotations": {
                "kubernetes.io/ingress.class": "nginx", LAST_APPLIED: "{}",
                "nginx.ingress.kubernetes.io/canary-by-header": "stale"}},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"path": "/other", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}});
        json_patch::merge(&mut u, &extra);
        u
    }

    const P: &str = DEFAULT_PREFIX;

    #[test]
    fn the_copy_points_at_the_canary_service_and_carries_the_weight() {
        let c = canary(json!({}));
        let obj = canary_ingress(&c, &user(json!({})), P, Routes::split(30), None).unwrap();
        assert_eq!(obj["metadata"]["name"], "web-canary");
        assert_eq!(obj["metadata"]["labels"], json!({"app": "podinfo"}));
        assert_eq!(
            obj["metadata"]["annotations"],
            json!({"kubernetes.io/ingress.class": "nginx",
                "kustomize.toolkit.fluxcd.io/reconcile": "disabled", "helm.toolkit.fluxcd.io/driftDetection": "disabled",
                "nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "30"})
        );
        let paths = &obj["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(paths[0]["backend"]["service"]["name"], "podinfo-canary");
        assert_eq!(paths[1]["backend"]["service"]["name"], "other");
        assert_eq!(routes_of(&obj, P), Routes::split(30));
        assert!(obj["metadata"]["ownerReferences"].is_null());
    }

    #[test]
    fn a_user_ingress_without_the_apex_is_refused() {
        let u = user(json!({"spec": {"rules": [{"http": {"paths": []}}]}}));
        let err = canary_ingress(&canary(json!({})), &u, P, Routes::PRIMARY, None).unwrap_err();
        assert!(
            err.contains("no backend that is the Service podinfo"),
            "{err}"
        );
    }

    #[test]
    fn ab_annotations_follow_flaggers_mapping_and_read_back() {
        let c = canary(
            json!({"match": [{"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"exact": "canary"}}}]}),
        );
        let ab = Routes {
            ab_match: true,
            ..Routes::PRIMARY
        };
        let got = canary_annotations(&c, "custom.io", ab, 100);
        let want: BTreeMap<String, String> = [
            ("custom.io/canary", "true"),
            ("custom.io/canary-weight", "0"),
            ("custom.io/canary-by-header", "x-canary"),
            ("custom.io/canary-by-header-value", "insider"),
            ("custom.io/canary-by-cookie", "canary"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        let obj = canary_ingress(&c, &user(json!({})), "custom.io", ab, None).unwrap();
        assert_eq!(routes_of(&obj, "custom.io"), ab);
        let prefix = canary(json!({"match": [{"headers": {"x-user": {"prefix": "a.b"}}}]}));
        assert_eq!(
            match_annotations(&prefix),
            [
                ("canary-by-header", "x-user".to_string()),
                ("canary-by-header-pattern", "^a\\.b".to_string())
            ]
        );
        let re = canary(json!({"match": [{"headers": {"x-user": {"regex": "(a|b)"}}}]}));
        assert_eq!(match_annotations(&re)[1].1, "^((a|b))$");
    }

    #[test]
    fn a_weight_total_scales_the_weight_both_ways() {
        let u = user(
            json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight-total": "1000"}}}),
        );
        let c = canary(json!({}));
        for w in 0..=100 {
            let obj = canary_ingress(&c, &u, P, Routes::split(w), None).unwrap();
            assert_eq!(routes_of(&obj, P), Routes::split(w), "{w}");
        }
        let obj = canary_ingress(&c, &u, P, Routes::split(17), None).unwrap();
        let a = &obj["metadata"]["annotations"];
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "170");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight-total"], "1000");
    }

    #[test]
    fn a_broken_canary_reads_as_zero_and_stale_keys_are_found_by_key() {
        let mut obj = canary_ingress(
            &canary(json!({})),
            &user(json!({})),
            P,
            Routes::PRIMARY,
            None,
        )
        .unwrap();
        let desired = obj.clone();
        obj["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-cookie"] =
            json!("old");
        assert_eq!(
            stale_keys(&obj, &desired, P),
            [(
                "nginx.ingress.kubernetes.io/canary-by-cookie".to_string(),
                "old".to_string()
            )]
        );
        assert!(routes_of(&obj, P).ab_match);
        obj["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] = json!("false");
        assert_eq!(routes_of(&obj, P).primary + routes_of(&obj, P).canary, 0);
    }
}

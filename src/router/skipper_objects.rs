//! The canary Ingress Serin generates for `provider: skipper` (pure), named and shaped as
//! Flagger's: `<ingressRef>-canary`, a copy of the user's Ingress in which every path whose
//! backend is the apex Service goes to `<apex>-primary`, with a copy of that path to
//! `<apex>-canary` appended to the same rule; the user's labels and annotations, Flux's two
//! "leave it alone" annotations, `zalando.org/backend-weights` (`{"<apex>-canary": c,
//! "<apex>-primary": p}`) and `zalando.org/skipper-predicate`: `Weight(100)` ahead of the user's
//! predicates while the canary takes traffic (so these routes win over the user's Ingress, which
//! keeps sending to the apex), `False()` instead at weight 0 (the copy's routes are off and the
//! user's Ingress serves everything). Also reads the routes back (`routes_of`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{FLUX_ANNOTATIONS, LAST_APPLIED};
use crate::analysis::Routes;
use crate::api::Canary;

/// Skipper's weights of the backends of one Ingress (relative, per path).
pub const BACKEND_WEIGHTS: &str = "zalando.org/backend-weights";
/// Extra predicates of every route Skipper builds from an Ingress.
pub const PREDICATE: &str = "zalando.org/skipper-predicate";

const ON: &str = "Weight(100)";
const OFF: &str = "False()";

fn predicates(value: &str) -> Vec<String> {
    value
        .split("&&")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// The predicate annotation for a canary weight: ours first, then the user's (without any
/// `Weight(100)` or `False()` of theirs, as Flagger does, so they never pile up).
pub fn predicate(user: &Value, canary_weight: i32) -> String {
    let theirs = user["metadata"]["annotations"][PREDICATE]
        .as_str()
        .unwrap_or_default();
    let mut out = vec![if canary_weight > 0 { ON } else { OFF }.to_string()];
    out.extend(
        predicates(theirs)
            .into_iter()
            .filter(|p| p != ON && p != OFF),
    );
    out.join(" && ")
}

/// The backend-weights annotation for these routes.
pub fn backend_weights(canary: &Canary, routes: Routes) -> String {
    let apex = canary.apex_name();
    let w = BTreeMap::from([
        (format!("{apex}-canary"), routes.canary.clamp(0, 100)),
        (format!("{apex}-primary"), 100 - routes.canary.clamp(0, 100)),
    ]);
    json!(w).to_string()
}

/// The rules of the copy: each path to the apex goes to the primary, and a copy of it to the
/// canary is appended to its rule. Err when no path's backend is the apex.
fn split_rules(canary: &Canary, spec: &mut Value) -> Result<(), String> {
    let apex = canary.apex_name();
    let mut found = false;
    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
        let Some(paths) = rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let mut to_canary = Vec::new();
        for path in paths.iter_mut() {
            if path["backend"]["service"]["name"] == apex.as_str() {
                path["backend"]["service"]["name"] = json!(format!("{apex}-primary"));
                let mut copy = path.clone();
                copy["backend"]["service"]["name"] = json!(format!("{apex}-canary"));
                to_canary.push(copy);
            }
        }
        found |= !to_canary.is_empty();
        paths.extend(to_canary);
    }
    if found {
        Ok(())
    } else {
        Err(format!(
            "spec.ingressRef: no path of the Ingress has the Service {apex} as its backend"
        ))
    }
}

/// The canary Ingress for these routes, from the user's Ingress `user`; `owner` is the Canary's
/// owner reference (None for a canary Ingress that was there before the Canary).
pub fn canary_ingress(
    canary: &Canary,
    user: &Value,
    routes: Routes,
    owner: Option<Value>,
) -> Result<Value, String> {
    let mut spec = user["spec"].clone();
    split_rules(canary, &mut spec)?;
    let name = user["metadata"]["name"].as_str().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = user["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| ![LAST_APPLIED, super::ORIGINAL_SPEC].contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    for (k, v) in FLUX_ANNOTATIONS {
        annotations.insert(k.into(), v.into());
    }
    annotations.insert(BACKEND_WEIGHTS.into(), backend_weights(canary, routes));
    annotations.insert(PREDICATE.into(), predicate(user, routes.canary));
    let mut metadata = json!({"name": format!("{name}-canary"), "annotations": annotations});
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

/// The routes a canary Ingress carries. Weights missing or unreadable, or a predicate that does
/// not match them (`False()` exactly when the canary has no weight), read as 0/0: not what any
/// write of Serin's leaves, so the core repairs it.
pub fn routes_of(canary: &Canary, ingress: &Value) -> Routes {
    let broken = Routes {
        baseline: 0,
        primary: 0,
        canary: 0,
        mirror: false,
        ab_match: false,
    };
    let annotations = &ingress["metadata"]["annotations"];
    let Some(weights) = annotations[BACKEND_WEIGHTS]
        .as_str()
        .and_then(|w| serde_json::from_str::<BTreeMap<String, f64>>(w).ok())
    else {
        return broken;
    };
    let apex = canary.apex_name();
    let (Some(p), Some(c)) = (
        weights.get(&format!("{apex}-primary")),
        weights.get(&format!("{apex}-canary")),
    ) else {
        return broken;
    };
    if *p < 0.0 || *c < 0.0 || p + c <= 0.0 {
        return broken;
    }
    let share = (c * 100.0 / (p + c)).round() as i32;
    let preds = predicates(annotations[PREDICATE].as_str().unwrap_or_default());
    let (on, off) = (
        preds.iter().any(|x| x == ON),
        preds.iter().any(|x| x == OFF),
    );
    if (share > 0) != on || (share == 0) != off {
        return broken;
    }
    Routes::split(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Canary {
        serde_json::from_value(json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"provider": "skipper", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web"},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10}}}))
        .unwrap()
    }

    fn user() -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "annotations": {PREDICATE: "Weight(100) && Header(\"X-Env\", \"prod\")", "zalando.org/skipper-filter": "compress()"}},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"path": "/s", "pathType": "Prefix", "backend": {"service": {"name": "static", "port": {"number": 80}}}}]}}]}})
    }

    #[test]
    fn the_copy_splits_each_apex_path_and_carries_weights_and_predicates() {
        let obj = canary_ingress(&canary(), &user(), Routes::split(10), None).unwrap();
        assert_eq!(obj["metadata"]["name"], "web-canary");
        let paths = obj["spec"]["rules"][0]["http"]["paths"].as_array().unwrap();
        let names: Vec<&str> = paths
            .iter()
            .map(|p| p["backend"]["service"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["podinfo-primary", "static", "podinfo-canary"]);
        assert_eq!(paths[2]["path"], "/");
        let a = &obj["metadata"]["annotations"];
        assert_eq!(
            a[BACKEND_WEIGHTS],
            r#"{"podinfo-canary":10,"podinfo-primary":90}"#
        );
        assert_eq!(a[PREDICATE], r#"Weight(100) && Header("X-Env", "prod")"#);
        assert_eq!(a["zalando.org/skipper-filter"], "compress()");
        assert_eq!(routes_of(&canary(), &obj), Routes::split(10));
    }

    #[test]
    fn weight_zero_turns_the_copy_off_and_reads_back() {
        let obj = canary_ingress(&canary(), &user(), Routes::PRIMARY, None).unwrap();
        let a = &obj["metadata"]["annotations"];
        assert_eq!(
            a[BACKEND_WEIGHTS],
            r#"{"podinfo-canary":0,"podinfo-primary":100}"#
        );
        assert_eq!(a[PREDICATE], r#"False() && Header("X-Env", "prod")"#);
        assert_eq!(routes_of(&canary(), &obj), Routes::PRIMARY);
        let all = canary_ingress(&canary(), &user(), Routes::CANARY, None).unwrap();
        assert_eq!(routes_of(&canary(), &all), Routes::CANARY);
    }

    #[test]
    fn edits_that_no_write_of_serins_leaves_read_as_broken() {
        let mut obj = canary_ingress(&canary(), &user(), Routes::split(30), None).unwrap();
        obj["metadata"]["annotations"][PREDICATE] = json!("False() && Weight(100)");
        assert_eq!(routes_of(&canary(), &obj).canary, 0);
        obj["metadata"]["annotations"][BACKEND_WEIGHTS] = json!(r#"{"podinfo-primary":100}"#);
        assert_eq!(routes_of(&canary(), &obj).primary, 0);
        let none = json!({"metadata": {"annotations": {}}});
        assert_eq!(routes_of(&canary(), &none).primary, 0);
        let mut u = user();
        u["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("x");
        assert!(canary_ingress(&canary(), &u, Routes::PRIMARY, None).is_err());
    }
}

//! The TraefikService Serin generates for `provider: traefik` (pure), named and shaped as
//! Flagger's: `<apex>` (traefik.io/v1alpha1) with the labels and annotations of
//! `service.apex`, a weighted round robin over `<apex>-primary` and, while it has weight,
//! `<apex>-canary` (the user's IngressRoute sends to it as a `TraefikService`). While mirroring
//! (which Flagger's Traefik router does not do) it is a mirroring service instead: everything to
//! the primary, `mirrorWeight` percent (all when unset) copied to the canary. Also reads the
//! routes back (`routes_of`).

use serde_json::{Value, json};

use crate::analysis::Routes;
use crate::api::Canary;

/// API version of the generated TraefikService (Traefik's only served version).
pub const API_VERSION: &str = "traefik.io/v1alpha1";

fn names(canary: &Canary) -> (String, String) {
    let apex = canary.apex_name();
    (format!("{apex}-primary"), format!("{apex}-canary"))
}

/// The TraefikService for these routes; `owner` is the Canary's owner reference (None for one the
/// user had, which Serin takes over).
pub fn traefik_service(canary: &Canary, routes: Routes, owner: Option<Value>) -> Value {
    let (primary, canary_svc) = names(canary);
    let (ns, port) = (canary.namespace_or_default(), canary.spec.service.port);
    let backend = |name: &str| json!({"name": name, "namespace": ns, "port": port});
    let spec = if routes.mirror {
        let mut mirror = backend(&canary_svc);
        mirror["percent"] = json!(
            canary
                .spec
                .analysis
                .mirror_weight
                .unwrap_or(100)
                .clamp(0, 100)
        );
        let mut main = backend(&primary);
        main["mirrors"] = json!([mirror]);
        json!({"mirroring": main})
    } else {
        let mut services = Vec::new();
        for (name, weight) in [(&primary, routes.primary), (&canary_svc, routes.canary)] {
            // Flagger lists the canary only while it has weight.
            if weight > 0 || name == &primary {
                let mut s = backend(name);
                s["weight"] = json!(weight.max(0));
                services.push(s);
            }
        }
        json!({"weighted": {"services": services}})
    };
    let meta = canary.spec.service.apex.clone().unwrap_or_default();
    let mut metadata = json!({"name": canary.apex_name(), "labels": meta.labels.unwrap_or_default(),
        "annotations": meta.annotations.unwrap_or_default()});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({"apiVersion": API_VERSION, "kind": "TraefikService", "metadata": metadata, "spec": spec})
}

/// The routes a TraefikService carries: the weights of its weighted services (a canary that is
/// not listed has none), or mirroring to the canary. One with neither, or without the primary,
/// reads as 0/0 (no write of Serin's leaves it so: the core repairs it).
pub fn routes_of(canary: &Canary, svc: &Value) -> Routes {
    let (primary, canary_svc) = names(canary);
    let spec = &svc["spec"];
    let mirroring = &spec["mirroring"];
    if mirroring["name"] == primary.as_str()
        && mirroring["mirrors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["name"] == canary_svc.as_str())
    {
        return Routes {
            mirror: true,
            ..Routes::PRIMARY
        };
    }
    let services = spec["weighted"]["services"].as_array();
    let weight = |name: &str| {
        services
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .map(|s| s["weight"].as_i64().unwrap_or(1) as i32)
    };
    match weight(&primary) {
        Some(p) => Routes {
            baseline: 0,
            primary: p,
            canary: weight(&canary_svc).unwrap_or(0),
            mirror: false,
            ab_match: false,
        },
        None => Routes {
            baseline: 0,
            primary: 0,
            canary: 0,
            mirror: false,
            ab_match: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Canary {
        serde_json::from_value(json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"provider": "traefik", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80, "apex": {"labels": {"team": "shop"}}},
                "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10, "mirror": true, "mirrorWeight": 20}}}))
        .unwrap()
    }

    #[test]
    fn weighted_as_flagger_writes_it_and_read_back() {
        let c = canary();
        let idle = traefik_service(&c, Routes::PRIMARY, None);
        assert_eq!(
            idle["spec"],
            json!({"weighted": {"services": [{"name": "podinfo-primary", "namespace": "test", "port": 80, "weight": 100}]}})
        );
        assert_eq!(idle["metadata"]["labels"], json!({"team": "shop"}));
        assert_eq!(routes_of(&c, &idle), Routes::PRIMARY);
        let step = traefik_service(&c, Routes::split(30), None);
        assert_eq!(step["spec"]["weighted"]["services"][1]["weight"], 30);
        assert_eq!(routes_of(&c, &step), Routes::split(30));
        let all = traefik_service(&c, Routes::CANARY, None);
        assert_eq!(routes_of(&c, &all), Routes::CANARY);
    }

    #[test]
    fn mirroring_copies_a_share_to_the_canary() {
        let c = canary();
        let m = Routes {
            mirror: true,
            ..Routes::PRIMARY
        };
        let svc = traefik_service(&c, m, None);
        assert_eq!(
            svc["spec"],
            json!({"mirroring": {"name": "podinfo-primary", "namespace": "test", "port": 80,
                "mirrors": [{"name": "podinfo-canary", "namespace": "test", "port": 80, "percent": 20}]}})
        );
        assert_eq!(routes_of(&c, &svc), m);
        assert_eq!(routes_of(&c, &json!({"spec": {}})).primary, 0);
    }
}

//! Every Ingress the nginx (and skipper) routers generate, for every example Canary and every
//! strategy the router can express, checked as the API server and the ingress controller would:
//! Ingress is a built-in kind with no CRD, so the object must round-trip through k8s-openapi's
//! `networking/v1` Ingress without losing a field, its name and annotation keys must be valid,
//! and the canary annotation values must pass ingress-nginx's own value checks (it drops a value
//! that does not, silently turning an A/B test into no test).

mod common;

use common::schemas::{example_canaries, owner};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};
use serin::analysis::Routes;
use serin::api::Canary;
use serin::router::nginx_objects::{DEFAULT_PREFIX, canary_ingress, routes_of};

/// The user's Ingress of a Canary: `/` to the apex Service, `/static` elsewhere, TLS, a class.
fn user_ingress(canary: &Canary) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"},
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m", "nginx.ingress.kubernetes.io/canary-weight": "7"}},
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["app.example.com"], "secretName": "tls"}],
            "rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": canary.apex_name(), "port": {"number": 80}}}},
                {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "static", "port": {"name": "http"}}}}]}}]}})
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// What kube-apiserver checks of an Ingress's metadata and what deserialising it keeps.
fn assert_valid_ingress(obj: &Value, what: &str) {
    let typed: Ingress = serde_json::from_value(obj.clone())
        .unwrap_or_else(|e| panic!("{what}: not an Ingress: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, obj, "{what}: fields an Ingress does not have");
    assert!(
        dns_subdomain(obj["metadata"]["name"].as_str().unwrap()),
        "{what}: name"
    );
    for (k, v) in obj["metadata"]["annotations"].as_object().unwrap() {
        let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
        assert!(
            prefix.is_empty() || dns_subdomain(prefix),
            "{what}: key {k}"
        );
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{what}: key {k}"
        );
        assert!(v.is_string(), "{what}: {k} is not a string");
    }
    let spec = typed.spec.unwrap();
    for rule in spec.rules.unwrap_or_default() {
        for path in rule.http.unwrap().paths {
            let svc = path.backend.service.unwrap();
            assert!(dns_subdomain(&svc.name), "{what}: backend {}", svc.name);
        }
    }
}

/// ingress-nginx's value checks of the canary annotations (its parser drops what fails them).
fn assert_nginx_accepts(obj: &Value, what: &str) {
    let plain = |v: &str| {
        v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/:".contains(c))
    };
    for (k, v) in obj["metadata"]["annotations"].as_object().unwrap() {
        let Some(name) = k.strip_prefix(&format!("{DEFAULT_PREFIX}/")) else {
            continue;
        };
        let v = v.as_str().unwrap();
        let ok = match name {
            "canary" => v == "true",
            "canary-weight" | "canary-weight-total" => v.parse::<u32>().is_ok(),
            "canary-by-header" | "canary-by-header-value" | "canary-by-cookie" => plain(v),
            "canary-by-header-pattern" => v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~/:^$[](){}*+?|&=\\".contains(c)),
            _ => !name.starts_with("canary"),
        };
        assert!(ok, "{what}: {k}: {v:?}");
    }
}

#[test]
fn generated_nginx_canary_ingresses_are_valid_ingresses_ingress_nginx_accepts() {
    let ab = Routes {
        ab_match: true,
        ..Routes::PRIMARY
    };
    let mut checked_ab = 0;
    for (file, canary) in example_canaries("nginx") {
        let user = user_ingress(&canary);
        let expressible = serin::api::validate::validate_for(&canary, "nginx")
            .err()
            .unwrap_or_default()
            .iter()
            .all(|e| !e.path.starts_with("spec.analysis.match"));
        for (strategy, routes) in [
            ("primary", Routes::PRIMARY),
            ("step", Routes::split(30)),
            ("canary", Routes::CANARY),
            ("ab", ab),
        ] {
            if strategy == "ab" && !expressible {
                continue; // refused by validation before anything is written
            }
            let what = format!("{file} {strategy}");
            let obj = canary_ingress(&canary, &user, DEFAULT_PREFIX, routes, Some(owner()))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_valid_ingress(&obj, &what);
            assert_nginx_accepts(&obj, &what);
            let has_match = canary.spec.analysis.r#match.iter().flatten().count() > 0;
            let expected = Routes {
                ab_match: routes.ab_match && has_match,
                ..routes
            };
            assert_eq!(routes_of(&obj, DEFAULT_PREFIX), expected, "{what}");
            checked_ab += usize::from(strategy == "ab" && has_match);
        }
    }
    assert!(checked_ab >= 1, "an example with an expressible A/B match");
}

#[test]
fn mirroring_on_nginx_is_refused_before_anything_is_built() {
    for (file, mut canary) in example_canaries("nginx") {
        canary.spec.analysis.mirror = Some(true);
        let errs = serin::api::validate::validate_for(&canary, "nginx").unwrap_err();
        assert!(
            errs.iter().any(|e| e.path == "spec.analysis.mirror"),
            "{file}: {errs:?}"
        );
    }
}

#[test]
fn generated_skipper_canary_ingresses_are_valid_ingresses_with_readable_weights() {
    use serin::router::skipper_objects::{BACKEND_WEIGHTS, PREDICATE, canary_ingress, routes_of};
    for (file, canary) in example_canaries("skipper") {
        let user = user_ingress(&canary);
        for routes in [Routes::PRIMARY, Routes::split(35), Routes::CANARY] {
            let what = format!("{file} {}", routes.canary);
            let obj = canary_ingress(&canary, &user, routes, Some(owner()))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_valid_ingress(&obj, &what);
            let a = &obj["metadata"]["annotations"];
            let weights: std::collections::BTreeMap<String, i64> =
                serde_json::from_str(a[BACKEND_WEIGHTS].as_str().unwrap()).unwrap();
            assert_eq!(weights.values().sum::<i64>(), 100, "{what}");
            assert!(a[PREDICATE].as_str().unwrap().ends_with(")"), "{what}");
            assert_eq!(routes_of(&canary, &obj), routes, "{what}");
        }
    }
}

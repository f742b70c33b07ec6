//! Every object the gateway routers (contour, traefik) generate, for every example Canary and
//! every strategy the router can express, validated against the official CRD schemas in
//! ../shared/crds (structural checks and CEL rules, as kube-apiserver would), and read back.

mod common;

use common::schemas::{assert_valid, crd_schema, example_canaries, owner, strategies};
use serin::analysis::Routes;
use serin::api::Canary;

/// Whether the router can express the Canary's A/B match (else validation refuses it first).
fn match_expressible(canary: &Canary, provider: &str) -> bool {
    serin::api::validate::validate_for(canary, provider)
        .err()
        .unwrap_or_default()
        .iter()
        .all(|e| !e.path.starts_with("spec.analysis.match"))
}

#[test]
fn generated_httpproxies_satisfy_the_contour_crd() {
    use serin::router::contour_objects::{http_proxy, routes_of};
    let schema = crd_schema("contour/httpproxies.projectcontour.io.yaml", "v1");
    let mut ab_checked = 0;
    for (file, canary) in example_canaries("contour") {
        let has_match = canary.spec.analysis.r#match.iter().flatten().count() > 0;
        for (strategy, routes) in strategies() {
            if strategy == "ab" && has_match && !match_expressible(&canary, "contour") {
                continue;
            }
            let what = format!("{file} {strategy}");
            for owned in [true, false] {
                let obj = http_proxy(&canary, routes, owned.then(owner));
                assert_valid(&schema, &obj, &what);
            }
            let obj = http_proxy(&canary, routes, Some(owner()));
            let expected = Routes {
                ab_match: routes.ab_match && has_match,
                ..routes
            };
            assert_eq!(routes_of(&canary, &obj), expected, "{what}: read back");
            ab_checked += usize::from(strategy == "ab" && has_match);
        }
    }
    assert!(ab_checked >= 2, "A/B examples checked: {ab_checked}");
}

#[test]
fn generated_traefikservices_satisfy_the_traefik_crd() {
    use serin::router::traefik_objects::{routes_of, traefik_service};
    let schema = crd_schema("traefik/traefik.io_traefikservices.yaml", "v1alpha1");
    for (file, canary) in example_canaries("traefik") {
        for (strategy, routes) in strategies() {
            if strategy == "ab" {
                continue; // A/B is refused by validation: a TraefikService matches nothing
            }
            let what = format!("{file} {strategy}");
            for owned in [true, false] {
                let obj = traefik_service(&canary, routes, owned.then(owner));
                assert_valid(&schema, &obj, &what);
            }
            let obj = traefik_service(&canary, routes, Some(owner()));
            assert_eq!(routes_of(&canary, &obj), routes, "{what}: read back");
        }
    }
}

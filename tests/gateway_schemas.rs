//! Every object the gateway and mesh routers (contour, traefik, apisix, kuma, gloo) generate, for every example Canary and
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

/// The user's ApisixRoutes Serin copies from: the one in examples/apisix.yaml, and one with
/// expressions of its own, a named port and a mirror plugin of the user's.
fn user_apisix_routes() -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/apisix.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = serin::manifest::parse_documents(&text).unwrap();
    let example = docs
        .into_iter()
        .find(|d| d["kind"] == "ApisixRoute")
        .unwrap();
    let rich = serde_json::json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
    "metadata": {"name": "podinfo"}, "spec": {"http": [
        {"name": "static", "match": {"paths": ["/static/*"]},
         "backends": [{"serviceName": "cdn", "servicePort": 80}]},
        {"name": "api", "priority": 3, "timeout": {"read": "30s"},
         "match": {"paths": ["/api/*"], "exprs": [{"subject": {"scope": "Path"}, "op": "RegexMatch", "value": "^/api/v[12]/"}]},
         "plugins": [{"name": "proxy-mirror", "enable": true, "config": {"host": "http://shadow:80"}}],
         "backends": [{"serviceName": "podinfo", "servicePort": "http", "subset": "v1", "resolveGranularity": "endpoints"}]}
    ]}});
    vec![example, rich]
}

#[test]
fn generated_apisixroutes_satisfy_the_apisix_crd() {
    use serin::router::apisix_objects::{apisix_route, routes_of, source_rule};
    let schema = crd_schema("apisix/apisix.apache.org_apisixroutes.yaml", "v2");
    let mut ab_checked = 0;
    for user in user_apisix_routes() {
        assert_valid(&schema, &user, "the user's ApisixRoute");
        for (file, mut canary) in example_canaries("apisix") {
            canary.spec.route_ref = Some(
                serde_json::from_value(serde_json::json!({
                "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"}))
                .unwrap(),
            );
            // The user's rule sends to this Canary's apex.
            let text = user.to_string().replace(
                r#""serviceName":"podinfo""#,
                &format!(r#""serviceName":"{}""#, canary.apex_name()),
            );
            let user: serde_json::Value = serde_json::from_str(&text).unwrap();
            let has_match = canary.spec.analysis.r#match.iter().flatten().count() > 0;
            let source = source_rule(&canary, &user).unwrap();
            for (strategy, routes) in strategies() {
                if strategy == "ab" && has_match && !match_expressible(&canary, "apisix") {
                    continue;
                }
                let what = format!("{file} {strategy}");
                let obj = apisix_route(&canary, source, routes, Some(owner()));
                assert_valid(&schema, &obj, &what);
                let expected = Routes {
                    ab_match: routes.ab_match && has_match,
                    ..routes
                };
                assert_eq!(routes_of(&canary, &obj), expected, "{what}: read back");
                ab_checked += usize::from(strategy == "ab" && has_match);
            }
        }
    }
    assert!(ab_checked >= 2, "A/B examples checked: {ab_checked}");
}

#[test]
fn generated_kuma_routes_satisfy_the_kuma_crds() {
    use serin::router::kuma_objects::{
        mesh_http_route, mesh_http_route_routes, traffic_route, traffic_route_routes,
    };
    let traffic = crd_schema("kuma/kuma.io_trafficroutes.yaml", "v1alpha1");
    let mesh_http = crd_schema("kuma/kuma.io_meshhttproutes.yaml", "v1alpha1");
    let mut ab_checked = 0;
    for (file, canary) in example_canaries("kuma") {
        let has_match = canary.spec.analysis.r#match.iter().flatten().count() > 0;
        for (strategy, routes) in strategies() {
            let what = format!("{file} {strategy}");
            if !routes.mirror && !routes.ab_match {
                // TrafficRoute splits by weight only (validation refuses the rest on it).
                let obj = traffic_route(&canary, routes);
                assert_valid(&traffic, &obj, &what);
                assert_eq!(
                    traffic_route_routes(&canary, &obj),
                    routes,
                    "{what}: read back"
                );
            }
            if strategy == "ab" && has_match && !match_expressible(&canary, "kuma") {
                continue;
            }
            for owned in [true, false] {
                let obj = mesh_http_route(&canary, routes, owned.then(owner));
                assert_valid(&mesh_http, &obj, &what);
            }
            let obj = mesh_http_route(&canary, routes, Some(owner()));
            let expected = Routes {
                ab_match: routes.ab_match && has_match,
                ..routes
            };
            assert_eq!(
                mesh_http_route_routes(&canary, &obj),
                expected,
                "{what}: read back"
            );
            ab_checked += usize::from(strategy == "ab" && has_match);
        }
    }
    assert!(ab_checked >= 2, "A/B examples checked: {ab_checked}");
}

/// The documents of an example file.
fn example_docs(file: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    serin::manifest::parse_documents(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example Canaries as gloo ones, and Flagger's Gloo Canary as `serin migrate` converts it.
fn gloo_canaries() -> Vec<(String, Canary)> {
    let mut out = example_canaries("gloo");
    let flagger = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flagger/canary-gloo.yaml"),
    )
    .unwrap();
    let migrated = serin::migrate::migrate(&flagger, "kubernetes").unwrap();
    assert!(migrated.notes.is_empty(), "{:?}", migrated.notes);
    let doc = serin::manifest::parse_documents(&migrated.yaml)
        .unwrap()
        .remove(0);
    let mut canary: Canary = serde_json::from_value(doc).unwrap();
    canary.metadata.uid = Some("0d0a1f2e-1111-2222-3333-444455556666".into());
    out.push(("flagger/canary-gloo.yaml".into(), canary));
    out
}

#[test]
fn generated_routetables_and_upstreams_satisfy_the_gloo_crds() {
    use serin::router::gloo_objects::{route_table, routes_of, upstream};
    let tables = crd_schema("gloo/gateway.solo.io_v1_RouteTable.yaml", "v1");
    let upstreams = crd_schema("gloo/gloo.solo.io_v1_Upstream.yaml", "v1");
    // The example's template Upstream is itself valid, and its settings are what gets copied.
    let template = example_docs("examples/gloo.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Upstream")
        .unwrap();
    assert_valid(
        &upstreams,
        &template,
        "examples/gloo.yaml template Upstream",
    );
    let mut ab_checked = 0;
    for (file, canary) in gloo_canaries() {
        for (side, tpl) in [(false, None), (true, Some(&template["spec"]))] {
            let obj = upstream(&canary, side, tpl, owner());
            assert_valid(&upstreams, &obj, &format!("{file} upstream canary={side}"));
            if tpl.is_some() {
                assert_eq!(
                    obj["spec"]["loadBalancerConfig"],
                    template["spec"]["loadBalancerConfig"]
                );
                assert_eq!(
                    obj["spec"]["kube"]["serviceName"],
                    format!("{}-canary", canary.apex_name())
                );
            }
        }
        let has_match = canary.spec.analysis.r#match.iter().flatten().count() > 0;
        for (strategy, routes) in strategies() {
            if strategy == "ab" && has_match && !match_expressible(&canary, "gloo") {
                continue;
            }
            let what = format!("{file} {strategy}");
            for owned in [true, false] {
                let obj = route_table(&canary, routes, owned.then(owner));
                assert_valid(&tables, &obj, &what);
            }
            let obj = route_table(&canary, routes, Some(owner()));
            let expected = Routes {
                ab_match: routes.ab_match && has_match,
                ..routes
            };
            assert_eq!(routes_of(&canary, &obj), expected, "{what}: read back");
            ab_checked += usize::from(strategy == "ab" && has_match);
        }
    }
    assert!(ab_checked >= 2, "A/B examples checked: {ab_checked}");
    // No example sets header operations: the route options they become are checked here.
    let (_, mut canary) = gloo_canaries().remove(0);
    canary.spec.service.headers = serde_json::from_value(serde_json::json!({
        "request": {"add": {"x-a": "1"}, "set": {"x-b": "2"}, "remove": ["x-c"]},
        "response": {"set": {"x-d": "3"}, "remove": ["server"]}}))
    .unwrap();
    let obj = route_table(&canary, Routes::split(30), Some(owner()));
    assert!(obj["spec"]["routes"][0]["options"]["headerManipulation"].is_object());
    assert_valid(&tables, &obj, "header operations");
}

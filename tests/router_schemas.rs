//! Every object the routers generate, for every example Canary and every strategy, validated
//! against the official CRD schemas in ../shared/crds (structural checks and CEL rules, as
//! kube-apiserver would): a field the real API server would reject fails here first.

mod common;

use common::schemas::{assert_valid, crd_schema, example_canaries, owner, strategies};
use serde_json::json;
use serin::analysis::Routes;
use serin::api::Canary;
use serin::router::gateway_api_route::{build, routes_of};

#[test]
fn generated_httproutes_satisfy_the_gateway_api_crd() {
    for version in ["v1", "v1beta1"] {
        let schema = crd_schema(
            "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
            version,
        );
        for mesh in [false, true] {
            for (file, canary) in example_canaries("gatewayapi") {
                for (strategy, routes) in strategies() {
                    let obj = build(
                        &canary,
                        routes,
                        &format!("gateway.networking.k8s.io/{version}"),
                        owner(),
                        mesh,
                    );
                    let what = format!("{file} {strategy} {version} mesh={mesh}");
                    assert_valid(&schema, &obj, &what);
                    let has_match = canary
                        .spec
                        .analysis
                        .r#match
                        .as_ref()
                        .is_some_and(|m| !m.is_empty());
                    let expected = Routes {
                        ab_match: routes.ab_match && has_match,
                        ..routes
                    };
                    assert_eq!(
                        routes_of(&canary, &obj),
                        Some(expected),
                        "{what}: weights read back"
                    );
                }
            }
        }
    }
}

#[test]
fn generated_grpcroutes_satisfy_the_gateway_api_crd() {
    let schema = crd_schema(
        "gateway-api/gateway.networking.k8s.io_grpcroutes.yaml",
        "v1",
    );
    for (file, mut canary) in example_canaries("gatewayapi") {
        canary.spec.service.app_protocol = Some("grpc".into());
        canary.spec.service.rewrite = Some(serde_json::from_value(json!({"uri": "/v2"})).unwrap());
        canary.spec.analysis.r#match = Some(vec![
            serde_json::from_value(json!({"headers": {"x-canary": {"exact": "1"}}})).unwrap(),
            serde_json::from_value(json!({"queryParams": {"beta": {"exact": "1"}}})).unwrap(),
        ]);
        for (strategy, routes) in strategies() {
            let obj = build(
                &canary,
                routes,
                "gateway.networking.k8s.io/v1",
                owner(),
                false,
            );
            let what = format!("{file} {strategy} grpc");
            assert_eq!(obj["kind"], "GRPCRoute", "{what}");
            assert_valid(&schema, &obj, &what);
            assert_eq!(
                routes_of(&canary, &obj),
                Some(routes),
                "{what}: weights read back"
            );
            if routes.ab_match {
                let rules = obj["spec"]["rules"].as_array().unwrap();
                assert_eq!(
                    rules.len(),
                    2,
                    "{what}: the query-only condition is left out, not made a catch-all"
                );
                assert_eq!(
                    rules[0]["matches"][0],
                    json!({"headers": [{"type": "Exact", "name": "x-canary", "value": "1"}]})
                );
            }
        }
    }
}

#[test]
fn a_route_with_every_option_is_valid_and_shaped_as_documented() {
    let canary: Canary = serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo", "namespace": "test", "uid": "u"},
        "spec": {"provider": "gatewayapi", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "hosts": ["app.example.com"], "timeout": "15s", "backendTimeout": "10s",
                "gatewayRefs": [{"name": "public", "namespace": "gw", "sectionName": "https"}],
                "headers": {"request": {"set": {"x-env": "prod"}, "remove": ["x-debug"]}, "response": {"add": {"x-served-by": "serin"}}},
                "rewrite": {"uri": "/v2", "authority": "internal.example.com"}},
            "analysis": {"interval": "1m", "threshold": 2, "iterations": 2, "mirrorWeight": 50,
                "match": [{"headers": {"x-canary": {"prefix": "in.sider"}}, "queryParams": {"beta": {"exact": "1"}}}]}}
    }))
    .unwrap();
    let schema = crd_schema(
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
        "v1",
    );
    let ab = build(
        &canary,
        Routes {
            ab_match: true,
            ..Routes::PRIMARY
        },
        "gateway.networking.k8s.io/v1",
        owner(),
        false,
    );
    assert_valid(&schema, &ab, "ab");
    let rules = ab["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0]["matches"][0],
        json!({"path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"type": "RegularExpression", "name": "x-canary", "value": "^in\\.sider.*"}],
            "queryParams": [{"type": "Exact", "name": "beta", "value": "1"}]})
    );
    assert_eq!(rules[0]["backendRefs"][1]["weight"], 100);
    assert_eq!(rules[1]["backendRefs"][0]["weight"], 100);
    assert_eq!(
        rules[1]["timeouts"],
        json!({"request": "15s", "backendRequest": "10s"})
    );
    let mirror = build(
        &canary,
        Routes {
            mirror: true,
            ..Routes::PRIMARY
        },
        "gateway.networking.k8s.io/v1",
        owner(),
        false,
    );
    assert_valid(&schema, &mirror, "mirror");
    let filters = mirror["spec"]["rules"][0]["filters"].as_array().unwrap();
    assert_eq!(
        filters
            .iter()
            .map(|f| f["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "RequestHeaderModifier",
            "ResponseHeaderModifier",
            "URLRewrite",
            "RequestMirror"
        ]
    );
    assert_eq!(filters[3]["requestMirror"]["percent"], 50);
    // The check has teeth: what the API server refuses (transcript 20) is refused here too.
    let mut bad = mirror.clone();
    bad["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(-1);
    let causes =
        serin::schema::validate(&schema, &serin::schema::apply_defaults(&schema, &bad), None);
    assert!(!causes.is_empty());
    let mut bad = mirror.clone();
    bad["spec"]["rules"][0]["backendRefs"][1]
        .as_object_mut()
        .unwrap()
        .remove("port");
    let causes =
        serin::schema::validate(&schema, &serin::schema::apply_defaults(&schema, &bad), None);
    assert!(
        causes
            .iter()
            .any(|c| c.message.contains("Must have port for Service reference")),
        "{causes:?}"
    );
    assert_eq!(
        mirror["spec"]["parentRefs"][0],
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gw", "sectionName": "https"})
    );
}

#[test]
fn generated_istio_objects_satisfy_the_istio_crds() {
    use serin::router::istio_objects::{destination_rule, routes_of as vs_routes, virtual_service};
    let vs_schema = crd_schema("istio/virtualservices.networking.istio.io.yaml", "v1");
    let dr_schema = crd_schema("istio/destinationrules.networking.istio.io.yaml", "v1");
    let mut variants = example_canaries("istio");
    // Every option at once, a TCP service and a delegate.
    let full: Canary = serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo", "namespace": "test", "uid": "u"},
        "spec": {"provider": "istio", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "hosts": ["app.example.com"], "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
                "timeout": "15s", "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
                "headers": {"request": {"add": {"x-some-header": "value"}}, "response": {"remove": ["x-envoy-upstream-service-time"]}},
                "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET", "POST"], "maxAge": "24h"},
                "rewrite": {"uri": "/", "authority": "podinfo.internal"},
                "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "loadBalancer": {"simple": "LEAST_REQUEST"}}},
            "analysis": {"interval": "1m", "threshold": 2, "iterations": 2, "mirrorWeight": 25,
                "match": [{"headers": {"x-canary": {"suffix": ".beta"}}, "queryParams": {"b": {"prefix": "1"}}, "sourceLabels": {"app": "web"}}]}}
    }))
    .unwrap();
    let mut tcp = full.clone();
    tcp.spec.service.port_name = Some("tcp-db".into());
    let mut delegate = full.clone();
    delegate.spec.service.delegation = Some(true);
    // The check has teeth here too: a wrong type and an unknown field are caught.
    let mut bad = virtual_service(&full, Routes::split(10), owner());
    bad["spec"]["http"][0]["route"][0]["weight"] = json!("ten");
    bad["spec"]["http"][0]["retries"]["tries"] = json!(3);
    let causes = serin::schema::validate(&vs_schema, &bad, None);
    assert!(
        causes.iter().any(|c| c.field.ends_with("weight")),
        "{causes:?}"
    );
    assert_eq!(
        serin::schema::unknown_fields(&vs_schema, &bad),
        ["spec.http[0].retries.tries"]
    );
    variants.extend([
        ("full".to_string(), full),
        ("tcp".to_string(), tcp),
        ("delegate".to_string(), delegate),
    ]);
    for (file, canary) in variants {
        for (strategy, routes) in strategies() {
            let vs = virtual_service(&canary, routes, owner());
            let what = format!("{file} {strategy}");
            assert_valid(&vs_schema, &vs, &what);
            let tcp = serin::router::istio_objects::is_tcp(&canary);
            let has_match = canary
                .spec
                .analysis
                .r#match
                .as_ref()
                .is_some_and(|m| !m.is_empty());
            let expected = Routes {
                ab_match: routes.ab_match && has_match && !tcp,
                mirror: routes.mirror && !tcp,
                ..routes
            };
            assert_eq!(
                vs_routes(&canary, &vs),
                Some(expected),
                "{what}: weights read back"
            );
        }
        for side in ["podinfo-primary", "podinfo-canary"] {
            assert_valid(
                &dr_schema,
                &destination_rule(&canary, side, owner()),
                &format!("{file} {side}"),
            );
        }
    }
}

#[test]
fn session_affinity_pins_clients_and_stays_valid() {
    use serin::router::istio_objects::{routes_of as vs_routes, virtual_service};
    let mut canary: Canary = serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo", "namespace": "test", "uid": "u"},
        "spec": {"provider": "gatewayapi", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gw"}]},
            "analysis": {"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "maxAge": 600, "path": "/", "secure": true}}},
        "status": {"phase": "Progressing", "sessionAffinityCookie": "flagger-cookie=abc123", "primarySessionAffinityCookie": "primary-cookie=abc123"}
    }))
    .unwrap();
    let http_schema = crd_schema(
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
        "v1",
    );
    let vs_schema = crd_schema("istio/virtualservices.networking.istio.io.yaml", "v1");
    let routes = Routes::split(20);
    let route = build(
        &canary,
        routes,
        "gateway.networking.k8s.io/v1",
        owner(),
        false,
    );
    assert_valid(&http_schema, &route, "sticky HTTPRoute");
    assert_eq!(
        routes_of(&canary, &route),
        Some(routes),
        "sticky rules are not A/B rules"
    );
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(
        rules[0]["matches"][0]["headers"][0],
        json!({"type": "RegularExpression", "name": "Cookie", "value": ".*flagger\\-cookie=abc123.*"})
    );
    assert_eq!(rules[0]["backendRefs"][1]["weight"], 100);
    assert_eq!(
        rules[1]["backendRefs"][0]["weight"], 100,
        "primary cookie rule"
    );
    assert_eq!(
        rules[2]["backendRefs"][1]["filters"][0]["responseHeaderModifier"]["add"][0],
        json!({"name": "Set-Cookie", "value": "flagger-cookie=abc123; Max-Age=600; Path=/; Secure"})
    );
    let vs = virtual_service(&canary, routes, owner());
    assert_valid(&vs_schema, &vs, "sticky VirtualService");
    assert_eq!(vs_routes(&canary, &vs), Some(routes));
    assert_eq!(
        vs["spec"]["http"][0]["match"][0]["headers"]["cookie"]["regex"],
        ".*flagger\\-cookie=abc123.*"
    );
    assert_eq!(
        vs["spec"]["http"][2]["route"][1]["headers"]["response"]["add"]["Set-Cookie"],
        "flagger-cookie=abc123; Max-Age=600; Path=/; Secure"
    );
    // After the rollout the retired cookie is expired by the primary's responses.
    let st = canary.status.as_mut().unwrap();
    st.previous_session_affinity_cookie = st.session_affinity_cookie.take();
    st.primary_session_affinity_cookie = None;
    let route = build(
        &canary,
        Routes::PRIMARY,
        "gateway.networking.k8s.io/v1",
        owner(),
        false,
    );
    assert_valid(&http_schema, &route, "expiring HTTPRoute");
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["backendRefs"][0]["filters"][0]["responseHeaderModifier"]["add"][0]["value"],
        "flagger-cookie=abc123; Max-Age=-1; Path=/; Secure"
    );
}

#[test]
fn a_null_where_a_list_belongs_is_refused() {
    let schema = crd_schema(
        "gateway-api/gateway.networking.k8s.io_grpcroutes.yaml",
        "v1",
    );
    let obj = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "x"},
        "spec": {"rules": [{"filters": null, "backendRefs": [{"name": "a", "port": 80}]}]}});
    let causes = serin::schema::validate(&schema, &obj, None);
    assert!(
        causes.iter().any(|c| c.field == "spec.rules[0].filters"),
        "{causes:?}"
    );
}

#[test]
fn generated_traffic_splits_satisfy_the_smi_crd() {
    use serin::router::smi::{routes_of as split_routes, traffic_split};
    let schema = crd_schema("linkerd/trafficsplits.split.smi-spec.io.yaml", "v1alpha1");
    for (file, canary) in example_canaries("linkerd") {
        for routes in [Routes::PRIMARY, Routes::split(35), Routes::CANARY] {
            let obj = traffic_split(&canary, routes, owner());
            assert_valid(&schema, &obj, &file);
            assert_eq!(
                obj["spec"]["backends"][1]["weight"],
                json!(routes.canary.to_string()),
                "a quantity string, as Flagger"
            );
            assert_eq!(split_routes(&canary, &obj), Some(routes));
        }
    }
}

//! The three-way routes of `analysis.baseline` (primary, canary, baseline) as the routers that can
//! split three ways write them — HTTPRoute (gatewayapi, and linkerd's GAMMA routes), Istio
//! VirtualService (HTTP and TCP), SMI TrafficSplit (older linkerd) — validated against the
//! official CRD schemas and read back to the same weights; without a share, no baseline backend.

mod common;

use common::schemas::{assert_valid, crd_schema, example_canaries, owner};
use serde_json::Value;
use serin::analysis::Routes;

fn three_way() -> Routes {
    Routes::split(20).with_baseline()
}

/// Every backend name in an object, wherever it is (backendRefs, destinations, backends).
fn names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if matches!(k.as_str(), "name" | "host" | "service")
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_string());
                }
                names(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| names(x, out)),
        _ => {}
    }
}

fn mentions_baseline(obj: &Value, canary: &serin::api::Canary) -> bool {
    let mut out = Vec::new();
    names(&obj["spec"], &mut out);
    out.contains(&format!("{}-baseline", canary.apex_name()))
}

#[test]
fn a_three_way_split_takes_the_baseline_share_from_the_primary() {
    assert_eq!(
        (
            three_way().primary,
            three_way().canary,
            three_way().baseline
        ),
        (60, 20, 20)
    );
    assert_eq!(three_way().without_baseline(), Routes::split(20));
}

#[test]
fn httproutes_with_a_baseline_satisfy_the_gateway_api_crd() {
    use serin::router::gateway_api_route::{build, routes_of};
    let schema = crd_schema(
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
        "v1",
    );
    for mesh in [false, true] {
        for (file, canary) in example_canaries("gatewayapi") {
            let obj = build(
                &canary,
                three_way(),
                "gateway.networking.k8s.io/v1",
                owner(),
                mesh,
            );
            assert_valid(&schema, &obj, &file);
            assert_eq!(routes_of(&canary, &obj), Some(three_way()), "{file}");
            assert!(mentions_baseline(&obj, &canary), "{file}");
            let obj = build(
                &canary,
                Routes::split(20),
                "gateway.networking.k8s.io/v1",
                owner(),
                mesh,
            );
            assert!(
                !mentions_baseline(&obj, &canary),
                "{file}: no share, no backendRef"
            );
        }
    }
}

#[test]
fn virtual_services_with_a_baseline_satisfy_the_istio_crd() {
    use serin::router::istio_objects::{routes_of, virtual_service};
    let schema = crd_schema("istio/virtualservices.networking.istio.io.yaml", "v1");
    for (file, mut canary) in example_canaries("istio") {
        for tcp in [false, true] {
            if tcp {
                canary.spec.service.app_protocol = Some("tcp".into());
            }
            let obj = virtual_service(&canary, three_way(), owner());
            assert_valid(&schema, &obj, &file);
            assert_eq!(
                routes_of(&canary, &obj),
                Some(three_way()),
                "{file} tcp={tcp}"
            );
            assert!(mentions_baseline(&obj, &canary), "{file}");
            let obj = virtual_service(&canary, Routes::split(20), owner());
            assert!(
                !mentions_baseline(&obj, &canary),
                "{file}: no share, no destination"
            );
        }
    }
}

#[test]
fn traffic_splits_with_a_baseline_satisfy_the_smi_crd() {
    use serin::router::smi::{routes_of, traffic_split};
    let schema = crd_schema("linkerd/trafficsplits.split.smi-spec.io.yaml", "v1alpha1");
    for (file, canary) in example_canaries("linkerd") {
        let obj = traffic_split(&canary, three_way(), owner());
        assert_valid(&schema, &obj, &file);
        assert_eq!(routes_of(&canary, &obj), Some(three_way()), "{file}");
        assert!(mentions_baseline(&obj, &canary), "{file}");
    }
}

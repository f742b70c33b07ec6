//! Scenario: the `linkerd` provider on a cluster that serves only the SMI TrafficSplit (older
//! Linkerd with linkerd-smi) runs a canary through TrafficSplit weights; with the Gateway API
//! served it writes a mesh HTTPRoute attached to the apex Service instead.

mod common;

use common::scenario::{
    set_image, setup_with, start_controller, wait_object, wait_phase, wait_status,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;
use serin::api::CanaryPhase;

async fn install(client: &kube::Client, file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/crds")
        .join(file);
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn spec() -> serde_json::Value {
    json!({"provider": "linkerd", "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 50, "maxWeight": 50}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkerd_with_smi_runs_through_traffic_split_weights() {
    let (cluster, client) = setup_with(spec()).await;
    install(&client, "linkerd/trafficsplits.split.smi-spec.io.yaml").await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let splits = api(
        &client,
        "split.smi-spec.io",
        "v1alpha1",
        "TrafficSplit",
        "trafficsplits",
    );
    let split = serde_json::to_value(splits.get("podinfo").await.unwrap()).unwrap();
    assert_eq!(
        split["spec"]["backends"],
        json!([{"service": "podinfo-primary", "weight": "100"}, {"service": "podinfo-canary", "weight": "0"}])
    );
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_status(&client, "weight 50", |st| st.canary_weight == 50).await;
    let get = || async { serde_json::to_value(splits.get("podinfo").await.unwrap()).unwrap() };
    wait_object("the split at 50", get, |s| {
        s["spec"]["backends"][1]["weight"] == "50"
    })
    .await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let split = serde_json::to_value(splits.get("podinfo").await.unwrap()).unwrap();
    assert_eq!(split["spec"]["backends"][0]["weight"], "100");
    common::scenario::assert_calls_are_granted(&cluster, &["smi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkerd_with_the_gateway_api_writes_a_mesh_httproute() {
    let (cluster, client) = setup_with(spec()).await;
    install(
        &client,
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
    )
    .await;
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let routes = api(
        &client,
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
    );
    let route = serde_json::to_value(routes.get("podinfo").await.unwrap()).unwrap();
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}])
    );
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

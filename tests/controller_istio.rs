//! Scenarios for the Istio router on serin::sim with the official Istio CRDs installed: a canary
//! run with the VirtualService weights observed at each step, mirroring first, A/B routing, and
//! a user's VirtualService taken over and given back whole on deletion.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::{set_image, setup_with, start_controller, wait_phase};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

async fn install_istio(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/istio");
    for file in [
        "virtualservices.networking.istio.io.yaml",
        "destinationrules.networking.istio.io.yaml",
    ] {
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
}

fn api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", kind);
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// (primary weight, canary weight, mirrored, A/B match routes) of a VirtualService.
type State = (i64, i64, bool, usize);

fn state(vs: &Value) -> State {
    let http = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
    let main = http
        .iter()
        .find(|r| r.get("match").is_none())
        .cloned()
        .unwrap_or_default();
    let w = |host: &str| {
        main["route"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["host"] == host)
            .map(|d| d["weight"].as_i64().unwrap_or(0))
            .unwrap_or(-1)
    };
    (
        w("podinfo-primary"),
        w("podinfo-canary"),
        main.get("mirror").is_some(),
        http.len() - 1,
    )
}

fn observe(client: &kube::Client) -> Arc<Mutex<Vec<State>>> {
    let seen: Arc<Mutex<Vec<State>>> = Default::default();
    let (vs, log) = (
        api(client, "VirtualService", "virtualservices"),
        seen.clone(),
    );
    tokio::spawn(async move {
        loop {
            if let Ok(Some(v)) = vs.get_opt("podinfo").await {
                let s = state(&serde_json::to_value(v).unwrap());
                let mut l = log.lock().unwrap();
                if l.last() != Some(&s) {
                    l.push(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

/// Starts the controller and runs a new image to Succeeded; the controller keeps running until
/// the returned sender is dropped.
async fn run(client: &kube::Client) -> tokio::sync::oneshot::Sender<()> {
    let stop = start_controller(client);
    let c = wait_phase(client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(client, "podinfo:6.0.1", json!({})).await;
    wait_phase(client, CanaryPhase::Succeeded, Some(&first)).await;
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_canary_run_moves_the_virtualservice_weights() {
    let (cluster, client) = setup_with(json!({"provider": "istio", "service": {"port": 9898, "hosts": ["app.example.com"],
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50, "mirror": true}}))
    .await;
    install_istio(&client).await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let dr = api(&client, "DestinationRule", "destinationrules")
        .get("podinfo-canary")
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(dr).unwrap()["spec"],
        json!({"host": "podinfo-canary", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
    );
    let seen = observe(&client);
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (100, 0, false, 0),
            (100, 0, true, 0),
            (75, 25, false, 0),
            (50, 50, false, 0),
            (100, 0, false, 0)
        ]
    );
    common::scenario::assert_calls_are_granted(&cluster, &["istio"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_testing_sends_matching_requests_to_the_canary() {
    let (_cluster, client) = setup_with(json!({"provider": "istio", "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}}))
    .await;
    install_istio(&client).await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let seen = observe(&client);
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&(100, 0, false, 0)));
    assert!(
        seen.contains(&(100, 0, false, 1)),
        "a match route during the analysis: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&(100, 0, false, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_virtualservice_is_taken_over_and_given_back_whole() {
    let (cluster, client) = setup_with(
        json!({"provider": "istio", "revertOnDeletion": true, "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 1}}),
    )
    .await;
    install_istio(&client).await;
    let vs_api = api(&client, "VirtualService", "virtualservices");
    let user: DynamicObject = serde_json::from_value(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "podinfo", "labels": {"team": "shop"}},
        "spec": {"hosts": ["podinfo"], "http": [{"timeout": "3s", "route": [{"destination": {"host": "podinfo"}}]}]}}))
    .unwrap();
    vs_api.create(&PostParams::default(), &user).await.unwrap();
    let before = serde_json::to_value(vs_api.get("podinfo").await.unwrap()).unwrap();
    let _stop = run(&client).await;
    let during = serde_json::to_value(vs_api.get("podinfo").await.unwrap()).unwrap();
    assert_eq!(state(&during), (100, 0, false, 0));
    assert!(
        during["metadata"]["ownerReferences"].is_null(),
        "a taken-over VirtualService is never owned"
    );
    assert_eq!(during["metadata"]["labels"]["team"], "shop");
    common::scenario::delete_canary_and_wait(&client).await;
    let after = serde_json::to_value(vs_api.get("podinfo").await.unwrap()).unwrap();
    assert_eq!(after["spec"], before["spec"], "the user's spec is back");
    assert!(after["metadata"]["annotations"][serin::router::istio::ORIGINAL_SPEC].is_null());
    common::scenario::assert_calls_are_granted(&cluster, &["istio"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_edited_by_hand_are_put_back() {
    use kube::api::{Patch, PatchParams};
    let (_cluster, client) = setup_with(json!({"provider": "istio", "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 1}}))
    .await;
    install_istio(&client).await;
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let vs = api(&client, "VirtualService", "virtualservices");
    let hand_edit: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 50},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 50}
    ]))
    .unwrap();
    vs.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::<()>::Json(hand_edit),
    )
    .await
    .unwrap();
    // The next reconcile (a resync in a cluster; here a poke at the target) repairs it.
    common::scenario::poke_target(&client, "1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = state(&serde_json::to_value(vs.get("podinfo").await.unwrap()).unwrap());
        if now == (100, 0, false, 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not repaired: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notes = common::scenario::event_notes(&client, "RoutesRepaired").await;
    assert_eq!(
        notes,
        ["routes of podinfo.test were 50/50 (primary/canary), restored to 100/0"]
    );
}

//! Scenarios for the Traefik router on serin::sim with the official TraefikService CRD installed:
//! a mirrored canary run with the weights observed at each step, a rollback, a hand edit
//! repaired, a user's TraefikService taken over and given back whole on deletion, all traffic to
//! the target on deletion, and a cluster without Traefik, or an A/B match, refused before
//! anything is made.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::{set_image, setup_with, start_controller, wait_phase, wait_status};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

async fn install_traefik(client: &kube::Client) {
    common::routes::install_crd(client, "traefik/traefik.io_traefikservices.yaml").await;
}

fn services(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("traefik.io", "v1alpha1", "TraefikService");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "traefikservices"),
    )
}

async fn get(client: &kube::Client) -> Option<Value> {
    let p = services(client).get_opt("podinfo").await.unwrap();
    p.map(|p| serde_json::to_value(p).unwrap())
}

/// (primary weight, canary weight, mirrored) of the TraefikService; a weight it does not list is
/// -1.
type State = (i64, i64, bool);

fn state(svc: &Value) -> State {
    let spec = &svc["spec"];
    if let Some(m) = spec["mirroring"].as_object() {
        let mirrored = m["mirrors"][0]["name"] == "podinfo-canary";
        return (100, 0, mirrored && m["name"] == "podinfo-primary");
    }
    let services = spec["weighted"]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let w = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["weight"].as_i64().unwrap_or(0))
            .unwrap_or(-1)
    };
    (w("podinfo-primary"), w("podinfo-canary"), false)
}

/// Every distinct state while the test runs.
fn observe(client: &kube::Client) -> Arc<Mutex<Vec<State>>> {
    let client = client.clone();
    common::routes::observe(
        move || {
            let c = client.clone();
            async move { get(&c).await }
        },
        state,
    )
}

fn traefik(analysis: Value) -> Value {
    let mut spec = json!({"provider": "traefik", "service": {"port": 80, "targetPort": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

async fn start(spec: Value) -> (serin::sim::Cluster, kube::Client) {
    let (cluster, client) = setup_with(spec).await;
    install_traefik(&client).await;
    (cluster, client)
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_canary_run_moves_the_traefikservice_weights() {
    let (cluster, client) = start(traefik(json!({"mirror": true, "mirrorWeight": 20}))).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // As Flagger writes it, the canary is listed only while it has weight.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (100, -1, false),
            (100, 0, true),
            (75, 25, false),
            (50, 50, false),
            (100, -1, false)
        ]
    );
    let svc = get(&client).await.unwrap();
    assert_eq!(svc["metadata"]["ownerReferences"][0]["kind"], "Canary");
    common::scenario::assert_calls_are_granted(&cluster, &["traefik"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_match_is_an_invalid_spec_and_nothing_is_made() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    let (_cluster, client) = start(traefik(ab)).await;
    let _stop = start_controller(&client);
    let st = wait_status(&client, "Ready=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = common::scenario::ready_condition(&st).unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    let message = ready.message.unwrap_or_default();
    assert!(
        message.starts_with("spec.analysis.match: the traefik provider"),
        "{message}"
    );
    assert!(get(&client).await.is_none(), "nothing made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_rolls_the_weights_back() {
    let gate = common::receiver::start(Arc::new(|_, before| {
        Some(if before == 0 { 200 } else { 500 })
    }))
    .await;
    let hooks = json!({"threshold": 1, "maxWeight": 75, "webhooks": [{"name": "gate", "type": "rollout",
        "url": format!("{}/gate", gate.url), "timeout": "1s"}]});
    let (_cluster, client) = start(traefik(hooks)).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (100, -1, false),
            (75, 25, false),
            (50, 50, false),
            (100, -1, false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_edited_by_hand_are_put_back() {
    let (_cluster, client) = start(traefik(json!({}))).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let edit: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/weighted/services/0/weight", "value": 40},
        {"op": "add", "path": "/spec/weighted/services/-", "value": {"name": "podinfo-canary", "namespace": "test", "port": 80, "weight": 60}}
    ]))
    .unwrap();
    services(&client)
        .patch("podinfo", &PatchParams::default(), &Patch::<()>::Json(edit))
        .await
        .unwrap();
    let note = "routes of podinfo.test were 40/60 (primary/canary), restored to 100/0";
    common::routes::assert_repaired(&client, || get(&client), state, (100, -1, false), note).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_traefikservice_is_taken_over_and_given_back_whole() {
    let mut spec = traefik(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = start(spec).await;
    let user: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
        "metadata": {"name": "podinfo", "labels": {"team": "shop"}},
        "spec": {"weighted": {"services": [{"name": "podinfo-v1", "port": 80, "weight": 1}],
            "sticky": {"cookie": {"name": "lb"}}}}}),
    )
    .unwrap();
    services(&client)
        .create(&PostParams::default(), &user)
        .await
        .unwrap();
    let before = get(&client).await.unwrap();
    let _stop = start_controller(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let during = get(&client).await.unwrap();
    assert_eq!(state(&during), (100, -1, false));
    assert!(
        during["metadata"]["ownerReferences"].is_null(),
        "never owned"
    );
    assert_eq!(
        during["spec"]["weighted"]["sticky"]["cookie"]["name"], "lb",
        "the user's fields stay"
    );
    common::scenario::delete_canary_and_wait(&client).await;
    let after = get(&client).await.unwrap();
    assert_eq!(after["spec"], before["spec"], "the user's spec is back");
    assert!(after["metadata"]["annotations"][serin::router::ORIGINAL_SPEC].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_sends_everything_to_the_target() {
    let mut spec = traefik(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = start(spec).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let seen = observe(&client);
    common::scenario::delete_canary_and_wait(&client).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(seen.lock().unwrap().contains(&(0, 100, false)), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_traefik_says_so_and_nothing_is_made() {
    let (_cluster, client) = setup_with(traefik(json!({}))).await;
    let _stop = start_controller(&client);
    let st = wait_status(&client, "Ready=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = common::scenario::ready_condition(&st).unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    assert_eq!(
        ready.message.as_deref(),
        Some(
            "spec.provider: this cluster does not serve TraefikService (traefik.io/v1alpha1); install Traefik's CRDs"
        )
    );
    assert_eq!(
        common::scenario::event_notes(&client, "InvalidSpec")
            .await
            .len(),
        1
    );
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
}

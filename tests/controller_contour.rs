//! Scenarios for the Contour router on serin::sim with the official HTTPProxy CRD installed: a
//! mirrored canary run with the weights observed at each step, A/B routing, a rollback, a hand
//! edit repaired, a user's HTTPProxy taken over and given back whole on deletion, all traffic to
//! the target on deletion, and a cluster without Contour refused before anything is made.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::{set_image, setup_with, start_controller, wait_phase, wait_status};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

async fn install_contour(client: &kube::Client) {
    common::routes::install_crd(client, "contour/httpproxies.projectcontour.io.yaml").await;
}

fn proxies(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("projectcontour.io", "v1", "HTTPProxy");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "httpproxies"),
    )
}

async fn get(client: &kube::Client) -> Option<Value> {
    let p = proxies(client).get_opt("podinfo").await.unwrap();
    p.map(|p| serde_json::to_value(p).unwrap())
}

/// (primary weight, canary weight, mirrored, match routes) of the HTTPProxy.
type State = (i64, i64, bool, usize);

fn state(proxy: &Value) -> State {
    let routes = proxy["spec"]["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is_match = |r: &Value| {
        r["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c.get("header").is_some() || c.get("queryParameter").is_some())
    };
    let main = routes
        .iter()
        .find(|r| !is_match(r))
        .cloned()
        .unwrap_or_default();
    let services = main["services"].as_array().cloned().unwrap_or_default();
    let w = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name && s["mirror"] != true)
            .map(|s| s["weight"].as_i64().unwrap_or(0))
            .unwrap_or(-1)
    };
    (
        w("podinfo-primary"),
        w("podinfo-canary"),
        services.iter().any(|s| s["mirror"] == true),
        routes.iter().filter(|r| is_match(r)).count(),
    )
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

fn contour(analysis: Value) -> Value {
    let mut spec = json!({"provider": "contour", "service": {"port": 80, "targetPort": 9898, "timeout": "15s",
            "retries": {"attempts": 3, "perTryTimeout": "5s"}},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

async fn start(spec: Value) -> (serin::sim::Cluster, kube::Client) {
    let (cluster, client) = setup_with(spec).await;
    install_contour(&client).await;
    (cluster, client)
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_canary_run_moves_the_httpproxy_weights() {
    let (cluster, client) = start(contour(json!({"mirror": true}))).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
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
    let p = get(&client).await.unwrap();
    let route = &p["spec"]["routes"][0];
    assert_eq!(
        route["timeoutPolicy"],
        json!({"response": "15s", "idle": "5m"})
    );
    assert_eq!(
        route["retryPolicy"],
        json!({"count": 3, "perTryTimeout": "5s"})
    );
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Canary");
    common::scenario::assert_calls_are_granted(&cluster, &["contour"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_testing_sends_matching_requests_to_the_canary() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}, {"queryParams": {"beta": {"exact": "on"}}}]});
    let (_cluster, client) = start(contour(ab)).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(100, 0, false, 0), (100, 0, false, 2), (100, 0, false, 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_rolls_the_weights_back() {
    let gate = common::receiver::start(Arc::new(|_, before| {
        Some(if before == 0 { 200 } else { 500 })
    }))
    .await;
    let hooks = json!({"threshold": 1, "maxWeight": 75, "webhooks": [{"name": "gate", "type": "rollout",
        "url": format!("{}/gate", gate.url), "timeout": "1s"}]});
    let (_cluster, client) = start(contour(hooks)).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (100, 0, false, 0),
            (75, 25, false, 0),
            (50, 50, false, 0),
            (100, 0, false, 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_edited_by_hand_are_put_back() {
    let (_cluster, client) = start(contour(json!({}))).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let edit: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/routes/0/services/0/weight", "value": 40},
        {"op": "replace", "path": "/spec/routes/0/services/1/weight", "value": 60}
    ]))
    .unwrap();
    proxies(&client)
        .patch("podinfo", &PatchParams::default(), &Patch::<()>::Json(edit))
        .await
        .unwrap();
    let note = "routes of podinfo.test were 40/60 (primary/canary), restored to 100/0";
    common::routes::assert_repaired(&client, || get(&client), state, (100, 0, false, 0), note)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_httpproxy_is_taken_over_and_given_back_whole() {
    let mut spec = contour(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = start(spec).await;
    let user: DynamicObject = serde_json::from_value(json!({"apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy",
        "metadata": {"name": "podinfo", "labels": {"team": "shop"}},
        "spec": {"virtualhost": {"fqdn": "app.example.com"},
            "routes": [{"conditions": [{"prefix": "/"}], "services": [{"name": "podinfo", "port": 80}]}]}}))
    .unwrap();
    proxies(&client)
        .create(&PostParams::default(), &user)
        .await
        .unwrap();
    let before = get(&client).await.unwrap();
    let _stop = start_controller(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let during = get(&client).await.unwrap();
    assert_eq!(state(&during), (100, 0, false, 0));
    assert!(
        during["metadata"]["ownerReferences"].is_null(),
        "never owned"
    );
    assert_eq!(
        during["spec"]["virtualhost"]["fqdn"], "app.example.com",
        "the user's fields stay"
    );
    common::scenario::delete_canary_and_wait(&client).await;
    let after = get(&client).await.unwrap();
    assert_eq!(after["spec"], before["spec"], "the user's spec is back");
    assert!(after["metadata"]["annotations"][serin::router::ORIGINAL_SPEC].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_sends_everything_to_the_target() {
    let mut spec = contour(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = start(spec).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let seen = observe(&client);
    common::scenario::delete_canary_and_wait(&client).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        seen.lock().unwrap().contains(&(0, 100, false, 0)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_contour_says_so_and_nothing_is_made() {
    let (_cluster, client) = setup_with(contour(json!({}))).await;
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
            "spec.provider: this cluster does not serve HTTPProxy (projectcontour.io/v1); install Contour's CRDs"
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

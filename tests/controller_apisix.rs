//! Scenarios for the APISIX router on serin::sim with the official ApisixRoute CRD installed:
//! the user's ApisixRoute is copied into Serin's `<route>-<apex>-canary` with the weights observed
//! at each step, a mirrored step, A/B rules added and removed, a rollback, a hand edit repaired,
//! all traffic to the target on deletion, the user's route never written; a missing routeRef
//! target, or a cluster without APISIX, refused before anything is made.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::routes::{assert_repaired, install_crd, refusal};
use common::scenario::{set_image, setup_with, start_controller, wait_phase};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

/// Serin's copy of the user's route.
const COPY: &str = "podinfo-podinfo-canary";

async fn install_apisix(client: &kube::Client) {
    install_crd(client, "apisix/apisix.apache.org_apisixroutes.yaml").await;
}

fn routes(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apisix.apache.org", "v2", "ApisixRoute");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "apisixroutes"),
    )
}

async fn get(client: &kube::Client, name: &str) -> Option<Value> {
    let r = routes(client).get_opt(name).await.unwrap();
    r.map(|r| serde_json::to_value(r).unwrap())
}

/// The user's ApisixRoute: one rule for the app (with a match expression of its own) and one for
/// something else.
async fn create_user_route(client: &kube::Client) -> Value {
    let user: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": {"name": "podinfo"},
        "spec": {"http": [
            {"name": "app", "match": {"hosts": ["app.example.com"], "paths": ["/*"],
                "exprs": [{"subject": {"scope": "Header", "name": "x-env"}, "op": "Equal", "value": "prod"}]},
             "backends": [{"serviceName": "podinfo", "servicePort": 80}]},
            {"name": "docs", "match": {"paths": ["/docs/*"]},
             "backends": [{"serviceName": "docs", "servicePort": 80}]}
        ]}}))
    .unwrap();
    routes(client)
        .create(&PostParams::default(), &user)
        .await
        .unwrap();
    get(client, "podinfo").await.unwrap()
}

/// (primary weight, canary weight, mirrored, A/B rules) of Serin's ApisixRoute.
type State = (i64, i64, bool, usize);

fn state(route: &Value) -> State {
    let http = route["spec"]["http"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |rule: &Value, name: &str| {
        rule["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["serviceName"] == name))
            .map_or(-1, |b| b["weight"].as_i64().unwrap_or(0))
    };
    let weighted = http
        .iter()
        .find(|r| r["name"] == "app")
        .cloned()
        .unwrap_or_default();
    let mirrored = weighted["plugins"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "proxy-mirror"));
    let ab = http.iter().filter(|r| r["name"] != "app").count();
    (
        weight(&weighted, "podinfo-primary"),
        weight(&weighted, "podinfo-canary"),
        mirrored,
        ab,
    )
}

/// Every distinct state of Serin's ApisixRoute while the test runs.
fn observe(client: &kube::Client) -> Arc<Mutex<Vec<State>>> {
    let client = client.clone();
    common::routes::observe(
        move || {
            let c = client.clone();
            async move { get(&c, COPY).await }
        },
        state,
    )
}

fn apisix(analysis: Value) -> Value {
    let mut spec = json!({"provider": "apisix", "service": {"port": 80, "targetPort": 9898},
        "routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

async fn start(spec: Value) -> (serin::sim::Cluster, kube::Client, Value) {
    let (cluster, client) = setup_with(spec).await;
    install_apisix(&client).await;
    let user = create_user_route(&client).await;
    (cluster, client, user)
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_canary_run_moves_the_weights_of_the_copy_and_leaves_the_users_route() {
    let (cluster, client, user) = start(apisix(json!({"mirror": true, "mirrorWeight": 20}))).await;
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
    let copy = get(&client, COPY).await.unwrap();
    assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
    assert_eq!(copy["spec"]["http"][0]["priority"], 10000);
    assert_eq!(
        copy["spec"]["http"][0]["match"],
        user["spec"]["http"][0]["match"]
    );
    let after = get(&client, "podinfo").await.unwrap();
    assert_eq!(after["spec"], user["spec"], "the user's route is only read");
    common::scenario::assert_calls_are_granted(&cluster, &["apisix"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_run_adds_a_rule_per_match_and_removes_them_at_the_end() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}, {"queryParams": {"beta": {"exact": "1"}}}]});
    let (_cluster, client, _) = start(apisix(ab)).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&(100, 0, false, 0)), "{seen:?}");
    assert!(seen.contains(&(100, 0, false, 2)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(100, 0, false, 0)), "{seen:?}");
    assert!(
        seen.iter().all(|s| s.1 == 0 || s.1 == 100),
        "no weights in A/B: {seen:?}"
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
    let (_cluster, client, _) = start(apisix(hooks)).await;
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
    let (_cluster, client, _) = start(apisix(json!({}))).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let edit: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/http/0/backends/0/weight", "value": 40},
        {"op": "replace", "path": "/spec/http/0/backends/1/weight", "value": 60}
    ]))
    .unwrap();
    routes(&client)
        .patch(COPY, &PatchParams::default(), &Patch::<()>::Json(edit))
        .await
        .unwrap();
    let fetch = || get(&client, COPY);
    let note = "routes of podinfo.test were 40/60 (primary/canary), restored to 100/0";
    assert_repaired(&client, fetch, state, (100, 0, false, 0), note).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_sends_everything_to_the_target() {
    let mut spec = apisix(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client, user) = start(spec).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let seen = observe(&client);
    common::scenario::delete_canary_and_wait(&client).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        seen.lock().unwrap().contains(&(0, 100, false, 0)),
        "{seen:?}"
    );
    let after = get(&client, "podinfo").await.unwrap();
    assert_eq!(after["spec"], user["spec"], "the user's route is untouched");
}

async fn nothing_made(client: &kube::Client) {
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
    assert_eq!(
        common::scenario::event_notes(client, "InvalidSpec")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_ref_without_a_rule_to_the_apex_says_so_and_nothing_is_made() {
    let mut spec = apisix(json!({}));
    spec["routeRef"]["name"] = json!("shop");
    let (_cluster, client, _) = start(spec).await;
    let _stop = start_controller(&client);
    let (reason, message) = refusal(&client).await;
    assert_eq!(reason, "InvalidSpec");
    assert_eq!(
        message,
        "spec.routeRef: ApisixRoute shop not found in namespace test"
    );
    nothing_made(&client).await;
    assert!(get(&client, "shop-podinfo-canary").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_apisix_says_so_and_nothing_is_made() {
    let (_cluster, client) = setup_with(apisix(json!({}))).await;
    let _stop = start_controller(&client);
    let (reason, message) = refusal(&client).await;
    assert_eq!(reason, "InvalidSpec");
    assert_eq!(
        message,
        "spec.provider: this cluster does not serve ApisixRoute (apisix.apache.org/v2); install the APISIX ingress controller's CRDs"
    );
    nothing_made(&client).await;
}

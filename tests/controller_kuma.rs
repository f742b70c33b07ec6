//! Scenarios for the Kuma router on serin::sim with the official CRDs installed: on a Kuma that
//! serves TrafficRoute (2.14 and older) Flagger's cluster-scoped TrafficRoute with the weights
//! observed at each step, a hand edit repaired, deletion on finalize, and one that another
//! Canary has, or an A/B match, refused; on a Kuma with MeshHTTPRoute only, a mirrored run and an
//! A/B run; a cluster without Kuma refused before anything is made.

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

async fn install(client: &kube::Client, file: &str) {
    install_crd(client, &format!("kuma/{file}")).await;
}

fn traffic_routes(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kuma.io", "v1alpha1", "TrafficRoute");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "trafficroutes"),
    )
}

fn mesh_http_routes(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kuma.io", "v1alpha1", "MeshHTTPRoute");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "meshhttproutes"),
    )
}

async fn get(api: &Api<DynamicObject>) -> Option<Value> {
    let r = api.get_opt("podinfo").await.unwrap();
    r.map(|r| serde_json::to_value(r).unwrap())
}

/// (primary weight, canary weight, mirrored, A/B rules) of either route kind.
type State = (i64, i64, bool, usize);

fn state(route: &Value) -> State {
    if route["kind"] == "TrafficRoute" {
        let w = |svc: &str| {
            route["spec"]["conf"]["split"]
                .as_array()
                .and_then(|s| {
                    s.iter().find(|s| {
                        s["destination"]["kuma.io/service"] == format!("{svc}_test_svc_9898")
                    })
                })
                .map_or(-1, |s| s["weight"].as_i64().unwrap_or(0))
        };
        return (w("podinfo-primary"), w("podinfo-canary"), false, 0);
    }
    let rules = route["spec"]["to"][0]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weighted = rules.last().cloned().unwrap_or_default();
    let w = |svc: &str| {
        weighted["default"]["backendRefs"]
            .as_array()
            .and_then(|b| {
                b.iter()
                    .find(|b| b["labels"]["kuma.io/display-name"] == svc)
            })
            .map_or(-1, |b| b["weight"].as_i64().unwrap_or(1))
    };
    let mirrored = weighted["default"]["filters"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["type"] == "RequestMirror"));
    (
        w("podinfo-primary"),
        w("podinfo-canary"),
        mirrored,
        rules.len() - 1,
    )
}

/// Every distinct state of the route while the test runs.
fn observe(api: Api<DynamicObject>) -> Arc<Mutex<Vec<State>>> {
    common::routes::observe(
        move || {
            let a = api.clone();
            async move { get(&a).await }
        },
        state,
    )
}

fn kuma(analysis: Value) -> Value {
    let mut spec = json!({"provider": "kuma", "service": {"port": 9898, "targetPort": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

/// A cluster with Kuma ≤ 2.14 (both CRDs) or a newer one (MeshHTTPRoute only).
async fn start(spec: Value, old_kuma: bool) -> (serin::sim::Cluster, kube::Client) {
    let (cluster, client) = setup_with(spec).await;
    if old_kuma {
        install(&client, "kuma.io_trafficroutes.yaml").await;
    }
    install(&client, "kuma.io_meshhttproutes.yaml").await;
    (cluster, client)
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

async fn nothing_made(client: &kube::Client) {
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_kuma_gets_flaggers_traffic_route_with_the_weights_of_each_step() {
    let mut spec = kuma(json!({}));
    spec["revertOnDeletion"] = json!(true);
    let (cluster, client) = start(spec, true).await;
    let _stop = start_controller(&client);
    let seen = observe(traffic_routes(&client));
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
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
    let route = get(&traffic_routes(&client)).await.unwrap();
    assert_eq!(route["mesh"], "default");
    assert_eq!(
        route["metadata"]["annotations"]["serin.io/canary"],
        "test/podinfo"
    );
    assert!(
        get(&mesh_http_routes(&client)).await.is_none(),
        "one kind only"
    );
    common::scenario::assert_calls_are_granted(&cluster, &["kuma"], false);
    // Nothing would collect a cluster-scoped route: finalize deletes it.
    common::scenario::delete_canary_and_wait(&client).await;
    assert!(get(&traffic_routes(&client)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_edited_by_hand_are_put_back() {
    let (_cluster, client) = start(kuma(json!({})), true).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let edit: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/conf/split/0/weight", "value": 40},
        {"op": "replace", "path": "/spec/conf/split/1/weight", "value": 60}
    ]))
    .unwrap();
    traffic_routes(&client)
        .patch("podinfo", &PatchParams::default(), &Patch::<()>::Json(edit))
        .await
        .unwrap();
    let api = traffic_routes(&client);
    let note = "routes of podinfo.test were 40/60 (primary/canary), restored to 100/0";
    assert_repaired(&client, || get(&api), state, (100, 0, false, 0), note).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traffic_route_another_canary_has_is_refused() {
    let (_cluster, client) = start(kuma(json!({})), true).await;
    let theirs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute", "mesh": "default",
        "metadata": {"name": "podinfo", "annotations": {"serin.io/canary": "shop/podinfo"}},
        "spec": {"sources": [], "destinations": [], "conf": {}}}))
    .unwrap();
    traffic_routes(&client)
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let _stop = start_controller(&client);
    let (reason, message) = refusal(&client).await;
    assert_eq!(reason, "InvalidSpec");
    assert_eq!(
        message,
        "spec.service.name: the cluster-scoped TrafficRoute podinfo is Canary shop/podinfo's; give this Canary's apex a name no other namespace's uses"
    );
    nothing_made(&client).await;
    let after = get(&traffic_routes(&client)).await.unwrap();
    assert_eq!(
        after["metadata"]["annotations"]["serin.io/canary"],
        "shop/podinfo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_testing_on_old_kuma_is_refused() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    let (_cluster, client) = start(kuma(ab), true).await;
    let _stop = start_controller(&client);
    let (reason, message) = refusal(&client).await;
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.starts_with("spec.analysis.match: this cluster's Kuma serves TrafficRoute"),
        "{message}"
    );
    nothing_made(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_kuma_gets_a_mesh_http_route_that_mirrors_then_splits() {
    let (cluster, client) = start(kuma(json!({"mirror": true, "mirrorWeight": 20})), false).await;
    let _stop = start_controller(&client);
    let seen = observe(mesh_http_routes(&client));
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
    let route = get(&mesh_http_routes(&client)).await.unwrap();
    assert_eq!(route["metadata"]["ownerReferences"][0]["kind"], "Canary");
    assert_eq!(route["metadata"]["labels"]["kuma.io/mesh"], "default");
    common::scenario::assert_calls_are_granted(&cluster, &["kuma"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_kuma_ab_testing_adds_a_rule_per_match() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}, {"queryParams": {"beta": {"exact": "1"}}}]});
    let (_cluster, client) = start(kuma(ab), false).await;
    let _stop = start_controller(&client);
    let seen = observe(mesh_http_routes(&client));
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&(100, 0, false, 0)), "{seen:?}");
    assert!(seen.contains(&(100, 0, false, 2)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(100, 0, false, 0)), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_kuma_says_so_and_nothing_is_made() {
    let (_cluster, client) = setup_with(kuma(json!({}))).await;
    let _stop = start_controller(&client);
    let (reason, message) = refusal(&client).await;
    assert_eq!(reason, "InvalidSpec");
    assert_eq!(
        message,
        "spec.provider: this cluster serves neither TrafficRoute nor MeshHTTPRoute (kuma.io/v1alpha1); install Kuma's CRDs"
    );
    nothing_made(&client).await;
}

//! Scenarios for the Gloo router on serin::sim with the official RouteTable and Upstream CRDs
//! installed: a mirrored canary run with the weights observed at each step and the built-in
//! checks answered by a real Prometheus from the canary Upstream's Envoy cluster, an A/B run with
//! its match routes, rollbacks on failing metrics and on a canary that never becomes ready, a hand
//! edit repaired (with the Upstreams as the template is now), all traffic to the target on
//! deletion, a user's RouteTable taken over and given back whole, and a cluster without Gloo or a
//! missing template Upstream refused before anything is made.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::prometheus::{Prometheus, series};
use common::scenario::{
    set_image, setup_with, start_controller, start_controller_with, wait_object, wait_phase,
    wait_status,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use serin::api::CanaryPhase;
use serin::controller::Settings;

const PRIMARY_UP: &str = "test-podinfo-primaryupstream-80";
const CANARY_UP: &str = "test-podinfo-canaryupstream-80";

async fn install_gloo(client: &kube::Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for file in [
        "gateway.solo.io_v1_RouteTable.yaml",
        "gloo.solo.io_v1_Upstream.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/crds/gloo")
            .join(file);
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
}

fn api(client: &kube::Client, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, "v1", kind);
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn tables(client: &kube::Client) -> Api<DynamicObject> {
    api(client, "gateway.solo.io", "RouteTable", "routetables")
}

fn upstreams(client: &kube::Client) -> Api<DynamicObject> {
    api(client, "gloo.solo.io", "Upstream", "upstreams")
}

async fn get(api: &Api<DynamicObject>, name: &str) -> Option<Value> {
    let o = api.get_opt(name).await.unwrap();
    o.map(|o| serde_json::to_value(o).unwrap())
}

async fn table(client: &kube::Client) -> Option<Value> {
    get(&tables(client), "podinfo").await
}

/// (primary weight, canary weight, shadowed to the canary, routes with matchers) of the
/// RouteTable's route without matchers; a weight it does not list is -1.
type State = (i64, i64, bool, usize);

fn state(t: &Value) -> State {
    let routes = t["spec"]["routes"].as_array().cloned().unwrap_or_default();
    let matched = routes.iter().filter(|r| r["matchers"].is_array()).count();
    let Some(main) = routes.iter().find(|r| r["matchers"].is_null()) else {
        return (-1, -1, false, matched);
    };
    let w = |name: &str| {
        main["routeAction"]["multi"]["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["upstream"]["name"] == name)
            .map(|d| d["weight"].as_i64().unwrap_or(0))
            .unwrap_or(-1)
    };
    let shadowed = main["options"]["shadowing"]["upstream"]["name"] == CANARY_UP;
    (w(PRIMARY_UP), w(CANARY_UP), shadowed, matched)
}

/// Every distinct state while the test runs.
fn observe(client: &kube::Client) -> Arc<Mutex<Vec<State>>> {
    let client = client.clone();
    common::routes::observe(
        move || {
            let c = client.clone();
            async move { table(&c).await }
        },
        state,
    )
}

fn gloo(analysis: Value) -> Value {
    let mut spec = json!({"provider": "gloo", "service": {"port": 80, "targetPort": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

async fn start(spec: Value) -> (serin::sim::Cluster, kube::Client) {
    let (cluster, client) = setup_with(spec).await;
    install_gloo(&client).await;
    (cluster, client)
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

/// Envoy's request counters for the two Upstreams' clusters, named as Gloo names them
/// (`<upstream>_<namespace>`): the canary answers `ok` and `failed` requests per second; the
/// primary fails everything, so a query that also read the primary could not pass.
fn envoy_traffic(ok: f64, failed: f64) -> String {
    let mut om = String::new();
    let rq = |om: &mut String, cluster: &str, code: &str, rate: f64| {
        let labels = format!(r#"envoy_cluster_name="{cluster}_test",envoy_response_code="{code}""#);
        series(om, &format!("envoy_cluster_upstream_rq{{{labels}}}"), rate);
    };
    rq(&mut om, CANARY_UP, "200", ok);
    if failed > 0.0 {
        rq(&mut om, CANARY_UP, "503", failed);
    }
    rq(&mut om, PRIMARY_UP, "503", 50.0);
    om
}

fn success_rate_check() -> Value {
    json!([{"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_canary_run_moves_the_routetable_weights_with_the_builtin_check_passing() {
    let prom = Prometheus::start(&envoy_traffic(100.0, 0.0));
    let mut spec =
        gloo(json!({"mirror": true, "mirrorWeight": 20, "metrics": success_rate_check()}));
    spec["upstreamRef"] =
        json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "tpl"});
    let (cluster, client) = start(spec).await;
    create_template(
        &client,
        json!({"kube": {"serviceName": "podinfo", "serviceNamespace": "test", "servicePort": 80},
            "useHttp2": true, "loadBalancerConfig": {"leastRequest": {"choiceCount": 2}},
            "healthChecks": [{"timeout": "1s"}]}),
    )
    .await;
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    let _stop = start_controller_with(&client, settings);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
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
    let checked: Vec<Option<f64>> = c
        .status
        .unwrap()
        .decisions
        .iter()
        .flat_map(|d| d.checks.iter().map(|c| c.value))
        .collect();
    assert!(
        !checked.is_empty() && checked.iter().all(|v| *v == Some(100.0)),
        "{checked:?}"
    );
    let t = table(&client).await.unwrap();
    assert_eq!(t["metadata"]["ownerReferences"][0]["kind"], "Canary");
    assert_eq!(t["spec"]["routes"][0]["inheritablePathMatchers"], true);
    for (name, service) in [
        (PRIMARY_UP, "podinfo-primary"),
        (CANARY_UP, "podinfo-canary"),
    ] {
        let up = get(&upstreams(&client), name).await.unwrap();
        assert_eq!(up["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert_eq!(
            up["spec"],
            json!({"kube": {"serviceName": service, "serviceNamespace": "test", "servicePort": 80},
                "useHttp2": true, "loadBalancerConfig": {"leastRequest": {"choiceCount": 2}}}),
            "{name}: the template's settings, not its health checks or destination"
        );
    }
    common::scenario::assert_calls_are_granted(&cluster, &["gloo"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_run_sends_each_match_entry_to_the_canary_ahead_of_the_weights() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2, "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"user-agent": {"prefix": "Mobile+"}}, "queryParams": {"beta": {"exact": "on"}}}]});
    let (_cluster, client) = start(gloo(ab)).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    let during = wait_object(
        "A/B routes",
        || async { table(&client).await.unwrap_or_default() },
        |t| state(t).3 == 2,
    )
    .await;
    let routes = during["spec"]["routes"].as_array().unwrap();
    assert_eq!(
        routes[0]["matchers"],
        json!([{"headers": [{"name": "x-canary", "value": "insider"}]}])
    );
    assert_eq!(
        routes[1]["matchers"],
        json!([{"headers": [{"name": "user-agent", "value": "Mobile\\+.*", "regex": true}],
            "queryParameters": [{"name": "beta", "value": "on"}]}])
    );
    for r in &routes[..2] {
        assert_eq!(r["inheritablePathMatchers"], true);
        assert_eq!(
            r["routeAction"]["multi"]["destinations"],
            json!([{"destination": {"upstream": {"name": PRIMARY_UP, "namespace": "test"}}, "weight": 0},
                {"destination": {"upstream": {"name": CANARY_UP, "namespace": "test"}}, "weight": 100}])
        );
    }
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(100, 0, false, 0), (100, 0, false, 2), (100, 0, false, 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_success_rate_rolls_the_weights_back() {
    let prom = Prometheus::start(&envoy_traffic(6.0, 2.0));
    let (_cluster, client) = start(gloo(json!({"metrics": success_rate_check()}))).await;
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    let _stop = start_controller_with(&client, settings);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    assert_eq!(st.failed_checks, 2);
    let values: Vec<Option<f64>> = st
        .decisions
        .iter()
        .flat_map(|d| d.checks.iter().map(|c| c.value))
        .collect();
    assert!(
        values
            .iter()
            .all(|v| v.is_some_and(|v| (v - 75.0).abs() < 1e-9)),
        "the canary Upstream's 75%, not the primary's 0%: {values:?}"
    );
    wait_object(
        "weights back",
        || async { table(&client).await.unwrap() },
        |t| state(t) == (100, 0, false, 0),
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.1 <= 50), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_becomes_ready_gets_no_traffic_and_is_rolled_back() {
    let mut spec = gloo(json!({}));
    spec["progressDeadlineSeconds"] = json!(2);
    let (_cluster, client) = start(spec).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(
        &client,
        "podinfo:broken",
        json!({"sim.serin.io/ready": "false"}),
    )
    .await;
    wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*seen.lock().unwrap(), [(100, 0, false, 0)]);
}

async fn create_template(client: &kube::Client, spec: Value) {
    let template: DynamicObject = serde_json::from_value(json!({"apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream", "metadata": {"name": "tpl"}, "spec": spec}))
    .unwrap();
    upstreams(client)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_edited_by_hand_are_put_back_with_the_upstreams_as_the_template_is_now() {
    let mut spec = gloo(json!({}));
    spec["upstreamRef"] =
        json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "tpl"});
    let (_cluster, client) = start(spec).await;
    create_template(&client, json!({"useHttp2": false})).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let up = get(&upstreams(&client), CANARY_UP).await.unwrap();
    assert_eq!(up["spec"]["useHttp2"], false);
    // The template changes and an Upstream is deleted: both are put right with the weights.
    let http2 = json!({"spec": {"useHttp2": true}});
    upstreams(&client)
        .patch("tpl", &PatchParams::default(), &Patch::Merge(http2))
        .await
        .unwrap();
    upstreams(&client)
        .delete(PRIMARY_UP, &Default::default())
        .await
        .unwrap();
    let edit: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/routes/0/routeAction/multi/destinations/0/weight", "value": 40},
        {"op": "replace", "path": "/spec/routes/0/routeAction/multi/destinations/1/weight", "value": 60}
    ]))
    .unwrap();
    tables(&client)
        .patch("podinfo", &PatchParams::default(), &Patch::<()>::Json(edit))
        .await
        .unwrap();
    common::scenario::poke_target(&client, "1").await;
    wait_object(
        "repaired",
        || async { table(&client).await.unwrap() },
        |t| state(t) == (100, 0, false, 0),
    )
    .await;
    let notes = common::scenario::event_notes(&client, "RoutesRepaired").await;
    assert_eq!(
        notes,
        ["routes of podinfo.test were 40/60 (primary/canary), restored to 100/0"]
    );
    for name in [PRIMARY_UP, CANARY_UP] {
        let up = get(&upstreams(&client), name).await;
        assert_eq!(up.unwrap()["spec"]["useHttp2"], true, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_sends_everything_to_the_target() {
    let mut spec = gloo(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
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
async fn a_users_routetable_is_taken_over_and_given_back_whole() {
    let mut spec = gloo(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = start(spec).await;
    let user: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "gateway.solo.io/v1", "kind": "RouteTable",
        "metadata": {"name": "podinfo", "labels": {"team": "shop"}},
        "spec": {"weight": 5, "routes": [{"matchers": [{"prefix": "/"}],
            "routeAction": {"single": {"upstream": {"name": "podinfo-v1", "namespace": "test"}}}}]}}),
    )
    .unwrap();
    tables(&client)
        .create(&PostParams::default(), &user)
        .await
        .unwrap();
    let before = table(&client).await.unwrap();
    let _stop = start_controller(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let during = table(&client).await.unwrap();
    assert_eq!(state(&during), (100, 0, false, 0));
    assert!(
        during["metadata"]["ownerReferences"].is_null(),
        "never owned"
    );
    assert_eq!(during["spec"]["weight"], 5, "the user's fields stay");
    common::scenario::delete_canary_and_wait(&client).await;
    let after = table(&client).await.unwrap();
    assert_eq!(after["spec"], before["spec"], "the user's spec is back");
    assert!(after["metadata"]["annotations"][serin::router::ORIGINAL_SPEC].is_null());
}

async fn invalid_spec_message(client: &kube::Client) -> String {
    let st = wait_status(client, "Ready=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = common::scenario::ready_condition(&st).unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    ready.message.unwrap_or_default()
}

async fn nothing_made(client: &kube::Client) {
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_template_upstream_is_an_invalid_spec_and_nothing_is_made() {
    let mut spec = gloo(json!({}));
    spec["upstreamRef"] =
        json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "nope"});
    let (_cluster, client) = start(spec).await;
    let _stop = start_controller(&client);
    assert_eq!(
        invalid_spec_message(&client).await,
        "spec.upstreamRef: Upstream test/nope not found"
    );
    nothing_made(&client).await;
    assert!(table(&client).await.is_none());
    assert!(get(&upstreams(&client), CANARY_UP).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_gloo_says_so_and_nothing_is_made() {
    let (_cluster, client) = setup_with(gloo(json!({}))).await;
    let _stop = start_controller(&client);
    assert_eq!(
        invalid_spec_message(&client).await,
        "spec.provider: this cluster does not serve RouteTable (gateway.solo.io/v1) or Upstream (gloo.solo.io/v1); install Gloo's CRDs"
    );
    nothing_made(&client).await;
}

//! Scenarios for the Skipper router on serin::sim (Ingress through the stand-in CRD of
//! common::ingress): the backend-weights and predicate annotations of `podinfo-canary` observed
//! exactly at each step of a canary run, a rollback, a hand edit repaired, a taken-over canary
//! Ingress given back whole on deletion, all traffic to the target on deletion, and an A/B match
//! (which Skipper cannot express) refused before anything is made.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ingress;
use common::scenario::{set_image, setup_with, start_controller, wait_phase, wait_status};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

const WEIGHTS: &str = "zalando.org/backend-weights";
const PREDICATE: &str = "zalando.org/skipper-predicate";

/// (backend-weights, skipper-predicate) of an Ingress.
type State = (String, String);

fn state(ing: &Value) -> State {
    let a = &ing["metadata"]["annotations"];
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
    (s(WEIGHTS), s(PREDICATE))
}

/// The state Serin writes at canary weight `w`.
fn at(w: i32) -> State {
    let predicate = if w > 0 { "Weight(100)" } else { "False()" };
    (
        format!(r#"{{"podinfo-canary":{w},"podinfo-primary":{}}}"#, 100 - w),
        predicate.to_string(),
    )
}

/// Records every distinct state of `podinfo-canary`, polling every 20 ms.
fn observe(client: &kube::Client) -> Arc<Mutex<Vec<State>>> {
    let seen: Arc<Mutex<Vec<State>>> = Default::default();
    let (client, log) = (client.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            if let Some(ing) = ingress::get(&client, "podinfo-canary").await {
                let s = state(&ing);
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

fn skipper(analysis: Value) -> Value {
    let mut spec = json!({"provider": "skipper",
        "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
        "service": {"port": 80, "targetPort": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

async fn start(spec: Value) -> (serin::sim::Cluster, kube::Client, Value) {
    let (cluster, client) = setup_with(spec).await;
    ingress::install(&client).await;
    let user = ingress::create_user_ingress(
        &client,
        json!({"metadata": {"annotations": {"kubernetes.io/ingress.class": "skipper", PREDICATE: "Header(\"X-Env\", \"prod\")"}}}),
    )
    .await;
    (cluster, client, user)
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_run_moves_the_backend_weights_step_by_step() {
    let (cluster, client, user) = start(skipper(json!({}))).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let with_users = |(w, p): State| (w, format!(r#"{p} && Header("X-Env", "prod")"#));
    assert_eq!(
        *seen.lock().unwrap(),
        [at(0), at(25), at(50), at(0)].map(with_users)
    );
    let copy = ingress::get(&client, "podinfo-canary").await.unwrap();
    let paths = &copy["spec"]["rules"][0]["http"]["paths"];
    let backends: Vec<&str> = paths
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["backend"]["service"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(backends, ["podinfo-primary", "static", "podinfo-canary"]);
    assert_eq!(
        copy["metadata"]["annotations"]["kubernetes.io/ingress.class"],
        "skipper"
    );
    assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
    let after = ingress::get(&client, "podinfo").await.unwrap();
    assert_eq!(
        after["spec"], user["spec"],
        "the user's Ingress is never written"
    );
    assert_eq!(
        after["metadata"]["annotations"],
        user["metadata"]["annotations"]
    );
    common::scenario::assert_calls_are_granted(&cluster, &["skipper"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_turns_the_copy_off_again() {
    let gate = common::receiver::start(Arc::new(|_, before| {
        Some(if before == 0 { 200 } else { 500 })
    }))
    .await;
    let hooks = json!({"threshold": 1, "maxWeight": 75, "webhooks": [{"name": "gate", "type": "rollout",
        "url": format!("{}/gate", gate.url), "timeout": "1s"}]});
    let (_cluster, client, _) = start(skipper(hooks)).await;
    let _stop = start_controller(&client);
    let seen = observe(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let weights: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(weights, [at(0).0, at(25).0, at(50).0, at(0).0]);
    assert!(
        seen.lock()
            .unwrap()
            .last()
            .unwrap()
            .1
            .starts_with("False()")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edited_weights_are_put_back() {
    let (_cluster, client, _) = start(skipper(json!({}))).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let edit = json!({"metadata": {"annotations": {WEIGHTS: r#"{"podinfo-canary":50,"podinfo-primary":50}"#, PREDICATE: "Weight(100)"}}});
    ingress::api(&client)
        .patch(
            "podinfo-canary",
            &PatchParams::default(),
            &Patch::Merge(edit),
        )
        .await
        .unwrap();
    common::scenario::poke_target(&client, "1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = state(&ingress::get(&client, "podinfo-canary").await.unwrap());
        if now.0 == at(0).0 && now.1.starts_with("False()") {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_ingress_that_was_there_is_taken_over_and_given_back_whole() {
    let mut spec = skipper(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client, _) = start(spec).await;
    let leftover = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "podinfo-canary", "annotations": {WEIGHTS: r#"{"podinfo-canary":0,"podinfo-primary":100}"#, PREDICATE: "False()"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo-primary", "port": {"number": 80}}}}]}}]}});
    ingress::api(&client)
        .create(
            &Default::default(),
            &serde_json::from_value(leftover).unwrap(),
        )
        .await
        .unwrap();
    let before = ingress::get(&client, "podinfo-canary").await.unwrap();
    let _stop = start_controller(&client);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let during = ingress::get(&client, "podinfo-canary").await.unwrap();
    assert!(during["metadata"]["ownerReferences"].is_null());
    assert_eq!(
        during["spec"]["rules"][0]["http"]["paths"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    common::scenario::delete_canary_and_wait(&client).await;
    let after = ingress::get(&client, "podinfo-canary").await.unwrap();
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(
        after["metadata"]["annotations"],
        before["metadata"]["annotations"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_sends_everything_to_the_target_through_serins_copy() {
    let mut spec = skipper(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client, _) = start(spec).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let seen = observe(&client);
    common::scenario::delete_canary_and_wait(&client).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let weights: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert!(weights.contains(&at(100).0), "{weights:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_match_is_an_invalid_spec_and_nothing_is_made() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    let (_cluster, client, _) = start(skipper(ab)).await;
    let _stop = start_controller(&client);
    let st = wait_status(&client, "Ready=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = common::scenario::ready_condition(&st).unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready.message.as_deref().unwrap_or_default().starts_with(
            "spec.analysis.match: the skipper provider splits traffic by backend weights only"
        ),
        "{ready:?}"
    );
    let warnings = common::scenario::event_notes(&client, "InvalidSpec").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let deploys: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
    assert!(ingress::get(&client, "podinfo-canary").await.is_none());
}

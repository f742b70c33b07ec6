//! Scenarios for the NGINX router on serin::sim (Ingress through the stand-in CRD of
//! common::ingress): the canary annotations of `podinfo-canary` observed exactly at each step of a
//! canary run, A/B testing by header and cookie, a rollback, a hand edit (a changed weight and a
//! stray A/B key) repaired, a taken-over canary Ingress given back whole on deletion, a custom
//! annotation prefix, and a missing Ingress refused before anything is made.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ingress;
use common::scenario::{set_image, setup_with, start_controller, wait_phase, wait_status};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

const P: &str = "nginx.ingress.kubernetes.io/";

/// The canary annotations of an Ingress, without the prefix (`canary`, `canary-weight`, ...).
fn canary_keys(ing: &Value, prefix: &str) -> BTreeMap<String, String> {
    ing["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let short = k.strip_prefix(prefix)?;
            short
                .starts_with("canary")
                .then(|| (short.to_string(), v.as_str().unwrap().to_string()))
        })
        .collect()
}

fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn weight(w: &str) -> BTreeMap<String, String> {
    keys(&[("canary", "true"), ("canary-weight", w)])
}

/// Records every distinct set of canary annotations of `podinfo-canary`, polling every 20 ms.
fn observe(
    client: &kube::Client,
    prefix: &'static str,
) -> Arc<Mutex<Vec<BTreeMap<String, String>>>> {
    let seen: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Default::default();
    let (client, log) = (client.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            if let Some(ing) = ingress::get(&client, "podinfo-canary").await {
                let k = canary_keys(&ing, prefix);
                let mut l = log.lock().unwrap();
                if l.last() != Some(&k) {
                    l.push(k);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

fn nginx(analysis: Value) -> Value {
    let mut spec = json!({"provider": "nginx",
        "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
        "service": {"port": 80, "targetPort": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 25, "maxWeight": 50}});
    json_patch::merge(&mut spec["analysis"], &analysis);
    spec
}

async fn new_revision(client: &kube::Client) -> String {
    let first = common::scenario::initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_run_moves_the_canary_weight_annotation_step_by_step() {
    let (cluster, client) = setup_with(nginx(json!({}))).await;
    ingress::install(&client).await;
    let user = ingress::create_user_ingress(&client, json!({})).await;
    let _stop = start_controller(&client);
    let seen = observe(&client, P);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [weight("0"), weight("25"), weight("50"), weight("0")]
    );
    let copy = ingress::get(&client, "podinfo-canary").await.unwrap();
    assert_eq!(
        copy["metadata"]["annotations"],
        json!({"kubernetes.io/ingress.class": "nginx", "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
            "kustomize.toolkit.fluxcd.io/reconcile": "disabled", "helm.toolkit.fluxcd.io/driftDetection": "disabled",
            "nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0"})
    );
    assert_eq!(copy["metadata"]["labels"], json!({"app": "podinfo"}));
    assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
    let paths = &copy["spec"]["rules"][0]["http"]["paths"];
    assert_eq!(paths[0]["backend"]["service"]["name"], "podinfo-canary");
    assert_eq!(paths[1]["backend"]["service"]["name"], "static");
    let after = ingress::get(&client, "podinfo").await.unwrap();
    assert_eq!(
        after["spec"], user["spec"],
        "the user's Ingress is never written"
    );
    assert_eq!(
        after["metadata"]["annotations"],
        user["metadata"]["annotations"]
    );
    common::scenario::assert_calls_are_granted(&cluster, &["nginx"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_testing_routes_by_header_and_cookie_and_leaves_no_stale_key() {
    let ab = json!({"stepWeight": null, "maxWeight": null, "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}, {"headers": {"cookie": {"exact": "canary"}}}]});
    let (_cluster, client) = setup_with(nginx(ab)).await;
    ingress::install(&client).await;
    ingress::create_user_ingress(&client, json!({})).await;
    let _stop = start_controller(&client);
    let seen = observe(&client, P);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ab_keys = keys(&[
        ("canary", "true"),
        ("canary-weight", "0"),
        ("canary-by-header", "x-canary"),
        ("canary-by-header-value", "insider"),
        ("canary-by-cookie", "canary"),
    ]);
    assert_eq!(*seen.lock().unwrap(), [weight("0"), ab_keys, weight("0")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_rolls_the_weight_back_to_zero() {
    let gate = common::receiver::start(Arc::new(|_, before| {
        Some(if before == 0 { 200 } else { 500 })
    }))
    .await;
    // The gate passes once (the step to 50), then fails: rolled back before maxWeight 75.
    let hooks = json!({"threshold": 1, "maxWeight": 75, "webhooks": [{"name": "gate", "type": "rollout", "url": format!("{}/gate", gate.url), "timeout": "1s"}]});
    let (_cluster, client) = setup_with(nginx(hooks)).await;
    ingress::install(&client).await;
    ingress::create_user_ingress(&client, json!({})).await;
    let _stop = start_controller(&client);
    let seen = observe(&client, P);
    let first = new_revision(&client).await;
    wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [weight("0"), weight("25"), weight("50"), weight("0")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edited_weight_and_a_stray_ab_key_are_put_back() {
    let (_cluster, client) = setup_with(nginx(json!({}))).await;
    ingress::install(&client).await;
    ingress::create_user_ingress(&client, json!({})).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let edit = json!({"metadata": {"annotations": {
        "nginx.ingress.kubernetes.io/canary-weight": "50", "nginx.ingress.kubernetes.io/canary-by-header": "x-stray"}}});
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
        let now = canary_keys(&ingress::get(&client, "podinfo-canary").await.unwrap(), P);
        if now == weight("0") {
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
    let mut spec = nginx(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = setup_with(spec).await;
    ingress::install(&client).await;
    ingress::create_user_ingress(&client, json!({})).await;
    // What Flagger left behind: weight 0 and a stale A/B key.
    let leftover = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "podinfo-canary", "annotations": {"nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "0", "nginx.ingress.kubernetes.io/canary-by-header": "x-old"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo-canary", "port": {"number": 80}}}}]}}]}});
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
    assert_eq!(
        canary_keys(&during, P),
        weight("0"),
        "the stale key is gone"
    );
    assert!(during["metadata"]["ownerReferences"].is_null());
    assert_eq!(
        during["spec"]["rules"][0]["http"]["paths"][1]["backend"]["service"]["name"],
        "static"
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
    let mut spec = nginx(json!({"stepWeight": null, "maxWeight": null, "iterations": 1}));
    spec["revertOnDeletion"] = json!(true);
    let (_cluster, client) = setup_with(spec).await;
    ingress::install(&client).await;
    ingress::create_user_ingress(&client, json!({})).await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    let seen = observe(&client, P);
    common::scenario::delete_canary_and_wait(&client).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The owned copy is garbage-collected after it sent all traffic to the target.
    assert!(seen.lock().unwrap().contains(&weight("100")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_annotation_prefix_follows_the_controller_flag() {
    let (_cluster, client) = setup_with(nginx(json!({}))).await;
    ingress::install(&client).await;
    ingress::create_user_ingress(&client, json!({})).await;
    let settings = serin::controller::Settings {
        ingress_annotations_prefix: "ingress.example.com".into(),
        ..Default::default()
    };
    let _stop = common::scenario::start_controller_with(&client, settings);
    common::scenario::initialized_revision(&client).await;
    let copy = ingress::get(&client, "podinfo-canary").await.unwrap();
    assert_eq!(canary_keys(&copy, "ingress.example.com/"), weight("0"));
    assert!(canary_keys(&copy, P).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ingress_is_an_invalid_spec_and_nothing_is_made() {
    let (_cluster, client) = setup_with(nginx(json!({}))).await;
    ingress::install(&client).await;
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
        Some("spec.ingressRef: Ingress podinfo not found in namespace test")
    );
    let warnings = common::scenario::event_notes(&client, "InvalidSpec").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let deploys: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
    assert!(ingress::get(&client, "podinfo-canary").await.is_none());
}

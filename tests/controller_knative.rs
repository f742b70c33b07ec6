//! Scenarios for the knative provider on serin::sim with the official Knative Service CRD and a
//! stand-in for Knative's controller (tests/common/knative.rs): initialisation records the first
//! revision as the primary and gives it all traffic; a new revision gets 25% then 50%, is
//! promoted (the annotation and all traffic move to it) and Serin never creates a Deployment or a
//! Service; a revision that fails is rolled back to the primary revision; deletion with
//! revertOnDeletion gives everything to the latest revision and removes the annotation.

mod common;

use std::time::Duration;

use common::knative::{get, install, set_image};
use common::scenario::{create_canary, start_cluster, start_controller, wait_object, wait_phase};
use kube::api::Api;
use serde_json::{Value, json};
use serin::api::CanaryPhase;

const ANNOTATION: &str = "serin.io/primary-revision";

/// (primary-revision annotation, spec.traffic as (revision or "latest", percent)).
type State = (String, Vec<(String, i64)>);

fn state(ksvc: &Value) -> State {
    let traffic = ksvc["spec"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let who = if t["latestRevision"] == true {
                "latest".to_string()
            } else {
                t["revisionName"].as_str().unwrap_or("?").to_string()
            };
            (who, t["percent"].as_i64().unwrap_or(-1))
        })
        .collect();
    let annotation = ksvc["metadata"]["annotations"][ANNOTATION]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (annotation, traffic)
}

fn s(annotation: &str, primary: Option<(&str, i64)>, latest: i64) -> State {
    let mut traffic: Vec<(String, i64)> = primary
        .into_iter()
        .map(|(r, p)| (r.to_string(), p))
        .collect();
    traffic.push(("latest".into(), latest));
    (annotation.to_string(), traffic)
}

/// A cluster with Knative (the CRD, the stand-in, the Knative Service podinfo) and a knative
/// Canary on it, without spec.service, as Flagger's tutorial writes it.
async fn start() -> (serin::sim::Cluster, kube::Client, common::knative::Standin) {
    let (cluster, client) = start_cluster().await;
    let standin = install(&client).await;
    let spec = json!({"provider": "knative", "revertOnDeletion": true,
        "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
        "analysis": {"interval": "1s", "threshold": 2, "stepWeight": 25, "maxWeight": 50}});
    create_canary(&client, spec, &json!({})).await;
    (cluster, client, standin)
}

async fn wait_state(client: &kube::Client, want: State) -> Value {
    let c = client.clone();
    wait_object(
        &format!("Knative Service in state {want:?}"),
        move || {
            let c = c.clone();
            async move { get(&c).await.unwrap_or_default() }
        },
        move |o| state(o) == want,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_is_stepped_up_promoted_and_the_canary_finalized() {
    let (cluster, client, _standin) = start().await;
    let _stop = start_controller(&client);
    let seen = common::routes::observe(
        {
            let c = client.clone();
            move || {
                let c = c.clone();
                async move { get(&c).await }
            }
        },
        state,
    );
    let first = common::scenario::initialized_revision(&client).await;
    assert_eq!(first, "podinfo-00001", "the revision is Knative's name");
    wait_state(&client, s("podinfo-00001", Some(("podinfo-00001", 100)), 0)).await;

    set_image(&client, "podinfo:6.0.1", true).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    assert_eq!(st.last_promoted_spec.as_deref(), Some("podinfo-00002"));
    let ksvc = wait_state(&client, s("podinfo-00002", Some(("podinfo-00002", 100)), 0)).await;
    assert_eq!(ksvc["status"]["traffic"][0]["percent"], 100);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let states = seen.lock().unwrap().clone();
    // Every traffic block Serin wrote sums to 100, as Knative's admission webhook demands.
    for (_, traffic) in &states {
        if !traffic.is_empty() {
            assert_eq!(traffic.iter().map(|t| t.1).sum::<i64>(), 100, "{states:?}");
        }
    }
    // Promotion renames the primary share to the promoted revision (annotation and traffic in
    // one write), then routes all of it there; the next tick may come before the 20 ms poll
    // sees the first of the two.
    let promoting = s("podinfo-00002", Some(("podinfo-00002", 50)), 50);
    let written: Vec<State> = states
        .into_iter()
        .filter(|s| !s.1.is_empty() && *s != promoting)
        .collect();
    assert_eq!(
        written,
        [
            s("podinfo-00001", Some(("podinfo-00001", 100)), 0),
            s("podinfo-00001", Some(("podinfo-00001", 75)), 25),
            s("podinfo-00001", Some(("podinfo-00001", 50)), 50),
            s("podinfo-00002", Some(("podinfo-00002", 100)), 0),
        ]
    );
    // No copies: Serin made no Deployment and no Service.
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "test");
    assert!(
        deploys
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "test");
    assert!(
        services
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    common::scenario::assert_calls_are_granted(&cluster, &["knative"], false);
    // Knative's status lagging behind spec.traffic is not taken for a hand edit.
    let warnings = warnings(&client).await;
    assert!(warnings.is_empty(), "{warnings:?}");

    // revertOnDeletion: everything to the latest revision, the annotation gone.
    common::scenario::delete_canary_and_wait(&client).await;
    let ksvc = get(&client).await.unwrap();
    assert_eq!(state(&ksvc), s("", None, 100));
    assert!(ksvc["metadata"]["annotations"][ANNOTATION].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_fails_is_rolled_back_to_the_primary_revision() {
    let (_cluster, client, _standin) = start().await;
    let _stop = start_controller(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(&client, "podinfo:broken", false).await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    assert_eq!(st.last_applied_spec.as_deref(), Some("podinfo-00002"));
    assert_eq!(st.canary_weight, 0);
    let why = st
        .decisions
        .last()
        .map(|d| d.action.clone())
        .unwrap_or_default();
    assert!(
        why.contains("revision podinfo-00002 failed: RevisionFailed"),
        "{why}"
    );
    let ksvc = wait_state(&client, s("podinfo-00001", Some(("podinfo-00001", 100)), 0)).await;
    assert_eq!(ksvc["status"]["latestReadyRevisionName"], "podinfo-00001");

    // A fixed revision rolls out from the same primary.
    set_image(&client, "podinfo:6.0.2", true).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some("podinfo-00002")).await;
    assert_eq!(
        c.status.unwrap().last_promoted_spec.as_deref(),
        Some("podinfo-00003")
    );
    wait_state(&client, s("podinfo-00003", Some(("podinfo-00003", 100)), 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_status_traffic_is_unknown_not_a_crash() {
    let (_cluster, client, standin) = start().await;
    let _stop = start_controller(&client);
    common::scenario::initialized_revision(&client).await;
    // Knative's controller goes away and someone leaves a status.traffic without latestRevision
    // or percent (Flagger dereferences a nil pointer there).
    drop(standin);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let broken = json!({"status": {"traffic": [{"revisionName": "podinfo-00001"}]}});
    common::knative::services(&client)
        .patch_status(
            "podinfo",
            &Default::default(),
            &kube::api::Patch::Merge(broken),
        )
        .await
        .unwrap();
    // The controller keeps reconciling (it reads the routes at every reconcile): an operator's
    // pause is acted on, and the Canary stays Initialized and Ready, the weights unknown rather
    // than "repaired".
    let api: Api<serin::api::Canary> = Api::namespaced(client.clone(), "test");
    let pause = json!({"metadata": {"annotations": {"serin.io/action": "pause@1"}}});
    api.patch(
        "podinfo",
        &Default::default(),
        &kube::api::Patch::Merge(pause),
    )
    .await
    .unwrap();
    let st = common::scenario::wait_status(&client, "the pause acted on", |st| {
        st.last_action.as_deref() == Some("pause@1")
    })
    .await;
    assert_eq!(st.phase, CanaryPhase::Initialized);
    let ready = common::scenario::ready_condition(&st).unwrap();
    assert_eq!(ready.status, "True", "{ready:?}");
    let ksvc = get(&client).await.unwrap();
    assert_eq!(
        ksvc["status"]["traffic"],
        json!([{"revisionName": "podinfo-00001"}])
    );
    assert_eq!(
        state(&ksvc),
        s("podinfo-00001", Some(("podinfo-00001", 100)), 0),
        "nothing rewritten on an unknown reading"
    );
    assert!(warnings(&client).await.is_empty(), "no RoutesRepaired");
}

/// Every Warning Event in `test`: (reason, note).
async fn warnings(client: &kube::Client) -> Vec<(Option<String>, Option<String>)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "test");
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason, e.note))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_knative_serving_is_told_so() {
    let (_cluster, client) = start_cluster().await;
    let spec = json!({"provider": "knative",
        "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
        "analysis": {"interval": "1s", "threshold": 2, "stepWeight": 25, "maxWeight": 50}});
    create_canary(&client, spec, &json!({})).await;
    let _stop = start_controller(&client);
    let (reason, message) = common::routes::refusal(&client).await;
    assert_eq!(reason, "InvalidSpec", "{message}");
    assert_eq!(
        message,
        "spec.provider: this cluster does not serve services.serving.knative.dev (serving.knative.dev/v1); install Knative Serving"
    );
}

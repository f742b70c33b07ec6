//! Scenarios of the cluster's bad days on serin::sim with the real controller: a second Canary on a
//! target another Canary has (or on a copy Serin generated) is refused and touches nothing, and a
//! canary that never becomes ready is rolled back within its deadline even with the controller
//! restarted every few seconds.

mod common;

use std::time::Duration;

use common::scenario::{set_image, setup_with, start_controller, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::json;
use serin::api::{Canary, CanaryPhase};

/// The Canary `name`'s Ready condition once it has one with this reason (20 s at most).
async fn ready_condition(client: &kube::Client, name: &str, reason: &str) -> String {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let c = api.get(name).await.unwrap();
        let found = c
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.r#type == "Ready" && c.reason == reason);
        if let Some(c) = found {
            return c.message.clone().unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never got Ready reason {reason}: {:?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates Canary `name` with a spec like the scenario's own but for `target`.
async fn second_canary(client: &kube::Client, name: &str, target: &str) {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let mut c: serde_json::Value = serde_json::to_value(api.get("podinfo").await.unwrap()).unwrap();
    c["metadata"] = json!({"name": name});
    c["spec"]["targetRef"]["name"] = json!(target);
    c["spec"]["service"]["name"] = json!(name);
    c.as_object_mut().unwrap().remove("status");
    api.create(&Default::default(), &serde_json::from_value(c).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_canary_on_a_target_or_on_its_primary_is_refused_and_touches_nothing() {
    let (cluster, client) = setup_with(json!({})).await;
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let replicas = |d: Deployment| d.spec.unwrap().replicas;
    let primary_before = replicas(deploys.get("podinfo-primary").await.unwrap());
    second_canary(&client, "again", "podinfo").await;
    second_canary(&client, "thief", "podinfo-primary").await;
    let again = ready_condition(&client, "again", "InvalidSpec").await;
    assert_eq!(
        again,
        "spec.targetRef.name: Deployment podinfo is already the target of Canary podinfo (it owns podinfo-primary); a target can have one Canary"
    );
    let thief = ready_condition(&client, "thief", "InvalidSpec").await;
    assert!(thief.contains("Canary podinfo"), "{thief}");
    // Nothing of theirs was made, and the first Canary's app is untouched.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        replicas(deploys.get("podinfo-primary").await.unwrap()),
        primary_before
    );
    assert!(
        deploys
            .get_opt("podinfo-primary-primary")
            .await
            .unwrap()
            .is_none()
    );
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "test");
    assert!(services.get_opt("again-primary").await.unwrap().is_none());
    assert!(services.get_opt("thief").await.unwrap().is_none());
    let first: Api<Canary> = Api::namespaced(client.clone(), "test");
    let st = first.get("podinfo").await.unwrap().status.unwrap();
    assert_eq!(
        st.phase,
        CanaryPhase::Initialized,
        "the first Canary carries on"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_canary_fails_within_its_deadline_with_the_controller_restarted_every_few_seconds()
 {
    // progressDeadlineSeconds 6, interval 1s: Failed within 7 s of the rollout's start, whatever
    // the restarts — every clock is in status.
    let (_cluster, client) = setup_with(json!({"progressDeadlineSeconds": 6})).await;
    let mut stop = start_controller(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(
        &client,
        "podinfo:never",
        json!({"sim.serin.io/ready": "false"}),
    )
    .await;
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(stop);
        stop = start_controller(&client);
        let st = api.get("podinfo").await.unwrap().status.unwrap();
        if st.phase == CanaryPhase::Failed && st.last_applied_spec.as_deref() != Some(&first) {
            let last = &st.decisions.last().unwrap().action;
            assert!(last.contains("not ready for"), "{last}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not Failed 20 s after a 6 s deadline: {st:?}"
        );
    }
    let st = api.get("podinfo").await.unwrap().status.unwrap();
    let progressing_since = st
        .decisions
        .iter()
        .find(|d| d.action.starts_with("start rollout"))
        .map(|d| d.time)
        .unwrap();
    let failed_at = st.last_transition_time.unwrap();
    let took = (failed_at - progressing_since).num_milliseconds();
    assert!(
        (6000..=8000).contains(&took),
        "Failed {took} ms after the rollout started (deadline 6 s + one interval)"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while deploys.get("podinfo").await.unwrap().spec.unwrap().replicas != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "canary not scaled down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_plan_without_a_provider_is_refused_on_the_kubernetes_default_and_no_selector_moves()
 {
    // What a real cluster showed: no spec.provider (the controller's default is kubernetes) and
    // stepWeight 20 to 80 switched the apex selector to the canary "at weight 60".
    let (_cluster, client) = setup_with(json!({"provider": null,
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 20, "maxWeight": 80}}))
    .await;
    let _stop = start_controller(&client);
    let message = ready_condition(&client, "podinfo", "InvalidSpec").await;
    assert_eq!(
        message,
        "spec.analysis.iterations: the kubernetes provider cannot split traffic (it switches the Service selector, all users at once); use iterations (blue/green) or a mesh/gateway provider (spec.provider or the controller's --mesh-provider)"
    );
    // Nothing was made or moved: no primary, no Services, the target untouched.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "test");
    assert!(services.get_opt("podinfo").await.unwrap().is_none());
    let notes = common::scenario::event_notes(&client, "InvalidSpec").await;
    assert_eq!(notes, vec![message]);
}

//! Scenario: the real controller (kube::runtime::Controller + reconcile) against serin::sim runs a
//! blue/green Canary with the kubernetes provider: init, a new image to Succeeded, and a
//! ConfigMap change alone that ends with the primary on `<cm>-primary` holding the new data.

mod common;

use std::time::Duration;

use common::scenario::{
    image, set_image, setup, setup_with, start_controller, wait_phase, wait_status,
};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase};
use serin::controller::{self, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_runs_init_new_image_and_config_change_to_succeeded() {
    let (cluster, client) = setup().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(
        client.clone(),
        Some("test".into()),
        Settings::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let services: Api<Service> = Api::namespaced(client.clone(), "test");

    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(image(&primary), "podinfo:6.0.0");
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(0),
        "target scaled to 0 after init"
    );
    let apex = services.get("podinfo").await.unwrap();
    assert_eq!(
        apex.spec.unwrap().selector.unwrap()["app"],
        "podinfo-primary"
    );
    let first = c.status.unwrap().last_applied_spec.unwrap();

    deploys.patch("podinfo", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:6.0.1", "ports": [{"containerPort": 9898}], "envFrom": [{"configMapRef": {"name": "podinfo-config"}}]}]}}}}))).await.unwrap();
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.1"
    );
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(0),
        "canary scaled to 0 after promotion"
    );
    assert_eq!(
        services
            .get("podinfo")
            .await
            .unwrap()
            .spec
            .unwrap()
            .selector
            .unwrap()["app"],
        "podinfo-primary"
    );
    let phases: Vec<CanaryPhase> = c
        .status
        .as_ref()
        .unwrap()
        .decisions
        .iter()
        .map(|d| d.phase)
        .collect();
    assert!(
        phases.contains(&CanaryPhase::Progressing)
            && phases.contains(&CanaryPhase::Promoting)
            && phases.contains(&CanaryPhase::Finalising),
        "{phases:?}"
    );
    let second = c.status.unwrap().last_applied_spec.unwrap();

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "test");
    cms.patch(
        "podinfo-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"MESSAGE": "v2"}})),
    )
    .await
    .unwrap();
    wait_phase(&client, CanaryPhase::Succeeded, Some(&second)).await;
    let copy = cms.get("podinfo-config-primary").await.unwrap();
    assert_eq!(copy.data.unwrap()["MESSAGE"], "v2");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    let env_from = primary.spec.unwrap().template.spec.unwrap().containers[0]
        .env_from
        .clone()
        .unwrap();
    assert_eq!(
        env_from[0].config_map_ref.as_ref().unwrap().name,
        "podinfo-config-primary"
    );

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_that_never_becomes_ready_is_rolled_back_after_its_deadline() {
    let (_cluster, client) = setup_with(json!({"progressDeadlineSeconds": 2})).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    deploys
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"progressDeadlineSeconds": 2}})),
        )
        .await
        .unwrap();
    let _stop = start_controller(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(
        &client,
        "podinfo:broken",
        json!({"sim.serin.io/ready": "false"}),
    )
    .await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let last = c
        .status
        .as_ref()
        .unwrap()
        .decisions
        .last()
        .unwrap()
        .action
        .clone();
    // Whichever comes first: the deadline counted from status (a target scaled up from 0 after its
    // template changed is a completed rollout: no ProgressDeadlineExceeded on a real cluster), or
    // the Deployment's own ProgressDeadlineExceeded when its controller saw the scale-up and the
    // new template together.
    assert!(
        last.contains("not ready for 2s (progressDeadlineSeconds)")
            || last.contains("did not become ready: ReplicaSet"),
        "{last}"
    );
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(0),
        "canary scaled down"
    );
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.0",
        "primary untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_analysis_promotes_once_the_canary_is_ready_without_analysis_steps() {
    let (_cluster, client) = setup_with(json!({"skipAnalysis": true})).await;
    let _stop = start_controller(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(&client, "podinfo:6.0.2", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.2"
    );
    let decisions = c.status.unwrap().decisions;
    let actions: Vec<&str> = decisions.iter().map(|d| d.action.as_str()).collect();
    assert!(
        actions.contains(&"analysis skipped (skipAnalysis), canary ready; promoting"),
        "{actions:?}"
    );
    assert!(
        decisions.iter().all(|d| d.checks.is_empty())
            && !actions
                .iter()
                .any(|a| a.contains("iteration") || a.contains("pre-rollout")),
        "no analysis steps: {actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_gives_the_target_its_traffic_back() {
    let (cluster, client) = setup_with(json!({"revertOnDeletion": true})).await;
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    assert!(
        canaries
            .get("podinfo")
            .await
            .unwrap()
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"serin.io/finalizer".to_string())
    );
    canaries
        .delete("podinfo", &Default::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while canaries.get_opt("podinfo").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Canary was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(2),
        "target scaled back up"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    if let Some(apex) = services.get_opt("podinfo").await.unwrap() {
        assert_eq!(
            apex.spec.unwrap().selector.unwrap()["app"],
            "podinfo",
            "apex points at the target"
        );
    }
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_from_status_without_going_back() {
    let (_cluster, client) =
        setup_with(json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 4}})).await;
    let stop = start_controller(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(&client, "podinfo:6.0.3", json!({})).await;
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let before = wait_status(&client, "progress", |st| {
        st.phase == CanaryPhase::Progressing && st.iterations >= 1
    })
    .await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_stop = canaries.get("podinfo").await.unwrap().status.unwrap();
    let _again = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    common::scenario::assert_no_step_repeated(&c.status.unwrap().decisions);
    assert!(after_stop.iterations >= before.iterations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_image_mid_analysis_restarts_it_and_suspend_freezes_everything() {
    let (_cluster, client) =
        setup_with(json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 30}})).await;
    let _stop = start_controller(&client);
    let first = common::scenario::initialized_revision(&client).await;
    set_image(&client, "podinfo:6.1.0", json!({})).await;
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let mid = wait_status(&client, "progress", |st| {
        st.phase == CanaryPhase::Progressing && st.iterations >= 2
    })
    .await;
    set_image(&client, "podinfo:6.2.0", json!({})).await;
    let restarted = wait_status(&client, "the newer revision", |st| {
        st.last_applied_spec != mid.last_applied_spec
            && st.last_applied_spec.as_deref() != Some(first.as_str())
    })
    .await;
    assert_eq!(restarted.phase, CanaryPhase::Progressing);
    assert!(
        restarted.iterations < mid.iterations,
        "analysis did not restart: {} -> {}",
        mid.iterations,
        restarted.iterations
    );

    canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let frozen = canaries.get("podinfo").await.unwrap().status.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = canaries.get("podinfo").await.unwrap().status.unwrap();
    assert_eq!(
        (later.phase, later.iterations, later.last_step_time),
        (frozen.phase, frozen.iterations, frozen.last_step_time),
        "suspend changed the analysis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_hpa_gets_a_primary_copy() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let (cluster, client) = setup_with(json!({"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}})).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "test");
    hpas.create(&Default::default(), &serde_json::from_value(json!({
        "metadata": {"name": "podinfo"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}, "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
    })).unwrap()).await.unwrap();
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let copy = hpas.get("podinfo-primary").await.unwrap().spec;
    assert_eq!(copy.scale_target_ref.name, "podinfo-primary");
    assert_eq!((copy.min_replicas, copy.max_replicas), (Some(2), 4));
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_apex_service_is_adopted_not_owned() {
    let (_cluster, client) = setup_with(json!({})).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    services.create(&Default::default(), &serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "labels": {"team": "payments"}, "annotations": {"owner": "me"}},
        "spec": {"selector": {"app": "podinfo"}, "ports": [{"name": "http", "port": 80, "targetPort": 9898}]}
    })).unwrap()).await.unwrap();
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let apex = services.get("podinfo").await.unwrap();
    assert_eq!(
        apex.spec.as_ref().unwrap().selector.as_ref().unwrap()["app"],
        "podinfo-primary",
        "selector taken over"
    );
    assert_eq!(
        apex.metadata.labels.as_ref().unwrap()["team"],
        "payments",
        "user labels kept"
    );
    assert_eq!(apex.metadata.annotations.as_ref().unwrap()["owner"], "me");
    assert!(
        apex.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "an adopted Service must not be garbage-collected with the Canary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_target_is_a_condition_and_an_event_and_nothing_is_created() {
    let (cluster, client) = setup_with(
        json!({"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nope"}}),
    )
    .await;
    let _stop = start_controller(&client);
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let st = canaries
            .get("podinfo")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        if let Some(c) = st.conditions.iter().find(|c| c.r#type == "Ready") {
            break c.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no Ready condition");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TargetNotFound")
    );
    assert_eq!(
        ready.message.as_deref(),
        Some("Deployment nope.test not found")
    );
    let notes = common::scenario::event_notes(&client, "TargetNotFound").await;
    assert!(!notes.is_empty(), "a TargetNotFound event");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("nope-primary").await.unwrap().is_none());
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    for name in ["nope", "nope-primary", "nope-canary"] {
        assert!(
            services.get_opt(name).await.unwrap().is_none(),
            "{name} created half-way"
        );
    }
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

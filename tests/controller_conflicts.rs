//! Scenario: writes that lose a race (409 Conflict from the API server) are retried and never
//! surface as a failure: the rollout completes, no Warning Event is published, and the conflicts
//! show up only in `serin_reconcile_total{result="conflict"}`.

mod common;

use std::time::Duration;

use common::scenario::{image, set_image, setup, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use serde_json::json;
use serin::api::CanaryPhase;
use serin::controller::{self, Settings};
use serin::telemetry::ResultLabels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_on_writes_are_retried_not_reported() {
    let (cluster, client) = setup().await;
    let settings = Settings::default();
    let telemetry = settings.telemetry.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(
        client.clone(),
        Some("test".into()),
        settings,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        // The controller's next writes (scaling, the primary's promotion, the apex switch, the
        // finalizer) lose a race; the test's own write above went through first.
        st.inject_conflicts("deployments.apps", 3);
        st.inject_conflicts("services", 2);
        st.inject_conflicts("canaries.serin.io", 2);
    }
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.1"
    );
    let conflicts = telemetry
        .reconciles
        .get_or_create(&ResultLabels {
            result: "conflict".into(),
        })
        .get();
    assert!(
        conflicts >= 1,
        "the injected conflicts were hit and counted"
    );
    let ready = c
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    let warnings: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.note)
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

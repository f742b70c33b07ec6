//! Scenarios on how the controller uses the API server: writes that lose a race (409 Conflict)
//! are retried and never surface as a failure (the rollout completes, no Warning Event, counted
//! only in `serin_reconcile_total{result="conflict"}`); and a reconcile reads from the watch
//! caches, never with a GET or LIST of its own.

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
    let ready = common::scenario::ready_condition(&c.status.unwrap()).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_reads_from_the_caches_not_the_api() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Patch, PatchParams};
    let (cluster, client) = setup().await;
    let settings = Settings::default();
    let telemetry = settings.telemetry.clone();
    let ok = move || {
        telemetry
            .reconciles
            .get_or_create(&ResultLabels {
                result: "ok".into(),
            })
            .get()
    };
    let (_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(controller::run(
        client.clone(),
        Some("test".into()),
        settings,
        async move {
            let _ = stop_rx.await;
        },
    ));
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    // Let the last writes of init settle, then count only what follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.state().lock().unwrap().request_counts.clear();
    let before = ok();
    // A metadata-only change of the target: the Canary reconciles, nothing is due.
    common::scenario::poke_target(&client, "x").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    services
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "shop"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(ok() >= before + 2, "both changes brought the Canary back");
    let counts = cluster.state().lock().unwrap().request_counts.clone();
    let reads: Vec<&String> = counts
        .keys()
        .filter(|k| k.starts_with("GET ") && !k.ends_with(" watch"))
        .collect();
    assert!(reads.is_empty(), "reads on a quiet reconcile: {counts:?}");
    let writes: Vec<&String> = counts.keys().filter(|k| k.ends_with(" write")).collect();
    assert_eq!(
        writes,
        ["PATCH deployments.apps write", "PATCH services write"],
        "only the test's own two writes: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_secret_is_read_only_when_it_changes() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams, PostParams};
    let (cluster, client) = setup().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "test");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "podinfo-token"}, "stringData": {"TOKEN": "one"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let uses_secret = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:6.0.0",
        "envFrom": [{"configMapRef": {"name": "podinfo-config"}}, {"secretRef": {"name": "podinfo-token"}}]}]}}}});
    deploys
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(uses_secret),
        )
        .await
        .unwrap();
    let _stop = common::scenario::start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let copy = secrets.get("podinfo-token-primary").await.unwrap();
    assert_eq!(copy.data.unwrap()["TOKEN"].0, b"one");
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.state().lock().unwrap().request_counts.clear();
    common::scenario::poke_target(&client, "x").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let counts = cluster.state().lock().unwrap().request_counts.clone();
    assert!(
        !counts.contains_key("GET secrets get"),
        "an unchanged Secret is not read again: {counts:?}"
    );
    secrets
        .patch(
            "podinfo-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"TOKEN": "two"}})),
        )
        .await
        .unwrap();
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let copy = secrets.get("podinfo-token-primary").await.unwrap();
    assert_eq!(copy.data.unwrap()["TOKEN"].0, b"two");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    let env_from = primary.spec.unwrap().template.spec.unwrap().containers[0]
        .env_from
        .clone()
        .unwrap();
    assert_eq!(
        env_from[1].secret_ref.as_ref().unwrap().name,
        "podinfo-token-primary"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

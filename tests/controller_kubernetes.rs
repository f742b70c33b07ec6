//! Scenario: the real controller (kube::runtime::Controller + reconcile) against serin::sim runs a
//! blue/green Canary with the kubernetes provider: init, a new image to Succeeded, and a
//! ConfigMap change alone that ends with the primary on `<cm>-primary` holding the new data.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase, crd};
use serin::controller::{self, Settings};
use serin::sim::{Cluster, KubeletOptions, SimOptions};

async fn setup() -> (Cluster, kube::Client) {
    setup_with(json!({})).await
}

/// Sets up the namespace, CRDs, app and a blue/green Canary whose spec is merged with `overrides`.
async fn setup_with(overrides: serde_json::Value) -> (Cluster, kube::Client) {
    let cluster = Cluster::start_with(SimOptions {
        kubelet: KubeletOptions {
            ready_delay: Duration::from_millis(100),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, c) in crd::all() {
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "test"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "test");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "podinfo-config"}, "data": {"MESSAGE": "v1"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    deploys.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{"name": "podinfo", "image": "podinfo:6.0.0",
                "ports": [{"containerPort": 9898}], "envFrom": [{"configMapRef": {"name": "podinfo-config"}}]}]}}}
    })).unwrap()).await.unwrap();
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let mut canary = json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo"},
        "spec": {"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80, "targetPort": 9898}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 2}}
    });
    json_patch::merge(&mut canary["spec"], &overrides);
    canaries
        .create(
            &PostParams::default(),
            &serde_json::from_value(canary).unwrap(),
        )
        .await
        .unwrap();
    (cluster, client)
}

async fn wait_phase(client: &kube::Client, phase: CanaryPhase, after_rev: Option<&str>) -> Canary {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let c = api.get("podinfo").await.unwrap();
        let st = c.status.clone().unwrap_or_default();
        if st.phase == phase && after_rev.is_none_or(|r| st.last_applied_spec.as_deref() != Some(r))
        {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {phase}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_runs_init_new_image_and_config_change_to_succeeded() {
    let (_cluster, client) = setup().await;
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
}

fn start_controller(client: &kube::Client) -> tokio::sync::oneshot::Sender<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(controller::run(
        client.clone(),
        Some("test".into()),
        Settings::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    stop_tx
}

async fn set_image(client: &kube::Client, image: &str, annotations: serde_json::Value) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let patch = json!({"spec": {"template": {"metadata": {"annotations": annotations}, "spec": {"containers": [{"name": "podinfo", "image": image, "ports": [{"containerPort": 9898}], "envFrom": [{"configMapRef": {"name": "podinfo-config"}}]}]}}}});
    deploys
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
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
    let first = wait_phase(&client, CanaryPhase::Initialized, None)
        .await
        .status
        .unwrap()
        .last_applied_spec
        .unwrap();
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
    assert!(last.contains("did not become ready"), "{last}");
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
async fn skip_analysis_promotes_without_steps() {
    let (_cluster, client) = setup_with(json!({"skipAnalysis": true})).await;
    let _stop = start_controller(&client);
    let first = wait_phase(&client, CanaryPhase::Initialized, None)
        .await
        .status
        .unwrap()
        .last_applied_spec
        .unwrap();
    set_image(&client, "podinfo:6.0.2", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.2"
    );
    assert!(
        !c.status
            .unwrap()
            .decisions
            .iter()
            .any(|d| d.phase == CanaryPhase::Progressing),
        "no analysis steps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_deletion_gives_the_target_its_traffic_back() {
    let (_cluster, client) = setup_with(json!({"revertOnDeletion": true})).await;
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
}

//! Scenario: a blue/green Canary whose target is a DaemonSet, with the real controller against
//! serin::sim (one simulated node). Init runs `<name>-primary` as a DaemonSet and keeps the target
//! off every node (nodeSelector `serin.io/scale-to-zero`); a new image runs to Succeeded with the
//! primary promoted and the target off the nodes again.

mod common;

use common::scenario::{start_cluster, start_controller, wait_phase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::CanaryPhase;
use serin::workload::daemonset::SCALE_TO_ZERO_SELECTOR;

fn image(ds: &DaemonSet) -> String {
    ds.spec
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

fn node_selector(ds: &DaemonSet) -> std::collections::BTreeMap<String, String> {
    ds.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .node_selector
        .clone()
        .unwrap_or_default()
}

/// The DaemonSet `podinfo` and its Canary (spec merged with `overrides`).
async fn setup(overrides: serde_json::Value) -> (serin::sim::Cluster, kube::Client) {
    let (cluster, client) = start_cluster().await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "test");
    daemonsets.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {"selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                "containers": [{"name": "agent", "image": "agent:1", "ports": [{"containerPort": 8080}]}]}}}
    })).unwrap()).await.unwrap();
    let base = json!({"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "podinfo"},
        "service": {"port": 80, "targetPort": 8080}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 2}});
    common::scenario::create_canary(&client, base, &overrides).await;
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_target_runs_blue_green_to_succeeded() {
    let (cluster, client) = setup(json!({})).await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "test");
    let _stop = start_controller(&client);

    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let primary = daemonsets.get("podinfo-primary").await.unwrap();
    assert_eq!(image(&primary), "agent:1");
    assert_eq!(
        node_selector(&primary),
        [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
        "the primary keeps the user's node selector, not the scale-to-zero one"
    );
    assert_eq!(
        primary.status.unwrap().number_ready,
        1,
        "primary ready on the node"
    );
    let target = daemonsets.get("podinfo").await.unwrap();
    assert_eq!(node_selector(&target)[SCALE_TO_ZERO_SELECTOR], "true");
    // The simulated DaemonSet controller takes the pod off the node.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while daemonsets
        .get("podinfo")
        .await
        .unwrap()
        .status
        .unwrap()
        .desired_number_scheduled
        != 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "target still scheduled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    let apex = services.get("podinfo").await.unwrap();
    assert_eq!(
        apex.spec.unwrap().selector.unwrap()["app"],
        "podinfo-primary"
    );
    let first = c.status.unwrap().last_applied_spec.unwrap();

    // A new image on the target: the user's manifest has no scale-to-zero selector, as a GitOps
    // tool would apply it; it is merged over Serin's.
    daemonsets
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2", "ports": [{"containerPort": 8080}]}]}}}})),
        )
        .await
        .unwrap();
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    assert_eq!(
        image(&daemonsets.get("podinfo-primary").await.unwrap()),
        "agent:2"
    );
    let target = daemonsets.get("podinfo").await.unwrap();
    assert_eq!(
        node_selector(&target)[SCALE_TO_ZERO_SELECTOR],
        "true",
        "target off the nodes again after promotion"
    );
    let phases: Vec<CanaryPhase> = c
        .status
        .unwrap()
        .decisions
        .iter()
        .map(|d| d.phase)
        .collect();
    assert!(
        phases.contains(&CanaryPhase::Progressing) && phases.contains(&CanaryPhase::Promoting),
        "{phases:?}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_canary_that_never_becomes_ready_is_rolled_back_after_the_deadline() {
    let (cluster, client) = setup(json!({"progressDeadlineSeconds": 2})).await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "test");
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    daemonsets
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"sim.serin.io/ready": "false"}},
                "spec": {"containers": [{"name": "agent", "image": "agent:bad", "ports": [{"containerPort": 8080}]}]}}}})),
        )
        .await
        .unwrap();
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    assert_eq!(
        image(&daemonsets.get("podinfo-primary").await.unwrap()),
        "agent:1",
        "the primary keeps the old image"
    );
    let target = daemonsets.get("podinfo").await.unwrap();
    assert_eq!(node_selector(&target)[SCALE_TO_ZERO_SELECTOR], "true");
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    let apex = services.get("podinfo").await.unwrap();
    assert_eq!(
        apex.spec.unwrap().selector.unwrap()["app"],
        "podinfo-primary"
    );
    let last = c.status.unwrap().decisions.last().cloned().unwrap();
    assert!(last.action.contains("2s"), "{last:?}");
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

//! `--max-concurrent-canaries`: with a cap of 1, three new revisions at once run one at a time;
//! the others wait in Waiting with the reason and start first come, first served.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::scenario::{start_cluster, start_controller_with};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase};
use serin::controller::Settings;

async fn app(client: &kube::Client, name: &str) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let labels = json!({"app": name});
    deploys.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
    })).unwrap()).await.unwrap();
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": name},
        "spec": {"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 2}}
    })).unwrap()).await.unwrap();
}

async fn new_revision(client: &kube::Client, name: &str) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    deploys
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

async fn phases(client: &kube::Client) -> BTreeMap<String, CanaryPhase> {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap(),
                c.status.map(|s| s.phase).unwrap_or_default(),
            )
        })
        .collect()
}

async fn wait_for(client: &kube::Client, name: &str, phase: CanaryPhase) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while phases(client).await.get(name) != Some(&phase) {
        if tokio::time::Instant::now() > deadline {
            let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
            let all: Vec<_> = canaries.list(&Default::default()).await.unwrap().items;
            let all: Vec<_> = all
                .into_iter()
                .map(|c| (c.metadata.name, c.metadata.resource_version, c.status))
                .collect();
            panic!("{name} never {phase:?}: {all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_beyond_the_cap_wait_and_start_in_arrival_order() {
    let (cluster, client) = start_cluster().await;
    for name in ["a", "b", "c"] {
        app(&client, name).await;
    }
    let _stop = start_controller_with(
        &client,
        Settings {
            max_concurrent_canaries: Some(1),
            ..Default::default()
        },
    );
    for name in ["a", "b", "c"] {
        wait_for(&client, name, CanaryPhase::Initialized).await;
    }
    new_revision(&client, "a").await;
    wait_for(&client, "a", CanaryPhase::Progressing).await;
    new_revision(&client, "c").await;
    wait_for(&client, "c", CanaryPhase::Waiting).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // c waits strictly longer than b
    new_revision(&client, "b").await;
    wait_for(&client, "b", CanaryPhase::Waiting).await;

    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let b = canaries.get("b").await.unwrap().status.unwrap();
    assert_eq!(
        b.decisions.last().unwrap().action,
        "wait: no free rollout slot (max-concurrent-canaries reached)"
    );
    // Watch until all are done: never two rollouts at once, and c starts before b.
    let mut started = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let now = phases(&client).await;
        let active: Vec<&String> = now
            .iter()
            .filter(|(_, p)| serin::controller::slots::holds_slot(**p))
            .map(|(n, _)| n)
            .collect();
        assert!(active.len() <= 1, "two rollouts at once: {now:?}");
        for n in active {
            if !started.contains(n) {
                started.push(n.clone());
            }
        }
        if now.values().all(|p| *p == CanaryPhase::Succeeded) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all promoted: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(started, ["a", "c", "b"]);
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

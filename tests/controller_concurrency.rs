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

/// When a Canary's last rollout began to wait for a slot (its first "wait: no free rollout
/// slot" decision before the start), and when it started.
async fn waited_then_started(
    client: &kube::Client,
    name: &str,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let st = canaries.get(name).await.unwrap().status.unwrap();
    let d = &st.decisions;
    let start = d
        .iter()
        .rposition(|d| d.action.starts_with("start rollout"))
        .unwrap_or_else(|| panic!("{name} never started: {d:#?}"));
    let waited = d[..start]
        .iter()
        .rev()
        .take_while(|d| d.action.starts_with("wait: no free rollout slot"))
        .last()
        .unwrap_or_else(|| panic!("{name} never waited: {d:#?}"));
    (waited.time, d[start].time)
}

/// Cap 1; while one rollout runs, four new revisions arrive at once and are recorded Waiting in
/// some order, while the controller's Canary cache lags the API server (its watch holds each
/// event 300 ms, so a burst of status writes reaches it late): they start in the order
/// they were recorded Waiting, not in the order the cache happens to show them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_start_in_the_order_they_were_recorded_though_the_cache_lags() {
    let (cluster, client) = start_cluster().await;
    let names = ["a", "e", "b", "d", "c"];
    for name in names {
        app(&client, name).await;
    }
    let _stop = start_controller_with(
        &client,
        Settings {
            max_concurrent_canaries: Some(1),
            ..Default::default()
        },
    );
    for name in names {
        wait_for(&client, name, CanaryPhase::Initialized).await;
    }
    new_revision(&client, names[0]).await;
    wait_for(&client, names[0], CanaryPhase::Progressing).await;
    // Only the watches started from now on lag: break them so that they start again.
    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        st.set_watch_latency(Duration::from_millis(300));
        st.drop_watches();
    }
    for name in &names[1..] {
        new_revision(&client, name).await;
    }
    for name in names {
        wait_for(&client, name, CanaryPhase::Succeeded).await;
    }
    let mut waiters = Vec::new();
    for name in &names[1..] {
        waiters.push((waited_then_started(&client, name).await, *name));
    }
    let by_wait = {
        let mut w = waiters.clone();
        w.sort_by_key(|((waited, _), n)| (*waited, *n));
        w.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    };
    let by_start = {
        let mut w = waiters.clone();
        w.sort_by_key(|((_, started), n)| (*started, *n));
        w.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    };
    assert_eq!(
        by_start, by_wait,
        "start order vs waiting order: {waiters:?}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

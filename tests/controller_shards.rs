//! Sharding (`--shard-selector`) on serin::sim: two controllers, each electing on its own Lease
//! and owning the Canaries labelled for its shard, never reconcile each other's Canaries; a
//! Canary relabelled from one shard to the other mid-rollout is handed over without a repeated
//! step or webhook, and the old shard lets go of it (its gauges are gone).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::{
    create_app_and_canary, install_gateway_api, set_image, start_cluster, wait_phase, wait_status,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase};
use serin::controller::shard::ShardSelector;
use serin::controller::{self, Settings, leader::LeaseSettings};
use serin::telemetry::Telemetry;

const KEY: &str = "sharding.fluxcd.io/key";

/// A controller for the shard `KEY=<shard>` on namespace `test`, elected on that shard's Lease;
/// returns its metrics registry (each controller has its own).
fn shard_controller(client: &kube::Client, shard: &str) -> Arc<Telemetry> {
    let selector = ShardSelector::parse(&format!("{KEY}={shard}")).unwrap();
    let telemetry = Telemetry::new("kubernetes");
    let identity = format!("serin-{shard}");
    let settings = Settings {
        instance: Some(identity.clone()),
        telemetry: telemetry.clone(),
        shard: Some(selector.clone()),
        ..Default::default()
    };
    let lease = LeaseSettings {
        name: selector.lease_name(),
        namespace: "test".into(),
        identity,
        duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(500),
    };
    tokio::spawn(controller::run_elected(
        client.clone(),
        Some("test".into()),
        settings,
        lease,
        std::future::pending::<()>(),
    ));
    telemetry
}

async fn label(client: &kube::Client, canary: &str, shard: &str) {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let patch = json!({"metadata": {"labels": {KEY: shard}}});
    api.patch(canary, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// A second app, `other` (its own Deployment, a blue/green Canary), in shard b.
async fn create_other(client: &kube::Client) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    deploys.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "other", "labels": {"app": "other"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "other", "image": "podinfo:6.0.0", "ports": [{"containerPort": 9898}]}]}}}
    })).unwrap()).await.unwrap();
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary",
        "metadata": {"name": "other", "labels": {KEY: "b"}},
        "spec": {"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
            "service": {"port": 80, "targetPort": 9898}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 2}}
    })).unwrap()).await.unwrap();
}

/// Who published Events about each Canary: (canary, reportingInstance) pairs.
async fn reporters(client: &kube::Client) -> BTreeSet<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    let list = events.list(&ListParams::default()).await.unwrap().items;
    list.into_iter()
        .filter_map(|e| Some((e.regarding?.name?, e.reporting_instance?)))
        .collect()
}

/// Whether a controller's registry has a `serin_canary_status` series for this Canary.
fn reports_status_of(t: &Telemetry, canary: &str) -> bool {
    let series = format!("name=\"{canary}\",namespace=\"test\"");
    t.encode()
        .lines()
        .any(|l| l.starts_with("serin_canary_status{") && l.contains(&series))
}

async fn holder(client: &kube::Client, lease: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "test");
    leases.get_opt(lease).await.unwrap()?.spec?.holder_identity
}

/// Every distinct (phase, weight) the Canary's status shows, polled every 20 ms.
fn record_weights(client: &kube::Client) -> Arc<Mutex<Vec<(CanaryPhase, i32)>>> {
    let seen: Arc<Mutex<Vec<(CanaryPhase, i32)>>> = Default::default();
    let (api, log): (Api<Canary>, _) = (Api::namespaced(client.clone(), "test"), seen.clone());
    tokio::spawn(async move {
        loop {
            if let Ok(c) = api.get("podinfo").await {
                let st = c.status.unwrap_or_default();
                let mut l = log.lock().unwrap();
                if l.last() != Some(&(st.phase, st.canary_weight)) {
                    l.push((st.phase, st.canary_weight));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shard_owns_its_canaries_and_a_relabelled_canary_is_handed_over_once() {
    let receiver = common::receiver::ok().await;
    let hook = |name: &str, kind: &str| json!({"name": name, "type": kind, "url": format!("{}/{name}", receiver.url), "timeout": "2s"});
    let (_cluster, client) = start_cluster().await;
    install_gateway_api(&client).await;
    create_app_and_canary(&client, &json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "hosts": ["podinfo.example.com"], "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 10, "maxWeight": 50,
            "webhooks": [hook("pre", "pre-rollout"), hook("rollout", "rollout"), hook("post", "post-rollout")]}}))
    .await;
    label(&client, "podinfo", "a").await;
    create_other(&client).await;
    let a = shard_controller(&client, "a");
    let b = shard_controller(&client, "b");

    let first = common::scenario::initialized_revision(&client).await;
    let others: Api<Canary> = Api::namespaced(client.clone(), "test");
    wait_status_of(&others, "other", CanaryPhase::Initialized).await;
    assert_eq!(
        holder(&client, "serin-leader-a").await.as_deref(),
        Some("serin-a")
    );
    assert_eq!(
        holder(&client, "serin-leader-b").await.as_deref(),
        Some("serin-b")
    );
    // Each Canary was reconciled by its own shard only: by the Events it published and by the
    // per-Canary gauges each controller's registry holds.
    let expected = BTreeSet::from([
        ("other".to_string(), "serin-b".to_string()),
        ("podinfo".to_string(), "serin-a".to_string()),
    ]);
    assert_eq!(reporters(&client).await, expected);
    assert!(reports_status_of(&a, "podinfo") && !reports_status_of(&a, "other"));
    assert!(reports_status_of(&b, "other") && !reports_status_of(&b, "podinfo"));

    // A rollout on shard a; mid-way the Canary moves to shard b.
    let seen = record_weights(&client);
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_status(&client, "weight 20", |st| {
        st.phase == CanaryPhase::Progressing && st.canary_weight >= 20
    })
    .await;
    label(&client, "podinfo", "b").await;
    let done = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;

    let paths = receiver.paths();
    let count = |p: &str| paths.iter().filter(|x| *x == p).count();
    assert_eq!(count("/pre"), 1, "pre-rollout once: {paths:?}");
    assert_eq!(count("/post"), 1, "post-rollout once: {paths:?}");
    let decisions = done.status.clone().unwrap().decisions;
    assert_no_step_repeated(&decisions);
    // Every rollout-hook call belongs to an analysis tick the status recorded: none was made by
    // a shard whose step was then thrown away.
    let ticks = decisions
        .iter()
        .filter(|d| d.checks.iter().any(|c| c.name == "rollout"))
        .count();
    assert_eq!(count("/rollout"), ticks, "{paths:?} vs {decisions:#?}");
    let seen = seen.lock().unwrap().clone();
    let progressing: Vec<i32> = seen
        .iter()
        .filter(|(p, _)| *p == CanaryPhase::Progressing)
        .map(|(_, w)| *w)
        .collect();
    assert!(
        progressing.windows(2).all(|w| w[0] <= w[1]) && progressing.contains(&50),
        "weights went back: {seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|(p, _)| *p == CanaryPhase::Succeeded)
            .count(),
        1,
        "one Succeeded: {seen:?}"
    );

    // The new shard finished it; the old one let go of it.
    let after = reporters(&client).await;
    assert!(after.contains(&("podinfo".to_string(), "serin-b".to_string())));
    assert!(reports_status_of(&b, "podinfo"), "shard b reports podinfo");
    assert!(
        !reports_status_of(&a, "podinfo"),
        "shard a forgot podinfo: {}",
        a.encode()
    );
    assert_eq!(done.status.unwrap().phase, CanaryPhase::Succeeded);
}

/// No step of a weighted rollout ran twice: one start tick, each weight advanced to once, upwards.
fn assert_no_step_repeated(decisions: &[serin::api::DecisionRecord]) {
    let starts = decisions
        .iter()
        .filter(|d| d.action.starts_with("pre-rollout passed"))
        .count();
    assert_eq!(starts, 1, "the start tick ran again: {decisions:#?}");
    let advances: Vec<i32> = decisions
        .iter()
        .filter(|d| d.action.starts_with("advance weight"))
        .map(|d| d.weight)
        .collect();
    assert!(
        advances.windows(2).all(|w| w[0] < w[1]) && advances.last() == Some(&50),
        "a step ran twice or went back: {decisions:#?}"
    );
}

async fn wait_status_of(api: &Api<Canary>, name: &str, phase: CanaryPhase) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = api.get(name).await.unwrap().status.unwrap_or_default();
        if st.phase == phase {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name} to be {phase}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The API server goes away and comes back (its listener and every open connection closed, its
//! watch history compacted: old resourceVersions answer 410), with the real controller on its
//! production client (`controller::client::connect`): mid-rollout for 30 s, and during the
//! promotion. The Canary completes correctly and is reconciled again within 10 s of the return.

mod common;

use std::time::Duration;

use common::scenario::{
    create_app_and_canary, set_image, start_cluster_with, start_controller_with, wait_phase,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::json;
use serin::api::{Canary, CanaryPhase, CanaryStatus};
use serin::controller::Settings;
use serin::sim::Cluster;

/// A cluster whose pods take `ready` to become ready, with the app and a blue/green Canary with
/// `analysis`; the controller runs on the production client (`controller::client::connect`).
async fn cluster(
    ready: Duration,
    analysis: serde_json::Value,
) -> (Cluster, kube::Client, tokio::sync::oneshot::Sender<()>) {
    let (cluster, client) = start_cluster_with(ready).await;
    create_app_and_canary(&client, &json!({ "analysis": analysis })).await;
    let controller_client = serin::controller::client::connect(cluster.config()).unwrap();
    let stop = start_controller_with(&controller_client, Settings::default());
    (cluster, client, stop)
}

async fn status(client: &kube::Client) -> CanaryStatus {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    api.get("podinfo").await.unwrap().status.unwrap_or_default()
}

/// After `come_back`: how long until the Canary's status is written again (a reconcile that acted).
async fn reconciled_again_after(client: &kube::Client, before: &CanaryStatus) -> Duration {
    let back = tokio::time::Instant::now();
    loop {
        // The test's own client may still hold a dead connection for a moment: retry reads.
        let api: Api<Canary> = Api::namespaced(client.clone(), "test");
        if let Ok(c) = api.get("podinfo").await
            && c.status.as_ref() != Some(before)
        {
            return back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "not reconciled 30 s after the return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn image(d: &Deployment) -> String {
    common::scenario::image(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30s_api_outage_mid_rollout_and_the_canary_completes_from_where_it_was() {
    let analysis = json!({"interval": "1s", "threshold": 2, "iterations": 6});
    let (cluster, client, _stop) = cluster(Duration::from_millis(100), analysis).await;
    let first = common::scenario::initialized_revision(&client).await;
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    common::scenario::wait_status(&client, "two iterations", |st| {
        st.phase == CanaryPhase::Progressing && st.iterations >= 2
    })
    .await;
    cluster.go_down();
    tokio::time::sleep(Duration::from_secs(30)).await;
    cluster.come_back().await.unwrap();
    // Read right at the return: what the controller left before the outage.
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let before = loop {
        if let Ok(c) = api.get("podinfo").await {
            break c.status.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the test cannot read after the return"
        );
    };
    let took = reconciled_again_after(&client, &before).await;
    assert!(
        took <= Duration::from_secs(10),
        "reconciled {took:?} after the API server returned"
    );
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    let iterations: Vec<&str> = st
        .decisions
        .iter()
        .filter(|d| d.action.starts_with("iteration"))
        .map(|d| d.action.as_str())
        .collect();
    assert!(
        iterations.windows(2).all(|w| w[0] < w[1]),
        "went back: {iterations:?}"
    );
    assert_eq!(
        st.decisions
            .iter()
            .filter(|d| d.action.starts_with("pre-rollout passed"))
            .count(),
        1,
        "the start tick ran again: {:#?}",
        st.decisions
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.1"
    );
    let target = deploys.get("podinfo").await.unwrap();
    assert_eq!(target.spec.unwrap().replicas, Some(0), "canary scaled down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_during_the_promotion_and_the_promotion_completes() {
    // Pods take 2 s to become ready: the promotion (the primary rolling) is long enough to hit.
    let analysis = json!({"interval": "2s", "threshold": 2, "iterations": 1});
    let (cluster, client, _stop) = cluster(Duration::from_secs(2), analysis).await;
    let first = common::scenario::initialized_revision(&client).await;
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    common::scenario::wait_status(&client, "the promotion", |st| {
        st.phase == CanaryPhase::Promoting
    })
    .await;
    cluster.go_down();
    tokio::time::sleep(Duration::from_secs(15)).await;
    cluster.come_back().await.unwrap();
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    assert_eq!(st.last_promoted_spec, st.last_applied_spec);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert_eq!(
        image(&deploys.get("podinfo-primary").await.unwrap()),
        "podinfo:6.0.1"
    );
    let apex: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "test");
    let selector = apex
        .get("podinfo")
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap();
    assert_eq!(
        selector["app"], "podinfo-primary",
        "all traffic back on the primary"
    );
    assert!(
        status(&client)
            .await
            .conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
    );
}

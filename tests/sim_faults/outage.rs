//! An outage: everything closes at once, the simulated controllers pause, and the server comes
//! back on the same port with the store intact and the watch history compacted.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use serin::sim::{Cluster, KubeletOptions, SimOptions};

use super::{config_map, current_rv, namespace, read_events, until};

#[tokio::test]
async fn an_outage_closes_everything_and_the_server_comes_back_compacted() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    config_map(&cms, "before").await;
    let old_rv = current_rv(&cms).await;
    config_map(&cms, "moves-the-rv").await;
    let base = cluster.url();
    let http = reqwest::Client::new();
    let mut open_watch = http
        .get(format!(
            "{base}/api/v1/namespaces/t/configmaps?watch=1&resourceVersion={old_rv}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_events(&mut open_watch, 1).await.unwrap()[0]["type"],
        "ADDED"
    );
    // A controller's watcher, running across the outage.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(
        watcher(cms.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |o| {
                if let Ok(cm) = o {
                    let _ = tx.send(cm.metadata.name.unwrap_or_default());
                }
                async {}
            }),
    );

    cluster.go_down();
    assert!(!cluster.is_up());
    let refused = tokio::net::TcpStream::connect(cluster.addr()).await;
    assert!(refused.is_err(), "new connections are refused at once");
    assert!(
        read_events(&mut open_watch, 1).await.is_err(),
        "an open watch breaks, it does not end cleanly"
    );
    assert!(cms.get("before").await.is_err(), "no answers while down");

    cluster.come_back().await.unwrap();
    assert_eq!(cluster.url(), base, "same port");
    assert!(cms.get("before").await.is_ok(), "the store is intact");
    let now_rv = current_rv(&cms).await;
    let mut stale = http
        .get(format!(
            "{base}/api/v1/namespaces/t/configmaps?watch=1&resourceVersion={old_rv}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "410 comes in-band");
    let events = read_events(&mut stale, 2).await.unwrap();
    assert_eq!(
        events.len(),
        1,
        "one ERROR event, then the stream ends: {events:?}"
    );
    assert_eq!(
        events[0],
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {old_rv} ({now_rv})"), "reason": "Expired", "code": 410}})
    );
    config_map(&cms, "after").await;
    until("the watcher to recover and see a new object", || {
        let got = seen.try_recv().ok();
        async move { got.filter(|n| n == "after") }
    })
    .await;
    watch.abort();
}

#[tokio::test]
async fn the_simulated_controllers_pause_during_an_outage() {
    // Pods get ready 2 s after they appear; the outage starts well before and lasts longer.
    let ready_delay = Duration::from_secs(2);
    let opts = SimOptions {
        kubelet: KubeletOptions { ready_delay },
        ..Default::default()
    };
    let cluster = Cluster::start_with(opts).await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "t");
    let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "podinfo"}]}}}});
    deployments
        .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let state = cluster.state();
    let phases = || -> Vec<String> {
        let st = state.lock().unwrap();
        st.store
            .list("/pods", Some("t"))
            .iter()
            .map(|p| p["status"]["phase"].as_str().unwrap_or("").to_string())
            .collect()
    };
    until("a pending pod", || async {
        (phases() == ["Pending"]).then_some(())
    })
    .await;
    let seen_pending = Instant::now();
    cluster.go_down();
    assert!(
        seen_pending.elapsed() < ready_delay,
        "the outage began before the pod could get ready"
    );
    while seen_pending.elapsed() < ready_delay + Duration::from_secs(1) {
        assert_eq!(
            phases(),
            ["Pending"],
            "nothing moves while the API server is away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.come_back().await.unwrap();
    until("the pod to become ready after the restart", || async {
        (phases() == ["Running"]).then_some(())
    })
    .await;
    // outage() is go_down + come_back; come_back while up does nothing.
    cluster.outage(Duration::from_millis(50)).await.unwrap();
    cluster.come_back().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "t");
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

//! Injected error answers (exact bodies), latency, dropped watch streams and compaction.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use serin::sim::Cluster;

use super::{client_as, config_map, current_rv, namespace, read_events, until};

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

#[tokio::test]
async fn injected_5xx_answer_with_kube_apiservers_bodies() {
    let cluster = Cluster::start().await.unwrap();
    namespace(&cluster.client(), "t").await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/t/configmaps", cluster.url());
    let state = cluster.state();
    let cause = serin::sim::INJECTED_CAUSE;
    for (code, want) in [
        (
            500,
            status(
                500,
                "InternalError",
                &format!("Internal error occurred: {cause}"),
                Some(json!({"causes": [{"message": cause}]})),
            ),
        ),
        (
            503,
            status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
                None,
            ),
        ),
        (
            504,
            status(
                504,
                "Timeout",
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
                Some(json!({})),
            ),
        ),
    ] {
        state.lock().unwrap().inject_errors("configmaps", code, 2);
        for req in [http.get(&url), http.get(format!("{url}?watch=1"))] {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), code, "list and watch start both fail");
            assert_eq!(resp.json::<Value>().await.unwrap(), want);
        }
        assert_eq!(
            http.get(&url).send().await.unwrap().status(),
            200,
            "the count ran out"
        );
    }
}

#[tokio::test]
async fn injected_429_conflicts_and_kubes_retries() {
    let cluster = Cluster::start().await.unwrap();
    namespace(&cluster.client(), "t").await;
    let base = cluster.url();
    let http = reqwest::Client::new();
    let state = cluster.state();
    state.lock().unwrap().inject_errors("*", 429, 1);
    let resp = http
        .get(format!(
            "{base}/apis/apps/v1/namespaces/t/deployments/nothing"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        resp.text().await.unwrap(),
        "Too many requests, please try again later.\n"
    );
    // Conflicts hit writes of a named object only.
    state.lock().unwrap().inject_conflicts("configmaps", 1);
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "t");
    config_map(&cms, "a").await;
    cms.list(&ListParams::default()).await.unwrap();
    let err = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "w"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    assert_eq!(state.lock().unwrap().injected_left("configmaps", 409), 0);
    // kube's default client retries 429/503/504 (up to 15 times): it never sees a short burst.
    state.lock().unwrap().inject_errors("configmaps", 503, 3);
    assert!(cms.get("a").await.is_ok());
    state.lock().unwrap().inject_errors("configmaps", 503, 1);
    let plain: Api<ConfigMap> = Api::namespaced(client_as(&cluster, "serin/test", false), "t");
    let err = plain.get("a").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 503 && s.reason == "ServiceUnavailable"),
        "{err:?}"
    );
}

#[tokio::test]
async fn latency_delays_answers_but_not_watch_streams() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let latency = Duration::from_millis(1500);
    cluster.state().lock().unwrap().set_latency(latency);
    let started = Instant::now();
    config_map(&cms, "slow").await;
    assert!(started.elapsed() >= latency);
    // The state is not locked while a request waits out its latency.
    let pending = tokio::spawn({
        let cms = cms.clone();
        async move { cms.get("slow").await }
    });
    let state = cluster.state();
    assert_eq!(state.lock().unwrap().latency(), latency);
    let started = Instant::now();
    let watch = reqwest::get(format!(
        "{}/api/v1/namespaces/t/configmaps?watch=1&timeoutSeconds=5",
        cluster.url()
    ))
    .await
    .unwrap();
    assert_eq!(watch.status(), 200);
    assert!(
        started.elapsed() < latency,
        "watches start without the delay"
    );
    assert!(pending.await.unwrap().is_ok());
    state.lock().unwrap().set_latency(Duration::ZERO);
}

#[tokio::test]
async fn dropped_watches_break_and_clients_resume_without_relisting() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let mut raw = reqwest::get(format!(
        "{}/api/v1/namespaces/t/configmaps?watch=1",
        cluster.url()
    ))
    .await
    .unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(
        watcher(cms.clone(), watcher::Config::default())
            .default_backoff()
            .for_each(move |e| {
                let _ = tx.send(match e {
                    Ok(watcher::Event::Init) => "init".to_string(),
                    Ok(watcher::Event::Apply(cm)) => cm.metadata.name.unwrap_or_default(),
                    Ok(_) => "other".to_string(),
                    Err(_) => "error".to_string(),
                });
                async {}
            }),
    );
    config_map(&cms, "first").await;
    until("the watcher to see the first object", || {
        let got = events.try_recv().ok();
        async move { got.filter(|n| n == "first") }
    })
    .await;
    cluster.state().lock().unwrap().drop_watches();
    assert!(
        read_events(&mut raw, 2).await.is_err(),
        "the raw stream breaks"
    );
    config_map(&cms, "second").await;
    let mut after = Vec::new();
    until("the watcher to see the second object", || {
        let got = events.try_recv().ok();
        if let Some(e) = &got {
            after.push(e.clone());
        }
        async move { got.filter(|n| n == "second") }
    })
    .await;
    assert!(
        !after.contains(&"init".to_string()),
        "resumed from its resourceVersion, no relist: {after:?}"
    );
    watch.abort();
}

#[tokio::test]
async fn compaction_expires_old_resource_versions() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let old = current_rv(&cms).await;
    config_map(&cms, "a").await;
    let url = format!(
        "{}/api/v1/namespaces/t/configmaps?watch=1&timeoutSeconds=1&resourceVersion={old}",
        cluster.url()
    );
    let mut before = reqwest::get(&url).await.unwrap();
    assert_eq!(
        read_events(&mut before, 1).await.unwrap()[0]["type"],
        "ADDED"
    );
    cluster.state().lock().unwrap().compact();
    let now = current_rv(&cms).await;
    let mut after = reqwest::get(&url).await.unwrap();
    let events = read_events(&mut after, 2).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["object"]["message"],
        format!("too old resource version: {old} ({now})")
    );
    assert_eq!(events[0]["object"]["code"], 410);
}

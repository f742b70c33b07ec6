//! serin::sim failing like a real kube-apiserver, seen through real clients (kube::Client, kube's
//! watcher, reqwest for exact bodies, kubectl): an outage and the restart after it (`outage`),
//! injected error answers, latency, broken watches and compaction (`streams`), RBAC refusals and
//! SelfSubjectAccessReviews (`rbac`), and ValidatingAdmissionPolicies (`admission`).
//! No sleep races: every wait polls with a deadline.

#[path = "sim_faults/admission.rs"]
mod admission;
#[path = "sim_faults/outage.rs"]
mod outage;
#[path = "sim_faults/rbac.rs"]
mod rbac;
#[path = "sim_faults/streams.rs"]
mod streams;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use serin::sim::Cluster;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `f` until it returns Some, or panics after the deadline.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn namespace(client: &kube::Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let obj = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    ns.create(&PostParams::default(), &obj).await.unwrap();
}

pub async fn config_map(api: &Api<ConfigMap>, name: &str) -> ConfigMap {
    let obj =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

/// A client that sends `user_agent` and (unlike kube's default) does not retry 429/503/504.
pub fn client_as(cluster: &Cluster, user_agent: &str, retry: bool) -> kube::Client {
    let mut config = cluster.config();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent).unwrap(),
    ));
    config.default_retry = retry;
    kube::Client::try_from(config).unwrap()
}

/// Reads watch events from a raw stream until `n` arrived, the stream ends (Ok) or breaks (Err).
pub async fn read_events(resp: &mut reqwest::Response, n: usize) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    let mut buf = Vec::new();
    while events.len() < n {
        match tokio::time::timeout(DEADLINE, resp.chunk()).await {
            Err(_) => panic!("no watch event within the deadline"),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(None)) => return Ok(events),
            Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
        }
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            events.push(serde_json::from_slice(&line).unwrap());
        }
    }
    Ok(events)
}

pub async fn current_rv(api: &Api<ConfigMap>) -> String {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// An apps/v1 Deployment `name` with `replicas` (label `app: <name>`).
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "podinfo:6.0.0"}]}}}
    }))
    .unwrap()
}

/// Runs kubectl against the cluster with `stdin`; None when kubectl is not installed.
pub async fn kubectl(
    cluster: &Cluster,
    args: &[&str],
    stdin: &str,
) -> Option<std::process::Output> {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    Some(child.wait_with_output().await.unwrap())
}

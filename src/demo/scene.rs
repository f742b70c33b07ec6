//! The demo's cluster contents and the in-process parts around the controller: CRDs (Serin's and
//! the Gateway API HTTPRoute), the podinfo app, its MetricTemplates (an error rate held to a
//! bound, a per-pod latency compared by the judge) and Canary, the traffic loop that follows the
//! HTTPRoute's weights over each side's running pods, and the webhook receiver. Must not decide
//! anything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::post;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::traffic::{self, Backend, Traffic};
use crate::api::{Canary, MetricTemplate};

/// Namespace of the demo app.
pub const NAMESPACE: &str = "demo";
/// The app (Deployment and Canary) name.
pub const APP: &str = "podinfo";

async fn create<K>(api: &Api<K>, value: Value) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).map_err(|e| e.to_string())?;
    api.create(&PostParams::default(), &obj)
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot create the demo objects: {e}"))
}

/// Installs the CRDs, the namespace, the app (v1), its MetricTemplate and its Canary.
pub async fn install(
    client: &kube::Client,
    metrics_url: &str,
    hooks_url: &str,
) -> Result<(), String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut all: Vec<CustomResourceDefinition> =
        crate::api::crd::all().into_iter().map(|(_, c)| c).collect();
    all.push(gateway_api::apis::standard::httproutes::HttpRoute::crd());
    for crd in all {
        crds.create(&PostParams::default(), &crd)
            .await
            .map_err(|e| format!("cannot install the CRDs: {e}"))?;
    }
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": NAMESPACE}}),
    )
    .await?;
    let labels = json!({"app": APP});
    create(&Api::<Deployment>::namespaced(client.clone(), NAMESPACE), json!({
        "metadata": {"name": APP, "labels": labels},
        // Five pods per side: the judge needs five samples (one per pod) on each.
        "spec": {"replicas": 5, "selector": {"matchLabels": labels}, "progressDeadlineSeconds": 30,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "podinfo",
                "image": "ghcr.io/stefanprodan/podinfo:6.0.0", "ports": [{"name": "http", "containerPort": 9898}]}]}}}
    })).await?;
    create(&Api::<MetricTemplate>::namespaced(client.clone(), NAMESPACE), json!({
        "metadata": {"name": "error-rate"},
        "spec": {"provider": {"type": "prometheus", "address": metrics_url}, "query": traffic::ERROR_RATE_QUERY}
    })).await?;
    create(&Api::<MetricTemplate>::namespaced(client.clone(), NAMESPACE), json!({
        "metadata": {"name": "pod-latency"},
        "spec": {"provider": {"type": "prometheus", "address": metrics_url}, "query": traffic::POD_LATENCY_QUERY}
    })).await?;
    create(&Api::<Canary>::namespaced(client.clone(), NAMESPACE), json!({
        "metadata": {"name": APP},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "service": {"port": 9898, "gatewayRefs": [{"name": "demo-gateway", "namespace": NAMESPACE}]},
            "analysis": {
                "interval": "1s", "threshold": 2, "stepWeight": 20, "maxWeight": 60,
                "judge": {"minEffect": 0.1, "maxPValue": 0.05, "minSamples": 5},
                "metrics": [{"name": "error-rate", "templateRef": {"name": "error-rate"},
                    "thresholdRange": {"max": 5}, "interval": "5s"},
                    {"name": "latency", "templateRef": {"name": "pod-latency"},
                    "compare": {"direction": "increase"}, "interval": "5s"}],
                "webhooks": [
                    {"name": "smoke-test", "type": "pre-rollout", "url": format!("{hooks_url}/hooks/smoke-test")},
                    {"name": "load-test", "type": "rollout", "url": format!("{hooks_url}/hooks/load-test")},
                    {"name": "announce", "type": "post-rollout", "url": format!("{hooks_url}/hooks/announce")}
                ]
            }
        }
    })).await
}

/// Sets the app's image to `podinfo:<version>` (a new revision), as `kubectl set image` would.
pub async fn set_version(client: &kube::Client, version: &str) -> Result<(), String> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "podinfo", "image": format!("ghcr.io/stefanprodan/podinfo:{version}")}]}}}});
    deploys
        .patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot set the image: {e}"))
}

/// The Deployment behind a backend Service Serin's HTTPRoute names.
fn deployment_of(service: &str) -> String {
    match service.strip_suffix("-canary") {
        Some(app) => app.to_string(),
        None => service.to_string(),
    }
}

/// The running pods of a Deployment (those its selector picks, not being deleted).
async fn running_pods(client: &kube::Client, d: &Deployment) -> Vec<String> {
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if selector.is_empty() {
        return vec![];
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
        return vec![];
    };
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Where the HTTPRoute sends traffic now, with each side's version, error rate, latency and pods.
async fn backends(client: &kube::Client) -> Vec<Backend> {
    let routes: Api<gateway_api::apis::standard::httproutes::HttpRoute> =
        Api::namespaced(client.clone(), NAMESPACE);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let Ok(route) = routes.get(APP).await else {
        return vec![];
    };
    let mut out = vec![];
    let refs = route
        .spec
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.backend_refs.iter().flatten());
    for b in refs {
        let deployment = deployment_of(&b.name);
        let Ok(d) = deploys.get(&deployment).await else {
            continue;
        };
        let pods = running_pods(client, &d).await;
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
            .unwrap_or_default();
        let version = image.rsplit(':').next().unwrap_or_default().to_string();
        out.push(Backend {
            deployment,
            error_rate: super::error_rate_of(&version),
            latency: super::latency_of(&version),
            version,
            weight: b.weight.unwrap_or(1),
            pods,
        });
    }
    out
}

/// Runs the traffic loop until the returned guard is dropped.
pub fn generate(client: kube::Client, traffic: Traffic) -> crate::demo::scene::Stop {
    Stop(tokio::spawn(async move {
        let mut every = tokio::time::interval(traffic::tick_period());
        loop {
            every.tick().await;
            let now = backends(&client).await;
            traffic.tick(&now);
        }
    }))
}

/// Stops a background task when dropped.
pub struct Stop(tokio::task::JoinHandle<()>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Webhook calls received, by hook name.
#[derive(Clone, Default)]
pub struct HookCalls {
    /// Calls per hook name.
    pub counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

async fn hook(State(calls): State<HookCalls>, Path(name): Path<String>) -> &'static str {
    if let Ok(mut c) = calls.counts.lock() {
        *c.entry(name).or_default() += 1;
    }
    "ok"
}

/// Serves the demo's webhooks (every call answered 200) on 127.0.0.1.
pub async fn serve_hooks(calls: HookCalls) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/hooks/{name}", post(hook))
        .with_state(calls);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

//! The soak's cluster: the embedded API server (pods ready after 200 ms), the Gateway API CRDs
//! from ../shared/crds/gateway-api (so routes carry weights), Serin's CRDs, one MetricTemplate
//! pointing at the Prometheus stand-in, and N apps, each a Deployment and a Canary with
//! pre-rollout and post-rollout webhooks to the receiver. Writes the bench makes during the chaos
//! go through the API and are retried until they land.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use serin::sim::{Cluster, KubeletOptions, SimOptions};

use crate::snapshot::{NS, app_name};

/// The timing of every Canary.
pub struct CanaryTiming {
    /// `analysis.interval`, seconds.
    pub interval_s: u64,
    /// `progressDeadlineSeconds`: longer than the longest API outage, or a correct controller
    /// would roll back healthy revisions whose pods could not become ready while the cluster's
    /// own controllers were away with the API server.
    pub deadline_s: u64,
}

/// Starts the cluster and installs the CRDs and the namespace.
pub async fn start_cluster() -> Result<Cluster, String> {
    let opts = SimOptions {
        kubelet: KubeletOptions {
            ready_delay: Duration::from_millis(200),
        },
        ..Default::default()
    };
    let cluster = Cluster::start_with(opts).await.map_err(|e| e.to_string())?;
    let client = cluster.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut all: Vec<_> = serin::api::crd::all().into_iter().map(|(_, c)| c).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/gateway-api");
    for file in [
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_grpcroutes.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        all.push(serde_saphyr::from_str(&text).map_err(|e| format!("{file}: {e}"))?);
    }
    for crd in all {
        crds.create(&PostParams::default(), &crd)
            .await
            .map_err(|e| format!("creating a CRD: {e}"))?;
    }
    let ns: Api<Namespace> = Api::all(client);
    let obj = from(json!({"metadata": {"name": NS}}))?;
    ns.create(&PostParams::default(), &obj)
        .await
        .map_err(|e| e.to_string())?;
    Ok(cluster)
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn dynamic(client: &kube::Client, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, "v1beta1", kind);
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// The MetricTemplate every Canary uses: the app's success rate from the stand-in.
pub async fn create_template(client: &kube::Client, prometheus: &str) -> Result<(), String> {
    let t = from(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "success-rate"},
        "spec": {"provider": {"type": "prometheus", "address": prometheus},
            "query": "sum(rate(requests_total{app=\"{{ target }}\",code!~\"5..\"}[{{ interval }}])) / sum(rate(requests_total{app=\"{{ target }}\"}[{{ interval }}])) * 100"}
    }))?;
    dynamic(client, "serin.io", "MetricTemplate", "metrictemplates")
        .create(&PostParams::default(), &t)
        .await
        .map_err(|e| format!("MetricTemplate: {e}"))?;
    Ok(())
}

/// The pod template of a revision: its image, and whether its pods ever become ready.
fn template(app: &str, image: &str, ready: bool) -> Value {
    json!({"metadata": {"labels": {"app": app}, "annotations": {"sim.serin.io/ready": ready.to_string()}},
        "spec": {"containers": [{"name": "app", "image": image}]}})
}

/// App `i`: a Deployment (1 replica, image `app:0`) and its Canary.
pub async fn create_app(
    client: &kube::Client,
    i: usize,
    timing: &CanaryTiming,
    hooks: &str,
) -> Result<(), String> {
    let name = app_name(i);
    let labels = json!({"app": name});
    let d: Deployment = from(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template(&name, "app:0", true)}
    }))?;
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &d)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let hook = |kind: &str| json!({"name": kind, "type": kind, "url": format!("{hooks}/{kind}"), "timeout": "5s"});
    let c = from(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": name},
        "spec": {"provider": "gatewayapi:v1", "progressDeadlineSeconds": timing.deadline_s,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
            "analysis": {"interval": format!("{}s", timing.interval_s), "threshold": 2, "stepWeight": 10, "maxWeight": 50,
                "metrics": [{"name": "request-success-rate", "templateRef": {"name": "success-rate"},
                    "thresholdRange": {"min": 99}, "interval": "1m"}],
                "webhooks": [hook("pre-rollout"), hook("post-rollout")]}}
    }))?;
    dynamic(client, "serin.io", "Canary", "canaries")
        .create(&PostParams::default(), &c)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(())
}

/// Gives app `i` a new revision, retrying through outages, injected errors and latency until
/// the API server takes it (a patch whose answer was lost may have landed: it is idempotent).
pub async fn new_revision(
    client: &kube::Client,
    i: usize,
    image: &str,
    ready: bool,
    limit: Duration,
) -> Result<u32, String> {
    let name = app_name(i);
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let patch = json!({"spec": {"template": template(&name, image, ready)}});
    let deadline = Instant::now() + limit;
    let (params, patch) = (PatchParams::default(), Patch::Strategic(patch));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = api.patch(&name, &params, &patch);
        match tokio::time::timeout(Duration::from_secs(10), sent).await {
            Ok(Ok(_)) => return Ok(attempts),
            Ok(Err(e)) if Instant::now() > deadline => {
                return Err(format!("{name}: new revision not accepted: {e}"));
            }
            Err(_) if Instant::now() > deadline => {
                return Err(format!("{name}: new revision not accepted: timeout"));
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

//! The benchmark's apps: per app a ConfigMap, a Deployment reading it and its namespace's shared
//! ConfigMap, and a Canary (Gateway API, stepWeight 10 to 50, one Prometheus check), labelled
//! with the run and, with --shards, its shard (`sharding.fluxcd.io/key`, round-robin).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::Canary;

use crate::world::{RUN_LABEL, SHARED_CONFIG};

/// Flux's sharding label, which `--shard-selector` selects on (see src/controller/shard.rs).
pub const SHARD_KEY: &str = "sharding.fluxcd.io/key";

/// The shard label value of shard `k`.
pub fn shard_name(k: usize) -> String {
    format!("shard{k}")
}

/// How one app looks.
pub struct AppSpec<'a> {
    pub namespace: &'a str,
    pub index: usize,
    pub interval: &'a str,
    pub image: &'a str,
    pub run: &'a str,
    /// Its shard's label value, when sharded.
    pub shard: Option<String>,
}

pub async fn create_app(client: &kube::Client, a: &AppSpec<'_>) -> Result<(), String> {
    let name = format!("app-{}", a.index);
    let ns = a.namespace;
    let e = |e: kube::Error| format!("{ns}/{name}: {e}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = serde_json::from_value(
        json!({"metadata": {"name": format!("{name}-config")}, "data": {"LEVEL": "info"}}),
    )
    .map_err(|x| x.to_string())?;
    cms.create(&PostParams::default(), &cm).await.map_err(e)?;
    let labels = json!({"app": name});
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels, "annotations": {"bench.serin.dev/revision": "1"}},
            "spec": {"containers": [{"name": "app", "image": a.image, "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}, {"configMapRef": {"name": SHARED_CONFIG}}]}]}}}
    })).map_err(|x| x.to_string())?;
    deploys
        .create(&PostParams::default(), &d)
        .await
        .map_err(e)?;
    let mut canary_labels = json!({RUN_LABEL: a.run});
    if let Some(shard) = &a.shard {
        canary_labels[SHARD_KEY] = json!(shard);
    }
    let canaries: Api<Canary> = Api::namespaced(client.clone(), ns);
    let c = serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": name, "labels": canary_labels},
        "spec": {"provider": "gatewayapi:v1", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
            "analysis": {"interval": a.interval, "threshold": 2, "stepWeight": 10, "maxWeight": 50,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}]}}
    })).map_err(|x| x.to_string())?;
    canaries
        .create(&PostParams::default(), &c)
        .await
        .map_err(e)?;
    Ok(())
}

/// A new revision of app `i`: a pod template annotation (works with any image, on any cluster;
/// not under `serin.io/`, which Serin leaves out of the revision).
pub async fn new_revision(
    client: &kube::Client,
    ns: &str,
    i: usize,
    version: &str,
) -> Result<(), String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"bench.serin.dev/revision": version}}}}});
    api.patch(
        &format!("app-{i}"),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("{ns}/app-{i}: {e}"))
}

/// Changes the ConfigMap every app of `ns` reads.
pub async fn change_shared_config(
    client: &kube::Client,
    ns: &str,
    value: &str,
) -> Result<(), String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let patch = json!({"data": {"FEATURE": value}});
    cms.patch(SHARED_CONFIG, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

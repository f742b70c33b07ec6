//! The workload adapter: reads the target and primary, applies the primary and the `-primary`
//! config copies by server-side apply (field manager `serin`), and scales the target. Thin: all
//! decisions come from `analysis`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use super::{ConfigRef, build_primary, config_checksum, primary_name, referenced_configs};
use crate::api::FIELD_MANAGER;

fn apply_params() -> PatchParams {
    // Serin owns what it generates; force takes fields back from anyone who edited them by hand.
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The tracked configs of a target: checksums by `configmap/<name>` / `secret/<name>`. A referenced
/// object that does not exist is skipped (Kubernetes itself would keep such pods pending).
pub async fn tracked_configs(
    client: &kube::Client,
    ns: &str,
    target: &Deployment,
    cache: Option<&Store<ConfigMap>>,
) -> kube::Result<BTreeMap<String, String>> {
    let Some(pod) = target.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for r in referenced_configs(pod) {
        let data = match &r {
            ConfigRef::ConfigMap(n) => match cache {
                Some(store) => store
                    .get(&ObjectRef::new(n).within(ns))
                    .map(|c| c.data.clone().unwrap_or_default()),
                None => Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get_opt(n)
                    .await?
                    .map(|c| c.data.unwrap_or_default()),
            },
            ConfigRef::Secret(n) => Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(n)
                .await?
                .map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect()
                }),
        };
        if let Some(d) = data {
            out.insert(r.key(), config_checksum(&d));
        }
    }
    Ok(out)
}

/// Applies `<name>-primary` copies of every referenced config; returns the rename map.
pub async fn copy_configs(
    client: &kube::Client,
    ns: &str,
    target: &Deployment,
    owner: &OwnerReference,
) -> kube::Result<BTreeMap<String, String>> {
    let Some(pod) = target.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Ok(BTreeMap::new());
    };
    let mut renames = BTreeMap::new();
    for r in referenced_configs(pod) {
        let copy = primary_name(r.name());
        match &r {
            ConfigRef::ConfigMap(n) => {
                let api = Api::<ConfigMap>::namespaced(client.clone(), ns);
                let Some(src) = api.get_opt(n).await? else {
                    continue;
                };
                let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": copy, "ownerReferences": [owner]}, "data": src.data, "binaryData": src.binary_data});
                api.patch(&copy, &apply_params(), &Patch::Apply(obj))
                    .await?;
            }
            ConfigRef::Secret(n) => {
                let api = Api::<Secret>::namespaced(client.clone(), ns);
                let Some(src) = api.get_opt(n).await? else {
                    continue;
                };
                let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": copy, "ownerReferences": [owner]}, "type": src.type_, "data": src.data});
                api.patch(&copy, &apply_params(), &Patch::Apply(obj))
                    .await?;
            }
        }
        renames.insert(r.name().to_string(), copy);
    }
    Ok(renames)
}

/// Applies the primary Deployment built from the target (creation and promotion alike).
pub async fn apply_primary(
    client: &kube::Client,
    ns: &str,
    target: &Deployment,
    renames: &BTreeMap<String, String>,
    owner: OwnerReference,
    revision: &str,
    filter: &super::LabelFilter,
) -> kube::Result<Deployment> {
    let mut primary = build_primary(target, renames, owner, revision, filter);
    primary.metadata.managed_fields = None;
    let name = primary.metadata.name.clone().unwrap_or_default();
    let mut obj = serde_json::to_value(&primary).unwrap_or_default();
    obj["apiVersion"] = json!("apps/v1");
    obj["kind"] = json!("Deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(&name, &apply_params(), &Patch::Apply(obj))
        .await
}

/// Scales a Deployment (the target) by merge patch of spec.replicas; no-op when already there.
pub async fn scale(client: &kube::Client, ns: &str, name: &str, replicas: i32) -> kube::Result<()> {
    let api = Api::<Deployment>::namespaced(client.clone(), ns);
    let current = api.get(name).await?;
    if current.spec.as_ref().and_then(|s| s.replicas) == Some(replicas) {
        return Ok(());
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    Ok(())
}

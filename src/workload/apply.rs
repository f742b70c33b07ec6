//! The workload adapter: reads the target and primary, applies the primary and the `-primary`
//! config copies by server-side apply (field manager `serin`), and scales the target. Thin: all
//! decisions come from `analysis`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use super::{ConfigRef, SecretTracking, build_primary, config_checksum, primary_name};
use crate::api::FIELD_MANAGER;

fn apply_params() -> PatchParams {
    // Serin owns what it generates; force takes fields back from anyone who edited them by hand.
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Where tracked configs are read from: the controller's caches, or the API when there is none.
/// Secret values are never cached: Secrets are watched metadata-only, and a Secret is read only
/// when its resourceVersion differs from the one its remembered checksum was computed from.
#[derive(Clone, Default)]
pub struct ConfigSources {
    /// ConfigMaps.
    pub configmaps: Option<Store<ConfigMap>>,
    /// Secrets' metadata (no data): one store per Secret watch — all watched namespaces, or one
    /// per namespace `--secret-namespaces` names. Empty: Secrets are read from the API.
    pub secrets: Vec<Store<PartialObjectMeta<Secret>>>,
    /// Checksums of Secrets by (namespace, name): (resourceVersion, checksum).
    pub secret_sums: Arc<Mutex<SecretSums>>,
}

/// Checksums of Secrets by (namespace, name), with the resourceVersion each was computed from.
pub type SecretSums = HashMap<(String, String), (String, String)>;

impl ConfigSources {
    async fn secret_checksum(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> kube::Result<Option<String>> {
        let key = (ns.to_string(), name.to_string());
        let rv = if self.secrets.is_empty() {
            None
        } else {
            let key = ObjectRef::new(name).within(ns);
            match self.secrets.iter().find_map(|store| store.get(&key)) {
                Some(meta) => meta.metadata.resource_version.clone(),
                None => return Ok(None),
            }
        };
        if let (Some(rv), Ok(sums)) = (&rv, self.secret_sums.lock())
            && let Some((seen, sum)) = sums.get(&key)
            && seen == rv
        {
            return Ok(Some(sum.clone()));
        }
        let Some(secret) = Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
        else {
            return Ok(None);
        };
        let data: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        let sum = config_checksum(&data);
        if let (Some(rv), Ok(mut sums)) =
            (secret.metadata.resource_version, self.secret_sums.lock())
        {
            sums.insert(key, (rv, sum.clone()));
        }
        Ok(Some(sum))
    }
}

/// The tracked configs of a target: checksums by `configmap/<name>` / `secret/<name>`. A referenced
/// object that does not exist is skipped (Kubernetes itself would keep such pods pending), and so
/// is a Secret where `secrets` does not track them (it is never read).
pub async fn tracked_configs(
    client: &kube::Client,
    ns: &str,
    target: &Deployment,
    sources: &ConfigSources,
    secrets: &SecretTracking,
) -> kube::Result<BTreeMap<String, String>> {
    let Some(pod) = target.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for r in secrets.tracked_refs(ns, pod) {
        let sum = match &r {
            ConfigRef::ConfigMap(n) => match &sources.configmaps {
                Some(store) => store
                    .get(&ObjectRef::new(n).within(ns))
                    .map(|c| config_checksum(&c.data.clone().unwrap_or_default())),
                None => Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get_opt(n)
                    .await?
                    .map(|c| config_checksum(&c.data.unwrap_or_default())),
            },
            ConfigRef::Secret(n) => sources.secret_checksum(client, ns, n).await?,
        };
        if let Some(sum) = sum {
            out.insert(r.key(), sum);
        }
    }
    Ok(out)
}

/// Applies `<name>-primary` copies of every tracked config (Secrets only where `secrets` tracks
/// them: the primary uses the others by their own names); returns the rename map.
pub async fn copy_configs(
    client: &kube::Client,
    ns: &str,
    target: &Deployment,
    owner: &OwnerReference,
    secrets: &SecretTracking,
) -> kube::Result<BTreeMap<String, String>> {
    let Some(pod) = target.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Ok(BTreeMap::new());
    };
    let untracked = secrets.untracked_secrets(ns, pod);
    if !untracked.is_empty() {
        // Once per copy (init and each promotion): quiet, and says why a Secret change of this
        // target starts no rollout. Names only, never a value.
        let target = target.metadata.name.as_deref().unwrap_or_default();
        tracing::info!(namespace = ns, target, secrets = %untracked.join(","),
            "Secrets are not tracked here (--secret-namespaces): the primary uses them by their own names");
    }
    let mut renames = BTreeMap::new();
    for r in secrets.tracked_refs(ns, pod) {
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

/// What a primary is built from: the target (a DaemonSet's view), the `-primary` config names,
/// the owner, the revision it runs and the label filter.
pub struct PrimarySource<'a> {
    /// The target, or a DaemonSet target's Deployment-shaped view.
    pub target: &'a Deployment,
    /// The DaemonSet itself when the target is one: the primary is then a DaemonSet.
    pub daemonset: Option<&'a DaemonSet>,
    /// Tracked config name -> `-primary` copy.
    pub renames: &'a BTreeMap<String, String>,
    /// Owner reference (the Canary).
    pub owner: OwnerReference,
    /// Revision the primary runs.
    pub revision: &'a str,
    /// Which labels are copied.
    pub filter: &'a super::LabelFilter,
}

/// Applies the primary built from the target (creation and promotion alike): a Deployment, or a
/// DaemonSet for DaemonSet targets.
pub async fn apply_primary(
    client: &kube::Client,
    ns: &str,
    src: PrimarySource<'_>,
) -> kube::Result<()> {
    let primary = build_primary(src.target, src.renames, src.owner, src.revision, src.filter);
    apply_built(client, ns, primary, src.daemonset).await
}

/// Re-deploys the primary with a pod template it ran before (a post-promotion rollback): the
/// primary as a promotion would build it, with `template` instead of the target's and the
/// primary's current replica count (the target is scaled to 0 by then).
pub async fn restore_primary(
    client: &kube::Client,
    ns: &str,
    src: PrimarySource<'_>,
    template: k8s_openapi::api::core::v1::PodTemplateSpec,
    replicas: Option<i32>,
) -> kube::Result<()> {
    let mut primary = build_primary(src.target, src.renames, src.owner, src.revision, src.filter);
    if let Some(spec) = primary.spec.as_mut() {
        spec.template = template;
        if replicas.is_some() {
            spec.replicas = replicas;
        }
    }
    apply_built(client, ns, primary, src.daemonset).await
}

async fn apply_built(
    client: &kube::Client,
    ns: &str,
    mut primary: Deployment,
    daemonset: Option<&DaemonSet>,
) -> kube::Result<()> {
    primary.metadata.managed_fields = None;
    let name = primary.metadata.name.clone().unwrap_or_default();
    if let Some(ds) = daemonset {
        let mut obj =
            serde_json::to_value(super::daemonset::to_daemonset(primary, ds)).unwrap_or_default();
        obj["apiVersion"] = json!("apps/v1");
        obj["kind"] = json!("DaemonSet");
        Api::<DaemonSet>::namespaced(client.clone(), ns)
            .patch(&name, &apply_params(), &Patch::Apply(obj))
            .await?;
        return Ok(());
    }
    let mut obj = serde_json::to_value(&primary).unwrap_or_default();
    obj["apiVersion"] = json!("apps/v1");
    obj["kind"] = json!("Deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(&name, &apply_params(), &Patch::Apply(obj))
        .await?;
    Ok(())
}

/// Scales a DaemonSet target to zero (a nodeSelector no node matches) or back up.
pub async fn scale_daemonset(
    client: &kube::Client,
    ns: &str,
    ds: &DaemonSet,
    up: bool,
) -> kube::Result<()> {
    if super::daemonset::scaled_to_zero(ds) != up {
        return Ok(());
    }
    let name = ds.metadata.name.clone().unwrap_or_default();
    Api::<DaemonSet>::namespaced(client.clone(), ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(super::daemonset::scale_patch(up)),
        )
        .await?;
    Ok(())
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

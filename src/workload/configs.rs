//! Config tracking: which ConfigMaps and Secrets a pod spec uses (volumes, projected volumes, env,
//! envFrom, in containers and init containers), their checksums, and rewriting the references to
//! the `-primary` copies. Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use sha2::{Digest, Sha256};

/// A referenced ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigRef {
    /// A ConfigMap by name.
    ConfigMap(String),
    /// A Secret by name.
    Secret(String),
}

impl ConfigRef {
    /// The key used in `status.trackedConfigs`: `configmap/<name>` or `secret/<name>`.
    pub fn key(&self) -> String {
        match self {
            ConfigRef::ConfigMap(n) => format!("configmap/{n}"),
            ConfigRef::Secret(n) => format!("secret/{n}"),
        }
    }

    /// The object name.
    pub fn name(&self) -> &str {
        match self {
            ConfigRef::ConfigMap(n) | ConfigRef::Secret(n) => n,
        }
    }
}

/// Every ConfigMap and Secret the pod spec references (sorted, deduplicated).
pub fn referenced_configs(pod: &PodSpec) -> Vec<ConfigRef> {
    let mut out = BTreeSet::new();
    for v in pod.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert(ConfigRef::ConfigMap(cm.name.clone()));
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            out.insert(ConfigRef::Secret(s));
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                out.insert(ConfigRef::ConfigMap(cm.name.clone()));
            }
            if let Some(s) = &src.secret {
                out.insert(ConfigRef::Secret(s.name.clone()));
            }
        }
    }
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for e in c.env_from.iter().flatten() {
            if let Some(cm) = &e.config_map_ref {
                out.insert(ConfigRef::ConfigMap(cm.name.clone()));
            }
            if let Some(s) = &e.secret_ref {
                out.insert(ConfigRef::Secret(s.name.clone()));
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(k) = &from.config_map_key_ref {
                out.insert(ConfigRef::ConfigMap(k.name.clone()));
            }
            if let Some(k) = &from.secret_key_ref {
                out.insert(ConfigRef::Secret(k.name.clone()));
            }
        }
    }
    out.into_iter().collect()
}

/// Checksum of a ConfigMap's or Secret's data (sorted keys; values as given, never logged).
pub fn config_checksum(data: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in data {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Points every reference named in `renames` at its new name (the `-primary` copies).
pub fn rewrite_config_refs(pod: &mut PodSpec, renames: &BTreeMap<String, String>) {
    let rename = |n: &mut String| {
        if let Some(new) = renames.get(n.as_str()) {
            *n = new.clone();
        }
    };
    for v in pod.volumes.iter_mut().flatten() {
        if let Some(cm) = v.config_map.as_mut() {
            rename(&mut cm.name);
        }
        if let Some(s) = v.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            rename(s);
        }
        for src in v
            .projected
            .iter_mut()
            .flat_map(|p| p.sources.iter_mut().flatten())
        {
            if let Some(cm) = src.config_map.as_mut() {
                rename(&mut cm.name);
            }
            if let Some(s) = src.secret.as_mut() {
                rename(&mut s.name);
            }
        }
    }
    for c in pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
    {
        for e in c.env_from.iter_mut().flatten() {
            if let Some(cm) = e.config_map_ref.as_mut() {
                rename(&mut cm.name);
            }
            if let Some(s) = e.secret_ref.as_mut() {
                rename(&mut s.name);
            }
        }
        for e in c.env.iter_mut().flatten() {
            let Some(from) = e.value_from.as_mut() else {
                continue;
            };
            if let Some(k) = from.config_map_key_ref.as_mut() {
                rename(&mut k.name);
            }
            if let Some(k) = from.secret_key_ref.as_mut() {
                rename(&mut k.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> PodSpec {
        serde_json::from_value(json!({
            "volumes": [{"name": "a", "configMap": {"name": "cm-vol"}}, {"name": "b", "secret": {"secretName": "sec-vol"}},
                {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}, {"secret": {"name": "sec-proj"}}]}}],
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "sec-init"}}]}],
            "containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "cm-envfrom"}}],
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "x"}}}, {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "sec-key", "key": "y"}}}]}]
        }))
        .unwrap()
    }

    #[test]
    fn finds_every_kind_of_reference() {
        let keys: Vec<String> = referenced_configs(&pod())
            .iter()
            .map(ConfigRef::key)
            .collect();
        assert_eq!(
            keys,
            [
                "configmap/cm-envfrom",
                "configmap/cm-key",
                "configmap/cm-proj",
                "configmap/cm-vol",
                "secret/sec-init",
                "secret/sec-key",
                "secret/sec-proj",
                "secret/sec-vol"
            ]
        );
    }

    #[test]
    fn rewrites_every_reference_it_was_told_about() {
        let mut p = pod();
        let renames: BTreeMap<String, String> = referenced_configs(&p)
            .iter()
            .map(|r| (r.name().to_string(), format!("{}-primary", r.name())))
            .collect();
        rewrite_config_refs(&mut p, &renames);
        assert!(
            referenced_configs(&p)
                .iter()
                .all(|r| r.name().ends_with("-primary"))
        );
    }

    #[test]
    fn checksum_changes_with_data() {
        let a: BTreeMap<String, String> = [("k".to_string(), "1".to_string())].into();
        let b: BTreeMap<String, String> = [("k".to_string(), "2".to_string())].into();
        assert_ne!(config_checksum(&a), config_checksum(&b));
        assert_eq!(config_checksum(&a), config_checksum(&a.clone()));
    }
}

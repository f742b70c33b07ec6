//! What wakes a Canary: which Canaries a changed Deployment, DaemonSet, Service, ConfigMap or
//! Secret concerns, and which changes of a Canary itself call for a reconcile. Must not decide
//! anything or call the API server: it maps watch events to Canaries from the caches.

use std::hash::{Hash, Hasher};

use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{Canary, TargetKind};
use crate::workload::PRIMARY_SUFFIX;
use crate::workload::baseline::BASELINE_SUFFIX;

/// The parts of a Canary whose change needs a reconcile: its spec (generation), labels (a shard
/// handover), annotations (`serin.io/action`), finalizers and deletion. Not its status: every
/// status change is one of ours, and the reconcile that wrote it already asked for its next
/// turn (`Action::requeue`); waking the Canary again for its own write doubled the reconciles
/// per step and, at N = 1,000, queued due steps behind them (kube's scheduler takes held
/// requests in no particular order, so some waited 20 s).
pub fn canary_trigger(canary: &Canary) -> Option<u64> {
    let m = &canary.metadata;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.generation.hash(&mut h);
    m.labels.hash(&mut h);
    m.annotations.hash(&mut h);
    m.finalizers.hash(&mut h);
    m.deletion_timestamp.as_ref().map(|t| t.0).hash(&mut h);
    Some(h.finish())
}

/// The Canaries whose target (or its primary, or its baseline) is this workload: they reconcile
/// (from the cache) — a baseline that turns ready gets its share of traffic at once.
pub fn targeting(
    store: &Store<Canary>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: TargetKind,
) -> Vec<ObjectRef<Canary>> {
    let name = meta.name.clone().unwrap_or_default();
    let base = name
        .strip_suffix(PRIMARY_SUFFIX)
        .or_else(|| name.strip_suffix(BASELINE_SUFFIX))
        .unwrap_or(&name);
    store
        .state()
        .into_iter()
        .filter(|c| {
            c.metadata.namespace == meta.namespace
                && c.spec.target_ref.kind == kind
                && c.spec.target_ref.name == base
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Whether the Service `name` is one of a Canary's (apex, `-primary`, `-canary`, `-baseline`).
pub fn routes_via(canary: &Canary, name: &str) -> bool {
    let apex = canary.apex_name();
    let suffix = name.strip_prefix(apex.as_str());
    name == apex || matches!(suffix, Some(PRIMARY_SUFFIX | "-canary" | BASELINE_SUFFIX))
}

/// The Canaries of a namespace that track the config `key` (`configmap/<name>`, `secret/<name>`),
/// or that have not recorded their tracked configs yet.
pub fn tracking(store: &Store<Canary>, ns: Option<&str>, key: &str) -> Vec<ObjectRef<Canary>> {
    store
        .state()
        .into_iter()
        .filter(|c| {
            c.metadata.namespace.as_deref() == ns
                && c.status
                    .as_ref()
                    .and_then(|s| s.tracked_configs.as_ref())
                    .is_none_or(|t| t.contains_key(key))
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    fn canary() -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "generation": 1,
                "labels": {"app": "podinfo"}, "finalizers": ["serin.io/finalizer"]},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "analysis": {"interval": "10s", "threshold": 2}}
        }))
        .unwrap()
    }

    #[test]
    fn a_status_write_does_not_wake_the_canary() {
        let before = canary();
        let mut after = before.clone();
        after.status = Some(Default::default());
        after.status.as_mut().unwrap().canary_weight = 20;
        after.metadata.resource_version = Some("42".into());
        assert_eq!(canary_trigger(&before), canary_trigger(&after));
    }

    #[test]
    fn spec_labels_annotations_finalizers_and_deletion_wake_it() {
        let before = canary();
        let changes: [fn(&mut Canary); 5] = [
            |c| c.metadata.generation = Some(2),
            |c| {
                c.labels_mut()
                    .insert("sharding.fluxcd.io/key".into(), "shard1".into());
            },
            |c| {
                c.annotations_mut()
                    .insert("serin.io/action".into(), "abort".into());
            },
            |c| c.metadata.finalizers = None,
            |c| {
                c.metadata.deletion_timestamp =
                    Some(serde_json::from_value(serde_json::json!("2026-11-29T00:00:00Z")).unwrap())
            },
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut after = before.clone();
            change(&mut after);
            assert_ne!(
                canary_trigger(&before),
                canary_trigger(&after),
                "change {i}"
            );
        }
    }
}

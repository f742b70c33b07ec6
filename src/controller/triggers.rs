//! What wakes a Canary: which Canaries a changed Deployment, DaemonSet, Service, ConfigMap or
//! Secret concerns, and which changes of a Canary itself call for a reconcile. Must not decide
//! anything or call the API server: it maps watch events to Canaries from the caches.

use std::hash::{Hash, Hasher};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodSpec;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{Canary, TargetKind};
use crate::workload::baseline::BASELINE_SUFFIX;
use crate::workload::{ConfigRef, PRIMARY_SUFFIX, referenced_configs};

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

/// The caches of the workloads a Canary can target, for [`tracking`].
#[derive(Clone)]
pub struct Targets {
    /// The Deployment cache.
    pub deployments: Store<Deployment>,
    /// The DaemonSet cache.
    pub daemonsets: Store<DaemonSet>,
}

impl Targets {
    /// Whether `canary`'s target, as cached, references `config` in its pod template. A target
    /// not cached yet counts as referencing it (one reconcile too many is cheap; a missed change
    /// is not); a Service target has no pod template and references no config.
    fn references(&self, canary: &Canary, ns: Option<&str>, config: &ConfigRef) -> bool {
        let target = &canary.spec.target_ref;
        let (name, ns) = (target.name.as_str(), ns.unwrap_or_default());
        let uses =
            |pod: Option<&PodSpec>| pod.is_some_and(|p| referenced_configs(p).contains(config));
        // Read in place: this runs for every such Canary on every config event.
        match target.kind {
            TargetKind::Deployment => self
                .deployments
                .get(&ObjectRef::new(name).within(ns))
                .is_none_or(|d| uses(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()))),
            TargetKind::DaemonSet => self
                .daemonsets
                .get(&ObjectRef::new(name).within(ns))
                .is_none_or(|d| uses(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()))),
            TargetKind::Service => false,
        }
    }
}

/// The Canaries of a namespace that track `config`: those that recorded it in
/// `status.trackedConfigs`, and those that have not recorded their tracked configs yet whose
/// target references it. Not every Canary without a record: while N Canaries initialise, each
/// writes `-primary` copies of its configs, and waking all N on each of those events made
/// initialisation O(N²) in reconciles.
pub fn tracking(
    store: &Store<Canary>,
    targets: &Targets,
    ns: Option<&str>,
    config: &ConfigRef,
) -> Vec<ObjectRef<Canary>> {
    let key = config.key();
    store
        .state()
        .into_iter()
        .filter(|c| {
            c.metadata.namespace.as_deref() == ns
                && match c.status.as_ref().and_then(|s| s.tracked_configs.as_ref()) {
                    Some(tracked) => tracked.contains_key(&key),
                    None => targets.references(c, ns, config),
                }
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

    fn cache<K>(objects: Vec<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let (store, mut writer) = kube::runtime::reflector::store::<K>();
        for o in objects {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(o));
        }
        store
    }

    fn deployment(name: &str, config: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app",
                "envFrom": [{"configMapRef": {"name": config}}]}]}}}
        }))
        .unwrap()
    }

    fn woken(canaries: Vec<Canary>, deployments: Vec<Deployment>, config: &str) -> Vec<String> {
        let targets = Targets {
            deployments: cache(deployments),
            daemonsets: cache(Vec::<DaemonSet>::new()),
        };
        let config = ConfigRef::ConfigMap(config.into());
        let mut names: Vec<String> = tracking(&cache(canaries), &targets, Some("test"), &config)
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        names
    }

    fn canary_named(name: &str) -> Canary {
        let mut c = canary();
        c.metadata.name = Some(name.into());
        c.spec.target_ref.name = name.into();
        c
    }

    #[test]
    fn a_config_wakes_the_canaries_whose_target_uses_it_not_the_whole_namespace() {
        let canaries = vec![canary_named("a"), canary_named("b"), canary_named("c")];
        let deployments = vec![deployment("a", "a-config"), deployment("b", "b-config")];
        // `c`'s target is not cached yet, so any config may be one it uses.
        assert_eq!(
            woken(canaries.clone(), deployments.clone(), "a-config"),
            ["a", "c"]
        );
        // Our own `-primary` copy concerns no cached target.
        assert_eq!(
            woken(canaries.clone(), deployments.clone(), "a-config-primary"),
            ["c"]
        );
        let mut recorded = canary_named("b");
        recorded.status = Some(Default::default());
        let status = recorded.status.as_mut().unwrap();
        status.tracked_configs = Some([("configmap/shared".to_string(), "x".to_string())].into());
        // Once recorded, the record decides (not the target's template).
        assert_eq!(
            woken(vec![recorded.clone()], deployments.clone(), "shared"),
            ["b"]
        );
        assert!(woken(vec![recorded], deployments, "b-config").is_empty());
        let mut service = canary_named("s");
        service.spec.target_ref.kind = TargetKind::Service;
        assert!(woken(vec![service], Vec::new(), "s-config").is_empty());
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

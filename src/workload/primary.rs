//! The `<target>-primary` Deployment built from the target (DESIGN.md section 4): same template,
//! strategy, minReadySeconds, revisionHistoryLimit and progressDeadlineSeconds; the selector label
//! values get `-primary`; config references point at the `-primary` copies.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use super::configs::rewrite_config_refs;

/// Suffix of every object Serin generates for the stable side.
pub const PRIMARY_SUFFIX: &str = "-primary";
/// Annotation on the primary naming the revision it runs (read back as `PrimaryState.revision`).
pub const REVISION_ANNOTATION: &str = "serin.io/revision";

/// `<name>-primary`.
pub fn primary_name(name: &str) -> String {
    format!("{name}{PRIMARY_SUFFIX}")
}

/// Fingerprint of a pod template: sha256 of its JSON, 16 hex characters. Labels and annotations
/// that Serin or Kubernetes set themselves are excluded so they never look like a new revision.
pub fn template_hash(deploy: &Deployment) -> String {
    let mut template = deploy
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(meta) = template.metadata.as_mut()
        && let Some(a) = meta.annotations.as_mut()
    {
        a.retain(|k, _| !k.starts_with("serin.io/"));
    }
    let json = serde_json::to_vec(&template).unwrap_or_default();
    Sha256::digest(&json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which of the target's own labels the primary copies. Selector labels are always copied (with
/// `-primary` values); the rest must match an include prefix and no exclude prefix. The default
/// excludes Serin's own labels and the ownership labels of GitOps tools: a primary carrying Argo
/// CD's or Flux's labels would be taken for one of their objects and pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    /// Prefixes of label keys to copy; `*` copies all.
    pub include: Vec<String>,
    /// Prefixes of label keys never copied (wins over `include`).
    pub exclude: Vec<String>,
}

/// Label prefixes the primary never copies unless told otherwise.
pub const DEFAULT_EXCLUDED_LABEL_PREFIXES: &[&str] = &[
    "serin.io/",
    "argocd.argoproj.io/",
    "app.kubernetes.io/instance",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
];

impl Default for LabelFilter {
    fn default() -> Self {
        LabelFilter {
            include: vec!["*".into()],
            exclude: DEFAULT_EXCLUDED_LABEL_PREFIXES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl LabelFilter {
    /// Whether a (non-selector) label key is copied.
    pub fn keeps(&self, key: &str) -> bool {
        let matches = |p: &String| p == "*" || key.starts_with(p.as_str());
        self.include.iter().any(matches)
            && !self.exclude.iter().filter(|p| !p.is_empty()).any(matches)
    }
}

fn primary_labels(
    labels: &BTreeMap<String, String>,
    selector_keys: &[String],
) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| {
            if selector_keys.contains(k) {
                (k.clone(), primary_name(v))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// Builds the primary Deployment from the target. `configs` maps a tracked ConfigMap/Secret name
/// to its `-primary` copy; `replicas` is the primary's size (the target's, or 1 when it has none).
pub fn build_primary(
    target: &Deployment,
    configs: &BTreeMap<String, String>,
    owner: OwnerReference,
    revision: &str,
    filter: &LabelFilter,
) -> Deployment {
    let name = target.metadata.name.clone().unwrap_or_default();
    let spec = target.spec.clone().unwrap_or_default();
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    let selector_keys: Vec<String> = selector_labels.keys().cloned().collect();
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
    tmeta.labels = Some(primary_labels(
        &tmeta.labels.clone().unwrap_or_default(),
        &selector_keys,
    ));
    if let Some(pod) = template.spec.as_mut() {
        rewrite_config_refs(pod, configs);
        rewrite_self_selectors(pod, &selector_labels);
    }
    let mut selector = spec.selector.clone();
    selector.match_labels = Some(primary_labels(&selector_labels, &selector_keys));
    let labels: BTreeMap<String, String> = target
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| selector_keys.contains(k) || filter.keeps(k))
        .collect();
    let labels = primary_labels(&labels, &selector_keys);
    Deployment {
        metadata: ObjectMeta {
            name: Some(primary_name(&name)),
            namespace: target.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some([(REVISION_ANNOTATION.to_string(), revision.to_string())].into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas.unwrap_or(1).max(1)),
            selector,
            template,
            strategy: spec.strategy.clone(),
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            paused: None,
        }),
        status: None,
    }
}

/// Pod (anti-)affinity terms and topology spread constraints that select the app's own pods by
/// its selector labels must select the primary's pods in the primary (else the primary would
/// spread against, or stick to, the canary's pods).
fn rewrite_self_selectors(
    pod: &mut k8s_openapi::api::core::v1::PodSpec,
    selector: &BTreeMap<String, String>,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let fix = |s: &mut Option<LabelSelector>| {
        if let Some(labels) = s.as_mut().and_then(|s| s.match_labels.as_mut()) {
            for (k, v) in labels.iter_mut() {
                if selector.get(k) == Some(v) {
                    *v = primary_name(v);
                }
            }
        }
    };
    for c in pod.topology_spread_constraints.iter_mut().flatten() {
        fix(&mut c.label_selector);
    }
    let Some(aff) = pod.affinity.as_mut() else {
        return;
    };
    let anti = aff.pod_anti_affinity.as_mut().map(|a| {
        (
            a.required_during_scheduling_ignored_during_execution
                .as_mut(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_mut(),
        )
    });
    if let Some((required, preferred)) = anti {
        for t in required.into_iter().flatten() {
            fix(&mut t.label_selector);
        }
        for w in preferred.into_iter().flatten() {
            fix(&mut w.pod_affinity_term.label_selector);
        }
    }
    let affinity = aff.pod_affinity.as_mut().map(|a| {
        (
            a.required_during_scheduling_ignored_during_execution
                .as_mut(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_mut(),
        )
    });
    if let Some((required, preferred)) = affinity {
        for t in required.into_iter().flatten() {
            fix(&mut t.label_selector);
        }
        for w in preferred.into_iter().flatten() {
            fix(&mut w.pod_affinity_term.label_selector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo", "team": "a"}},
            "spec": {"replicas": 3, "minReadySeconds": 5, "progressDeadlineSeconds": 60,
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo", "version": "v1"}},
                    "spec": {"containers": [{"name": "app", "image": "podinfo:1", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}
        }))
        .unwrap()
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "serin.io/v1beta1".into(),
            kind: "Canary".into(),
            name: "podinfo".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn primary_copies_the_template_with_primary_selector_values_and_config_copies() {
        let configs = [("cfg".to_string(), "cfg-primary".to_string())].into();
        let p = build_primary(&target(), &configs, owner(), "abc", &LabelFilter::default());
        assert_eq!(p.metadata.name.as_deref(), Some("podinfo-primary"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.min_ready_seconds, Some(5));
        assert_eq!(spec.progress_deadline_seconds, Some(60));
        assert_eq!(
            spec.selector.match_labels.unwrap()["app"],
            "podinfo-primary"
        );
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            (labels["app"].as_str(), labels["version"].as_str()),
            ("podinfo-primary", "v1")
        );
        let c = &spec.template.spec.unwrap().containers[0];
        assert_eq!(
            c.env_from.as_ref().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap()
                .name,
            "cfg-primary"
        );
        assert_eq!(p.metadata.annotations.unwrap()[REVISION_ANNOTATION], "abc");
    }

    #[test]
    fn self_selecting_anti_affinity_and_spread_point_at_the_primary() {
        let mut t = target();
        let pod = t.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        *pod = serde_json::from_value(json!({"containers": [{"name": "app"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "podinfo"}}}}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "podinfo", "tier": "web"}}}]}))
        .unwrap();
        let p = build_primary(&t, &BTreeMap::new(), owner(), "r", &LabelFilter::default());
        let pod = p.spec.unwrap().template.spec.unwrap();
        let term = &pod
            .affinity
            .unwrap()
            .pod_anti_affinity
            .unwrap()
            .preferred_during_scheduling_ignored_during_execution
            .unwrap()[0];
        assert_eq!(
            term.pod_affinity_term
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["app"],
            "podinfo-primary"
        );
        let spread = pod.topology_spread_constraints.unwrap()[0]
            .label_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(
            (spread["app"].as_str(), spread["tier"].as_str()),
            ("podinfo-primary", "web")
        );
    }

    #[test]
    fn primary_labels_are_filtered_but_selector_labels_always_kept() {
        let mut t = target();
        t.metadata.labels = Some(
            [
                ("app", "podinfo"),
                ("team", "a"),
                ("serin.io/x", "1"),
                ("argocd.argoproj.io/instance", "shop"),
                ("app.kubernetes.io/instance", "shop"),
                ("kustomize.toolkit.fluxcd.io/name", "apps"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        );
        let keys = |f: &LabelFilter| -> Vec<String> {
            let p = build_primary(&t, &BTreeMap::new(), owner(), "r", f);
            p.metadata.labels.unwrap().into_keys().collect()
        };
        assert_eq!(keys(&LabelFilter::default()), ["app", "team"]);
        let only_team = LabelFilter {
            include: vec!["team".into()],
            exclude: vec![],
        };
        assert_eq!(keys(&only_team), ["app", "team"], "selector key kept");
        let all = LabelFilter {
            include: vec!["*".into()],
            exclude: vec![],
        };
        assert_eq!(keys(&all).len(), 6);
    }

    #[test]
    fn template_hash_moves_with_the_template_only() {
        let a = target();
        let mut b = target();
        b.metadata.annotations = Some([("note".to_string(), "x".to_string())].into());
        assert_eq!(
            template_hash(&a),
            template_hash(&b),
            "metadata annotations are not a revision"
        );
        let mut c = target();
        c.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("podinfo:2".into());
        assert_ne!(template_hash(&a), template_hash(&c));
        assert_eq!(template_hash(&a).len(), 16);
    }
}

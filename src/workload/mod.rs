//! Workloads: pure builders for the `-primary` Deployment, pod-template fingerprints, tracked
//! config references and checksums, readiness from a Deployment's status; and the thin adapter
//! functions that apply them (`apply`). The builders must not import tokio or do I/O.

pub mod apply;
pub mod baseline;
mod configs;
pub mod daemonset;
pub mod hpa;
pub mod keda;
pub mod knative;
pub mod primary;
mod readiness;
mod secret_tracking;
pub mod service_apply;
pub mod service_target;

pub use configs::{ConfigRef, config_checksum, referenced_configs, rewrite_config_refs};
pub use primary::{LabelFilter, PRIMARY_SUFFIX, build_primary, primary_name, template_hash};
pub use readiness::readiness;
pub use secret_tracking::SecretTracking;

/// What applying a workload calls: reading the target and its tracked ConfigMaps/Secrets, and
/// server-side applying the `-primary` copies, the Services and the primary HPA. The Secret rule
/// is granted only where Secrets are tracked (`--secret-namespaces`).
pub const RBAC: &[crate::rbac::Rule] = {
    use crate::rbac::{Needed, Needed::Always, Rule};
    &[
        Rule {
            group: "apps",
            resources: &["deployments", "daemonsets"],
            verbs: &["get", "create", "patch", "delete"],
            needed: Always,
            why: "read the target; apply its -primary copy; scale the target to zero; create and delete the -baseline Deployment (analysis.baseline)",
        },
        Rule {
            group: "",
            resources: &["services"],
            verbs: &["get", "create", "patch", "delete"],
            needed: Always,
            why: "apply the apex, -primary and -canary Services and a Service target's copies (read from the watch cache; get while it lists); create and delete the -baseline Service (analysis.baseline)",
        },
        Rule {
            group: "",
            resources: &["configmaps"],
            verbs: &["get", "create", "patch"],
            needed: Always,
            why: "read tracked ConfigMaps; apply their -primary copies",
        },
        Rule {
            group: "",
            resources: &["secrets"],
            verbs: &["get", "create", "patch"],
            needed: Needed::SecretTracking,
            why: "read a tracked Secret's data when it changed (its checksum); apply its -primary copy",
        },
        Rule {
            group: "autoscaling",
            resources: &["horizontalpodautoscalers"],
            verbs: &["get", "create", "patch"],
            needed: Always,
            why: "read the target's HPA; apply the -primary HPA",
        },
    ]
};

/// Annotation (on the Canary or the target) that turns config tracking off.
pub const CONFIG_TRACKING_ANNOTATION: &str = "serin.io/config-tracking";

/// Whether ConfigMaps and Secrets of the target are tracked (on unless the annotation says
/// `disabled` on the Canary or on the target Deployment).
pub fn config_tracking_enabled(
    canary: &crate::api::Canary,
    target: Option<&k8s_openapi::api::apps::v1::Deployment>,
) -> bool {
    let off = |a: Option<&std::collections::BTreeMap<String, String>>| {
        a.and_then(|a| a.get(CONFIG_TRACKING_ANNOTATION))
            .is_some_and(|v| v == "disabled")
    };
    !(off(canary.metadata.annotations.as_ref())
        || off(target.and_then(|t| t.metadata.annotations.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_tracking_can_be_turned_off_on_the_canary_or_the_target() {
        let mut canary: crate::api::Canary = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "t"}, "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 1, "iterations": 1}}
        }))
        .unwrap();
        let mut target = k8s_openapi::api::apps::v1::Deployment::default();
        assert!(config_tracking_enabled(&canary, Some(&target)));
        target.metadata.annotations = Some(
            [(
                CONFIG_TRACKING_ANNOTATION.to_string(),
                "disabled".to_string(),
            )]
            .into(),
        );
        assert!(!config_tracking_enabled(&canary, Some(&target)));
        canary.metadata.annotations = Some(
            [(
                CONFIG_TRACKING_ANNOTATION.to_string(),
                "disabled".to_string(),
            )]
            .into(),
        );
        assert!(!config_tracking_enabled(&canary, None));
    }
}

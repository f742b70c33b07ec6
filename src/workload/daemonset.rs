//! DaemonSet targets, seen through the Deployment-shaped model the rest of `workload` and the
//! decision core use: `as_deployment` gives a view (template without Serin's scale-to-zero node
//! selector, status counters mapped to replica counts), `to_daemonset` turns a primary built from
//! that view back into a DaemonSet. A DaemonSet has no replicas, so "scale to zero" is a
//! nodeSelector no node matches (as Flagger does) and scaling up removes it. Pure: no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, DeploymentStatus,
};

/// The nodeSelector key (value `"true"`) that keeps a scaled-to-zero DaemonSet off every node.
pub const SCALE_TO_ZERO_SELECTOR: &str = "serin.io/scale-to-zero";

/// The Deployment-shaped view of a DaemonSet: `spec.replicas` is the number of nodes that want a
/// pod, the status counters are the DaemonSet's per-node counters.
pub fn as_deployment(ds: &DaemonSet) -> Deployment {
    let spec = ds.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    if let Some(pod) = template.spec.as_mut()
        && let Some(sel) = pod.node_selector.as_mut()
    {
        sel.remove(SCALE_TO_ZERO_SELECTOR);
        if sel.is_empty() {
            pod.node_selector = None;
        }
    }
    let status = ds.status.as_ref().map(|s| DeploymentStatus {
        observed_generation: s.observed_generation,
        replicas: Some(s.current_number_scheduled),
        updated_replicas: s.updated_number_scheduled,
        ready_replicas: Some(s.number_ready),
        available_replicas: s.number_available,
        unavailable_replicas: s.number_unavailable,
        ..Default::default()
    });
    Deployment {
        metadata: ds.metadata.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(
                ds.status
                    .as_ref()
                    .map(|s| s.desired_number_scheduled)
                    .unwrap_or(0),
            ),
            selector: spec.selector,
            template,
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            ..Default::default()
        }),
        status,
    }
}

/// The primary DaemonSet from a primary built on the view, keeping the target's update strategy.
pub fn to_daemonset(primary: Deployment, target: &DaemonSet) -> DaemonSet {
    let spec = primary.spec.unwrap_or_default();
    DaemonSet {
        metadata: primary.metadata,
        spec: Some(DaemonSetSpec {
            selector: spec.selector,
            template: spec.template,
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            update_strategy: target.spec.as_ref().and_then(|s| s.update_strategy.clone()),
        }),
        status: None,
    }
}

/// Whether the DaemonSet is scaled to zero by Serin.
pub fn scaled_to_zero(ds: &DaemonSet) -> bool {
    node_selector(ds).contains_key(SCALE_TO_ZERO_SELECTOR)
}

fn node_selector(ds: &DaemonSet) -> BTreeMap<String, String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.node_selector.clone())
        .unwrap_or_default()
}

/// The merge patch that scales a DaemonSet to zero (`up == false`) or back up.
pub fn scale_patch(up: bool) -> serde_json::Value {
    let value = if up {
        serde_json::Value::Null
    } else {
        serde_json::json!("true")
    };
    serde_json::json!({"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_SELECTOR: value}}}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{LabelFilter, build_primary, readiness, template_hash};
    use serde_json::json;

    fn ds(node_selector: serde_json::Value, status: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "test", "generation": 3, "labels": {"app": "agent"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "minReadySeconds": 2,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"nodeSelector": node_selector, "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn scale_to_zero_is_not_a_new_revision_and_not_copied_to_the_primary() {
        let up = ds(json!({"disk": "ssd"}), json!(null));
        let down = ds(
            json!({"disk": "ssd", SCALE_TO_ZERO_SELECTOR: "true"}),
            json!(null),
        );
        assert!(scaled_to_zero(&down) && !scaled_to_zero(&up));
        assert_eq!(
            template_hash(&as_deployment(&up)),
            template_hash(&as_deployment(&down))
        );
        let owner = Default::default();
        let primary = to_daemonset(
            build_primary(
                &as_deployment(&down),
                &BTreeMap::new(),
                owner,
                "r",
                &LabelFilter::default(),
            ),
            &down,
        );
        let spec = primary.spec.unwrap();
        assert_eq!(
            spec.template.spec.unwrap().node_selector.unwrap(),
            [("disk".to_string(), "ssd".to_string())].into()
        );
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "agent-primary");
        assert_eq!(
            spec.update_strategy
                .unwrap()
                .rolling_update
                .unwrap()
                .max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2))
        );
        assert_eq!(spec.min_ready_seconds, Some(2));
    }

    #[test]
    fn readiness_of_the_view_follows_the_per_node_counters() {
        let status = |updated: i32, available: i32, observed: i64| {
            json!({"observedGeneration": observed, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "updatedNumberScheduled": updated, "numberMisscheduled": 0, "numberReady": available, "numberAvailable": available})
        };
        let ready = |s| readiness(&as_deployment(&ds(json!({}), s)), 100).is_ready();
        assert!(ready(status(3, 3, 3)));
        assert!(!ready(status(2, 3, 3)), "a node still runs the old pod");
        assert!(!ready(status(3, 2, 3)), "a pod is not available yet");
        assert!(!ready(status(3, 3, 2)), "the change is not observed yet");
        let zero = json!({"observedGeneration": 3, "desiredNumberScheduled": 0, "currentNumberScheduled": 0,
            "updatedNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0});
        assert!(!ready(zero), "scaled to zero has nothing to serve with");
    }

    #[test]
    fn scale_patches_set_and_remove_the_selector() {
        assert_eq!(
            scale_patch(false)["spec"]["template"]["spec"]["nodeSelector"][SCALE_TO_ZERO_SELECTOR],
            "true"
        );
        assert!(
            scale_patch(true)["spec"]["template"]["spec"]["nodeSelector"][SCALE_TO_ZERO_SELECTOR]
                .is_null()
        );
    }
}

//! Readiness of a Deployment from its status (DESIGN.md section 4): observedGeneration caught up,
//! all replicas updated, no old replicas left, available at or above the ready threshold; and
//! `ProgressDeadlineExceeded` as its own state. Pure.

use k8s_openapi::api::apps::v1::Deployment;

use crate::analysis::Readiness;

/// Readiness with `threshold` percent of updated replicas required to be available.
pub fn readiness(d: &Deployment, threshold: i32) -> Readiness {
    let generation = d.metadata.generation.unwrap_or(0);
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return Readiness::NotReady("no status yet".into());
    };
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        && c.status == "False"
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Readiness::DeadlineExceeded(
            c.message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".into()),
        );
    }
    if desired == 0 {
        // Zero of zero is not "ready": nothing could serve a request sent there.
        return Readiness::NotReady("scaled to 0 replicas".into());
    }
    if status.observed_generation.unwrap_or(0) < generation {
        return Readiness::NotReady("waiting for the rollout to be observed".into());
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Readiness::NotReady(format!("{updated} of {desired} replicas updated"));
    }
    if total > updated {
        return Readiness::NotReady(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    let needed = (i64::from(updated) * i64::from(threshold.clamp(0, 100)) + 99) / 100;
    if i64::from(available) < needed {
        return Readiness::NotReady(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Readiness::Ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"generation": 2}, "spec": {"replicas": 4, "selector": {}, "template": {}}, "status": status})).unwrap()
    }

    #[test]
    fn ready_only_when_observed_updated_and_available() {
        assert!(readiness(&deploy(json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4})), 100).is_ready());
        assert!(!readiness(&deploy(json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4})), 100).is_ready());
        assert!(!readiness(&deploy(json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 4, "availableReplicas": 4})), 100).is_ready());
        assert!(!readiness(&deploy(json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3})), 100).is_ready());
        assert!(readiness(&deploy(json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3})), 75).is_ready());
        let mut zero = deploy(json!({"observedGeneration": 2}));
        zero.spec.as_mut().unwrap().replicas = Some(0);
        assert_eq!(
            readiness(&zero, 100),
            Readiness::NotReady("scaled to 0 replicas".into())
        );
    }

    #[test]
    fn deadline_exceeded_is_its_own_state() {
        let d = deploy(
            json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"x\" has timed out progressing."}]}),
        );
        assert_eq!(
            readiness(&d, 100),
            Readiness::DeadlineExceeded("ReplicaSet \"x\" has timed out progressing.".into())
        );
    }
}

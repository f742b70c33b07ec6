//! The `-primary` copy of the target's HorizontalPodAutoscaler (autoscaling/v2): same metrics and
//! behaviour, scaling the primary Deployment, replica bounds overridable by
//! `autoscalerRef.primaryScalerReplicas`. Re-synced on every promotion. Pure builder + adapter.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::primary_name;
use crate::api::{AutoscalerKind, Canary, FIELD_MANAGER};

/// Builds `<hpa>-primary` from the target's HPA.
pub fn build_primary_hpa(
    source: &HorizontalPodAutoscaler,
    canary: &Canary,
    owner: OwnerReference,
) -> HorizontalPodAutoscaler {
    let mut spec = source.spec.clone();
    spec.scale_target_ref.name = primary_name(&canary.spec.target_ref.name);
    if let Some(bounds) = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|a| a.primary_scaler_replicas.as_ref())
    {
        if let Some(min) = bounds.min_replicas {
            spec.min_replicas = Some(min);
        }
        if let Some(max) = bounds.max_replicas {
            spec.max_replicas = max;
        }
    }
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: source.metadata.name.as_deref().map(primary_name),
            namespace: source.metadata.namespace.clone(),
            labels: source.metadata.labels.clone(),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// Applies the primary HPA when the Canary names an HPA; a missing source HPA is skipped.
pub async fn sync_primary_hpa(
    client: &kube::Client,
    canary: &Canary,
    owner: OwnerReference,
) -> kube::Result<()> {
    let Some(r) = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .filter(|r| r.kind == AutoscalerKind::HorizontalPodAutoscaler)
    else {
        return Ok(());
    };
    let api: Api<HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), &canary.namespace_or_default());
    let Some(source) = api.get_opt(&r.name).await? else {
        return Ok(());
    };
    let copy = build_primary_hpa(&source, canary, owner);
    let name = copy.metadata.name.clone().unwrap_or_default();
    let mut obj = serde_json::to_value(&copy).unwrap_or_default();
    obj["apiVersion"] = json!("autoscaling/v2");
    obj["kind"] = json!("HorizontalPodAutoscaler");
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_hpa_scales_the_primary_with_overridden_bounds() {
        let source: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}, "minReplicas": 2, "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
        }))
        .unwrap();
        let canary: Canary = serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo", "primaryScalerReplicas": {"maxReplicas": 10}},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 1, "iterations": 1}}
        }))
        .unwrap();
        let copy = build_primary_hpa(&source, &canary, OwnerReference::default());
        assert_eq!(copy.metadata.name.as_deref(), Some("podinfo-primary"));
        let spec = copy.spec;
        assert_eq!(spec.scale_target_ref.name, "podinfo-primary");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 10));
        assert_eq!(spec.metrics.unwrap().len(), 1);
    }
}

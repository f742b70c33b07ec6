//! KEDA: the `-primary` copy of the target's ScaledObject (`keda.sh/v1alpha1`) when
//! `autoscalerRef.kind` is `ScaledObject` — same triggers and scaling settings, scaling the
//! primary Deployment; a trigger's `query` replaced by `autoscalerRef.primaryScalerQueries[<trigger
//! name>]`, or, without that map, rewritten from the target's and canary's names to the primary's as
//! Flagger does; replica bounds from `primaryScalerReplicas`. Re-synced on every promotion. The
//! target's own ScaledObject is paused (`autoscaling.keda.sh/paused-replicas: "0"`) while the
//! target is scaled to zero, so that KEDA does not wake the idle canary, and resumed when the
//! analysis scales it up. Pure builder + thin adapters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::primary_name;
use crate::api::{AutoscalerKind, Canary, FIELD_MANAGER};
use crate::rbac::{Needed, Rule};

/// KEDA's annotation that holds a ScaledObject's target at a replica count.
pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

/// What the KEDA support calls (granted with the chart's `integrations.keda`).
pub const RBAC: &[Rule] = &[Rule {
    group: "keda.sh",
    resources: &["scaledobjects"],
    verbs: &["get", "create", "patch"],
    needed: Needed::Integration("keda"),
    why: "KEDA: read the target's ScaledObject, pause it while the target is idle; apply the -primary ScaledObject",
}];

fn api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "scaledobjects"),
    )
}

/// The Canary's ScaledObject name, when its autoscaler is one.
fn scaled_object(canary: &Canary) -> Option<&str> {
    canary
        .spec
        .autoscaler_ref
        .as_ref()
        .filter(|r| r.kind == AutoscalerKind::ScaledObject)
        .map(|r| r.name.as_str())
}

/// A trigger query for the primary: the target's and canary's names become the primary's. The
/// canary's name is replaced first, so that `podinfo-canary` does not become
/// `podinfo-primary-canary`.
fn primary_query(query: &str, target: &str) -> String {
    const MARK: &str = "\u{0}serin-primary\u{0}";
    let primary = primary_name(target);
    query
        .replace(&format!("{target}-canary"), MARK)
        .replace(&primary, MARK)
        .replace(target, &primary)
        .replace(MARK, &primary)
}

/// Builds `<so>-primary` from the target's ScaledObject (as JSON: KEDA's types are not ours).
pub fn build_primary_scaled_object(
    source: &Value,
    canary: &Canary,
    owner: OwnerReference,
) -> Value {
    let target = &canary.spec.target_ref.name;
    let r = canary.spec.autoscaler_ref.as_ref();
    let mut spec = source["spec"].clone();
    spec["scaleTargetRef"]["name"] = json!(primary_name(target));
    let queries = r.and_then(|r| r.primary_scaler_queries.as_ref());
    for trigger in spec["triggers"].as_array_mut().into_iter().flatten() {
        let name = trigger["name"].as_str().map(String::from);
        let Some(query) = trigger["metadata"]["query"].as_str().map(String::from) else {
            continue;
        };
        let new = match queries {
            Some(q) => name.and_then(|n| q.get(&n).cloned()),
            None => Some(primary_query(&query, target)),
        };
        if let Some(new) = new {
            trigger["metadata"]["query"] = json!(new);
        }
    }
    if let Some(bounds) = r.and_then(|r| r.primary_scaler_replicas.as_ref()) {
        if let Some(min) = bounds.min_replicas {
            spec["minReplicaCount"] = json!(min);
        }
        if let Some(max) = bounds.max_replicas {
            spec["maxReplicaCount"] = json!(max);
        }
    }
    let name = source["metadata"]["name"].as_str().map(primary_name);
    let mut metadata = json!({
        "name": name,
        "namespace": source["metadata"]["namespace"],
        "ownerReferences": [owner],
    });
    if let Some(labels) = source["metadata"]["labels"].as_object() {
        metadata["labels"] = json!(labels);
    }
    json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata, "spec": spec})
}

/// Applies the primary ScaledObject when the Canary names one; a missing source is skipped (as
/// a missing HPA is).
pub async fn sync_primary_scaled_object(
    client: &kube::Client,
    canary: &Canary,
    owner: OwnerReference,
) -> kube::Result<()> {
    let Some(name) = scaled_object(canary) else {
        return Ok(());
    };
    let api = api(client, &canary.namespace_or_default());
    let Some(source) = api.get_opt(name).await? else {
        return Ok(());
    };
    let source = serde_json::to_value(&source).unwrap_or_default();
    let copy = build_primary_scaled_object(&source, canary, owner);
    api.patch(
        &primary_name(name),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(copy),
    )
    .await?;
    Ok(())
}

/// Pauses (`paused`) or resumes the target's ScaledObject; no write when it already is.
pub async fn pause_target(
    client: &kube::Client,
    canary: &Canary,
    paused: bool,
) -> kube::Result<()> {
    let Some(name) = scaled_object(canary) else {
        return Ok(());
    };
    let api = api(client, &canary.namespace_or_default());
    let Some(so) = api.get_opt(name).await? else {
        return Ok(());
    };
    let current = so
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_REPLICAS))
        .map(String::as_str);
    let wanted = paused.then_some("0");
    if current == wanted {
        return Ok(());
    }
    // A merge patch of the one annotation: the user's ScaledObject is otherwise left as it is.
    let patch = json!({"metadata": {"annotations": {PAUSED_REPLICAS: wanted}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(extra: Value) -> Canary {
        let mut c = json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "autoscalerRef": {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so"},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 1, "iterations": 1}}
        });
        for (k, v) in extra.as_object().unwrap() {
            c["spec"]["autoscalerRef"][k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn source() -> Value {
        json!({"metadata": {"name": "podinfo-so", "namespace": "test", "labels": {"app": "podinfo"}},
        "spec": {"scaleTargetRef": {"name": "podinfo"}, "minReplicaCount": 1, "maxReplicaCount": 5,
            "triggers": [
                {"type": "prometheus", "name": "rps", "metadata": {"serverAddress": "http://prom:9090",
                    "query": "sum(rate(http_requests_total{deployment=\"podinfo\"}[1m])) + sum(rate(x{app=\"podinfo-canary\"}[1m]))", "threshold": "10"}},
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}
            ]}})
    }

    #[test]
    fn the_primary_copy_scales_the_primary_with_flaggers_query_rewrite() {
        let so =
            build_primary_scaled_object(&source(), &canary(json!({})), OwnerReference::default());
        assert_eq!(so["metadata"]["name"], "podinfo-so-primary");
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
        assert_eq!(
            so["spec"]["triggers"][0]["metadata"]["query"],
            "sum(rate(http_requests_total{deployment=\"podinfo-primary\"}[1m])) + sum(rate(x{app=\"podinfo-primary\"}[1m]))"
        );
        assert_eq!(so["spec"]["triggers"][1], source()["spec"]["triggers"][1]);
        assert_eq!(so["metadata"]["labels"]["app"], "podinfo");
        assert_eq!(
            primary_query("podinfo-primary", "podinfo"),
            "podinfo-primary"
        );
    }

    #[test]
    fn primary_scaler_queries_and_replicas_override_by_trigger_name() {
        let c = canary(json!({"primaryScalerQueries": {"rps": "sum(rate(y[1m]))"},
            "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 10}}));
        let so = build_primary_scaled_object(&source(), &c, OwnerReference::default());
        assert_eq!(
            so["spec"]["triggers"][0]["metadata"]["query"],
            "sum(rate(y[1m]))"
        );
        assert_eq!(
            (
                so["spec"]["minReplicaCount"].clone(),
                so["spec"]["maxReplicaCount"].clone()
            ),
            (json!(2), json!(10))
        );
    }
}

//! What a Canary on a Knative Service (`provider: knative`, `targetRef` a
//! `serving.knative.dev/v1` Service) can ask for, checked on the spec alone: the provider and the
//! target go together, and what Knative's `spec.traffic` cannot express (header/cookie matches,
//! mirroring, cookie affinity) is refused naming the field. That every other target needs
//! `spec.service` is the CRD's CEL rule (on `CanarySpec`). Pure; part of `validate`. Must not
//! import the routers or anything doing I/O.

use super::validate::Errors;
use super::{Canary, TargetWorkload};

/// The provider that routes a Knative Service's traffic between its revisions.
pub const KNATIVE_PROVIDER: &str = "knative";

/// Annotation on the Knative Service naming its primary revision (the last promoted one). Flagger
/// keeps the same fact under `flagger.app/primary-revision`.
pub const PRIMARY_REVISION_ANNOTATION: &str = "serin.io/primary-revision";

/// Checks of Knative targets and of the `knative` provider.
pub(super) fn check(errs: &mut Errors, provider: &str, canary: &Canary) {
    let spec = &canary.spec;
    let knative_target = spec.target_ref.workload() == TargetWorkload::KnativeService;
    if provider == KNATIVE_PROVIDER && !knative_target {
        errs.add(
            "spec.targetRef",
            "the knative provider splits traffic between the revisions of a Knative Service; target one (apiVersion serving.knative.dev/v1, kind Service)",
        );
    }
    if !knative_target {
        return;
    }
    if provider != KNATIVE_PROVIDER {
        errs.add(
            "spec.provider",
            format!("a Knative Service target is routed by Knative itself; use the knative provider, not '{provider}'"),
        );
    }
    let a = &spec.analysis;
    if a.r#match.as_ref().is_some_and(|m| !m.is_empty()) {
        errs.add(
            "spec.analysis.match",
            "Knative's spec.traffic splits by percentage only and cannot route requests by header or cookie; A/B testing is not possible with the knative provider",
        );
    }
    if a.mirror == Some(true) {
        errs.add(
            "spec.analysis.mirror",
            "Knative's spec.traffic cannot mirror requests; remove mirror for the knative provider",
        );
    }
    if a.session_affinity.is_some() {
        errs.add(
            "spec.analysis.sessionAffinity",
            "Knative's spec.traffic cannot pin clients to a revision by cookie; remove sessionAffinity for the knative provider",
        );
    }
    if spec.autoscaler_ref.is_some() {
        errs.add(
            "spec.autoscalerRef",
            "Knative scales each revision itself; remove autoscalerRef for a Knative Service target",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::api::{Canary, validate::validate};
    use serde_json::json;

    fn canary(extra: serde_json::Value) -> Canary {
        let mut c = json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"provider": "knative",
                "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
                "analysis": {"interval": "15s", "threshold": 15, "maxWeight": 50, "stepWeight": 10}}
        });
        if let (Some(spec), Some(extra)) = (c["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(c).unwrap()
    }

    fn paths(c: &Canary) -> Vec<String> {
        validate(c)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn a_knative_canary_needs_no_service() {
        assert_eq!(paths(&canary(json!({}))), Vec::<String>::new());
    }

    #[test]
    fn what_knative_cannot_express_is_refused_by_field() {
        let c = canary(
            json!({"analysis": {"interval": "15s", "threshold": 5, "iterations": 5,
            "match": [{"headers": {"x-canary": {"exact": "insider"}}}], "mirror": true,
            "sessionAffinity": {"cookieName": "c"}}}),
        );
        let p = paths(&c);
        for field in [
            "spec.analysis.match",
            "spec.analysis.mirror",
            "spec.analysis.sessionAffinity",
        ] {
            assert!(p.contains(&field.to_string()), "{field} in {p:?}");
        }
    }

    #[test]
    fn provider_and_target_go_together() {
        let c = canary(json!({"provider": "istio"}));
        assert!(paths(&c).contains(&"spec.provider".to_string()));
        let c = canary(
            json!({"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}}),
        );
        let p = paths(&c);
        assert_eq!(p, ["spec.targetRef"]);
    }
}

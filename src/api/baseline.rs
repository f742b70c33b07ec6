//! Validation of `spec.analysis.baseline` (Serin's field): a fresh baseline of the old version
//! needs a router that can split traffic three ways, a Deployment target and a weighted canary.
//! Pure; the decisions live in `crate::analysis::baseline`. Must not import anything that
//! performs I/O.

use super::validate::Errors;
use super::{Canary, TargetWorkload};

/// Providers whose routes can hold a third, baseline backend next to the primary and the canary.
pub const BASELINE_PROVIDERS: &[&str] = &[
    "gatewayapi",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "istio",
    "linkerd",
];

/// The field every baseline error names.
const FIELD: &str = "spec.analysis.baseline";

/// Checks that a Canary with `analysis.baseline: true` can have a baseline.
pub(super) fn check(errs: &mut Errors, provider: &str, canary: &Canary) {
    let spec = &canary.spec;
    if spec.analysis.baseline != Some(true) {
        return;
    }
    if !BASELINE_PROVIDERS.contains(&provider) {
        errs.add(
            FIELD,
            format!(
                "provider '{provider}' cannot split traffic three ways (primary, canary, baseline); use gatewayapi, istio or linkerd, or remove baseline"
            ),
        );
    }
    let kind = match spec.target_ref.workload() {
        TargetWorkload::Deployment => None,
        TargetWorkload::DaemonSet => Some("DaemonSet"),
        TargetWorkload::CoreService => Some("Service"),
        TargetWorkload::KnativeService => Some("Knative Service"),
    };
    if let Some(kind) = kind {
        errs.add(
            FIELD,
            format!(
                "a baseline is a Deployment copied from the primary Deployment, which a {kind} target does not have; remove baseline"
            ),
        );
    }
    if spec.analysis.iterations.is_some() {
        errs.add(
            FIELD,
            "the baseline takes the canary's weight, and A/B testing or blue/green (iterations) gives the canary none; use stepWeight or stepWeights",
        );
    }
    if spec.route_ref.is_some() {
        errs.add(
            FIELD,
            "an adopted route (spec.routeRef) has no backendRef for the baseline; let Serin generate the route or remove baseline",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::validate_for;
    use super::*;

    fn canary(kind: &str, analysis: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": "podinfo"},
                "service": {"port": 9898}, "analysis": analysis}
        }))
        .unwrap()
    }

    fn baseline_errors(c: &Canary, provider: &str) -> Vec<String> {
        validate_for(c, provider)
            .err()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.path == FIELD)
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn a_baseline_needs_a_three_way_router_a_deployment_and_weights() {
        let weighted = serde_json::json!({"interval": "1m", "threshold": 1, "stepWeight": 10, "baseline": true});
        let c = canary("Deployment", weighted.clone());
        for ok in BASELINE_PROVIDERS {
            assert!(baseline_errors(&c, ok).is_empty(), "{ok}");
        }
        let errs = baseline_errors(&c, "nginx");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("'nginx' cannot split traffic three ways"),
            "{errs:?}"
        );
        let ds = canary("DaemonSet", weighted);
        let errs = baseline_errors(&ds, "istio");
        assert!(errs[0].contains("DaemonSet target"), "{errs:?}");
        let bg = canary(
            "Deployment",
            serde_json::json!({"interval": "1m", "threshold": 1, "iterations": 2, "baseline": true}),
        );
        let errs = baseline_errors(&bg, "istio");
        assert!(errs[0].contains("iterations"), "{errs:?}");
        let off = canary(
            "Deployment",
            serde_json::json!({"interval": "1m", "threshold": 1, "stepWeight": 10, "baseline": false}),
        );
        assert!(baseline_errors(&off, "nginx").is_empty());
    }
}

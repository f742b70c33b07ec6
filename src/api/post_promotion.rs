//! `spec.analysis.postPromotion` and `status.postPromotion`: the watch that keeps checking a
//! promoted revision under full traffic for a window, and what status keeps for it (the deadline
//! and the primary's previous pod template, stored once). Pure data plus validation; the decisions
//! live in `crate::analysis::phase_watch`. Must not import anything that performs I/O.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::Errors;
use super::{Canary, CanaryMetric, TargetWorkload};

/// After a promotion, keep evaluating metrics against the primary (which now holds all traffic)
/// for a window, and act on a regression that shows only under full traffic. Serin's field;
/// Flagger has none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostPromotion {
    /// How long the watch lasts after the promotion completes, as a duration such as 10m.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub window: String,
    /// Time between two checks of the watch (default: the analysis interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// Metric checks run at every watch tick, as in analysis.metrics; `{{ target }}` renders as
    /// the primary's name (`<target>-primary`), the workload that serves the traffic now.
    #[schemars(length(min = 1))]
    pub metrics: Vec<CanaryMetric>,
    /// What analysis.threshold failed checks during the window do: rollback (default) re-deploys
    /// the primary's previous pod template; alert only alerts and records.
    #[serde(default)]
    pub action: PostPromotionAction,
}

/// What a failed post-promotion watch does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostPromotionAction {
    /// Re-deploy the primary's pod template from before the promotion; the Canary ends Failed.
    #[default]
    Rollback,
    /// Send an alert and record the failure; the promoted revision stays.
    Alert,
}

/// What status keeps for a post-promotion watch, from the promotion until the watch ends (or,
/// after a rollback, until the primary runs the previous revision again).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostPromotionStatus {
    /// The revision the primary ran before the promotion.
    #[serde(default)]
    pub previous_revision: String,
    /// The primary's pod template before the promotion (the only copy kept).
    #[schemars(schema_with = "any_object")]
    pub previous_template: serde_json::Value,
    /// When the watch ends; absent until the promotion has completed. A time in status, so a
    /// restart of the controller cannot extend the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Failed checks counted during the watch.
    #[serde(default)]
    pub failed_checks: i32,
    /// The watch rolled back: the previous template is being restored to the primary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restoring: bool,
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Checks `spec.analysis.postPromotion` beyond its schema.
pub(super) fn check(errs: &mut Errors, canary: &Canary) {
    let Some(pp) = &canary.spec.analysis.post_promotion else {
        return;
    };
    let path = "spec.analysis.postPromotion";
    match canary.spec.target_ref.workload() {
        TargetWorkload::Deployment | TargetWorkload::DaemonSet => {}
        other => errs.add(
            path,
            format!(
                "the post-promotion watch needs a Deployment or DaemonSet target (its rollback \
                 re-deploys a pod template), not a {other:?}"
            ),
        ),
    }
    errs.duration(
        &format!("{path}.window"),
        Some(&pp.window),
        Duration::from_secs(1),
    );
    errs.duration(
        &format!("{path}.interval"),
        pp.interval.as_deref(),
        Duration::from_secs(1),
    );
    if pp.metrics.is_empty() {
        errs.add(
            format!("{path}.metrics"),
            "must list at least one metric to watch",
        );
    }
    let mut names = HashSet::new();
    for (i, m) in pp.metrics.iter().enumerate() {
        let at = format!("{path}.metrics[{i}]");
        if !names.insert(m.name.as_str()) {
            errs.add(
                format!("{at}.name"),
                format!("metric name '{}' is used twice", m.name),
            );
        }
        super::validate::check_metric(errs, &at, m);
        if m.compare.is_some() {
            // After promotion there is no canary to compare with: every pod runs the new revision.
            errs.add(
                format!("{at}.compare"),
                "the statistical judge needs a canary and a primary; after promotion there is only the primary, so give a threshold instead",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::api::{Canary, validate};

    fn canary(target: serde_json::Value, post: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "web", "namespace": "test"},
            "spec": {"targetRef": target, "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 2, "iterations": 3, "postPromotion": post}}}))
        .unwrap()
    }

    fn deployment() -> serde_json::Value {
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    }

    fn errors(c: &Canary) -> Vec<String> {
        validate(c)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_watch_passes_and_defaults_to_rollback() {
        let c = canary(
            deployment(),
            serde_json::json!({"window": "10m", "metrics": [
                {"name": "request-success-rate", "thresholdRange": {"min": 99}}]}),
        );
        assert_eq!(errors(&c), Vec::<String>::new());
        let pp = c.spec.analysis.post_promotion.unwrap();
        assert_eq!(pp.action, super::PostPromotionAction::Rollback);
    }

    #[test]
    fn bad_fields_are_named_in_one_sentence_each() {
        let c = canary(
            deployment(),
            serde_json::json!({"window": "ten minutes", "interval": "0s", "metrics": [
                {"name": "errors", "query": "x"}, {"name": "errors", "query": "y", "thresholdRange": {"max": 1}}]}),
        );
        let errs = errors(&c);
        let paths: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "spec.analysis.postPromotion.window",
                "spec.analysis.postPromotion.interval",
                "spec.analysis.postPromotion.metrics[0].thresholdRange",
                "spec.analysis.postPromotion.metrics[1].name",
            ],
            "{errs:?}"
        );
        let empty = canary(
            deployment(),
            serde_json::json!({"window": "5m", "metrics": []}),
        );
        assert_eq!(
            errors(&empty),
            ["spec.analysis.postPromotion.metrics: must list at least one metric to watch"]
        );
    }

    #[test]
    fn a_compared_metric_cannot_be_watched_after_promotion() {
        let c = canary(
            deployment(),
            serde_json::json!({"window": "5m", "metrics": [
                {"name": "latency", "query": "x{pod=~\"{{ target }}-.*\"}", "compare": {"direction": "increase"}}]}),
        );
        let errs = errors(&c);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.analysis.postPromotion.metrics[0].compare: ")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_service_target_cannot_be_watched() {
        let c = canary(
            serde_json::json!({"apiVersion": "v1", "kind": "Service", "name": "web"}),
            serde_json::json!({"window": "5m", "metrics": [
                {"name": "errors", "query": "x", "thresholdRange": {"max": 1}}]}),
        );
        assert!(
            errors(&c).iter().any(|e| e.starts_with(
                "spec.analysis.postPromotion: the post-promotion watch needs a Deployment or DaemonSet target"
            )),
            "{:?}",
            errors(&c)
        );
    }
}

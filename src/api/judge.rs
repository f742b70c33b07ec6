//! The statistical judge's API (Serin's own; Flagger has none): `spec.analysis.judge` sets how a
//! difference is judged, and a metric's `compare` block makes it compared between the canary and
//! the other side instead of held to a fixed bound. Plain data; the statistics live in
//! `crate::analysis`. Must not import anything that performs I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default smallest relative change of the median that can fail a metric (10 %).
pub const DEFAULT_MIN_EFFECT: f64 = 0.10;
/// Default p-value a change must stay below to count as real.
pub const DEFAULT_MAX_P_VALUE: f64 = 0.05;
/// Default samples needed on each side: with fewer than 4 a two-sided Mann-Whitney test cannot
/// reach p < 0.05 at all, and 5 leaves room for one sample out of order.
pub const DEFAULT_MIN_SAMPLES: i32 = 5;

/// How the metrics with `compare` are judged: the canary fails a metric when its median moved in
/// the bad direction by at least `minEffect` and a two-sided Mann-Whitney U test puts the
/// difference below `maxPValue`. Serin's field.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Judge {
    /// Smallest relative change of the canary's median against the other side's that can fail a
    /// metric, e.g. 0.1 for 10 % (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_effect: Option<f64>,
    /// A difference counts only when the test's two-sided p-value is below this (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_p_value: Option<f64>,
    /// Samples (pods, or points of a range) needed on each side; fewer is no data, handled by
    /// onNoData (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub min_samples: Option<i32>,
}

impl Judge {
    /// `minEffect` with its default.
    pub fn min_effect(j: Option<&Judge>) -> f64 {
        j.and_then(|j| j.min_effect).unwrap_or(DEFAULT_MIN_EFFECT)
    }
    /// `maxPValue` with its default.
    pub fn max_p_value(j: Option<&Judge>) -> f64 {
        j.and_then(|j| j.max_p_value).unwrap_or(DEFAULT_MAX_P_VALUE)
    }
    /// `minSamples` with its default.
    pub fn min_samples(j: Option<&Judge>) -> usize {
        let n = j.and_then(|j| j.min_samples).unwrap_or(DEFAULT_MIN_SAMPLES);
        usize::try_from(n.max(2)).unwrap_or(2)
    }
}

/// Compare this metric between the canary and the other side (the primary) instead of holding
/// it to a bound. The query runs once per side with `{{ target }}` set to that side's workload
/// (`<target>` for the canary, `<target>-primary` for the primary) and `{{ side }}` to `canary`
/// or `primary`; it must return one series per pod (an instant vector), or a range (a subquery
/// such as `rate(x[1m])[5m:30s]`) whose every point is a sample.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricCompare {
    /// Which change of the canary is bad: increase (latency, errors) or decrease (success rate,
    /// throughput).
    pub direction: CompareDirection,
}

/// Which change of a compared metric counts against the canary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompareDirection {
    /// A higher canary value is bad.
    Increase,
    /// A lower canary value is bad.
    Decrease,
}

/// The judge's numbers for one compared metric in a decision record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgeRecord {
    /// What the canary was compared with: `primary` (the running primary) for now.
    pub baseline: String,
    /// Median of the canary's samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_median: Option<f64>,
    /// Median of the other side's samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_median: Option<f64>,
    /// Relative change of the canary's median against the other side's (0.1 = 10 % higher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    /// Two-sided p-value of the Mann-Whitney U test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Samples from the canary.
    pub canary_samples: i32,
    /// Samples from the other side.
    pub baseline_samples: i32,
}

/// `spec.analysis.judge`: values the schema bounds too, checked again for manifests read offline.
pub(super) fn check_judge(errs: &mut super::validate::Errors, judge: Option<&Judge>) {
    let Some(j) = judge else { return };
    if let Some(e) = j.min_effect
        && !(e.is_finite() && e >= 0.0)
    {
        errs.add(
            "spec.analysis.judge.minEffect",
            format!("{e} is not a relative change of 0 or more (0.1 is 10 %)"),
        );
    }
    if let Some(p) = j.max_p_value
        && !(p > 0.0 && p <= 1.0)
    {
        errs.add(
            "spec.analysis.judge.maxPValue",
            format!("{p} is not a p-value above 0 and at most 1"),
        );
    }
    if let Some(n) = j.min_samples
        && n < 2
    {
        errs.add(
            "spec.analysis.judge.minSamples",
            format!("{n} samples per side cannot show a difference; use 2 or more"),
        );
    }
}

/// A metric with `compare`: it needs a query that can return per-pod samples, and it has no bound.
pub(super) fn check_compare(
    errs: &mut super::validate::Errors,
    path: &str,
    m: &super::CanaryMetric,
) {
    if m.compare.is_none() {
        return;
    }
    if m.query.is_none() && m.template_ref.is_none() {
        errs.add(
            format!("{path}.compare"),
            format!(
                "the built-in metric '{}' sums every pod into one value; compare needs a query or templateRef that returns one series per pod",
                m.name
            ),
        );
    }
    let bounded = m.threshold.is_some()
        || m.threshold_range
            .as_ref()
            .is_some_and(|r| r.min.is_some() || r.max.is_some());
    if bounded {
        errs.add(
            format!("{path}.thresholdRange"),
            "a metric with compare is judged against the other side, not a bound; put the bound in a metric of its own",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::api::{Canary, FieldError, validate};

    fn problems(analysis: serde_json::Value) -> Vec<FieldError> {
        let mut spec = serde_json::json!({
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10}
        });
        for (k, v) in analysis.as_object().unwrap() {
            spec["analysis"][k] = v.clone();
        }
        let c = Canary::new("podinfo", serde_json::from_value(spec).unwrap());
        validate(&c).err().unwrap_or_default()
    }

    #[test]
    fn compare_needs_a_query_and_no_bound() {
        let errs = problems(serde_json::json!({"metrics": [
            {"name": "request-duration", "compare": {"direction": "increase"}},
            {"name": "errors", "query": "x", "thresholdRange": {"max": 1},
                "compare": {"direction": "increase"}},
            {"name": "latency", "query": "y{pod=~\"{{ target }}-.*\"}",
                "compare": {"direction": "increase"}}
        ]}));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.analysis.metrics[0].compare",
                "spec.analysis.metrics[1].thresholdRange"
            ],
            "{errs:?}"
        );
        assert!(errs[0].message.contains("one series per pod"));
    }

    #[test]
    fn judge_settings_are_checked_by_name() {
        let errs = problems(serde_json::json!({
            "judge": {"minEffect": -0.1, "maxPValue": 0.0, "minSamples": 1}
        }));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.analysis.judge.minEffect",
                "spec.analysis.judge.maxPValue",
                "spec.analysis.judge.minSamples"
            ]
        );
        assert!(
            problems(serde_json::json!({"judge": {"minEffect": 0.2, "maxPValue": 0.01}}))
                .is_empty()
        );
    }
}

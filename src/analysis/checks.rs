//! Evaluation of one analysis tick's checks: webhooks of a gating type and metric values against
//! their bounds, with the `onNoData` policy. Produces the records for `status.decisions`.

use super::input::{HookOutcome, MetricFailure, Observation, hooks_of};
use crate::api::{
    CanaryMetric, CanarySpec, CheckRecord, HookType, OnNoData, OnProviderError, Verdict,
};

/// What a set of checks says about the tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TickVerdict {
    /// Every check passed (or was skipped by policy).
    Pass,
    /// At least one check failed; the text names the first and its value.
    Fail { reason: String, mute_alert: bool },
    /// No failure, but a metric had no data under `onNoData: hold`.
    Hold(String),
    /// No failure, but a metrics provider could not be reached (`onProviderError: hold`).
    ProviderDown(String),
}

/// Records and verdict of a tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub records: Vec<CheckRecord>,
    pub verdict: TickVerdict,
}

impl Checked {
    pub fn pass() -> Checked {
        Checked {
            records: Vec::new(),
            verdict: TickVerdict::Pass,
        }
    }

    fn add(&mut self, record: CheckRecord, mute_alert: bool) {
        match (&self.verdict, record.verdict) {
            (TickVerdict::Fail { .. }, _) => {}
            (_, Verdict::Fail) => {
                self.verdict = TickVerdict::Fail {
                    reason: describe_failure(&record),
                    mute_alert,
                };
            }
            (TickVerdict::Pass | TickVerdict::Hold(_), Verdict::Unreachable) => {
                let why = record.message.clone().unwrap_or_default();
                self.verdict = TickVerdict::ProviderDown(format!("{}: {why}", record.name));
            }
            (TickVerdict::Pass, Verdict::NoData) => {
                self.verdict = TickVerdict::Hold(format!("{} has no data", record.name))
            }
            _ => {}
        }
        self.records.push(record);
    }

    /// Merges another set of checks run later in the same tick.
    pub fn extend(&mut self, other: Checked) {
        for r in other.records {
            self.add(
                r,
                matches!(
                    other.verdict,
                    TickVerdict::Fail {
                        mute_alert: true,
                        ..
                    }
                ),
            );
        }
    }
}

fn describe_failure(r: &CheckRecord) -> String {
    if r.judge.is_some()
        && let Some(m) = &r.message
    {
        return format!("{}: {}", r.name, m);
    }
    match (r.value, &r.bound, &r.message) {
        (Some(v), Some(b), _) => format!("{} {} not {}", r.name, fmt_value(v), b),
        (_, _, Some(m)) => format!("{}: {}", r.name, m),
        _ => format!("{} failed", r.name),
    }
}

/// Two decimals, as Flagger prints metric values.
pub(crate) fn fmt_value(v: f64) -> String {
    format!("{v:.2}")
}

/// Runs the webhooks of `kind` through their observed outcomes (spec order).
pub(crate) fn check_hooks(spec: &CanarySpec, observed: &Observation, kind: HookType) -> Checked {
    let mut out = Checked::pass();
    for hook in hooks_of(spec, kind) {
        let outcome = observed
            .hooks
            .get(&hook.name)
            .cloned()
            .unwrap_or_else(|| HookOutcome::Unreachable("not called".to_string()));
        let record = CheckRecord {
            name: hook.name.clone(),
            value: None,
            bound: None,
            verdict: if outcome.is_success() {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            message: (!outcome.is_success()).then(|| outcome.describe()),
            judge: None,
        };
        out.add(record, hook.mute_alert.unwrap_or(false));
    }
    out
}

/// Whether any webhook of `kind` answered 2xx (rollback hooks: one yes is enough).
pub(crate) fn any_hook_succeeded(
    spec: &CanarySpec,
    observed: &Observation,
    kind: HookType,
) -> Option<String> {
    hooks_of(spec, kind)
        .find(|h| {
            observed
                .hooks
                .get(&h.name)
                .is_some_and(HookOutcome::is_success)
        })
        .map(|h| h.name.clone())
}

/// What a metric without a value counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policies {
    pub no_data: OnNoData,
    pub provider_error: OnProviderError,
}

/// Evaluates every metric of the spec against its observed value.
pub(crate) fn check_metrics(
    spec: &CanarySpec,
    observed: &Observation,
    policies: Policies,
) -> Checked {
    let mut out = Checked::pass();
    for metric in spec.analysis.metrics.iter().flatten() {
        if let Some(compare) = &metric.compare {
            let result = observed
                .samples
                .get(&metric.name)
                .cloned()
                .unwrap_or(Err(MetricFailure::NotQueried));
            let record = super::judge::evaluate_compared(spec, metric, compare, &result, policies);
            out.add(record, false);
            continue;
        }
        let result = observed
            .metrics
            .get(&metric.name)
            .cloned()
            .unwrap_or(Err(MetricFailure::NotQueried));
        out.add(evaluate_metric(metric, &result, policies), false);
    }
    out
}

/// Evaluates a list of metrics (the post-promotion watch's) against their observed values.
pub(crate) fn check_metric_list(
    metrics: &[CanaryMetric],
    observed: &Observation,
    policies: Policies,
) -> Checked {
    let mut out = Checked::pass();
    for metric in metrics {
        let result = observed
            .metrics
            .get(&metric.name)
            .cloned()
            .unwrap_or(Err(MetricFailure::NotQueried));
        out.add(evaluate_metric(metric, &result, policies), false);
    }
    out
}

/// Lower and upper bound of a metric. The deprecated `threshold` is a minimum for
/// request-success-rate and a maximum for everything else (Flagger's reading).
pub fn bounds(m: &CanaryMetric) -> (Option<f64>, Option<f64>) {
    if let Some(r) = &m.threshold_range
        && (r.min.is_some() || r.max.is_some())
    {
        return (r.min, r.max);
    }
    match m.threshold {
        Some(t) if m.name == "request-success-rate" => (Some(t), None),
        Some(t) => (None, Some(t)),
        None => (None, None),
    }
}

fn bound_text(min: Option<f64>, max: Option<f64>) -> Option<String> {
    match (min, max) {
        (Some(lo), Some(hi)) => Some(format!("in [{lo}, {hi}]")),
        (Some(lo), None) => Some(format!(">= {lo}")),
        (None, Some(hi)) => Some(format!("<= {hi}")),
        (None, None) => None,
    }
}

/// One metric's record under the policies.
pub(crate) fn evaluate_metric(
    m: &CanaryMetric,
    result: &Result<f64, MetricFailure>,
    policies: Policies,
) -> CheckRecord {
    let (min, max) = bounds(m);
    let mut record = CheckRecord {
        name: m.name.clone(),
        value: None,
        bound: bound_text(min, max),
        verdict: Verdict::Pass,
        message: None,
        judge: None,
    };
    match result {
        Ok(v) => {
            record.value = Some(*v);
            let within =
                v.is_finite() && min.is_none_or(|lo| *v >= lo) && max.is_none_or(|hi| *v <= hi);
            record.verdict = if within { Verdict::Pass } else { Verdict::Fail };
        }
        Err(failure) => apply_failure(&mut record, failure, policies),
    }
    record
}

/// Marks `record` with what a metric without a value counts as under the policies.
pub(crate) fn apply_failure(record: &mut CheckRecord, failure: &MetricFailure, policies: Policies) {
    match failure {
        MetricFailure::NoData => {
            record.message = Some("no data".to_string());
            record.verdict = match policies.no_data {
                OnNoData::Fail => Verdict::Fail,
                OnNoData::Skip => Verdict::Skipped,
                OnNoData::Hold => Verdict::NoData,
            };
        }
        MetricFailure::Unreachable(why) => {
            record.message = Some(format!("provider unreachable: {why}"));
            record.verdict = match policies.provider_error {
                OnProviderError::Hold => Verdict::Unreachable,
                OnProviderError::Fail => Verdict::Fail,
            };
        }
        other => {
            record.message = Some(other.to_string());
            record.verdict = Verdict::Fail;
        }
    }
}

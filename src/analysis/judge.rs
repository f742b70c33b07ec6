//! The statistical judge: a metric with `compare` is sampled on both sides (canary and the other
//! side) and fails when the canary's median moved the bad way by at least `minEffect` and the
//! Mann-Whitney U test puts the difference below `maxPValue`. Too few samples is no data, for the
//! `onNoData` policy. Pure: the samples are observed by the adapters; this module must not import
//! kube, tokio, reqwest or the clock.

use super::checks::{Policies, apply_failure};
use super::input::MetricFailure;
use super::stats::{mann_whitney, median, relative_effect};
use crate::api::{
    CanaryMetric, CanarySpec, CheckRecord, CompareDirection, Judge, JudgeRecord, MetricCompare,
    Verdict,
};

/// Samples of one compared metric: one value per pod (or per point of a range) on each side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    /// From the canary (the target workload).
    pub canary: Vec<f64>,
    /// From the other side.
    pub baseline: Vec<f64>,
}

/// The side the canary is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherSide {
    /// What the records call it and `{{ side }}` renders to.
    pub side: &'static str,
    /// Its workload's name, what `{{ target }}` renders to on that side.
    pub workload: String,
}

/// The workload the canary is compared with: `<target>-baseline` (fresh pods of the old
/// version, started with the canary) when `analysis.baseline` is set, else the running primary;
/// the records say which.
pub fn other_side(spec: &CanarySpec) -> OtherSide {
    if spec.analysis.baseline == Some(true) {
        return OtherSide {
            side: "baseline",
            workload: format!("{}-baseline", spec.target_ref.name),
        };
    }
    OtherSide {
        side: "primary",
        workload: format!("{}-primary", spec.target_ref.name),
    }
}

/// What `{{ side }}` renders to on the canary's side.
pub const CANARY_SIDE: &str = "canary";

fn bound_text(compare: &MetricCompare, judge: Option<&Judge>, other: &str) -> String {
    let way = match compare.direction {
        CompareDirection::Increase => "increase",
        CompareDirection::Decrease => "decrease",
    };
    // Percent to one decimal, so 0.07 reads 7, not 7.000000000000001.
    let percent = (Judge::min_effect(judge) * 1000.0).round() / 10.0;
    format!(
        "vs {other}: no {way} of {percent}% or more at p < {}",
        Judge::max_p_value(judge)
    )
}

/// The finite values of a sample (NaN is a pod without traffic: nothing to rank).
fn finite(xs: &[f64]) -> Vec<f64> {
    xs.iter().copied().filter(|x| x.is_finite()).collect()
}

/// One compared metric's record under the judge's settings and the no-data policies.
pub(crate) fn evaluate_compared(
    spec: &CanarySpec,
    m: &CanaryMetric,
    compare: &MetricCompare,
    result: &Result<Samples, MetricFailure>,
    policies: Policies,
) -> CheckRecord {
    let judge = spec.analysis.judge.as_ref();
    let other = other_side(spec).side;
    let mut record = CheckRecord {
        name: m.name.clone(),
        bound: Some(bound_text(compare, judge, other)),
        judge: Some(JudgeRecord {
            baseline: other.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let samples = match result {
        Ok(s) => s,
        Err(failure) => {
            apply_failure(&mut record, failure, policies);
            return record;
        }
    };
    let (c, b) = (finite(&samples.canary), finite(&samples.baseline));
    let numbers = record.judge.get_or_insert_with(Default::default);
    numbers.canary_samples = i32::try_from(c.len()).unwrap_or(i32::MAX);
    numbers.baseline_samples = i32::try_from(b.len()).unwrap_or(i32::MAX);
    let min = Judge::min_samples(judge);
    if c.len() < min || b.len() < min {
        apply_failure(&mut record, &MetricFailure::NoData, policies);
        record.message = Some(format!(
            "too few samples: canary {}, {other} {} (minSamples {min})",
            c.len(),
            b.len()
        ));
        return record;
    }
    judge_samples(&mut record, compare, judge, &c, &b, other);
    record
}

/// Decides Pass or Fail from samples that are enough, and fills in the numbers.
fn judge_samples(
    record: &mut CheckRecord,
    compare: &MetricCompare,
    judge: Option<&Judge>,
    c: &[f64],
    b: &[f64],
    other: &str,
) {
    let (Some(mc), Some(mb), Some(test)) = (median(c), median(b), mann_whitney(c, b)) else {
        // Unreachable with at least two samples per side; no data rather than a panic.
        record.verdict = Verdict::NoData;
        return;
    };
    let effect = relative_effect(mc, mb);
    let worse = match compare.direction {
        CompareDirection::Increase => effect,
        CompareDirection::Decrease => -effect,
    };
    let significant = test.p_value < Judge::max_p_value(judge);
    let large = worse > 0.0 && worse >= Judge::min_effect(judge);
    record.value = Some(mc);
    record.verdict = if significant && large {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    record.message = Some(format!(
        "canary median {mc:.4} vs {other} {mb:.4}: {:+.1}%, p = {:.4} ({} vs {} samples)",
        effect * 100.0,
        test.p_value,
        c.len(),
        b.len()
    ));
    if let Some(n) = record.judge.as_mut() {
        n.canary_median = Some(mc);
        n.baseline_median = Some(mb);
        n.effect = Some(effect);
        n.p_value = Some(test.p_value);
    }
}

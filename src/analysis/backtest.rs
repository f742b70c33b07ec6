//! Replay of a Canary's analysis over recorded metric values, for `serin backtest`.
//!
//! Ticks lie at the analysis interval from the start of the replay, and are laid into consecutive
//! analyses: each begins at the tick after the previous one ended and runs, as the decision core
//! runs one, until it promotes (as many passing ticks as the plan has steps: one per weight, plus
//! the mirrored one, or `iterations`) or rolls back (the failed check that reaches `threshold`,
//! or a hold of `onNoData: hold` lasting progressDeadlineSeconds). A failed check below the
//! threshold does not advance, so such an analysis is longer than its steps. Ticks left at the
//! end form an unfinished analysis. Each tick is judged by the core's own metric checks (bounds,
//! `onNoData`) and, for metrics with `compare`, by the core's statistical judge over the samples
//! each side had at that time; webhooks are not replayed. Pure: no I/O, no clock; must not import kube, tokio,
//! reqwest or the controller.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::checks::{Checked, TickVerdict, check_metrics};
use super::input::{MetricFailure, Observation};
use super::judge::Samples;
use super::schedule::{Plan, Strategy};
use crate::api::{CanarySpec, CheckRecord, Verdict};

/// The metric values of one tick, as the controller would have observed them at `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct TickValues {
    /// When the tick runs.
    pub at: DateTime<Utc>,
    /// Per metric name: its value at `at`, or why there is none.
    pub metrics: BTreeMap<String, Result<f64, MetricFailure>>,
    /// Per compared metric (`compare`): each side's samples at `at` (one per series), or why
    /// there are none.
    pub samples: BTreeMap<String, Result<Samples, MetricFailure>>,
}

/// What a tick did to its analysis.
#[derive(Debug, Clone, PartialEq)]
pub enum TickResult {
    /// Every check passed: one step forward.
    Passed,
    /// A check failed: one more failed check (the text names it and its value).
    Failed(String),
    /// No verdict (`onNoData: hold`): no step, no failure.
    Held(String),
}

/// One replayed tick.
#[derive(Debug, Clone, PartialEq)]
pub struct TickReport {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Each check's value, bound and verdict, as in `status.decisions`.
    pub records: Vec<CheckRecord>,
    /// What it did.
    pub result: TickResult,
    /// Passing ticks of its analysis so far, this one included.
    pub passed: usize,
    /// Failed checks of its analysis so far, this one included.
    pub failed_checks: i32,
}

/// How an analysis ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Enough passing ticks: the canary would have been promoted.
    Promoted,
    /// Rolled back in the tick at `at`, because of `check`; `reason` as the core words it.
    RolledBack {
        /// The tick that rolled back.
        at: DateTime<Utc>,
        /// The check that decided it.
        check: String,
        /// Why, e.g. `request-success-rate 91.20 not >= 99`.
        reason: String,
    },
    /// The replay's end came first.
    Unfinished,
}

/// One replayed analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisReport {
    /// Its ticks, in order.
    pub ticks: Vec<TickReport>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Passing ticks an analysis needs to promote: one per canary weight (plus the mirrored tick at
/// weight 0), or the iterations of A/B and blue/green.
pub fn checks_to_promote(plan: &Plan) -> usize {
    match plan.strategy {
        Strategy::Canary => plan.weights.len().max(1) + usize::from(plan.mirror),
        Strategy::AbTesting | Strategy::BlueGreen => {
            usize::try_from(plan.iterations.max(1)).unwrap_or(1)
        }
    }
}

/// The tick times of a replay: `from`, `from + interval`, … before `to`.
pub fn tick_times(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: std::time::Duration,
) -> Vec<DateTime<Utc>> {
    let Ok(step) = chrono::Duration::from_std(interval) else {
        return Vec::new();
    };
    if step <= chrono::Duration::zero() {
        return Vec::new();
    }
    std::iter::successors(Some(from), |t| Some(*t + step))
        .take_while(|t| *t < to)
        .collect()
}

/// Replays consecutive analyses over `ticks` (in time order) until they are used up.
pub fn replay(spec: &CanarySpec, plan: &Plan, ticks: &[TickValues]) -> Vec<AnalysisReport> {
    let mut out = Vec::new();
    let mut rest = ticks;
    while !rest.is_empty() {
        let report = evaluate_analysis(spec, plan, rest);
        rest = &rest[report.ticks.len().max(1)..];
        out.push(report);
    }
    out
}

/// The checks of one tick: threshold metrics against their bounds and compared metrics by the
/// judge (analysis.judge), through the same `check_metrics` as the controller's ticks.
fn check_tick(spec: &CanarySpec, plan: &Plan, values: &TickValues) -> Checked {
    let observed = Observation {
        metrics: values.metrics.clone(),
        samples: values.samples.clone(),
        ..Observation::default()
    };
    check_metrics(spec, &observed, plan.policies())
}

/// One analysis from the first of `ticks`: the ticks it used and how it ended. This is the
/// per-window evaluation: everything it judges comes from the window's metric values.
pub fn evaluate_analysis(spec: &CanarySpec, plan: &Plan, ticks: &[TickValues]) -> AnalysisReport {
    let needed = checks_to_promote(plan);
    let threshold = plan.threshold.max(1);
    let deadline =
        chrono::Duration::from_std(plan.progress_deadline).unwrap_or(chrono::Duration::MAX);
    let (mut passed, mut failed, mut held_since) = (0usize, 0i32, None::<DateTime<Utc>>);
    let mut out = Vec::new();
    for values in ticks {
        let checked = check_tick(spec, plan, values);
        let first_bad = |v: Verdict| {
            checked
                .records
                .iter()
                .find(|r| r.verdict == v)
                .map(|r| r.name.clone())
                .unwrap_or_default()
        };
        let (result, ended) = match &checked.verdict {
            TickVerdict::Pass => {
                held_since = None;
                passed += 1;
                (
                    TickResult::Passed,
                    (passed >= needed).then_some(Outcome::Promoted),
                )
            }
            TickVerdict::Fail { reason, .. } => {
                held_since = None;
                failed = (failed + 1).min(threshold);
                let ended = (failed >= threshold).then(|| Outcome::RolledBack {
                    at: values.at,
                    check: first_bad(Verdict::Fail),
                    reason: reason.clone(),
                });
                (TickResult::Failed(reason.clone()), ended)
            }
            TickVerdict::Hold(why) | TickVerdict::ProviderDown(why) => {
                let since = *held_since.get_or_insert(values.at);
                let ended = (values.at - since >= deadline).then(|| Outcome::RolledBack {
                    at: values.at,
                    check: first_bad(Verdict::NoData),
                    reason: format!("held for progressDeadlineSeconds without a verdict: {why}"),
                });
                (TickResult::Held(why.clone()), ended)
            }
        };
        out.push(TickReport {
            at: values.at,
            records: checked.records,
            result,
            passed,
            failed_checks: failed,
        });
        if let Some(outcome) = ended {
            return AnalysisReport {
                ticks: out,
                outcome,
            };
        }
    }
    AnalysisReport {
        ticks: out,
        outcome: Outcome::Unfinished,
    }
}

#[cfg(test)]
#[path = "backtest_tests.rs"]
mod tests;

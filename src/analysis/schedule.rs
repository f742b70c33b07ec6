//! The schedule: which strategy a spec describes, the weight sequence, when a step is due and what
//! routes each state implies. Pure arithmetic over the spec and status.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::input::Routes;
use crate::api::duration::parse_duration;
use crate::api::{
    CanaryAnalysis, CanaryPhase, CanarySpec, CanaryStatus, OnNoData, OnProviderError,
};

/// Default analysis interval when the spec's cannot be parsed (validation reports it separately).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The rollout strategy a spec describes (Flagger's rules: iterations with match is A/B,
/// iterations alone is blue/green, step weights are a canary; the kubernetes provider can only
/// switch selectors, so it is always blue/green).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Progressive weights (stepWeight / stepWeights), optionally one mirrored step first.
    Canary,
    /// Requests matching `analysis.match` go to the canary for `iterations` ticks.
    AbTesting,
    /// The canary gets no user traffic (optionally mirrored) for `iterations` ticks, then all.
    BlueGreen,
}

/// The analysis settings `decide` works with, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Which strategy.
    pub strategy: Strategy,
    /// Time between steps.
    pub interval: Duration,
    /// Failed checks that trigger a rollback (at least 1).
    pub threshold: i32,
    /// Checked ticks for A/B and blue/green.
    pub iterations: i32,
    /// Mirror traffic (a first mirrored step for canaries; during the iterations for blue/green).
    pub mirror: bool,
    /// Canary weights in order (canary strategy); capped at 100 and at maxWeight.
    pub weights: Vec<i32>,
    /// Percentage moved back to the primary per promotion step; 0 means all at once.
    pub step_weight_promotion: i32,
    /// What a metric without data counts as.
    pub on_no_data: OnNoData,
    /// What an unreachable metrics provider means.
    pub on_provider_error: OnProviderError,
    /// How long a side may stay not ready, or the analysis held, before the rollout fails.
    pub progress_deadline: Duration,
    /// Skip the analysis and promote at once.
    pub skip_analysis: bool,
    /// Run a baseline next to the canary (`analysis.baseline`, canary strategy only); the
    /// weights are then capped at `baseline::MAX_WEIGHT`.
    pub baseline: bool,
}

impl Plan {
    /// The plan of a decision's input (its spec and the provider in effect).
    pub fn of(input: &super::Input) -> Plan {
        Plan::new(input.spec, input.provider)
    }

    /// Reads the plan from a spec and the provider in effect (the spec's, else the controller's
    /// default); never fails (validation reports bad values on its own).
    pub fn new(spec: &CanarySpec, provider: &str) -> Plan {
        let a = &spec.analysis;
        let iterations = a.iterations.unwrap_or(0).max(0);
        let has_match = a.r#match.as_ref().is_some_and(|m| !m.is_empty());
        // The kubernetes provider can only switch selectors: its plan is always blue/green (a
        // weighted spec on it is refused by validation, never turned into a selector switch).
        let bluegreen_provider = provider == "kubernetes";
        let strategy = if iterations > 0 && has_match && !bluegreen_provider {
            Strategy::AbTesting
        } else if iterations > 0 || bluegreen_provider {
            Strategy::BlueGreen
        } else {
            Strategy::Canary
        };
        let baseline = a.baseline == Some(true) && strategy == Strategy::Canary;
        let mut weights = weight_steps(a);
        if baseline {
            // The baseline takes as much as the canary: beyond 50 the primary's share would be
            // negative. Capped steps that repeat collapse into one.
            weights = weights
                .into_iter()
                .map(|w| w.min(super::baseline::MAX_WEIGHT))
                .collect();
            weights.dedup();
        }
        Plan {
            strategy,
            interval: parse_duration(&a.interval)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_INTERVAL),
            threshold: a.threshold.max(1),
            iterations: iterations.max(if strategy == Strategy::Canary { 0 } else { 1 }),
            mirror: a.mirror.unwrap_or(false) && strategy != Strategy::AbTesting,
            weights,
            step_weight_promotion: a.step_weight_promotion.unwrap_or(0).clamp(0, 100),
            on_no_data: a.on_no_data.unwrap_or_default(),
            on_provider_error: a.on_provider_error.unwrap_or_default(),
            progress_deadline: Duration::from_secs(
                u64::try_from(spec.progress_deadline_seconds.unwrap_or(600)).unwrap_or(600),
            ),
            skip_analysis: spec.skip_analysis.unwrap_or(false),
            baseline,
        }
    }

    /// The policies for metrics without a value.
    pub(crate) fn policies(&self) -> super::checks::Policies {
        super::checks::Policies {
            no_data: self.on_no_data,
            provider_error: self.on_provider_error,
        }
    }

    /// The canary weight after `current`, or None at the last step.
    pub fn next_weight(&self, current: i32) -> Option<i32> {
        self.weights.iter().copied().find(|w| *w > current)
    }

    /// The last (highest) canary weight of the canary strategy.
    pub fn max_weight(&self) -> i32 {
        self.weights.last().copied().unwrap_or(100)
    }
}

/// The weight sequence: stepWeights as given (each capped at 100), else stepWeight increments up
/// to maxWeight (default 100), the last step landing exactly on maxWeight.
pub fn weight_steps(a: &CanaryAnalysis) -> Vec<i32> {
    if let Some(ws) = a.step_weights.as_ref().filter(|w| !w.is_empty()) {
        let mut out: Vec<i32> = Vec::new();
        for w in ws.iter().map(|w| (*w).clamp(1, 100)) {
            if out.last().is_none_or(|last| w > *last) {
                out.push(w);
            }
        }
        return out;
    }
    let max = a.max_weight.unwrap_or(100).clamp(1, 100);
    let step = a.step_weight.unwrap_or(max).clamp(1, 100);
    let mut out = Vec::new();
    let mut w = 0;
    while w < max {
        w = (w + step).min(max);
        out.push(w);
    }
    out
}

/// The largest share of an interval by which a Canary's start tick comes early (see
/// [`step_interval`]): the start tick comes between a quarter of an interval and one interval
/// after the scale-up, so the canary always has some time to report real readiness.
const START_SPREAD_PER_MILLE: u64 = 750;

/// The time the next step counts from `lastStepTime`: one interval, except for the start tick
/// of an analysis (Progressing, not started), which comes up to three quarters of an interval
/// early by a share fixed per Canary (a hash of its namespace and name). A step falls due one
/// interval after the last, so canaries whose targets changed together — a GitOps sync of many
/// apps — would take every step of their rollouts at the same instant, and a controller takes a
/// burst of N due steps one after another, the last of them late. Flagger's per-Canary tickers
/// drift apart by construction; this spreads the rollouts deterministically (a restarted
/// controller computes the same share), and never makes a rollout slower.
pub fn step_interval(status: &CanaryStatus, plan: &Plan, namespace: &str, name: &str) -> Duration {
    if status.phase != CanaryPhase::Progressing || status.analysis_started {
        return plan.interval;
    }
    start_interval(namespace, name, plan.interval)
}

/// How long after the scale-up this Canary's start tick is due (see [`step_interval`]).
pub fn start_interval(namespace: &str, name: &str, interval: Duration) -> Duration {
    interval - start_offset(namespace, name, interval)
}

/// How much earlier than one interval after the scale-up this Canary's start tick comes: a
/// fixed share, from 0 to 3/4, of the interval (see [`step_interval`]).
pub fn start_offset(namespace: &str, name: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across Rust versions and processes, unlike `DefaultHasher`.
    let hash = namespace
        .bytes()
        .chain([b'/'])
        .chain(name.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let per_mille = hash % (START_SPREAD_PER_MILLE + 1);
    interval.mul_f64(per_mille as f64 / 1000.0)
}

/// Time left until this Canary's next step is due ([`step_interval`] after the last).
pub(crate) fn until_step(input: &super::Input, plan: &Plan) -> Duration {
    let interval = step_interval(input.status, plan, input.namespace, input.name);
    until_due(input.status, interval, input.now)
}

/// Time left until the next step is due; zero when it is due now (or no step was ever taken).
pub fn until_due(status: &CanaryStatus, interval: Duration, now: DateTime<Utc>) -> Duration {
    let Some(last) = status.last_step_time else {
        return Duration::ZERO;
    };
    let due = last + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    (due - now).to_std().unwrap_or(Duration::ZERO)
}

/// The routes a status implies, for drift detection; None where the phase does not pin them.
pub fn expected_routes(plan: &Plan, status: &CanaryStatus) -> Option<Routes> {
    match status.phase {
        CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Waiting => {
            Some(Routes::PRIMARY)
        }
        // Failed routes to the primary, except after a promotion whose primary had no replica
        // left to serve: then the analysed canary keeps the traffic (weight 100) until it has.
        CanaryPhase::Failed if status.canary_weight == 100 => Some(Routes::CANARY),
        CanaryPhase::Failed => Some(Routes::PRIMARY),
        CanaryPhase::Progressing
        | CanaryPhase::WaitingPromotion
        | CanaryPhase::Promoting
        | CanaryPhase::Finalising => Some(analysis_routes(plan, status)),
        _ => None,
    }
}

/// Routes during the analysis: the current weight, plus mirroring or A/B matches once started.
pub fn analysis_routes(plan: &Plan, status: &CanaryStatus) -> Routes {
    let started = status.analysis_started;
    let mut routes = Routes::split(status.canary_weight);
    match plan.strategy {
        Strategy::AbTesting => routes.ab_match = started,
        Strategy::BlueGreen | Strategy::Canary => {
            routes.mirror = started && plan.mirror && status.canary_weight == 0
        }
    }
    routes
}

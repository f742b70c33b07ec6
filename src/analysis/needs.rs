//! What a reconcile must observe before deciding, stage by stage: which webhook types to call and
//! whether to query metrics. A tick's observations come in Flagger's order and only when due:
//! rollback hooks first (a 2xx ends the tick), then pre-rollout or the rollout hooks and metrics
//! (a failure ends the tick), and only then the gate of the step about to be taken
//! (confirm-traffic-increase before a weight increase, confirm-promotion before promoting). The
//! adapters ask `needs` again after each stage until it returns nothing. Metrics are queried only
//! when an analysis step is due, never on a watch re-entry. `decide` classifies the reconcile with
//! the same `tick_kind`, so the two cannot disagree.

use super::checks::{Checked, TickVerdict, any_hook_succeeded, check_hooks, check_metrics};
use super::input::{Input, hooks_of};
use super::revision::{RevisionChange, classify, revision};
use super::schedule::{Plan, Strategy, until_step};
use crate::api::{CanaryPhase, HookType};

/// What the adapters must gather next for this reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Webhook types to call (all hooks of each type), in this order.
    pub hooks: Vec<HookType>,
    /// Query every metric of the analysis.
    pub metrics: bool,
    /// Query every metric of `analysis.postPromotion` (a due post-promotion watch tick).
    pub post_promotion_metrics: bool,
}

impl Needs {
    /// Nothing more to observe: decide now.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty() && !self.metrics && !self.post_promotion_metrics
    }
}

/// The kind of reconcile at hand, as far as observation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickKind {
    /// Nothing beyond workloads and routes is needed.
    Idle,
    /// A new revision waits for confirm-rollout (and, while Waiting, rollback hooks count).
    RolloutGate { waiting: bool },
    /// First tick of an analysis: pre-rollout hooks, first route.
    Start,
    /// A due analysis tick with checks; `last` when passing it would reach the promotion gate.
    Analysis { last: bool },
    /// A due tick of the post-promotion watch: its metrics only.
    Watch,
}

/// Classifies the reconcile (shared by `needs` and `decide`).
pub(crate) fn tick_kind(input: &Input, plan: &Plan) -> TickKind {
    let Some(target) = input.observed.target.as_ref() else {
        return TickKind::Idle;
    };
    if input.deleting
        || !input.invalid.is_empty()
        || input.spec.suspend.unwrap_or(false)
        || super::operator::takes_the_tick(input)
    {
        return TickKind::Idle;
    }
    let status = input.status;
    let due = until_step(input, plan).is_zero();
    let change = classify(&revision(target), status);
    match status.phase {
        CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed
            if change == RevisionChange::New =>
        {
            // skipAnalysis too passes the confirm-rollout gate (as in Flagger).
            TickKind::RolloutGate { waiting: false }
        }
        CanaryPhase::Waiting if due => TickKind::RolloutGate { waiting: true },
        CanaryPhase::Succeeded
            if change == RevisionChange::Same && super::phase_watch::due(input, plan) =>
        {
            TickKind::Watch
        }
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
            if change == RevisionChange::Same
                && target.readiness.is_ready()
                && !plan.skip_analysis
                && routes_in_place(input, plan) =>
        {
            // The start tick waits one interval after the scale-up too: a re-entry at the same `now`
            // must not take a second step, and the canary gets time to report real readiness.
            if !due {
                TickKind::Idle
            } else if !status.analysis_started {
                TickKind::Start
            } else {
                TickKind::Analysis {
                    last: is_last_step(plan, input),
                }
            }
        }
        _ => TickKind::Idle,
    }
}

/// Whether the routes read back are those the status implies: a step whose route write was
/// refused (or changed by hand) is not analysed until the routes are put right.
pub(crate) fn routes_in_place(input: &Input, plan: &Plan) -> bool {
    let want = super::baseline::expected(plan, input.status, input.observed);
    match (input.observed.routes, want) {
        (Some(seen), Some(want)) => seen == want,
        _ => true,
    }
}

/// Whether passing this tick would reach the promotion gate.
fn is_last_step(plan: &Plan, input: &Input) -> bool {
    let s = input.status;
    if s.phase == CanaryPhase::WaitingPromotion {
        return true;
    }
    match plan.strategy {
        Strategy::Canary => {
            !(plan.mirror && s.canary_weight == 0) && plan.next_weight(s.canary_weight).is_none()
        }
        Strategy::AbTesting | Strategy::BlueGreen => s.iterations + 1 >= plan.iterations,
    }
}

/// One stage of observation: hooks of these types (and maybe the metrics), and whether what they
/// answered ends the tick (no later stage is observed then).
struct Stage {
    hooks: Vec<HookType>,
    metrics: bool,
    watch_metrics: bool,
    ends_tick: fn(&Input, &Plan) -> bool,
}

fn never(_: &Input, _: &Plan) -> bool {
    false
}

fn rollback_said_yes(input: &Input, _: &Plan) -> bool {
    any_hook_succeeded(input.spec, input.observed, HookType::Rollback).is_some()
}

fn pre_rollout_failed(input: &Input, _: &Plan) -> bool {
    matches!(
        check_hooks(input.spec, input.observed, HookType::PreRollout).verdict,
        TickVerdict::Fail { .. }
    )
}

/// The verdict of the rollout hooks and metrics of a tick (as `decide` will judge them).
pub(crate) fn tick_checks(input: &Input, plan: &Plan) -> Checked {
    let mut checks = check_hooks(input.spec, input.observed, HookType::Rollout);
    checks.extend(check_metrics(input.spec, input.observed, plan.policies()));
    checks
}

fn checks_did_not_pass(input: &Input, plan: &Plan) -> bool {
    tick_checks(input, plan).verdict != TickVerdict::Pass
}

fn stage(hooks: Vec<HookType>, metrics: bool, ends_tick: fn(&Input, &Plan) -> bool) -> Stage {
    Stage {
        hooks,
        metrics,
        watch_metrics: false,
        ends_tick,
    }
}

/// The stages of a tick, in the order they are observed.
fn stages(input: &Input, plan: &Plan) -> Vec<Stage> {
    let rollback = || stage(vec![HookType::Rollback], false, rollback_said_yes);
    match tick_kind(input, plan) {
        TickKind::Idle => Vec::new(),
        TickKind::Watch => vec![Stage {
            watch_metrics: true,
            ..stage(Vec::new(), false, never)
        }],
        TickKind::RolloutGate { waiting } => {
            let mut out = Vec::new();
            if waiting {
                out.push(rollback());
            }
            // Without a free rollout slot the gate is not asked (the canary waits for a slot).
            if input.observed.rollout_slot_free != Some(false) {
                out.push(stage(vec![HookType::ConfirmRollout], false, never));
            }
            out
        }
        TickKind::Start => {
            let mut out = vec![
                rollback(),
                stage(vec![HookType::PreRollout], false, pre_rollout_failed),
            ];
            if plan.strategy == Strategy::Canary && !plan.mirror {
                out.push(stage(vec![HookType::ConfirmTrafficIncrease], false, never));
            }
            out
        }
        TickKind::Analysis { last } => {
            let metrics = input
                .spec
                .analysis
                .metrics
                .as_ref()
                .is_some_and(|m| !m.is_empty());
            let mut out = vec![
                rollback(),
                stage(vec![HookType::Rollout], metrics, checks_did_not_pass),
            ];
            if input.status.promote_requested {
                // An operator's promote replaces the gates.
            } else if last {
                out.push(stage(vec![HookType::ConfirmPromotion], false, never));
            } else if plan.strategy == Strategy::Canary {
                out.push(stage(vec![HookType::ConfirmTrafficIncrease], false, never));
            }
            out
        }
    }
}

fn hooks_observed(input: &Input, kind: HookType) -> bool {
    hooks_of(input.spec, kind).all(|h| input.observed.hooks.contains_key(&h.name))
}

fn metrics_observed(input: &Input) -> bool {
    input
        .spec
        .analysis
        .metrics
        .iter()
        .flatten()
        .all(|m| match m.compare {
            Some(_) => input.observed.samples.contains_key(&m.name),
            None => input.observed.metrics.contains_key(&m.name),
        })
}

/// What to observe next, given what this reconcile has observed so far; empty when it is time to
/// decide. Hook types without hooks in the spec are never asked for.
pub fn needs(input: &Input) -> Needs {
    let plan = Plan::of(input);
    for s in stages(input, &plan) {
        let hooks: Vec<HookType> = s
            .hooks
            .iter()
            .copied()
            .filter(|k| !hooks_observed(input, *k))
            .collect();
        let metrics = s.metrics && !metrics_observed(input);
        let post_promotion_metrics = s.watch_metrics
            && !super::phase_watch::metrics(input)
                .iter()
                .all(|m| input.observed.metrics.contains_key(&m.name));
        if !hooks.is_empty() || metrics || post_promotion_metrics {
            return Needs {
                hooks,
                metrics,
                post_promotion_metrics,
            };
        }
        if (s.ends_tick)(input, &plan) {
            break;
        }
    }
    Needs::default()
}

/// Whether this reconcile may start a rollout (a new revision at the rollout gate): it needs one
/// of the global rollout slots when they are capped.
pub fn may_start_rollout(input: &Input) -> bool {
    matches!(
        tick_kind(input, &Plan::of(input)),
        TickKind::RolloutGate { .. }
    )
}

//! What a reconcile must observe before deciding: which webhook types to call and whether to query
//! metrics. Metrics are queried only when an analysis step is due, never on a watch re-entry.
//! `decide` classifies the reconcile with the same `tick_kind`, so the two cannot disagree.

use super::input::Input;
use super::revision::{RevisionChange, classify, revision};
use super::schedule::{Plan, Strategy, until_due};
use crate::api::{CanaryPhase, HookType};

/// What the adapters must gather for this reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Webhook types to call (all hooks of each type), in this order.
    pub hooks: Vec<HookType>,
    /// Query every metric of the analysis.
    pub metrics: bool,
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
    let due = until_due(status, plan.interval, input.now).is_zero();
    let change = classify(&revision(target), status);
    match status.phase {
        CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed
            if change == RevisionChange::New && !plan.skip_analysis =>
        {
            TickKind::RolloutGate { waiting: false }
        }
        CanaryPhase::Waiting if due => TickKind::RolloutGate { waiting: true },
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
            if change == RevisionChange::Same && target.readiness.is_ready() =>
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

/// What to observe for this reconcile.
pub fn needs(input: &Input) -> Needs {
    let plan = Plan::from_spec(input.spec);
    match tick_kind(input, &plan) {
        TickKind::Idle => Needs::default(),
        TickKind::RolloutGate { waiting } => {
            let mut hooks = Vec::new();
            if waiting {
                hooks.push(HookType::Rollback);
            }
            hooks.push(HookType::ConfirmRollout);
            Needs {
                hooks,
                metrics: false,
            }
        }
        TickKind::Start => {
            let mut hooks = vec![HookType::Rollback, HookType::PreRollout];
            if plan.strategy == Strategy::Canary && !plan.mirror {
                hooks.push(HookType::ConfirmTrafficIncrease);
            }
            Needs {
                hooks,
                metrics: false,
            }
        }
        TickKind::Analysis { last } => {
            let mut hooks = vec![HookType::Rollback, HookType::Rollout];
            if input.status.promote_requested {
                // An operator's promote replaces the gates.
            } else if last {
                hooks.push(HookType::ConfirmPromotion);
            } else if plan.strategy == Strategy::Canary {
                hooks.push(HookType::ConfirmTrafficIncrease);
            }
            Needs {
                hooks,
                metrics: input
                    .spec
                    .analysis
                    .metrics
                    .as_ref()
                    .is_some_and(|m| !m.is_empty()),
            }
        }
    }
}

/// Whether metrics must be queried for this reconcile.
pub fn metrics_due(input: &Input) -> bool {
    needs(input).metrics
}

/// Which webhook types must be called for this reconcile.
pub fn hooks_due(input: &Input) -> Vec<HookType> {
    needs(input).hooks
}

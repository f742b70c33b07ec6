//! The decision core: `decide(&Input) -> Decision`, pure.
//!
//! Everything a canary does is decided here from the spec, the status, `now` and what the adapters
//! observed. This module must not import kube, tokio, reqwest, hyper or axum, nor read the wall
//! clock: `now` is an input. A test scans this folder for such imports and clock reads.
//! The requeue is the scheduler: a step is due at `lastStepTime + interval`, and deciding twice at
//! the same `now` advances at most one step.

mod checks;
mod conditions;
mod decision;
mod input;
mod needs;
mod operator;
mod phase_analysis;
mod phase_init;
mod phase_promote;
mod phase_rollout;
mod phase_terminate;
mod revision;
mod schedule;

pub use checks::bounds;
pub use conditions::{condition_status, set_condition};
pub use decision::{Decision, Effect, EventType, ScaleTo};
pub use input::{
    HookOutcome, Input, MetricFailure, Observation, PrimaryState, Readiness, Routes, TargetState,
    hooks_of,
};
pub use needs::{Needs, hooks_due, metrics_due, needs};
pub use operator::{ACTION_ANNOTATION, Action};
pub use revision::{RevisionChange, classify, revision};
pub use schedule::{Plan, Strategy, expected_routes, until_due, weight_steps};

use std::time::Duration;

use crate::api::CanaryPhase;
use decision::Tick;

/// How soon to look again while waiting on a workload to become ready (watch events usually come
/// first; this is the safety net).
pub(crate) const READINESS_POLL: Duration = Duration::from_secs(5);
/// How soon to retry when the target is missing.
pub(crate) const MISSING_TARGET_RETRY: Duration = Duration::from_secs(30);

/// Decides what to do for one reconcile. Same input, same decision.
pub fn decide(input: &Input) -> Decision {
    let plan = Plan::from_spec(input.spec);
    let mut t = Tick::new(input.status, input.now);
    t.status.observed_generation = Some(input.generation);
    if input.deleting {
        phase_terminate::terminate(input, &mut t);
        return t.finish();
    }
    if !input.invalid.is_empty() {
        invalid_spec(input, &mut t);
        return t.finish();
    }
    if input.observed.target.is_none() {
        target_missing(input, &mut t);
        return t.finish();
    }
    set_ready(
        &mut t,
        "True",
        "Ready",
        "Spec is valid and the target exists.",
    );
    if input.spec.suspend.unwrap_or(false) {
        return t.finish();
    }
    if operator::operate(input, &plan, &mut t) {
        routing_condition(input, &mut t);
        return t.finish();
    }
    match input.status.phase {
        CanaryPhase::Unknown | CanaryPhase::Initializing => phase_init::initialize(input, &mut t),
        CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed => {
            phase_rollout::steady(input, &plan, &mut t)
        }
        CanaryPhase::Waiting => phase_rollout::waiting(input, &plan, &mut t),
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion => {
            phase_analysis::progressing(input, &plan, &mut t)
        }
        CanaryPhase::Promoting => phase_promote::promoting(input, &plan, &mut t),
        CanaryPhase::Finalising => phase_promote::finalising(input, &plan, &mut t),
        // Deletion was cancelled (finalizer kept, deletionTimestamp gone cannot happen in
        // Kubernetes); start over from initialisation, which is idempotent.
        CanaryPhase::Terminating | CanaryPhase::Terminated => phase_init::initialize(input, &mut t),
    }
    repair_drift(input, &plan, &mut t);
    routing_condition(input, &mut t);
    t.finish()
}

/// `RouteAccepted` mirrors what the gateway or mesh said of Serin's routing objects, with a
/// Warning Event when it turns False. It does not stop the analysis: the route exists and is
/// valid, and a Gateway that appears later will take it.
fn routing_condition(input: &Input, t: &mut Tick) {
    let Some(accepted) = &input.observed.routing_accepted else {
        return;
    };
    let (status, reason, message) = match accepted {
        Ok(()) => ("True", "Accepted", "The routing objects were accepted."),
        Err(why) => ("False", "NotAccepted", why.as_str()),
    };
    let was = condition_status(&input.status.conditions, "RouteAccepted");
    if status == "False" && was != Some("False") {
        t.event(EventType::Warning, "RouteNotAccepted", message.to_string());
    }
    set_condition(
        &mut t.status.conditions,
        "RouteAccepted",
        status,
        reason,
        message,
        t.now,
    );
}

fn set_ready(t: &mut Tick, status: &str, reason: &str, message: &str) {
    set_condition(
        &mut t.status.conditions,
        "Ready",
        status,
        reason,
        message,
        t.now,
    );
}

/// Sets Ready=False with `reason`; the Warning Event goes out only when the condition changes
/// (compared with the stored status), not on every retry.
pub(crate) fn not_ready(input: &Input, t: &mut Tick, reason: &'static str, message: &str) {
    let unchanged = input.status.conditions.iter().any(|c| {
        c.r#type == "Ready" && c.reason == reason && c.message.as_deref() == Some(message)
    });
    if !unchanged {
        t.event(EventType::Warning, reason, message.to_string());
    }
    set_ready(t, "False", reason, message);
}

fn invalid_spec(input: &Input, t: &mut Tick) {
    let message: Vec<String> = input.invalid.iter().map(|e| e.to_string()).collect();
    not_ready(input, t, "InvalidSpec", &message.join("; "));
}

fn target_missing(input: &Input, t: &mut Tick) {
    let message = format!(
        "{} {}.{} not found",
        serde_json::to_value(input.spec.target_ref.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        input.spec.target_ref.name,
        input.namespace
    );
    not_ready(input, t, "TargetNotFound", &message);
    t.requeue(MISSING_TARGET_RETRY);
}

/// Someone changed the routes by hand: put back what the status says, unless this decision
/// already sets them.
fn repair_drift(input: &Input, plan: &Plan, t: &mut Tick) {
    if t.effects.iter().any(|e| matches!(e, Effect::SetRoutes(_))) {
        return;
    }
    let (Some(seen), Some(want)) = (input.observed.routes, expected_routes(plan, &t.status)) else {
        return;
    };
    if seen != want {
        t.event(
            EventType::Warning,
            "RoutesRepaired",
            format!(
                "routes of {}.{} were {}/{} (primary/canary), restored to {}/{}",
                input.name, input.namespace, seen.primary, seen.canary, want.primary, want.canary
            ),
        );
        t.effect(Effect::SetRoutes(want));
    }
}

#[cfg(test)]
mod tests;

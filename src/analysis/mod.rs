//! The decision core: `decide(&Input) -> Decision`, pure.
//!
//! Everything a canary does is decided here from the spec, the status, `now` and what the adapters
//! observed. This module must not import kube, tokio, reqwest, hyper or axum, nor read the wall
//! clock: `now` is an input. Clippy enforces it: the clock, environment, file, process and task
//! calls and the I/O client types listed in clippy.toml are denied here.
//! The requeue is the scheduler: a step is due at `lastStepTime + interval`, and deciding twice at
//! the same `now` advances at most one step.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod backtest;
pub mod baseline;
mod checks;
mod conditions;
mod converge;
mod decision;
mod input;
pub mod invariants;
mod judge;
mod needs;
mod operator;
mod phase_analysis;
mod phase_init;
mod phase_promote;
mod phase_rollout;
mod phase_terminate;
mod phase_watch;
mod revision;
mod schedule;
pub mod stats;

pub use checks::bounds;
pub use conditions::{condition_status, set_condition};
pub use decision::{Decision, Effect, EventType, ScaleTo, append_record};
pub use input::{
    BaselineState, HookOutcome, Input, MetricFailure, Observation, PrimaryState, Readiness, Routes,
    TargetState, hooks_of,
};
pub use judge::{CANARY_SIDE, OtherSide, Samples, other_side};
pub use needs::{Needs, may_start_rollout, needs};
pub use operator::{ACTION_ANNOTATION, Action};
pub use revision::{RevisionChange, classify, revision};
pub use schedule::{
    Plan, Strategy, expected_routes, start_interval, start_offset, step_interval, until_due,
    weight_steps,
};

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
    let decision = decide_unchecked(input);
    // The traffic invariants hold for every decision; a debug build (every test) stops on the
    // first that does not, with the input and decision that broke it.
    debug_assert!(
        invariants::check(input, &decision).is_empty(),
        "traffic invariant broken: {:?}\ninput: {input:?}\ndecision: {decision:?}",
        invariants::check(input, &decision)
    );
    decision
}

fn decide_unchecked(input: &Input) -> Decision {
    let plan = Plan::of(input);
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
        CanaryPhase::Succeeded if phase_watch::active(input.status) => {
            phase_watch::watching(input, &plan, &mut t)
        }
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
    converge::converge(input, &plan, &mut t);
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

#[cfg(test)]
mod tests;

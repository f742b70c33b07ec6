//! An operator's requests, made through the Canary's `serin.io/action` annotation (`serin
//! promote|abort|pause|resume`): GitOps tools do not own that annotation, so they never revert it.
//! Each annotation value is acted on once (`status.lastAction` remembers it); a CLI makes values
//! unique with `@<time>`. Pure like the rest of the core.

use std::time::Duration;

use super::decision::{EventType, Tick};
use super::input::Input;
use super::phase_promote::rollback;
use super::schedule::{Plan, step_interval, until_due};
use crate::api::CanaryPhase;

/// The annotation an operator sets.
pub const ACTION_ANNOTATION: &str = "serin.io/action";

/// What an operator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Promote at the next analysis tick whose checks pass, skipping the remaining steps.
    Promote,
    /// Roll back now.
    Abort,
    /// Freeze the analysis clock.
    Pause,
    /// Thaw it: the step in progress gets the time it had left.
    Resume,
}

impl Action {
    /// Reads an annotation value: `promote`, `abort`, `pause` or `resume`, optionally `@<id>`.
    pub fn parse(value: &str) -> Result<Action, String> {
        match value.split('@').next().unwrap_or_default().trim() {
            "promote" => Ok(Action::Promote),
            "abort" => Ok(Action::Abort),
            "pause" => Ok(Action::Pause),
            "resume" => Ok(Action::Resume),
            other => Err(format!(
                "{ACTION_ANNOTATION} is {other:?}; expected promote, abort, pause or resume"
            )),
        }
    }
}

/// The annotation value not yet acted on, if any.
fn pending<'a>(input: &Input<'a>) -> Option<&'a str> {
    input
        .action
        .filter(|a| Some(*a) != input.status.last_action.as_deref())
}

/// Whether this reconcile belongs to the operator (a new action, or a paused analysis): then no
/// step is taken, so nothing needs observing beyond the workloads.
pub(crate) fn takes_the_tick(input: &Input) -> bool {
    pending(input).is_some() || input.status.paused_at.is_some()
}

/// Acts on a new action and keeps a paused analysis frozen. Returns true when the tick is over.
pub(crate) fn operate(input: &Input, plan: &Plan, t: &mut Tick) -> bool {
    let Some(value) = pending(input) else {
        // While paused nothing moves; the resume annotation is a change, so it is seen at once.
        return t.status.paused_at.is_some();
    };
    t.status.last_action = Some(value.to_string());
    let in_analysis = matches!(
        input.status.phase,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Waiting
    );
    let who = input.who();
    let phase = input.status.phase;
    match Action::parse(value) {
        Err(why) => {
            t.event(EventType::Warning, "UnknownAction", why.clone());
            t.record(phase, Vec::new(), format!("operator: ignored: {why}"));
        }
        Ok(Action::Abort) if in_analysis => {
            t.status.paused_at = None;
            t.status.promote_requested = false;
            rollback(
                input,
                t,
                "aborted by an operator (serin.io/action: abort)",
                Vec::new(),
            );
            return true;
        }
        Ok(Action::Promote)
            if matches!(
                phase,
                CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
            ) =>
        {
            t.status.promote_requested = true;
            t.event(
                EventType::Normal,
                "PromotionRequested",
                format!("An operator asked to promote {who}: it promotes at the next analysis tick whose checks pass"),
            );
            t.record(
                phase,
                Vec::new(),
                "operator: promote after the checks pass once more",
            );
        }
        Ok(Action::Pause) if t.status.paused_at.is_none() => {
            t.status.paused_at = Some(t.now);
            t.event(
                EventType::Normal,
                "Paused",
                format!("An operator paused the analysis of {who}"),
            );
            t.record(
                phase,
                Vec::new(),
                "operator: paused; the analysis clock is frozen",
            );
        }
        Ok(Action::Resume) if t.status.paused_at.is_some() => resume(input, t, &who),
        Ok(action) => {
            let why = format!("{action:?} does not apply in phase {phase:?}; nothing done");
            t.event(EventType::Normal, "ActionIgnored", format!("{who}: {why}"));
            t.record(phase, Vec::new(), format!("operator: {why}"));
        }
    }
    // The tick that handles an action takes no step: the next one is due at its usual time.
    if t.status.paused_at.is_none() {
        let interval = step_interval(&t.status, plan, input.namespace, input.name);
        t.requeue(until_due(&t.status, interval, t.now).max(Duration::from_millis(1)));
    }
    true
}

/// Thaws the clock: the step in progress resumes with the time it had left when paused.
fn resume(input: &Input, t: &mut Tick, who: &str) {
    let Some(paused_at) = t.status.paused_at.take() else {
        return;
    };
    let paused_for = t.now - paused_at;
    if let Some(step) = t.status.last_step_time.as_mut() {
        *step += paused_for;
    }
    let secs = paused_for.num_seconds();
    t.event(
        EventType::Normal,
        "Resumed",
        format!("An operator resumed the analysis of {who} after {secs}s"),
    );
    t.record(
        input.status.phase,
        Vec::new(),
        format!("operator: resumed after {secs}s paused"),
    );
}

//! Between rollouts (Initialized, Succeeded, Failed) and Waiting: detect a new revision, gate its
//! start on a rollout slot and confirm-rollout hooks, honour rollback hooks while Waiting, and
//! start the analysis (with skipAnalysis too: the canary is scaled up and promoted once ready).

use super::checks::{TickVerdict, any_hook_succeeded, check_hooks};
use super::decision::{Effect, EventType, ScaleTo, Tick};
use super::input::{Input, Routes, TargetState};
use super::revision::{RevisionChange, classify, retire_cookie, revision, rotate_cookies};
use super::schedule::{Plan, until_due};
use crate::api::{AlertSeverity, CanaryPhase, HookType};

pub(crate) fn steady(input: &Input, plan: &Plan, t: &mut Tick) {
    let Some(target) = input.observed.target.as_ref() else {
        return;
    };
    let rev = revision(target);
    match classify(&rev, input.status) {
        RevisionChange::Same => {}
        RevisionChange::BackToPromoted => back_to_promoted(input, t, target, &rev),
        RevisionChange::New => gate_and_start(input, plan, t, target, &rev),
    }
}

/// The target was reverted to what the primary already runs: nothing to analyse.
pub(crate) fn back_to_promoted(input: &Input, t: &mut Tick, target: &TargetState, rev: &str) {
    let from = t.status.phase;
    t.status.last_applied_spec = Some(rev.to_string());
    t.status.tracked_configs = tracked(target);
    if matches!(
        from,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Waiting
    ) {
        t.effect(Effect::SetRoutes(Routes::PRIMARY));
        t.effect(Effect::ScaleTarget(ScaleTo::Zero));
        reset_counters(t);
        t.set_phase(CanaryPhase::Initialized);
    }
    let msg = format!(
        "{} reverted to the promoted revision {rev}; nothing to roll out",
        input.who()
    );
    t.event(EventType::Normal, "RevisionReverted", msg.clone());
    t.record(from, Vec::new(), msg);
}

fn tracked(target: &TargetState) -> Option<crate::api::StringMap> {
    (!target.configs.is_empty()).then(|| target.configs.clone())
}

fn reset_counters(t: &mut Tick) {
    t.status.canary_weight = 0;
    t.status.failed_checks = 0;
    t.status.iterations = 0;
    t.status.analysis_started = false;
    t.status.not_ready_since = None;
    t.status.held_since = None;
}

/// A new revision: wait for a rollout slot and the confirm-rollout hooks, then start.
fn gate_and_start(input: &Input, plan: &Plan, t: &mut Tick, target: &TargetState, rev: &str) {
    let from = t.status.phase;
    if input.observed.rollout_slot_free == Some(false) {
        return wait(
            input,
            plan,
            t,
            from,
            "no free rollout slot (max-concurrent-canaries reached)",
            Vec::new(),
        );
    }
    let gate = check_hooks(input.spec, input.observed, HookType::ConfirmRollout);
    if let TickVerdict::Fail { reason, .. } = &gate.verdict {
        let why = format!("confirm-rollout {reason}");
        return wait(input, plan, t, from, &why, gate.records);
    }
    start(input, plan, t, target, rev, gate.records);
}

fn wait(
    input: &Input,
    plan: &Plan,
    t: &mut Tick,
    from: CanaryPhase,
    why: &str,
    checks: Vec<crate::api::CheckRecord>,
) {
    if from != CanaryPhase::Waiting {
        let msg = format!("Halt {} rollout: {why}", input.who());
        t.event(EventType::Normal, "Waiting", msg.clone());
        t.notify(AlertSeverity::Info, msg);
    }
    t.set_phase(CanaryPhase::Waiting);
    t.step_taken();
    t.requeue(plan.interval);
    t.record(from, checks, format!("wait: {why}"));
}

fn start(
    input: &Input,
    plan: &Plan,
    t: &mut Tick,
    target: &TargetState,
    rev: &str,
    checks: Vec<crate::api::CheckRecord>,
) {
    let from = t.status.phase;
    t.effect(Effect::ScaleTarget(ScaleTo::LikePrimary));
    t.status.last_applied_spec = Some(rev.to_string());
    t.status.tracked_configs = tracked(target);
    reset_counters(t);
    // The canary is being scaled up: its readiness deadline counts from now, not from the first
    // reconcile that sees it (a controller restarted in between must not extend it).
    t.status.not_ready_since = Some(t.now);
    rotate_cookies(input.spec, &mut t.status, rev, t.now);
    t.step_taken();
    t.set_phase(CanaryPhase::Progressing);
    t.requeue(plan.interval);
    let msg = format!("New revision detected! Scaling up {}", input.who());
    t.event(EventType::Normal, "NewRevision", msg.clone());
    t.notify(AlertSeverity::Info, msg);
    t.record(from, checks, format!("start rollout of revision {rev}"));
}

/// Restart the analysis for a newer revision that arrived mid-analysis: all traffic back to the
/// primary first, then begin again (the canary stays scaled up).
pub(crate) fn restart(input: &Input, plan: &Plan, t: &mut Tick, target: &TargetState, rev: &str) {
    t.status.promote_requested = false;
    t.effect(Effect::SetRoutes(Routes::PRIMARY));
    start(input, plan, t, target, rev, Vec::new());
}

pub(crate) fn waiting(input: &Input, plan: &Plan, t: &mut Tick) {
    let Some(target) = input.observed.target.as_ref() else {
        return;
    };
    let rev = revision(target);
    match classify(&rev, input.status) {
        RevisionChange::Same => {
            // Waiting never recorded this revision; Same means it was reverted to the last one seen.
            t.set_phase(CanaryPhase::Initialized);
            return;
        }
        RevisionChange::BackToPromoted => return back_to_promoted(input, t, target, &rev),
        RevisionChange::New => {}
    }
    let left = until_due(input.status, plan.interval, input.now);
    if !left.is_zero() {
        t.requeue(left);
        return;
    }
    if let Some(hook) = any_hook_succeeded(input.spec, input.observed, HookType::Rollback) {
        return rollback_waiting(input, t, &rev, &hook);
    }
    gate_and_start(input, plan, t, target, &rev);
}

/// Rollback hooks are honoured while Waiting (Flagger ignores them there): the revision is
/// rejected without ever receiving traffic.
fn rollback_waiting(input: &Input, t: &mut Tick, rev: &str, hook: &str) {
    t.effect(Effect::ScaleTarget(ScaleTo::Zero));
    t.effect(Effect::CallHooks(HookType::PostRollout));
    t.status.last_applied_spec = Some(rev.to_string());
    retire_cookie(&mut t.status);
    t.step_taken();
    t.set_phase(CanaryPhase::Failed);
    let msg = format!(
        "Rolling back {}: rollback hook {hook} answered 2xx while waiting",
        input.who()
    );
    t.event(EventType::Warning, "RolledBack", msg.clone());
    t.notify(AlertSeverity::Error, msg.clone());
    t.record(CanaryPhase::Waiting, Vec::new(), msg);
}

//! The analysis (Progressing, WaitingPromotion): the start tick (pre-rollout hooks, first route),
//! then one checked tick per interval that advances, holds, counts a failure or reaches the
//! promotion gate. The tick that reaches the threshold rolls back.

use super::READINESS_POLL;
use super::checks::{Checked, TickVerdict, any_hook_succeeded, check_hooks};
use super::decision::{Effect, EventType, Tick};
use super::input::{Input, Readiness, Routes, TargetState};
use super::needs::{TickKind, routes_in_place, tick_checks, tick_kind};
use super::phase_promote::{promote, rollback};
use super::phase_rollout::{back_to_promoted, restart};
use super::revision::{RevisionChange, classify, revision};
use super::schedule::{Plan, Strategy, until_step};
use crate::api::{AlertSeverity, CanaryPhase, HookType};

pub(crate) fn progressing(input: &Input, plan: &Plan, t: &mut Tick) {
    let Some(target) = input.observed.target.as_ref() else {
        return;
    };
    let rev = revision(target);
    match classify(&rev, input.status) {
        RevisionChange::Same => {}
        RevisionChange::BackToPromoted => return back_to_promoted(input, t, target, &rev),
        RevisionChange::New => return restart(input, plan, t, target, &rev),
    }
    if !canary_ready(input, plan, t, target) {
        return;
    }
    if plan.skip_analysis {
        // skipAnalysis: the gate was passed and the canary is ready; promote without analysis.
        return promote(input, plan, t, Vec::new());
    }
    if !routes_in_place(input, plan) {
        // A step whose routes are not in place (a refused or half-applied write, a hand edit) is
        // not analysed: convergence puts them right first, and the step's interval starts again.
        if until_step(input, plan).is_zero() {
            t.step_taken();
        }
        t.requeue(READINESS_POLL.min(plan.interval));
        return;
    }
    match tick_kind(input, plan) {
        TickKind::Start => start_tick(input, plan, t),
        TickKind::Analysis { .. } => analysis_tick(input, plan, t),
        _ => t.requeue(until_step(input, plan).max(std::time::Duration::from_millis(1))),
    }
}

/// Whether the canary is ready to be analysed. A canary that is not ready takes no step and
/// counts no failure; once it has not been ready for progressDeadlineSeconds (from the time
/// recorded in status, so restarts of the controller cannot extend it) it is rolled back, as is a
/// canary whose Deployment reports ProgressDeadlineExceeded. A target scaled to 0 is not ready.
fn canary_ready(input: &Input, plan: &Plan, t: &mut Tick, target: &TargetState) -> bool {
    let why = match &target.readiness {
        Readiness::DeadlineExceeded(why) => {
            let msg = format!("canary {} did not become ready: {why}", input.who());
            rollback(input, t, &msg, Vec::new());
            return false;
        }
        _ if target.replicas == 0 => "scaled to 0 replicas".to_string(),
        Readiness::NotReady(why) => why.clone(),
        Readiness::Ready => {
            t.status.not_ready_since = None;
            return true;
        }
    };
    let since = *t.status.not_ready_since.get_or_insert(input.now);
    let waited = (input.now - since).to_std().unwrap_or_default();
    if waited >= plan.progress_deadline {
        let msg = format!(
            "canary {} not ready for {}s (progressDeadlineSeconds): {why}",
            input.who(),
            waited.as_secs()
        );
        rollback(input, t, &msg, Vec::new());
        return false;
    }
    // No step and no failure while the canary rolls out; look again soon.
    t.requeue(
        READINESS_POLL
            .min(plan.interval)
            .min(plan.progress_deadline - waited),
    );
    false
}

/// Rollback hooks first: a 2xx from any of them ends the analysis now.
fn rollback_requested(input: &Input, t: &mut Tick) -> bool {
    match any_hook_succeeded(input.spec, input.observed, HookType::Rollback) {
        Some(hook) => {
            rollback(
                input,
                t,
                &format!("rollback hook {hook} answered 2xx"),
                Vec::new(),
            );
            true
        }
        None => false,
    }
}

fn start_tick(input: &Input, plan: &Plan, t: &mut Tick) {
    if rollback_requested(input, t) {
        return;
    }
    let pre = check_hooks(input.spec, input.observed, HookType::PreRollout);
    if let TickVerdict::Fail { reason, mute_alert } = pre.verdict.clone() {
        return failed_tick(
            input,
            plan,
            t,
            &format!("pre-rollout {reason}"),
            mute_alert,
            pre.records,
        );
    }
    let mut checks = pre;
    let from = t.status.phase;
    let action = match plan.strategy {
        Strategy::Canary if !plan.mirror => {
            let first = plan.weights.first().copied().unwrap_or(100);
            if !traffic_increase_confirmed(input, plan, t, &mut checks) {
                return;
            }
            t.status.canary_weight = first;
            format!("pre-rollout passed, weight 0 -> {first}")
        }
        Strategy::Canary | Strategy::BlueGreen if plan.mirror => {
            "pre-rollout passed, mirroring traffic to the canary".to_string()
        }
        Strategy::AbTesting => "pre-rollout passed, matching requests go to the canary".to_string(),
        _ => "pre-rollout passed, analysing the canary".to_string(),
    };
    t.status.analysis_started = true;
    // The canary gets traffic now: its baseline starts now, and gets its share once ready.
    super::baseline::start(input, plan, t);
    let routes = super::baseline::analysis(plan, &t.status, input.observed);
    if routes != Routes::PRIMARY {
        t.effect(Effect::SetRoutes(routes));
    }
    t.step_taken();
    t.requeue(plan.interval);
    t.event(
        EventType::Normal,
        "AnalysisStarted",
        format!("Starting canary analysis for {}: {action}", input.who()),
    );
    t.record(from, checks.records, action);
}

fn analysis_tick(input: &Input, plan: &Plan, t: &mut Tick) {
    if rollback_requested(input, t) {
        return;
    }
    let checks = tick_checks(input, plan);
    match checks.verdict.clone() {
        TickVerdict::Fail { reason, mute_alert } => {
            t.status.held_since = None;
            failed_tick(input, plan, t, &reason, mute_alert, checks.records)
        }
        TickVerdict::Hold(why) => held_tick(input, plan, t, &why, "onNoData: hold", checks),
        TickVerdict::ProviderDown(why) => held_tick(
            input,
            plan,
            t,
            &format!("metrics provider unreachable ({why})"),
            "onProviderError: hold",
            checks,
        ),
        TickVerdict::Pass => {
            t.status.held_since = None;
            advance(input, plan, t, checks)
        }
    }
}

/// A tick without a verdict (no data under `onNoData: hold`, or an unreachable metrics provider):
/// no step forward and no failed check, until progressDeadlineSeconds after the hold began, when
/// the rollout is rolled back — a hold must not last forever with traffic on the canary.
fn held_tick(input: &Input, plan: &Plan, t: &mut Tick, why: &str, policy: &str, checks: Checked) {
    let since = *t.status.held_since.get_or_insert(input.now);
    let held = (input.now - since).to_std().unwrap_or_default();
    if held >= plan.progress_deadline {
        t.status.held_since = None;
        let msg = format!(
            "held for {}s (progressDeadlineSeconds) without a verdict: {why}",
            held.as_secs()
        );
        return rollback(input, t, &msg, checks.records);
    }
    t.step_taken();
    t.requeue(plan.interval);
    t.event(
        EventType::Warning,
        "AnalysisHeld",
        format!(
            "Hold {} at weight {}: {why}",
            input.who(),
            t.status.canary_weight
        ),
    );
    t.record(
        input.status.phase,
        checks.records,
        format!("hold: {why} ({policy})"),
    );
}

/// A failed check: count it, and roll back in this very tick when the threshold is reached.
fn failed_tick(
    input: &Input,
    plan: &Plan,
    t: &mut Tick,
    reason: &str,
    mute: bool,
    records: Vec<crate::api::CheckRecord>,
) {
    t.status.failed_checks = (t.status.failed_checks + 1).min(plan.threshold);
    if t.status.failed_checks >= plan.threshold {
        let why = format!(
            "failed checks threshold reached {} ({reason})",
            plan.threshold
        );
        return rollback(input, t, &why, records);
    }
    t.step_taken();
    t.requeue(plan.interval);
    let msg = format!("Halt {} advancement: {reason}", input.who());
    t.event(EventType::Warning, "CheckFailed", msg.clone());
    if !mute {
        t.notify(AlertSeverity::Warn, msg);
    }
    t.record(
        input.status.phase,
        records,
        format!(
            "failed check {}/{}: {reason}",
            t.status.failed_checks, plan.threshold
        ),
    );
}

fn advance(input: &Input, plan: &Plan, t: &mut Tick, mut checks: Checked) {
    let from = input.status.phase;
    if t.status.promote_requested {
        // `serin promote`: the checks passed once more; skip the remaining steps and the gate.
        return promote(input, plan, t, checks.records);
    }
    let at_last = match plan.strategy {
        _ if from == CanaryPhase::WaitingPromotion => true,
        Strategy::Canary => {
            let next = if plan.mirror && t.status.canary_weight == 0 {
                plan.weights.first().copied()
            } else {
                plan.next_weight(t.status.canary_weight)
            };
            match next {
                Some(w) => return increase(input, plan, t, checks, w),
                None => true,
            }
        }
        Strategy::AbTesting | Strategy::BlueGreen => {
            t.status.iterations += 1;
            t.status.iterations >= plan.iterations
        }
    };
    if !at_last {
        t.step_taken();
        t.requeue(plan.interval);
        let msg = format!(
            "Advance {} canary iteration {}/{}",
            input.who(),
            t.status.iterations,
            plan.iterations
        );
        t.event(EventType::Normal, "IterationPassed", msg);
        t.record(
            from,
            checks.records,
            format!(
                "iteration {}/{} passed",
                t.status.iterations, plan.iterations
            ),
        );
        return;
    }
    let gate = check_hooks(input.spec, input.observed, HookType::ConfirmPromotion);
    let held = matches!(gate.verdict, TickVerdict::Fail { .. });
    let reason = match &gate.verdict {
        TickVerdict::Fail { reason, .. } => reason.clone(),
        _ => String::new(),
    };
    checks.extend(gate);
    if held {
        if from != CanaryPhase::WaitingPromotion {
            let msg = format!("Halt {} promotion: confirm-promotion {reason}", input.who());
            t.event(EventType::Normal, "WaitingPromotion", msg.clone());
            t.notify(AlertSeverity::Info, msg);
        }
        t.set_phase(CanaryPhase::WaitingPromotion);
        t.step_taken();
        t.requeue(plan.interval);
        t.record(
            from,
            checks.records,
            format!("checks passed; promotion held: confirm-promotion {reason}"),
        );
        return;
    }
    promote(input, plan, t, checks.records);
}

fn increase(input: &Input, plan: &Plan, t: &mut Tick, mut checks: Checked, next: i32) {
    let from = input.status.phase;
    let current = t.status.canary_weight;
    if !traffic_increase_confirmed(input, plan, t, &mut checks) {
        return;
    }
    t.status.canary_weight = next;
    t.status.iterations += 1;
    let routes = super::baseline::analysis(plan, &t.status, input.observed);
    t.effect(Effect::SetRoutes(routes));
    t.step_taken();
    t.requeue(plan.interval);
    t.event(
        EventType::Normal,
        "WeightIncreased",
        format!("Advance {} canary weight {next}", input.who()),
    );
    t.record(
        from,
        checks.records,
        format!("advance weight {current} -> {next}"),
    );
}

/// Runs the confirm-traffic-increase gate; when it holds, the step is spent holding the weight
/// (no failure counted) and the tick is recorded. Returns whether the increase may go ahead.
fn traffic_increase_confirmed(
    input: &Input,
    plan: &Plan,
    t: &mut Tick,
    checks: &mut Checked,
) -> bool {
    let gate = check_hooks(input.spec, input.observed, HookType::ConfirmTrafficIncrease);
    let held = match &gate.verdict {
        TickVerdict::Fail { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    checks.extend(gate);
    let Some(reason) = held else { return true };
    let weight = t.status.canary_weight;
    t.step_taken();
    t.requeue(plan.interval);
    let records = std::mem::take(&mut checks.records);
    t.record(
        input.status.phase,
        records,
        format!("weight held at {weight}: confirm-traffic-increase {reason}"),
    );
    false
}

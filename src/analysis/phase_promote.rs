//! The end of a rollout: promote (copy the canary's spec into the primary), Promoting (wait for the
//! primary; optionally step traffic back), Finalising (one interval for in-flight requests), and
//! rollback. A primary that fails during promotion never receives traffic.

use super::READINESS_POLL;
use super::decision::{Effect, EventType, ScaleTo, Tick};
use super::input::{Input, Readiness, Routes};
use super::revision::retire_cookie;
use super::schedule::{Plan, Strategy, analysis_routes, until_due};
use crate::api::{AlertSeverity, CanaryPhase, CheckRecord, HookType};

/// Checks passed at the last step and promotion is confirmed (or skipAnalysis and the canary is
/// ready): copy the spec into the primary. Blue/green first routes everything to the (ready,
/// analysed) canary so the primary can roll; with skipAnalysis the primary keeps the traffic.
pub(crate) fn promote(input: &Input, plan: &Plan, t: &mut Tick, records: Vec<CheckRecord>) {
    let from = input.status.phase;
    if plan.strategy == Strategy::BlueGreen && !plan.skip_analysis {
        t.status.canary_weight = 100;
        t.effect(Effect::SetRoutes(Routes::CANARY));
    }
    let routed = t.effects.iter().any(|e| matches!(e, Effect::SetRoutes(_)));
    if !routed && input.observed.routes.is_some_and(|r| r.baseline > 0) {
        // The baseline leaves with the analysis: its share goes back to the primary first, then
        // convergence removes it.
        t.effect(Effect::SetRoutes(analysis_routes(plan, &t.status)));
    }
    super::phase_watch::remember_previous(input, plan, t);
    t.effect(Effect::CopyConfigs);
    t.effect(Effect::Promote);
    t.status.last_promoted_spec = t.status.last_applied_spec.clone();
    t.step_taken();
    t.set_phase(CanaryPhase::Promoting);
    t.requeue(READINESS_POLL.min(plan.interval));
    let msg = format!(
        "Copying {} template spec to {}-primary.{}",
        input.who(),
        input.spec.target_ref.name,
        input.namespace
    );
    t.event(EventType::Normal, "Promoting", msg);
    let action = if plan.skip_analysis {
        "analysis skipped (skipAnalysis), canary ready; promoting".to_string()
    } else {
        format!(
            "checks passed at weight {}; promoting",
            t.status.canary_weight
        )
    };
    t.record(from, records, action);
}

pub(crate) fn promoting(input: &Input, plan: &Plan, t: &mut Tick) {
    // Only readiness of the promoted revision counts: a cache that still shows the old primary
    // as ready must not send traffic back to a primary that is mid-rollout.
    let promoted = input
        .observed
        .primary
        .as_ref()
        .filter(|p| p.revision.is_some() && p.revision == input.status.last_promoted_spec);
    // The primary's deadline counts from when Promoting began (a time in status, so restarts
    // cannot extend it), besides its Deployment's own ProgressDeadlineExceeded.
    let waited = input
        .status
        .last_transition_time
        .and_then(|since| (input.now - since).to_std().ok())
        .unwrap_or_default();
    match promoted.map(|p| &p.readiness) {
        Some(Readiness::Ready) => {}
        Some(Readiness::DeadlineExceeded(why)) => return primary_failed(input, t, why),
        _ if waited >= plan.progress_deadline => {
            let why = format!(
                "not ready {}s after the promotion (progressDeadlineSeconds)",
                waited.as_secs()
            );
            return primary_failed(input, t, &why);
        }
        _ => {
            let left = plan.progress_deadline - waited;
            t.requeue(READINESS_POLL.min(plan.interval).min(left));
            return;
        }
    }
    let weight = t.status.canary_weight;
    let step = plan.step_weight_promotion;
    if step > 0 && weight > 0 {
        // Traffic moves back once per interval (the first step one interval after the promote).
        let left = until_due(input.status, plan.interval, input.now);
        if !left.is_zero() {
            t.requeue(left);
            return;
        }
        let next = (weight - step).max(0);
        t.status.canary_weight = next;
        t.effect(Effect::SetRoutes(analysis_routes(plan, &t.status)));
        t.step_taken();
        t.requeue(plan.interval);
        t.record(
            CanaryPhase::Promoting,
            Vec::new(),
            format!(
                "promotion step: primary weight {} -> {}",
                100 - weight,
                100 - next
            ),
        );
        if next > 0 {
            return;
        }
    } else {
        t.status.canary_weight = 0;
    }
    t.status.analysis_started = false;
    t.effect(Effect::SetRoutes(Routes::PRIMARY));
    t.step_taken();
    t.set_phase(CanaryPhase::Finalising);
    t.requeue(plan.interval);
    t.event(
        EventType::Normal,
        "Finalising",
        format!(
            "Routing all traffic to primary {}-primary.{}",
            input.spec.target_ref.name, input.namespace
        ),
    );
    t.record(
        CanaryPhase::Promoting,
        Vec::new(),
        "primary ready; all traffic to the primary",
    );
}

/// The primary will not become ready with the promoted revision. A primary stuck in a rollout
/// still serves from the pods of its last good revision: while it has any available replica, all
/// traffic goes back to it and the canary is scaled down (Failed routes to the last good
/// primary). Only when the primary has nothing left to serve does the analysed, ready canary keep
/// the traffic (weight 100) — until the primary can serve again.
fn primary_failed(input: &Input, t: &mut Tick, why: &str) {
    let primary_serves = input
        .observed
        .primary
        .as_ref()
        .is_some_and(|p| p.available > 0);
    let keep_on_canary = !primary_serves && input.observed.canary_ready();
    let where_to = if keep_on_canary {
        t.status.canary_weight = 100;
        t.effect(Effect::SetRoutes(Routes::CANARY));
        "the primary has no available replica, so traffic stays on the analysed canary until it has"
    } else {
        t.status.canary_weight = 0;
        t.effect(Effect::SetRoutes(Routes::PRIMARY));
        t.effect(Effect::ScaleTarget(ScaleTo::Zero));
        "traffic is back on the primary's last good pods and the canary is scaled to 0"
    };
    t.effect(Effect::CallHooks(HookType::PostRollout));
    t.status.analysis_started = false;
    // No watch of a promotion that did not complete.
    t.status.post_promotion = None;
    retire_cookie(&mut t.status);
    t.step_taken();
    t.set_phase(CanaryPhase::Failed);
    let msg = format!(
        "Promotion of {} failed: primary did not become ready ({why}); {where_to}",
        input.who()
    );
    t.event(EventType::Warning, "PromotionFailed", msg.clone());
    t.notify(AlertSeverity::Error, msg.clone());
    t.record(CanaryPhase::Promoting, Vec::new(), msg);
}

pub(crate) fn finalising(input: &Input, plan: &Plan, t: &mut Tick) {
    let left = until_due(input.status, plan.interval, input.now);
    if !left.is_zero() {
        t.requeue(left);
        return;
    }
    if input.observed.routes.is_some_and(|r| r.reaches_canary()) {
        // The route back to the primary has not been applied (refused, or not seen yet): the
        // canary keeps its replicas until no traffic reaches it (convergence sets the route).
        t.requeue(READINESS_POLL.min(plan.interval));
        return;
    }
    if input.spec.analysis.session_affinity.is_some() {
        // Same weights (all on the primary); the routers now expire the retired cookie.
        t.effect(Effect::SetRoutes(Routes::PRIMARY));
    }
    t.effect(Effect::ScaleTarget(ScaleTo::Zero));
    t.effect(Effect::CallHooks(HookType::PostRollout));
    retire_cookie(&mut t.status);
    t.status.analysis_started = false;
    t.step_taken();
    t.set_phase(CanaryPhase::Succeeded);
    let msg = format!("Promotion completed! Scaling down {}", input.who());
    t.event(EventType::Normal, "Promoted", msg.clone());
    t.notify(AlertSeverity::Info, msg);
    t.record(
        CanaryPhase::Finalising,
        Vec::new(),
        "promotion completed; canary scaled to 0",
    );
    super::phase_watch::start(input, plan, t);
}

/// Roll back now: all traffic to the primary, then scale the canary down.
pub(crate) fn rollback(input: &Input, t: &mut Tick, why: &str, records: Vec<CheckRecord>) {
    let from = input.status.phase;
    t.effect(Effect::SetRoutes(Routes::PRIMARY));
    // The baseline leaves with the traffic (also where no convergence follows: an abort).
    super::baseline::remove(input, t);
    t.effect(Effect::ScaleTarget(ScaleTo::Zero));
    t.effect(Effect::CallHooks(HookType::PostRollout));
    t.status.canary_weight = 0;
    t.status.analysis_started = false;
    t.status.not_ready_since = None;
    t.status.held_since = None;
    retire_cookie(&mut t.status);
    t.step_taken();
    t.set_phase(CanaryPhase::Failed);
    let msg = format!("Rolling back {}: {why}", input.who());
    t.event(EventType::Warning, "RolledBack", msg.clone());
    t.notify(
        AlertSeverity::Error,
        format!("Canary analysis failed, {} rolled back: {why}", input.who()),
    );
    t.record(from, records, format!("roll back: {why}"));
}

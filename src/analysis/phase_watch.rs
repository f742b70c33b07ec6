//! The post-promotion watch (`analysis.postPromotion`): after a promotion completes, the promoted
//! revision holds all traffic on the primary and its metrics are checked every interval for a
//! window. Failed checks count against `analysis.threshold`, as in the analysis; reaching it rolls
//! the primary back to the pod template it had before the promotion (kept once in
//! `status.postPromotion`) or only alerts, as the spec says. A newer revision ends the watch and
//! starts a normal rollout.
//!
//! The phase stays `Succeeded` while the watch runs and a `Watching` condition says so: Flagger's
//! phases are a closed set that tools (Argo CD and Flux health checks, `kubectl wait`, CI scripts)
//! read, and `Succeeded` ("the last change was promoted") is true during the watch. A rollback
//! moves to `Failed` ("the last change was rolled back"), as it means there. The deadline is a
//! time in status, so a restarted controller cannot extend the window. Pure, like the whole core:
//! no kube, tokio, reqwest, nor the clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::READINESS_POLL;
use super::checks::{Checked, TickVerdict, check_metric_list};
use super::conditions::set_condition;
use super::decision::{Effect, EventType, Tick};
use super::input::Input;
use super::revision::{RevisionChange, classify, revision};
use super::schedule::{Plan, until_due};
use crate::api::duration::parse_duration;
use crate::api::{
    AlertSeverity, CanaryPhase, CanaryStatus, CheckRecord, HookType, PostPromotion,
    PostPromotionAction, PostPromotionStatus,
};

/// The condition type that tells a watch is running.
pub const WATCHING: &str = "Watching";

/// The watch settings, defaults applied.
struct WatchPlan<'a> {
    spec: &'a PostPromotion,
    interval: Duration,
    window: Duration,
}

fn watch_plan<'a>(input: &Input<'a>, plan: &Plan) -> Option<WatchPlan<'a>> {
    let spec = input.spec.analysis.post_promotion.as_ref()?;
    let interval = spec
        .interval
        .as_deref()
        .and_then(|i| parse_duration(i).ok())
        .unwrap_or(plan.interval)
        .max(Duration::from_secs(1));
    // An unparsable window is a validation error (the Canary does not act); zero ends at once.
    let window = parse_duration(&spec.window).unwrap_or(Duration::ZERO);
    Some(WatchPlan {
        spec,
        interval,
        window,
    })
}

/// Whether a watch is running: promoted, its window started, not rolled back.
pub(crate) fn active(status: &CanaryStatus) -> bool {
    status.phase == CanaryPhase::Succeeded
        && status
            .post_promotion
            .as_ref()
            .is_some_and(|w| w.until.is_some() && !w.restoring)
}

/// Whether a watch tick is due now: the watch interval has passed since the last tick, or the
/// window is over (its last tick checks once more before passing).
pub(crate) fn due(input: &Input, plan: &Plan) -> bool {
    let (Some(wp), Some(until)) = (watch_plan(input, plan), until_of(input.status)) else {
        return false;
    };
    active(input.status)
        && (input.now >= until || until_due(input.status, wp.interval, input.now).is_zero())
}

fn until_of(status: &CanaryStatus) -> Option<DateTime<Utc>> {
    status.post_promotion.as_ref().and_then(|w| w.until)
}

/// The metrics a due watch tick queries.
pub(crate) fn metrics<'a>(input: &Input<'a>) -> &'a [crate::api::CanaryMetric] {
    input
        .spec
        .analysis
        .post_promotion
        .as_ref()
        .map_or(&[], |p| p.metrics.as_slice())
}

/// At promotion: keep the primary's current pod template (the only copy) and revision, for a
/// rollback during the watch. Without a watch in the spec (or with skipAnalysis) nothing is kept.
pub(crate) fn remember_previous(input: &Input, plan: &Plan, t: &mut Tick) {
    t.status.post_promotion = None;
    if input.spec.analysis.post_promotion.is_none() || plan.skip_analysis {
        return;
    }
    if let Some(template) = &input.observed.primary_template {
        t.status.post_promotion = Some(PostPromotionStatus {
            previous_revision: input.status.last_promoted_spec.clone().unwrap_or_default(),
            previous_template: template.clone(),
            ..Default::default()
        });
    }
}

/// At Succeeded: start the window (its end is stored in status).
pub(crate) fn start(input: &Input, plan: &Plan, t: &mut Tick) {
    let Some(wp) = watch_plan(input, plan).filter(|_| !plan.skip_analysis) else {
        t.status.post_promotion = None;
        return;
    };
    if t.status.post_promotion.is_none() {
        let msg = "no post-promotion watch: the primary's previous pod template was not observed \
                   at promotion, so it could not be restored";
        t.event(EventType::Warning, "WatchSkipped", msg);
        t.record(CanaryPhase::Finalising, Vec::new(), msg);
        return;
    }
    if let Some(target) = input.observed.target.as_ref()
        && classify(&revision(target), &t.status) != RevisionChange::Same
    {
        // A newer revision is already waiting: it starts its rollout next, nothing to watch.
        t.status.post_promotion = None;
        let msg = "a newer revision is waiting: no post-promotion watch";
        t.record(CanaryPhase::Finalising, Vec::new(), msg);
        return;
    }
    let until = t.now + chrono::Duration::from_std(wp.window).unwrap_or(chrono::Duration::zero());
    if let Some(pp) = t.status.post_promotion.as_mut() {
        pp.until = Some(until);
        pp.failed_checks = 0;
    }
    let msg = format!(
        "Watching {} for {} after promotion (until {}); on failure: {}",
        input.who(),
        wp.spec.window,
        until.to_rfc3339(),
        action_name(wp.spec.action)
    );
    watching_condition(t, "True", "Watching", &msg);
    t.event(EventType::Normal, "WatchStarted", msg.clone());
    t.record(CanaryPhase::Finalising, Vec::new(), msg);
    t.requeue(wp.interval.min(wp.window).max(Duration::from_secs(1)));
}

fn action_name(a: PostPromotionAction) -> &'static str {
    match a {
        PostPromotionAction::Rollback => "rollback",
        PostPromotionAction::Alert => "alert",
    }
}

fn watching_condition(t: &mut Tick, status: &str, reason: &str, message: &str) {
    set_condition(
        &mut t.status.conditions,
        WATCHING,
        status,
        reason,
        message,
        t.now,
    );
}

/// Ends the watch without acting: the template is dropped from status.
fn end(t: &mut Tick, reason: &str, message: &str) {
    t.status.post_promotion = None;
    watching_condition(t, "False", reason, message);
}

/// A reconcile while the watch runs.
pub(crate) fn watching(input: &Input, plan: &Plan, t: &mut Tick) {
    let Some(wp) = watch_plan(input, plan) else {
        end(
            t,
            "Disabled",
            "analysis.postPromotion was removed; watch ended",
        );
        return;
    };
    if let Some(target) = input.observed.target.as_ref()
        && classify(&revision(target), input.status) != RevisionChange::Same
    {
        let msg = format!(
            "a newer revision of {} ends the post-promotion watch",
            input.who()
        );
        end(t, "Superseded", &msg);
        t.record(CanaryPhase::Succeeded, Vec::new(), msg);
        return super::phase_rollout::steady(input, plan, t);
    }
    let Some(until) = until_of(input.status) else {
        return;
    };
    let left = |now: DateTime<Utc>| (until - now).to_std().unwrap_or(Duration::ZERO);
    if !due(input, plan) {
        let next = until_due(input.status, wp.interval, input.now);
        t.requeue(next.min(left(input.now)));
        return;
    }
    let checked = check_metric_list(metrics(input), input.observed, plan.policies());
    t.step_taken();
    if let TickVerdict::Fail { reason, .. } = &checked.verdict {
        let failed = input
            .status
            .post_promotion
            .as_ref()
            .map_or(0, |w| w.failed_checks)
            + 1;
        if let Some(pp) = t.status.post_promotion.as_mut() {
            pp.failed_checks = failed;
        }
        if failed >= plan.threshold {
            return failed_watch(input, &wp, t, reason, checked.records);
        }
        let msg = format!(
            "post-promotion check failed ({failed}/{}): {reason}",
            plan.threshold
        );
        t.event(EventType::Warning, "PostPromotionCheckFailed", msg.clone());
        t.record(CanaryPhase::Succeeded, checked.records, msg);
    } else {
        t.record(
            CanaryPhase::Succeeded,
            checked.records.clone(),
            tick_text(&checked),
        );
    }
    if input.now >= until {
        return passed(input, &wp, t);
    }
    t.requeue(wp.interval.min(left(input.now)));
}

fn tick_text(c: &Checked) -> String {
    match &c.verdict {
        TickVerdict::Hold(why) | TickVerdict::ProviderDown(why) => {
            format!("post-promotion watch: held, no verdict ({why})")
        }
        _ => "post-promotion checks passed".to_string(),
    }
}

fn passed(input: &Input, wp: &WatchPlan, t: &mut Tick) {
    let msg = format!(
        "Post-promotion watch of {} passed ({} without reaching the threshold)",
        input.who(),
        wp.spec.window
    );
    end(t, "Passed", &msg);
    t.event(EventType::Normal, "WatchPassed", msg.clone());
    t.notify(AlertSeverity::Info, msg.clone());
    t.record(CanaryPhase::Succeeded, Vec::new(), msg);
}

/// The threshold was reached during the watch: roll the primary back, or only alert.
fn failed_watch(
    input: &Input,
    wp: &WatchPlan,
    t: &mut Tick,
    reason: &str,
    records: Vec<CheckRecord>,
) {
    let threshold = t
        .status
        .post_promotion
        .as_ref()
        .map_or(0, |w| w.failed_checks);
    let why = format!("post-promotion checks failed {threshold} times, last: {reason}");
    if wp.spec.action == PostPromotionAction::Alert {
        let msg = format!(
            "Post-promotion watch of {} failed: {why}; alert only, the promoted revision stays",
            input.who()
        );
        end(t, "CheckFailed", &msg);
        t.event(EventType::Warning, "PostPromotionCheckFailed", msg.clone());
        t.notify(AlertSeverity::Error, msg.clone());
        t.record(CanaryPhase::Succeeded, records, msg);
        return;
    }
    let previous = t
        .status
        .post_promotion
        .as_ref()
        .map(|w| w.previous_revision.clone())
        .unwrap_or_default();
    if let Some(pp) = t.status.post_promotion.as_mut() {
        pp.until = None;
        pp.restoring = true;
    }
    // The primary runs the previous revision again; the target keeps the rejected one
    // (lastAppliedSpec), so it is not rolled out again until it changes.
    t.status.last_promoted_spec = Some(previous.clone());
    t.effect(Effect::RestorePrimary);
    t.effect(Effect::CallHooks(HookType::PostRollout));
    t.set_phase(CanaryPhase::Failed);
    t.requeue(READINESS_POLL);
    let msg = format!(
        "Rolling back {} after promotion: {why}; primary back to revision {previous}",
        input.who()
    );
    watching_condition(t, "False", "RolledBack", &msg);
    t.event(EventType::Warning, "RolledBack", msg.clone());
    t.notify(
        AlertSeverity::Error,
        format!(
            "Post-promotion watch failed, {} rolled back: {why}",
            input.who()
        ),
    );
    t.record(
        CanaryPhase::Succeeded,
        records,
        format!("roll back after promotion: {why}"),
    );
}

/// After a post-promotion rollback: restore the previous template until the primary runs that
/// revision (a refused write is made again), then drop the template from status.
pub(crate) fn converge_restore(input: &Input, t: &mut Tick) {
    let Some(pp) = t.status.post_promotion.as_ref().filter(|w| w.restoring) else {
        return;
    };
    let running = input
        .observed
        .primary
        .as_ref()
        .and_then(|p| p.revision.as_deref());
    if running == Some(pp.previous_revision.as_str()) {
        t.status.post_promotion = None;
    } else if !t.effects.contains(&Effect::RestorePrimary) {
        t.effect(Effect::RestorePrimary);
        t.requeue(READINESS_POLL);
    }
}

//! Phase transitions of DESIGN.md section 4, one test per behaviour users rely on.

use super::*;
use crate::api::{AlertSeverity, Verdict};

const BASIC: &str = "interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 50";

#[test]
fn init_creates_primary_then_scales_target_to_zero() {
    let mut w = World::new(spec(BASIC));
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Initializing);
    assert_eq!(d.effects, [Effect::CopyConfigs, Effect::EnsurePrimary]);
    assert!(
        !has(&d.effects, |e| matches!(e, Effect::ScaleTarget(_))),
        "target scaled before the primary is ready"
    );
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Initialized);
    let at = |want: Effect| d.effects.iter().position(|e| *e == want);
    assert!(
        at(Effect::EnsureRouting) < at(Effect::SetRoutes(Routes::PRIMARY))
            && at(Effect::SetRoutes(Routes::PRIMARY)) < at(Effect::ScaleTarget(ScaleTo::Zero)),
        "the routing goes to the primary before the target is scaled away: {:?}",
        d.effects
    );
    assert_eq!(
        d.effects
            .iter()
            .filter(|e| **e == Effect::EnsureRouting)
            .count(),
        1
    );
    assert_eq!(d.status.last_applied_spec.as_deref(), Some("v1"));
    assert_eq!(d.status.last_promoted_spec.as_deref(), Some("v1"));
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert_eq!(
        condition_status(&d.status.conditions, "Promoted"),
        Some("True")
    );
}

#[test]
fn routing_that_was_there_moves_to_the_primary_before_the_target_is_scaled_away() {
    let mut w = World::new(spec(BASIC));
    // A user's apex Service (or Ingress) taken over: it still sends everything to the target.
    w.observed.routes = Some(Routes::CANARY);
    let d = w.tick();
    assert!(!has(&d.effects, |e| matches!(
        e,
        Effect::EnsureRouting | Effect::SetRoutes(_)
    )));
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Initialized);
    let at = |want: Effect| d.effects.iter().position(|e| *e == want);
    assert!(at(Effect::SetRoutes(Routes::PRIMARY)) < at(Effect::ScaleTarget(ScaleTo::Zero)));
    assert!(
        !has(
            &d.effects,
            |e| matches!(e, Effect::Event { reason, .. } if *reason == "RoutesRepaired")
        ),
        "taking the routing over is not a repair: {:?}",
        d.effects
    );
    assert_eq!(w.routes(), Routes::PRIMARY);
}

#[test]
fn initializing_waits_while_the_primary_is_not_ready() {
    let mut w = World::new(spec(BASIC));
    w.tick();
    w.primary_readiness(Readiness::NotReady("1/2 ready".into()));
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Initializing);
    assert!(d.effects.is_empty());
    assert!(d.requeue_after.is_some());
    assert_eq!(w.observed.routes, None, "no routing to an unready primary");
}

#[test]
fn new_revision_moves_to_progressing_with_counters_reset() {
    let mut w = World::initialized(spec(BASIC));
    w.status.failed_checks = 1;
    w.status.iterations = 3;
    w.new_revision("v2");
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Progressing);
    assert_eq!(
        (
            d.status.canary_weight,
            d.status.failed_checks,
            d.status.iterations
        ),
        (0, 0, 0)
    );
    assert_eq!(d.status.last_applied_spec.as_deref(), Some("v2"));
    assert_eq!(d.status.last_promoted_spec.as_deref(), Some("v1"));
    assert_eq!(d.status.last_step_time, Some(w.now));
    assert!(has(&d.effects, |e| *e
        == Effect::ScaleTarget(ScaleTo::LikePrimary)));
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "NewRevision",
            ..
        }
    )));
}

#[test]
fn config_change_alone_is_a_new_revision() {
    let mut w = World::initialized(spec(BASIC));
    w.observed
        .target
        .as_mut()
        .unwrap()
        .configs
        .insert("configmap/podinfo-config".into(), "abc".into());
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Progressing);
    assert_eq!(
        d.status.tracked_configs.as_ref().unwrap()["configmap/podinfo-config"],
        "abc"
    );
}

#[test]
fn revert_to_last_promoted_spec_is_not_a_new_revision() {
    let mut w = World::initialized(spec(BASIC));
    w.new_revision("v2");
    w.tick();
    w.new_revision("v1");
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Initialized);
    assert_eq!(d.status.last_applied_spec.as_deref(), Some("v1"));
    assert!(has(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY)));
    assert!(has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
    let d = w.tick();
    assert!(d.effects.is_empty(), "{:?}", d.effects);
}

#[test]
fn waiting_holds_until_confirm_rollout_passes() {
    let mut s = spec(BASIC);
    s.analysis.webhooks = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "gate", "type": "confirm-rollout", "url": "http://gate/"}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_hook("gate", HookOutcome::Status(403));
    w.new_revision("v2");
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Waiting);
    assert!(
        !has(&d.effects, |e| matches!(e, Effect::ScaleTarget(_))),
        "scaled up while waiting"
    );
    assert!(w.hook_calls.contains(&HookType::ConfirmRollout));
    let d = w.tick();
    assert_eq!(
        d.status.phase,
        CanaryPhase::Waiting,
        "re-entry before the interval re-checked the gate"
    );
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Waiting);
    let waits = |d: &crate::analysis::Decision| {
        d.status
            .decisions
            .iter()
            .filter(|r| r.action.starts_with("wait"))
            .count()
    };
    let before = waits(&d);
    let d = w.next_interval();
    assert_eq!(waits(&d), before, "a repeated wait is recorded once");
    w.set_hook("gate", HookOutcome::Success);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Progressing);
}

#[test]
fn rollback_hook_is_honoured_while_waiting() {
    let mut s = spec(BASIC);
    s.analysis.webhooks = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "gate", "type": "confirm-rollout", "url": "http://gate/"}),
        )
        .unwrap(),
        serde_json::from_value(
            serde_json::json!({"name": "abort", "type": "rollback", "url": "http://gate/rb"}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_hook("gate", HookOutcome::Status(500));
    w.set_hook("abort", HookOutcome::Status(404));
    w.new_revision("v2");
    assert_eq!(w.tick().status.phase, CanaryPhase::Waiting);
    w.set_hook("abort", HookOutcome::Success);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Notify {
            severity: AlertSeverity::Error,
            ..
        }
    )));
    assert!(
        w.next_interval().effects.is_empty(),
        "the rejected revision must not start again"
    );
}

#[test]
fn no_free_rollout_slot_waits_with_a_reason() {
    let mut w = World::initialized(spec(BASIC));
    w.observed.rollout_slot_free = Some(false);
    w.new_revision("v2");
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Waiting);
    assert!(last_action(&d).contains("no free rollout slot"));
    w.observed.rollout_slot_free = Some(true);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Progressing);
}

#[test]
fn skip_analysis_passes_the_gate_waits_for_the_canary_and_succeeds_after_the_primary() {
    let mut s = spec(BASIC);
    s.skip_analysis = Some(true);
    s.analysis.webhooks = Some(vec![hook("gate", "confirm-rollout")]);
    let mut w = World::initialized(s);
    w.set_hook("gate", HookOutcome::Status(403));
    w.new_revision("v2");
    assert_eq!(
        w.tick().status.phase,
        CanaryPhase::Waiting,
        "the gate holds skipAnalysis too"
    );
    assert!(w.hook_calls.contains(&HookType::ConfirmRollout));
    w.set_hook("gate", HookOutcome::Success);
    w.canary_becomes_ready = false;
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Progressing);
    assert!(has(&d.effects, |e| *e
        == Effect::ScaleTarget(ScaleTo::LikePrimary)));
    let d = w.tick();
    assert_eq!(
        d.status.phase,
        CanaryPhase::Progressing,
        "waits for the canary to be ready"
    );
    assert!(!has(&d.effects, |e| *e == Effect::Promote));
    w.canary_readiness(Readiness::Ready);
    w.primary_readiness(Readiness::NotReady("rolling".into()));
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Promoting);
    assert!(has(&d.effects, |e| *e == Effect::Promote));
    assert_eq!(
        w.routes(),
        Routes::PRIMARY,
        "no traffic moves without analysis"
    );
    assert_eq!(
        w.tick().status.phase,
        CanaryPhase::Promoting,
        "Succeeded only after the primary rolled out"
    );
    w.primary_readiness(Readiness::Ready);
    assert_eq!(w.tick().status.phase, CanaryPhase::Finalising);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Succeeded);
    assert_eq!(d.status.last_promoted_spec.as_deref(), Some("v2"));
    assert!(has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
}

#[test]
fn suspend_changes_nothing() {
    let mut w = World::initialized(spec(BASIC));
    w.new_revision("v2");
    w.tick();
    w.tick_after(Duration::from_secs(60));
    w.spec.suspend = Some(true);
    let before = w.status.clone();
    let d = w.tick_after(Duration::from_secs(600));
    assert!(d.effects.is_empty());
    assert_eq!(d.status, before);
    assert_eq!(d.requeue_after, None);
}

#[test]
fn invalid_spec_sets_ready_false_keeps_phase_and_traffic() {
    let mut w = World::initialized(spec(BASIC));
    w.new_revision("v2");
    w.tick();
    w.invalid = vec![FieldError {
        path: "spec.provider".into(),
        message: "unknown provider 'x'".into(),
    }];
    let before = w.status.clone();
    let d = w.tick_after(Duration::from_secs(600));
    assert_eq!(d.status.phase, before.phase);
    assert_eq!(d.status.canary_weight, before.canary_weight);
    assert_eq!(
        d.effects.len(),
        1,
        "only the Warning event: {:?}",
        d.effects
    );
    assert!(
        matches!(&d.effects[0], Effect::Event { kind: EventType::Warning, reason: "InvalidSpec", message } if message == "spec.provider: unknown provider 'x'")
    );
    let ready = d
        .status
        .conditions
        .iter()
        .find(|c| c.r#type == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        w.tick().effects.is_empty(),
        "the event repeats on every reconcile"
    );
}

#[test]
fn missing_target_is_a_condition_and_a_retry_not_a_half_init() {
    let mut w = World::new(spec(BASIC));
    w.observed.target = None;
    let d = w.tick();
    assert_eq!(d.effects.len(), 1);
    assert!(
        matches!(&d.effects[0], Effect::Event { reason: "TargetNotFound", message, .. } if message == "Deployment podinfo.test not found")
    );
    assert!(d.requeue_after.is_some());
    assert!(w.tick().effects.is_empty());
}

#[test]
fn newer_revision_at_90_10_resets_to_100_0() {
    let mut w = World::initialized(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 10\nmaxWeight: 50",
    ));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.routes(), Routes::split(10));
    w.new_revision("v3");
    let d = w.tick();
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert_eq!(d.status.phase, CanaryPhase::Progressing);
    assert_eq!(
        (
            d.status.canary_weight,
            d.status.last_applied_spec.as_deref()
        ),
        (0, Some("v3"))
    );
    assert!(!d.status.analysis_started);
}

#[test]
fn webhook_204_is_success() {
    assert_eq!(HookOutcome::from_status(204), HookOutcome::Success);
    assert_eq!(HookOutcome::from_status(299), HookOutcome::Success);
    assert_eq!(HookOutcome::from_status(302), HookOutcome::Status(302));
    let mut s = spec(BASIC);
    s.analysis.webhooks = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "pre", "type": "pre-rollout", "url": "http://t/"}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_hook("pre", HookOutcome::from_status(204));
    w.new_revision("v2");
    w.tick();
    let d = w.next_interval();
    assert_eq!(d.status.canary_weight, 20);
    assert_eq!(
        d.status.decisions.last().unwrap().checks[0].verdict,
        Verdict::Pass
    );
}

#[test]
fn restarted_controller_resumes_without_rerunning_pre_rollout_or_going_back() {
    let mut s = spec(BASIC);
    s.analysis.webhooks = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "pre", "type": "pre-rollout", "url": "http://t/"}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_hook("pre", HookOutcome::Success);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.next_interval();
    assert_eq!(w.weight(), 40);
    // A fresh controller only has the stored status and a newly observed world.
    let mut fresh = World::new(w.spec.clone());
    fresh.status = w.status.clone();
    fresh.now = w.now + chrono::Duration::seconds(20);
    fresh.observed = w.observed.clone();
    assert!(!fresh.hooks_due().contains(&HookType::PreRollout));
    let d = fresh.tick();
    assert_eq!(d.status.canary_weight, 40);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    let d = fresh.tick_after(Duration::from_secs(40));
    assert_eq!(d.status.canary_weight, 50);
    assert!(!fresh.hook_calls.contains(&HookType::PreRollout));
}

#[test]
fn decision_record_keeps_the_last_20_ticks_with_values() {
    let mut s = spec("interval: 1m\nthreshold: 100\nstepWeight: 10");
    s.analysis.metrics = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.set_metric("request-success-rate", Ok(97.5));
    for _ in 0..30 {
        w.next_interval();
    }
    let decisions = &w.status.decisions;
    assert_eq!(decisions.len(), crate::api::MAX_DECISIONS);
    let last = decisions.last().unwrap();
    assert_eq!(last.checks[0].value, Some(97.5));
    assert_eq!(last.checks[0].bound.as_deref(), Some(">= 99"));
    assert_eq!(last.checks[0].verdict, Verdict::Fail);
    assert!(
        last.action.starts_with("failed check 30/100"),
        "{}",
        last.action
    );
}

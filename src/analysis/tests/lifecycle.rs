//! The end of a rollout and of a Canary: promotion, finalising, failures during promotion,
//! deletion, drift repair, and a full run through every phase.

use super::*;

/// One weight step (50) then promotion.
const SHORT: &str = "interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50";
const BASIC: &str = "interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 50";

#[test]
fn newer_revision_during_promoting_waits_until_succeeded() {
    let mut w = World::initialized(spec(SHORT));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.next_interval();
    assert_eq!(w.status.phase, CanaryPhase::Promoting);
    w.new_revision("v3");
    w.primary_readiness(Readiness::NotReady("rolling".into()));
    assert_eq!(w.tick().status.phase, CanaryPhase::Promoting);
    w.primary_readiness(Readiness::Ready);
    assert_eq!(w.tick().status.phase, CanaryPhase::Finalising);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Succeeded);
    assert_eq!(w.status.last_promoted_spec.as_deref(), Some("v2"));
    let d = w.tick();
    assert_eq!(
        (d.status.phase, d.status.last_applied_spec.as_deref()),
        (CanaryPhase::Progressing, Some("v3"))
    );
}

#[test]
fn canary_progress_deadline_exceeded_rolls_back() {
    let mut w = World::initialized(spec(BASIC));
    w.canary_becomes_ready = false;
    w.new_revision("v2");
    w.tick();
    let d = w.next_interval();
    assert_eq!(
        d.status.phase,
        CanaryPhase::Progressing,
        "not-ready is not a failure"
    );
    assert_eq!(d.status.failed_checks, 0);
    w.observed.target.as_mut().unwrap().readiness =
        Readiness::DeadlineExceeded("ProgressDeadlineExceeded".into());
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(
        position(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY))
            < position(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero))
    );
}

#[test]
fn broken_primary_during_promoting_routes_back_to_its_last_good_pods() {
    let mut w = World::initialized(spec(SHORT));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.next_interval();
    assert_eq!(w.status.phase, CanaryPhase::Promoting);
    // The new revision's pods never come up; the old ones still serve (one available).
    w.primary_readiness(Readiness::DeadlineExceeded(
        "ProgressDeadlineExceeded".into(),
    ));
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert!(
        position(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY))
            < position(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero))
    );
    // Drift repair keeps it there.
    assert!(!has(&w.tick().effects, |e| matches!(
        e,
        Effect::SetRoutes(_)
    )));
}

#[test]
fn broken_primary_with_nothing_to_serve_keeps_traffic_on_the_ready_canary_until_it_can() {
    let mut s = spec("interval: 1m\nthreshold: 2\niterations: 1");
    s.provider = Some("istio".into());
    let mut w = World::initialized(s);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Promoting);
    assert_eq!(
        w.routes(),
        Routes::CANARY,
        "blue/green promotes behind the canary"
    );
    w.primary_readiness(Readiness::DeadlineExceeded(
        "ProgressDeadlineExceeded".into(),
    ));
    w.primary_available(0);
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert_eq!(w.routes(), Routes::CANARY);
    assert!(!has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
    // Drift repair does not move it to the broken primary...
    let d = w.tick();
    assert!(!has(&d.effects, |e| matches!(e, Effect::SetRoutes(_))));
    // ...until the primary can serve again.
    w.primary_available(2);
    let d = w.tick();
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert_eq!(d.status.canary_weight, 0);
    assert!(has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
}

#[test]
fn a_primary_that_never_gets_ready_fails_the_promotion_at_the_deadline_from_status() {
    let mut s = spec(SHORT);
    s.progress_deadline_seconds = Some(120);
    let mut w = World::initialized(s);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.primary_readiness(Readiness::NotReady("rolling".into()));
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Promoting);
    // No ProgressDeadlineExceeded from the Deployment: the time in status decides.
    assert_eq!(
        w.tick_after(Duration::from_secs(119)).status.phase,
        CanaryPhase::Promoting
    );
    assert_eq!(
        w.tick_after(Duration::from_secs(1)).status.phase,
        CanaryPhase::Failed
    );
}

#[test]
fn finalising_waits_one_interval_then_scales_the_canary_down() {
    let mut w = World::initialized(spec(SHORT));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.next_interval();
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Finalising);
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert!(w.tick_after(Duration::from_secs(30)).effects.is_empty());
    let d = w.tick_after(Duration::from_secs(30));
    assert_eq!(d.status.phase, CanaryPhase::Succeeded);
    assert!(has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
    assert!(has(&d.effects, |e| *e
        == Effect::CallHooks(HookType::PostRollout)));
    assert!(!w.target_replicas_up);
}

#[test]
fn revert_on_deletion_restores_the_target_then_terminates() {
    let mut s = spec(BASIC);
    s.revert_on_deletion = Some(true);
    let mut w = World::initialized(s);
    w.deleting = true;
    w.observed.target.as_mut().unwrap().readiness = Readiness::NotReady("0/2".into());
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Terminating);
    assert_eq!(
        d.effects
            .iter()
            .filter(|e| matches!(e, Effect::ScaleTarget(ScaleTo::LikePrimary)))
            .count(),
        1
    );
    assert!(!has(&d.effects, |e| *e == Effect::RemoveFinalizer));
    w.observed.target.as_mut().unwrap().readiness = Readiness::Ready;
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Terminated);
    assert!(
        position(&d.effects, |e| *e == Effect::FinalizeRouting)
            < position(&d.effects, |e| *e == Effect::RemoveFinalizer)
    );
}

#[test]
fn deletion_without_revert_on_deletion_does_nothing() {
    let mut w = World::initialized(spec(BASIC));
    w.deleting = true;
    assert!(w.tick().effects.is_empty());
}

#[test]
fn routes_changed_by_hand_are_repaired() {
    let mut w = World::initialized(spec(BASIC));
    w.observed.routes = Some(Routes::split(30));
    let d = w.tick();
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "RoutesRepaired",
            ..
        }
    )));
}

#[test]
fn full_run_initializing_initialized_progressing_promoting_finalising_succeeded() {
    let mut s = spec("interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 100");
    s.analysis.webhooks = Some(
        [
            "confirm-rollout",
            "pre-rollout",
            "rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
            "post-rollout",
        ]
        .iter()
        .map(|k| {
            serde_json::from_value(serde_json::json!({"name": k, "type": k, "url": "http://h/"}))
                .unwrap()
        })
        .collect(),
    );
    let mut w = World::new(s);
    for k in [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
    ] {
        w.set_hook(k, HookOutcome::Success);
    }
    let mut phases = Vec::new();
    let mut due = Vec::new();
    let mut step = |w: &mut World, after: u64| {
        due.push(w.hooks_due());
        w.tick_after(Duration::from_secs(after));
        phases.push(w.status.phase);
    };
    step(&mut w, 0);
    step(&mut w, 0);
    w.new_revision("v2");
    for after in [0, 60, 60, 60, 0, 60] {
        step(&mut w, after);
    }
    use CanaryPhase::*;
    assert_eq!(
        phases,
        vec![
            Initializing,
            Initialized,
            Progressing,
            Progressing,
            Progressing,
            Promoting,
            Finalising,
            Succeeded
        ]
    );
    // Hooks are due exactly where the design puts them (checked before each tick's clock move).
    assert_eq!(due[2], vec![HookType::ConfirmRollout]);
    assert!(due[6].is_empty() && due[7].is_empty());
    assert!(
        w.log
            .last()
            .unwrap()
            .effects
            .contains(&Effect::CallHooks(HookType::PostRollout))
    );
    assert_eq!(w.primary_revision.as_deref(), Some("v2"));
    assert_eq!(
        condition_status(&w.status.conditions, "Promoted"),
        Some("True")
    );
}

#[test]
fn hooks_are_asked_stage_by_stage_and_only_when_due() {
    let mut s = spec("interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 100");
    s.analysis.webhooks = Some(vec![
        hook("back", "rollback"),
        hook("pre", "pre-rollout"),
        hook("load", "rollout"),
        hook("more", "confirm-traffic-increase"),
        hook("ship", "confirm-promotion"),
    ]);
    let mut w = World::initialized(s);
    for h in ["back", "pre", "load", "more", "ship"] {
        w.set_hook(h, HookOutcome::Success);
    }
    w.set_hook("back", HookOutcome::Status(404));
    w.new_revision("v2");
    w.tick();
    w.now += chrono::Duration::seconds(60);
    use HookType::*;
    assert_eq!(
        w.hooks_due(),
        vec![Rollback, PreRollout, ConfirmTrafficIncrease]
    );
    w.tick();
    w.now += chrono::Duration::seconds(60);
    assert_eq!(
        w.hooks_due(),
        vec![Rollback, Rollout, ConfirmTrafficIncrease]
    );
    w.tick();
    w.now += chrono::Duration::seconds(60);
    assert_eq!(w.hooks_due(), vec![Rollback, Rollout, ConfirmPromotion]);
    // A failing rollout hook ends the tick: the promotion gate is not asked.
    w.set_hook("load", HookOutcome::Status(500));
    assert_eq!(w.hooks_due(), vec![Rollback, Rollout]);
    // A rollback hook saying yes ends it before anything else is called.
    w.set_hook("back", HookOutcome::Success);
    assert_eq!(w.hooks_due(), vec![Rollback]);
}

#[test]
fn pre_rollout_is_never_called_when_a_rollback_hook_says_yes() {
    let mut s = spec(BASIC);
    s.analysis.webhooks = Some(vec![hook("back", "rollback"), hook("pre", "pre-rollout")]);
    let mut w = World::initialized(s);
    w.set_hook("back", HookOutcome::Success);
    w.set_hook("pre", HookOutcome::Success);
    w.new_revision("v2");
    w.tick();
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(!w.hook_calls.contains(&HookType::PreRollout));
}

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
fn broken_primary_during_promoting_keeps_canary_traffic() {
    let mut w = World::initialized(spec(SHORT));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.next_interval();
    assert_eq!(w.status.phase, CanaryPhase::Promoting);
    w.primary_readiness(Readiness::DeadlineExceeded(
        "ProgressDeadlineExceeded".into(),
    ));
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert_eq!(w.routes(), Routes::CANARY);
    assert!(
        !has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)),
        "the only healthy side was scaled down"
    );
    assert!(!has(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY)));
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
        due.push(hooks_due(&w.input()));
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
fn hooks_due_follow_the_analysis() {
    let mut s = spec("interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 100");
    s.analysis.webhooks = Some(vec![]);
    let mut w = World::initialized(s);
    w.new_revision("v2");
    w.tick();
    w.now += chrono::Duration::seconds(60);
    assert_eq!(
        hooks_due(&w.input()),
        vec![
            HookType::Rollback,
            HookType::PreRollout,
            HookType::ConfirmTrafficIncrease
        ]
    );
    w.tick();
    w.now += chrono::Duration::seconds(60);
    assert_eq!(
        hooks_due(&w.input()),
        vec![
            HookType::Rollback,
            HookType::Rollout,
            HookType::ConfirmTrafficIncrease
        ]
    );
    w.tick();
    w.now += chrono::Duration::seconds(60);
    assert_eq!(
        hooks_due(&w.input()),
        vec![
            HookType::Rollback,
            HookType::Rollout,
            HookType::ConfirmPromotion
        ]
    );
}

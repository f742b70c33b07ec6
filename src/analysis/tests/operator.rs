//! `serin.io/action`: an operator's promote, abort, pause and resume, each acted on once.

use super::*;

const STEPS: &str = "interval: 1m\nthreshold: 2\nstepWeight: 10\nmaxWeight: 50";

/// A canary analysing at weight 10 with a success-rate check passing at 99.9.
fn analysing() -> World {
    let mut s = spec(STEPS);
    s.analysis.metrics = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(99.9));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!((w.status.phase, w.weight()), (CanaryPhase::Progressing, 10));
    w
}

/// (reason, message) of the Events a decision emits.
fn events(d: &Decision) -> Vec<(String, String)> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event {
                reason, message, ..
            } => Some((reason.to_string(), message.clone())),
            _ => None,
        })
        .collect()
}

/// The effects that change the world (not Events or alerts).
fn changes(d: &Decision) -> Vec<&Effect> {
    d.effects
        .iter()
        .filter(|e| !matches!(e, Effect::Event { .. } | Effect::Notify { .. }))
        .collect()
}

fn act(w: &mut World, value: &str) -> Decision {
    w.action = Some(value.to_string());
    w.tick()
}

#[test]
fn promote_skips_the_remaining_steps_once_the_checks_pass_again() {
    let mut w = analysing();
    let d = act(&mut w, "promote@1");
    assert_eq!(d.status.last_action.as_deref(), Some("promote@1"));
    assert!(d.status.promote_requested);
    assert!(
        changes(&d).is_empty(),
        "the action tick takes no step: {:?}",
        d.effects
    );
    assert!(events(&d).iter().any(|(r, _)| r == "PromotionRequested"));
    assert!(
        w.hooks_due().is_empty(),
        "nothing to observe on the action tick"
    );
    // The checks fail once: no promotion, a failure counted.
    w.set_metric("request-success-rate", Ok(95.0));
    let d = w.next_interval();
    assert_eq!(
        (d.status.phase, d.status.failed_checks),
        (CanaryPhase::Progressing, 1)
    );
    assert!(d.status.promote_requested);
    // They pass: promotion from weight 10, not 20..50.
    w.set_metric("request-success-rate", Ok(99.9));
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Promoting);
    assert!(!d.status.promote_requested);
    assert!(!w.hook_calls.contains(&HookType::ConfirmPromotion));
}

#[test]
fn abort_rolls_back_now_and_is_recorded() {
    let mut w = analysing();
    let d = act(&mut w, "abort@7");
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert!(has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
    let last = d.status.decisions.last().unwrap();
    assert!(
        last.action.contains("aborted by an operator"),
        "{}",
        last.action
    );
    // The same annotation value does nothing more.
    let again = w.tick();
    assert_eq!(again.status.phase, CanaryPhase::Failed);
    assert!(events(&again).is_empty(), "{:?}", again.effects);
}

#[test]
fn pause_freezes_the_clock_and_resume_gives_the_step_its_remaining_time() {
    let mut w = analysing();
    w.now += chrono::Duration::seconds(20);
    let paused = act(&mut w, "pause@1");
    assert_eq!(paused.status.paused_at, Some(w.now));
    // An hour later nothing has moved, and nothing was queried or called.
    for _ in 0..60 {
        let d = w.next_interval();
        assert_eq!(d.status.canary_weight, 10);
        assert!(d.effects.is_empty(), "{:?}", d.effects);
        assert!(!w.metrics_due() && w.hooks_due().is_empty());
    }
    let resumed = act(&mut w, "resume@2");
    assert_eq!(resumed.status.paused_at, None);
    assert_eq!(resumed.status.canary_weight, 10);
    // 20 s of the 60 s step had passed before the pause: the step is due 40 s after resuming.
    assert_eq!(resumed.requeue_after, Some(Duration::from_secs(40)));
    assert_eq!(
        w.tick_after(Duration::from_secs(39)).status.canary_weight,
        10
    );
    assert_eq!(
        w.tick_after(Duration::from_secs(1)).status.canary_weight,
        20
    );
}

#[test]
fn an_unknown_or_inapplicable_action_is_said_and_changes_nothing() {
    let mut w = analysing();
    let d = act(&mut w, "rollback-please");
    assert!(
        events(&d)
            .iter()
            .any(|(r, m)| r == "UnknownAction" && m.contains("serin.io/action"))
    );
    assert_eq!(
        (d.status.phase, d.status.canary_weight),
        (CanaryPhase::Progressing, 10)
    );
    let d = act(&mut w, "resume@3");
    assert!(
        events(&d).iter().any(|(r, _)| r == "ActionIgnored"),
        "resume without pause"
    );
    let mut done = World::initialized(spec(STEPS));
    let d = act(&mut done, "promote@1");
    assert!(events(&d).iter().any(|(r, _)| r == "ActionIgnored"));
    assert!(!d.status.promote_requested);
}

#[test]
fn a_new_revision_drops_a_promote_request_for_the_old_one() {
    let mut w = analysing();
    act(&mut w, "promote@1");
    w.new_revision("v3");
    let d = w.tick();
    assert!(!d.status.promote_requested);
}

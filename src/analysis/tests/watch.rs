//! The post-promotion watch: the window ends in Succeeded, a regression under full traffic rolls
//! the primary back (or only alerts), a newer revision ends the watch and starts a rollout, and a
//! restarted controller cannot extend the window (its end is in status).

use super::*;
use crate::analysis::phase_watch::WATCHING;
use crate::api::AlertSeverity;

const WATCHED: &str = "interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50
postPromotion:
  window: 5m
  metrics:
  - name: error-rate
    query: sum(rate(errors[1m]))
    thresholdRange: {max: 1}";

/// A world that has promoted v2 over v1 and just reached Succeeded (the watch starts there).
fn promoted(yaml: &str) -> World {
    let mut w = World::initialized(spec(yaml));
    w.set_metric("error-rate", Ok(0.1));
    w.new_revision("v2");
    w.tick();
    for _ in 0..6 {
        w.next_interval();
        if w.status.phase == CanaryPhase::Succeeded {
            return w;
        }
    }
    panic!("no promotion: {:?}", w.status.decisions);
}

fn watching(status: &CanaryStatus) -> Option<(&str, &str)> {
    status
        .conditions
        .iter()
        .find(|c| c.r#type == WATCHING)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

#[test]
fn promotion_keeps_the_previous_template_once_and_starts_the_window_at_succeeded() {
    let w = promoted(WATCHED);
    let kept = w.status.post_promotion.as_ref().expect("watch state");
    assert_eq!(kept.previous_revision, "v1");
    assert_eq!(
        kept.previous_template,
        serde_json::json!({"metadata": {"labels": {"rev": "v1"}}})
    );
    assert_eq!(
        kept.until,
        Some(w.now + chrono::Duration::minutes(5)),
        "the window is counted from Succeeded"
    );
    assert_eq!(watching(&w.status), Some(("True", "Watching")));
    assert_eq!(w.routes(), Routes::PRIMARY);
    let text = serde_json::to_string(&w.status).unwrap();
    assert_eq!(text.matches("previousTemplate").count(), 1, "{text}");
}

#[test]
fn window_ends_in_succeeded_after_checking_every_interval() {
    let mut w = promoted(WATCHED);
    for minute in 1..=5 {
        assert!(!w.metrics_due(), "nothing is due before the interval");
        w.now += chrono::Duration::minutes(1);
        assert!(w.metrics_due(), "a watch tick is due at minute {minute}");
        let d = w.tick();
        assert_eq!(d.status.phase, CanaryPhase::Succeeded);
        assert_eq!(
            w.routes(),
            Routes::PRIMARY,
            "all traffic stays on the primary"
        );
        assert!(!has(&d.effects, |e| *e == Effect::RestorePrimary));
    }
    assert_eq!(watching(&w.status), Some(("False", "Passed")));
    assert_eq!(w.status.post_promotion, None, "the template is dropped");
    // Identical passing ticks are recorded once (append_record drops repeats).
    assert!(
        w.status
            .decisions
            .iter()
            .any(|r| r.action == "post-promotion checks passed" && r.checks[0].value == Some(0.1))
    );
    assert!(last_action(w.log.last().unwrap()).contains("passed"));
    assert!(
        !w.next_interval()
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Notify { .. }))
    );
    assert!(!w.metrics_due(), "no checks after the window");
}

#[test]
fn regression_after_promotion_rolls_the_primary_back_at_the_threshold() {
    let mut w = promoted(WATCHED);
    w.set_metric("error-rate", Ok(5.0));
    let d = w.next_interval();
    assert_eq!(
        d.status.phase,
        CanaryPhase::Succeeded,
        "1 of 2 failed checks"
    );
    assert_eq!(d.status.post_promotion.as_ref().unwrap().failed_checks, 1);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(has(&d.effects, |e| *e == Effect::RestorePrimary));
    assert!(has(&d.effects, |e| *e
        == Effect::CallHooks(HookType::PostRollout)));
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Notify {
            severity: AlertSeverity::Error,
            ..
        }
    )));
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "RolledBack",
            ..
        }
    )));
    let record = d.status.decisions.last().unwrap();
    assert!(
        record.action.starts_with("roll back after promotion")
            && record.action.contains("error-rate 5.00 not <= 1"),
        "{}",
        record.action
    );
    assert_eq!(record.checks[0].value, Some(5.0));
    assert_eq!(d.status.last_promoted_spec.as_deref(), Some("v1"));
    assert_eq!(d.status.last_applied_spec.as_deref(), Some("v2"));
    assert_eq!(watching(&d.status), Some(("False", "RolledBack")));
    assert_eq!(w.primary_revision.as_deref(), Some("v1"));
    assert_eq!(w.routes(), Routes::PRIMARY);
    // Once the primary runs v1 again the template goes; v2 (still in the target) is not rolled
    // out again until it changes.
    let d = w.tick();
    assert_eq!(d.status.post_promotion, None);
    assert!(!has(&d.effects, |e| *e == Effect::RestorePrimary));
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(!has(&d.effects, |e| *e
        == Effect::ScaleTarget(ScaleTo::LikePrimary)));
}

#[test]
fn refused_restore_is_made_again_until_the_primary_runs_the_previous_revision() {
    let mut w = promoted(WATCHED);
    w.set_metric("error-rate", Ok(5.0));
    w.next_interval();
    w.refuse = |e| *e == Effect::RestorePrimary;
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert_eq!(w.primary_revision.as_deref(), Some("v2"), "refused");
    let d = w.tick();
    assert!(has(&d.effects, |e| *e == Effect::RestorePrimary));
    w.refuse = |_| false;
    w.tick();
    assert_eq!(w.primary_revision.as_deref(), Some("v1"));
    assert_eq!(w.tick().status.post_promotion, None);
}

#[test]
fn action_alert_only_alerts_and_records() {
    let mut w = promoted(&format!("{WATCHED}\n  action: alert"));
    w.set_metric("error-rate", Ok(5.0));
    w.next_interval();
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Succeeded);
    assert!(!has(&d.effects, |e| *e == Effect::RestorePrimary));
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Notify {
            severity: AlertSeverity::Error,
            ..
        }
    )));
    assert!(
        last_action(&d).contains("alert only"),
        "{}",
        last_action(&d)
    );
    assert_eq!(d.status.last_promoted_spec.as_deref(), Some("v2"));
    assert_eq!(watching(&d.status), Some(("False", "CheckFailed")));
    assert_eq!(d.status.post_promotion, None);
}

#[test]
fn newer_revision_mid_window_ends_the_watch_and_starts_a_rollout() {
    let mut w = promoted(WATCHED);
    w.next_interval();
    w.new_revision("v3");
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Progressing);
    assert_eq!(d.status.last_applied_spec.as_deref(), Some("v3"));
    assert_eq!(watching(&d.status), Some(("False", "Superseded")));
    assert_eq!(d.status.post_promotion, None);
    assert!(has(&d.effects, |e| *e
        == Effect::ScaleTarget(ScaleTo::LikePrimary)));
    assert!(!has(&d.effects, |e| *e == Effect::RestorePrimary));
}

#[test]
fn a_restart_does_not_extend_the_window() {
    let mut w = promoted(WATCHED);
    let until = w.status.post_promotion.as_ref().unwrap().until;
    // The controller restarts: a fresh process decides from the stored status alone.
    w.tick_after(Duration::from_secs(150));
    assert_eq!(w.status.post_promotion.as_ref().unwrap().until, until);
    // Down past the window's end: the first reconcile checks once and ends the watch.
    let d = w.tick_after(Duration::from_secs(400));
    assert_eq!(watching(&d.status), Some(("False", "Passed")));
    assert_eq!(d.status.phase, CanaryPhase::Succeeded);
}

#[test]
fn reentry_at_the_same_instant_checks_once() {
    let mut w = promoted(WATCHED);
    w.now += chrono::Duration::minutes(1);
    assert!(w.metrics_due());
    let d = w.tick();
    assert!(
        d.requeue_after
            .is_some_and(|r| r <= Duration::from_secs(60))
    );
    assert!(!w.metrics_due(), "a watch re-entry queries nothing");
    let before = w.status.decisions.len();
    w.tick();
    assert_eq!(w.status.decisions.len(), before);
}

#[test]
fn without_post_promotion_nothing_is_kept() {
    let w = promoted("interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50");
    assert_eq!(w.status.post_promotion, None);
    assert_eq!(watching(&w.status), None);
}

mod props {
    use proptest::prelude::{
        ProptestConfig, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };
    use proptest::strategy::Strategy as Arb;

    use super::*;

    #[derive(Debug, Clone)]
    enum Event {
        Wait(u64),
        Metric(Option<f64>),
        NewRevision(u8),
        RefuseRestore(bool),
    }

    fn arb_event() -> impl Arb<Value = Event> {
        prop_oneof![
            4 => (1u64..200).prop_map(Event::Wait),
            3 => prop::option::of(0.0f64..2.0).prop_map(Event::Metric),
            1 => (3u8..6).prop_map(Event::NewRevision),
            1 => proptest::bool::ANY.prop_map(Event::RefuseRestore),
        ]
    }

    fn apply(w: &mut World, e: &Event) {
        match e {
            Event::Wait(s) => w.now += chrono::Duration::seconds(*s as i64),
            Event::Metric(Some(v)) => w.set_metric("error-rate", Ok(*v)),
            Event::Metric(None) => w.set_metric("error-rate", Err(MetricFailure::NoData)),
            Event::NewRevision(n) => w.new_revision(&format!("v{n}")),
            Event::RefuseRestore(true) => w.refuse = |e| *e == Effect::RestorePrimary,
            Event::RefuseRestore(false) => w.refuse = |_| false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        /// Whatever happens after a watched promotion: traffic stays on the primary while
        /// Succeeded, the watch's failed checks never pass the threshold, its end never moves,
        /// `Watching=True` holds exactly while a window is open, and a re-entry at the same
        /// instant changes nothing more.
        #[test]
        fn the_watch_keeps_its_promises(alert in proptest::bool::ANY, events in prop::collection::vec(arb_event(), 1..50)) {
            let yaml = if alert { format!("{WATCHED}\n  action: alert") } else { WATCHED.to_string() };
            let mut w = promoted(&yaml);
            let mut until = w.status.post_promotion.as_ref().and_then(|p| p.until);
            for e in &events {
                apply(&mut w, e);
                let d = w.tick();
                let st = &d.status;
                if st.phase == CanaryPhase::Succeeded {
                    prop_assert_eq!(w.routes(), Routes::PRIMARY);
                }
                let open = st.post_promotion.as_ref().and_then(|p| p.until);
                if let (Some(a), Some(b)) = (until, open) {
                    prop_assert_eq!(a, b, "the window's end moved");
                }
                until = open;
                let failed = st.post_promotion.as_ref().map_or(0, |p| p.failed_checks);
                prop_assert!(failed <= 2);
                prop_assert_eq!(open.is_some(), watching(st) == Some(("True", "Watching")));
                if alert {
                    prop_assert!(!has(&d.effects, |e| *e == Effect::RestorePrimary));
                }
                if open.is_some() {
                    // A re-entry at the same instant while the window is open takes no step.
                    let again = decide(&w.input());
                    prop_assert_eq!(&again.status.post_promotion, &st.post_promotion);
                    prop_assert_eq!(again.status.decisions.len(), st.decisions.len());
                }
            }
        }
    }
}

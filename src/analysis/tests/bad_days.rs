//! The cluster's bad days, as the core sees them: canaries that never get ready or stop being
//! ready, metrics providers that go away, writes the API server refuses (half-applied steps), and
//! the provider a Canary does not name.

use super::*;
use crate::api::{OnProviderError, Verdict};

const BASIC: &str = "interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 60";

fn with_metric(mut s: CanarySpec) -> CanarySpec {
    s.analysis.metrics = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}),
        )
        .unwrap(),
    ]);
    s
}

#[test]
fn a_never_ready_canary_fails_at_the_deadline_counted_from_status() {
    let mut s = spec(BASIC);
    s.progress_deadline_seconds = Some(30);
    let mut w = World::initialized(s);
    w.canary_becomes_ready = false;
    w.new_revision("v2");
    let started = w.tick();
    assert_eq!(started.status.phase, CanaryPhase::Progressing);
    assert_eq!(
        started.status.not_ready_since,
        Some(w.now),
        "counted from the scale-up"
    );
    w.tick_after(Duration::from_secs(1));
    // A controller restarted every few seconds decides from the same status: the deadline holds.
    for _ in 0..5 {
        let d = w.tick_after(Duration::from_secs(5));
        assert_eq!(d.status.phase, CanaryPhase::Progressing);
        assert!(d.requeue_after.unwrap() <= Duration::from_secs(5));
    }
    let d = w.tick_after(Duration::from_secs(4));
    assert_eq!(
        d.status.phase,
        CanaryPhase::Failed,
        "{:?}",
        d.status.decisions.last()
    );
    assert!(last_action(&d).contains("not ready for 30s"));
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert!(!w.target_replicas_up);
}

#[test]
fn a_target_at_zero_replicas_is_never_taken_for_ready() {
    let mut w = World::initialized(spec(BASIC));
    w.new_revision("v2");
    // The scale-up was refused: the target stays at 0 replicas, "ready" (0 of 0) by its status.
    w.refuse = |e| matches!(e, Effect::ScaleTarget(ScaleTo::LikePrimary));
    assert_eq!(w.tick().status.phase, CanaryPhase::Progressing);
    let d = w.next_interval();
    assert_eq!(
        d.status.canary_weight, 0,
        "no traffic to a canary with no replicas"
    );
    assert!(
        has(&d.effects, |e| *e
            == Effect::ScaleTarget(ScaleTo::LikePrimary)),
        "retried"
    );
    // The refusal is lifted: the canary comes up and the analysis starts by itself.
    w.refuse = |_| false;
    w.tick();
    let d = w.next_interval();
    assert_eq!(d.status.canary_weight, 20);
}

#[test]
fn a_canary_that_turns_unready_loses_its_traffic_at_once_and_is_rolled_back_at_the_deadline() {
    let mut s = spec(BASIC);
    s.progress_deadline_seconds = Some(120);
    let mut w = World::initialized(s);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.routes(), Routes::split(20));
    w.canary_readiness(Readiness::NotReady(
        "1 of 2 updated replicas available".into(),
    ));
    let d = w.tick();
    assert_eq!(w.routes(), Routes::PRIMARY, "withdrawn at once");
    assert_eq!(d.status.canary_weight, 20, "the step is kept, not lost");
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "CanaryNotReady",
            ..
        }
    )));
    // Ready again before the deadline: the weight comes back, and no step is taken until the
    // route is back in place.
    w.canary_readiness(Readiness::Ready);
    let d = w.tick_after(Duration::from_secs(60));
    assert_eq!(w.routes(), Routes::split(20));
    assert_eq!(d.status.canary_weight, 20);
    assert_eq!(d.status.not_ready_since, None);
    // Unready for good this time: rolled back progressDeadlineSeconds later.
    w.canary_readiness(Readiness::NotReady("0 of 2".into()));
    w.tick_after(Duration::from_secs(1));
    assert_eq!(
        w.tick_after(Duration::from_secs(119)).status.phase,
        CanaryPhase::Progressing
    );
    assert_eq!(
        w.tick_after(Duration::from_secs(1)).status.phase,
        CanaryPhase::Failed
    );
}

#[test]
fn an_unreachable_metrics_provider_holds_the_analysis_then_fails_at_the_deadline() {
    let mut s = with_metric(spec(BASIC));
    s.progress_deadline_seconds = Some(180);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(100.0));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.weight(), 20);
    w.set_metric(
        "request-success-rate",
        Err(MetricFailure::Unreachable("connection refused".into())),
    );
    let d = w.next_interval();
    assert_eq!((d.status.canary_weight, d.status.failed_checks), (20, 0));
    assert_eq!(
        d.status.decisions.last().unwrap().checks[0].verdict,
        Verdict::Unreachable
    );
    assert!(last_action(&d).contains("metrics provider unreachable"));
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "AnalysisHeld",
            ..
        }
    )));
    // Back before the deadline: the analysis carries on from where it was.
    w.set_metric("request-success-rate", Ok(100.0));
    let d = w.next_interval();
    assert_eq!((d.status.canary_weight, d.status.held_since), (40, None));
    // Away for good: rolled back once the hold reaches progressDeadlineSeconds.
    w.set_metric(
        "request-success-rate",
        Err(MetricFailure::Unreachable("timeout".into())),
    );
    for _ in 0..3 {
        assert_eq!(w.next_interval().status.phase, CanaryPhase::Progressing);
    }
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(last_action(&d).contains("without a verdict"));
}

#[test]
fn on_provider_error_fail_keeps_flaggers_behaviour() {
    let mut s = with_metric(spec(BASIC));
    s.analysis.on_provider_error = Some(OnProviderError::Fail);
    let mut w = World::initialized(s);
    w.set_metric(
        "request-success-rate",
        Err(MetricFailure::Unreachable("down".into())),
    );
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.next_interval().status.failed_checks, 1);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Failed);
}

#[test]
fn on_no_data_hold_is_bounded_by_the_progress_deadline() {
    let mut s = with_metric(spec(&format!("{BASIC}\nonNoData: hold")));
    s.progress_deadline_seconds = Some(120);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Err(MetricFailure::NoData));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Progressing);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Progressing);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Failed);
}

#[test]
fn a_refused_route_write_holds_the_analysis_and_the_step_resumes_once_it_is_allowed() {
    let mut s = with_metric(spec(BASIC));
    s.provider = Some("istio".into());
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(100.0));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.routes(), Routes::split(20));
    w.refuse = |e| matches!(e, Effect::SetRoutes(_));
    let d = w.next_interval();
    assert_eq!(d.status.canary_weight, 40, "the decision is recorded");
    assert_eq!(w.routes(), Routes::split(20), "but the write was refused");
    // Further ticks retry the route and take no step on the wrong weight; no gate is re-asked.
    w.hook_calls.clear();
    for _ in 0..3 {
        let d = w.next_interval();
        assert_eq!(d.status.canary_weight, 40);
        assert!(has(&d.effects, |e| *e == Effect::SetRoutes(Routes::split(40))));
        assert!(!w.metrics_due());
    }
    assert!(w.hook_calls.is_empty());
    w.refuse = |_| false;
    w.tick();
    assert_eq!(w.routes(), Routes::split(40));
    let d = w.next_interval();
    assert_eq!(
        d.status.canary_weight, 60,
        "carries on from where it was, never back"
    );
}

#[test]
fn a_refused_scale_down_is_retried_once_no_traffic_reaches_the_canary() {
    let mut w = World::new(spec(BASIC));
    w.refuse = |e| *e == Effect::ScaleTarget(ScaleTo::Zero);
    w.tick();
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Initialized);
    assert!(w.target_replicas_up);
    let d = w.tick();
    assert!(has(&d.effects, |e| *e == Effect::ScaleTarget(ScaleTo::Zero)));
    w.refuse = |_| false;
    w.tick();
    assert!(!w.target_replicas_up);
    assert!(!has(&w.tick().effects, |e| matches!(
        e,
        Effect::ScaleTarget(_)
    )));
}

#[test]
fn routing_objects_that_disappear_are_made_again() {
    let mut w = World::initialized(spec(BASIC));
    w.observed.routes = None;
    let d = w.tick();
    assert!(
        position(&d.effects, |e| *e == Effect::EnsureRouting)
            < position(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY))
    );
}

#[test]
fn the_kubernetes_default_never_gets_a_weight_plan() {
    // No spec.provider: the controller's default (kubernetes) decides the plan, so a stepWeight
    // spec is blue/green-shaped here, and validation refuses it (see api::validate tests).
    let mut s = spec(BASIC);
    s.provider = None;
    let w = World::new(s);
    assert_eq!(w.plan().strategy, Strategy::BlueGreen);
    let mut s = spec(BASIC);
    s.provider = None;
    let mut w = World::new(s);
    w.default_provider = "istio".into();
    assert_eq!(w.plan().strategy, Strategy::Canary);
}

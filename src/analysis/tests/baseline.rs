//! The baseline (`analysis.baseline`): started with the canary's replicas when the canary first
//! gets traffic, given the canary's weight only once ready, dropped from the routes before it is
//! removed at promotion, rollback and deletion; the plan's weights capped at 50; the judge
//! compares with it.

use super::*;

const STEPS: &str = "interval: 1m\nthreshold: 1\nstepWeight: 10\nmaxWeight: 20\nbaseline: true";

fn split(primary: i32, canary: i32, baseline: i32) -> Routes {
    Routes {
        primary,
        canary,
        baseline,
        mirror: false,
        ab_match: false,
    }
}

fn is_ensure(e: &Effect) -> bool {
    matches!(e, Effect::EnsureBaseline { .. })
}

/// Initialised on v1, then v2 scaled up and its analysis started (weight 10, baseline created).
fn started(analysis: &str) -> (World, Decision) {
    let mut w = World::initialized(spec_with("gatewayapi", analysis));
    w.new_revision("v2");
    assert_eq!(w.tick().status.phase, CanaryPhase::Progressing);
    let d = w.next_interval();
    assert!(w.status.analysis_started);
    (w, d)
}

#[test]
fn the_plan_caps_weights_at_fifty_with_a_baseline() {
    let w = World::new(spec_with(
        "gatewayapi",
        "interval: 1m\nthreshold: 1\nstepWeight: 20\nmaxWeight: 80\nbaseline: true",
    ));
    assert_eq!(w.plan().weights, vec![20, 40, 50]);
    let w = World::new(spec_with(
        "gatewayapi",
        "interval: 1m\nthreshold: 1\nstepWeights: [10, 60, 90]\nbaseline: true",
    ));
    assert_eq!(w.plan().weights, vec![10, 50]);
    // A/B and blue/green give the canary no weight: no baseline in their plan.
    let w = World::new(spec_with(
        "gatewayapi",
        "interval: 1m\nthreshold: 1\niterations: 2\nbaseline: true",
    ));
    assert!(!w.plan().baseline);
}

#[test]
fn the_baseline_starts_with_the_canary_replicas_and_gets_traffic_once_ready() {
    let mut w = World::initialized(spec_with("gatewayapi", STEPS));
    w.baseline_becomes_ready = false;
    w.new_revision("v2");
    let d = w.tick();
    assert!(
        !has(&d.effects, is_ensure),
        "not before the canary gets traffic"
    );
    let d = w.next_interval();
    // The canary has 2 replicas (World scales it like the primary).
    assert!(has(&d.effects, |e| *e == Effect::EnsureBaseline { replicas: 2 }));
    assert_eq!(
        w.routes(),
        split(90, 10, 0),
        "no traffic to a baseline not ready"
    );
    // Still not ready: its share stays with the primary, and the analysis goes on.
    let d = w.next_interval();
    assert_eq!(d.status.canary_weight, 20);
    assert_eq!(w.routes(), split(80, 20, 0));
    // Ready: convergence gives it the canary's weight, from the primary's share.
    w.observed.baseline.as_mut().unwrap().readiness = Readiness::Ready;
    let d = w.tick();
    assert!(has(&d.effects, |e| *e == Effect::SetRoutes(split(60, 20, 20))));
    assert!(has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "BaselineRouted",
            kind: EventType::Normal,
            ..
        }
    )));
    assert!(!has(&d.effects, |e| matches!(
        e,
        Effect::Event {
            reason: "RoutesRepaired",
            ..
        }
    )));
    // Not ready again: withdrawn.
    w.observed.baseline.as_mut().unwrap().readiness = Readiness::NotReady("0/2".into());
    w.tick();
    assert_eq!(w.routes(), split(80, 20, 0));
}

#[test]
fn a_weight_step_gives_the_baseline_the_same_share() {
    let (mut w, d) = started(STEPS);
    assert!(has(&d.effects, is_ensure));
    // The baseline is ready as soon as created here: the next reconcile routes to it.
    w.tick();
    assert_eq!(w.routes(), split(80, 10, 10));
    let d = w.next_interval();
    assert_eq!(d.status.canary_weight, 20);
    assert!(has(&d.effects, |e| *e == Effect::SetRoutes(split(60, 20, 20))));
}

#[test]
fn promotion_drops_the_baseline_from_the_routes_then_removes_it() {
    let (mut w, _) = started(STEPS);
    w.tick();
    w.next_interval();
    assert_eq!(w.routes(), split(60, 20, 20));
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Promoting);
    let drop = position(&d.effects, |e| *e == Effect::SetRoutes(split(80, 20, 0)));
    let remove = position(&d.effects, |e| *e == Effect::RemoveBaseline);
    assert!(drop < remove, "routes first: {:?}", d.effects);
    assert!(w.observed.baseline.is_none());
    // Promoting and after: never again.
    w.tick();
    w.next_interval();
    assert_eq!(w.status.phase, CanaryPhase::Succeeded);
    assert!(
        w.log
            .iter()
            .rev()
            .take(2)
            .all(|d| !has(&d.effects, is_ensure))
    );
}

#[test]
fn rollback_routes_to_the_primary_then_removes_the_baseline() {
    let mut s = spec_with("gatewayapi", STEPS);
    s.analysis.metrics = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}),
        )
        .unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(100.0));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.tick();
    assert_eq!(w.routes(), split(80, 10, 10));
    w.set_metric("request-success-rate", Ok(90.0));
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    let route = position(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY));
    let remove = position(&d.effects, |e| *e == Effect::RemoveBaseline);
    assert!(route < remove, "{:?}", d.effects);
    assert!(w.observed.baseline.is_none());
}

#[test]
fn a_refused_route_write_keeps_the_baseline_until_no_traffic_reaches_it() {
    let (mut w, _) = started(STEPS);
    w.tick();
    assert_eq!(w.routes(), split(80, 10, 10));
    w.refuse = |e| matches!(e, Effect::SetRoutes(_));
    w.action = Some("abort".into());
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert!(
        w.observed.baseline.is_some(),
        "routes still send it traffic"
    );
    w.action = None;
    w.refuse = |_| false;
    let d = w.tick();
    let route = position(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY));
    let remove = position(&d.effects, |e| *e == Effect::RemoveBaseline);
    assert!(route < remove, "{:?}", d.effects);
    assert!(w.observed.baseline.is_none());
}

#[test]
fn a_newer_revision_restarts_with_a_fresh_baseline() {
    let (mut w, _) = started(STEPS);
    w.tick();
    w.new_revision("v3");
    let d = w.tick();
    assert!(has(&d.effects, |e| *e == Effect::RemoveBaseline));
    assert_eq!(w.routes(), Routes::PRIMARY);
    let d = w.next_interval();
    assert!(
        has(&d.effects, is_ensure),
        "the new analysis starts its own baseline"
    );
}

#[test]
fn deletion_finalizes_the_routes_then_removes_the_baseline() {
    let (mut w, _) = started(STEPS);
    w.tick();
    w.spec.revert_on_deletion = Some(true);
    w.deleting = true;
    w.tick();
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Terminated);
    let fin = position(&d.effects, |e| *e == Effect::FinalizeRouting);
    let remove = position(&d.effects, |e| *e == Effect::RemoveBaseline);
    assert!(fin < remove, "{:?}", d.effects);
}

#[test]
fn the_judge_compares_with_the_baseline_when_there_is_one() {
    let s = spec_with("gatewayapi", STEPS);
    let other = other_side(&s);
    assert_eq!(other.side, "baseline");
    assert_eq!(other.workload, "podinfo-baseline");
    let s = spec_with("gatewayapi", "interval: 1m\nthreshold: 1\nstepWeight: 10");
    assert_eq!(other_side(&s).workload, "podinfo-primary");
}

#[test]
fn the_invariants_catch_traffic_to_a_baseline_that_is_not_ready() {
    let (w, _) = started(STEPS);
    let mut observed = w.observed.clone();
    observed.baseline.as_mut().unwrap().readiness = Readiness::NotReady("x".into());
    let input = Input {
        observed: &observed,
        ..w.input()
    };
    let bad = Decision {
        status: w.status.clone(),
        effects: vec![Effect::SetRoutes(split(80, 10, 10))],
        requeue_after: None,
    };
    let broken = invariants::check(&input, &bad);
    assert!(broken.iter().any(|b| b.contains("not ready")), "{broken:?}");
    let uneven = Decision {
        effects: vec![Effect::SetRoutes(split(70, 10, 20))],
        ..bad.clone()
    };
    let broken = invariants::check(&w.input(), &uneven);
    assert!(
        broken.iter().any(|b| b.contains("other than the canary's")),
        "{broken:?}"
    );
    let removed = Decision {
        effects: vec![Effect::RemoveBaseline],
        ..bad
    };
    let mut routed = w.observed.clone();
    routed.routes = Some(split(80, 10, 10));
    let input = Input {
        observed: &routed,
        ..w.input()
    };
    let broken = invariants::check(&input, &removed);
    assert!(
        broken.iter().any(|b| b.contains("removed while")),
        "{broken:?}"
    );
}

#[test]
fn an_operator_abort_removes_the_baseline_in_the_same_tick() {
    let (mut w, _) = started(STEPS);
    w.tick();
    w.action = Some("abort".into());
    let d = w.tick();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    let route = position(&d.effects, |e| *e == Effect::SetRoutes(Routes::PRIMARY));
    let remove = position(&d.effects, |e| *e == Effect::RemoveBaseline);
    assert!(route < remove, "{:?}", d.effects);
    assert_eq!(
        d.effects
            .iter()
            .filter(|e| **e == Effect::RemoveBaseline)
            .count(),
        1
    );
}

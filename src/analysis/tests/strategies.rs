//! Strategies (canary, A/B, blue/green, mirroring), threshold counting, gates and the onNoData
//! policy, each test named after the behaviour.

use super::*;
use crate::api::Verdict;

fn with_success_rate(mut s: CanarySpec) -> CanarySpec {
    s.analysis.metrics = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}),
        )
        .unwrap(),
    ]);
    s
}

/// Starts a rollout of v2 and collects the canary weight after each tick until promotion.
fn weights_until_promote(w: &mut World) -> Vec<i32> {
    w.new_revision("v2");
    w.tick();
    let mut seen = vec![w.weight()];
    for _ in 0..50 {
        w.next_interval();
        if w.status.phase != CanaryPhase::Progressing {
            break;
        }
        seen.push(w.weight());
    }
    assert_eq!(w.status.phase, CanaryPhase::Promoting);
    seen
}

#[test]
fn step_weight_20_max_50_goes_0_20_40_50_then_promotes() {
    let mut w = World::initialized(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 50",
    ));
    assert_eq!(weights_until_promote(&mut w), vec![0, 20, 40, 50]);
    assert_eq!(w.primary_revision.as_deref(), Some("v2"));
}

#[test]
fn step_weights_1_2_10_80_are_the_canary_weights() {
    let mut w = World::initialized(spec(
        "interval: 1m\nthreshold: 2\nstepWeights: [1, 2, 10, 80]",
    ));
    assert_eq!(weights_until_promote(&mut w), vec![0, 1, 2, 10, 80]);
}

#[test]
fn step_weights_ending_above_100_cap_at_100() {
    let mut w = World::initialized(spec("interval: 1m\nthreshold: 2\nstepWeights: [50, 120]"));
    assert_eq!(weights_until_promote(&mut w), vec![0, 50, 100]);
    assert_eq!(w.routes(), Routes::split(100));
}

#[test]
fn step_weight_promotion_50_gives_primary_50_then_100() {
    let mut w = World::initialized(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 100\nstepWeightPromotion: 50",
    ));
    weights_until_promote(&mut w);
    let mut primary = Vec::new();
    for _ in 0..5 {
        w.next_interval();
        primary.push(w.routes().primary);
        if w.status.phase != CanaryPhase::Promoting {
            break;
        }
    }
    assert_eq!(primary, vec![50, 100]);
    assert_eq!(w.status.phase, CanaryPhase::Finalising);
}

#[test]
fn ab_testing_runs_exactly_iterations_checked_ticks() {
    let mut s = with_success_rate(spec(
        "interval: 1m\nthreshold: 2\niterations: 3\nmatch:\n- headers:\n    x-canary: {exact: insider}",
    ));
    s.analysis.webhooks = Some(vec![hook("load", "rollout")]);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(100.0));
    w.set_hook("load", HookOutcome::Success);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert!(w.routes().ab_match, "A/B routes not set on the start tick");
    assert_eq!(w.routes().canary, 0);
    let mut checked = 0;
    while w.status.phase == CanaryPhase::Progressing {
        w.hook_calls.clear();
        w.next_interval();
        assert!(w.hook_calls.contains(&HookType::Rollout));
        checked += 1;
        assert!(checked < 10);
    }
    assert_eq!(checked, 3);
    assert_eq!(w.status.iterations, 3);
    assert_eq!(w.status.phase, CanaryPhase::Promoting);
}

#[test]
fn blue_green_routes_to_the_canary_only_after_the_iterations_then_promotes() {
    let mut w = World::initialized(spec_with(
        "kubernetes",
        "interval: 1m\nthreshold: 2\niterations: 2",
    ));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.next_interval();
    assert_eq!(w.routes(), Routes::PRIMARY);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Promoting);
    assert_eq!(w.routes(), Routes::CANARY);
    assert!(
        position(&d.effects, |e| *e == Effect::SetRoutes(Routes::CANARY))
            < position(&d.effects, |e| *e == Effect::Promote)
    );
    w.tick();
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert_eq!(w.status.phase, CanaryPhase::Finalising);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Succeeded);
}

#[test]
fn mirroring_makes_the_first_step_a_mirrored_one() {
    let mut w = World::initialized(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 40\nmirror: true",
    ));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(
        w.routes(),
        Routes {
            baseline: 0,
            primary: 100,
            canary: 0,
            mirror: true,
            ab_match: false
        }
    );
    w.next_interval();
    assert_eq!(w.routes(), Routes::split(20));
    w.next_interval();
    assert_eq!(w.routes(), Routes::split(40));
}

#[test]
fn threshold_2_rolls_back_on_the_second_failing_tick_not_the_third() {
    let mut w = World::initialized(with_success_rate(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 10",
    )));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.set_metric("request-success-rate", Ok(90.0));
    let d = w.next_interval();
    assert_eq!(
        (d.status.phase, d.status.failed_checks),
        (CanaryPhase::Progressing, 1)
    );
    assert_eq!(w.weight(), 10, "a failing tick advanced the weight");
    let d = w.next_interval();
    assert_eq!(
        (d.status.phase, d.status.failed_checks),
        (CanaryPhase::Failed, 2)
    );
    assert_eq!(w.routes(), Routes::PRIMARY);
    assert!(!w.target_replicas_up);
    let record = d.status.decisions.last().unwrap();
    assert_eq!(record.checks[0].value, Some(90.0));
    assert!(
        record
            .action
            .starts_with("roll back: failed checks threshold reached 2"),
        "{}",
        record.action
    );
}

#[test]
fn waiting_promotion_keeps_checking_and_can_still_fail() {
    let mut s = with_success_rate(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50",
    ));
    s.analysis.webhooks = Some(vec![hook("approve", "confirm-promotion")]);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(100.0));
    w.set_hook("approve", HookOutcome::Status(403));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::WaitingPromotion);
    w.hook_calls.clear();
    w.set_metric("request-success-rate", Ok(50.0));
    w.next_interval();
    assert!(
        !w.hook_calls.contains(&HookType::ConfirmPromotion),
        "confirm-promotion is asked only after the tick's checks pass"
    );
    assert_eq!(w.status.failed_checks, 1);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
}

#[test]
fn waiting_promotion_promotes_once_confirmed() {
    let mut s = spec("interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50");
    s.analysis.webhooks = Some(vec![hook("approve", "confirm-promotion")]);
    let mut w = World::initialized(s);
    w.set_hook("approve", HookOutcome::Status(500));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(
        w.next_interval().status.phase,
        CanaryPhase::WaitingPromotion
    );
    w.set_hook("approve", HookOutcome::Success);
    assert_eq!(w.next_interval().status.phase, CanaryPhase::Promoting);
}

#[test]
fn confirm_traffic_increase_holds_the_weight_without_counting_a_failure() {
    let mut s = spec("interval: 1m\nthreshold: 2\nstepWeight: 10");
    s.analysis.webhooks = Some(vec![hook("more", "confirm-traffic-increase")]);
    let mut w = World::initialized(s);
    w.set_hook("more", HookOutcome::Success);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    assert_eq!(w.weight(), 10);
    w.set_hook("more", HookOutcome::Status(423));
    w.next_interval();
    w.next_interval();
    assert_eq!((w.weight(), w.status.failed_checks), (10, 0));
    w.set_hook("more", HookOutcome::Success);
    w.next_interval();
    assert_eq!(w.weight(), 20);
}

#[test]
fn pre_rollout_failure_counts_and_is_retried_each_interval() {
    let mut s = spec("interval: 1m\nthreshold: 3\nstepWeight: 10");
    s.analysis.webhooks = Some(vec![hook("smoke", "pre-rollout")]);
    let mut w = World::initialized(s);
    w.set_hook(
        "smoke",
        HookOutcome::Unreachable("connection refused".into()),
    );
    w.new_revision("v2");
    w.tick();
    let d = w.next_interval();
    assert_eq!((d.status.failed_checks, d.status.canary_weight), (1, 0));
    assert!(
        w.tick().effects.is_empty(),
        "a failed pre-rollout was retried before the interval"
    );
    w.set_hook("smoke", HookOutcome::Success);
    assert_eq!(w.next_interval().status.canary_weight, 10);
}

#[test]
fn no_data_fails_by_default_as_flagger() {
    let mut w = World::initialized(with_success_rate(spec(
        "interval: 1m\nthreshold: 5\nstepWeight: 10",
    )));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.set_metric("request-success-rate", Err(MetricFailure::NoData));
    let d = w.next_interval();
    assert_eq!(d.status.failed_checks, 1);
    assert_eq!(
        d.status.decisions.last().unwrap().checks[0].verdict,
        Verdict::Fail
    );
}

#[test]
fn no_data_skip_passes_and_hold_holds_without_failing() {
    for (policy, weight_after, verdict) in [
        ("skip", 20, Verdict::Skipped),
        ("hold", 10, Verdict::NoData),
    ] {
        let mut w = World::initialized(with_success_rate(spec(&format!(
            "interval: 1m\nthreshold: 5\nstepWeight: 10\nonNoData: {policy}"
        ))));
        w.new_revision("v2");
        w.tick();
        w.next_interval();
        w.set_metric("request-success-rate", Err(MetricFailure::NoData));
        let d = w.next_interval();
        assert_eq!(
            (d.status.failed_checks, d.status.canary_weight),
            (0, weight_after),
            "{policy}"
        );
        assert_eq!(
            d.status.decisions.last().unwrap().checks[0].verdict,
            verdict,
            "{policy}"
        );
    }
}

#[test]
fn a_query_error_is_a_failure_distinct_from_no_data() {
    let mut w = World::initialized(with_success_rate(spec(
        "interval: 1m\nthreshold: 5\nstepWeight: 10\nonNoData: skip",
    )));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.set_metric(
        "request-success-rate",
        Err(MetricFailure::QueryError("parse error at char 3".into())),
    );
    let d = w.next_interval();
    assert_eq!(d.status.failed_checks, 1);
    let check = &d.status.decisions.last().unwrap().checks[0];
    assert_eq!(
        check.message.as_deref(),
        Some("query failed: parse error at char 3")
    );
}

#[test]
fn rollback_hook_during_progressing_rolls_back_at_the_next_tick() {
    let mut s = spec("interval: 1m\nthreshold: 5\nstepWeight: 10");
    s.analysis.webhooks = Some(vec![hook("panic", "rollback")]);
    let mut w = World::initialized(s);
    w.set_hook("panic", HookOutcome::Status(404));
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w.set_hook("panic", HookOutcome::Success);
    let d = w.next_interval();
    assert_eq!(d.status.phase, CanaryPhase::Failed);
    assert_eq!(w.routes(), Routes::PRIMARY);
}

#[test]
fn metrics_are_queried_only_when_a_step_is_due() {
    let mut w = World::initialized(with_success_rate(spec(
        "interval: 1m\nthreshold: 5\nstepWeight: 10",
    )));
    w.new_revision("v2");
    w.tick();
    assert!(!w.metrics_due(), "no metrics before traffic");
    w.next_interval();
    assert!(!w.metrics_due(), "re-entry right after a step");
    w.now += chrono::Duration::seconds(59);
    assert!(!w.metrics_due());
    w.now += chrono::Duration::seconds(1);
    assert!(w.metrics_due());
}

#[test]
fn session_affinity_cookies_rotate_per_rollout_and_retire_at_the_end() {
    let s = spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 50\nmaxWeight: 50\nsessionAffinity: {cookieName: canary, primaryCookieName: primary}",
    );
    let mut w = World::initialized(s);
    w.new_revision("v2");
    w.tick();
    let cookie = w
        .status
        .session_affinity_cookie
        .clone()
        .expect("cookie minted");
    assert!(cookie.starts_with("canary="));
    let value = cookie.trim_start_matches("canary=");
    assert_eq!(
        w.status.primary_session_affinity_cookie.as_deref(),
        Some(format!("primary={value}").as_str())
    );
    w.next_interval();
    w.next_interval();
    w.tick();
    w.next_interval();
    assert_eq!(w.status.phase, CanaryPhase::Succeeded);
    assert_eq!(w.status.session_affinity_cookie, None);
    assert_eq!(
        w.status.previous_session_affinity_cookie.as_deref(),
        Some(cookie.as_str())
    );
}

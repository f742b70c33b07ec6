//! Window layout and per-analysis judgement of the replay.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::*;

fn spec(analysis_yaml: &str) -> CanarySpec {
    let indented: String = analysis_yaml.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!(
        "provider: istio\ntargetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\nservice: {{port: 9898}}\nprogressDeadlineSeconds: 180\nanalysis:\n{indented}"
    );
    serde_saphyr::from_str(&text).unwrap()
}

/// Three weights, threshold 2, success rate >= 99.
const CANARY: &str = "interval: 1m\nthreshold: 2\nstepWeights: [10, 50, 100]\nmetrics:\n- name: request-success-rate\n  thresholdRange: {min: 99}";

fn t(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, minute, 0).unwrap()
}

/// One tick per value, a minute apart; None is no data.
fn ticks(values: &[Option<f64>]) -> Vec<TickValues> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| TickValues {
            at: t(i as u32),
            metrics: [(
                "request-success-rate".to_string(),
                v.ok_or(MetricFailure::NoData),
            )]
            .into(),
        })
        .collect()
}

fn plan(s: &CanarySpec) -> Plan {
    Plan::new(s, "istio")
}

#[test]
fn ticks_lie_at_the_interval_from_from_and_stop_before_to() {
    let times = tick_times(t(0), t(5), Duration::from_secs(120));
    assert_eq!(times, vec![t(0), t(2), t(4)]);
    assert!(tick_times(t(5), t(5), Duration::from_secs(60)).is_empty());
    assert!(tick_times(t(0), t(5), Duration::ZERO).is_empty());
}

#[test]
fn steps_to_promote_follow_the_strategy() {
    assert_eq!(checks_to_promote(&plan(&spec(CANARY))), 3);
    let mirrored = spec("interval: 1m\nthreshold: 1\nmirror: true\nstepWeight: 25\nmaxWeight: 50");
    assert_eq!(checks_to_promote(&plan(&mirrored)), 3, "mirror, 25, 50");
    let bg = spec("interval: 1m\nthreshold: 1\niterations: 7");
    assert_eq!(checks_to_promote(&plan(&bg)), 7);
}

#[test]
fn quiet_history_is_laid_into_consecutive_promotions_and_an_unfinished_tail() {
    let s = spec(CANARY);
    let reports = replay(&s, &plan(&s), &ticks(&[Some(100.0); 7]));
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Promoted, Outcome::Promoted, Outcome::Unfinished]
    );
    assert_eq!(
        reports[1].ticks[0].at,
        t(3),
        "the second starts where the first ended"
    );
    assert_eq!(reports[2].ticks.len(), 1);
    assert_eq!(reports[0].ticks[2].passed, 3);
}

#[test]
fn a_failure_below_the_threshold_costs_a_tick_and_the_one_reaching_it_rolls_back() {
    let s = spec(CANARY);
    // Analysis 1: pass, fail (1/2), pass, pass -> promoted after 4 ticks.
    // Analysis 2: fail, pass, fail (2/2) -> rolled back at minute 6.
    let values = [100.0, 90.0, 100.0, 100.0, 95.5, 100.0, 97.0, 100.0];
    let reports = replay(&s, &plan(&s), &ticks(&values.map(Some)));
    assert_eq!(reports[0].outcome, Outcome::Promoted);
    assert_eq!(reports[0].ticks.len(), 4);
    assert_eq!(
        reports[0].ticks[1].result,
        TickResult::Failed("request-success-rate 90.00 not >= 99".into())
    );
    assert_eq!(
        reports[1].outcome,
        Outcome::RolledBack {
            at: t(6),
            check: "request-success-rate".into(),
            reason: "request-success-rate 97.00 not >= 99".into(),
        }
    );
    assert_eq!(reports[1].ticks.last().unwrap().failed_checks, 2);
    let last = &reports[1].ticks[2].records[0];
    assert_eq!(
        (last.value, last.bound.as_deref()),
        (Some(97.0), Some(">= 99"))
    );
    assert_eq!(reports[2].outcome, Outcome::Unfinished);
}

#[test]
fn no_data_follows_on_no_data() {
    // Default (fail): no data is a failed check.
    let s = spec(CANARY);
    let r = evaluate_analysis(&s, &plan(&s), &ticks(&[None, None]));
    assert!(matches!(r.outcome, Outcome::RolledBack { at, .. } if at == t(1)));
    // skip: no data passes.
    let s = spec(&format!("{CANARY}\nonNoData: skip"));
    let r = evaluate_analysis(&s, &plan(&s), &ticks(&[None, None, None]));
    assert_eq!(r.outcome, Outcome::Promoted);
    // hold: no step and no failure, until progressDeadlineSeconds (180 s) of holding.
    let s = spec(&format!("{CANARY}\nonNoData: hold"));
    let r = evaluate_analysis(
        &s,
        &plan(&s),
        &ticks(&[Some(100.0), None, None, None, None]),
    );
    assert_eq!(r.ticks.len(), 5);
    assert_eq!(r.ticks[3].failed_checks, 0);
    match &r.outcome {
        Outcome::RolledBack { at, check, reason } => {
            assert_eq!((*at, check.as_str()), (t(4), "request-success-rate"));
            assert!(reason.contains("without a verdict"), "{reason}");
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn a_duration_bound_is_a_maximum_and_the_first_failing_check_is_named() {
    let s = spec(
        "interval: 1m\nthreshold: 1\niterations: 2\nmetrics:\n- name: request-success-rate\n  threshold: 99\n- name: latency\n  thresholdRange: {max: 500}",
    );
    let tick = |sr: f64, lat: f64| TickValues {
        at: t(0),
        metrics: [
            ("request-success-rate".to_string(), Ok(sr)),
            ("latency".to_string(), Ok(lat)),
        ]
        .into(),
    };
    let r = evaluate_analysis(&s, &plan(&s), &[tick(99.5, 120.0), tick(99.9, 730.0)]);
    assert!(
        matches!(&r.outcome, Outcome::RolledBack { check, reason, .. }
            if check == "latency" && reason == "latency 730.00 not <= 500"),
        "{:?}",
        r.outcome
    );
}

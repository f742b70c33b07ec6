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
            samples: BTreeMap::new(),
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
        samples: BTreeMap::new(),
    };
    let r = evaluate_analysis(&s, &plan(&s), &[tick(99.5, 120.0), tick(99.9, 730.0)]);
    assert!(
        matches!(&r.outcome, Outcome::RolledBack { check, reason, .. }
            if check == "latency" && reason == "latency 730.00 not <= 500"),
        "{:?}",
        r.outcome
    );
}

/// Iterations 3, threshold 2; a fixed 0.2 s bound on the canary's mean latency and the per-pod
/// latency judged against the primary.
const JUDGED: &str = "interval: 1m\nthreshold: 2\niterations: 3\njudge: {minEffect: 0.1, maxPValue: 0.05, minSamples: 5}\nmetrics:\n- name: latency-bound\n  thresholdRange: {max: 0.2}\n  query: q\n- name: latency\n  query: q\n  compare: {direction: increase}";

/// Eight pods per side around `canary` and `primary` seconds (±3.5 %), the mean under its bound.
fn judged_tick(minute: u32, canary: f64, primary: f64) -> TickValues {
    let pods = |s: f64| -> Vec<f64> {
        (0..8)
            .map(|i| s * (1.0 + (f64::from(i) - 3.5) * 0.01))
            .collect()
    };
    TickValues {
        at: t(minute),
        metrics: [("latency-bound".to_string(), Ok(canary))].into(),
        samples: [(
            "latency".to_string(),
            Ok(Samples {
                canary: pods(canary),
                baseline: pods(primary),
            }),
        )]
        .into(),
    }
}

#[test]
fn a_compared_metric_is_judged_per_tick_and_rolls_back_under_the_bound() {
    let s = spec(JUDGED);
    // Alike for two ticks, then the canary's pods are 20 % slower (still under 0.2 s).
    let values = [
        judged_tick(0, 0.100, 0.100),
        judged_tick(1, 0.100, 0.100),
        judged_tick(2, 0.120, 0.100),
        judged_tick(3, 0.120, 0.100),
    ];
    let r = evaluate_analysis(&s, &plan(&s), &values);
    match &r.outcome {
        Outcome::RolledBack { at, check, reason } => {
            assert_eq!((*at, check.as_str()), (t(3), "latency"));
            assert!(
                reason.starts_with("latency: canary median 0.1200 vs primary 0.1000: +20.0%"),
                "{reason}"
            );
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    let at = |k: usize, name: &str| {
        r.ticks[k]
            .records
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        at(2, "latency-bound").verdict,
        Verdict::Pass,
        "the bound does not catch it"
    );
    let alike = at(0, "latency");
    assert_eq!(alike.verdict, Verdict::Pass);
    let n = alike.judge.unwrap();
    assert_eq!(
        (n.effect, n.p_value),
        (Some(0.0), Some(1.0)),
        "identical pods: no difference"
    );
    let slower = at(2, "latency");
    assert_eq!(slower.verdict, Verdict::Fail);
    let n = slower.judge.unwrap();
    assert_eq!(
        (n.canary_samples, n.baseline_samples, n.baseline.as_str()),
        (8, 8, "primary")
    );
    assert!((n.effect.unwrap() - 0.2).abs() < 1e-9, "{n:?}");
    // Every canary pod above every primary pod: the exact p is 2 / C(16, 8).
    assert!((n.p_value.unwrap() - 2.0 / 12870.0).abs() < 1e-12, "{n:?}");
    assert_eq!(r.ticks[2].result, TickResult::Failed(slower_reason(&r, 2)));
}

fn slower_reason(r: &AnalysisReport, k: usize) -> String {
    match &r.ticks[k].result {
        TickResult::Failed(why) => why.clone(),
        other => panic!("tick {k} did not fail: {other:?}"),
    }
}

#[test]
fn alike_sides_promote_and_too_few_samples_follow_on_no_data() {
    let s = spec(JUDGED);
    let alike: Vec<_> = (0..3).map(|m| judged_tick(m, 0.100, 0.101)).collect();
    assert_eq!(
        evaluate_analysis(&s, &plan(&s), &alike).outcome,
        Outcome::Promoted
    );
    // Four canary pods with minSamples 5: no data, a failed check under the default policy,
    // held under `onNoData: hold`.
    let mut few = judged_tick(0, 0.100, 0.100);
    if let Some(Ok(samples)) = few.samples.get_mut("latency") {
        samples.canary.truncate(4);
    }
    let r = evaluate_analysis(&s, &plan(&s), std::slice::from_ref(&few));
    let rec = r.ticks[0]
        .records
        .iter()
        .find(|c| c.name == "latency")
        .unwrap();
    assert_eq!(rec.verdict, Verdict::Fail);
    assert_eq!(
        rec.message.as_deref(),
        Some("too few samples: canary 4, primary 8 (minSamples 5)")
    );
    let held = spec(&format!("{JUDGED}\nonNoData: hold"));
    let r = evaluate_analysis(&held, &plan(&held), &[few]);
    assert!(
        matches!(&r.ticks[0].result, TickResult::Held(why) if why == "latency has no data"),
        "{:?}",
        r.ticks[0].result
    );
    // A tick without the metric's samples at all (not fetched) is not a pass.
    let mut missing = judged_tick(0, 0.100, 0.100);
    missing.samples.clear();
    let r = evaluate_analysis(&s, &plan(&s), &[missing]);
    assert!(
        matches!(r.ticks[0].result, TickResult::Failed(_)),
        "{:?}",
        r.ticks[0].result
    );
}

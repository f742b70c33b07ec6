//! The statistical judge in the core: samples of both sides decide Pass, Fail or NoData; a failed
//! judge counts toward the threshold like a failed check; the record carries the numbers and says
//! the canary was compared with the primary.

use super::*;
use crate::api::{CheckRecord, Verdict};

const JUDGED: &str = "interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 40
metrics:
- name: latency
  query: 'latency{pod=~\"{{ target }}-.*\"}'
  compare: {direction: increase}
judge: {minEffect: 0.1, maxPValue: 0.05, minSamples: 5}";

/// Ten per-pod values around `center` with a spread of ±4 %.
fn pods(center: f64) -> Vec<f64> {
    (0..10)
        .map(|i| center * (1.0 + (i as f64 - 4.5) * 0.009))
        .collect()
}

fn samples(canary: Vec<f64>, baseline: Vec<f64>) -> Result<Samples, MetricFailure> {
    Ok(Samples { canary, baseline })
}

fn record(w: &World) -> CheckRecord {
    w.status
        .decisions
        .iter()
        .rev()
        .flat_map(|d| d.checks.iter())
        .find(|c| c.name == "latency")
        .cloned()
        .unwrap_or_else(|| panic!("the judged metric is recorded: {:?}", w.status.decisions))
}

/// A rollout of `spec` at its first weight step (no checks before traffic reaches the canary).
fn rolling(spec: CanarySpec, s: Result<Samples, MetricFailure>) -> World {
    let mut w = World::initialized(spec);
    w.samples.insert("latency".into(), s);
    w.new_revision("v2");
    w.tick();
    w.next_interval();
    w
}

fn progressing(canary: Vec<f64>, baseline: Vec<f64>) -> World {
    rolling(spec(JUDGED), samples(canary, baseline))
}

#[test]
fn a_canary_worse_by_a_real_margin_fails_and_rolls_back_at_the_threshold() {
    // 20 % slower on every pod: far below any fixed bound one would set, but a clear shift.
    let mut w = progressing(pods(120.0), pods(100.0));
    w.next_interval();
    let r = record(&w);
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    let numbers = r.judge.clone().unwrap();
    assert_eq!(numbers.baseline, "primary");
    assert_eq!(
        r.bound.as_deref(),
        Some("vs primary: no increase of 10% or more at p < 0.05")
    );
    assert_eq!((numbers.canary_samples, numbers.baseline_samples), (10, 10));
    assert!((numbers.effect.unwrap() - 0.2).abs() < 1e-9);
    assert!(numbers.p_value.unwrap() < 0.001, "{numbers:?}");
    assert_eq!(r.value, numbers.canary_median);
    assert_eq!(w.status.failed_checks, 1);
    let d = w.next_interval();
    assert_eq!(
        d.status.phase,
        CanaryPhase::Failed,
        "{:?}",
        d.status.decisions
    );
}

#[test]
fn alike_sides_pass_and_the_canary_is_promoted() {
    let mut w = progressing(pods(100.0), pods(100.5));
    for _ in 0..8 {
        w.next_interval();
    }
    assert_eq!(w.status.failed_checks, 0);
    assert_eq!(record(&w).verdict, Verdict::Pass);
    assert!(
        w.status
            .decisions
            .iter()
            .flat_map(|d| &d.checks)
            .all(|c| c.verdict == Verdict::Pass),
        "{:?}",
        w.status.decisions
    );
    assert!(matches!(
        w.status.phase,
        CanaryPhase::Promoting | CanaryPhase::Finalising | CanaryPhase::Succeeded
    ));
}

#[test]
fn a_significant_change_smaller_than_min_effect_passes() {
    // 3 % slower everywhere: significant, but under minEffect 10 %.
    let mut w = progressing(pods(103.0), pods(100.0));
    w.next_interval();
    let r = record(&w);
    assert_eq!(r.verdict, Verdict::Pass);
    assert!(r.judge.unwrap().p_value.unwrap() < 0.05);
}

#[test]
fn a_change_in_the_harmless_direction_passes() {
    // direction increase: a faster canary is good news.
    let mut w = progressing(pods(70.0), pods(100.0));
    w.next_interval();
    assert_eq!(record(&w).verdict, Verdict::Pass);
    let mut s = spec(&JUDGED.replace("increase", "decrease"));
    s.analysis.judge = None;
    let mut w = rolling(s, samples(pods(70.0), pods(100.0)));
    w.next_interval();
    assert_eq!(
        record(&w).verdict,
        Verdict::Fail,
        "defaults: 10 %, p < 0.05, 5 samples"
    );
}

#[test]
fn too_few_samples_is_no_data_under_the_on_no_data_policy() {
    let mut w = progressing(pods(200.0)[..3].to_vec(), pods(100.0));
    w.next_interval();
    let r = record(&w);
    assert_eq!(
        r.verdict,
        Verdict::Fail,
        "onNoData defaults to fail, as Flagger"
    );
    assert_eq!(
        r.message.as_deref(),
        Some("too few samples: canary 3, primary 10 (minSamples 5)")
    );
    let s = spec(&format!("{JUDGED}\nonNoData: hold"));
    let mut w = rolling(s, samples(vec![f64::NAN; 8], pods(100.0)));
    w.next_interval();
    let r = record(&w);
    assert_eq!(
        r.verdict,
        Verdict::NoData,
        "NaN samples (pods without traffic) do not count"
    );
    assert_eq!(r.judge.unwrap().canary_samples, 0);
    assert_eq!(w.status.failed_checks, 0);
}

#[test]
fn an_unreachable_provider_follows_on_provider_error() {
    let mut w = progressing(vec![], vec![]);
    w.samples.insert(
        "latency".into(),
        Err(MetricFailure::Unreachable("connection refused".into())),
    );
    w.next_interval();
    let r = record(&w);
    assert_eq!(r.verdict, Verdict::Unreachable);
    assert_eq!(w.status.failed_checks, 0);
}

#[test]
fn the_other_side_is_the_primary_until_a_baseline_exists() {
    let side = other_side(&spec(JUDGED));
    assert_eq!(
        (side.side, side.workload.as_str()),
        ("primary", "podinfo-primary")
    );
}

//! The start tick's per-Canary offset: canaries changed together do not step together.

use super::*;
use crate::analysis::schedule::{start_offset, step_interval};

#[test]
fn the_offset_is_a_fixed_share_of_at_most_three_quarters_of_the_interval() {
    let interval = Duration::from_secs(60);
    let offsets: Vec<Duration> = (0..1000)
        .map(|i| start_offset("apps", &format!("app-{i}"), interval))
        .collect();
    assert!(offsets.iter().all(|o| *o <= interval.mul_f64(0.75)));
    // The same Canary always gets the same offset (a restarted controller agrees).
    assert_eq!(
        start_offset("apps", "app-7", interval),
        start_offset("apps", "app-7", interval)
    );
    assert_ne!(
        start_offset("apps", "app-7", interval),
        start_offset("other", "app-7", interval),
        "the namespace counts"
    );
    // Spread over the whole range: each 15 s of the 45 s gets a fair share of 1,000 names.
    for k in 0..3u64 {
        let (lo, hi) = (
            Duration::from_secs(15 * k),
            Duration::from_secs(15 * (k + 1)),
        );
        let n = offsets.iter().filter(|o| **o >= lo && **o < hi).count();
        assert!((250..=420).contains(&n), "{n} offsets in [{lo:?}, {hi:?})");
    }
}

#[test]
fn the_start_tick_comes_early_by_the_offset_and_later_steps_a_full_interval_apart() {
    let mut w = World::initialized(spec(
        "interval: 1m\nthreshold: 2\nstepWeight: 10\nmaxWeight: 30",
    ));
    w.new_revision("v2");
    w.tick();
    assert_eq!(w.status.phase, CanaryPhase::Progressing);
    assert!(!w.status.analysis_started);
    let offset = start_offset("test", "podinfo", w.interval());
    let first = w.interval() - offset;
    assert_eq!(
        step_interval(&w.status, &w.plan(), "test", "podinfo"),
        first
    );
    // A moment before the start tick is due: nothing happens, and the requeue lands on it.
    let d = w.tick_after(first - Duration::from_secs(1));
    assert!(!w.status.analysis_started);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(1)));
    w.tick_after(Duration::from_secs(1));
    assert!(
        w.status.analysis_started,
        "the start tick is due at {first:?}"
    );
    assert_eq!(w.status.canary_weight, 10);
    // From then on, steps are one full interval apart.
    assert_eq!(
        step_interval(&w.status, &w.plan(), "test", "podinfo"),
        w.interval()
    );
    w.tick_after(w.interval() - Duration::from_secs(1));
    assert_eq!(w.status.canary_weight, 10, "not due before a full interval");
    w.tick_after(Duration::from_secs(1));
    assert_eq!(w.status.canary_weight, 20);
}

#[test]
fn other_phases_count_a_full_interval() {
    let plan = Plan::new(&spec("interval: 1m\nthreshold: 2"), "istio");
    for phase in [
        CanaryPhase::Waiting,
        CanaryPhase::Promoting,
        CanaryPhase::Finalising,
        CanaryPhase::Succeeded,
    ] {
        let status = CanaryStatus {
            phase,
            ..Default::default()
        };
        assert_eq!(
            step_interval(&status, &plan, "test", "podinfo"),
            plan.interval
        );
    }
}

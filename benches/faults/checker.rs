//! The invariant checker: every ~150 ms it reads every app straight from the cluster's store (no
//! API request: it works during outages and adds no load) and looks for
//! * traffic to a canary (or a primary) with no ready replica: the route gives the side a weight
//!   above 0 while its Deployment has `readyReplicas` 0. Counted once per episode (from the first
//!   sample that shows it until one that does not);
//! * the status weight going back within a rollout: the same `lastAppliedSpec`, Progressing or
//!   WaitingPromotion in both samples, and a lower `canaryWeight`. A rollback is not one: it leaves
//!   those phases (Failed);
//! * the route's canary weight going back within a rollout: lower but above 0 in the next sample,
//!   or down to 0 while the canary was ready and back above 0 later in the same analysis. A drop to
//!   0 while the canary has no ready replica is the controller withdrawing traffic on purpose, and
//!   a drop to 0 that ends in Failed is a rollback whose status write had not landed yet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin::sim::SimState;

use crate::ledger::{Invariant, Ledger};
use crate::snapshot::{AppView, read_all, short};

/// What the checker remembers of an app between samples.
#[derive(Default)]
struct Track {
    last: Option<AppView>,
    /// The canary (primary) side is in an episode of traffic with no ready replica.
    canary_episode: bool,
    primary_episode: bool,
    /// The route's canary weight dropped to 0 from this weight while the canary was ready; still
    /// unexplained (a rollback explains it, a rise within the same analysis makes it a going back).
    pending_drop: Option<(i64, String, f64)>,
}

/// Sample statistics for the report.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub samples: u64,
    /// Route drops to 0 while the canary had no ready replica (traffic withdrawn on purpose).
    pub withdrawals: u64,
    /// Route drops to 0 while ready that ended in a rollback.
    pub rollback_drops: u64,
    /// Route drops to 0 while ready that ended any other way (shown in the report).
    pub other_drops: u64,
}

fn same_analysis(a: &AppView, b: &AppView) -> bool {
    a.last_applied.is_some()
        && a.last_applied == b.last_applied
        && a.in_analysis()
        && b.in_analysis()
}

/// Evidence: what the chaos did in the last seconds before a violation.
fn around(ledger: &Ledger) -> String {
    format!(" | chaos in the last 10s: {}", ledger.recent(10.0))
}

/// Evidence for a violation that began at `since` (seconds since the start) and is only known
/// now: the chaos from 10 s before it began until now (a kill noted just after the sample that
/// saw it begin is part of the story).
fn since(ledger: &Ledger, since: f64) -> String {
    let events: Vec<String> = ledger
        .between(since - 10.0, ledger.now())
        .into_iter()
        .map(|(t, e)| format!("{t:.1}s {e}"))
        .collect();
    format!(" | chaos from 10s before: {}", events.join("; "))
}

/// Records a violation seen now, with the chaos that preceded it.
fn flag(ledger: &Ledger, invariant: Invariant, app: usize, what: String) {
    ledger.violate(invariant, Some(app), format!("{what}{}", around(ledger)));
}

fn check_traffic(i: usize, v: &AppView, t: &mut Track, ledger: &Ledger) {
    let (primary_w, canary_w) = v.route.unwrap_or((0, 0));
    let canary_bad = canary_w > 0 && v.target_ready == 0;
    if canary_bad && !t.canary_episode {
        flag(
            ledger,
            Invariant::CanaryTraffic,
            i,
            format!(
                "canary weight {canary_w} with no ready canary replica: {}",
                v.describe()
            ),
        );
    }
    t.canary_episode = canary_bad;
    // From the start: initialisation makes the routing only once the primary is ready.
    let primary_bad = primary_w > 0 && v.primary_ready == 0;
    if primary_bad && !t.primary_episode {
        flag(
            ledger,
            Invariant::PrimaryTraffic,
            i,
            format!(
                "primary weight {primary_w} with no ready primary replica: {}",
                v.describe()
            ),
        );
    }
    t.primary_episode = primary_bad;
}

fn check_weights(i: usize, v: &AppView, t: &mut Track, ledger: &Ledger, stats: &mut Stats) {
    let Some(prev) = t.last.as_ref() else { return };
    if !same_analysis(prev, v) {
        if t.pending_drop.take().is_some() {
            match v.phase.as_str() {
                "Failed" => stats.rollback_drops += 1,
                _ => stats.other_drops += 1,
            }
        }
        return;
    }
    if v.weight < prev.weight {
        flag(
            ledger,
            Invariant::StatusWeightBack,
            i,
            format!(
                "status weight {} -> {} in rev {}: {}",
                prev.weight,
                v.weight,
                short(v.last_applied.as_deref()),
                v.describe()
            ),
        );
    }
    let (Some((_, before)), Some((_, now))) = (prev.route, v.route) else {
        return;
    };
    if now < before && now > 0 {
        flag(
            ledger,
            Invariant::RouteWeightBack,
            i,
            format!("route canary weight {before} -> {now}: {}", v.describe()),
        );
    } else if now == 0 && before > 0 {
        if prev.target_ready == 0 || v.target_ready == 0 {
            stats.withdrawals += 1;
        } else {
            t.pending_drop = Some((before, v.describe(), ledger.now()));
        }
    } else if now > 0
        && let Some((from, at_drop, dropped)) = t.pending_drop.take()
    {
        let what = format!(
            "route canary weight {from} -> 0 at {dropped:.1}s with the canary ready ({at_drop}), then back to {now}: {}{}",
            v.describe(),
            since(ledger, dropped)
        );
        ledger.violate(Invariant::RouteWeightBack, Some(i), what);
    }
}

/// Samples every `every` until `stop` turns true; returns the statistics.
pub async fn run(
    state: Arc<Mutex<SimState>>,
    apps: usize,
    ledger: Arc<Ledger>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Stats {
    let mut tracks: Vec<Track> = (0..apps).map(|_| Track::default()).collect();
    let mut stats = Stats::default();
    loop {
        let views = read_all(&state, apps);
        stats.samples += 1;
        for (i, (v, t)) in views.into_iter().zip(tracks.iter_mut()).enumerate() {
            check_traffic(i, &v, t, &ledger);
            check_weights(i, &v, t, &ledger, &mut stats);
            t.last = Some(v);
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return stats,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

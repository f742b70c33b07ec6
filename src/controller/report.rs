//! What a reconcile tells the metrics (issue 9's families): Flagger's status encoding, the weight
//! by workload, promotions and rollbacks by strategy (counted on the transition, once), time
//! spent, the Canaries per namespace from the watch cache, and how late each analysis step was
//! taken, split by cause (issue 20). Reads only; decides nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Context;
use crate::api::{Canary, CanaryPhase, CanaryStatus};
use crate::telemetry::{CanaryLabels, CauseLabels, NamespaceLabels, OutcomeLabels, WorkloadLabels};

/// Flagger's `deployment_strategy` label for a spec.
pub fn strategy(canary: &Canary) -> &'static str {
    let a = &canary.spec.analysis;
    let mirror = a.mirror == Some(true);
    let weighted =
        a.step_weight.is_some() || a.step_weights.as_ref().is_some_and(|w| !w.is_empty());
    let provider = canary.spec.provider.as_deref().unwrap_or_default();
    if a.r#match.as_ref().is_some_and(|m| !m.is_empty()) {
        "ab_testing"
    } else if weighted && provider != "kubernetes" {
        if mirror { "canary_mirroring" } else { "canary" }
    } else if mirror {
        "blue_green_mirroring"
    } else {
        "blue_green"
    }
}

fn status_code(phase: CanaryPhase) -> i64 {
    match phase {
        CanaryPhase::Succeeded => 1,
        CanaryPhase::Failed => 2,
        _ => 0,
    }
}

/// Records one finished reconcile of `canary` whose status went from `before` to `after`.
pub fn record(
    ctx: &Context,
    canary: &Canary,
    before: &CanaryStatus,
    after: &CanaryStatus,
    took: Duration,
) {
    let t = &ctx.settings.telemetry;
    let name = canary.metadata.name.clone().unwrap_or_default();
    let namespace = canary.namespace_or_default();
    let who = CanaryLabels {
        name: name.clone(),
        namespace: namespace.clone(),
    };
    t.status.get_or_create(&who).set(status_code(after.phase));
    t.duration.get_or_create(&who).observe(took.as_secs_f64());
    t.weight
        .get_or_create(&WorkloadLabels {
            workload: canary.spec.target_ref.name.clone(),
            namespace: namespace.clone(),
        })
        .set(i64::from(after.canary_weight));
    if before.phase != after.phase
        && matches!(after.phase, CanaryPhase::Succeeded | CanaryPhase::Failed)
    {
        let labels = OutcomeLabels {
            name,
            namespace: namespace.clone(),
            deployment_strategy: strategy(canary).into(),
            analysis_status: if canary.spec.skip_analysis == Some(true) {
                "skipped"
            } else {
                "completed"
            }
            .into(),
        };
        let family = if after.phase == CanaryPhase::Succeeded {
            &t.successes
        } else {
            &t.failures
        };
        family.get_or_create(&labels).inc();
    }
    if let Some(store) = &ctx.caches.canaries {
        let count = store
            .state()
            .iter()
            .filter(|c| c.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .count();
        t.canaries
            .get_or_create(&NamespaceLabels { namespace })
            .set(count as i64);
    }
}

/// A step later than this is counted in `serin_late_steps` under its largest cause (the
/// benchmark's budget for step lateness).
pub const LATE: Duration = Duration::from_secs(1);

/// When a tick decided, and how much of its reconcile (so far) went to API calls.
pub struct StepTiming {
    /// The decision time (the time written into the decision record).
    pub now: DateTime<Utc>,
    /// From the start of the reconcile to `now`.
    pub in_reconcile: Duration,
    /// Of `in_reconcile`, the time with an API request in flight.
    pub api: Duration,
}

/// Records how late a committed tick took its analysis step, and why. The step fell due one
/// interval after the last (`last_step_time`); the delay splits into waiting for a reconcile
/// (`slot`: due until the reconcile started, or until a reconcile found the canary not ready),
/// `readiness` (from then, or from due, until the reconcile that found it ready started), and
/// the reconcile itself up to the decision: `api` calls and the rest (`other`).
pub fn step_lateness(
    ctx: &Context,
    canary: &Canary,
    provider: &str,
    before: &CanaryStatus,
    after: &CanaryStatus,
    timing: &StepTiming,
) {
    // The phase the tick started in, as in the decision record (a promotion tick counts too).
    let stepped =
        before.phase == CanaryPhase::Progressing && after.last_step_time != before.last_step_time;
    let Some(last) = before.last_step_time.filter(|_| stepped) else {
        return;
    };
    let plan = crate::analysis::Plan::new(&canary.spec, provider);
    let (ns, name) = (
        canary.metadata.namespace.as_deref(),
        canary.metadata.name.as_deref(),
    );
    let interval = crate::analysis::step_interval(
        before,
        &plan,
        ns.unwrap_or_default(),
        name.unwrap_or_default(),
    );
    let due = last + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let (total, parts) = split(due, before.not_ready_since, timing);
    let t = &ctx.settings.telemetry;
    let observe = |cause: &str, v: f64| {
        t.step_lateness
            .get_or_create(&CauseLabels {
                cause: cause.into(),
            })
            .observe(v);
    };
    observe("total", total);
    for (cause, v) in parts {
        observe(cause, v);
    }
    if total > LATE.as_secs_f64() {
        let (cause, _) = parts
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .copied()
            .unwrap_or(("other", 0.0));
        t.late_steps
            .get_or_create(&CauseLabels {
                cause: cause.into(),
            })
            .inc();
    }
}

/// How late a step decided at `timing.now` was after `due`, and its parts in seconds (see
/// [`step_lateness`]); each part at least 0.
fn split(
    due: DateTime<Utc>,
    not_ready_since: Option<DateTime<Utc>>,
    timing: &StepTiming,
) -> (f64, [(&'static str, f64); 4]) {
    let in_reconcile = chrono::Duration::from_std(timing.in_reconcile).unwrap_or_default();
    let start = timing.now - in_reconcile;
    let secs =
        |d: chrono::Duration| (d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0);
    let (slot, readiness) = match not_ready_since {
        Some(since) => (secs(since.min(start) - due), secs(start - since.max(due))),
        None => (secs(start - due), 0.0),
    };
    let api = timing.api.min(timing.in_reconcile).as_secs_f64();
    let other = (timing.in_reconcile.as_secs_f64() - api).max(0.0);
    (
        secs(timing.now - due),
        [
            ("slot", slot),
            ("readiness", readiness),
            ("api", api),
            ("other", other),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn timing(now_ms: i64, in_reconcile_ms: u64, api_ms: u64) -> StepTiming {
        StepTiming {
            now: at(now_ms),
            in_reconcile: Duration::from_millis(in_reconcile_ms),
            api: Duration::from_millis(api_ms),
        }
    }

    #[test]
    fn a_ready_canary_waits_for_its_slot_then_the_reconcile() {
        // Due at 0, the reconcile started at 1.5 s and decided at 1.8 s, 0.2 s of it in API calls.
        let (total, parts) = split(at(0), None, &timing(1800, 300, 200));
        assert!((total - 1.8).abs() < 1e-9);
        let expect = [
            ("slot", 1.5),
            ("readiness", 0.0),
            ("api", 0.2),
            ("other", 0.1),
        ];
        for ((c, v), (ec, ev)) in parts.iter().zip(expect) {
            assert_eq!(*c, ec);
            assert!((v - ev).abs() < 1e-9, "{c}: {v} != {ev}");
        }
    }

    #[test]
    fn a_canary_found_not_ready_after_due_splits_slot_and_readiness() {
        // Due at 0; a reconcile at 0.4 s found it not ready; the one at 5.4 s found it ready.
        let (total, parts) = split(at(0), Some(at(400)), &timing(5500, 100, 100));
        assert!((total - 5.5).abs() < 1e-9);
        assert!((parts[0].1 - 0.4).abs() < 1e-9, "slot {}", parts[0].1);
        assert!((parts[1].1 - 5.0).abs() < 1e-9, "readiness {}", parts[1].1);
        // Not ready since before it fell due: all of the wait is readiness.
        let (_, parts) = split(at(0), Some(at(-3000)), &timing(2100, 100, 0));
        assert_eq!(parts[0].1, 0.0);
        assert!((parts[1].1 - 2.0).abs() < 1e-9);
    }

    #[test]
    fn api_time_never_exceeds_the_reconcile() {
        let (_, parts) = split(at(0), None, &timing(100, 100, 500));
        assert!((parts[2].1 - 0.1).abs() < 1e-9);
        assert_eq!(parts[3].1, 0.0);
    }
}

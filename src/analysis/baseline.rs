//! The baseline (`analysis.baseline`): `<target>-baseline`, fresh pods of the primary's (old)
//! version, started when the canary first gets traffic with the canary's replica count, given the
//! canary's weight once it is ready (the primary keeps the rest: 100 - 2 x weight; the plan caps
//! the canary's weights at 50 so that share never goes negative) and removed at the end, its
//! routes first. The judge compares the canary with it instead of the long-running primary, whose
//! caches and JIT are warm. Pure: the adapters create and remove it; this module must not import
//! kube, tokio, reqwest or the clock.

use super::converge::routes_after;
use super::decision::{Effect, EventType, Tick};
use super::input::{Input, Observation, Routes};
use super::schedule::{Plan, analysis_routes, expected_routes};
use crate::api::{CanaryPhase, CanaryStatus};

/// The highest canary weight with a baseline: the baseline takes as much again.
pub const MAX_WEIGHT: i32 = 50;

/// Whether the baseline should exist in this status: during the analysis, once it has started.
pub(crate) fn wanted(plan: &Plan, status: &CanaryStatus) -> bool {
    plan.baseline
        && status.analysis_started
        && matches!(
            status.phase,
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        )
}

/// `routes` with the baseline's share when the baseline is wanted and ready, else with its share
/// on the primary: traffic never goes to a baseline that is not ready.
pub(crate) fn share(
    plan: &Plan,
    status: &CanaryStatus,
    observed: &Observation,
    r: Routes,
) -> Routes {
    if wanted(plan, status) && observed.baseline_ready() && r.canary > 0 {
        r.with_baseline()
    } else {
        r.without_baseline()
    }
}

/// The analysis routes of a status, the baseline's share included.
pub(crate) fn analysis(plan: &Plan, status: &CanaryStatus, observed: &Observation) -> Routes {
    share(plan, status, observed, analysis_routes(plan, status))
}

/// The routes a status implies, the baseline's share included (drift detection, convergence).
pub(crate) fn expected(
    plan: &Plan,
    status: &CanaryStatus,
    observed: &Observation,
) -> Option<Routes> {
    expected_routes(plan, status).map(|r| share(plan, status, observed, r))
}

/// The analysis starts (the canary first gets traffic): start the baseline with as many replicas
/// as the canary has now. It gets traffic once it is ready (convergence).
pub(crate) fn start(input: &Input, plan: &Plan, t: &mut Tick) {
    if !plan.baseline || input.observed.baseline.is_some() {
        return;
    }
    let replicas = input
        .observed
        .target
        .as_ref()
        .map_or(1, |c| c.replicas.max(1));
    t.effect(Effect::EnsureBaseline { replicas });
    t.event(
        EventType::Normal,
        "BaselineStarted",
        format!(
            "Starting {}-baseline for {} with {replicas} replica(s) of the primary's version",
            input.spec.target_ref.name,
            input.who()
        ),
    );
}

/// Puts the baseline in line with the status: started while wanted (it was removed by hand, or a
/// write was refused), removed once it is not — only after no route sends traffic to it.
pub(crate) fn converge(input: &Input, plan: &Plan, t: &mut Tick) {
    let creating = t
        .effects
        .iter()
        .any(|e| matches!(e, Effect::EnsureBaseline { .. }));
    if wanted(plan, &t.status) {
        if input.observed.baseline.is_none() && !creating {
            start(input, plan, t);
        }
        return;
    }
    remove(input, t);
}

/// Removes the baseline if it exists and no route (after the effects so far) sends it traffic;
/// otherwise it stays until the route write that drops it has been made.
pub(crate) fn remove(input: &Input, t: &mut Tick) {
    if input.observed.baseline.is_none() || t.effects.contains(&Effect::RemoveBaseline) {
        return;
    }
    let routed = routes_after(&t.effects, input.observed.routes).is_some_and(|r| r.baseline > 0);
    if routed {
        // Not yet: the route write that drops the baseline comes first (convergence makes it).
        return;
    }
    t.effect(Effect::RemoveBaseline);
    t.event(
        EventType::Normal,
        "BaselineRemoved",
        format!(
            "Removing {}-baseline of {}: the analysis ended",
            input.spec.target_ref.name,
            input.who()
        ),
    );
}

/// Deletion: the routes are gone (FinalizeRouting came first); remove the baseline too.
pub(crate) fn terminate(input: &Input, t: &mut Tick) {
    if input.observed.baseline.is_some() {
        t.effect(Effect::RemoveBaseline);
    }
}

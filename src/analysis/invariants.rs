//! The traffic invariants, as code: what no decision may do, whatever the spec, the provider, the
//! strategy or the state of the world. `decide` checks them on every decision in debug builds
//! (so every test exercises them) and property tests drive them over random rollouts. Pure.
//!
//! 1. No traffic (weight, mirror or A/B match) to a canary that is not ready.
//! 2. 100 % to the canary only where the plan puts it there: a weight step of 100, Promoting for
//!    blue/green, or Failed after a promotion whose primary had no replica left to serve.
//! 3. Failed routes to the primary (the same exception as 2).
//! 4. The canary's weight never goes back within one analysis of one revision.
//! 5. The canary is scaled to 0 only once no traffic reaches it.
//! 6. No route writes before the primary exists.
//! 7. Succeeded (the post-promotion watch included) leaves all traffic on the primary.
//! 8. Every route write's weights (primary, canary, baseline) sum to 100.
//! 9. The baseline's weight is the canary's or 0, and 0 while the baseline is not ready.
//! 10. The baseline is removed only once no traffic reaches it.

use super::converge::routes_after;
use super::decision::{Decision, Effect, ScaleTo};
use super::input::{Input, Routes};
use super::schedule::{Plan, Strategy};
use crate::api::CanaryPhase;

/// The invariants this decision breaks, each as one sentence; empty when it keeps them all.
pub fn check(input: &Input, d: &Decision) -> Vec<String> {
    if input.deleting || !input.invalid.is_empty() || input.spec.suspend.unwrap_or(false) {
        // Touching nothing is the rule then: the world stays as it is, whatever it is.
        return Vec::new();
    }
    let plan = Plan::of(input);
    let mut out = Vec::new();
    no_traffic_to_unready_canary(input, d, &mut out);
    full_canary_only_where_planned(input, &plan, d, &mut out);
    failed_routes_to_primary(input, d, &mut out);
    weight_never_goes_back(input, d, &mut out);
    scaled_down_only_without_traffic(input, d, &mut out);
    baseline_shares(input, d, &mut out);
    if d.status.phase == CanaryPhase::Succeeded
        && let Some(r) = routes_after(&d.effects, input.observed.routes)
        && r != Routes::PRIMARY
    {
        out.push(format!(
            "Succeeded leaves routes at {r:?}, not on the primary"
        ));
    }
    if input.observed.primary.is_none() && route_writes(d).next().is_some() {
        out.push("routes were written before the primary exists".into());
    }
    out
}

fn route_writes(d: &Decision) -> impl Iterator<Item = Routes> + '_ {
    d.effects.iter().filter_map(|e| match e {
        Effect::SetRoutes(r) => Some(*r),
        _ => None,
    })
}

fn no_traffic_to_unready_canary(input: &Input, d: &Decision, out: &mut Vec<String>) {
    if input.observed.canary_ready() {
        return;
    }
    if let Some(r) = route_writes(d).find(Routes::reaches_canary) {
        out.push(format!(
            "routes {r:?} send traffic to a canary that is not ready"
        ));
    }
    let settled = !matches!(
        d.status.phase,
        CanaryPhase::Unknown | CanaryPhase::Initializing
    ) && input.observed.primary.is_some();
    if settled
        && routes_after(&d.effects, input.observed.routes).is_some_and(|r| r.reaches_canary())
    {
        out.push("traffic is left on a canary that is not ready".into());
    }
}

/// Failed with the canary holding all traffic: allowed only when the primary cannot serve.
fn failed_on_canary_allowed(input: &Input, d: &Decision) -> bool {
    d.status.phase == CanaryPhase::Failed
        && d.status.canary_weight == 100
        && input
            .observed
            .primary
            .as_ref()
            .is_none_or(|p| p.available == 0)
}

fn full_canary_only_where_planned(input: &Input, plan: &Plan, d: &Decision, out: &mut Vec<String>) {
    for _ in route_writes(d).filter(|r| r.canary == 100) {
        let planned = match d.status.phase {
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion => {
                plan.strategy == Strategy::Canary && plan.weights.contains(&100)
            }
            CanaryPhase::Promoting | CanaryPhase::Finalising => {
                plan.strategy == Strategy::BlueGreen || plan.weights.contains(&100)
            }
            CanaryPhase::Failed => failed_on_canary_allowed(input, d),
            _ => false,
        };
        if !planned {
            out.push(format!(
                "all traffic sent to the canary in phase {} ({:?} strategy)",
                d.status.phase, plan.strategy
            ));
        }
    }
}

fn failed_routes_to_primary(input: &Input, d: &Decision, out: &mut Vec<String>) {
    if d.status.phase != CanaryPhase::Failed || failed_on_canary_allowed(input, d) {
        return;
    }
    if let Some(r) = routes_after(&d.effects, input.observed.routes)
        && r != Routes::PRIMARY
    {
        out.push(format!("Failed leaves routes at {r:?}, not on the primary"));
    }
}

fn weight_never_goes_back(input: &Input, d: &Decision, out: &mut Vec<String>) {
    let analysing = |p| matches!(p, CanaryPhase::Progressing | CanaryPhase::WaitingPromotion);
    let same_revision = input.status.last_applied_spec == d.status.last_applied_spec;
    if analysing(input.status.phase)
        && analysing(d.status.phase)
        && same_revision
        && d.status.canary_weight < input.status.canary_weight
    {
        out.push(format!(
            "the canary's weight went back from {} to {} within one analysis",
            input.status.canary_weight, d.status.canary_weight
        ));
    }
}

fn scaled_down_only_without_traffic(input: &Input, d: &Decision, out: &mut Vec<String>) {
    for (i, e) in d.effects.iter().enumerate() {
        if *e == Effect::ScaleTarget(ScaleTo::Zero)
            && routes_after(&d.effects[..i], input.observed.routes)
                .is_some_and(|r| r.reaches_canary())
        {
            out.push("the canary was scaled to 0 while traffic still reaches it".into());
        }
    }
}

fn baseline_shares(input: &Input, d: &Decision, out: &mut Vec<String>) {
    for r in route_writes(d) {
        if r.primary + r.canary + r.baseline != 100 {
            out.push(format!("routes {r:?} do not sum to 100"));
        }
        if r.baseline != 0 && r.baseline != r.canary {
            out.push(format!(
                "routes {r:?} give the baseline a weight other than the canary's"
            ));
        }
        if r.baseline > 0 && !input.observed.baseline_ready() {
            out.push(format!(
                "routes {r:?} send traffic to a baseline that is not ready"
            ));
        }
    }
    for (i, e) in d.effects.iter().enumerate() {
        if *e == Effect::RemoveBaseline
            && routes_after(&d.effects[..i], input.observed.routes).is_some_and(|r| r.baseline > 0)
        {
            out.push("the baseline was removed while traffic still reaches it".into());
        }
    }
}

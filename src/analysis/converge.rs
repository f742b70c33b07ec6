//! Convergence: after the phase logic, make the world match what the status says. A step whose
//! effects were refused or half-applied (route changed but scale refused, or the reverse), a route
//! edited by hand, a canary that turned unready with traffic on it: each is put right here, from
//! the status alone, so the controller carries on by itself once a refusal is lifted. Safety
//! first: traffic never goes to a canary that is not ready, and the canary is scaled down only
//! once no traffic reaches it. Pure, like the rest of the core.

use super::decision::{Effect, EventType, ScaleTo, Tick};
use super::input::{Input, Routes};
use super::revision::revision;
use super::schedule::Plan;
use crate::api::CanaryPhase;

/// Adds the effects that bring the world in line with the status this tick decided.
pub(crate) fn converge(input: &Input, plan: &Plan, t: &mut Tick) {
    if matches!(
        t.status.phase,
        CanaryPhase::Unknown
            | CanaryPhase::Initializing
            | CanaryPhase::Terminating
            | CanaryPhase::Terminated
    ) || input.observed.primary.is_none()
    {
        return;
    }
    back_to_primary(input, t);
    routes(input, plan, t);
    scale(input, t);
    super::baseline::converge(input, plan, t);
    promoted_revision(input, t);
    super::phase_watch::converge_restore(input, t);
}

/// The routes after the effects decided so far (the last route write, else what was read).
pub(crate) fn routes_after(effects: &[Effect], observed: Option<Routes>) -> Option<Routes> {
    effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::SetRoutes(r) => Some(*r),
            _ => None,
        })
        .or(observed)
}

/// Failed after a promotion whose primary had nothing to serve with, traffic on the canary: once
/// the primary has available replicas again, traffic goes back to it and the canary is scaled
/// down (Failed routes to the last good primary).
fn back_to_primary(input: &Input, t: &mut Tick) {
    let primary_serves = input
        .observed
        .primary
        .as_ref()
        .is_some_and(|p| p.available > 0);
    if t.status.phase != CanaryPhase::Failed || t.status.canary_weight != 100 || !primary_serves {
        return;
    }
    t.status.canary_weight = 0;
    t.effect(Effect::SetRoutes(Routes::PRIMARY));
    t.effect(Effect::ScaleTarget(ScaleTo::Zero));
    let msg = format!(
        "the primary of {} can serve again: all traffic back to it, canary scaled to 0",
        input.who()
    );
    t.event(EventType::Normal, "TrafficRestored", msg.clone());
    t.record(CanaryPhase::Failed, Vec::new(), msg);
}

/// Routes as the status implies them, except that a canary that is not ready gets none.
fn routes(input: &Input, plan: &Plan, t: &mut Tick) {
    let Some(mut want) = super::baseline::expected(plan, &t.status, input.observed) else {
        return;
    };
    let withdrawn = want.reaches_canary() && !input.observed.canary_ready();
    if withdrawn {
        want = Routes::PRIMARY;
    }
    if t.effects.iter().any(|e| matches!(e, Effect::SetRoutes(_))) {
        return;
    }
    let Some(seen) = input.observed.routes else {
        // The routing objects are gone (or were never made): make them again, then set them.
        if !t.effects.contains(&Effect::EnsureRouting) {
            t.effect(Effect::EnsureRouting);
        }
        t.effect(Effect::SetRoutes(want));
        return;
    };
    if seen == want {
        return;
    }
    let (who, from, to) = (
        input.who(),
        (seen.primary, seen.canary),
        (want.primary, want.canary),
    );
    if seen.without_baseline() == want.without_baseline() {
        // Only the baseline's share moves: it became ready (or stopped being ready).
        let (b, who) = (want.baseline, input.who());
        let why = if b > 0 {
            "is ready"
        } else {
            "is not ready or no longer needed"
        };
        t.event(
            EventType::Normal,
            "BaselineRouted",
            format!("the baseline of {who} {why}: its weight is now {b}"),
        );
    } else if withdrawn {
        t.event(
            EventType::Warning,
            "CanaryNotReady",
            format!(
                "the canary of {who} is not ready: routes {}/{} (primary/canary) set to {}/{} until it is",
                from.0, from.1, to.0, to.1
            ),
        );
    } else if !input.observed.retrying {
        // Not a write of ours that was refused: someone changed the routes.
        t.event(
            EventType::Warning,
            "RoutesRepaired",
            format!(
                "routes of {who} were {}/{} (primary/canary), restored to {}/{}",
                from.0, from.1, to.0, to.1
            ),
        );
    }
    t.effect(Effect::SetRoutes(want));
}

/// The canary's replicas as the phase wants them: up while it is analysed or promoted, 0 between
/// rollouts — scaled down only when no traffic reaches it.
fn scale(input: &Input, t: &mut Tick) {
    let Some(target) = input.observed.target.as_ref() else {
        return;
    };
    if t.effects
        .iter()
        .any(|e| matches!(e, Effect::ScaleTarget(_)))
    {
        return;
    }
    let on_canary = t.status.phase == CanaryPhase::Failed && t.status.canary_weight == 100;
    let up = on_canary
        || matches!(
            t.status.phase,
            CanaryPhase::Progressing
                | CanaryPhase::WaitingPromotion
                | CanaryPhase::Promoting
                | CanaryPhase::Finalising
        );
    let down = !on_canary
        && matches!(
            t.status.phase,
            CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed
        );
    if up && target.replicas == 0 {
        t.effect(Effect::ScaleTarget(ScaleTo::LikePrimary));
    }
    let reached =
        routes_after(&t.effects, input.observed.routes).is_none_or(|r| r.reaches_canary());
    if down && target.replicas > 0 && !reached {
        t.effect(Effect::ScaleTarget(ScaleTo::Zero));
    }
}

/// After a promotion, the primary runs the promoted revision: a promotion whose write was refused
/// is made again (only while the target still holds that revision, never a newer, unanalysed one).
fn promoted_revision(input: &Input, t: &mut Tick) {
    let (Some(target), Some(primary)) = (&input.observed.target, &input.observed.primary) else {
        return;
    };
    let promoted = t.status.last_promoted_spec.as_deref();
    let after_promotion = matches!(
        t.status.phase,
        CanaryPhase::Promoting | CanaryPhase::Finalising | CanaryPhase::Succeeded
    );
    if !after_promotion
        || t.effects.iter().any(|e| matches!(e, Effect::Promote))
        || primary.revision.as_deref() == promoted
        || Some(revision(target).as_str()) != promoted
    {
        return;
    }
    t.effect(Effect::CopyConfigs);
    t.effect(Effect::Promote);
}

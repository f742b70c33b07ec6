//! Initialisation: create the primary, wait for it to be ready, then create the routing (the apex
//! now sends to the primary), scale the target to zero and remember the revision the primary runs.

use super::decision::{Effect, EventType, ScaleTo, Tick};
use super::input::{Input, Readiness, Routes};
use super::revision::revision;
use super::{READINESS_POLL, not_ready};
use crate::api::{AlertSeverity, CanaryPhase};

pub(crate) fn initialize(input: &Input, t: &mut Tick) {
    let who = input.who();
    let first_time = t.status.phase != CanaryPhase::Initializing;
    t.set_phase(CanaryPhase::Initializing);
    let Some(target) = input.observed.target.as_ref() else {
        return;
    };
    match input.observed.primary.as_ref().map(|p| &p.readiness) {
        // The routing waits for a ready primary: it points the apex Service (which may be the
        // user's, still sending to the target's pods) at the primary, and a primary without a
        // ready replica would turn that into an outage.
        None => {
            t.effect(Effect::CopyConfigs);
            t.effect(Effect::EnsurePrimary);
            t.requeue(READINESS_POLL);
        }
        Some(_) if first_time => {
            // Adopting an existing primary (e.g. a restart mid-init): refresh it.
            t.effect(Effect::CopyConfigs);
            t.effect(Effect::EnsurePrimary);
            t.requeue(READINESS_POLL);
        }
        Some(Readiness::NotReady(_)) => t.requeue(READINESS_POLL),
        Some(Readiness::DeadlineExceeded(why)) => {
            not_ready(
                input,
                t,
                "PrimaryNotReady",
                &format!("primary of {who} is not ready: {why}"),
            );
            t.requeue(READINESS_POLL * 12);
        }
        Some(Readiness::Ready) => {
            // Traffic moves to the primary before the target it came from is scaled away: routing
            // that was there (a user's apex Service or Ingress, taken over) may still send to it.
            t.effect(Effect::EnsureRouting);
            t.effect(Effect::SetRoutes(Routes::PRIMARY));
            t.effect(Effect::ScaleTarget(ScaleTo::Zero));
            let rev = revision(target);
            t.status.last_applied_spec = Some(rev.clone());
            t.status.last_promoted_spec = Some(rev.clone());
            t.status.tracked_configs =
                (!target.configs.is_empty()).then(|| target.configs.clone().into_iter().collect());
            t.status.canary_weight = 0;
            t.status.failed_checks = 0;
            t.status.iterations = 0;
            t.set_phase(CanaryPhase::Initialized);
            let msg = format!("Initialization done! {who}");
            t.event(EventType::Normal, "Synced", msg.clone());
            t.notify(AlertSeverity::Info, msg);
            t.record(
                CanaryPhase::Initializing,
                Vec::new(),
                format!("initialized: primary runs revision {rev}, target scaled to 0"),
            );
        }
    }
}

//! Deletion with `revertOnDeletion`: give the target its replicas back, wait for it, route all
//! traffic to it, remove generated routing, then let the finalizer go (after the status write).

use super::READINESS_POLL;
use super::decision::{Effect, EventType, ScaleTo, Tick};
use super::input::Input;
use crate::api::CanaryPhase;

pub(crate) fn terminate(input: &Input, t: &mut Tick) {
    if !input.spec.revert_on_deletion.unwrap_or(false) || t.status.phase == CanaryPhase::Terminated
    {
        // Without revertOnDeletion no finalizer is held; Kubernetes garbage-collects what we own.
        if t.status.phase == CanaryPhase::Terminated {
            t.effect(Effect::RemoveFinalizer);
        }
        return;
    }
    let who = format!("{}.{}", input.name, input.namespace);
    if t.status.phase != CanaryPhase::Terminating {
        // The target was observed before it was scaled up (a Deployment at 0 replicas looks
        // ready): scale first and judge readiness from the next observation.
        t.set_phase(CanaryPhase::Terminating);
        t.event(
            EventType::Normal,
            "Terminating",
            format!("Restoring {who}: scaling the target back up"),
        );
        t.effect(Effect::ScaleTarget(ScaleTo::LikePrimary));
        t.requeue(READINESS_POLL);
        return;
    }
    let target_ready = match &input.observed.target {
        None => true, // nothing to give traffic back to; only clean up
        Some(target) => target.readiness.is_ready(),
    };
    // Idempotent: keeps asking for the replicas until the target is ready.
    t.effect(Effect::ScaleTarget(ScaleTo::LikePrimary));
    if !target_ready {
        t.requeue(READINESS_POLL);
        return;
    }
    t.effect(Effect::FinalizeRouting);
    super::baseline::terminate(input, t);
    t.status.canary_weight = 0;
    t.set_phase(CanaryPhase::Terminated);
    t.effect(Effect::RemoveFinalizer);
    t.event(
        EventType::Normal,
        "Terminated",
        format!("{who} restored: all traffic goes to the target"),
    );
    t.record(
        CanaryPhase::Terminating,
        Vec::new(),
        "target restored, generated routing removed",
    );
}

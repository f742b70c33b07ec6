//! What a reconcile tells the metrics (issue 9's families): Flagger's status encoding, the weight
//! by workload, promotions and rollbacks by strategy (counted on the transition, once), time
//! spent, and the Canaries per namespace from the watch cache. Reads only; decides nothing.

use std::time::Duration;

use super::Context;
use crate::api::{Canary, CanaryPhase, CanaryStatus};
use crate::telemetry::{CanaryLabels, NamespaceLabels, OutcomeLabels, WorkloadLabels};

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

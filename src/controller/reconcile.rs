//! One reconcile of one Canary: finalizer, observe, decide (pure), act, one status write.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::Context;
use super::act::{act, publish};
use super::error::{Error, Result};
use super::observe::{observe, workloads};
use super::{calls, metrics, report};
use crate::analysis::{self, EventType, Input, revision};
use crate::api::{self, Canary, FIELD_MANAGER, FINALIZER, FieldError};
use crate::router::{Router, RouterError};

async fn ensure_finalizer(api: &Api<Canary>, canary: &Canary) -> Result<()> {
    let wanted = canary.spec.revert_on_deletion.unwrap_or(false)
        && canary.metadata.deletion_timestamp.is_none();
    let finalizers = canary.metadata.finalizers.clone().unwrap_or_default();
    if !wanted || finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut next = finalizers;
    next.push(FINALIZER.to_string());
    let patch = json!({"metadata": {"finalizers": next, "resourceVersion": canary.metadata.resource_version}});
    api.patch(
        &canary.metadata.name.clone().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

async fn remove_finalizer(api: &Api<Canary>, canary: &Canary) -> Result<()> {
    let name = canary.metadata.name.clone().unwrap_or_default();
    let Some(current) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let next: Vec<String> = current
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    let patch = json!({"metadata": {"finalizers": next, "resourceVersion": current.metadata.resource_version}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Reconciles one Canary.
pub async fn reconcile(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    let ns = canary.namespace_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    if ctx.is_stale(&ns, &name, canary.metadata.resource_version.as_deref()) {
        // The cache has not caught up with our own last status write: deciding on it would
        // repeat the last step (and its webhooks). The watch event of that write is on its way.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    ensure_finalizer(&api, &canary).await?;
    let provider = canary
        .spec
        .provider
        .clone()
        .unwrap_or_else(|| ctx.settings.default_provider.clone());
    let mut invalid = api::validate(&canary).err().unwrap_or_default();
    let router = match Router::for_provider(&provider, ctx.client.clone(), ctx.caches.lookups()) {
        Ok(r) => Some(r),
        Err(RouterError::NotImplemented(p)) => {
            invalid.push(FieldError {
                path: "spec.provider".into(),
                message: format!(
                    "provider '{p}' is not supported by this build of the controller yet"
                ),
            });
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &router
        && invalid.is_empty()
    {
        invalid.extend(r.problems(&canary).await?);
    }
    let w = workloads(&ctx, &canary).await?;
    let mut observed = observe(&ctx, &canary, &w, router.as_ref()).await?;
    let status = canary.status.clone().unwrap_or_default();
    let now = Utc::now();
    let unobserved = analysis::Observation::default();
    let base = Input {
        name: &name,
        namespace: &ns,
        spec: &canary.spec,
        status: &status,
        generation: canary.metadata.generation.unwrap_or(0),
        deleting: canary.metadata.deletion_timestamp.is_some(),
        invalid: &invalid,
        now,
        observed: &unobserved,
        action: canary
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(analysis::ACTION_ANNOTATION))
            .map(String::as_str),
    };
    let due = analysis::metrics_due(&Input {
        observed: &observed,
        ..base
    });
    let hook_kinds = analysis::hooks_due(&Input {
        observed: &observed,
        ..base
    });
    if hook_kinds.contains(&crate::api::HookType::ConfirmRollout)
        && let Some(cap) = ctx.settings.max_concurrent_canaries
    {
        // A rollout may start in this tick: it needs one of the global slots.
        let all = ctx
            .caches
            .canaries
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default();
        observed.rollout_slot_free = Some(ctx.slots.free(cap, &canary, &all, now));
    }
    if !hook_kinds.is_empty() {
        let subject = calls::subject(&canary, &status);
        observed.hooks = calls::call_hooks(&ctx, &canary, &hook_kinds, &subject, None).await;
    }
    if due {
        observed.metrics = metrics::query_all(&ctx, &canary, &provider).await;
    } else if canary.status.is_none() && invalid.is_empty() {
        // First sight of this Canary: say early if a metrics provider does not answer (Flagger
        // checks too); a warning only, the checks themselves decide later.
        for problem in metrics::offline_providers(&ctx, &canary, &provider).await {
            publish(
                &ctx,
                &canary,
                EventType::Warning,
                "MetricsProviderUnavailable",
                &problem,
            )
            .await;
        }
    }
    let decision = analysis::decide(&Input {
        observed: &observed,
        ..base
    });
    if observed.rollout_slot_free == Some(true) {
        ctx.slots
            .release_unless_active(&canary, decision.status.phase);
    }
    let rev = observed.target.as_ref().map(revision);
    let left = act(
        &ctx,
        &canary,
        &w,
        router.as_ref(),
        rev.as_deref(),
        &decision,
    )
    .await?;
    if decision.status != status {
        let patch =
            json!({"apiVersion": api::API_VERSION, "kind": "Canary", "status": decision.status});
        let written = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(patch),
            )
            .await?;
        ctx.remember_write(&ns, &name, written.metadata.resource_version.as_deref());
    }
    if left.remove_finalizer {
        remove_finalizer(&api, &canary).await?;
    }
    let t = &ctx.settings.telemetry;
    let ok = crate::telemetry::ResultLabels {
        result: "ok".into(),
    };
    t.reconciles.get_or_create(&ok).inc();
    t.reconcile_seconds
        .get_or_create(&ok)
        .observe(started.elapsed().as_secs_f64());
    report::record(&ctx, &canary, &status, &decision.status, started.elapsed());
    Ok(match decision.requeue_after {
        Some(d) => Action::requeue(d.max(Duration::from_millis(100))),
        None => Action::requeue(ctx.settings.resync),
    })
}

/// What to do after a failed reconcile: conflicts retry at once, other errors back off.
pub fn error_policy(canary: Arc<Canary>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.settings
        .telemetry
        .reconciles
        .get_or_create(&crate::telemetry::ResultLabels {
            result: error.metric_label().into(),
        })
        .inc();
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(canary = canary.metadata.name.as_deref().unwrap_or_default(), error = %error, label = error.metric_label(), "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

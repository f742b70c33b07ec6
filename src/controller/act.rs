//! Acting on a decision, in two parts. `act` applies the effects that change the cluster, in
//! order, and stops at the first one the API server refuses (the effects after it may depend on
//! it: never scale down before traffic has moved away); the refusal is returned for the Canary's
//! status, and what was not applied is put right by the core's convergence at the next reconcile.
//! `announce` runs after the status write: Events, alerts and post-rollout hooks, so that a status
//! write that fails repeats none of them and none of them holds up the write. Effects are
//! idempotent, so a retry after a failure is safe.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use super::observe::Workloads;
use super::refusal::Refusal;
use super::{Context, calls};
use crate::analysis::{Decision, Effect, EventType, ScaleTo};
use crate::api::Canary;
use crate::router::Router;
use crate::workload::{self, SecretTracking, apply, primary_name};

/// What applying a decision's cluster effects came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Remove the finalizer once the status is written (only when everything was applied).
    pub remove_finalizer: bool,
    /// The first effect the API server refused; the effects after it were not tried.
    pub refused: Option<Refusal>,
}

fn renames_of(
    canary: &Canary,
    w: &Workloads,
    secrets: &SecretTracking,
) -> BTreeMap<String, String> {
    if !workload::config_tracking_enabled(canary, w.target.as_ref()) {
        return BTreeMap::new();
    }
    let pod = w
        .target
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref());
    pod.map(|p| {
        secrets
            .tracked_refs(&canary.namespace_or_default(), p)
            .into_iter()
            .map(|r| (r.name().to_string(), primary_name(r.name())))
            .collect()
    })
    .unwrap_or_default()
}

/// The verb and object an effect writes, for refusal messages (the server's answer names the
/// object more precisely when it can).
fn what(effect: &Effect, canary: &Canary, w: &Workloads) -> (&'static str, String) {
    if w.knative.is_some() {
        return super::knative::what(effect, canary);
    }
    if w.service.is_some()
        && let Some(what) = super::service_target::what(effect, canary)
    {
        return what;
    }
    let kind = if w.target_daemonset.is_some() {
        "daemonsets"
    } else {
        "deployments"
    };
    let target = &canary.spec.target_ref.name;
    match effect {
        Effect::CopyConfigs => (
            "apply",
            format!("the -primary copies of {target}'s configs"),
        ),
        Effect::EnsurePrimary | Effect::Promote | Effect::RestorePrimary => {
            ("apply", format!("{kind}/{}", primary_name(target)))
        }
        Effect::EnsureRouting => (
            "apply",
            format!("the routing objects of {}", canary.apex_name()),
        ),
        Effect::ScaleTarget(_) => ("patch", format!("{kind}/{target}")),
        Effect::SetRoutes(_) => ("patch", format!("the routes of {}", canary.apex_name())),
        Effect::FinalizeRouting => (
            "patch",
            format!("the routing objects of {}", canary.apex_name()),
        ),
        Effect::EnsureBaseline { .. } => ("apply", format!("{kind}/{target}-baseline")),
        Effect::RemoveBaseline => ("delete", format!("{kind}/{target}-baseline")),
        _ => ("apply", String::new()),
    }
}

/// Applies the cluster effects of a decision in order, up to the first refusal.
pub async fn act(
    ctx: &Context,
    canary: &Canary,
    w: &Workloads,
    router: Option<&Router>,
    revision: Option<&str>,
    decision: &Decision,
) -> Applied {
    let mut out = Applied::default();
    // Routers read the session-affinity cookies this decision minted or retired.
    let next = Canary {
        status: Some(decision.status.clone()),
        ..canary.clone()
    };
    for effect in &decision.effects {
        if *effect == Effect::RemoveFinalizer {
            out.remove_finalizer = true;
            continue;
        }
        if let Err(e) = apply_one(ctx, canary, &next, w, router, revision, effect).await {
            let (verb, object) = what(effect, canary, w);
            out.refused = Some(Refusal::of_error(verb, &object, &e));
            out.remove_finalizer = false;
            return out;
        }
    }
    out
}

/// One cluster effect; Events, alerts and hooks are `announce`'s.
async fn apply_one(
    ctx: &Context,
    canary: &Canary,
    next: &Canary,
    w: &Workloads,
    router: Option<&Router>,
    revision: Option<&str>,
    effect: &Effect,
) -> super::error::Result<()> {
    if canary.spec.target_ref.workload() == crate::api::TargetWorkload::KnativeService
        && super::knative::apply_one(ctx, canary, w, revision, effect).await?
    {
        return Ok(());
    }
    let ns = canary.namespace_or_default();
    let owner = canary.controller_owner_ref(&()).unwrap_or_default();
    let target_name = &canary.spec.target_ref.name;
    if let Some(sides) = &w.service
        && super::service_target::handles(effect)
    {
        return super::service_target::apply(ctx, canary, sides, revision, effect).await;
    }
    match effect {
        Effect::CopyConfigs => {
            if let Some(t) = w
                .target
                .as_ref()
                .filter(|t| workload::config_tracking_enabled(canary, Some(t)))
            {
                apply::copy_configs(&ctx.client, &ns, t, &owner, &ctx.settings.secret_tracking)
                    .await?;
            }
        }
        Effect::EnsurePrimary | Effect::Promote => {
            if w.target_daemonset.is_none() {
                workload::hpa::sync_primary_hpa(&ctx.client, canary, owner.clone()).await?;
                workload::keda::sync_primary_scaled_object(&ctx.client, canary, owner.clone())
                    .await?;
            }
            if let Some(t) = &w.target {
                let src = apply::PrimarySource {
                    target: t,
                    daemonset: w.target_daemonset.as_ref(),
                    renames: &renames_of(canary, w, &ctx.settings.secret_tracking),
                    owner: owner.clone(),
                    revision: revision.unwrap_or_default(),
                    filter: &ctx.settings.labels,
                };
                apply::apply_primary(&ctx.client, &ns, src).await?;
            }
        }
        Effect::RestorePrimary => restore_primary(ctx, canary, next, w).await?,
        Effect::EnsureRouting => {
            if let Some(r) = router {
                r.reconcile(canary).await?;
            }
        }
        Effect::ScaleTarget(to) => {
            if let Some(ds) = &w.target_daemonset {
                let up = *to == ScaleTo::LikePrimary;
                apply::scale_daemonset(&ctx.client, &ns, ds, up).await?;
            } else if w.target.is_some() {
                let replicas = match to {
                    ScaleTo::Zero => 0,
                    ScaleTo::LikePrimary => w
                        .primary
                        .as_ref()
                        .and_then(|p| p.spec.as_ref())
                        .and_then(|s| s.replicas)
                        .unwrap_or(1)
                        .max(1),
                };
                // KEDA would wake an idle target: its ScaledObject is paused while it is at zero.
                workload::keda::pause_target(&ctx.client, canary, replicas == 0).await?;
                apply::scale(&ctx.client, &ns, target_name, replicas).await?;
            }
        }
        Effect::SetRoutes(routes) => {
            if let Some(r) = router {
                r.set_routes(next, *routes).await?;
            }
        }
        Effect::FinalizeRouting => {
            if let Some(r) = router {
                r.finalize(canary).await?;
            }
        }
        Effect::EnsureBaseline { replicas } => {
            let apex = canary.apex_name();
            workload::baseline::apply(&ctx.client, &ns, target_name, &apex, *replicas, owner)
                .await?;
        }
        Effect::RemoveBaseline => {
            let apex = canary.apex_name();
            workload::baseline::remove(&ctx.client, &ns, target_name, &apex).await?;
        }
        Effect::CallHooks(_)
        | Effect::Notify { .. }
        | Effect::Event { .. }
        | Effect::RemoveFinalizer => {}
    }
    Ok(())
}

/// A post-promotion rollback: the primary gets back the pod template status kept from before the
/// promotion (the status carrying it is written before effects run), under its old revision.
async fn restore_primary(
    ctx: &Context,
    canary: &Canary,
    next: &Canary,
    w: &Workloads,
) -> super::error::Result<()> {
    let kept = next.status.as_ref().and_then(|s| s.post_promotion.as_ref());
    let (Some(kept), Some(target)) = (kept, &w.target) else {
        return Ok(());
    };
    // Only Serin writes this field; a value that is not a pod template is refused like a write.
    let template =
        serde_json::from_value(kept.previous_template.clone()).map_err(kube::Error::SerdeError)?;
    let replicas = w
        .primary
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.replicas);
    let src = apply::PrimarySource {
        target,
        daemonset: w.target_daemonset.as_ref(),
        renames: &renames_of(canary, w, &ctx.settings.secret_tracking),
        owner: canary.controller_owner_ref(&()).unwrap_or_default(),
        revision: &kept.previous_revision,
        filter: &ctx.settings.labels,
    };
    apply::restore_primary(
        &ctx.client,
        &canary.namespace_or_default(),
        src,
        template,
        replicas,
    )
    .await?;
    Ok(())
}

/// Tells the world what the written decision did: Events (and `event` webhooks), alerts, and
/// post-rollout hooks (in the background: they never hold up a reconcile).
pub async fn announce(ctx: &std::sync::Arc<Context>, canary: &Canary, decision: &Decision) {
    for effect in &decision.effects {
        match effect {
            Effect::CallHooks(kind) => {
                let subject = calls::subject(canary, &decision.status);
                let (ctx, canary, kind) = (ctx.clone(), canary.clone(), *kind);
                tokio::spawn(async move {
                    let outcomes = calls::call_hooks(&ctx, &canary, &[kind], &subject, None).await;
                    for (name, o) in outcomes.iter().filter(|(_, o)| !o.is_success()) {
                        // Informational hooks: a failure is reported, it changes nothing.
                        let msg = format!("{kind:?} webhook {name} failed: {}", o.describe());
                        publish(&ctx, &canary, EventType::Warning, "WebhookFailed", &msg).await;
                    }
                });
            }
            Effect::Notify { severity, message } => {
                let phase = decision.status.phase.to_string();
                calls::alert(ctx, canary, phase, *severity, message);
            }
            Effect::Event {
                kind,
                reason,
                message,
            } => {
                publish(ctx, canary, *kind, reason, message).await;
                let subject = calls::subject(canary, &decision.status);
                calls::post_event(ctx, canary, subject, *kind, message);
            }
            _ => {}
        }
    }
}

/// Publishes the Warning Event of a refusal (its class is the reason).
pub async fn publish_refusal(ctx: &Context, canary: &Canary, r: &Refusal) {
    publish(
        ctx,
        canary,
        EventType::Warning,
        r.class.reason(),
        &r.message,
    )
    .await;
}

/// Publishes an Event about the Canary; a failure to record is logged, never fatal.
pub async fn publish(ctx: &Context, canary: &Canary, kind: EventType, reason: &str, message: &str) {
    let reference: ObjectReference = canary.object_ref(&());
    let warning = kind == EventType::Warning;
    let note: String = message.chars().take(1000).collect();
    if let Err(e) = ctx
        .recorder
        .publish(&reference, warning, reason, &note)
        .await
    {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

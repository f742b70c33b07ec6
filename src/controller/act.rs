//! Acting on a decision: each `analysis::Effect` in order, through the workload and router
//! adapters and the Events recorder. Effects are idempotent, so a retry after a failure is safe.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType as KubeEventType};

use super::error::Result;
use super::observe::Workloads;
use super::{Context, calls};
use crate::analysis::{Decision, Effect, EventType, ScaleTo};
use crate::api::Canary;
use crate::router::Router;
use crate::workload::{self, apply, primary_name, referenced_configs};

/// What acting left for after the status write.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    /// Remove the finalizer once the status is written.
    pub remove_finalizer: bool,
}

fn renames_of(canary: &Canary, w: &Workloads) -> BTreeMap<String, String> {
    if !workload::config_tracking_enabled(canary, w.target.as_ref()) {
        return BTreeMap::new();
    }
    let pod = w
        .target
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref());
    pod.map(|p| {
        referenced_configs(p)
            .into_iter()
            .map(|r| (r.name().to_string(), primary_name(r.name())))
            .collect()
    })
    .unwrap_or_default()
}

/// Applies the effects of a decision in order.
pub async fn act(
    ctx: &std::sync::Arc<Context>,
    canary: &Canary,
    w: &Workloads,
    router: Option<&Router>,
    revision: Option<&str>,
    decision: &Decision,
) -> Result<Leftover> {
    let ns = canary.namespace_or_default();
    let owner = canary.controller_owner_ref(&()).unwrap_or_default();
    let target_name = &canary.spec.target_ref.name;
    let mut left = Leftover::default();
    // Routers read the session-affinity cookies this decision minted or retired.
    let next = Canary {
        status: Some(decision.status.clone()),
        ..canary.clone()
    };
    for effect in &decision.effects {
        match effect {
            Effect::CopyConfigs => {
                if let Some(t) = w
                    .target
                    .as_ref()
                    .filter(|t| workload::config_tracking_enabled(canary, Some(t)))
                {
                    apply::copy_configs(&ctx.client, &ns, t, &owner).await?;
                }
            }
            Effect::EnsurePrimary | Effect::Promote => {
                if w.target_daemonset.is_none() {
                    workload::hpa::sync_primary_hpa(&ctx.client, canary, owner.clone()).await?;
                }
                if let Some(t) = &w.target {
                    let src = apply::PrimarySource {
                        target: t,
                        daemonset: w.target_daemonset.as_ref(),
                        renames: &renames_of(canary, w),
                        owner: owner.clone(),
                        revision: revision.unwrap_or_default(),
                        filter: &ctx.settings.labels,
                    };
                    apply::apply_primary(&ctx.client, &ns, src).await?;
                }
            }
            Effect::EnsureRouting => {
                if let Some(r) = router {
                    r.reconcile(canary).await?;
                }
            }
            Effect::ScaleTarget(to) if w.target_daemonset.is_some() => {
                if let Some(ds) = &w.target_daemonset {
                    let up = *to == ScaleTo::LikePrimary;
                    apply::scale_daemonset(&ctx.client, &ns, ds, up).await?;
                }
            }
            Effect::ScaleTarget(to) => {
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
                if w.target.is_some() {
                    apply::scale(&ctx.client, &ns, target_name, replicas).await?;
                }
            }
            Effect::SetRoutes(routes) => {
                if let Some(r) = router {
                    r.set_routes(&next, *routes).await?;
                }
            }
            Effect::FinalizeRouting => {
                if let Some(r) = router {
                    r.finalize(canary).await?;
                }
            }
            Effect::CallHooks(kind) => {
                let subject = calls::subject(canary, &decision.status);
                let outcomes = calls::call_hooks(ctx, canary, &[*kind], &subject, None).await;
                for (name, o) in outcomes.iter().filter(|(_, o)| !o.is_success()) {
                    // Informational hooks: a failure is reported, it changes nothing.
                    let msg = format!("{kind:?} webhook {name} failed: {}", o.describe());
                    publish(ctx, canary, EventType::Warning, "WebhookFailed", &msg).await;
                }
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
            Effect::RemoveFinalizer => left.remove_finalizer = true,
        }
    }
    Ok(left)
}

/// Publishes an Event about the Canary; a failure to record is logged, never fatal.
pub async fn publish(ctx: &Context, canary: &Canary, kind: EventType, reason: &str, message: &str) {
    let reference: ObjectReference = canary.object_ref(&());
    let ev = Event {
        type_: match kind {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: reason.to_string(),
        note: Some(message.chars().take(1000).collect()),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

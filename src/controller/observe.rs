//! Observation: reads what a decision needs (target, primary, configs, routes) into an
//! `analysis::Observation`. Metrics and webhooks are observed only when `analysis::needs` asks.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Api;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::context::Synced;
use super::error::Result;
use crate::analysis::{BaselineState, Observation, PrimaryState, TargetState};
use crate::api::{Canary, CanaryPhase, TargetKind, TargetWorkload};
use crate::router::Router;
use crate::workload::baseline::baseline_name;
use crate::workload::{self, daemonset, primary_name};

/// The target and primary as read for this reconcile. DaemonSets are held as their
/// Deployment-shaped views (`workload::daemonset`), with the target DaemonSet itself kept for
/// building its primary. A core Service target is held the same way (`service_target`), with the
/// Services themselves kept for building the copies.
#[derive(Default)]
pub struct Workloads {
    /// The target, if it exists.
    pub target: Option<Deployment>,
    /// The primary, if it exists.
    pub primary: Option<Deployment>,
    /// `<target>-baseline` (analysis.baseline), if it exists; read only for Deployment targets.
    pub baseline: Option<Deployment>,
    /// The target as a DaemonSet, when the Canary targets one.
    pub target_daemonset: Option<DaemonSet>,
    /// The target Service and its copies, when the Canary targets a core Service.
    pub service: Option<workload::service_apply::ServiceSides>,
    /// The target Knative Service's view, when the Canary targets one (then `target` and
    /// `primary` are None: there are no Deployments).
    pub knative: Option<crate::workload::knative::KnativeView>,
}

/// Reads the workloads of a Canary, from the controller's caches when it has them.
pub async fn workloads(ctx: &Context, canary: &Canary) -> Result<Workloads> {
    let ns = canary.namespace_or_default();
    if canary.spec.target_ref.kind == TargetKind::DaemonSet {
        return daemonsets(ctx, canary, &ns).await;
    }
    if canary.spec.target_ref.workload() == TargetWorkload::KnativeService {
        return super::knative::workloads(ctx, canary).await;
    }
    if canary.spec.target_ref.workload() == TargetWorkload::CoreService {
        return super::service_target::workloads(ctx, canary, &ns).await;
    }
    // Never decide on a cache that has not finished its first list (an empty cache would look
    // like a missing target): read around it.
    if let Some(store) = &ctx.caches.deployments
        && Synced::listed(&ctx.caches.synced.deployments).await
    {
        let get = |name: &str| {
            store
                .get(&ObjectRef::new(name).within(&ns))
                .map(|d| d.as_ref().clone())
        };
        let target = get(&canary.spec.target_ref.name);
        let primary = get(&primary_name(&canary.spec.target_ref.name));
        // From the cache even without analysis.baseline: one turned off mid-analysis is removed.
        let baseline = get(&baseline_name(&canary.spec.target_ref.name));
        return Ok(Workloads {
            target,
            primary,
            baseline,
            target_daemonset: None,
            ..Default::default()
        });
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let target = api.get_opt(&canary.spec.target_ref.name).await?;
    let primary = api
        .get_opt(&primary_name(&canary.spec.target_ref.name))
        .await?;
    // Without a cache, one more GET only where a baseline can exist.
    let baseline = match canary.spec.analysis.baseline {
        Some(true) => {
            api.get_opt(&baseline_name(&canary.spec.target_ref.name))
                .await?
        }
        _ => None,
    };
    Ok(Workloads {
        target,
        primary,
        baseline,
        target_daemonset: None,
        ..Default::default()
    })
}

async fn daemonsets(ctx: &Context, canary: &Canary, ns: &str) -> Result<Workloads> {
    let name = &canary.spec.target_ref.name;
    let cached = match &ctx.caches.daemonsets {
        Some(store) if Synced::listed(&ctx.caches.synced.daemonsets).await => Some(store),
        _ => None,
    };
    let (target, primary) = match cached {
        Some(store) => {
            let get = |n: &str| {
                store
                    .get(&ObjectRef::new(n).within(ns))
                    .map(|d| d.as_ref().clone())
            };
            (get(name), get(&primary_name(name)))
        }
        None => {
            let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), ns);
            (
                api.get_opt(name).await?,
                api.get_opt(&primary_name(name)).await?,
            )
        }
    };
    Ok(Workloads {
        target: target.as_ref().map(daemonset::as_deployment),
        primary: primary.as_ref().map(daemonset::as_deployment),
        target_daemonset: target,
        ..Default::default()
    })
}

/// Replicas a workload is scaled to, and how many are available to serve. A DaemonSet that Serin
/// scaled down (its node selector matches no node) counts 0, else at least 1 while its status
/// catches up.
fn replicas_of(d: &Deployment, daemonset: Option<&DaemonSet>) -> (i32, i32) {
    let available = d
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let replicas = match daemonset {
        Some(ds) if daemonset::scaled_to_zero(ds) => 0,
        Some(_) => d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(1),
        None => d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    };
    (replicas, available)
}

/// Whether this tick may start a promotion (the phases `phase_promote::promote` is entered from).
fn promotion_may_start(canary: &Canary) -> bool {
    let phase = canary.status.as_ref().map(|s| s.phase).unwrap_or_default();
    matches!(
        phase,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
    )
}

/// The primary's pod template as JSON. The Deployment cache keeps no pod template of a primary
/// (`slim::deployment`: nothing else reads it), so then it is read from the API server: one GET,
/// only on the ticks a promotion of a Canary with `postPromotion` can start.
async fn primary_template(
    ctx: &Context,
    ns: &str,
    cached: &Deployment,
) -> Result<Option<serde_json::Value>> {
    let template = match cached.spec.as_ref().map(|s| &s.template) {
        Some(t) if t.spec.is_some() => Some(t.clone()),
        _ => {
            let name = cached.metadata.name.clone().unwrap_or_default();
            let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            api.get_opt(&name)
                .await?
                .and_then(|d| d.spec)
                .map(|s| s.template)
        }
    };
    Ok(template.and_then(|t| serde_json::to_value(t).ok()))
}

/// Builds the observation (without metrics and hook answers).
pub async fn observe(
    ctx: &Context,
    canary: &Canary,
    w: &Workloads,
    router: Option<&Router>,
) -> Result<Observation> {
    if canary.spec.target_ref.workload() == TargetWorkload::KnativeService {
        return super::knative::observe(canary, w.knative.as_ref(), router).await;
    }
    let ns = canary.namespace_or_default();
    let a = &canary.spec.analysis;
    let target = match &w.target {
        Some(t) => {
            let (replicas, available) = replicas_of(t, w.target_daemonset.as_ref());
            Some(TargetState {
                // A Service target's revision is its spec, not a (missing) pod template.
                template_hash: match w.service.as_ref().and_then(|s| s.target.as_ref()) {
                    Some(svc) => workload::service_target::spec_hash(svc),
                    None => workload::template_hash(t),
                },
                configs: if workload::config_tracking_enabled(canary, Some(t)) {
                    let (sources, secrets) = (&ctx.caches.configs, &ctx.settings.secret_tracking);
                    workload::apply::tracked_configs(&ctx.client, &ns, t, sources, secrets).await?
                } else {
                    Default::default()
                },
                readiness: workload::readiness(t, a.canary_ready_threshold.unwrap_or(100)),
                replicas,
                available,
            })
        }
        None => None,
    };
    let primary = w.primary.as_ref().map(|p| PrimaryState {
        revision: p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(workload::primary::REVISION_ANNOTATION).cloned()),
        readiness: workload::readiness(p, a.primary_ready_threshold.unwrap_or(100)),
        available: replicas_of(p, None).1,
    });
    let state = match (router, &w.primary) {
        (Some(r), Some(_)) => r.get_state(canary).await?,
        _ => Default::default(),
    };
    // Kept in status at promotion for a post-promotion rollback; read only when one is set up
    // and a promotion can start at this tick.
    let primary_template = match &w.primary {
        Some(p) if a.post_promotion.is_some() && promotion_may_start(canary) => {
            primary_template(ctx, &ns, p).await?
        }
        _ => None,
    };
    let baseline = w.baseline.as_ref().map(|b| BaselineState {
        // Ready as the canary is: the same threshold.
        readiness: workload::readiness(b, a.canary_ready_threshold.unwrap_or(100)),
        replicas: replicas_of(b, None).0,
    });
    Ok(Observation {
        target,
        primary,
        baseline,
        routes: state.routes,
        routing_accepted: state.accepted,
        primary_template,
        ..Default::default()
    })
}

//! Observation: reads what a decision needs (target, primary, configs, routes) into an
//! `analysis::Observation`. Metrics and webhooks are observed only when `analysis::needs` asks.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use super::Context;
use super::error::Result;
use crate::analysis::{Observation, PrimaryState, TargetState};
use crate::api::Canary;
use crate::router::Router;
use crate::workload::{self, primary_name};

/// The target and primary Deployments as read for this reconcile.
pub struct Workloads {
    /// The target, if it exists.
    pub target: Option<Deployment>,
    /// The primary, if it exists.
    pub primary: Option<Deployment>,
}

/// Reads the workloads of a Canary.
pub async fn workloads(ctx: &Context, canary: &Canary) -> Result<Workloads> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &canary.namespace_or_default());
    let target = api.get_opt(&canary.spec.target_ref.name).await?;
    let primary = api
        .get_opt(&primary_name(&canary.spec.target_ref.name))
        .await?;
    Ok(Workloads { target, primary })
}

/// Builds the observation (without metrics and hook answers).
pub async fn observe(
    ctx: &Context,
    canary: &Canary,
    w: &Workloads,
    router: Option<&Router>,
) -> Result<Observation> {
    let ns = canary.namespace_or_default();
    let a = &canary.spec.analysis;
    let target = match &w.target {
        Some(t) => Some(TargetState {
            template_hash: workload::template_hash(t),
            configs: if workload::config_tracking_enabled(canary, Some(t)) {
                workload::apply::tracked_configs(&ctx.client, &ns, t).await?
            } else {
                Default::default()
            },
            readiness: workload::readiness(t, a.canary_ready_threshold.unwrap_or(100)),
        }),
        None => None,
    };
    let primary = w.primary.as_ref().map(|p| PrimaryState {
        revision: p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(workload::primary::REVISION_ANNOTATION).cloned()),
        readiness: workload::readiness(p, a.primary_ready_threshold.unwrap_or(100)),
    });
    let routes = match (router, &w.primary) {
        (Some(r), Some(_)) => r.get_routes(canary).await?,
        _ => None,
    };
    Ok(Observation {
        target,
        primary,
        routes,
        ..Default::default()
    })
}

//! Observation: reads what a decision needs (target, primary, configs, routes) into an
//! `analysis::Observation`. Metrics and webhooks are observed only when `analysis::needs` asks.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::reflector::ObjectRef;

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

/// Reads the workloads of a Canary, from the Deployment cache when the controller has one.
pub async fn workloads(ctx: &Context, canary: &Canary) -> Result<Workloads> {
    let ns = canary.namespace_or_default();
    if let Some(store) = &ctx.caches.deployments {
        // Never decide on a cache that has not finished its first list: an empty cache would
        // look like a missing target.
        let _ = store.wait_until_ready().await;
        if let Some(services) = &ctx.caches.services {
            // Likewise an apex the user owns must not look missing (it would be taken over).
            let _ = services.wait_until_ready().await;
        }
        let get = |name: &str| {
            store
                .get(&ObjectRef::new(name).within(&ns))
                .map(|d| d.as_ref().clone())
        };
        let target = get(&canary.spec.target_ref.name);
        let primary = get(&primary_name(&canary.spec.target_ref.name));
        return Ok(Workloads { target, primary });
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
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
                workload::apply::tracked_configs(&ctx.client, &ns, t, &ctx.caches.configs).await?
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

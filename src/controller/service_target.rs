//! Core Service targets in the controller: what `observe` reads (the target Service and its two
//! copies, as Deployment-shaped views) and what `act` does with the workload effects the core
//! decides (`EnsurePrimary`, `Promote`, `ScaleTarget`; config copies do not apply). The routing
//! effects go to the router as for any target. Must not decide anything (`analysis` does).

use kube::Resource;

use super::Context;
use super::context::Synced;
use super::error::Result;
use super::observe::Workloads;
use crate::analysis::{Effect, ScaleTo};
use crate::api::Canary;
use crate::workload::service_apply::{self, ServiceSides};
use crate::workload::service_target::{self as st, Copy};

/// Reads the target Service and its copies: the target's view is "up" (1 replica) while the
/// `-canary` copy serves the target's spec and is not scaled to zero, the primary's always.
pub(super) async fn workloads(ctx: &Context, canary: &Canary, ns: &str) -> Result<Workloads> {
    let store = match &ctx.caches.services {
        Some(s) if Synced::listed(&ctx.caches.synced.services).await => Some(s),
        _ => None,
    };
    let sides = service_apply::read(&ctx.client, store, ns, &canary.spec.target_ref.name).await?;
    let target = sides.target.as_ref().map(|t| {
        let up = st::canary_up(t, sides.canary.as_ref());
        st::as_deployment(t, i32::from(up))
    });
    Ok(Workloads {
        target,
        primary: sides.primary.as_ref().map(|p| st::as_deployment(p, 1)),
        service: Some(sides),
        ..Default::default()
    })
}

/// Whether `apply` takes this effect for a Service target (the others are the router's, or
/// have nothing to do).
pub(super) fn handles(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::CopyConfigs | Effect::EnsurePrimary | Effect::Promote | Effect::ScaleTarget(_)
    )
}

/// The verb and object a workload effect writes, for refusal messages.
pub(super) fn what(effect: &Effect, canary: &Canary) -> Option<(&'static str, String)> {
    let name = &canary.spec.target_ref.name;
    match effect {
        Effect::EnsurePrimary | Effect::Promote => Some((
            "apply",
            format!("services/{}", crate::workload::primary_name(name)),
        )),
        Effect::ScaleTarget(_) => Some(("apply", format!("services/{}", st::canary_name(name)))),
        _ => None,
    }
}

/// Applies a workload effect to the copies; the target Service is only read. `EnsurePrimary`
/// (initialisation) and `Promote` copy the target into `-primary`; initialisation also creates
/// `-canary` so that the routing never names a missing Service. `ScaleTarget`
/// brings `-canary` in step with the target, marked scaled to zero or not.
pub(super) async fn apply(
    ctx: &Context,
    canary: &Canary,
    sides: &ServiceSides,
    revision: Option<&str>,
    effect: &Effect,
) -> Result<()> {
    let Some(target) = &sides.target else {
        return Ok(());
    };
    let ns = canary.namespace_or_default();
    let owner = canary.controller_owner_ref(&()).unwrap_or_default();
    let filter = &ctx.settings.labels;
    let copy =
        |which| service_apply::apply_copy(&ctx.client, &ns, target, which, owner.clone(), filter);
    match effect {
        Effect::EnsurePrimary | Effect::Promote => {
            let revision = revision.unwrap_or_default();
            copy(Copy::Primary { revision }).await?;
            if *effect == Effect::EnsurePrimary && sides.canary.is_none() {
                // Up, as a Deployment target is before initialisation: its scale-down is the
                // last effect of initialisation, after the routing.
                copy(Copy::Canary {
                    scaled_to_zero: false,
                })
                .await?;
            }
        }
        Effect::ScaleTarget(to) => {
            copy(Copy::Canary {
                scaled_to_zero: *to == ScaleTo::Zero,
            })
            .await?;
        }
        _ => {}
    }
    Ok(())
}

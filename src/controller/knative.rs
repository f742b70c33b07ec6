//! Knative Service targets in the reconcile: reading the target Knative Service into the view the
//! core uses (`workload::knative`), and the workload effects for it. Knative keeps every revision
//! and scales it, so configs are not copied and nothing is scaled; "the primary" is a revision
//! name in an annotation: set at initialisation (`EnsurePrimary`, the latest ready revision) and
//! moved at promotion (`Promote`, the analysed revision). Traffic is the router's (`router::knative`).
//! Must not decide anything: the decision is the core's.

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};

use super::Context;
use super::error::Result;
use super::observe::Workloads;
use crate::analysis::{Decision, Effect, Observation};
use crate::api::{Canary, TargetWorkload};
use crate::router::Router;
use crate::workload::knative::{KnativeView, primary_revision_patch, promote_patch, view};

fn api(ctx: &Context, canary: &Canary) -> Api<DynamicObject> {
    let ns = canary.namespace_or_default();
    Api::namespaced_with(ctx.client.clone(), &ns, &crate::router::knative::resource())
}

/// Reads the target Knative Service (never cached: Serin watches no Knative objects; a Canary
/// on one is requeued by its own schedule).
pub async fn workloads(ctx: &Context, canary: &Canary) -> Result<Workloads> {
    // Any 404 is "not there": without Knative Serving the API server answers a plain-text
    // "404 page not found" that is no NotFound Status (the router says what to install).
    let found = match api(ctx, canary).get(&canary.spec.target_ref.name).await {
        Ok(o) => Some(o),
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(e) => return Err(e.into()),
    };
    let knative = found.map(|o| view(&serde_json::to_value(o).unwrap_or_default()));
    Ok(Workloads {
        knative,
        ..Default::default()
    })
}

/// The observation of a Knative target: the latest created revision as the target, the
/// annotated revision as the primary, and the weights from `status.traffic`.
pub async fn observe(
    canary: &Canary,
    k: Option<&KnativeView>,
    router: Option<&Router>,
) -> Result<Observation> {
    let Some(k) = k else {
        return Ok(Observation::default());
    };
    let primary = k.primary_state();
    let state = match (router, &primary) {
        (Some(r), Some(_)) => r.get_state(canary).await?,
        _ => Default::default(),
    };
    Ok(Observation {
        target: Some(k.target_state()),
        primary,
        routes: state.routes,
        routing_accepted: state.accepted,
        ..Default::default()
    })
}

/// Serin watches no Knative objects (a watch would need Knative's CRD on every cluster and a
/// grant even where no Canary uses it), so a Canary on a Knative Service looks again at least
/// once per analysis interval, as Flagger's scheduler does: that is when a new revision is seen.
pub fn poll(canary: &Canary, decision: &mut Decision) {
    if canary.spec.target_ref.workload() != TargetWorkload::KnativeService {
        return;
    }
    let interval = crate::api::duration::parse_duration(&canary.spec.analysis.interval)
        .unwrap_or(std::time::Duration::from_secs(60));
    let next = decision.requeue_after.map_or(interval, |d| d.min(interval));
    decision.requeue_after = Some(next);
}

/// The refusal wording of an effect on a Knative target.
pub fn what(effect: &Effect, canary: &Canary) -> (&'static str, String) {
    let name = &canary.spec.target_ref.name;
    match effect {
        Effect::SetRoutes(_) | Effect::FinalizeRouting => {
            ("patch", format!("the traffic of Knative Service {name}"))
        }
        _ => (
            "patch",
            format!("the primary revision of Knative Service {name}"),
        ),
    }
}

/// One workload effect on a Knative target (routing effects are the router's). `revision` is the
/// revision the decision was taken on: the one a promotion names.
pub async fn apply_one(
    ctx: &Context,
    canary: &Canary,
    w: &Workloads,
    revision: Option<&str>,
    effect: &Effect,
) -> Result<bool> {
    let (promote, wanted) = match effect {
        Effect::EnsurePrimary => (
            false,
            w.knative.as_ref().and_then(|k| k.latest_ready.clone()),
        ),
        Effect::Promote => (true, revision.filter(|r| !r.is_empty()).map(String::from)),
        Effect::CopyConfigs | Effect::ScaleTarget(_) => return Ok(true),
        _ => return Ok(false),
    };
    let current = w.knative.as_ref().and_then(|k| k.primary_revision.clone());
    let Some(rev) = wanted.filter(|r| current.as_ref() != Some(r)) else {
        return Ok(true);
    };
    let (api, name) = (api(ctx, canary), &canary.spec.target_ref.name);
    let patch = if promote {
        // Read afresh: the patch carries the traffic block and its resourceVersion.
        let Some(obj) = api.get_opt(name).await? else {
            return Ok(true);
        };
        promote_patch(&serde_json::to_value(obj).unwrap_or_default(), &rev)
    } else {
        primary_revision_patch(Some(&rev))
    };
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(true)
}

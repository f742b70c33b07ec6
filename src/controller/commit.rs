//! Committing a decision: the status write (with the Canary's resourceVersion as precondition),
//! the effects, the refusal shown on the Canary (`Ready=False`, an Event, a decision record) and
//! retried with backoff, then Events, alerts and post-rollout hooks; and what a reconcile that
//! stopped early leaves on the Canary. Must not decide anything: the decision is the core's.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::Context;
use super::act::{act, announce, publish_refusal};
use super::error::{Error, Result};
use super::observe::Workloads;
use super::refusal::{Class, Refusal};
use super::report;
use crate::analysis;
use crate::api::{self, Canary, CanaryPhase, CanaryStatus, FIELD_MANAGER, FINALIZER};
use crate::router::Router;

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

/// A reconcile that stopped before its status write (a read refused, the API server away, the
/// status write itself refused): counted, shown on the Canary once it persists (when the status
/// can be written at all), and retried with backoff.
pub(super) async fn failed(ctx: &Arc<Context>, canary: &Canary, key: &str, e: Error) -> Action {
    let r = Refusal::of_error("read", "the objects of this Canary", &e);
    let (count, same) = ctx.note_refusal(key, &r);
    if r.class == Class::Conflict && same < r.class.shown_after() {
        // Someone wrote first: retry soon, say nothing unless it persists.
        return Action::requeue(ctx.retry_after(count, r.class));
    }
    tracing::warn!(canary = %key, error = %e, class = r.class.reason(), attempt = count, "reconcile failed");
    if same >= r.class.shown_after() {
        let status = canary.status.clone().unwrap_or_default();
        let mut next = status.clone();
        let new = show_refusal(&status, &mut next, &r, "could not observe");
        let rv = canary.metadata.resource_version.as_deref();
        if next != status && write_status(ctx, canary, &next, rv).await.is_ok() && new {
            publish_refusal(ctx, canary, &r).await;
        }
    }
    Action::requeue(ctx.retry_after(count, r.class))
}

/// Puts a refusal on the status: `Ready=False` with the class as reason and the refusal as
/// message, and a decision record. Returns whether the condition is news (a Warning Event then).
fn show_refusal(before: &CanaryStatus, next: &mut CanaryStatus, r: &Refusal, what: &str) -> bool {
    let now = Utc::now();
    let unchanged = before
        .conditions
        .iter()
        .find(|c| {
            c.r#type == "Ready"
                && c.status == "False"
                && c.reason == r.class.reason()
                && c.message.as_deref() == Some(&r.message)
        })
        .cloned();
    match &unchanged {
        // The same refusal as last time: keep its condition as it was (the decision set Ready
        // True meanwhile; a new transition time would be a status write, a watch event and a
        // reconcile at once — no backoff at all).
        Some(c) => match next.conditions.iter_mut().find(|x| x.r#type == "Ready") {
            Some(slot) => *slot = c.clone(),
            None => next.conditions.push(c.clone()),
        },
        None => analysis::set_condition(
            &mut next.conditions,
            "Ready",
            "False",
            r.class.reason(),
            &r.message,
            now,
        ),
    }
    let record = api::DecisionRecord {
        time: now,
        phase: next.phase,
        weight: next.canary_weight,
        checks: Vec::new(),
        action: format!("{what}: {}", r.message),
    };
    analysis::append_record(next, record);
    unchanged.is_none()
}

/// Writes the status decided from `canary`, on condition that the Canary has not changed since
/// (its resourceVersion): a decision taken on an old view — a cache that lags, another instance
/// of the controller during a hand-over — gets a 409 and is taken again on the new one, instead
/// of writing an older status over a newer one (and repeating a step).
async fn write_status(
    ctx: &Context,
    canary: &Canary,
    status: &CanaryStatus,
    rv: Option<&str>,
) -> Result<Option<String>> {
    let ns = canary.namespace_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    let mut patch = json!({"apiVersion": api::API_VERSION, "kind": "Canary", "status": status});
    if let Some(rv) = rv {
        patch["metadata"] = json!({"name": name, "resourceVersion": rv});
    }
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await?;
    ctx.remember_write(&ns, &name, written.metadata.resource_version.as_deref());
    Ok(written.metadata.resource_version)
}

/// The decided status to write before acting: a refusal shown on `before` stays shown until the
/// effects have been tried (the decision itself always says Ready; flipping the condition True
/// and back on every retry would be two writes, and two watch events, per retry).
fn keep_refusal(before: &CanaryStatus, decided: &CanaryStatus) -> CanaryStatus {
    let mut intent = decided.clone();
    let shown = before
        .conditions
        .iter()
        .find(|c| c.r#type == "Ready" && Class::is_reason(&c.reason));
    if let Some(shown) = shown
        && let Some(slot) = intent
            .conditions
            .iter_mut()
            .find(|c| c.r#type == "Ready" && c.reason == "Ready")
    {
        *slot = shown.clone();
    }
    intent
}

/// What acting on a decision needs besides the Canary.
pub(super) struct Acting<'a> {
    pub w: &'a Workloads,
    pub router: Option<&'a Router>,
    pub revision: Option<String>,
}

/// Writes the decided status, then applies its effects, then tells the world. The status goes
/// first: if the effects are refused or the controller dies in between, the status holds the
/// intent and every reconcile brings the world in line with it (the core's convergence) — the
/// world never runs ahead of the status, so nothing is undone and redone. Deletion is the other
/// way round: the routing is given back before the status may say Terminated.
pub(super) async fn commit(
    ctx: &Arc<Context>,
    canary: &Canary,
    key: &str,
    before: &CanaryStatus,
    decision: &analysis::Decision,
    acting: &Acting<'_>,
    started: std::time::Instant,
) -> Result<(Action, Option<Class>)> {
    use analysis::Effect;
    let finalizing = decision
        .effects
        .iter()
        .any(|e| matches!(e, Effect::FinalizeRouting | Effect::RemoveFinalizer));
    let mut rv = canary.metadata.resource_version.clone();
    let mut written = before.clone();
    let intent = keep_refusal(before, &decision.status);
    if !finalizing && intent != *before {
        rv = write_status(ctx, canary, &intent, rv.as_deref()).await?;
        written = intent;
    }
    let applied = act(
        ctx,
        canary,
        acting.w,
        acting.router,
        acting.revision.as_deref(),
        decision,
    )
    .await;
    let mut next = decision.status.clone();
    let mut requeue = decision.requeue_after.unwrap_or(ctx.settings.resync);
    let mut news = None;
    let refused = applied.refused.as_ref().map(|r| r.class);
    if let Some(r) = &applied.refused {
        let (count, same) = ctx.note_refusal(key, r);
        if r.class != Class::Conflict || same >= r.class.shown_after() {
            tracing::warn!(canary = %key, refusal = %r.message, class = r.class.reason(), attempt = count, "effect refused");
        }
        if next.phase == CanaryPhase::Terminated {
            // Not everything was given back: the finalizer stays until it is.
            next.phase = CanaryPhase::Terminating;
        }
        if same >= r.class.shown_after() && show_refusal(before, &mut next, r, "could not apply") {
            news = Some(r.clone());
        }
        requeue = requeue.min(ctx.retry_after(count, r.class));
    }
    if next != written {
        write_status(ctx, canary, &next, rv.as_deref()).await?;
    }
    announce(ctx, canary, decision).await;
    if let Some(r) = news {
        publish_refusal(ctx, canary, &r).await;
    }
    if applied.remove_finalizer {
        let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &canary.namespace_or_default());
        remove_finalizer(&api, canary).await?;
    }
    report::record(ctx, canary, before, &next, started.elapsed());
    Ok((
        Action::requeue(requeue.max(Duration::from_millis(100))),
        refused,
    ))
}

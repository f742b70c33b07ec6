//! One reconcile of one Canary: finalizer, validation, observation (stage by stage, as the core
//! asks), the pure decision, the cluster effects, one status write, then Events, alerts and
//! post-rollout hooks. A request the API server refuses never disappears into the log: it reaches
//! the Canary's `Ready` condition, an Event and the decision record, and is retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::Context;
use super::act::publish;
use super::commit::{Acting, commit, failed};
use super::error::{Error, Result};
use super::observe::{Workloads, observe, workloads};
use super::refusal::Class;
use super::{calls, metrics, samples};
use crate::analysis::{self, EventType, Input, Observation, revision};
use crate::api::{self, Canary, CanaryStatus, FINALIZER, FieldError};
use crate::router::{Router, RouterError};

/// How long the Canary cache may lag behind our own last status write before the reconcile reads
/// the Canary from the API server instead (a watch that is down must not freeze the Canary).
const STALE_PATIENCE: Duration = Duration::from_secs(5);

/// Adds Serin's finalizer when revertOnDeletion wants it; true when it did (the reconcile ends
/// there: the Canary changed, and its status is written only on a view of the current version).
async fn ensure_finalizer(api: &Api<Canary>, canary: &Canary) -> Result<bool> {
    let wanted = canary.spec.revert_on_deletion.unwrap_or(false)
        && canary.metadata.deletion_timestamp.is_none();
    let finalizers = canary.metadata.finalizers.clone().unwrap_or_default();
    if !wanted || finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(false);
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
    Ok(true)
}

/// Whether a Canary read from the API server (not from the shard's own watch) is this shard's.
fn in_shard(ctx: &Context, canary: &Canary) -> bool {
    ctx.settings
        .shard
        .as_ref()
        .is_none_or(|s| s.matches(canary.metadata.labels.as_ref()))
}

/// Reconciles one Canary, clocking its time in API calls (for the step lateness breakdown).
pub async fn reconcile(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Action> {
    if ctx.resume.hold(&canary) {
        // Settled, while Canaries in flight still wait for their first reconcile after the start.
        return Ok(Action::requeue(super::resume::RETRY));
    }
    // `--concurrency` is enforced here, not by kube-runtime: its cap holds due Canaries in a set
    // it takes from in no particular order, so under a burst some waited tens of seconds while
    // later ones went first. tokio's semaphore grants in arrival order (closed: never).
    let _permit = match &ctx.permits {
        Some(permits) => permits.acquire().await.ok(),
        None => None,
    };
    // The Canary as it is now, not as it was when it fell due.
    let canary = ctx
        .caches
        .canaries
        .as_ref()
        .and_then(|store| store.get(&ObjectRef::from_obj(canary.as_ref())))
        .unwrap_or(canary);
    // Boxed once it may run: a waiting reconcile stays a few words (the whole reconcile's
    // state is kilobytes, and a burst of a thousand due Canaries waits here together).
    Box::pin(super::client::with_api_clock(reconcile_clocked(
        canary,
        ctx.clone(),
    )))
    .await
}

async fn reconcile_clocked(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Action> {
    ctx.resume.started(&canary);
    let started = std::time::Instant::now();
    let ns = canary.namespace_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let key = format!("{ns}/{name}");
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    let canary = match ctx.stale_for(&ns, &name, canary.metadata.resource_version.as_deref()) {
        // The cache has not caught up with our own last status write: deciding on it would
        // repeat the last step (and its webhooks). The watch event of that write is on its way.
        Some(age) if age < STALE_PATIENCE => {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        Some(age) => {
            tracing::info!(canary = %key, waited = ?age, "the Canary cache still lacks our last status write; reading the Canary from the API server");
            match api.get_opt(&name).await {
                // Relabelled into another shard meanwhile: that shard acts on it now.
                Ok(Some(c)) if !in_shard(&ctx, &c) => return Ok(Action::await_change()),
                Ok(Some(c)) => Arc::new(c),
                Ok(None) => return Ok(Action::await_change()),
                Err(e) => return Ok(failed(&ctx, &canary, &key, Error::Kube(e)).await),
            }
        }
        None => canary,
    };
    let (label, action) = match tick(&canary, &ctx, &key, started).await {
        Ok((action, None)) => {
            ctx.note_success(&key);
            ("ok", action)
        }
        Ok((action, Some(_))) => ("refused", action),
        Err(e) => {
            let label = e.metric_label();
            (label, failed(&ctx, &canary, &key, e).await)
        }
    };
    let t = &ctx.settings.telemetry;
    let labels = crate::telemetry::ResultLabels {
        result: label.into(),
    };
    t.reconciles.get_or_create(&labels).inc();
    t.reconcile_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if ctx.left_watch(&canary) {
        // It left while this reconcile ran (relabelled into another shard, or deleted), after
        // the watch's DELETED made the controller forget it: forget what this reconcile just
        // remembered too (a refusal streak, a slot grant, its gauges), and do not requeue.
        ctx.forget(&canary);
        return Ok(Action::await_change());
    }
    Ok(action)
}

/// What the spec, the provider in effect and the cluster say is wrong with the Canary.
async fn problems(
    ctx: &Context,
    canary: &Canary,
    provider: &str,
) -> Result<(Vec<FieldError>, Option<Router>)> {
    let mut invalid = api::validate::validate_for(canary, provider)
        .err()
        .unwrap_or_default();
    let router = match Router::for_provider(provider, ctx.client.clone(), ctx.lookups()) {
        Ok(r) => Some(r),
        Err(RouterError::NotImplemented(p)) => {
            if invalid.iter().all(|e| e.path != "spec.provider") {
                invalid.push(FieldError {
                    path: "spec.provider".into(),
                    message: format!("provider '{p}' is not supported by this controller"),
                });
            }
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &router
        && invalid.is_empty()
    {
        invalid.extend(r.problems(canary).await?);
    }
    if invalid.is_empty() && recheck_templates(canary) {
        invalid.extend(samples::compare_problems(ctx, canary).await);
    }
    Ok((invalid, router))
}

/// Whether compared metrics' MetricTemplates are read for validation at this reconcile: on a spec
/// the controller has not decided on yet, and while the Canary is refused as InvalidSpec (a fixed
/// MetricTemplate must clear it) — not on every reconcile. A template changed to a provider
/// without samples later shows when its metric is sampled (a failed query naming it).
fn recheck_templates(canary: &Canary) -> bool {
    let Some(st) = canary.status.as_ref() else {
        return true;
    };
    st.observed_generation != canary.metadata.generation
        || st
            .conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.reason == "InvalidSpec")
}

/// A target that another Canary already has, or that Serin generated for one, is refused.
fn conflicts(ctx: &Context, canary: &Canary, w: &Workloads) -> Vec<FieldError> {
    let others = ctx
        .caches
        .canaries
        .as_ref()
        .map(|s| s.state())
        .unwrap_or_default();
    let canary_owner = |d: &Option<k8s_openapi::api::apps::v1::Deployment>| {
        d.as_ref()
            .and_then(|d| d.metadata.owner_references.as_ref())
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.kind == "Canary" && r.api_version.starts_with("serin.io/"))
                    .map(|r| r.name.clone())
            })
    };
    let (target, primary) = (canary_owner(&w.target), canary_owner(&w.primary));
    let owners = api::validate::Owners {
        target: target.as_deref(),
        primary: primary.as_deref(),
    };
    api::validate::target_conflicts(canary, others.iter().map(|c| c.as_ref()), owners)
}

/// One reconcile up to and including its writes. Ok carries the class of a refused effect when
/// one was refused (shown on the status, retried with backoff).
async fn tick(
    canary: &Canary,
    ctx: &Arc<Context>,
    key: &str,
    started: std::time::Instant,
) -> Result<(Action, Option<Class>)> {
    let ns = canary.namespace_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    if ensure_finalizer(&api, canary).await? {
        return Ok((Action::requeue(Duration::from_millis(100)), None));
    }
    let provider = canary
        .spec
        .provider
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ctx.settings.default_provider.clone());
    let missing = ctx.missing_permissions(&provider).await;
    if !missing.is_empty() {
        // Nothing is half-applied for want of a permission: the Canary says which to grant.
        let why = super::preflight::sentence(&missing, ctx.scope.as_deref());
        return Err(Error::Permissions(why));
    }
    let (mut invalid, router) = problems(ctx, canary, &provider).await?;
    let w = workloads(ctx, canary).await?;
    if invalid.is_empty() {
        invalid.extend(conflicts(ctx, canary, &w));
    }
    let mut observed = if invalid.is_empty() {
        observe(ctx, canary, &w, router.as_ref()).await?
    } else {
        // An invalid Canary touches nothing, and reads no more than it needs to say so.
        observe(ctx, canary, &w, None).await?
    };
    observed.retrying = ctx.retrying(key);
    let status = canary.status.clone().unwrap_or_default();
    let now = Utc::now();
    // How this tick's decision time splits: time in the reconcile so far, of it in API calls.
    let timing = super::report::StepTiming {
        now,
        in_reconcile: started.elapsed(),
        api: super::client::api_time(),
    };
    let unobserved = Observation::default();
    let base = Input {
        name: &name,
        namespace: &ns,
        spec: &canary.spec,
        provider: &provider,
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
    if let Some(cap) = ctx.settings.max_concurrent_canaries
        && analysis::may_start_rollout(&Input {
            observed: &observed,
            ..base
        })
    {
        // A rollout may start in this tick: it needs one of the global slots.
        let all = ctx
            .caches
            .canaries
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default();
        observed.rollout_slot_free = Some(ctx.slots.free(cap, canary, &all, now));
    }
    observe_stages(ctx, canary, &status, &provider, &mut observed, base).await;
    if canary.status.is_none() && invalid.is_empty() {
        warn_offline_providers(ctx, canary, &provider).await;
    }
    let mut decision = analysis::decide(&Input {
        observed: &observed,
        ..base
    });
    super::knative::poll(canary, &mut decision);
    if observed.rollout_slot_free == Some(true) {
        ctx.slots
            .release_unless_active(canary, decision.status.phase);
    }
    let acting = Acting {
        w: &w,
        router: router.as_ref(),
        revision: observed.target.as_ref().map(revision),
    };
    let out = commit(ctx, canary, key, &status, &decision, &acting, started).await;
    if let Ok((_, None)) = &out {
        super::report::step_lateness(ctx, canary, &provider, &status, &decision.status, &timing);
    }
    out
}

/// Observes what the core asks for, stage by stage (rollback hooks, then the checks, then the
/// gate of the step about to be taken), until it asks for nothing more.
async fn observe_stages(
    ctx: &Context,
    canary: &Canary,
    status: &CanaryStatus,
    provider: &str,
    observed: &mut Observation,
    base: Input<'_>,
) {
    let subject = calls::subject(canary, status);
    // Each stage observes something new; the bound only guards against a core that would not.
    for _ in 0..6 {
        let needs = analysis::needs(&Input { observed, ..base });
        if needs.is_empty() {
            return;
        }
        if !needs.hooks.is_empty() {
            observed
                .hooks
                .extend(call_hooks_once(ctx, canary, status, &needs.hooks, &subject).await);
        }
        if needs.metrics {
            observed
                .metrics
                .extend(metrics::query_all(ctx, canary, provider).await);
            observed
                .samples
                .extend(samples::sample_all(ctx, canary, provider).await);
        }
        if needs.post_promotion_metrics {
            observed
                .metrics
                .extend(metrics::query_post_promotion(ctx, canary, provider).await);
        }
    }
    tracing::warn!(
        canary = canary.metadata.name.as_deref().unwrap_or_default(),
        "observation did not settle in 6 stages"
    );
}

/// Calls the hooks of `kinds`, except that pre-rollout hooks (once per revision) are not called
/// again for the same revision when an earlier reconcile called them but could not write its
/// status (the API server went away in between): their answers are remembered. Across a restart
/// of the controller itself that memory is gone (at-least-once, like every webhook).
async fn call_hooks_once(
    ctx: &Context,
    canary: &Canary,
    status: &CanaryStatus,
    kinds: &[crate::api::HookType],
    subject: &crate::hooks::Subject,
) -> std::collections::BTreeMap<String, analysis::HookOutcome> {
    use crate::api::HookType;
    let key = format!(
        "{}/{}@{}",
        canary.namespace_or_default(),
        canary.metadata.name.as_deref().unwrap_or_default(),
        status.last_applied_spec.as_deref().unwrap_or_default()
    );
    let once = kinds.contains(&HookType::PreRollout);
    if once && let Some(answers) = ctx.remembered_hooks(&key) {
        return answers;
    }
    let answers = calls::call_hooks(ctx, canary, kinds, subject, None).await;
    // Only a pass is remembered: a failed pre-rollout is asked again at the next tick, as Flagger
    // does, counting a failed check each time.
    if once && answers.values().all(analysis::HookOutcome::is_success) {
        ctx.remember_hooks(&key, &answers);
    }
    answers
}

/// First sight of a Canary: say early if a metrics provider does not answer (Flagger checks
/// too); a warning only, the checks themselves decide later.
async fn warn_offline_providers(ctx: &Context, canary: &Canary, provider: &str) {
    for problem in metrics::offline_providers(ctx, canary, provider).await {
        publish(
            ctx,
            canary,
            EventType::Warning,
            "MetricsProviderUnavailable",
            &problem,
        )
        .await;
    }
}

/// What to do after a reconcile that returned an error (none do today: failures are handled in
/// `reconcile` with backoff); kept for the controller's contract.
pub fn error_policy(canary: Arc<Canary>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.settings
        .telemetry
        .reconciles
        .get_or_create(&crate::telemetry::ResultLabels {
            result: error.metric_label().into(),
        })
        .inc();
    tracing::warn!(canary = canary.metadata.name.as_deref().unwrap_or_default(), error = %error, label = error.metric_label(), "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::recheck_templates;
    use crate::api::Canary;

    fn canary(generation: i64, status: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "a", "namespace": "t", "generation": generation},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a"},
                     "analysis": {"interval": "1m", "threshold": 1}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn templates_are_read_for_a_new_spec_or_a_refused_canary_only() {
        let ready = serde_json::json!({"observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Progressing", "message": ""}]});
        assert!(
            !recheck_templates(&canary(2, ready.clone())),
            "decided spec"
        );
        assert!(recheck_templates(&canary(3, ready)), "new generation");
        let refused = serde_json::json!({"observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "x"}]});
        assert!(recheck_templates(&canary(2, refused)), "refused");
        let mut fresh = canary(1, serde_json::json!({}));
        fresh.status = None;
        assert!(recheck_templates(&fresh), "never seen");
    }
}

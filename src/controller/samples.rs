//! Sampling for the statistical judge: each metric with `compare` runs its query once per side,
//! `{{ target }}` set to that side's workload and `{{ side }}` to its name, and hands both lists
//! of samples to the decision core, which judges them. Also says, before anything acts, when a
//! compared metric's MetricTemplate is of a provider that cannot return per-pod samples. Must not
//! decide about rollouts.

use std::collections::BTreeMap;

use kube::Api;

use super::Context;
use super::metrics::resolve_with;
use crate::analysis::{MetricFailure, Samples};
use crate::api::{Canary, CanaryMetric, FieldError, MetricTemplate};
use crate::metrics::{MetricError, gives_samples};

/// Samples one compared metric on both sides.
async fn sample(
    ctx: &Context,
    canary: &Canary,
    router: &str,
    m: &CanaryMetric,
) -> Result<Samples, MetricError> {
    let [canary_model, other_model] = crate::metrics::QueryModel::for_sides(canary, m);
    let ours = resolve_with(ctx, canary, router, m, canary_model).await?;
    let theirs = resolve_with(ctx, canary, router, m, other_model).await?;
    crate::metrics::distinct_sides(m, &ours.query, &theirs.query)?;
    let (canary_side, other_side) = futures::future::join(
        ours.provider.samples(&ours.query),
        theirs.provider.samples(&theirs.query),
    )
    .await;
    Ok(Samples {
        canary: canary_side?,
        baseline: other_side?,
    })
}

/// Samples every metric with `compare` concurrently; results by metric name.
pub async fn sample_all(
    ctx: &Context,
    canary: &Canary,
    router: &str,
) -> BTreeMap<String, Result<Samples, MetricFailure>> {
    let metrics = canary.spec.analysis.metrics.clone().unwrap_or_default();
    let runs = metrics
        .iter()
        .filter(|m| m.compare.is_some())
        .map(|m| async move {
            let result = sample(ctx, canary, router, m).await;
            (m.name.clone(), result.map_err(MetricFailure::from))
        });
    futures::future::join_all(runs).await.into_iter().collect()
}

/// Compared metrics whose MetricTemplate is of a provider that returns one value per query: an
/// invalid spec naming the metric's `compare`. A template that cannot be read is not judged here
/// (the query reports it when it runs).
pub async fn compare_problems(ctx: &Context, canary: &Canary) -> Vec<FieldError> {
    let mut problems = Vec::new();
    for (i, m) in canary.spec.analysis.metrics.iter().flatten().enumerate() {
        let (Some(_), Some(r)) = (&m.compare, &m.template_ref) else {
            continue;
        };
        let ns = r
            .namespace
            .clone()
            .unwrap_or_else(|| canary.namespace_or_default());
        let api = Api::<MetricTemplate>::namespaced(ctx.client.clone(), &ns);
        let Ok(Some(template)) = api.get_opt(&r.name).await else {
            continue;
        };
        let ty = template.spec.provider.r#type;
        if !gives_samples(ty) {
            let ty = serde_json::to_value(ty)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            problems.push(FieldError {
                path: format!("spec.analysis.metrics[{i}].compare"),
                message: format!(
                    "MetricTemplate {ns}/{} uses the {ty} provider, which returns one value per query; compare needs per-pod samples from a prometheus template",
                    r.name
                ),
            });
        }
    }
    problems
}

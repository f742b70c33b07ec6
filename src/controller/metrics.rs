//! Metric observation for a tick that is due (`analysis::metrics_due`): each metric of the
//! analysis is resolved to a provider and a rendered query (built-in per router, inline query, or
//! MetricTemplate with its Secret), queried concurrently, and reported per metric name. Values are
//! judged by the decision core, not here. Secret values go into request headers only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::Context;
use crate::analysis::MetricFailure;
use crate::api::duration::parse_duration;
use crate::api::{Canary, CanaryMetric, MetricProviderType, MetricTemplate};
use crate::metrics::{
    Auth, DatadogProvider, HttpSettings, MetricError, MetricProvider, PrometheusProvider,
    QueryModel, WebProvider, datadog,
};

/// A metric ready to run.
pub struct Resolved {
    /// Where it runs.
    pub provider: MetricProvider,
    /// The rendered query (PromQL, Datadog query, or JSONPath for web).
    pub query: String,
}

fn prometheus_address(ctx: &Context, canary: &Canary) -> Result<String, MetricError> {
    canary
        .spec
        .metrics_server
        .clone()
        .or_else(|| ctx.settings.metrics_server.clone())
        .ok_or_else(|| {
            MetricError::Config(
                "no Prometheus address: set spec.metricsServer or the controller's --metrics-server"
                    .into(),
            )
        })
}

/// The keys of a template's Secret (values never leave this function except as headers).
async fn secret_data(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, MetricError> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| MetricError::Config(format!("cannot read Secret {ns}/{name}: {e}")))?
        .ok_or_else(|| MetricError::Config(format!("Secret {ns}/{name} not found")))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).trim().to_string()))
        .collect())
}

fn auth_of(ty: MetricProviderType, data: &BTreeMap<String, String>) -> Auth {
    if ty == MetricProviderType::Datadog {
        let keys = [
            ("datadog_api_key", "DD-API-KEY"),
            ("datadog_application_key", "DD-APPLICATION-KEY"),
        ];
        return Auth::Headers(
            keys.iter()
                .filter_map(|(k, h)| data.get(*k).map(|v| (h.to_string(), v.clone())))
                .collect(),
        );
    }
    match (
        data.get("token"),
        data.get("username"),
        data.get("password"),
    ) {
        (Some(t), _, _) => Auth::Bearer(t.clone()),
        (None, Some(u), Some(p)) => Auth::Basic {
            username: u.clone(),
            password: p.clone(),
        },
        _ => Auth::None,
    }
}

async fn from_template(
    ctx: &Context,
    canary: &Canary,
    m: &CanaryMetric,
    model: &QueryModel,
) -> Result<Resolved, MetricError> {
    let r = m.template_ref.as_ref().expect("called with a templateRef");
    let ns = r
        .namespace
        .clone()
        .unwrap_or_else(|| canary.namespace_or_default());
    let template = Api::<MetricTemplate>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&r.name)
        .await
        .map_err(|e| {
            MetricError::Config(format!("cannot read MetricTemplate {ns}/{}: {e}", r.name))
        })?
        .ok_or_else(|| MetricError::Config(format!("MetricTemplate {ns}/{} not found", r.name)))?;
    let p = &template.spec.provider;
    let data = match &p.secret_ref {
        Some(s) => secret_data(ctx, &ns, &s.name).await?,
        None => BTreeMap::new(),
    };
    let http = HttpSettings {
        timeout: ctx.settings.metrics_timeout,
        insecure_skip_verify: p.insecure_skip_verify.unwrap_or(false),
        headers: p.headers.clone().unwrap_or_default(),
        auth: auth_of(p.r#type, &data),
    };
    let address = data.get("address").cloned().or_else(|| p.address.clone());
    let render = |t: &str| {
        model
            .render(t)
            .map_err(|e| MetricError::Config(format!("MetricTemplate {ns}/{}: {e}", r.name)))
    };
    let query = render(&template.spec.query)?;
    let provider = match p.r#type {
        MetricProviderType::Prometheus => {
            let address = match address {
                Some(a) => a,
                None => prometheus_address(ctx, canary)?,
            };
            MetricProvider::Prometheus(PrometheusProvider::new(&address, http)?)
        }
        MetricProviderType::Datadog => {
            let window = parse_duration(
                m.interval
                    .as_deref()
                    .unwrap_or(crate::metrics::DEFAULT_INTERVAL),
            )
            .unwrap_or(std::time::Duration::from_secs(60));
            let address = address.unwrap_or_else(|| datadog::DEFAULT_ADDRESS.to_string());
            MetricProvider::Datadog(DatadogProvider::new(&address, window, http)?)
        }
        MetricProviderType::Web => {
            let address = address.ok_or_else(|| {
                MetricError::Config(format!(
                    "MetricTemplate {ns}/{}: the web provider needs an address",
                    r.name
                ))
            })?;
            let body = p.body.as_deref().map(render).transpose()?;
            MetricProvider::Web(WebProvider::new(&render(&address)?, body, http)?)
        }
        other => {
            let source = crate::metrics::TemplateSource {
                address: address.as_deref().map(render).transpose()?,
                secret: &data,
                region: p.region.clone(),
                window: parse_duration(
                    m.interval
                        .as_deref()
                        .unwrap_or(crate::metrics::DEFAULT_INTERVAL),
                )
                .unwrap_or(std::time::Duration::from_secs(60)),
                http,
                kube: Some(ctx.client.clone()),
            };
            crate::metrics::from_template(other, source)?
        }
    };
    Ok(Resolved { provider, query })
}

/// Resolves one metric of a Canary whose traffic provider is `router`.
pub async fn resolve(
    ctx: &Context,
    canary: &Canary,
    router: &str,
    m: &CanaryMetric,
) -> Result<Resolved, MetricError> {
    resolve_with(ctx, canary, router, m, QueryModel::for_metric(canary, m)).await
}

/// Resolves one metric with the template values given (the judge's per-side models).
pub(super) async fn resolve_with(
    ctx: &Context,
    canary: &Canary,
    router: &str,
    m: &CanaryMetric,
    model: QueryModel,
) -> Result<Resolved, MetricError> {
    if m.template_ref.is_some() {
        return from_template(ctx, canary, m, &model).await;
    }
    let query = crate::metrics::inline_query(router, m, model)?;
    let http = HttpSettings {
        timeout: ctx.settings.metrics_timeout,
        ..Default::default()
    };
    let provider = PrometheusProvider::new(&prometheus_address(ctx, canary)?, http)?;
    Ok(Resolved {
        provider: MetricProvider::Prometheus(provider),
        query,
    })
}

/// Queries every metric of the analysis concurrently; results by metric name. Metrics with
/// `compare` are sampled by `samples::sample_all` instead.
pub async fn query_all(
    ctx: &Context,
    canary: &Canary,
    router: &str,
) -> BTreeMap<String, Result<f64, MetricFailure>> {
    let metrics = canary.spec.analysis.metrics.clone().unwrap_or_default();
    let runs = metrics
        .iter()
        .filter(|m| m.compare.is_none())
        .map(|m| async move {
            let value = match resolve(ctx, canary, router, m).await {
                Ok(r) => r.provider.query(&r.query).await,
                Err(e) => Err(e),
            };
            (m.name.clone(), value.map_err(MetricFailure::from))
        });
    let results: BTreeMap<_, _> = futures::future::join_all(runs).await.into_iter().collect();
    let ns = canary.namespace_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    for (metric, value) in &results {
        let labels = crate::telemetry::MetricLabels {
            name: name.clone(),
            namespace: ns.clone(),
            metric: metric.clone(),
        };
        match value {
            Ok(v) => {
                ctx.settings
                    .telemetry
                    .metric_analysis
                    .get_or_create(&labels)
                    .set(*v);
            }
            Err(_) => {
                ctx.settings.telemetry.metric_analysis.remove(&labels);
            }
        }
    }
    results
}

/// Queries every metric of `analysis.postPromotion` concurrently; results by metric name. After
/// a promotion the primary serves all traffic, so `{{ target }}` renders as `<target>-primary`.
pub async fn query_post_promotion(
    ctx: &Context,
    canary: &Canary,
    router: &str,
) -> BTreeMap<String, Result<f64, MetricFailure>> {
    let metrics = canary
        .spec
        .analysis
        .post_promotion
        .as_ref()
        .map(|p| p.metrics.clone())
        .unwrap_or_default();
    let runs = metrics.iter().map(|m| async move {
        let mut model = QueryModel::for_metric(canary, m);
        model.target = crate::workload::primary_name(&canary.spec.target_ref.name);
        let value = match resolve_with(ctx, canary, router, m, model).await {
            Ok(r) => r.provider.query(&r.query).await,
            Err(e) => Err(e),
        };
        (m.name.clone(), value.map_err(MetricFailure::from))
    });
    futures::future::join_all(runs).await.into_iter().collect()
}

/// Checks that each distinct provider of the analysis answers; the problems, one line each.
pub async fn offline_providers(ctx: &Context, canary: &Canary, router: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for m in canary.spec.analysis.metrics.iter().flatten() {
        let key = (
            m.template_ref
                .as_ref()
                .map(|r| (r.namespace.clone(), r.name.clone())),
            m.query.is_some(),
        );
        if !seen.insert(format!("{key:?}")) {
            continue;
        }
        let check = match resolve(ctx, canary, router, m).await {
            Ok(r) => r.provider.is_online().await,
            Err(e) => Err(e),
        };
        if let Err(e) = check {
            problems.push(format!("metric '{}': {e}", m.name));
        }
    }
    problems
}

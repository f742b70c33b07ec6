//! Metric providers (one file each) behind a closed enum, the query template renderer and the
//! built-in queries. A provider turns one query into one number or a `MetricError`: an empty
//! answer or NaN is `NoData` (never 0), ±Inf and several series are errors naming what came back,
//! and a provider that cannot answer now (5xx, 429, timeout, no connection) is told apart from a
//! query that failed. Providers measure; they do not judge — bounds, the `onNoData` policy and what
//! an unavailable provider means are the decision core's. Must not import the controller.

pub mod builtin;
pub mod cloudwatch;
pub mod datadog;
pub mod dynatrace;
pub mod externalmetrics;
pub mod graphite;
mod http;
pub mod influxdb;
pub mod keptn;
pub mod newrelic;
pub mod prometheus;
pub mod splunk;
pub mod stackdriver;
pub mod template;
pub mod web;

use std::collections::BTreeMap;
use std::time::Duration;

pub use cloudwatch::CloudWatchProvider;
pub use datadog::DatadogProvider;
pub use dynatrace::DynatraceProvider;
pub use externalmetrics::ExternalMetricsProvider;
pub use graphite::GraphiteProvider;
pub use http::{Auth, HttpSettings};
pub use influxdb::InfluxDbProvider;
pub use keptn::KeptnProvider;
pub use newrelic::NewRelicProvider;
pub use prometheus::PrometheusProvider;
pub use splunk::SplunkProvider;
pub use stackdriver::StackdriverProvider;
pub use template::{QueryModel, TemplateError};
pub use web::WebProvider;

use crate::analysis::MetricFailure;
use crate::api::MetricProviderType;

/// Default timeout of one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `{{ interval }}` (the query window) of a metric without its own `interval`: Flagger's default
/// for its built-in metrics. Not the analysis interval: with 30 s steps and 30 s scrapes,
/// `rate(x[30s])` holds at most one sample and is empty.
pub const DEFAULT_INTERVAL: &str = "1m";

/// Why a query gave no number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The answer was empty.
    #[error("no data")]
    NoData,
    /// The answer held several series where one was expected.
    #[error(
        "the query returned {0} series; it must reduce to one (use sum() or another aggregation)"
    )]
    ManySeries(usize),
    /// The value is infinite (+Inf or -Inf), which no bound can judge. (NaN is `NoData`.)
    #[error("the query returned {0}, not a finite number")]
    NotFinite(String),
    /// The provider rejected the query; its own message.
    #[error("{0}")]
    Query(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The provider could not be reached.
    #[error("cannot connect: {0}")]
    Connection(String),
    /// The provider answered that it cannot answer now (HTTP 5xx or 429): its status and a short
    /// excerpt of its answer, without credentials. The query itself may be fine.
    #[error("{0}")]
    Unavailable(String),
    /// The provider answered, but not in the expected shape.
    #[error("unexpected answer: {0}")]
    Answer(String),
    /// The metric or its template is misconfigured.
    #[error("{0}")]
    Config(String),
}

impl From<MetricError> for MetricFailure {
    fn from(e: MetricError) -> MetricFailure {
        match e {
            MetricError::NoData => MetricFailure::NoData,
            MetricError::Timeout(_) | MetricError::Connection(_) | MetricError::Unavailable(_) => {
                MetricFailure::Unreachable(e.to_string())
            }
            other => MetricFailure::QueryError(other.to_string()),
        }
    }
}

/// A finite value, or the error that says why not. NaN is what PromQL gives for 0/0 (a ratio
/// with no traffic) and `histogram_quantile` of no observations: there was nothing to measure, so
/// it is `NoData` for the `onNoData` policy, never a number. ±Inf are named as Prometheus spells
/// them.
pub(crate) fn finite(v: f64) -> Result<f64, MetricError> {
    if v.is_nan() {
        Err(MetricError::NoData)
    } else if v.is_infinite() {
        let sign = if v > 0.0 { "+" } else { "-" };
        Err(MetricError::NotFinite(format!("{sign}Inf")))
    } else {
        Ok(v)
    }
}

/// The value of `key` in a template's Secret, or a configuration error naming the key Flagger
/// names (never the value).
pub(crate) fn secret_key(
    secret: &BTreeMap<String, String>,
    key: &str,
    provider: &str,
) -> Result<String, MetricError> {
    secret
        .get(key)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| {
            MetricError::Config(format!(
                "the {provider} provider needs the key '{key}' in the template's secretRef"
            ))
        })
}

/// A URL, or a configuration error naming it.
pub(crate) fn parse_url(address: &str) -> Result<reqwest::Url, MetricError> {
    reqwest::Url::parse(address)
        .map_err(|e| MetricError::Config(format!("address '{address}' is not a URL: {e}")))
}

/// A Kubernetes API error as a metric error, sorted as HTTP ones are: 5xx/429 `Unavailable`, 404
/// a query error naming `what`, another status a query error quoting the server, no answer a
/// connection error.
pub(crate) fn kube_error(e: kube::Error, what: &str) -> MetricError {
    match e {
        kube::Error::Api(s) if s.code >= 500 || s.code == 429 => {
            MetricError::Unavailable(format!("HTTP {}: {}", s.code, s.message))
        }
        kube::Error::Api(s) if s.code == 404 => MetricError::Query(format!("{what} not found")),
        kube::Error::Api(s) => MetricError::Query(format!("{what}: {}", s.message)),
        other => MetricError::Connection(format!("{what}: {other}")),
    }
}

/// Whether a template of this provider type can return per-pod samples for the statistical judge
/// (several series in one answer). Prometheus only, for now.
pub fn gives_samples(ty: MetricProviderType) -> bool {
    ty == MetricProviderType::Prometheus
}

/// The rendered query of a metric without a templateRef: its inline `query`, else the built-in
/// query of the traffic provider `router` (rendered with that router's view of the names). The
/// controller and `serin backtest` both render through here.
pub fn inline_query(
    router: &str,
    m: &crate::api::CanaryMetric,
    model: QueryModel,
) -> Result<String, MetricError> {
    let (template, model) = match &m.query {
        Some(q) => (q.clone(), model),
        None => {
            let t = builtin::query(router, &m.name).ok_or_else(|| {
                MetricError::Config(format!(
                    "provider '{router}' has no built-in '{}'; use a MetricTemplate",
                    m.name
                ))
            })?;
            // Built-in queries render with the provider's view of the names (Skipper's routes).
            (t, builtin::for_model(router, model))
        }
    };
    model
        .render(&template)
        .map_err(|e| MetricError::Config(format!("metric '{}': {e}", m.name)))
}

/// A compared metric's queries as rendered for the canary and for the other side, or the
/// configuration error saying they are the same: a query that does not depend on the side
/// compares a thing with itself and always passes.
pub fn distinct_sides(
    m: &crate::api::CanaryMetric,
    canary_query: &str,
    other_query: &str,
) -> Result<(), MetricError> {
    if canary_query == other_query {
        return Err(MetricError::Config(format!(
            "metric '{}' has compare, but its query renders the same for both sides; select the side with {{{{ target }}}} or {{{{ side }}}}",
            m.name
        )));
    }
    Ok(())
}

/// What a MetricTemplate gives a provider besides its rendered query.
pub struct TemplateSource<'a> {
    /// The template's address, or its Secret's `address` key.
    pub address: Option<String>,
    /// The keys of the template's Secret (empty without `secretRef`).
    pub secret: &'a BTreeMap<String, String>,
    /// The template's `region` (cloud providers).
    pub region: Option<String>,
    /// The query window: the metric's `interval`.
    pub window: Duration,
    /// Timeout, TLS mode and extra headers; each provider sets its own credentials.
    pub http: HttpSettings,
    /// The cluster's API, for the providers that read Kubernetes objects (keptn).
    pub kube: Option<kube::Client>,
}

/// The provider of a template whose type is one of Flagger's vendor providers (prometheus,
/// datadog and web are built by the caller, which knows their defaults).
pub fn from_template(
    ty: MetricProviderType,
    source: TemplateSource<'_>,
) -> Result<MetricProvider, MetricError> {
    match ty {
        MetricProviderType::Newrelic => {
            Ok(MetricProvider::NewRelic(NewRelicProvider::new(source)?))
        }
        MetricProviderType::Dynatrace => {
            Ok(MetricProvider::Dynatrace(DynatraceProvider::new(source)?))
        }
        MetricProviderType::Graphite => {
            Ok(MetricProvider::Graphite(GraphiteProvider::new(source)?))
        }
        MetricProviderType::Influxdb => {
            Ok(MetricProvider::InfluxDb(InfluxDbProvider::new(source)?))
        }
        MetricProviderType::Splunk => Ok(MetricProvider::Splunk(SplunkProvider::new(source)?)),
        MetricProviderType::Stackdriver => Ok(MetricProvider::Stackdriver(
            StackdriverProvider::new(source)?,
        )),
        MetricProviderType::Cloudwatch => {
            Ok(MetricProvider::CloudWatch(CloudWatchProvider::new(source)?))
        }
        MetricProviderType::Keptn => Ok(MetricProvider::Keptn(KeptnProvider::new(source)?)),
        MetricProviderType::Externalmetrics => Ok(MetricProvider::ExternalMetrics(
            ExternalMetricsProvider::new(source)?,
        )),
        other => Err(MetricError::Config(format!(
            "metrics provider {other:?} is not supported"
        ))),
    }
}

/// A metrics backend.
pub enum MetricProvider {
    /// Prometheus HTTP API.
    Prometheus(PrometheusProvider),
    /// Datadog metrics query API.
    Datadog(DatadogProvider),
    /// Any HTTP endpoint answering JSON.
    Web(WebProvider),
    /// New Relic NRQL (NerdGraph or the Insights query API).
    NewRelic(NewRelicProvider),
    /// Dynatrace metrics v2 query API.
    Dynatrace(DynatraceProvider),
    /// Graphite render API.
    Graphite(GraphiteProvider),
    /// InfluxDB v2 Flux query API.
    InfluxDb(InfluxDbProvider),
    /// Splunk Observability SignalFlow.
    Splunk(SplunkProvider),
    /// Google Cloud Monitoring (MQL or PromQL).
    Stackdriver(StackdriverProvider),
    /// Amazon CloudWatch GetMetricData.
    CloudWatch(CloudWatchProvider),
    /// Keptn's KeptnMetric and Analysis objects.
    Keptn(KeptnProvider),
    /// A Kubernetes External Metrics API server.
    ExternalMetrics(ExternalMetricsProvider),
}

impl MetricProvider {
    /// Runs one (rendered) query.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        match self {
            MetricProvider::Prometheus(p) => p.query(query).await,
            MetricProvider::Datadog(p) => p.query(query).await,
            MetricProvider::Web(p) => p.query(query).await,
            MetricProvider::NewRelic(p) => p.query(query).await,
            MetricProvider::Dynatrace(p) => p.query(query).await,
            MetricProvider::Graphite(p) => p.query(query).await,
            MetricProvider::InfluxDb(p) => p.query(query).await,
            MetricProvider::Splunk(p) => p.query(query).await,
            MetricProvider::Stackdriver(p) => p.query(query).await,
            MetricProvider::CloudWatch(p) => p.query(query).await,
            MetricProvider::Keptn(p) => p.query(query).await,
            MetricProvider::ExternalMetrics(p) => p.query(query).await,
        }
    }

    /// Runs one (rendered) query for the statistical judge: one sample per series (or per point
    /// of a range). Only providers that can answer with many series can; the others say so.
    pub async fn samples(&self, query: &str) -> Result<Vec<f64>, MetricError> {
        match self {
            MetricProvider::Prometheus(p) => p.samples(query).await,
            _ => Err(MetricError::Config(
                "this metrics provider returns one value per query; compare needs per-pod samples (use a prometheus template)".into(),
            )),
        }
    }

    /// Whether the backend answers at all.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        match self {
            MetricProvider::Prometheus(p) => p.is_online().await,
            MetricProvider::Datadog(p) => p.is_online().await,
            MetricProvider::Web(p) => p.is_online().await,
            MetricProvider::NewRelic(p) => p.is_online().await,
            MetricProvider::Dynatrace(p) => p.is_online().await,
            MetricProvider::Graphite(p) => p.is_online().await,
            MetricProvider::InfluxDb(p) => p.is_online().await,
            MetricProvider::Splunk(p) => p.is_online().await,
            MetricProvider::Stackdriver(p) => p.is_online().await,
            MetricProvider::CloudWatch(p) => p.is_online().await,
            MetricProvider::Keptn(p) => p.is_online().await,
            MetricProvider::ExternalMetrics(p) => p.is_online().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_no_data_and_infinities_are_named() {
        assert_eq!(finite(f64::NAN), Err(MetricError::NoData));
        assert_eq!(
            finite(f64::INFINITY).unwrap_err().to_string(),
            "the query returned +Inf, not a finite number"
        );
        assert_eq!(
            finite(f64::NEG_INFINITY),
            Err(MetricError::NotFinite("-Inf".into()))
        );
        assert_eq!(finite(-0.5), Ok(-0.5));
    }

    #[test]
    fn unavailable_providers_are_unreachable_not_failed_queries() {
        let down = MetricError::Unavailable("HTTP 503 Service Unavailable: overloaded".into());
        assert_eq!(
            MetricFailure::from(down),
            MetricFailure::Unreachable("HTTP 503 Service Unavailable: overloaded".into())
        );
        assert!(matches!(
            MetricFailure::from(MetricError::Query("HTTP 400 Bad Request".into())),
            MetricFailure::QueryError(_)
        ));
        assert_eq!(
            MetricFailure::from(MetricError::NoData),
            MetricFailure::NoData
        );
    }
}

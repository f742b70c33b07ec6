//! Metric providers (one file each) behind a closed enum, the query template renderer and the
//! built-in queries. A provider turns one query into one number or a `MetricError` (an empty
//! answer is `NoData`, never 0). Providers measure; they do not judge — bounds and the `onNoData`
//! policy are the decision core's. Must not import the controller.

pub mod builtin;
pub mod datadog;
mod http;
pub mod prometheus;
pub mod template;
pub mod web;

use std::time::Duration;

pub use datadog::DatadogProvider;
pub use http::{Auth, HttpSettings};
pub use prometheus::PrometheusProvider;
pub use template::{QueryModel, TemplateError};
pub use web::WebProvider;

use crate::analysis::MetricFailure;

/// Default timeout of one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The value is NaN or infinite (e.g. 0/0 with no traffic).
    #[error("the query returned {0}, not a number")]
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
            MetricError::Timeout(_) | MetricError::Connection(_) => {
                MetricFailure::Unreachable(e.to_string())
            }
            other => MetricFailure::QueryError(other.to_string()),
        }
    }
}

/// A finite value, or the error that says why not.
pub(crate) fn finite(v: f64) -> Result<f64, MetricError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(MetricError::NotFinite(v.to_string()))
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
}

impl MetricProvider {
    /// Runs one (rendered) query.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        match self {
            MetricProvider::Prometheus(p) => p.query(query).await,
            MetricProvider::Datadog(p) => p.query(query).await,
            MetricProvider::Web(p) => p.query(query).await,
        }
    }

    /// Whether the backend answers at all.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        match self {
            MetricProvider::Prometheus(p) => p.is_online().await,
            MetricProvider::Datadog(p) => p.is_online().await,
            MetricProvider::Web(p) => p.is_online().await,
        }
    }
}

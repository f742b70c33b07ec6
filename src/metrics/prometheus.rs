//! The Prometheus provider: an instant query through `prometheus-http-query` on our own reqwest
//! client. The answer must reduce to one sample: an empty vector is `NoData`, several series an
//! error naming the count, NaN/Inf an error; Prometheus's own error text is passed on.

use prometheus_http_query::{Client, Error as PromError, response::Data};

use super::{HttpSettings, MetricError, finite};

/// Queries one Prometheus server.
pub struct PrometheusProvider {
    client: Client,
    http: HttpSettings,
}

impl PrometheusProvider {
    /// A provider for the server at `address` (e.g. `http://prometheus.monitoring:9090`).
    pub fn new(address: &str, http: HttpSettings) -> Result<PrometheusProvider, MetricError> {
        let client = Client::from(http.client()?, address).map_err(|e| {
            MetricError::Config(format!(
                "metrics server address '{address}' is not a URL: {e}"
            ))
        })?;
        Ok(PrometheusProvider { client, http })
    }

    /// Runs `query` at the current time.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let answer = self
            .client
            .query(query)
            .get()
            .await
            .map_err(|e| self.error(e))?;
        match answer.data() {
            Data::Scalar(s) => finite(s.value()),
            Data::Vector(v) => match v.as_slice() {
                [] => Err(MetricError::NoData),
                [one] => finite(one.sample().value()),
                many => Err(MetricError::ManySeries(many.len())),
            },
            Data::Matrix(m) if m.is_empty() => Err(MetricError::NoData),
            Data::Matrix(_) => Err(MetricError::Answer(
                "a range vector; the query must return an instant vector or a scalar".into(),
            )),
        }
    }

    /// Runs `vector(1)`: the server answers queries.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        let v = self.query("vector(1)").await?;
        if v == 1.0 {
            Ok(())
        } else {
            Err(MetricError::Answer(format!("vector(1) returned {v}")))
        }
    }

    fn error(&self, e: PromError) -> MetricError {
        match e {
            PromError::Prometheus(p) if p.is_timeout() => MetricError::Timeout(self.http.timeout),
            PromError::Prometheus(p) => {
                MetricError::Query(format!("{}: {}", p.error_type(), p.message()))
            }
            other => self.http.classify(&other),
        }
    }
}

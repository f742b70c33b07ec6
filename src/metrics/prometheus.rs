//! The Prometheus provider: an instant query (`GET /api/v1/query`) through `prometheus-http-query`
//! on the shared client of its TLS mode, with the template's credentials as per-request headers
//! and the whole exchange bounded by the timeout. The answer must reduce to one sample: an empty
//! vector or NaN is `NoData`, several series an error naming the count, ±Inf an error naming it.
//! A 5xx or 429 answer is `Unavailable` (a PromQL timeout stays `Timeout`); Prometheus's own error
//! text of a rejected query (4xx: `bad_data`, `execution`) is passed on as a query error.
//! `samples` is the statistical judge's variant: every series (or every point of a range) is one
//! sample.
//! `query_range` (`/api/v1/query_range`, for `serin backtest`) judges each evaluation time of the
//! answer as an instant query at that time would be judged; `query_range_samples` keeps every
//! series' value at each time, as `samples` would have at that time.

use prometheus_http_query::error::PrometheusError;
use prometheus_http_query::response::{Data, PromqlResult};
use std::collections::BTreeMap;

use prometheus_http_query::{Client, Error as PromError};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{HttpSettings, MetricError, finite};

/// Largest answer read, in bytes (a query that returns many series is an error anyway).
const MAX_BODY: usize = 16 << 20;

/// Queries one Prometheus server.
pub struct PrometheusProvider {
    client: Client,
    headers: HeaderMap,
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
        Ok(PrometheusProvider {
            client,
            headers: http.headers()?,
            http,
        })
    }

    /// Runs `query` at the current time.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let answer = tokio::time::timeout(self.http.timeout, self.fetch(query))
            .await
            .map_err(|_| MetricError::Timeout(self.http.timeout))??;
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

    /// Runs `query` at the current time for the statistical judge: every series of an instant
    /// vector is one sample (one per pod), every point of a range (a subquery such as
    /// `rate(x[1m])[5m:30s]`) one sample, a scalar one sample. An empty answer is an empty list:
    /// the judge decides whether that is enough. NaN and ±Inf are passed on; the judge drops them.
    pub async fn samples(&self, query: &str) -> Result<Vec<f64>, MetricError> {
        let answer = tokio::time::timeout(self.http.timeout, self.fetch(query))
            .await
            .map_err(|_| MetricError::Timeout(self.http.timeout))??;
        Ok(match answer.data() {
            Data::Scalar(s) => vec![s.value()],
            Data::Vector(v) => v.iter().map(|one| one.sample().value()).collect(),
            Data::Matrix(m) => m
                .iter()
                .flat_map(|series| series.samples().iter().map(|s| s.value()))
                .collect(),
        })
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

    /// Runs `query` at every `step` seconds from `start` to `end` (Unix seconds, both included):
    /// per evaluation time (Unix seconds) its value, or the error an instant query at that time
    /// would have given (NaN is `NoData`, several series `ManySeries`). Times without any sample
    /// are absent: no data. The outer error is the request's (unreachable, query rejected).
    pub async fn query_range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<BTreeMap<i64, Result<f64, MetricError>>, MetricError> {
        let points = self.range_points(query, start, end, step).await?;
        Ok(points
            .into_iter()
            .map(|(at, values)| {
                let v = match values.as_slice() {
                    [one] => finite(*one),
                    many => Err(MetricError::ManySeries(many.len())),
                };
                (at, v)
            })
            .collect())
    }

    /// `query_range` for the statistical judge: per evaluation time the values of every series
    /// at that time, one sample per series, as `samples` takes them from an instant query at
    /// that time (NaN and ±Inf passed on for the judge to drop). Times without any sample are
    /// absent: no samples.
    pub async fn query_range_samples(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<BTreeMap<i64, Vec<f64>>, MetricError> {
        self.range_points(query, start, end, step).await
    }

    /// The range query's answer as the values of all series per evaluation time.
    async fn range_points(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<BTreeMap<i64, Vec<f64>>, MetricError> {
        let mut request = self.client.query_range(query, start, end, step as f64);
        for (name, value) in &self.headers {
            request = request.header(name, value.clone());
        }
        let answer = tokio::time::timeout(self.http.timeout, self.answer(request.get_raw()))
            .await
            .map_err(|_| MetricError::Timeout(self.http.timeout))??;
        match answer.data() {
            Data::Matrix(series) => Ok(by_time(series.iter().map(|s| {
                s.samples()
                    .iter()
                    .map(|p| (p.timestamp().round() as i64, p.value()))
            }))),
            // The range API answers a matrix even for scalar expressions.
            _ => Err(MetricError::Answer(
                "query_range did not answer a matrix".into(),
            )),
        }
    }

    /// Sends the query and reads the answer, the HTTP status judged before the body's shape.
    async fn fetch(&self, query: &str) -> Result<PromqlResult, MetricError> {
        let mut request = self.client.query(query);
        for (name, value) in &self.headers {
            request = request.header(name, value.clone());
        }
        self.answer(request.get_raw()).await
    }

    /// Reads the answer of a sent request (instant or range).
    async fn answer(
        &self,
        sent: impl std::future::Future<Output = Result<reqwest::Response, PromError>>,
    ) -> Result<PromqlResult, MetricError> {
        let resp = sent.await.map_err(|e| match e {
            PromError::Client(c) => self.http.classify(&c),
            other => MetricError::Answer(self.http.scrub(&other.to_string())),
        })?;
        let status = resp.status();
        let bytes = self.http.read(resp, MAX_BODY).await?;
        let doc: Option<Value> = serde_json::from_slice(&bytes).ok();
        let api_error = doc
            .as_ref()
            .filter(|d| d["status"] == "error")
            .and_then(|d| serde_json::from_value::<PrometheusError>(d.clone()).ok());
        if let Some(e) = &api_error
            && e.is_timeout()
        {
            return Err(MetricError::Timeout(self.http.timeout));
        }
        let what = match &api_error {
            Some(e) => format!("{}: {}", e.error_type(), e.message()).into_bytes(),
            None => bytes,
        };
        if let Some(busy) = self.http.unavailable(status, &what) {
            return Err(busy);
        }
        if let Some(e) = api_error {
            return Err(MetricError::Query(format!(
                "{}: {}",
                e.error_type(),
                e.message()
            )));
        }
        if !status.is_success() {
            return Err(MetricError::Query(self.http.status_line(status, &what)));
        }
        match doc {
            Some(d) if d["status"] == "success" => serde_json::from_value(d["data"].clone())
                .map_err(|e| MetricError::Answer(format!("not a query result: {e}"))),
            _ => Err(MetricError::Answer(format!(
                "not a Prometheus API answer: {}",
                self.http.status_line(status, &what)
            ))),
        }
    }
}

/// Regroups the points of a range answer, series by series, into the values at each time
/// (series order kept): what an instant query at that time would have returned.
fn by_time<S, P>(series: S) -> BTreeMap<i64, Vec<f64>>
where
    S: IntoIterator<Item = P>,
    P: IntoIterator<Item = (i64, f64)>,
{
    let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for points in series {
        for (t, v) in points {
            at.entry(t).or_default().push(v);
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_points_are_regrouped_into_one_sample_per_series_at_each_time() {
        // Three pods; the third appears late, the first has a gap at 120.
        let pods = vec![
            vec![(60, 0.10), (180, 0.11)],
            vec![(60, 0.20), (120, 0.21), (180, 0.22)],
            vec![(180, f64::NAN)],
        ];
        let at = by_time(pods);
        assert_eq!(at.len(), 3);
        assert_eq!(at[&60], vec![0.10, 0.20]);
        assert_eq!(at[&120], vec![0.21]);
        let last = &at[&180];
        assert_eq!((last.len(), last[0], last[1]), (3, 0.11, 0.22));
        assert!(last[2].is_nan(), "NaN is passed on for the judge to drop");
        assert!(by_time(Vec::<Vec<(i64, f64)>>::new()).is_empty());
    }
}

//! The Datadog provider: `GET /api/v1/query` over the last `window` with the API and
//! application keys (Secret keys `datadog_api_key`, `datadog_application_key`, as Flagger names
//! them, sent per request on the shared client); the value is the last point of the only series.
//! No series is `NoData`; a 5xx or 429 answer is `Unavailable`, another non-2xx a query error
//! quoting Datadog's `errors`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{HttpSettings, MetricError, finite};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 4 << 20;

/// Default API address.
pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";

/// One Datadog site.
pub struct DatadogProvider {
    client: reqwest::Client,
    headers: HeaderMap,
    http: HttpSettings,
    base: reqwest::Url,
    window: Duration,
}

impl DatadogProvider {
    /// A provider for `address` querying the last `window` of data.
    pub fn new(
        address: &str,
        window: Duration,
        http: HttpSettings,
    ) -> Result<DatadogProvider, MetricError> {
        let base = reqwest::Url::parse(address)
            .map_err(|e| MetricError::Config(format!("address '{address}' is not a URL: {e}")))?;
        Ok(DatadogProvider {
            client: http.client()?,
            headers: http.headers()?,
            http,
            base,
            window,
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, MetricError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| MetricError::Config(e.to_string()))?;
        let resp = self
            .client
            .get(url)
            .timeout(self.http.timeout)
            .headers(self.headers.clone())
            .query(query)
            .send()
            .await
            .map_err(|e| self.http.classify(&e))?;
        let status = resp.status();
        let bytes = self.http.read(resp, MAX_BODY).await?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        // Datadog's own words when it gave them, else the raw answer.
        let errors = body.as_ref().and_then(|b| b["errors"].as_array()).map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        });
        let what = errors.map(String::into_bytes).unwrap_or(bytes);
        if let Some(busy) = self.http.unavailable(status, &what) {
            return Err(busy);
        }
        if !status.is_success() {
            return Err(MetricError::Query(self.http.status_line(status, &what)));
        }
        let body = body.ok_or_else(|| MetricError::Answer("the answer is not JSON".into()))?;
        Ok(body)
    }

    /// Runs `query` over the window ending now.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let from = now.saturating_sub(self.window.as_secs());
        let body = self
            .get(
                "/api/v1/query",
                &[
                    ("from", from.to_string()),
                    ("to", now.to_string()),
                    ("query", query.to_string()),
                ],
            )
            .await?;
        if let Some(e) = body["error"].as_str() {
            return Err(MetricError::Query(e.to_string()));
        }
        value_of(&body)
    }

    /// The keys are valid (`GET /api/v1/validate`).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        let body = self.get("/api/v1/validate", &[]).await?;
        match body["valid"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(MetricError::Answer("the API key is not valid".into())),
        }
    }
}

/// The last non-null point of the only series.
pub fn value_of(body: &Value) -> Result<f64, MetricError> {
    let series = body["series"].as_array().cloned().unwrap_or_default();
    let one = match series.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let last = one["pointlist"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get(1).and_then(Value::as_f64))
        .next_back();
    match last {
        Some(v) => finite(v),
        None => Err(MetricError::NoData),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_point_of_the_only_series() {
        let body = json!({"status": "ok", "series": [{"metric": "m", "pointlist": [[1.0, 2.0], [2.0, 3.5], [3.0, null]]}]});
        assert_eq!(value_of(&body), Ok(3.5));
        assert_eq!(
            value_of(&json!({"status": "ok", "series": []})),
            Err(MetricError::NoData)
        );
        assert_eq!(
            value_of(&json!({"series": [{"pointlist": []}, {"pointlist": []}]})),
            Err(MetricError::ManySeries(2))
        );
    }
}

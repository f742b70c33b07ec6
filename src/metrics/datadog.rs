//! The Datadog provider: `GET /api/v1/query` over the last `window` with the API and
//! application keys (Secret keys `datadog_api_key`, `datadog_application_key`, as Flagger names
//! them); the value is the last point of the only series. No series is `NoData`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{HttpSettings, MetricError, finite};

/// Default API address.
pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";

/// One Datadog site.
pub struct DatadogProvider {
    client: reqwest::Client,
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
            .query(query)
            .send()
            .await
            .map_err(|e| self.http.classify(&e))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| self.http.classify(&e))?;
        if !status.is_success() {
            let errors = body["errors"].as_array().map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            return Err(MetricError::Query(format!(
                "HTTP {status}: {}",
                errors.unwrap_or_default()
            )));
        }
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

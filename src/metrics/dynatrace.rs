//! The Dynatrace provider: the metrics v2 query API (`GET /api/v2/metrics/query` with the
//! query as `metricSelector`, `resolution=Inf` over the window ending now) with
//! `Authorization: Api-Token <dynatrace_token>` (Flagger's Secret key). The value is the last
//! non-null data point of the only series: no series or only nulls is `NoData`, several series
//! (a selector that splits by a dimension) an error naming the count. Dynatrace's
//! `error.message` makes a rejected query's error; a 5xx or 429 answer is `Unavailable`.
//! Must not import the controller.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Auth, HttpSettings, MetricError, TemplateSource, finite, parse_url, secret_key};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 4 << 20;

/// One Dynatrace environment.
pub struct DynatraceProvider {
    client: reqwest::Client,
    http: HttpSettings,
    base: reqwest::Url,
    window_ms: u128,
}

impl DynatraceProvider {
    /// A provider for the environment at the template's address (`https://<id>.live.dynatrace.com`).
    pub fn new(source: TemplateSource<'_>) -> Result<DynatraceProvider, MetricError> {
        let address = source.address.as_deref().ok_or_else(|| {
            MetricError::Config(
                "the dynatrace provider needs the environment's address (https://<id>.live.dynatrace.com)"
                    .into(),
            )
        })?;
        let token = secret_key(source.secret, "dynatrace_token", "dynatrace")?;
        let mut http = source.http;
        http.auth = Auth::Scheme {
            scheme: "Api-Token".into(),
            token,
        };
        Ok(DynatraceProvider {
            client: http.client()?,
            http,
            base: parse_url(address)?,
            window_ms: source.window.as_millis().max(1),
        })
    }

    /// Runs the metric selector `query` over the window ending now.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let params = [
            ("metricSelector", query.trim().to_string()),
            ("resolution", "Inf".to_string()),
            ("from", now.saturating_sub(self.window_ms).to_string()),
            ("to", now.to_string()),
        ];
        let body = self.get("api/v2/metrics/query", &params).await?;
        value_of(&body)
    }

    /// The token may read metrics (`GET /api/v2/metrics?pageSize=1`).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        let params = [("pageSize", "1".to_string())];
        self.get("api/v2/metrics", &params).await.map(|_| ())
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, MetricError> {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}/{path}"));
        let request = self.client.get(url).query(params);
        let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let words = body.as_ref().and_then(error_of);
        self.http
            .judge(status, words.as_deref().map_or(&bytes[..], str::as_bytes))?;
        body.ok_or_else(|| MetricError::Answer("the answer is not JSON".into()))
    }
}

/// Dynatrace's own words for a rejected request: `error.message` and each constraint violation.
fn error_of(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let mut words = vec![error["message"].as_str()?.to_string()];
    for v in error["constraintViolations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(m) = v["message"].as_str() {
            words.push(match v["path"].as_str() {
                Some(p) => format!("{p}: {m}"),
                None => m.to_string(),
            });
        }
    }
    Some(words.join(" "))
}

/// The last non-null point of the only series of the only metric.
pub fn value_of(body: &Value) -> Result<f64, MetricError> {
    let results = body["result"].as_array().cloned().unwrap_or_default();
    let metric = match results.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let series = metric["data"].as_array().cloned().unwrap_or_default();
    let one = match series.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let last = one["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
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
        let one = |values: Value| json!({"result": [{"data": [{"values": values}]}]});
        assert_eq!(value_of(&one(json!([1.0, 2.5, null]))), Ok(2.5));
        assert_eq!(value_of(&one(json!([null]))), Err(MetricError::NoData));
        assert_eq!(value_of(&json!({"result": []})), Err(MetricError::NoData));
        assert_eq!(
            value_of(&json!({"result": [{"data": []}]})),
            Err(MetricError::NoData)
        );
        assert_eq!(
            value_of(&json!({"result": [{"data": [{"values": [1]}, {"values": [2]}]}]})),
            Err(MetricError::ManySeries(2))
        );
    }

    #[test]
    fn errors_name_the_violated_constraints() {
        let body = json!({"error": {"code": 400, "message": "Constraints violated.",
            "constraintViolations": [{"path": "metricSelector", "message": "Token is invalid"}]}});
        assert_eq!(
            error_of(&body).as_deref(),
            Some("Constraints violated. metricSelector: Token is invalid")
        );
    }
}

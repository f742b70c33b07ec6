//! The Splunk Observability (SignalFx) provider: the SignalFlow program runs over the window
//! ending now through SignalFlow's REST transport (`POST <stream>/v2/signalflow/execute` with
//! `start`, `stop`, `immediate=true`, header `X-SF-Token` from Flagger's `sf_token_key`), the
//! answer a Server-Sent Events stream read to its end. Flagger's address `https://api.<realm>.
//! signalfx.com` is mapped to the realm's stream host, as Flagger does. The value is the last
//! non-null point of the only published time series: none is `NoData`, several an error naming
//! the count. SignalFlow's `error` messages and an aborted channel are query errors; a 5xx or 429
//! answer is `Unavailable`. Must not import the controller.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Auth, HttpSettings, MetricError, TemplateSource, finite, parse_url, secret_key};

/// Largest answer read, in bytes (one window of one series is a few kilobytes).
const MAX_BODY: usize = 8 << 20;

/// One Splunk Observability realm.
pub struct SplunkProvider {
    client: reqwest::Client,
    http: HttpSettings,
    stream: reqwest::Url,
    api: reqwest::Url,
    window_ms: u128,
}

/// `url` with its host's first label swapped (`api.` ↔ `stream.`) and a websocket scheme made
/// HTTP, so that either of Flagger's address forms reaches both hosts.
fn sibling(url: &reqwest::Url, from: &str, to: &str) -> reqwest::Url {
    let mut out = url.clone();
    if let Some(rest) = url.host_str().and_then(|h| h.strip_prefix(from)) {
        let _ = out.set_host(Some(&format!("{to}{rest}")));
    }
    let scheme = match url.scheme() {
        "wss" => Some("https"),
        "ws" => Some("http"),
        _ => None,
    };
    if let Some(s) = scheme {
        // The URL crate refuses scheme changes between special and other schemes: rebuild.
        if let Ok(u) = reqwest::Url::parse(&out.as_str().replacen(url.scheme(), s, 1)) {
            out = u;
        }
    }
    out
}

fn join(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}/{path}"));
    url
}

impl SplunkProvider {
    /// A provider for the realm at the template's address (`https://api.<realm>.signalfx.com`).
    pub fn new(source: TemplateSource<'_>) -> Result<SplunkProvider, MetricError> {
        let address = source.address.as_deref().ok_or_else(|| {
            MetricError::Config(
                "the splunk provider needs the realm's address (https://api.<realm>.signalfx.com)"
                    .into(),
            )
        })?;
        let token = secret_key(source.secret, "sf_token_key", "splunk")?;
        let url = parse_url(address)?;
        let mut http = source.http;
        http.auth = Auth::Headers([("X-SF-Token".to_string(), token)].into());
        Ok(SplunkProvider {
            client: http.client()?,
            http,
            stream: join(&sibling(&url, "api.", "stream."), "v2/signalflow/execute"),
            api: join(&sibling(&url, "stream.", "api."), "v2/metric"),
            window_ms: source.window.as_millis().max(1),
        })
    }

    /// Runs the SignalFlow `program` over the window ending now.
    pub async fn query(&self, program: &str) -> Result<f64, MetricError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let params = [
            ("start", now.saturating_sub(self.window_ms).to_string()),
            ("stop", now.to_string()),
            ("immediate", "true".to_string()),
        ];
        let request = self
            .client
            .post(self.stream.clone())
            .query(&params)
            .header("content-type", "text/plain")
            .header("accept", "text/event-stream")
            .body(program.trim().to_string());
        let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|b| b["message"].as_str().map(String::from));
        self.http
            .judge(status, message.as_deref().map_or(&bytes[..], str::as_bytes))?;
        value_of(&String::from_utf8_lossy(&bytes))
    }

    /// The token may read metric metadata (`GET /v2/metric?limit=1`, as Flagger checks).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        let request = self.client.get(self.api.clone()).query(&[("limit", "1")]);
        let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
        self.http.judge(status, &bytes)
    }
}

/// The (event, data) messages of a Server-Sent Events stream.
fn events(stream: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in stream.replace("\r\n", "\n").split("\n\n") {
        let (mut event, mut data) = (String::from("message"), Vec::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            out.push((event, data.join("\n")));
        }
    }
    out
}

/// SignalFlow's words for a failed computation: each error's code and message.
fn error_text(payload: &Value) -> String {
    let errors: Vec<String> = payload["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let code = e["code"].as_str().unwrap_or("error");
            match e["message"]
                .as_str()
                .or_else(|| e["context"]["message"].as_str())
            {
                Some(m) => format!("{code}: {m}"),
                None => code.to_string(),
            }
        })
        .collect();
    match (payload["message"].as_str(), errors.is_empty()) {
        (Some(m), false) => format!("{m}: {}", errors.join("; ")),
        (Some(m), true) => m.to_string(),
        (None, false) => errors.join("; "),
        (None, true) => payload.to_string(),
    }
}

/// The last non-null point of the only time series of a computation's stream.
pub fn value_of(stream: &str) -> Result<f64, MetricError> {
    let mut series = BTreeSet::new();
    let mut last = None;
    for (event, data) in events(stream) {
        let payload: Value = serde_json::from_str(&data)
            .map_err(|e| MetricError::Answer(format!("a {event} message is not JSON: {e}")))?;
        match event.as_str() {
            "error" => return Err(MetricError::Query(error_text(&payload))),
            "control-message" if payload["event"] == "CHANNEL_ABORT" => {
                let why = payload["abortInfo"]["sf_job_abortReason"]
                    .as_str()
                    .map_or_else(|| payload["abortInfo"].to_string(), String::from);
                return Err(MetricError::Query(format!(
                    "the computation aborted: {why}"
                )));
            }
            "data" => {
                for point in payload["data"].as_array().into_iter().flatten() {
                    if let Some(v) = point["value"].as_f64() {
                        series.insert(point["tsId"].as_str().unwrap_or_default().to_string());
                        last = Some(v);
                    }
                }
            }
            _ => {}
        }
    }
    match (series.len(), last) {
        (0, _) | (_, None) => Err(MetricError::NoData),
        (1, Some(v)) => finite(v),
        (n, _) => Err(MetricError::ManySeries(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_point_of_the_only_series() {
        let stream = "event: control-message\ndata: {\"event\": \"STREAM_START\", \"timestampMs\": 1}\n\n\
            event: data\ndata: {\"data\": [{\"tsId\": \"AAA\", \"value\": 1.5}], \"logicalTimestampMs\": 1}\n\n\
            event: data\ndata: {\"data\": [{\"tsId\": \"AAA\", \"value\": 2}], \"logicalTimestampMs\": 2}\n\n\
            event: data\ndata: {\"data\": [{\"tsId\": \"AAA\", \"value\": null}], \"logicalTimestampMs\": 3}\n\n";
        assert_eq!(value_of(stream), Ok(2.0));
        assert_eq!(value_of(""), Err(MetricError::NoData));
        let two = "event: data\ndata: {\"data\": [{\"tsId\": \"A\", \"value\": 1}, {\"tsId\": \"B\", \"value\": 2}]}\n\n";
        assert_eq!(value_of(two), Err(MetricError::ManySeries(2)));
    }

    #[test]
    fn flagger_address_forms_reach_both_hosts() {
        let api = parse_url("https://api.us1.signalfx.com").unwrap();
        assert_eq!(
            sibling(&api, "api.", "stream.").as_str(),
            "https://stream.us1.signalfx.com/"
        );
        let stream = parse_url("wss://stream.us1.signalfx.com").unwrap();
        assert_eq!(
            sibling(&stream, "stream.", "api.").as_str(),
            "https://api.us1.signalfx.com/"
        );
        assert_eq!(
            sibling(&stream, "api.", "stream.").as_str(),
            "https://stream.us1.signalfx.com/"
        );
    }
}

//! The demo's SIMULATED traffic source: no pod serves a request in the embedded cluster, so this
//! generates request counts per Deployment, split by the weights of the HTTPRoute Serin writes,
//! each app version failing at its own rate. It serves them as Prometheus text (`/metrics`, for
//! `serin demo --prometheus URL` with a real Prometheus scraping it) and answers the demo
//! MetricTemplate's one query shape at `/api/v1/query` like Prometheus would. Used by the demo
//! only; must not be imported by the controller.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};

/// Requests per second across both sides.
const RPS: f64 = 200.0;
/// How often requests are generated.
const TICK: Duration = Duration::from_millis(100);

/// One tick's requests to one Deployment.
#[derive(Debug, Clone)]
struct Sample {
    at: f64,
    deployment: String,
    total: u64,
    errors: u64,
}

#[derive(Default)]
struct Counts {
    /// Seconds since the source started (the simulated clock of the samples).
    clock: f64,
    window: VecDeque<Sample>,
    /// Cumulative counters for `/metrics`: (deployment, version, code) → count.
    counters: BTreeMap<(String, String, &'static str), u64>,
    /// Fractional errors carried between ticks, so rates are exact over time.
    carry: BTreeMap<String, f64>,
}

/// The simulated traffic: cheap to clone, shared with the HTTP handlers.
#[derive(Clone, Default)]
pub struct Traffic {
    state: Arc<Mutex<Counts>>,
}

/// Where traffic goes this tick: (deployment, version, weight %, error rate %).
pub type Backend = (String, String, i32, f64);

impl Traffic {
    /// Generates one tick of requests to `backends`.
    pub fn tick(&self, backends: &[Backend]) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.clock += TICK.as_secs_f64();
        let now = s.clock;
        for (deployment, version, weight, error_rate) in backends {
            let total = (RPS * TICK.as_secs_f64() * f64::from(*weight) / 100.0).round() as u64;
            if total == 0 {
                continue;
            }
            let carry = s.carry.entry(deployment.clone()).or_default();
            *carry += total as f64 * error_rate / 100.0;
            let errors = (carry.floor() as u64).min(total);
            *carry -= errors as f64;
            s.window.push_back(Sample {
                at: now,
                deployment: deployment.clone(),
                total,
                errors,
            });
            let key = |code| (deployment.clone(), version.clone(), code);
            *s.counters.entry(key("200")).or_default() += total - errors;
            *s.counters.entry(key("500")).or_default() += errors;
        }
        while s.window.front().is_some_and(|x| x.at < now - 60.0) {
            s.window.pop_front();
        }
    }

    /// Percentage of failed requests to `deployment` over the last `seconds`; None without traffic.
    pub fn error_rate(&self, deployment: &str, seconds: f64) -> Option<f64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let since = s.clock - seconds;
        let (total, errors) = s
            .window
            .iter()
            .filter(|x| x.deployment == deployment && x.at > since)
            .fold((0, 0), |(t, e), x| (t + x.total, e + x.errors));
        (total > 0).then(|| errors as f64 * 100.0 / total as f64)
    }

    /// Prometheus text exposition of the cumulative counters.
    pub fn exposition(&self) -> String {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::from(
            "# HELP demo_http_requests_total Simulated requests served (serin demo).\n# TYPE demo_http_requests_total counter\n",
        );
        for ((deployment, version, code), n) in &s.counters {
            out.push_str(&format!(
                "demo_http_requests_total{{deployment=\"{deployment}\",version=\"{version}\",code=\"{code}\"}} {n}\n"
            ));
        }
        out
    }
}

/// The query of the demo's MetricTemplate; `{{ target }}` is the canary Deployment.
pub const ERROR_RATE_QUERY: &str = "100 * sum(rate(demo_http_requests_total{deployment=\"{{ target }}\",code=~\"5..\"}[5s])) / sum(rate(demo_http_requests_total{deployment=\"{{ target }}\"}[5s]))";

/// Answers a query of `ERROR_RATE_QUERY`'s shape as Prometheus's HTTP API would: a one-sample
/// vector, or an empty one when the Deployment had no traffic in the window.
fn answer(traffic: &Traffic, query: &str) -> Value {
    let deployment = regex::Regex::new(r#"deployment="([^"]+)""#)
        .ok()
        .and_then(|re| re.captures(query).map(|c| c[1].to_string()));
    let Some(deployment) = deployment else {
        return json!({"status": "error", "errorType": "bad_data",
            "error": "the demo's simulated source answers demo_http_requests_total error-rate queries only"});
    };
    let result = match traffic.error_rate(&deployment, 5.0) {
        Some(v) => json!([{"metric": {}, "value": [0, format!("{v}")]}]),
        None => json!([]),
    };
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

async fn query_get(
    State(t): State<Traffic>,
    Query(q): Query<BTreeMap<String, String>>,
) -> axum::Json<Value> {
    axum::Json(answer(&t, q.get("query").map(String::as_str).unwrap_or("")))
}

async fn query_post(
    State(t): State<Traffic>,
    axum::Form(q): axum::Form<BTreeMap<String, String>>,
) -> axum::Json<Value> {
    axum::Json(answer(&t, q.get("query").map(String::as_str).unwrap_or("")))
}

async fn metrics(State(t): State<Traffic>) -> String {
    t.exposition()
}

/// Serves `/metrics` and `/api/v1/query` on 127.0.0.1 (port picked by the system).
pub async fn serve(traffic: Traffic) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/api/v1/query", get(query_get).post(query_post))
        .route("/metrics", get(metrics))
        .with_state(traffic);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// The tick period, for the generator loop.
pub fn tick_period() -> Duration {
    TICK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_follows_weights_and_error_rates_exactly() {
        let t = Traffic::default();
        for _ in 0..50 {
            t.tick(&[
                ("podinfo-primary".into(), "6.0.0".into(), 80, 0.0),
                ("podinfo".into(), "6.2.0".into(), 20, 10.0),
            ]);
        }
        assert_eq!(t.error_rate("podinfo-primary", 5.0), Some(0.0));
        assert_eq!(t.error_rate("podinfo", 5.0), Some(10.0));
        assert_eq!(t.error_rate("nobody", 5.0), None);
        let text = t.exposition();
        assert!(
            text.contains(
                r#"demo_http_requests_total{deployment="podinfo",version="6.2.0",code="500"} 20"#
            ),
            "{text}"
        );
        let a = answer(&t, &ERROR_RATE_QUERY.replace("{{ target }}", "podinfo"));
        assert_eq!(a["data"]["result"][0]["value"][1], "10");
        let none = answer(&t, &ERROR_RATE_QUERY.replace("{{ target }}", "other"));
        assert_eq!(none["data"]["result"], json!([]));
    }
}

//! The demo's SIMULATED traffic source: no pod serves a request in the embedded cluster, so this
//! generates request counts per Deployment, split by the weights of the HTTPRoute Serin writes,
//! each app version failing at its own rate and answering at its own latency; a Deployment's
//! requests are spread evenly over its running pods, each pod a few percent faster or slower
//! than its version's latency (fixed by its name). It serves them as Prometheus text
//! (`/metrics`, for `serin demo --prometheus URL` with a real Prometheus scraping it) and answers
//! the demo MetricTemplates' two query shapes at `/api/v1/query` like Prometheus would: the error
//! rate of a Deployment (one sample) and the mean latency of each of its pods (one sample per
//! pod, for the judge). Used by the demo only; must not be imported by the controller.

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

/// One tick's requests to one pod: how many, and their summed latency in seconds.
#[derive(Debug, Clone)]
struct PodSample {
    at: f64,
    deployment: String,
    pod: String,
    count: u64,
    seconds: f64,
}

#[derive(Default)]
struct Counts {
    /// Seconds since the source started (the simulated clock of the samples).
    clock: f64,
    window: VecDeque<Sample>,
    pod_window: VecDeque<PodSample>,
    /// Cumulative counters for `/metrics`: (deployment, version, code) → count.
    counters: BTreeMap<(String, String, &'static str), u64>,
    /// Cumulative latency for `/metrics`: (deployment, version, pod) → (count, seconds).
    latency: BTreeMap<(String, String, String), (u64, f64)>,
    /// Fractional errors carried between ticks, so rates are exact over time.
    carry: BTreeMap<String, f64>,
    /// Per Deployment, the pod that gets the next request (round robin across ticks).
    next_pod: BTreeMap<String, usize>,
}

impl Counts {
    /// Hands `total` requests to the backend's pods in turn, each at its own latency.
    fn spread(&mut self, now: f64, b: &Backend, total: u64) {
        if b.pods.is_empty() {
            return;
        }
        let first = self.next_pod.get(&b.deployment).copied().unwrap_or(0);
        let n = b.pods.len();
        let mut counts = vec![0u64; n];
        for k in 0..total as usize {
            counts[(first + k) % n] += 1;
        }
        self.next_pod
            .insert(b.deployment.clone(), (first + total as usize) % n);
        for (pod, count) in b.pods.iter().zip(counts) {
            if count == 0 {
                continue;
            }
            let seconds = count as f64 * b.latency * pod_factor(pod);
            self.pod_window.push_back(PodSample {
                at: now,
                deployment: b.deployment.clone(),
                pod: pod.clone(),
                count,
                seconds,
            });
            let total = self
                .latency
                .entry((b.deployment.clone(), b.version.clone(), pod.clone()))
                .or_default();
            total.0 += count;
            total.1 += seconds;
        }
    }
}

/// The simulated traffic: cheap to clone, shared with the HTTP handlers.
#[derive(Clone, Default)]
pub struct Traffic {
    state: Arc<Mutex<Counts>>,
}

/// Where traffic goes this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// The Deployment.
    pub deployment: String,
    /// Its app version.
    pub version: String,
    /// Its share of the requests (%).
    pub weight: i32,
    /// Its error rate (%).
    pub error_rate: f64,
    /// Its mean latency (seconds).
    pub latency: f64,
    /// Its running pods, which share its requests.
    pub pods: Vec<String>,
}

/// A pod's latency relative to its version's, within ±4 %, fixed by its name: pods differ a
/// little, as real ones do, and the same pods answer alike from tick to tick.
fn pod_factor(pod: &str) -> f64 {
    // FNV-1a: stable across runs and platforms.
    let h = pod.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    1.0 + ((h % 81) as f64 - 40.0) / 1000.0
}

impl Traffic {
    /// Generates one tick of requests to `backends`.
    pub fn tick(&self, backends: &[Backend]) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.clock += TICK.as_secs_f64();
        let now = s.clock;
        for b in backends {
            let total = (RPS * TICK.as_secs_f64() * f64::from(b.weight) / 100.0).round() as u64;
            if total == 0 {
                continue;
            }
            let carry = s.carry.entry(b.deployment.clone()).or_default();
            *carry += total as f64 * b.error_rate / 100.0;
            let errors = (carry.floor() as u64).min(total);
            *carry -= errors as f64;
            s.window.push_back(Sample {
                at: now,
                deployment: b.deployment.clone(),
                total,
                errors,
            });
            let key = |code| (b.deployment.clone(), b.version.clone(), code);
            *s.counters.entry(key("200")).or_default() += total - errors;
            *s.counters.entry(key("500")).or_default() += errors;
            s.spread(now, b, total);
        }
        while s.window.front().is_some_and(|x| x.at < now - 60.0) {
            s.window.pop_front();
        }
        while s.pod_window.front().is_some_and(|x| x.at < now - 60.0) {
            s.pod_window.pop_front();
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

    /// Mean latency (seconds) of each pod of `deployment` that served requests in the last
    /// `seconds`, by pod name.
    pub fn pod_latency(&self, deployment: &str, seconds: f64) -> BTreeMap<String, f64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let since = s.clock - seconds;
        let mut per_pod: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for x in s
            .pod_window
            .iter()
            .filter(|x| x.deployment == deployment && x.at > since)
        {
            let e = per_pod.entry(x.pod.clone()).or_default();
            e.0 += x.count;
            e.1 += x.seconds;
        }
        per_pod
            .into_iter()
            .map(|(pod, (n, secs))| (pod, secs / n as f64))
            .collect()
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
        out.push_str("# HELP demo_http_request_duration_seconds Simulated request latency per pod (serin demo).\n# TYPE demo_http_request_duration_seconds summary\n");
        for ((deployment, version, pod), (n, secs)) in &s.latency {
            let labels = format!("deployment=\"{deployment}\",version=\"{version}\",pod=\"{pod}\"");
            out.push_str(&format!(
                "demo_http_request_duration_seconds_sum{{{labels}}} {secs}\ndemo_http_request_duration_seconds_count{{{labels}}} {n}\n"
            ));
        }
        out
    }
}

/// The query of the demo's MetricTemplate; `{{ target }}` is the canary Deployment.
pub const ERROR_RATE_QUERY: &str = "100 * sum(rate(demo_http_requests_total{deployment=\"{{ target }}\",code=~\"5..\"}[5s])) / sum(rate(demo_http_requests_total{deployment=\"{{ target }}\"}[5s]))";

/// The query of the demo's per-pod latency template (the judged metric): one series per pod of
/// `{{ target }}`, the canary's Deployment on one side and the primary's on the other.
/// Its window is short (2 s), so that pods which stopped serving (the last rollout's) leave it
/// before the next rollout's first judgement.
pub const POD_LATENCY_QUERY: &str = "sum by (pod) (rate(demo_http_request_duration_seconds_sum{deployment=\"{{ target }}\"}[2s])) / sum by (pod) (rate(demo_http_request_duration_seconds_count{deployment=\"{{ target }}\"}[2s]))";

/// Answers a query of `ERROR_RATE_QUERY`'s shape (a one-sample vector) or `POD_LATENCY_QUERY`'s
/// (one sample per pod) as Prometheus's HTTP API would; an empty vector when the Deployment had
/// no traffic in the window.
fn answer(traffic: &Traffic, query: &str) -> Value {
    let deployment = regex::Regex::new(r#"deployment="([^"]+)""#)
        .ok()
        .and_then(|re| re.captures(query).map(|c| c[1].to_string()));
    let Some(deployment) = deployment else {
        return json!({"status": "error", "errorType": "bad_data",
            "error": "the demo's simulated source answers its error-rate and per-pod latency queries only"});
    };
    // The range of the query's rate(), in seconds, as Prometheus would read it.
    let window = regex::Regex::new(r"\[(\d+)s\]")
        .ok()
        .and_then(|re| re.captures(query).and_then(|c| c[1].parse::<f64>().ok()))
        .unwrap_or(5.0);
    let result = if query.contains("demo_http_request_duration_seconds") {
        let pods = traffic.pod_latency(&deployment, window);
        pods.iter()
            .map(|(pod, v)| json!({"metric": {"pod": pod}, "value": [0, format!("{v}")]}))
            .collect()
    } else {
        match traffic.error_rate(&deployment, window) {
            Some(v) => json!([{"metric": {}, "value": [0, format!("{v}")]}]),
            None => json!([]),
        }
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

    fn backend(deployment: &str, weight: i32, error_rate: f64, latency: f64) -> Backend {
        Backend {
            deployment: deployment.into(),
            version: "6.2.0".into(),
            weight,
            error_rate,
            latency,
            pods: (0..5).map(|i| format!("{deployment}-abc-{i}")).collect(),
        }
    }

    #[test]
    fn traffic_follows_weights_and_error_rates_exactly() {
        let t = Traffic::default();
        for _ in 0..50 {
            t.tick(&[
                backend("podinfo-primary", 80, 0.0, 0.1),
                backend("podinfo", 20, 10.0, 0.1),
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

    #[test]
    fn the_latency_query_answers_one_sample_per_pod_near_the_version_latency() {
        let t = Traffic::default();
        for _ in 0..50 {
            t.tick(&[
                backend("podinfo-primary", 80, 0.0, 0.100),
                backend("podinfo", 20, 0.0, 0.130),
            ]);
        }
        let a = answer(&t, &POD_LATENCY_QUERY.replace("{{ target }}", "podinfo"));
        let result = a["data"]["result"].as_array().unwrap().clone();
        assert_eq!(result.len(), 5, "one sample per pod: {a}");
        for r in &result {
            let pod = r["metric"]["pod"].as_str().unwrap();
            let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            assert!((v - 0.130 * pod_factor(pod)).abs() < 1e-12, "{pod} {v}");
            assert!((0.130 * 0.96..=0.130 * 1.04).contains(&v), "{pod} {v}");
        }
        // Requests are spread evenly: 4 per tick over 5 pods, 40 each over 50 ticks.
        let text = t.exposition();
        assert!(
            text.contains(r#"demo_http_request_duration_seconds_count{deployment="podinfo",version="6.2.0",pod="podinfo-abc-0"} 40"#),
            "{text}"
        );
        let none = answer(&t, &POD_LATENCY_QUERY.replace("{{ target }}", "other"));
        assert_eq!(none["data"]["result"], json!([]));
    }
}

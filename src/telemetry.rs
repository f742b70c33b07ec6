//! Operational endpoints of the controller: `/healthz` (the process is alive), `/readyz` (ready
//! only after the first successful list of Canaries, and only while leading when leader election
//! is on) and `/metrics` (prometheus-client text format). Metric families of issue 9 grow here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `serin_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    /// Crate version.
    pub version: String,
    /// Default mesh provider.
    pub mesh_provider: String,
}

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, or the error's metric label.
    pub result: String,
}

/// Labels of per-canary gauges (bounded by the number of Canaries).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CanaryLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
}

/// Labels of `serin_canary_metric_analysis` (one series per metric of each Canary).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// Metric name in the analysis.
    pub metric: String,
}

/// The controller's metrics and readiness.
pub struct Telemetry {
    registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Canary weight by canary.
    pub weight: Family<CanaryLabels, Gauge>,
    /// Last value of each metric check (absent while the last query gave no value).
    pub metric_analysis: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    /// Ready: the Canary cache has listed once (and this instance leads, with election).
    pub ready: AtomicBool,
}

impl Telemetry {
    /// A registry with `serin_info` set.
    pub fn new(mesh_provider: &str) -> Arc<Telemetry> {
        let mut registry = Registry::default();
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION").into(),
            mesh_provider: mesh_provider.into(),
        })
        .set(1);
        registry.register("serin_info", "Serin build and configuration", info);
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "serin_reconcile",
            "Reconciles by result",
            reconciles.clone(),
        );
        let weight = Family::<CanaryLabels, Gauge>::default();
        registry.register(
            "serin_canary_weight",
            "Traffic percentage routed to the canary",
            weight.clone(),
        );
        let metric_analysis = Family::<MetricLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "serin_canary_metric_analysis",
            "Last value of each metric check of a canary analysis",
            metric_analysis.clone(),
        );
        Arc::new(Telemetry {
            registry,
            reconciles,
            weight,
            metric_analysis,
            ready: AtomicBool::new(false),
        })
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(t): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
    if t.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> ([(&'static str, &'static str); 1], String) {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        t.encode(),
    )
}

/// Serves the endpoints on `addr`; returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, t: Arc<Telemetry>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(t);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

//! Operational endpoints of the controller: `/healthz` (the process is alive), `/readyz` (ready
//! only after the first successful list of Canaries, and only while leading when leader election
//! is on) and `/metrics` (prometheus-client text format, the families of `families`).

pub mod api_calls;
mod families;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::registry::Registry;

pub use families::*;

/// The controller's metrics and readiness.
pub struct Telemetry {
    registry: Registry,
    families: Families,
    /// Ready: the Canary cache has listed once (and this instance leads, with election).
    pub ready: AtomicBool,
}

impl std::ops::Deref for Telemetry {
    type Target = Families;

    fn deref(&self) -> &Families {
        &self.families
    }
}

impl Telemetry {
    /// A registry with every family registered and `serin_info` set.
    pub fn new(mesh_provider: &str) -> Arc<Telemetry> {
        let mut registry = Registry::default();
        let families = Families::register(&mut registry, mesh_provider);
        Arc::new(Telemetry {
            registry,
            families,
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

//! `serin loadtester`: a drop-in for the common parts of Flagger's loadtester, in the same
//! binary. POST `/` starts a task from a webhook's metadata (`type: cmd`, `cmd: hey …`) in the
//! background, once per canary and command; the gate endpoints (`/gate/approve|halt|check|open|
//! close`) and rollback endpoints (`/rollback/check|open|close`) keep Flagger's semantics; unknown
//! task types are 400; at most `max_tasks` run at once (429 beyond). Must not import the controller.

pub mod hey;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

/// What a webhook call carries (Flagger's payload).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Call {
    /// Canary name.
    #[serde(default)]
    pub name: String,
    /// Canary namespace.
    #[serde(default)]
    pub namespace: String,
    /// Phase at the call.
    #[serde(default)]
    pub phase: String,
    /// The webhook's metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

impl Call {
    fn key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// Shared state of the server.
#[derive(Default)]
pub struct Tester {
    gates: Mutex<HashSet<String>>,
    rollbacks: Mutex<HashSet<String>>,
    running: Mutex<HashSet<String>>,
    max_tasks: usize,
}

type Reply = (StatusCode, String);

fn parse_call(body: &[u8]) -> Result<Call, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body is not a webhook payload: {e}"),
        )
    })
}

async fn start_task(State(t): State<Arc<Tester>>, body: axum::body::Bytes) -> Reply {
    let call = match parse_call(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let kind = call
        .metadata
        .get("type")
        .map(String::as_str)
        .unwrap_or("cmd");
    if kind != "cmd" {
        return (
            StatusCode::BAD_REQUEST,
            format!("task type '{kind}' is not supported; use type: cmd with a hey command"),
        );
    }
    let Some(cmd) = call.metadata.get("cmd") else {
        return (StatusCode::BAD_REQUEST, "metadata.cmd is missing".into());
    };
    let load = match hey::parse(cmd) {
        Ok(l) => l,
        Err(e) => return (StatusCode::BAD_REQUEST, e),
    };
    let key = format!("{}/{cmd}", call.key());
    {
        let mut running = t.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains(&key) {
            return (
                StatusCode::OK,
                format!("task already running for {}", call.key()),
            );
        }
        if running.len() >= t.max_tasks {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                format!("{} tasks are running; try again later", running.len()),
            );
        }
        running.insert(key.clone());
    }
    let tester = t.clone();
    tokio::spawn(async move {
        let outcome = hey::run(load).await;
        tracing::info!(task = %key, answered = outcome.answered.load(std::sync::atomic::Ordering::Relaxed),
            failed = outcome.failed.load(std::sync::atomic::Ordering::Relaxed), "load test finished");
        tester
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    });
    (StatusCode::OK, format!("task started for {}", call.key()))
}

fn set(t: &Mutex<HashSet<String>>, body: &[u8], open: bool) -> Reply {
    let call = match parse_call(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut s = t.lock().unwrap_or_else(|p| p.into_inner());
    if open {
        s.insert(call.key());
    } else {
        s.remove(&call.key());
    }
    (
        StatusCode::ACCEPTED,
        if open { "opened" } else { "closed" }.into(),
    )
}

fn check(t: &Mutex<HashSet<String>>, body: &[u8]) -> Reply {
    let call = match parse_call(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if t.lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&call.key())
    {
        (StatusCode::OK, "open".into())
    } else {
        (StatusCode::FORBIDDEN, "closed".into())
    }
}

/// The loadtester's routes.
pub fn router(max_tasks: usize) -> Router {
    let state = Arc::new(Tester {
        max_tasks: max_tasks.max(1),
        ..Default::default()
    });
    Router::new()
        .route("/", post(start_task))
        .route("/healthz", get(|| async { "ok" }))
        .route("/gate/approve", post(|| async { (StatusCode::OK, "approved") }))
        .route("/gate/halt", post(|| async { (StatusCode::FORBIDDEN, "halted") }))
        .route("/gate/check", post(|State(t): State<Arc<Tester>>, b: axum::body::Bytes| async move { check(&t.gates, &b) }))
        .route("/gate/open", post(|State(t): State<Arc<Tester>>, b: axum::body::Bytes| async move { set(&t.gates, &b, true) }))
        .route("/gate/close", post(|State(t): State<Arc<Tester>>, b: axum::body::Bytes| async move { set(&t.gates, &b, false) }))
        .route("/rollback/check", post(|State(t): State<Arc<Tester>>, b: axum::body::Bytes| async move { check(&t.rollbacks, &b) }))
        .route("/rollback/open", post(|State(t): State<Arc<Tester>>, b: axum::body::Bytes| async move { set(&t.rollbacks, &b, true) }))
        .route("/rollback/close", post(|State(t): State<Arc<Tester>>, b: axum::body::Bytes| async move { set(&t.rollbacks, &b, false) }))
        .with_state(state)
}

/// Serves the loadtester on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, max_tasks: usize) -> std::io::Result<()> {
    axum::serve(listener, router(max_tasks)).await
}

//! `serin loadtester`: a drop-in for Flagger's loadtester, in the same binary. POST `/` runs a
//! task from a webhook's metadata (`tasks` has the types): `cmd` tasks (`hey`, `ghz`) start in the
//! background and answer 202 at once; `bash`, `helm`/`helmv3` and `kubectl` block and answer 200
//! (with the output if `returnCmdOutput: "true"`) or 500 with the error and output, as Flagger
//! does. A task runs once per canary, type and command at a time (a repeated blocking call waits
//! for the running one's result); at most `max_tasks` run at once (429 beyond); a task that cannot
//! run (unknown type, missing binary, bad command) is 400. The gate endpoints
//! (`/gate/approve|halt|check|open|close`) and rollback endpoints (`/rollback/check|open|close`)
//! keep Flagger's semantics. Must not import the controller.

pub mod hey;
pub mod tasks;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::watch;

use tasks::{Finished, Spec};

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

/// How the loadtester runs tasks.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most tasks running at once.
    pub max_tasks: usize,
    /// Longest run of one task (Flagger's chart sets `cmd.timeout: 1h`).
    pub task_timeout: Duration,
    /// Where binaries are looked up (PATH-style); the process's PATH when None.
    pub search_path: Option<OsString>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_tasks: 4,
            task_timeout: Duration::from_secs(3600),
            search_path: None,
        }
    }
}

/// A task that is running: background ones only hold their place, blocking ones also hand their
/// result to every caller waiting for it.
enum Slot {
    Background,
    Blocking(watch::Receiver<Option<Finished>>),
}

/// Shared state of the server.
pub struct Tester {
    gates: Mutex<HashSet<String>>,
    rollbacks: Mutex<HashSet<String>>,
    running: Mutex<HashMap<String, Slot>>,
    options: Options,
    search: OsString,
}

type Reply = (StatusCode, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
    let spec = match tasks::parse(&call.metadata, &t.search) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e),
    };
    let key = format!("{}/{}", call.key(), spec.identity);
    if spec.blocking {
        t.run_blocking(key, call.key(), spec).await
    } else {
        t.start_background(key, call.key(), spec)
    }
}

impl Tester {
    fn busy(&self, running: usize) -> Reply {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!("{running} tasks are running; try again later"),
        )
    }

    /// Runs `spec` in a spawned task (so it outlives a caller that gives up) and frees its slot
    /// when done; the result goes to `tx` if there is one.
    fn spawn(
        self: &Arc<Self>,
        key: String,
        spec: Spec,
        tx: Option<watch::Sender<Option<Finished>>>,
    ) {
        let tester = self.clone();
        tokio::spawn(async move {
            let log_output = spec.log_output;
            let done = spec.task.run(tester.options.task_timeout).await;
            tracing::info!(task = %key, ok = done.ok, summary = %done.summary, "loadtester task finished");
            if log_output && !done.output.is_empty() {
                tracing::info!(task = %key, output = %done.output, "loadtester task output");
            }
            lock(&tester.running).remove(&key);
            if let Some(tx) = tx {
                let _ = tx.send(Some(done));
            }
        });
    }

    fn start_background(self: &Arc<Self>, key: String, who: String, spec: Spec) -> Reply {
        {
            let mut running = lock(&self.running);
            if running.contains_key(&key) {
                return (
                    StatusCode::ACCEPTED,
                    format!("task already running for {who}"),
                );
            }
            if running.len() >= self.options.max_tasks {
                return self.busy(running.len());
            }
            running.insert(key.clone(), Slot::Background);
        }
        self.spawn(key, spec, None);
        (StatusCode::ACCEPTED, format!("task started for {who}"))
    }

    async fn run_blocking(self: &Arc<Self>, key: String, who: String, spec: Spec) -> Reply {
        let return_output = spec.return_output;
        let mut rx = {
            let mut running = lock(&self.running);
            match running.get(&key) {
                // The same command for the same canary is running: share its result.
                Some(Slot::Blocking(rx)) => rx.clone(),
                Some(Slot::Background) => {
                    return (
                        StatusCode::CONFLICT,
                        format!("task already running for {who}"),
                    );
                }
                None if running.len() >= self.options.max_tasks => {
                    return self.busy(running.len());
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    running.insert(key.clone(), Slot::Blocking(rx.clone()));
                    self.spawn(key, spec, Some(tx));
                    rx
                }
            }
        };
        let done = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        match done {
            Some(d) if d.ok => (
                StatusCode::OK,
                if return_output {
                    d.output
                } else {
                    String::new()
                },
            ),
            Some(d) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}\n{}", d.summary, d.output)
                    .trim_end()
                    .to_string(),
            ),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the task ended without a result".into(),
            ),
        }
    }
}

fn set(t: &Mutex<HashSet<String>>, body: &[u8], open: bool) -> Reply {
    let call = match parse_call(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut s = lock(t);
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
    if lock(t).contains(&call.key()) {
        (StatusCode::OK, "open".into())
    } else {
        (StatusCode::FORBIDDEN, "closed".into())
    }
}

/// The loadtester's routes, with default options but `max_tasks`.
pub fn router(max_tasks: usize) -> Router {
    router_with(Options {
        max_tasks,
        ..Default::default()
    })
}

/// The loadtester's routes.
pub fn router_with(options: Options) -> Router {
    let search = options
        .search_path
        .clone()
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let state = Arc::new(Tester {
        gates: Default::default(),
        rollbacks: Default::default(),
        running: Default::default(),
        options: Options {
            max_tasks: options.max_tasks.max(1),
            ..options
        },
        search,
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

/// Serves the loadtester with `options` on `listener` until the process ends.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    options: Options,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(options)).await
}

//! The world the controller talks to besides the API server, in this process on 127.0.0.1:
//! * a Prometheus stand-in answering the success-rate query of each app with 99.9, or 50 while
//!   that app's revision is a bad one; it can stop (its listener and every open connection closed,
//!   so the controller gets connection refused) and start again on the same port;
//! * a webhook receiver recording every pre-rollout and post-rollout call with the payload's
//!   Canary name and revision checksum, answering 200.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::Uri;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Apps whose current revision must fail its metric check.
pub type BadApps = Arc<Mutex<BTreeSet<String>>>;

/// The listener and connection tasks while the stand-in is up.
struct Live {
    /// Shared with the accept loop, which only borrows it while polling, so `stop` closes the
    /// socket synchronously: a connect right after `stop` returns is refused.
    listener: Arc<Mutex<Option<TcpListener>>>,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

/// The Prometheus stand-in.
pub struct Prometheus {
    addr: SocketAddr,
    router: axum::Router,
    live: Mutex<Option<Live>>,
    pub bad: BadApps,
}

/// The value of `app="…"` in a query, if any.
fn app_of(query: &str) -> Option<&str> {
    let rest = &query[query.find("app=\"")? + 5..];
    Some(&rest[..rest.find('"')?])
}

async fn answer(
    State(bad): State<BadApps>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> axum::Json<serde_json::Value> {
    // GET carries the query in the URL, POST in a form body: read both.
    let form = [raw.unwrap_or_default().into_bytes(), body.to_vec()].concat();
    let query = url::form_urlencoded::parse(&form)
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let value = match app_of(&query) {
        Some(app) if lock(&bad).contains(app) => "50",
        Some(_) => "99.9",
        // The provider's own liveness probe (`vector(1)`).
        None => "1",
    };
    axum::Json(json!({"status": "success", "data": {"resultType": "vector",
        "result": [{"metric": {}, "value": [chrono::Utc::now().timestamp(), value]}]}}))
}

impl Prometheus {
    /// Starts on a free port.
    pub async fn start() -> Result<Prometheus, String> {
        let bad: BadApps = Arc::default();
        let router = axum::Router::new()
            .route("/api/v1/query", axum::routing::get(answer).post(answer))
            .with_state(bad.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let p = Prometheus {
            addr,
            router,
            live: Mutex::new(None),
            bad,
        };
        p.serve(listener)?;
        Ok(p)
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&self, std_listener: std::net::TcpListener) -> Result<(), String> {
        std_listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let listener = TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        let listener = Arc::new(Mutex::new(Some(listener)));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener.clone(),
            connections.clone(),
            self.router.clone(),
        ));
        *lock(&self.live) = Some(Live {
            listener,
            accept,
            connections,
        });
        Ok(())
    }

    /// Stops answering: the port refuses connections and open ones close.
    pub fn stop(&self) {
        if let Some(live) = lock(&self.live).take() {
            drop(lock(&live.listener).take());
            live.accept.abort();
            lock(&live.connections).abort_all();
        }
    }

    /// Listens again on the same port (std's bind sets SO_REUSEADDR, so the connections just
    /// closed do not keep the port). Retries briefly should the old socket linger.
    pub async fn resume(&self) -> Result<(), String> {
        if lock(&self.live).is_some() {
            return Ok(());
        }
        let mut last = String::new();
        for _ in 0..50 {
            match std::net::TcpListener::bind(self.addr) {
                Ok(l) => return self.serve(l),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the Prometheus stand-in cannot listen on {} again: {last}",
            self.addr
        ))
    }

    /// Sets whether `app`'s current revision is a bad one.
    pub fn set_bad(&self, app: &str, bad: bool) {
        let mut set = lock(&self.bad);
        if bad {
            set.insert(app.to_string());
        } else {
            set.remove(app);
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    listener: Arc<Mutex<Option<TcpListener>>>,
    connections: Arc<Mutex<JoinSet<()>>>,
    router: axum::Router,
) {
    loop {
        let accepted = std::future::poll_fn(|cx| match lock(&listener).as_ref() {
            Some(l) => l.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok((stream, _))) => stream,
            Some(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let mut set = lock(&connections);
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One webhook call as received.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// `pre-rollout` or `post-rollout` (the URL path).
    pub kind: String,
    /// The payload's Canary name.
    pub app: String,
    /// The payload's revision checksum.
    pub checksum: String,
    /// The payload's phase.
    pub phase: String,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Clone)]
struct Hooks {
    calls: Arc<Mutex<Vec<HookCall>>>,
    /// Bumped at every call, so the chaos can strike right after one.
    tick: tokio::sync::watch::Sender<u64>,
}

async fn receive(State(h): State<Hooks>, uri: Uri, body: Bytes) -> &'static str {
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |k: &str| payload[k].as_str().unwrap_or_default().to_string();
    lock(&h.calls).push(HookCall {
        kind: uri.path().trim_matches('/').to_string(),
        app: text("name"),
        checksum: text("checksum"),
        phase: text("phase"),
        at: Instant::now(),
    });
    h.tick.send_modify(|n| *n += 1);
    "ok"
}

/// The webhook receiver.
pub struct Receiver {
    pub url: String,
    hooks: Hooks,
    server: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Result<Receiver, String> {
        let hooks = Hooks {
            calls: Arc::default(),
            tick: tokio::sync::watch::Sender::new(0),
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(hooks.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            url: format!("http://{addr}"),
            hooks,
            server,
        })
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<HookCall> {
        lock(&self.hooks.calls).clone()
    }

    /// A receiver that sees every later call.
    pub fn ticks(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hooks.tick.subscribe()
    }

    /// Calls per (kind, app, checksum).
    pub fn tally(&self) -> HashMap<(String, String, String), Vec<HookCall>> {
        let mut out: HashMap<_, Vec<HookCall>> = HashMap::new();
        for c in self.calls() {
            out.entry((c.kind.clone(), c.app.clone(), c.checksum.clone()))
                .or_default()
                .push(c);
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

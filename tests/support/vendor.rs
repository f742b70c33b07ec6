//! A local HTTP receiver standing in for a vendor's metrics API: it records each request
//! (method, path, query, headers, body) and answers with what the test's rule says — or never,
//! to test timeouts without sleeping. Bodies recorded from each API's documentation live in
//! `tests/data/metrics/` (its README names the page each follows).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serin::metrics::HttpSettings;

/// What the receiver saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Seen {
    /// The decoded value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What to answer.
pub enum Reply {
    /// Status, content type, body.
    With(u16, &'static str, String),
    /// Never answer (the provider's timeout must fire).
    Never,
}

/// A JSON answer.
pub fn json(status: u16, body: impl Into<String>) -> Reply {
    Reply::With(status, "application/json", body.into())
}

/// A recorded body from tests/data/metrics/.
pub fn recorded(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/metrics")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

type Rule = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;
pub type Log = Arc<Mutex<Vec<Seen>>>;

/// A receiver on 127.0.0.1 answering by `rule`; its base URL and its log.
pub async fn receiver(rule: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (String, Log) {
    let log: Log = Default::default();
    let rule: Rule = Arc::new(rule);
    let app = Router::new()
        .fallback(
            |State((log, rule)): State<(Log, Rule)>,
             method: Method,
             uri: Uri,
             RawQuery(q): RawQuery,
             headers: HeaderMap,
             body: Bytes| async move {
                let seen = Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: q.unwrap_or_default(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let reply = rule(&seen);
                log.lock().unwrap().push(seen);
                match reply {
                    Reply::With(status, ctype, text) => (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", ctype)],
                        text,
                    )
                        .into_response(),
                    Reply::Never => {
                        std::future::pending::<()>().await;
                        Response::default()
                    }
                }
            },
        )
        .with_state((log.clone(), rule));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, log)
}

/// Settings with a short timeout (the `Never` replies wait this long) and one extra header.
pub fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_millis(500),
        headers: [("X-Scope-OrgID".to_string(), vec!["team-a".to_string()])].into(),
        ..Default::default()
    }
}

/// A Secret's keys.
pub fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

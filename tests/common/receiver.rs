//! A local HTTP receiver on 127.0.0.1 that records every request (path, JSON body, headers) and
//! answers by a rule of the test's: a status per path and attempt, or no answer at all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Request path.
    pub path: String,
    /// Body as JSON (Null when not JSON).
    pub body: serde_json::Value,
    /// Raw body.
    pub raw: Vec<u8>,
    /// Headers, lower-case names.
    pub headers: BTreeMap<String, String>,
}

/// How to answer: Some(status) or None (hold the request forever). Gets the path and how many
/// earlier requests that path had.
pub type Rule = Arc<dyn Fn(&str, usize) -> Option<u16> + Send + Sync>;

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Base URL.
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Everything received so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Paths received so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.path).collect()
    }
}

async fn record(
    State((hits, rule)): State<(Arc<Mutex<Vec<Hit>>>, Rule)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let before = {
        let mut h = hits.lock().unwrap();
        let before = h.iter().filter(|x| x.path == path).count();
        h.push(Hit {
            path: path.clone(),
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            raw: body.to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
        });
        before
    };
    match rule(&path, before) {
        Some(code) => StatusCode::from_u16(code).unwrap().into_response(),
        None => std::future::pending().await,
    }
}

/// Starts a receiver answering by `rule`.
pub async fn start(rule: Rule) -> Receiver {
    let hits: Arc<Mutex<Vec<Hit>>> = Default::default();
    let app = axum::Router::new()
        .fallback(record)
        .with_state((hits.clone(), rule));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, hits }
}

/// A receiver that answers 200 to everything.
pub async fn ok() -> Receiver {
    start(Arc::new(|_, _| Some(200))).await
}

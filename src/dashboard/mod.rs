//! The web dashboard (issue 22): an overview of every Canary, one page per Canary, live updates
//! over server-sent events, and — when turned on — promote/abort/pause/resume through the same
//! `serin.io/action` annotation as the CLI. Served by axum like /metrics, by `serin controller
//! --dashboard-addr` (reading the controller's own Canary cache) and by `serin dashboard` (its own
//! reflector through the kubeconfig). Pages are server-rendered strings; the assets are compiled
//! in. Must not decide anything about a rollout (the controller does) and must not poll the API
//! server per browser: pages and streams read the cache; only a Canary's page lists its Events.

mod actions;
pub mod auth;
pub mod chart;
pub mod csrf;
pub mod detail;
pub mod html;
pub mod overview;
#[cfg(test)]
mod page_tests;
mod pages;
pub mod sse;
#[cfg(test)]
mod wellformed;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};

use crate::controller::CanaryFeed;

/// Whose identity an action uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serin controller`: the person's bearer token, checked with TokenReview and
    /// SubjectAccessReview; the controller's client then patches.
    Controller,
    /// `serin dashboard`: the kubeconfig's identity; the API server decides.
    Local,
}

/// How the dashboard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Whose identity actions use.
    pub mode: Mode,
    /// Actions on (`--dashboard-actions`); read-only otherwise.
    pub actions: bool,
}

/// Everything a request handler needs.
pub struct Dashboard {
    feed: CanaryFeed,
    client: kube::Client,
    options: Options,
    csrf: csrf::CsrfKey,
    hub: sse::Hub,
}

/// The session cookie the CSRF token is derived from.
const SESSION_COOKIE: &str = "serin_session";
/// The bearer token cookie (controller mode).
const TOKEN_COOKIE: &str = "serin_token";

impl Dashboard {
    /// A dashboard over `feed`'s Canaries; `client` reads Events and (with actions) patches.
    /// Must be called within a tokio runtime (it starts the stream's task).
    pub fn new(
        feed: CanaryFeed,
        client: kube::Client,
        options: Options,
    ) -> Result<Arc<Dashboard>, String> {
        Ok(Arc::new(Dashboard {
            hub: sse::Hub::start(feed.clone()),
            feed,
            client,
            options,
            csrf: csrf::CsrfKey::random()?,
        }))
    }

    /// The routes of the contract.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(pages::overview))
            .route("/canaries/{ns}/{name}", get(pages::detail))
            .route("/canaries/{ns}/{name}/action", post(actions::act))
            .route("/events", get(pages::events))
            .route("/login", get(pages::login).post(actions::login))
            .route("/logout", post(actions::logout))
            .route("/assets/dashboard.css", get(pages::css))
            .route("/assets/dashboard.js", get(pages::js))
            .fallback(pages::not_found)
            .with_state(self.clone())
    }
}

/// Serves the dashboard on `addr` in the background; returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, dashboard: Arc<Dashboard>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = dashboard.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

/// A Canary cache of the dashboard's own, for `serin dashboard` (no controller in the process):
/// one reflector on `api` feeding the returned feed while the returned future runs.
pub fn own_feed(
    api: kube::Api<crate::api::Canary>,
) -> (CanaryFeed, impl std::future::Future<Output = ()> + Send) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let feed = CanaryFeed::default();
    let (store, writer) = reflector::store();
    feed.publish(Some(store));
    let touched = feed.clone();
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(move |event| {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watching Canaries failed; retrying");
            }
            touched.touch();
            std::future::ready(())
        });
    (feed, watch)
}

/// A cookie's value from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The request's bearer token: the `Authorization: Bearer` header, else the login cookie.
fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| cookie(headers, TOKEN_COOKIE).map(String::from))
}

/// The request's session, and the Set-Cookie that starts one when it had none.
fn session(headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, SESSION_COOKIE) {
        Some(s) => (s.to_string(), None),
        None => {
            let s = csrf::random_hex(32);
            let set = format!("{SESSION_COOKIE}={s}; Path=/; HttpOnly; SameSite=Strict");
            (s, Some(set))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            "a=1; serin_session=abc; serin_token=tok".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(bearer(&h).as_deref(), Some("tok"));
        h.insert("authorization", "Bearer hdr".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("hdr"));
        assert_eq!(session(&h), ("abc".to_string(), None));
        let (s, set) = session(&HeaderMap::new());
        assert_eq!(s.len(), 64);
        assert!(set.unwrap().contains("HttpOnly; SameSite=Strict"));
    }
}

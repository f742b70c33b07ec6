//! The GET handlers: overview, one Canary, the event stream, the login form and the compiled-in
//! assets; and the response frame every page shares (session cookie, security headers). Reads
//! Canaries from the cache only; a Canary's page lists its Events (one request per page view).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

use super::detail::{EventRow, Extras, Outcome};
use super::html::{Frame, esc, page};
use super::overview::{Filter, body as overview_body, rows};
use super::{Dashboard, Mode, bearer, session};
use crate::api::Canary;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Headers of every page: no framing by other sites, scripts and styles from here only (inline
/// style attributes allowed: the weight bars), no caching of pages that may carry a CSRF token.
fn secured(status: StatusCode, html: String, set_cookie: Option<String>) -> Response {
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

/// The request's session and the frame of its page.
pub(super) struct Visit {
    pub frame: Frame,
    pub csrf: String,
    pub set_cookie: Option<String>,
}

impl Dashboard {
    pub(super) fn visit(&self, headers: &HeaderMap) -> Visit {
        let (session, set_cookie) = session(headers);
        let csrf = self.csrf.token(&session);
        let frame = Frame {
            csrf: csrf.clone(),
            login: self.options.actions && self.options.mode == Mode::Controller,
            signed_in: bearer(headers).is_some(),
        };
        Visit {
            frame,
            csrf,
            set_cookie,
        }
    }

    /// A page with this frame.
    pub(super) fn respond(
        &self,
        status: StatusCode,
        visit: Visit,
        title: &str,
        body: &str,
    ) -> Response {
        secured(status, page(title, body, &visit.frame), visit.set_cookie)
    }

    fn canary(&self, ns: &str, name: &str) -> Option<Arc<Canary>> {
        self.feed.snapshot()?.into_iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name)
        })
    }

    /// The Canary's Events, newest first (at most 50), or why they cannot be read. The API
    /// server selects Events by `regarding` fields only on some versions: list the namespace's.
    async fn events_of(&self, c: &Canary) -> Result<Vec<EventRow>, String> {
        let ns = c.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) => crate::manifest::one_line(&s.message),
                other => crate::manifest::one_line(&other.to_string()),
            })?;
        let mut found: Vec<(Option<jiff::Timestamp>, EventRow)> = list
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Canary") && r.name == c.metadata.name
                })
            })
            .map(|e| {
                let when = e
                    .series
                    .as_ref()
                    .map(|s| s.last_observed_time.0)
                    .or(e.event_time.as_ref().map(|t| t.0))
                    .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0));
                let row = EventRow {
                    // As the decision record shows its times (UTC, to the second).
                    time: when
                        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    kind: e.type_.unwrap_or_default(),
                    reason: e.reason.unwrap_or_default(),
                    note: e.note.unwrap_or_default(),
                };
                (when, row)
            })
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(found.into_iter().take(50).map(|(_, r)| r).collect())
    }

    /// One Canary's page with `outcome` (an action's result) and `status`.
    pub(super) async fn detail_page(
        &self,
        headers: &HeaderMap,
        ns: &str,
        name: &str,
        outcome: Option<Outcome>,
        status: StatusCode,
    ) -> Response {
        let visit = self.visit(headers);
        let Some(c) = self.canary(ns, name) else {
            let mut body = format!("<h1>{}/{}</h1>", esc(ns), esc(name));
            if let Some(o) = outcome {
                let role = if o.refused { "alert" } else { "status" };
                body.push_str(&format!(
                    r#"<p id="action-result" role="{role}">{}</p>"#,
                    esc(&o.message)
                ));
            }
            body.push_str(r#"<p>No such Canary in the cache. <a href="/">All canaries</a></p>"#);
            let status = if status == StatusCode::OK {
                StatusCode::NOT_FOUND
            } else {
                status
            };
            return self.respond(status, visit, &format!("{ns}/{name}"), &body);
        };
        let extras = Extras {
            events: self.events_of(&c).await,
            actions_csrf: self.options.actions.then(|| visit.csrf.clone()),
            outcome,
        };
        let body = super::detail::body(&c, &extras, Utc::now());
        self.respond(status, visit, &format!("{ns}/{name}"), &body)
    }
}

/// `GET /`.
pub(super) async fn overview(
    State(d): State<Arc<Dashboard>>,
    Query(filter): Query<Filter>,
    headers: HeaderMap,
) -> Response {
    let snapshot = d.feed.snapshot();
    let ready = snapshot.is_some();
    let all = snapshot.unwrap_or_default();
    let mut namespaces: Vec<String> = all
        .iter()
        .filter_map(|c| c.metadata.namespace.clone())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let shown = rows(&all, &filter, Utc::now());
    let body = overview_body(&shown, &namespaces, &filter, ready);
    d.respond(StatusCode::OK, d.visit(&headers), "Canaries", &body)
}

/// `GET /canaries/{ns}/{name}`.
pub(super) async fn detail(
    State(d): State<Arc<Dashboard>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    d.detail_page(&headers, &ns, &name, None, StatusCode::OK)
        .await
}

/// `GET /events`.
pub(super) async fn events(State(d): State<Arc<Dashboard>>) -> Response {
    let mut resp = d.hub.response().into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The login page's content: a note for the mode, and the form (the label is shown above the
/// field by the stylesheet; the contract's DOM puts the field first).
pub(super) fn login_body(mode: Mode, actions: bool, csrf: &str) -> String {
    let note = match (mode, actions) {
        (Mode::Local, _) => {
            "<p>This dashboard acts with your kubeconfig's identity; no login is needed.</p>"
        }
        (Mode::Controller, false) => {
            "<p>Actions are off on this dashboard (read-only); a token changes nothing.</p>"
        }
        (Mode::Controller, true) => {
            "<p>Actions are checked against your Kubernetes permissions: paste a bearer token (e.g. from <code>kubectl create token</code>). It is kept in an HttpOnly cookie of this browser only.</p>"
        }
    };
    format!(
        r#"<h1>Log in</h1>
{note}
<form id="login" method="post" action="/login"><input id="token" name="token" type="password"><label for="token">Bearer token</label><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Log in</button></form>"#,
        csrf = esc(csrf)
    )
}

/// `GET /login`.
pub(super) async fn login(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    let visit = d.visit(&headers);
    let body = login_body(d.options.mode, d.options.actions, &visit.csrf);
    d.respond(StatusCode::OK, visit, "Log in", &body)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /assets/dashboard.css`.
pub(super) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /assets/dashboard.js`.
pub(super) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// Anything else.
pub(super) async fn not_found(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    let body = r#"<h1>Not found</h1><p>There is no such page. <a href="/">All canaries</a></p>"#;
    d.respond(StatusCode::NOT_FOUND, d.visit(&headers), "Not found", body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_assets_stay_within_their_budget() {
        let total = super::CSS.len() + super::JS.len();
        assert!(total < 200 * 1024, "assets are {total} bytes");
        assert!(!super::CSS.contains("@import") && !super::CSS.contains("url(http"));
        assert!(!super::JS.contains("http://") && !super::JS.contains("https://"));
    }
}

//! The POST handlers: an action on a Canary (promote, abort, pause, resume — the same
//! `serin.io/action` patch as `serin abort` etc., shared with `cli::operate`), log in (keep a
//! bearer token in an HttpOnly cookie) and log out. Every POST passes the CSRF checks first;
//! in the controller an action also passes TokenReview and SubjectAccessReview (`auth`).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kube::api::Api;
use serde::Deserialize;

use super::auth::{self, Denied, Target};
use super::csrf::PostCheck;
use super::detail::Outcome;
use super::html::esc;
use super::{Dashboard, Mode, SESSION_COOKIE, TOKEN_COOKIE, bearer, cookie};
use crate::analysis::{ACTION_ANNOTATION, Action};
use crate::api::Canary;
use crate::cli::operate::{request_action, verb};

/// The fields of a POST form (all optional: a missing one is refused with a sentence).
#[derive(Debug, Deserialize, Default)]
pub(super) struct PostForm {
    action: Option<String>,
    csrf: Option<String>,
    token: Option<String>,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Dashboard {
    /// The CSRF checks of a POST; the refusal as a sentence.
    fn csrf_ok(&self, headers: &HeaderMap, form: &PostForm) -> Result<(), String> {
        if [header::ORIGIN, header::REFERER, header::HOST]
            .iter()
            .any(|h| headers.get_all(h).iter().count() > 1)
        {
            return Err("Refused: the request named more than one Origin, Referer or Host.".into());
        }
        self.csrf
            .check(&PostCheck {
                session: cookie(headers, SESSION_COOKIE),
                token: form.csrf.as_deref(),
                host: header_str(headers, header::HOST),
                origin: header_str(headers, header::ORIGIN),
                referer: header_str(headers, header::REFERER),
            })
            .map_err(|r| format!("Refused: {r}."))
    }

    /// A short page for a refusal that has no Canary page to show it on.
    fn refusal_page(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        message: &str,
        login_link: bool,
    ) -> Response {
        let link = if login_link {
            r#" <a href="/login">Log in</a>"#
        } else {
            ""
        };
        let body = format!(
            r#"<h1>Not done</h1><p id="action-result" role="alert">{}</p><p>{link} <a href="/">All canaries</a></p>"#,
            esc(message)
        );
        self.respond(status, self.visit(headers), "Not done", &body)
    }

    /// Asks for the action with whose identity the mode says; the sentence for the page.
    async fn request(
        &self,
        headers: &HeaderMap,
        target: &Target<'_>,
        action: Action,
    ) -> Result<String, Denied> {
        if self.options.mode == Mode::Controller {
            let token = bearer(headers).unwrap_or_default();
            let user = auth::authorise(&self.client, &token, target).await?;
            tracing::info!(user = %user, namespace = target.namespace, canary = target.name, action = %verb(action), "dashboard action");
        }
        let api: Api<Canary> = Api::namespaced(self.client.clone(), target.namespace);
        let value = request_action(&api, target.name, action, Utc::now())
            .await
            .map_err(|e| auth::patch_refusal(&e))?;
        Ok(format!(
            "{} requested for canary {}/{} ({ACTION_ANNOTATION}: {value}); the controller acts on it at its next reconcile.",
            verb(action),
            target.namespace,
            target.name
        ))
    }
}

/// `POST /canaries/{ns}/{name}/action`.
pub(super) async fn act(
    State(d): State<Arc<Dashboard>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<PostForm>,
) -> Response {
    if !d.options.actions {
        return d.refusal_page(
            &headers,
            StatusCode::NOT_FOUND,
            "Actions are off on this dashboard (read-only).",
            false,
        );
    }
    let refused = |message: String| Outcome {
        refused: true,
        message,
    };
    if let Err(e) = d.csrf_ok(&headers, &form) {
        return d
            .detail_page(
                &headers,
                &ns,
                &name,
                Some(refused(e)),
                StatusCode::FORBIDDEN,
            )
            .await;
    }
    let action = match form.action.as_deref().map(Action::parse) {
        Some(Ok(a)) => a,
        _ => {
            let e =
                "Refused: the form's action must be promote, abort, pause or resume.".to_string();
            return d
                .detail_page(
                    &headers,
                    &ns,
                    &name,
                    Some(refused(e)),
                    StatusCode::BAD_REQUEST,
                )
                .await;
        }
    };
    let target = Target {
        namespace: &ns,
        name: &name,
    };
    match d.request(&headers, &target, action).await {
        Ok(message) => {
            let done = Outcome {
                refused: false,
                message,
            };
            d.detail_page(&headers, &ns, &name, Some(done), StatusCode::OK)
                .await
        }
        Err(denied) if denied.status == 401 => d.refusal_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            &format!("Refused: {}.", denied.message),
            true,
        ),
        Err(denied) => {
            let status = StatusCode::from_u16(denied.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let message = format!("Refused: {}.", denied.message.trim_end_matches('.'));
            d.detail_page(&headers, &ns, &name, Some(refused(message)), status)
                .await
        }
    }
}

/// A 303 to `/` that sets `cookie`.
fn see_home(cookie: String) -> Response {
    let mut resp = (StatusCode::SEE_OTHER, "").into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    resp
}

/// Whether a token can be kept in a cookie as it is (JWTs and kubeadm-style tokens can).
fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 8192
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
}

/// `POST /login`.
pub(super) async fn login(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<PostForm>,
) -> Response {
    if let Err(e) = d.csrf_ok(&headers, &form) {
        return d.refusal_page(&headers, StatusCode::FORBIDDEN, &e, false);
    }
    let token = form.token.as_deref().unwrap_or_default().trim();
    if !cookie_safe(token) {
        let e = "Refused: the token is empty or has characters a bearer token cannot have.";
        return d.refusal_page(&headers, StatusCode::BAD_REQUEST, e, true);
    }
    see_home(format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    ))
}

/// `POST /logout`.
pub(super) async fn logout(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<PostForm>,
) -> Response {
    if let Err(e) = d.csrf_ok(&headers, &form) {
        return d.refusal_page(&headers, StatusCode::FORBIDDEN, &e, false);
    }
    see_home(format!(
        "{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_cookie_safe_tokens_are_kept() {
        assert!(super::cookie_safe("eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"));
        assert!(super::cookie_safe("abcdef.0123456789abcdef"));
        assert!(!super::cookie_safe(""));
        assert!(!super::cookie_safe("a;b"));
        assert!(!super::cookie_safe("a b"));
    }
}

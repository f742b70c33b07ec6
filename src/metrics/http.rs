//! The HTTP side every metric provider shares: one pooled `reqwest::Client` per TLS mode (verified,
//! or the template's `insecureSkipVerify`), timeouts per request (prometheus-http-query has none of
//! its own), and auth and custom headers sent per request, marked sensitive (never printed). Answers
//! are read with a size bound; 5xx and 429 answers are `Unavailable` with a short excerpt from which
//! every credential is scrubbed; transport errors are sorted into timeouts, connection failures and
//! the rest. Must not import the controller.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::MetricError;

/// `User-Agent` of every query, so providers' access logs name the caller.
const AGENT: &str = concat!("serin/", env!("CARGO_PKG_VERSION"));
/// Longest excerpt of an error answer quoted in a `MetricError`, in characters.
const EXCERPT: usize = 200;

/// Credentials from the template's Secret.
#[derive(Clone, Default, PartialEq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// Headers by name (Datadog's API and application keys, New Relic's query key).
    Headers(BTreeMap<String, String>),
    /// `Authorization: <scheme> <token>` (Dynatrace's `Api-Token`, InfluxDB's `Token`).
    Scheme {
        /// The scheme word before the token.
        scheme: String,
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a credential.
        let kind = match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic { .. } => "basic",
            Auth::Headers(_) => "headers",
            Auth::Scheme { .. } => "scheme",
        };
        write!(f, "Auth({kind})")
    }
}

/// How a provider talks HTTP.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Timeout of one request.
    pub timeout: Duration,
    /// Accept any TLS certificate (the template's insecureSkipVerify).
    pub insecure_skip_verify: bool,
    /// Extra headers (a header may repeat).
    pub headers: BTreeMap<String, Vec<String>>,
    /// Credentials.
    pub auth: Auth,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: super::DEFAULT_TIMEOUT,
            insecure_skip_verify: false,
            headers: BTreeMap::new(),
            auth: Auth::None,
        }
    }
}

fn header_value(v: &str, what: &str) -> Result<HeaderValue, MetricError> {
    let mut value = HeaderValue::from_str(v)
        .map_err(|_| MetricError::Config(format!("{what} is not a valid HTTP header value")))?;
    value.set_sensitive(true);
    Ok(value)
}

fn header_name(n: &str) -> Result<HeaderName, MetricError> {
    HeaderName::from_bytes(n.as_bytes())
        .map_err(|_| MetricError::Config(format!("'{n}' is not a valid HTTP header name")))
}

impl HttpSettings {
    /// The auth and custom headers of every request, each marked sensitive.
    pub fn headers(&self) -> Result<HeaderMap, MetricError> {
        let mut headers = HeaderMap::new();
        for (name, values) in &self.headers {
            for v in values {
                headers.append(
                    header_name(name)?,
                    header_value(v, &format!("header {name}"))?,
                );
            }
        }
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(t) => {
                headers.insert(
                    AUTHORIZATION,
                    header_value(&format!("Bearer {t}"), "token")?,
                );
            }
            Auth::Basic { username, password } => {
                headers.insert(
                    AUTHORIZATION,
                    header_value(&basic(username, password), "username/password")?,
                );
            }
            Auth::Headers(h) => {
                for (k, v) in h {
                    headers.insert(header_name(k)?, header_value(v, k)?);
                }
            }
            Auth::Scheme { scheme, token } => {
                headers.insert(
                    AUTHORIZATION,
                    header_value(&format!("{scheme} {token}"), "token")?,
                );
            }
        }
        Ok(headers)
    }

    /// The shared client of this TLS mode, built once per process. It carries no credentials and
    /// no timeout: both go on each request (`headers()`, `timeout`).
    pub fn client(&self) -> Result<reqwest::Client, MetricError> {
        static VERIFIED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
        static UNVERIFIED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
        let insecure = self.insecure_skip_verify;
        let cell = if insecure { &UNVERIFIED } else { &VERIFIED };
        cell.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(AGENT)
                .danger_accept_invalid_certs(insecure)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .clone()
        .map_err(MetricError::Config)
    }

    /// Sorts a reqwest error (including one wrapped as a source) into ours.
    pub fn classify(&self, e: &(dyn std::error::Error + 'static)) -> MetricError {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(r) = err.downcast_ref::<reqwest::Error>() {
                if r.is_timeout() {
                    return MetricError::Timeout(self.timeout);
                }
                // A refused connection, or a pooled one the server closed (it went away).
                if r.is_connect() || r.is_request() {
                    return MetricError::Connection(self.scrub(&chain(r)));
                }
                if r.is_decode() {
                    return MetricError::Answer(self.scrub(&r.to_string()));
                }
            }
            cur = err.source();
        }
        MetricError::Answer(self.scrub(&e.to_string()))
    }

    /// Reads an answer's body, at most `max` bytes.
    pub(crate) async fn read(
        &self,
        mut resp: reqwest::Response,
        max: usize,
    ) -> Result<Vec<u8>, MetricError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(&e))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Err(MetricError::Answer(format!(
                    "the answer is larger than {max} bytes"
                )));
            }
        }
        Ok(bytes)
    }

    /// Sends `request` with this provider's timeout and headers (credentials included) and reads
    /// the answer, at most `max` bytes: its status and body. Transport errors are sorted
    /// (`classify`); the status is left to the caller, who knows where the provider's own
    /// words are in the body.
    pub(crate) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        max: usize,
    ) -> Result<(StatusCode, Vec<u8>), MetricError> {
        let resp = request
            .timeout(self.timeout)
            .headers(self.headers()?)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = resp.status();
        let body = self.read(resp, max).await?;
        Ok((status, body))
    }

    /// Ok for a 2xx; `Unavailable` for a 5xx or 429; a query error quoting `what` (the
    /// provider's own message, else the body) for any other status — 401/403 included: bad
    /// credentials do not heal by waiting.
    pub(crate) fn judge(&self, status: StatusCode, what: &[u8]) -> Result<(), MetricError> {
        if let Some(busy) = self.unavailable(status, what) {
            return Err(busy);
        }
        if !status.is_success() {
            return Err(MetricError::Query(self.status_line(status, what)));
        }
        Ok(())
    }

    /// `Unavailable` for a 5xx or 429 answer (the provider cannot answer now; the query may be
    /// fine), quoting `what` (the provider's own message, else the body).
    pub(crate) fn unavailable(&self, status: StatusCode, what: &[u8]) -> Option<MetricError> {
        let busy = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        busy.then(|| MetricError::Unavailable(self.status_line(status, what)))
    }

    /// `HTTP <status>: <excerpt>`, the excerpt short and without credentials.
    pub(crate) fn status_line(&self, status: StatusCode, what: &[u8]) -> String {
        let text = String::from_utf8_lossy(what);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        // Scrub before cutting, so that no cut-off credential survives the cut.
        let head: String = flat.chars().take(EXCERPT * 20).collect();
        let clean: String = self.scrub(&head).chars().take(EXCERPT).collect();
        if clean.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {clean}")
        }
    }

    /// `text` without any credential this provider sends (an error page may echo a request).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<String> = match &self.auth {
            Auth::None => Vec::new(),
            Auth::Bearer(t) => vec![t.clone()],
            Auth::Basic { username, password } => {
                vec![password.clone(), basic(username, password)]
            }
            Auth::Headers(h) => h.values().cloned().collect(),
            Auth::Scheme { token, .. } => vec![token.clone()],
        };
        secrets.extend(self.headers.values().flatten().cloned());
        let mut out = redact(text);
        // Very short values would blank out ordinary words; they are no credentials anyway.
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// The `Authorization` value of basic auth.
fn basic(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// An error and its causes in one line ("error sending request: ...: invalid peer certificate"),
/// each text once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Error texts name the URL; drop any user:password part of it.
fn redact(text: &str) -> String {
    static CREDS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CREDS.get_or_init(|| regex::Regex::new(r"://[^/@\s]+@").expect("valid regex"));
    re.replace_all(text, "://").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug_or_errors() {
        let s = HttpSettings {
            auth: Auth::Bearer("s3cret".into()),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(
            redact("error sending request for url (http://u:pw@host/x)"),
            "error sending request for url (http://host/x)"
        );
    }

    #[test]
    fn bad_headers_are_config_errors_naming_the_header() {
        let s = HttpSettings {
            headers: [("X-Org".to_string(), vec!["a\nb".to_string()])].into(),
            ..Default::default()
        };
        assert_eq!(
            s.headers().unwrap_err(),
            MetricError::Config("header X-Org is not a valid HTTP header value".into())
        );
    }

    #[test]
    fn headers_are_sent_per_request_and_marked_sensitive() {
        let s = HttpSettings {
            headers: [("X-Org".to_string(), vec!["team-a".to_string()])].into(),
            auth: Auth::Basic {
                username: "u".into(),
                password: "p".into(),
            },
            ..Default::default()
        };
        let h = s.headers().unwrap();
        assert_eq!(h["authorization"], "Basic dTpw");
        assert!(h.values().all(HeaderValue::is_sensitive));
    }

    #[test]
    fn excerpts_are_short_flat_and_free_of_credentials() {
        let s = HttpSettings {
            auth: Auth::Bearer("t0ken-s3cret".into()),
            ..Default::default()
        };
        let page = format!(
            "<html>\n  upstream  failed for Bearer t0ken-s3cret\n{}</html>",
            "x".repeat(500)
        );
        let line = s.status_line(StatusCode::BAD_GATEWAY, page.as_bytes());
        assert!(line.starts_with("HTTP 502 Bad Gateway: <html> upstream failed for Bearer ***"));
        assert!(!line.contains("s3cret"));
        assert!(line.chars().count() <= "HTTP 502 Bad Gateway: ".len() + EXCERPT);
        assert_eq!(
            s.unavailable(StatusCode::TOO_MANY_REQUESTS, b""),
            Some(MetricError::Unavailable(
                "HTTP 429 Too Many Requests".into()
            ))
        );
        assert_eq!(s.unavailable(StatusCode::NOT_FOUND, b"x"), None);
    }
}

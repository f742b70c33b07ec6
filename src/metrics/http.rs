//! The HTTP client every metric provider is built on: our own `reqwest::Client` with a timeout
//! (prometheus-http-query has none), TLS verified unless the template says otherwise, and auth
//! and custom headers as default headers marked sensitive (never printed). Errors are sorted
//! into timeouts, connection failures and the rest.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::MetricError;

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
    /// Headers by name (Datadog's API and application keys).
    Headers(BTreeMap<String, String>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a credential.
        let kind = match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic { .. } => "basic",
            Auth::Headers(_) => "headers",
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
    /// Builds the client.
    pub fn client(&self) -> Result<reqwest::Client, MetricError> {
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
                let raw = format!("{username}:{password}");
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                headers.insert(
                    AUTHORIZATION,
                    header_value(&format!("Basic {b64}"), "username/password")?,
                );
            }
            Auth::Headers(h) => {
                for (k, v) in h {
                    headers.insert(header_name(k)?, header_value(v, k)?);
                }
            }
        }
        reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .default_headers(headers)
            .danger_accept_invalid_certs(self.insecure_skip_verify)
            .build()
            .map_err(|e| MetricError::Config(format!("cannot build the HTTP client: {e}")))
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
                    return MetricError::Connection(redact(&chain(r)));
                }
                if r.is_decode() {
                    return MetricError::Answer(redact(&r.to_string()));
                }
            }
            cur = err.source();
        }
        MetricError::Answer(redact(&e.to_string()))
    }
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
            s.client().unwrap_err(),
            MetricError::Config("header X-Org is not a valid HTTP header value".into())
        );
    }
}

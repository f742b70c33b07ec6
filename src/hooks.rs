//! Webhook calls (DESIGN.md section 4): POST of `{name, namespace, phase, checksum, metadata}`
//! (event hooks add `eventMessage`, `eventType`, `timestamp`), a timeout (10 s by default), retries
//! with backoff, any 2xx is success, `disableTLS`, an optional HMAC signature. Hooks of one tick
//! are called concurrently; their outcomes come back keyed by hook name so the decision core reads
//! them in spec order. What an outcome means is the core's business, not this module's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::analysis::HookOutcome;
use crate::api::CanaryWebhook;
use crate::api::duration::parse_duration;

/// Default timeout of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between attempts; doubled after each.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Most bytes of an answer read (the answer's content is never used, only its status).
const MAX_ANSWER: usize = 64 * 1024;

/// What the payload says about the Canary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// Phase at the time of the call.
    pub phase: String,
    /// Revision under analysis (lastAppliedSpec).
    pub checksum: String,
}

/// An Event as event hooks receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInfo {
    /// The Event's text.
    pub message: String,
    /// Normal or Warning.
    pub kind: String,
    /// RFC 3339 time.
    pub timestamp: String,
}

/// The JSON body of a call.
pub fn payload(subject: &Subject, hook: &CanaryWebhook, event: Option<&EventInfo>) -> Value {
    let mut body = json!({
        "name": subject.name,
        "namespace": subject.namespace,
        "phase": subject.phase,
        "checksum": subject.checksum,
        "metadata": hook.metadata.clone().unwrap_or_default(),
    });
    if let Some(e) = event {
        body["eventMessage"] = json!(e.message);
        body["eventType"] = json!(e.kind);
        body["timestamp"] = json!(e.timestamp);
    }
    body
}

/// A hook ready to call: its spec plus the signing key from its Secret, if any.
pub struct Prepared<'a> {
    /// The hook.
    pub hook: &'a CanaryWebhook,
    /// HMAC key (the Secret's `token`).
    pub key: Option<Vec<u8>>,
}

fn client(hook: &CanaryWebhook) -> Result<reqwest::Client, String> {
    let timeout = hook
        .timeout
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT);
    reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(hook.disable_tls.unwrap_or(false))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

async fn attempt(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    key: Option<&[u8]>,
) -> HookOutcome {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(k) = key {
        req = req.header(
            crate::signing::SIGNATURE_HEADER,
            crate::signing::signature(k, body),
        );
    }
    match req.send().await {
        Ok(mut resp) => {
            let outcome = HookOutcome::from_status(resp.status().as_u16());
            // Drain a little of the answer so the connection can be reused; ignore the rest.
            let mut read = 0;
            while let Ok(Some(chunk)) = resp.chunk().await {
                read += chunk.len();
                if read > MAX_ANSWER {
                    break;
                }
            }
            outcome
        }
        Err(e) if e.is_timeout() => HookOutcome::Unreachable("no answer before the timeout".into()),
        Err(e) => HookOutcome::Unreachable(cause(&e)),
    }
}

/// The innermost cause of a request error, without the URL (it may carry a token).
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        last = err.to_string();
        cur = err.source();
    }
    last
}

/// Calls one hook: up to `1 + retries` attempts with doubling pauses; the last outcome counts.
pub async fn call(p: &Prepared<'_>, body: &Value) -> HookOutcome {
    let client = match client(p.hook) {
        Ok(c) => c,
        Err(e) => return HookOutcome::Unreachable(e),
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let attempts = 1 + p.hook.retries.unwrap_or(0).clamp(0, 10) as u32;
    let mut pause = FIRST_BACKOFF;
    let mut outcome = HookOutcome::Unreachable("not called".into());
    for i in 0..attempts {
        if i > 0 {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        outcome = attempt(&client, &p.hook.url, &bytes, p.key.as_deref()).await;
        if outcome.is_success() {
            break;
        }
    }
    outcome
}

/// Calls every hook at once; outcomes by hook name.
pub async fn call_all(
    hooks: &[Prepared<'_>],
    subject: &Subject,
    event: Option<&EventInfo>,
) -> BTreeMap<String, HookOutcome> {
    let calls = hooks.iter().map(|p| async move {
        let body = payload(subject, p.hook, event);
        (p.hook.name.clone(), call(p, &body).await)
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_flaggers_fields_and_event_fields_only_for_events() {
        let hook: CanaryWebhook = serde_json::from_value(
            json!({"name": "lt", "url": "http://x", "metadata": {"cmd": "hey"}}),
        )
        .unwrap();
        let s = Subject {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "abc".into(),
        };
        assert_eq!(
            payload(&s, &hook, None),
            json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc", "metadata": {"cmd": "hey"}})
        );
        let e = EventInfo {
            message: "m".into(),
            kind: "Warning".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
        };
        let body = payload(&s, &hook, Some(&e));
        assert_eq!(
            (body["eventMessage"].as_str(), body["eventType"].as_str()),
            (Some("m"), Some("Warning"))
        );
    }
}

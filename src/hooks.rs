//! Webhook calls (DESIGN.md section 4), shaped exactly as Flagger sends them so existing receivers
//! keep working: a POST of `{name, namespace, phase, checksum, metadata}` where `metadata` is the
//! hook's key/value pairs (left out when empty, like Flagger's `omitempty`). `event` hooks get
//! `eventMessage`, `eventType` and `timestamp` (unix milliseconds, as a string) inside `metadata`,
//! over any hook key of the same name. Any 2xx is success (204 too); redirects are not followed.
//!
//! Retries: at most the hook's `retries`; transport errors, 408, 429 and 5xx (but 501) are retried
//! with capped exponential backoff and jitter; any other answer, 4xx above all, is final (a gate
//! saying no is an answer, not a failure to reach it). One call never lasts longer than
//! `max(timeout, MAX_CALL)`. All calls share one pooled HTTP client per TLS mode.
//!
//! Hooks of one tick are called concurrently; their outcomes come back keyed by hook name so the
//! decision core reads them in spec order. What an outcome means is the core's business, not this
//! module's. Must not import the controller.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::analysis::HookOutcome;
use crate::api::CanaryWebhook;
use crate::api::duration::parse_duration;

/// Default timeout of one attempt (Flagger's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before the first retry; doubled for each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Hard cap of one call, retries and pauses included (a single attempt with a longer `timeout`
/// still gets its whole timeout, but is not retried).
pub const MAX_CALL: Duration = Duration::from_secs(120);
/// Most retries honoured, whatever `retries` says.
pub const MAX_RETRIES: u32 = 10;
/// A retry is not started with less time than this (or the hook's timeout, if shorter) left.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);
/// Most bytes of an answer read (the answer's content is never used, only its status).
const MAX_ANSWER: usize = 64 * 1024;
/// `User-Agent` of every call, so receivers' logs name the sender.
const AGENT: &str = concat!("serin/", env!("CARGO_PKG_VERSION"));

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
    /// Unix time in milliseconds, as a decimal string (Flagger's `timestamp`).
    pub timestamp: String,
}

impl EventInfo {
    /// An Event that happened at `at`.
    pub fn new(message: &str, kind: &str, at: chrono::DateTime<chrono::Utc>) -> EventInfo {
        EventInfo {
            message: message.to_string(),
            kind: kind.to_string(),
            timestamp: at.timestamp_millis().to_string(),
        }
    }
}

/// The JSON body of a call.
pub fn payload(subject: &Subject, hook: &CanaryWebhook, event: Option<&EventInfo>) -> Value {
    let mut metadata: Map<String, Value> = hook
        .metadata
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(e) = event {
        // Flagger keeps its own event keys when a hook's metadata uses the same names.
        metadata.insert("eventMessage".into(), json!(e.message));
        metadata.insert("eventType".into(), json!(e.kind));
        metadata.insert("timestamp".into(), json!(e.timestamp));
    }
    let mut body = json!({
        "name": subject.name,
        "namespace": subject.namespace,
        "phase": subject.phase,
        "checksum": subject.checksum,
    });
    if !metadata.is_empty() {
        body["metadata"] = Value::Object(metadata);
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

/// How retries are paced and bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Pause before the first retry.
    pub first_pause: Duration,
    /// Longest pause.
    pub max_pause: Duration,
    /// Hard cap of one call (see `MAX_CALL`).
    pub max_call: Duration,
}

impl Retry {
    /// The pacing every hook call uses.
    pub const DEFAULT: Retry = Retry {
        first_pause: FIRST_BACKOFF,
        max_pause: MAX_BACKOFF,
        max_call: MAX_CALL,
    };

    /// The pause before retry `n` (0 = the first retry): `first_pause × 2^n`, capped at
    /// `max_pause`, whose upper half is scaled by `unit` (in [0, 1]) so that callers that failed
    /// together do not retry together.
    pub fn pause(&self, n: u32, unit: f64) -> Duration {
        let factor = 1u32.checked_shl(n).unwrap_or(u32::MAX);
        let full = self.first_pause.saturating_mul(factor).min(self.max_pause);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Whether an HTTP status may change on another attempt: 408 and 429 say "not now", 5xx say the
/// receiver failed (but 501 Not Implemented, which stays so). Everything else is an answer.
pub fn retryable_status(code: u16) -> bool {
    matches!(code, 408 | 429) || ((500..600).contains(&code) && code != 501)
}

/// Whether another attempt may change this outcome.
pub fn worth_retrying(outcome: &HookOutcome) -> bool {
    match outcome {
        HookOutcome::Success => false,
        HookOutcome::Status(code) => retryable_status(*code),
        HookOutcome::Unreachable(_) => true,
    }
}

/// A number in [0, 1) that differs from call to call, for jitter. std's `RandomState` gets fresh
/// random keys per instance, which is all jitter needs (no RNG crate).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The shared client of a TLS mode (verified, or `disableTLS`), built once. Timeouts are set per
/// request, so one client serves every hook and keeps its connections pooled.
fn client(accept_invalid_certs: bool) -> Result<reqwest::Client, String> {
    static VERIFIED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static UNVERIFIED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if accept_invalid_certs {
        &UNVERIFIED
    } else {
        &VERIFIED
    };
    cell.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(AGENT)
            .danger_accept_invalid_certs(accept_invalid_certs)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    })
    .clone()
}

/// The hook's timeout of one attempt.
fn timeout_of(hook: &CanaryWebhook) -> Duration {
    hook.timeout
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT)
}

async fn attempt(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    key: Option<&[u8]>,
    timeout: Duration,
) -> HookOutcome {
    let mut req = client
        .post(url)
        .timeout(timeout)
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

/// Calls one hook with the default pacing; the last outcome counts.
pub async fn call(p: &Prepared<'_>, body: &Value) -> HookOutcome {
    call_with(p, body, Retry::DEFAULT).await
}

/// Calls one hook: a first attempt, then up to `retries` more while `worth_retrying` says so and
/// the call stays within `max(timeout, retry.max_call)`; the last outcome counts.
pub async fn call_with(p: &Prepared<'_>, body: &Value, retry: Retry) -> HookOutcome {
    let client = match client(p.hook.disable_tls.unwrap_or(false)) {
        Ok(c) => c,
        Err(e) => return HookOutcome::Unreachable(e),
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let timeout = timeout_of(p.hook);
    let retries = p.hook.retries.unwrap_or(0).clamp(0, MAX_RETRIES as i32) as u32;
    let deadline = Instant::now() + retry.max_call.max(timeout);
    let (url, key) = (&p.hook.url, p.key.as_deref());
    let mut outcome = attempt(&client, url, &bytes, key, timeout).await;
    for n in 0..retries {
        if !worth_retrying(&outcome) {
            break;
        }
        let pause = retry.pause(n, jitter());
        // The retry gets the hook's timeout, or what is left before the deadline if less; it is
        // not started when too little is left for an answer to arrive.
        let left = deadline.saturating_duration_since(Instant::now() + pause);
        if left < timeout.min(MIN_ATTEMPT) {
            break;
        }
        tokio::time::sleep(pause).await;
        outcome = attempt(&client, url, &bytes, key, timeout.min(left)).await;
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

    fn subject() -> Subject {
        Subject {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "abc".into(),
        }
    }

    fn hook(v: Value) -> CanaryWebhook {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn payload_is_flaggers_and_leaves_out_empty_metadata() {
        let lt = hook(json!({"name": "lt", "url": "http://x", "metadata": {"cmd": "hey"}}));
        assert_eq!(
            payload(&subject(), &lt, None),
            json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc", "metadata": {"cmd": "hey"}})
        );
        let bare = hook(json!({"name": "gate", "url": "http://x"}));
        assert_eq!(
            payload(&subject(), &bare, None),
            json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc"})
        );
    }

    #[test]
    fn event_fields_go_inside_metadata_over_the_hooks_keys() {
        let h = hook(
            json!({"name": "ev", "url": "http://x", "metadata": {"env": "prod", "eventType": "mine"}}),
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .to_utc();
        let e = EventInfo::new("Advance podinfo.test canary weight 10", "Normal", at);
        assert_eq!(
            payload(&subject(), &h, Some(&e)),
            json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc",
                "metadata": {"env": "prod", "eventMessage": "Advance podinfo.test canary weight 10",
                    "eventType": "Normal", "timestamp": "1767323045678"}})
        );
    }

    #[test]
    fn pauses_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let r = Retry::DEFAULT;
        assert_eq!(r.pause(0, 1.0), Duration::from_millis(250));
        assert_eq!(r.pause(0, 0.0), Duration::from_millis(125));
        assert_eq!(r.pause(2, 1.0), Duration::from_millis(1000));
        assert_eq!(r.pause(9, 1.0), MAX_BACKOFF);
        assert_eq!(r.pause(40, 0.0), MAX_BACKOFF / 2);
        let p = r.pause(1, jitter());
        assert!(p >= Duration::from_millis(250) && p <= Duration::from_millis(500));
    }

    #[test]
    fn jitter_is_a_unit_fraction_that_varies() {
        let draws: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn only_failures_to_answer_are_retried() {
        let retried: Vec<u16> = [
            200, 204, 302, 400, 403, 404, 408, 409, 429, 500, 501, 502, 503,
        ]
        .into_iter()
        .filter(|c| worth_retrying(&HookOutcome::from_status(*c)))
        .collect();
        assert_eq!(retried, [408, 429, 500, 502, 503]);
        assert!(worth_retrying(&HookOutcome::Unreachable("refused".into())));
    }
}

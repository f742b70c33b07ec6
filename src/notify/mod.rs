//! Alerts to chat services and generic webhooks, one file per service behind a closed enum. Each
//! builds the JSON its service expects from a `Notification`; `send` posts it with a timeout and
//! retries (paced and classified as webhook retries are), signed when a key is configured, on one
//! pooled HTTP client per proxy setting. Sending never fails a reconcile: the controller spawns it
//! and only logs and counts failures. Notifiers send; they do not decide what to alert about.
//! Must not import the controller.

mod discord;
mod gchat;
mod msteams;
mod rocket;
mod slack;
mod webhook;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::api::{AlertProviderType, AlertSeverity};
use crate::hooks::{Retry, jitter, retryable_status};

/// `User-Agent` of every alert.
const AGENT: &str = concat!("serin/", env!("CARGO_PKG_VERSION"));

/// What happened, for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// Phase after the decision.
    pub phase: String,
    /// Severity.
    pub severity: AlertSeverity,
    /// The message (names the failing check and its value when there is one).
    pub message: String,
    /// Cluster name from `--cluster-name`, if set.
    pub cluster: Option<String>,
}

impl Notification {
    /// `name.namespace`, as Flagger titles its alerts.
    pub fn title(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// (label, value) facts shown beside the message.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Phase", self.phase.clone())];
        if let Some(c) = &self.cluster {
            facts.push(("Cluster", c.clone()));
        }
        facts
    }
}

/// Where and how alerts of one provider go.
#[derive(Clone, PartialEq)]
pub struct Notifier {
    /// Service type (payload shape).
    pub kind: AlertProviderType,
    /// Webhook URL (may hold a token: never logged).
    pub url: String,
    /// Channel, where the service has them.
    pub channel: Option<String>,
    /// User name, where the service has them.
    pub username: Option<String>,
    /// HTTP(S) proxy.
    pub proxy: Option<String>,
    /// HMAC key signing the body.
    pub key: Option<Vec<u8>>,
    /// Timeout of one attempt (`TIMEOUT` unless a test needs less).
    pub timeout: Duration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL of a chat webhook is a credential.
        write!(f, "Notifier({:?})", self.kind)
    }
}

/// Whether a provider set to `min` takes an alert of `severity` (info takes all, warn takes warn
/// and error, error takes error only).
pub fn routes(min: AlertSeverity, severity: AlertSeverity) -> bool {
    severity >= min
}

/// Timeout of one attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per alert.
pub const ATTEMPTS: u32 = 3;

impl Notifier {
    /// The body this notifier's service expects.
    pub fn payload(&self, n: &Notification) -> Value {
        let (channel, user) = (self.channel.as_deref(), self.username.as_deref());
        match self.kind {
            AlertProviderType::Slack => slack::payload(n, channel, user),
            AlertProviderType::Msteams => msteams::payload(n),
            AlertProviderType::Discord => discord::payload(n, user),
            AlertProviderType::Rocket => rocket::payload(n, channel, user),
            AlertProviderType::Gchat => gchat::payload(n),
            AlertProviderType::Webhook => webhook::payload(n),
        }
    }

    /// Posts the alert: up to `ATTEMPTS` tries paced as hooks are (`hooks::Retry::DEFAULT`), and
    /// like hooks, an answer that another try cannot change (a 4xx but 408/429) ends it. Any 2xx
    /// is done.
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let client = client(self.proxy.as_deref())?;
        let body = serde_json::to_vec(&self.payload(n)).unwrap_or_default();
        let mut last = String::new();
        let mut tries = 0;
        for i in 0..ATTEMPTS {
            if i > 0 {
                tokio::time::sleep(Retry::DEFAULT.pause(i - 1, jitter())).await;
            }
            tries += 1;
            match self.post(&client, &body).await {
                Ok(()) => return Ok(()),
                Err((why, again)) => {
                    last = why;
                    if !again {
                        break;
                    }
                }
            }
        }
        let plural = if tries == 1 { "" } else { "s" };
        Err(format!(
            "{:?} alert not delivered after {tries} attempt{plural}: {last}",
            self.kind
        ))
    }

    /// One attempt: Ok, or why not and whether another attempt may do better.
    async fn post(&self, client: &reqwest::Client, body: &[u8]) -> Result<(), (String, bool)> {
        let mut req = client
            .post(&self.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(k) = &self.key {
            req = req.header(
                crate::signing::SIGNATURE_HEADER,
                crate::signing::signature(k, body),
            );
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let code = r.status().as_u16();
                Err((format!("HTTP {code}"), retryable_status(code)))
            }
            Err(e) if e.is_timeout() => Err(("no answer before the timeout".into(), true)),
            // Without the URL: a chat webhook URL carries its token.
            Err(e) => Err((format!("cannot send: {}", e.without_url()), true)),
        }
    }
}

/// The shared client of a proxy setting (most alerts use none), built once: timeouts are set per
/// request, so one client serves every notifier and keeps its connections pooled.
fn client(proxy: Option<&str>) -> Result<reqwest::Client, String> {
    static CLIENTS: OnceLock<Mutex<HashMap<Option<String>, reqwest::Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = proxy.map(str::to_string);
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let mut builder = reqwest::Client::builder().user_agent(AGENT);
    if let Some(p) = proxy {
        // The proxy URL may hold credentials: never echo it.
        let proxy = reqwest::Proxy::all(p).map_err(|_| "the proxy is not a URL".to_string())?;
        builder = builder.proxy(proxy);
    }
    let c = builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    clients.insert(key, c.clone());
    Ok(c)
}

/// Slack-style attachment colour by severity.
pub(crate) fn color(s: AlertSeverity) -> &'static str {
    match s {
        AlertSeverity::Info => "good",
        AlertSeverity::Warn => "warning",
        AlertSeverity::Error => "danger",
    }
}

/// Hex colour by severity (services that take RGB).
pub(crate) fn rgb(s: AlertSeverity) -> u32 {
    match s {
        AlertSeverity::Info => 0x2e_b8_86,
        AlertSeverity::Warn => 0xda_a0_38,
        AlertSeverity::Error => 0xa3_02_00,
    }
}

#[cfg(test)]
mod tests;

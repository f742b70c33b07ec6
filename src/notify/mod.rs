//! Alerts to chat services and generic webhooks, one file per service behind a closed enum. Each
//! builds the JSON its service expects from a `Notification`; `send` posts it with a timeout and
//! retries, signed when a key is configured. Sending never fails a reconcile: the controller
//! spawns it and only logs and counts failures. Must not import the controller.

mod discord;
mod gchat;
mod msteams;
mod rocket;
mod slack;
mod webhook;

use std::time::Duration;

use serde_json::Value;

use crate::api::{AlertProviderType, AlertSeverity};

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

    /// Posts the alert: up to `ATTEMPTS` tries with doubling pauses, any 2xx is done.
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let mut builder = reqwest::Client::builder().timeout(self.timeout);
        if let Some(p) = &self.proxy {
            let proxy = reqwest::Proxy::all(p).map_err(|_| "the proxy is not a URL".to_string())?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&self.payload(n)).unwrap_or_default();
        let mut pause = Duration::from_millis(200);
        let mut last = String::new();
        for i in 0..ATTEMPTS {
            if i > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let mut req = client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(k) = &self.key {
                req = req.header(
                    crate::signing::SIGNATURE_HEADER,
                    crate::signing::signature(k, &body),
                );
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
                Err(e) if e.is_timeout() => last = "no answer before the timeout".into(),
                // Without the URL: a chat webhook URL carries its token.
                Err(e) => last = format!("cannot send: {}", e.without_url()),
            }
        }
        Err(format!(
            "{:?} alert not delivered after {ATTEMPTS} attempts: {last}",
            self.kind
        ))
    }
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

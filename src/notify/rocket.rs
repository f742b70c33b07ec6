//! Rocket.Chat incoming webhooks (Slack-like attachments; `title` instead of `author_name`).

use serde_json::{Value, json};

use super::{Notification, color};

pub(super) fn payload(n: &Notification, channel: Option<&str>, user: Option<&str>) -> Value {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": v, "short": true}))
        .collect();
    let mut body = json!({
        "text": n.title(),
        "attachments": [{"color": color(n.severity), "title": n.title(), "text": n.message, "fields": fields}]
    });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if let Some(u) = user {
        body["alias"] = json!(u);
    }
    body
}

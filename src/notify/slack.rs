//! Slack incoming webhooks: one attachment coloured by severity, titled `name.namespace`.

use serde_json::{Value, json};

use super::{Notification, color};

pub(super) fn payload(n: &Notification, channel: Option<&str>, user: Option<&str>) -> Value {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": v, "short": true}))
        .collect();
    let mut body = json!({
        "attachments": [{
            "color": color(n.severity),
            "author_name": n.title(),
            "text": n.message,
            "mrkdwn_in": ["text"],
            "fields": fields,
        }]
    });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if let Some(u) = user {
        body["username"] = json!(u);
    }
    body
}

//! Discord webhooks: one embed coloured by severity (colour as an RGB integer).

use serde_json::{Value, json};

use super::{Notification, rgb};

pub(super) fn payload(n: &Notification, user: Option<&str>) -> Value {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"name": k, "value": v, "inline": true}))
        .collect();
    let mut body = json!({
        "embeds": [{"title": n.title(), "description": n.message, "color": rgb(n.severity), "fields": fields}]
    });
    if let Some(u) = user {
        body["username"] = json!(u);
    }
    body
}

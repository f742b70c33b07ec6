//! Microsoft Teams incoming webhooks: a MessageCard with the message and the facts.

use serde_json::{Value, json};

use super::{Notification, rgb};

pub(super) fn payload(n: &Notification) -> Value {
    let facts: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": format!("{:06X}", rgb(n.severity)),
        "summary": n.title(),
        "sections": [{"activityTitle": n.title(), "activitySubtitle": n.message, "facts": facts}]
    })
}

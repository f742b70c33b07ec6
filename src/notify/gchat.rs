//! Google Chat webhooks: a card with the title as header, the message and the facts.

use serde_json::{Value, json};

use super::Notification;

pub(super) fn payload(n: &Notification) -> Value {
    let mut widgets = vec![json!({"textParagraph": {"text": n.message}})];
    for (k, v) in n.facts() {
        widgets.push(json!({"keyValue": {"topLabel": k, "content": v}}));
    }
    json!({
        "cards": [{"header": {"title": n.title(), "subtitle": "Serin"}, "sections": [{"widgets": widgets}]}]
    })
}

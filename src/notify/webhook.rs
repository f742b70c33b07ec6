//! The generic JSON webhook (Serin's addition): the notification's fields as they are.

use serde_json::{Value, json};

use super::Notification;

pub(super) fn payload(n: &Notification) -> Value {
    let severity = serde_json::to_value(n.severity).unwrap_or(Value::Null);
    json!({
        "name": n.name,
        "namespace": n.namespace,
        "phase": n.phase,
        "severity": severity,
        "message": n.message,
        "cluster": n.cluster,
    })
}

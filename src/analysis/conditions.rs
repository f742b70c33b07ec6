//! Condition bookkeeping: lastTransitionTime moves only when the status value changes, so repeated
//! reconciles with the same outcome write nothing.

use chrono::{DateTime, Utc};

use crate::api::CanaryCondition;

/// Sets (or adds) the condition `kind`; keeps both times when nothing about it changed.
pub fn set_condition(
    conditions: &mut Vec<CanaryCondition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    if let Some(c) = conditions.iter_mut().find(|c| c.r#type == kind) {
        if c.status == status && c.reason == reason && c.message.as_deref() == Some(message) {
            return;
        }
        if c.status != status {
            c.last_transition_time = Some(now);
        }
        c.status = status.to_string();
        c.reason = reason.to_string();
        c.message = Some(message.to_string());
        c.last_update_time = Some(now);
        return;
    }
    conditions.push(CanaryCondition {
        r#type: kind.to_string(),
        status: status.to_string(),
        last_update_time: Some(now),
        last_transition_time: Some(now),
        reason: reason.to_string(),
        message: Some(message.to_string()),
    });
}

/// The status of condition `kind`, if set.
pub fn condition_status<'a>(conditions: &'a [CanaryCondition], kind: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.r#type == kind)
        .map(|c| c.status.as_str())
}

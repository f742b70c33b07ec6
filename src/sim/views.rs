//! Kinds served in two versions from one storage: events.k8s.io/v1 Events (stored) seen through
//! core/v1, and autoscaling/v2 HPAs (stored) seen through autoscaling/v1. Also the validation
//! rules of events.k8s.io Events as the transcripts record them.

use serde_json::{Value, json};

use super::resources::ResourceType;
use crate::schema::{Cause, CauseReason};

/// Whether a type is the core/v1 view of Events.
pub fn is_core_event(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Event"
}

/// Whether a type is the events.k8s.io/v1 Event.
pub fn is_event(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.kind == "Event"
}

/// The stored (events.k8s.io) Event as core/v1 shows it.
pub fn event_to_core(e: &Value) -> Value {
    let count = e["deprecatedCount"].as_i64();
    let mut c = json!({
        "metadata": e["metadata"], "involvedObject": e["regarding"], "reason": e["reason"], "message": e["note"],
        "source": e.get("deprecatedSource").cloned().unwrap_or(json!({})),
        "firstTimestamp": e.get("deprecatedFirstTimestamp").cloned().unwrap_or(Value::Null),
        "lastTimestamp": e.get("deprecatedLastTimestamp").cloned().unwrap_or(Value::Null),
        "type": e["type"], "eventTime": e["eventTime"], "action": e["action"],
        "reportingComponent": e["reportingController"], "reportingInstance": e["reportingInstance"],
    });
    if let Some(n) = count {
        c["count"] = json!(n);
    }
    for k in ["series", "related"] {
        if !e[k].is_null() {
            c[k] = e[k].clone();
        }
    }
    strip_nulls_except(&mut c, &["firstTimestamp", "lastTimestamp"]);
    c
}

/// A core/v1 Event body in the stored (events.k8s.io) form.
pub fn event_from_core(c: &Value) -> Value {
    let mut e = json!({
        "metadata": c["metadata"], "regarding": c["involvedObject"], "reason": c["reason"], "note": c["message"],
        "deprecatedSource": c.get("source").cloned().unwrap_or(json!({})),
        "deprecatedFirstTimestamp": c.get("firstTimestamp").cloned().unwrap_or(Value::Null),
        "deprecatedLastTimestamp": c.get("lastTimestamp").cloned().unwrap_or(Value::Null),
        "type": c["type"], "eventTime": c["eventTime"], "action": c["action"],
        "reportingController": c["reportingComponent"], "reportingInstance": c["reportingInstance"],
        "series": c["series"], "related": c["related"], "deprecatedCount": c["count"],
    });
    strip_nulls_except(
        &mut e,
        &["deprecatedFirstTimestamp", "deprecatedLastTimestamp"],
    );
    e
}

fn strip_nulls_except(v: &mut Value, keep: &[&str]) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, x| !x.is_null() || keep.contains(&k.as_str()));
    }
}

/// Defaults of a stored Event (what the real server returns for events.k8s.io creates).
pub fn event_defaults(e: &mut Value) {
    let Some(m) = e.as_object_mut() else { return };
    m.entry("deprecatedSource").or_insert(json!({}));
    m.entry("deprecatedFirstTimestamp").or_insert(Value::Null);
    m.entry("deprecatedLastTimestamp").or_insert(Value::Null);
}

fn required(field: &str) -> Cause {
    Cause {
        reason: CauseReason::Required,
        field: field.into(),
        message: "Required value".into(),
    }
}

fn invalid(field: &str, message: String) -> Cause {
    Cause {
        reason: CauseReason::Invalid,
        field: field.into(),
        message,
    }
}

/// events.k8s.io/v1 validation; `old` is the stored event on updates.
pub fn validate_event(e: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(old) = old {
        if old["note"] != e["note"] {
            let v = e["note"].as_str().unwrap_or_default();
            causes.push(invalid(
                "message",
                format!("Invalid value: \"{v}\": field is immutable"),
            ));
        }
        if old["reason"] != e["reason"] {
            let v = e["reason"].as_str().unwrap_or_default();
            let c = invalid(
                "reason",
                format!("Invalid value: \"{v}\": field is immutable"),
            );
            causes.push(c.clone());
            causes.push(c);
        }
        return causes;
    }
    let ty = e["type"].as_str().unwrap_or_default();
    let bad_type = !matches!(ty, "Normal" | "Warning");
    if e["eventTime"].is_null() {
        causes.push(required("eventTime"));
        if bad_type {
            causes.push(invalid(
                "type",
                format!("Invalid value: \"\": has invalid value: {ty}"),
            ));
        }
        return causes;
    }
    let controller = e["reportingController"].as_str().unwrap_or_default();
    if controller.is_empty() {
        causes.push(required("reportingController"));
        causes.push(invalid(
            "reportingController",
            "Invalid value: \"\": name part must be non-empty".into(),
        ));
        causes.push(invalid("reportingController", "Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into()));
    }
    if e["reportingInstance"].as_str().is_none_or(str::is_empty) {
        causes.push(required("reportingInstance"));
    }
    if e["action"].as_str().is_none_or(str::is_empty) {
        causes.push(required("action"));
    }
    if e["note"].as_str().is_some_and(|n| n.len() > 1024) {
        causes.push(invalid(
            "message",
            "Invalid value: \"\": can have at most 1024 characters".into(),
        ));
    }
    if bad_type && causes.is_empty() {
        causes.push(invalid(
            "type",
            format!("Invalid value: \"\": has invalid value: {ty}"),
        ));
    }
    causes
}

/// The autoscaling/v2 HPA (stored) as autoscaling/v1 shows it.
pub fn hpa_to_v1(h: &Value) -> Value {
    let mut v = h.clone();
    let spec = &h["spec"];
    let mut s =
        json!({"scaleTargetRef": spec["scaleTargetRef"], "maxReplicas": spec["maxReplicas"]});
    if !spec["minReplicas"].is_null() {
        s["minReplicas"] = spec["minReplicas"].clone();
    }
    let cpu = spec["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
    if let Some(u) = cpu.and_then(|m| m["resource"]["target"]["averageUtilization"].as_i64()) {
        s["targetCPUUtilizationPercentage"] = json!(u);
    }
    v["spec"] = s;
    let st = &h["status"];
    let mut status = json!({"currentReplicas": st["currentReplicas"].as_i64().unwrap_or(0), "desiredReplicas": st["desiredReplicas"].as_i64().unwrap_or(0)});
    if !st["lastScaleTime"].is_null() {
        status["lastScaleTime"] = st["lastScaleTime"].clone();
    }
    v["status"] = status;
    v
}

//! Alternative list and get representations kubectl and kube-rs ask for through `Accept`:
//! `as=Table` (printer columns, what `kubectl get` shows) and `as=PartialObjectMetadata(List)`
//! (metadata only, what kube-rs metadata watchers use).

use serde_json::{Value, json};

use super::resources::ResourceType;

/// Which representation the Accept header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// Plain objects.
    Full,
    /// meta.k8s.io/v1 Table.
    Table,
    /// meta.k8s.io/v1 PartialObjectMetadata(List).
    Metadata,
}

/// Reads the Accept header (the first acceptable representation wins).
pub fn representation(accept: &str) -> Representation {
    let first = accept.split(',').next().unwrap_or("");
    if first.contains("as=Table") {
        Representation::Table
    } else if first.contains("as=PartialObjectMetadata") {
        Representation::Metadata
    } else {
        Representation::Full
    }
}

/// The metadata-only view of an object.
pub fn partial(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

/// The metadata-only list.
pub fn partial_list(items: &[Value], meta: Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": meta, "items": items.iter().map(partial).collect::<Vec<_>>()})
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

fn printer_columns(rt: &ResourceType, crd: Option<&Value>) -> Vec<Value> {
    let defined: Vec<Value> = crd
        .and_then(|c| c["spec"]["versions"].as_array())
        .and_then(|vs| vs.iter().find(|v| v["name"] == rt.version.as_str()))
        .and_then(|v| v["additionalPrinterColumns"].as_array().cloned())
        .unwrap_or_default();
    let mut cols = defined;
    if !cols.iter().any(|c| c["name"] == "Age") {
        cols.push(
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        );
    }
    cols
}

fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(obj, |v, k| v.get(k))
}

fn age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A Table of objects with the type's printer columns (CRDs) or Name and Age (built-ins).
pub fn table(rt: &ResourceType, crd: Option<&Value>, items: &[Value], rv: &str) -> Value {
    let cols = printer_columns(rt, crd);
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0}),
    ];
    for c in &cols {
        let description = if c["name"] == "Age" && crd.is_none() {
            "CreationTimestamp is a timestamp representing the server time when this object was created.".to_string()
        } else {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                c["jsonPath"].as_str().unwrap_or_default()
            )
        };
        defs.push(json!({"name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")), "description": description, "priority": c["priority"].as_i64().unwrap_or(0)}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &cols {
                let v = json_path(o, c["jsonPath"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or(Value::Null);
                cells.push(match (c["type"].as_str(), &v) {
                    (Some("date"), Value::String(ts)) => Value::String(age(ts)),
                    _ => v,
                });
            }
            json!({"cells": cells, "object": partial(o)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": defs, "rows": rows})
}

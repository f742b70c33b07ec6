//! The recorder's normalization (README "Normalization of recorded response bodies"), applied to
//! the sim's answers so they can be compared with the recordings.

use serde_json::{Map, Value};

fn is_rfc3339(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn replace_times(s: &str) -> String {
    let re = regex::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
        .expect("static regex");
    re.replace_all(s, "<time>").into_owned()
}

/// Normalizes a response body in place. `keep_fields` keeps managedFields' apiVersion/fieldsV1.
pub fn body(v: &mut Value, keep_fields: bool) {
    walk(v, keep_fields, None);
    if v["kind"] == "Table" {
        let dates: Vec<usize> = v["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(_, c)| c["type"] == "date")
            .map(|(i, _)| i)
            .collect();
        for row in v["rows"].as_array_mut().into_iter().flatten() {
            for i in &dates {
                if let Some(cell) = row["cells"].get_mut(*i) {
                    *cell = Value::String("<age>".into());
                }
            }
        }
    }
}

fn walk(v: &mut Value, keep_fields: bool, key: Option<&str>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(prefix)), Some(Value::String(name))) =
                (m.get("generateName").cloned(), m.get_mut("name"))
                && name.starts_with(prefix.as_str())
            {
                *name = format!("{prefix}<random>");
            }
            for (k, child) in m.iter_mut() {
                match k.as_str() {
                    "uid" if child.is_string() => *child = Value::String("<uid>".into()),
                    "resourceVersion" if child.as_str().is_some_and(|s| !s.is_empty()) => {
                        *child = Value::String("<rv>".into())
                    }
                    "continue" if child.as_str().is_some_and(|s| !s.is_empty()) => {
                        *child = Value::String("<continue>".into())
                    }
                    "clusterIP" if child.as_str().is_some_and(|s| s != "None") => {
                        *child = Value::String("<clusterIP>".into())
                    }
                    "clusterIPs" => {
                        if let Some(a) = child.as_array_mut() {
                            for ip in a.iter_mut().filter(|ip| ip.as_str() != Some("None")) {
                                *ip = Value::String("<clusterIP>".into());
                            }
                        }
                    }
                    "managedFields" => managed(child, keep_fields),
                    "token" if key == Some("status") => *child = Value::String("<token>".into()),
                    _ => walk(child, keep_fields, Some(k)),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, keep_fields, key)),
        Value::String(s) => {
            if is_rfc3339(s) {
                *s = "<time>".into();
            } else if s.contains("too old resource version") {
                let re = regex::Regex::new(r"too old resource version: \d+ \(\d+\)")
                    .expect("static regex");
                *s = re
                    .replace_all(s, "too old resource version: <rv> (<rv>)")
                    .into_owned();
            } else if (s.starts_with('[') || s.starts_with('{')) && s.contains('T') {
                // Times inside JSON-valued strings (e.g. the autoscaling/v1 conditions annotation).
                *s = replace_times(s);
            }
        }
        _ => {}
    }
}

fn managed(v: &mut Value, keep_fields: bool) {
    let Some(list) = v.as_array_mut() else { return };
    for e in list.iter_mut() {
        let Some(m) = e.as_object() else { continue };
        let mut out = Map::new();
        let mut keys = vec!["manager", "operation"];
        if keep_fields {
            keys.push("apiVersion");
        }
        keys.push("subresource");
        if keep_fields {
            keys.push("fieldsV1");
        }
        for k in keys {
            if let Some(x) = m.get(k) {
                out.insert(k.to_string(), x.clone());
            }
        }
        *e = Value::Object(out);
    }
}

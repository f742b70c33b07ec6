//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902, `test` included) and the
//! strategic merge patch of built-in kinds (lists merged by their merge keys, `$patch`,
//! `$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList`), ordered as kube-apiserver does.

use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// A JSON patch `test` operation failed (the real server answers 422).
    TestFailed,
    /// Any other failure, with the server's message (422 unless said otherwise).
    Invalid(String),
    /// Malformed patch document (400).
    Malformed(String),
}

/// RFC 7386: objects merge, null deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902. Errors distinguish a failed `test` from other problems.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    // kube-apiserver's JSON patch lets `replace` create a missing map key (recorded in 04).
    let mut patch = patch.clone();
    for op in patch.as_array_mut().into_iter().flatten() {
        if op["op"] == "replace" {
            let path = op["path"].as_str().unwrap_or_default();
            let (parent, _) = path.rsplit_once('/').unwrap_or(("", path));
            let parent_is_map = target.pointer(parent).is_some_and(Value::is_object);
            if parent_is_map && target.pointer(path).is_none() {
                op["op"] = Value::String("add".into());
            }
        }
    }
    let patch = &patch;
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Malformed(e.to_string()))?;
    match json_patch::patch(target, &ops) {
        Ok(()) => Ok(()),
        Err(e) => match e.kind {
            json_patch::PatchErrorKind::TestFailed => Err(PatchError::TestFailed),
            _ => Err(PatchError::Invalid(e.to_string())),
        },
    }
}

/// The merge key of a list field of a built-in kind, or None for atomic lists.
fn list_key(field: &str, items: &[&Value]) -> Option<&'static str> {
    let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" => Some("port"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// Lists of scalars merged as sets.
fn is_set(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies a strategic merge patch to a built-in object.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => merge_map(o, p).map(Value::Object),
        (_, Value::Object(p)) => merge_map(&Map::new(), p).map(Value::Object),
        _ => Err(PatchError::Malformed(
            "strategic merge patch must be a JSON object".to_string(),
        )),
    }
}

fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            return Ok(p);
        }
        Some("delete") => return Ok(Map::new()),
        _ => {}
    }
    let mut out = original.clone();
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let _ = field;
            continue;
        }
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let order = patch
            .get(&format!("$setElementOrder/{key}"))
            .and_then(Value::as_array);
        let merged = match (out.get(key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(o, p)?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(key, o, p, order)?),
            (None, Value::Object(p)) => Value::Object(merge_map(&Map::new(), p)?),
            (None, Value::Array(p)) => Value::Array(merge_list(key, &[], p, order)?),
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/")
            && let (Some(Value::Array(list)), Value::Array(remove)) = (out.get_mut(field), value)
        {
            list.retain(|v| !remove.contains(v));
        }
    }
    Ok(out)
}

fn key_of<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key)
}

fn merge_list(
    field: &str,
    original: &[Value],
    patch: &[Value],
    order: Option<&Vec<Value>>,
) -> Result<Vec<Value>, PatchError> {
    if is_set(field) {
        let mut out = original.to_vec();
        for v in patch {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        return Ok(out);
    }
    let all: Vec<&Value> = original.iter().chain(patch.iter()).collect();
    let Some(key) = list_key(field, &all) else {
        return Ok(patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .cloned()
            .collect());
    };
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .cloned()
            .collect());
    }
    let mut merged_patch = Vec::new();
    let mut touched = Vec::new();
    for item in patch {
        let Some(k) = key_of(item, key) else {
            return Err(PatchError::Invalid(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        touched.push(k.clone());
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            continue;
        }
        let base = original.iter().find(|o| key_of(o, key) == Some(k));
        let merged = match (base, item) {
            (Some(Value::Object(b)), Value::Object(p)) => Value::Object(merge_map(b, p)?),
            _ => item.clone(),
        };
        merged_patch.push(merged);
    }
    let server_only: Vec<Value> = original
        .iter()
        .filter(|o| key_of(o, key).is_none_or(|k| !touched.contains(k)))
        .cloned()
        .collect();
    let server_order: Vec<Value> = match order {
        Some(o) => o.iter().filter_map(|i| key_of(i, key).cloned()).collect(),
        None => original
            .iter()
            .filter_map(|i| key_of(i, key).cloned())
            .collect(),
    };
    if let Some(o) = order {
        let wanted: Vec<Value> = o.iter().filter_map(|i| key_of(i, key).cloned()).collect();
        merged_patch.sort_by_key(|i| {
            key_of(i, key)
                .and_then(|k| wanted.iter().position(|w| w == k))
                .unwrap_or(usize::MAX)
        });
    }
    Ok(merge_sorted(merged_patch, server_only, &server_order, key))
}

/// kube-apiserver's order: walk both lists, taking the item that comes first in the server order;
/// an item the server order does not know (a new one) is taken from the patch side first.
fn merge_sorted(left: Vec<Value>, right: Vec<Value>, order: &[Value], key: &str) -> Vec<Value> {
    let index = |v: &Value| key_of(v, key).and_then(|k| order.iter().position(|o| o == k));
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(l.next()),
            (None, Some(_)) => out.extend(r.next()),
            (Some(a), Some(b)) => match (index(a), index(b)) {
                (Some(ia), Some(ib)) if ib < ia => out.extend(r.next()),
                _ => out.extend(l.next()),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn containers(v: &Value) -> Vec<&str> {
        v["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn containers_merge_by_name_new_ones_first_and_set_element_order_reorders() {
        let orig = json!({"spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "sidecar", "image": "s:1", "env": [{"name": "A", "value": "1"}]}]}});
        let p1 = strategic_merge(
            &orig,
            &json!({"spec": {"containers": [{"name": "sidecar", "image": "s:2"}]}}),
        )
        .unwrap();
        assert_eq!(containers(&p1), ["app", "sidecar"]);
        assert_eq!(p1["spec"]["containers"][1]["env"][0]["name"], "A");
        let p2 = strategic_merge(
            &p1,
            &json!({"spec": {"containers": [{"name": "extra", "image": "e"}]}}),
        )
        .unwrap();
        assert_eq!(containers(&p2), ["extra", "app", "sidecar"]);
        let p3 = strategic_merge(
            &p2,
            &json!({"spec": {"containers": [{"name": "extra", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(containers(&p3), ["app", "sidecar"]);
        let p4 = strategic_merge(&p3, &json!({"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}], "containers": [{"name": "app", "image": "a:2"}]}})).unwrap();
        assert_eq!(containers(&p4), ["sidecar", "app"]);
        assert_eq!(p4["spec"]["containers"][1]["image"], "a:2");
    }

    #[test]
    fn null_deletes_and_atomic_lists_replace() {
        let orig =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}});
        let out = strategic_merge(
            &orig,
            &json!({"metadata": {"labels": {"a": null}}, "spec": {"args": ["z"]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"args": ["z"]}})
        );
    }

    #[test]
    fn json_patch_test_failure_is_distinct() {
        let mut v = json!({"spec": {"replicas": 1}});
        let p = json!([{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 3}]);
        assert_eq!(json_patch(&mut v, &p), Err(PatchError::TestFailed));
        assert_eq!(v["spec"]["replicas"], 1);
    }

    proptest::proptest! {
        #[test]
        fn strategic_merge_never_panics(a in "\\PC{0,60}", b in "\\PC{0,60}") {
            let orig = serde_json::from_str::<Value>(&a).unwrap_or(json!({"spec": {"containers": [{"name": "x"}]}}));
            let patch = serde_json::from_str::<Value>(&b).unwrap_or(json!({"spec": {"containers": [{"name": "y"}]}}));
            let _ = strategic_merge(&orig, &patch);
        }
    }
}

//! managedFields bookkeeping and server-side apply: who owns which fields, conflicts between
//! managers (409 naming the other manager), `force` taking ownership, and removal of fields a
//! manager stops applying when nobody else owns them.

use serde_json::{Map, Value, json};

use super::fieldset::{
    FieldPath, FieldSet, ListKind, Shape, apply_set, display_path, from_fields_v1, item_key,
    remove_at, to_fields_v1, under, update_set, value_at,
};

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Field manager name.
    pub manager: String,
    /// "Apply" or "Update".
    pub operation: String,
    /// apiVersion the manager used.
    pub api_version: String,
    /// RFC 3339 time of the last write.
    pub time: String,
    /// "status" for status-subresource writes.
    pub subresource: Option<String>,
    /// Owned paths.
    pub set: FieldSet,
}

/// A conflict found while applying.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// `.spec.replicas`.
    pub field: String,
    /// `conflict with "a"` or `conflict with "kubectl" using apps/v1`.
    pub message: String,
}

/// Reads the entries of an object.
pub fn read(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().map(String::from),
            set: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Writes entries back (Apply entries first, as the real server orders them); empty ones go.
pub fn write(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by_key(|e| e.operation != "Apply");
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            m.insert("time".into(), json!(e.time));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), to_fields_v1(&e.set));
            if let Some(s) = &e.subresource {
                m.insert("subresource".into(), json!(s));
            }
            Value::Object(m)
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn strip_owned(entries: &mut [Entry], taken: &FieldSet, except: usize) {
    for (i, e) in entries.iter_mut().enumerate() {
        if i != except {
            e.set.retain(|p| !taken.iter().any(|t| under(p, t)));
        }
    }
}

fn entry_index(
    entries: &mut Vec<Entry>,
    manager: &str,
    op: &str,
    sub: Option<&str>,
    api_version: &str,
    now: &str,
) -> usize {
    if let Some(i) = entries
        .iter()
        .position(|e| e.manager == manager && e.operation == op && e.subresource.as_deref() == sub)
    {
        entries[i].time = now.to_string();
        entries[i].api_version = api_version.to_string();
        return i;
    }
    entries.push(Entry {
        manager: manager.to_string(),
        operation: op.to_string(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: sub.map(String::from),
        set: FieldSet::new(),
    });
    entries.len() - 1
}

/// Records an Update-operation write (create, PUT, non-apply PATCH) by `manager`.
pub fn record_update(
    shape: &Shape,
    old: &Value,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    sub: Option<&str>,
    now: &str,
) {
    let mut entries = read(old);
    let set = update_set(shape, old, new);
    if set.is_empty() {
        write(new, entries);
        return;
    }
    let i = entry_index(&mut entries, manager, "Update", sub, api_version, now);
    strip_owned(&mut entries, &set, i);
    entries[i].set.extend(set);
    write(new, entries);
}

/// Merges an applied configuration into the live object, as server-side apply does.
pub fn merge(shape: &Shape, live: &Value, config: &Value) -> Value {
    merge_at(shape, live, config, &mut Vec::new())
}

fn merge_at(shape: &Shape, live: &Value, cfg: &Value, fields: &mut Vec<String>) -> Value {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) if fields.is_empty() || !shape.atomic_map(&names) => {
            let mut out = l.clone();
            for (k, v) in c {
                fields.push(k.clone());
                let merged = merge_at(shape, l.get(k).unwrap_or(&Value::Null), v, fields);
                fields.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            let refs: Vec<&Value> = l.iter().chain(c.iter()).collect();
            match shape.list(&names, &refs) {
                ListKind::Atomic => cfg.clone(),
                ListKind::Set => {
                    let mut out = l.clone();
                    out.extend(c.iter().filter(|v| !l.contains(v)).cloned());
                    Value::Array(out)
                }
                ListKind::Keyed(keys) => {
                    let mut out = l.clone();
                    fields.push("[]".to_string());
                    for item in c {
                        let k = item_key(item, &keys);
                        match out.iter().position(|o| item_key(o, &keys) == k) {
                            Some(i) => out[i] = merge_at(shape, &out[i].clone(), item, fields),
                            None => out.push(item.clone()),
                        }
                    }
                    fields.pop();
                    Value::Array(out)
                }
            }
        }
        _ => cfg.clone(),
    }
}

fn conflict_message(e: &Entry) -> String {
    if e.operation == "Apply" {
        format!("conflict with \"{}\"", e.manager)
    } else {
        let sub = e
            .subresource
            .as_ref()
            .map(|s| format!(" with subresource \"{s}\""))
            .unwrap_or_default();
        format!(
            "conflict with \"{}\"{sub} using {}",
            e.manager, e.api_version
        )
    }
}

/// Who applies, and how.
pub struct Applier<'a> {
    /// Field manager.
    pub manager: &'a str,
    /// Take ownership of conflicting fields.
    pub force: bool,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// "status" for /status applies.
    pub sub: Option<&'a str>,
    /// Time of the request.
    pub now: &'a str,
}

/// Server-side apply of `config` by `manager` onto `live` (None: create). Returns the merged
/// object with managedFields updated, or the conflicts.
pub fn apply(
    shape: &Shape,
    live: Option<&Value>,
    config: &Value,
    who: &Applier,
) -> Result<Value, Vec<Conflict>> {
    let empty = json!({});
    let live = live.unwrap_or(&empty);
    let mut entries = read(live);
    let new_set = apply_set(shape, config);
    let mut conflicts = Vec::new();
    let mut taken = FieldSet::new();
    for e in entries
        .iter()
        .filter(|e| !(e.manager == who.manager && e.operation == "Apply"))
    {
        for p in new_set
            .iter()
            .filter(|p| p.last().map(String::as_str) != Some("."))
        {
            let owned = e.set.iter().any(|q| under(p, q) || under(q, p));
            if owned && value_at(live, p) != value_at(config, p) {
                conflicts.push(Conflict {
                    field: display_path(p),
                    message: conflict_message(e),
                });
                taken.insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !who.force {
        return Err(conflicts);
    }
    let mut merged = merge(shape, live, config);
    let i = entry_index(
        &mut entries,
        who.manager,
        "Apply",
        who.sub,
        who.api_version,
        who.now,
    );
    strip_owned(&mut entries, &taken, i);
    let previous = std::mem::take(&mut entries[i].set);
    for gone in previous.difference(&new_set) {
        let kept_by_other = entries
            .iter()
            .enumerate()
            .any(|(j, e)| j != i && e.set.iter().any(|q| under(q, gone) || under(gone, q)));
        if !kept_by_other {
            remove_at(&mut merged, gone);
            prune_emptied(&mut merged, gone);
        }
    }
    entries[i].set = new_set;
    write(&mut merged, entries);
    Ok(merged)
}

/// After a removal, a list or map left empty goes too (as the real server leaves no `env: []`).
fn prune_emptied(root: &mut Value, removed: &FieldPath) {
    let mut path: FieldPath = removed.iter().filter(|s| *s != ".").cloned().collect();
    while path.len() > 1 {
        path.pop();
        if !path.last().is_some_and(|s| s.starts_with("f:")) {
            return;
        }
        let empty = match super::fieldset::value_at(root, &path) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if !empty {
            return;
        }
        remove_at(root, &path);
    }
}

/// The 409 body of failed apply.
pub fn conflict_status(conflicts: &[Conflict]) -> Value {
    let n = conflicts.len();
    let listed: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{}: {}", c.message, c.field))
        .collect();
    let message = if n == 1 {
        format!("Apply failed with 1 conflict: {}", listed[0])
    } else {
        format!("Apply failed with {n} conflicts: {}", listed.join("\n"))
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": "Conflict", "details": {"causes": conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": c.message, "field": c.field})).collect::<Vec<_>>()},
        "code": 409})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;

    fn apply_as(
        live: Option<&Value>,
        cfg: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        let rt = builtins()
            .into_iter()
            .find(|t| t.kind == "Deployment")
            .unwrap();
        let shape = Shape::of(&rt);
        let who = Applier {
            manager,
            force,
            api_version: "apps/v1",
            sub: None,
            now: "2026-01-01T00:00:00Z",
        };
        apply(&shape, live, &cfg, &who)
    }

    #[test]
    fn shared_ownership_keeps_a_field_another_manager_still_applies() {
        let a1 = json!({"metadata": {"name": "d", "labels": {"app": "x", "tier": "web"}}, "spec": {"replicas": 2}});
        let v = apply_as(None, a1, "a", false).unwrap();
        let b1 = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}});
        assert!(apply_as(Some(&v), b1.clone(), "b", false).is_err());
        let v = apply_as(Some(&v), b1, "b", true).unwrap();
        let b2 =
            json!({"metadata": {"name": "d", "labels": {"tier": "web"}}, "spec": {"replicas": 3}});
        let v = apply_as(Some(&v), b2, "b", false).unwrap();
        let a2 = json!({"metadata": {"name": "d", "labels": {"app": "x", "owner": "a"}}});
        let v = apply_as(Some(&v), a2, "a", false).unwrap();
        assert_eq!(
            v["metadata"]["labels"],
            json!({"app": "x", "owner": "a", "tier": "web"}),
            "{}",
            v["metadata"]["managedFields"]
        );
        assert_eq!(v["spec"]["replicas"], 3);
        let a3 = json!({"metadata": {"name": "d", "labels": {"app": "x"}}});
        let v = apply_as(Some(&v), a3, "a", false).unwrap();
        assert_eq!(v["metadata"]["labels"], json!({"app": "x", "tier": "web"}));
    }

    #[test]
    fn dropping_the_last_keyed_item_removes_the_list() {
        let with_env = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i", "env": [{"name": "X", "value": "1"}]}]}}}});
        let v = apply_as(None, with_env, "a", false).unwrap();
        let without = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i"}]}}}});
        let v = apply_as(Some(&v), without, "a", false).unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "app", "image": "i"})
        );
    }
}

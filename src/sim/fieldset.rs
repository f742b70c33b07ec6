//! Field ownership for managedFields: sets of paths in the `fieldsV1` notation (`f:name`,
//! `k:{"name":"app"}`, `v:"x"`, `.`), computed from an applied configuration (Apply) or from the
//! difference an Update made, with lists and maps treated as the schema says (keyed, set, atomic).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::resources::{Builtin, ResourceType};

/// A path in fieldsV1 segments, e.g. ["f:spec", "f:containers", "k:{\"name\":\"app\"}", "f:image"].
pub type FieldPath = Vec<String>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Owned and replaced as a whole.
    Atomic,
    /// Items identified by these key fields.
    Keyed(Vec<String>),
    /// Scalar items owned one by one.
    Set,
}

/// Schema knowledge needed for ownership: how lists and maps behave at a path.
pub struct Shape<'a> {
    rt: &'a ResourceType,
    status: bool,
}

impl<'a> Shape<'a> {
    /// The shape of a resource type's main resource (status is not tracked there).
    pub fn of(rt: &'a ResourceType) -> Shape<'a> {
        Shape { rt, status: false }
    }

    /// The shape for writes through /status (only status, and metadata, are tracked).
    pub fn for_status(rt: &'a ResourceType) -> Shape<'a> {
        Shape { rt, status: true }
    }

    fn untracked(&self, path: &[&str]) -> bool {
        if self.status && matches!(path, ["spec", ..]) {
            return true;
        }
        if !self.status && matches!(path, ["status", ..]) {
            return true;
        }
        untracked(path)
    }

    fn schema_at(&self, fields: &[&str]) -> Option<&'a Value> {
        let mut node: &Value = self.rt.schema.as_deref()?;
        for f in fields {
            node = if *f == "[]" {
                node.get("items")?
            } else {
                node.get("properties")?
                    .get(*f)
                    .or_else(|| node.get("additionalProperties"))?
            };
        }
        Some(node)
    }

    /// The list kind at `fields` (field names, `[]` for list items).
    pub fn list(&self, fields: &[&str], items: &[&Value]) -> ListKind {
        if self.rt.builtin.is_none() {
            let Some(s) = self.schema_at(fields) else {
                return ListKind::Atomic;
            };
            return match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => ListKind::Keyed(
                    s["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect(),
                ),
                Some("set") => ListKind::Set,
                _ => ListKind::Atomic,
            };
        }
        let last = fields
            .iter()
            .rev()
            .find(|f| **f != "[]")
            .copied()
            .unwrap_or("");
        let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
        match last {
            "finalizers" => ListKind::Set,
            "ports" if has("containerPort") => {
                ListKind::Keyed(vec!["containerPort".into(), "protocol".into()])
            }
            "ports" if self.rt.builtin == Some(Builtin::Service) => {
                ListKind::Keyed(vec!["port".into(), "protocol".into()])
            }
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "env"
            | "volumes"
            | "imagePullSecrets" => ListKind::Keyed(vec!["name".into()]),
            "volumeMounts" => ListKind::Keyed(vec!["mountPath".into()]),
            "conditions" => ListKind::Keyed(vec!["type".into()]),
            "ownerReferences" => ListKind::Keyed(vec!["uid".into()]),
            _ => ListKind::Atomic,
        }
    }

    /// Whether the map/struct at `fields` is owned as a whole.
    pub fn atomic_map(&self, fields: &[&str]) -> bool {
        if self.rt.builtin.is_none() {
            return self
                .schema_at(fields)
                .and_then(|s| s.get("x-kubernetes-map-type"))
                .and_then(Value::as_str)
                == Some("atomic");
        }
        matches!(
            fields.last(),
            Some(&"selector") | Some(&"nodeSelectorTerms")
        )
    }
}

/// Fields Kubernetes never tracks in managedFields.
fn untracked(path: &[&str]) -> bool {
    matches!(path, ["apiVersion"] | ["kind"])
        || matches!(path, ["metadata", f, ..] if !matches!(*f, "labels" | "annotations" | "finalizers" | "ownerReferences"))
}

/// `k:{"name":"app"}` for a keyed item (keys in declared order).
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    let body: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            m.get(k)
                .map(|v| format!("{}:{}", Value::String(k.clone()), v))
        })
        .collect();
    format!("k:{{{}}}", body.join(","))
}

/// The set an Apply of `config` claims: its leaves, atomic lists/maps, and keyed items (`.`).
pub fn apply_set(shape: &Shape, config: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk_config(shape, config, &mut Vec::new(), &mut Vec::new(), &mut out);
    out
}

fn walk_config(
    shape: &Shape,
    v: &Value,
    fields: &mut Vec<String>,
    path: &mut FieldPath,
    out: &mut FieldSet,
) {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    if !path.is_empty() && shape.untracked(&names) {
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() && (path.is_empty() || !shape.atomic_map(&names)) => {
            for (k, child) in m {
                fields.push(k.clone());
                path.push(format!("f:{k}"));
                walk_config(shape, child, fields, path, out);
                path.pop();
                fields.pop();
            }
        }
        Value::Array(items) if !path.is_empty() => {
            let refs: Vec<&Value> = items.iter().collect();
            match shape.list(&names, &refs) {
                ListKind::Atomic => {
                    out.insert(path.clone());
                }
                ListKind::Set => {
                    for i in items {
                        let mut p = path.clone();
                        p.push(format!("v:{i}"));
                        out.insert(p);
                    }
                }
                ListKind::Keyed(keys) => {
                    fields.push("[]".to_string());
                    for i in items {
                        path.push(item_key(i, &keys));
                        let mut dot = path.clone();
                        dot.push(".".to_string());
                        out.insert(dot);
                        walk_config(shape, i, fields, path, out);
                        path.pop();
                    }
                    fields.pop();
                }
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

/// The set an Update claims: every path whose value it added or changed (`.` for maps and keyed
/// items it created).
pub fn update_set(shape: &Shape, old: &Value, new: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk_diff(
        shape,
        Some(old),
        new,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut out,
    );
    out
}

fn walk_diff(
    shape: &Shape,
    old: Option<&Value>,
    new: &Value,
    fields: &mut Vec<String>,
    path: &mut FieldPath,
    out: &mut FieldSet,
) {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    if !path.is_empty() && shape.untracked(&names) {
        return;
    }
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(m) if !m.is_empty() && (path.is_empty() || !shape.atomic_map(&names)) => {
            let old_map = old.and_then(Value::as_object);
            let before = out.len();
            for (k, child) in m {
                fields.push(k.clone());
                path.push(format!("f:{k}"));
                walk_diff(
                    shape,
                    old_map.and_then(|o| o.get(k)),
                    child,
                    fields,
                    path,
                    out,
                );
                path.pop();
                fields.pop();
            }
            // A map this write created is owned itself ("."), when anything in it is tracked.
            if old_map.is_none()
                && !path.is_empty()
                && out.len() > before
                && *path != ["f:metadata"]
            {
                let mut dot = path.clone();
                dot.push(".".to_string());
                out.insert(dot);
            }
        }
        Value::Array(items) if !path.is_empty() => {
            let refs: Vec<&Value> = items.iter().collect();
            match shape.list(&names, &refs) {
                ListKind::Keyed(keys) => {
                    let old_items: Vec<&Value> = old
                        .and_then(Value::as_array)
                        .map(|a| a.iter().collect())
                        .unwrap_or_default();
                    fields.push("[]".to_string());
                    for i in items {
                        let key = item_key(i, &keys);
                        let before = old_items
                            .iter()
                            .find(|o| item_key(o, &keys) == key)
                            .copied();
                        path.push(key);
                        if before.is_none() {
                            let mut dot = path.clone();
                            dot.push(".".to_string());
                            out.insert(dot);
                        }
                        walk_diff(shape, before, i, fields, path, out);
                        path.pop();
                    }
                    fields.pop();
                }
                ListKind::Set => {
                    let old_items = old.and_then(Value::as_array);
                    for i in items
                        .iter()
                        .filter(|i| old_items.is_none_or(|o| !o.contains(i)))
                    {
                        let mut p = path.clone();
                        p.push(format!("v:{i}"));
                        out.insert(p);
                    }
                }
                ListKind::Atomic => {
                    out.insert(path.clone());
                }
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

/// The fieldsV1 JSON of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for seg in path {
            node = node
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("object");
        }
    }
    Value::Object(root)
}

/// Parses fieldsV1 JSON back into a set (every node that is a leaf or has a `.`).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, child) in m {
            path.push(k.clone());
            walk(child, path, out);
            path.pop();
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Whether `a` equals `b` or lies below it.
pub fn under(a: &FieldPath, b: &FieldPath) -> bool {
    a.len() >= b.len() && a[..b.len()] == b[..]
}

/// The JSON value at a path, if present.
pub fn value_at<'v>(root: &'v Value, path: &FieldPath) -> Option<&'v Value> {
    let mut cur = root;
    for seg in path {
        if seg == "." {
            return Some(cur);
        }
        cur = if let Some(f) = seg.strip_prefix("f:") {
            cur.get(f)?
        } else if seg.starts_with("k:") {
            cur.as_array()?.iter().find(|i| {
                let keys: Vec<String> = key_fields(seg);
                item_key(i, &keys) == *seg
            })?
        } else if let Some(v) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|i| **i == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// The key field names of a `k:{...}` segment.
pub fn key_fields(seg: &str) -> Vec<String> {
    seg.strip_prefix("k:")
        .and_then(|j| serde_json::from_str::<Map<String, Value>>(j).ok())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Removes the value at a path (a leaf, a keyed item, or a set member); no-op when absent.
pub fn remove_at(root: &mut Value, path: &FieldPath) {
    let (parent_path, last) = match path.last().map(String::as_str) {
        Some(".") => (&path[..path.len() - 2], path[path.len() - 2].as_str()),
        Some(l) => (&path[..path.len() - 1], l),
        None => return,
    };
    let mut cur = root;
    for seg in parent_path {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if seg.starts_with("k:") {
            let keys = key_fields(seg);
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_key(i, &keys) == *seg))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if last.starts_with("k:") {
        let keys = key_fields(last);
        if let Some(a) = cur.as_array_mut() {
            a.retain(|i| item_key(i, &keys) != last);
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut())
    {
        a.retain(|i| *i != want);
    }
}

/// The conflict field name the real server prints: `.spec.template.spec.containers[name="app"].image`.
pub fn display_path(path: &FieldPath) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            out.push_str(&format!("[{v}]"));
        }
    }
    out
}

//! Decodes the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`) of the few
//! built-in kinds that client-go's typed clients send as protobuf to a sim user: Namespaces,
//! Secrets and ConfigMaps (`kubectl create namespace|secret|configmap`, Helm's release records),
//! the DeleteOptions of their deletes, and SelfSubjectAccessReviews (`kubectl auth can-i`). Any other kind is refused with 415, as an API server
//! without that codec would. Decoding only: the sim always answers JSON, which client-go accepts.
//! Must not import the store or the handlers.

use base64::Engine;
use serde_json::{Map, Value, json};

/// How one field is read.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Msg(&'static [Field]),
    RepStr,
    RepMsg(&'static [Field]),
    MapStr,
    MapBytes,
    /// `meta.v1.Time`: seconds (and nanos) since the epoch, shown as RFC 3339.
    Time,
}

/// A field of a message schema: number, JSON name, kind.
type Field = (u32, &'static str, Kind);

const OWNER_REFERENCE: &[Field] = &[
    (1, "kind", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "controller", Kind::Bool),
    (7, "blockOwnerDeletion", Kind::Bool),
];

// managedFields (17) are not read: the server keeps its own.
const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (4, "selfLink", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "generation", Kind::Int),
    (8, "creationTimestamp", Kind::Time),
    (9, "deletionTimestamp", Kind::Time),
    (10, "deletionGracePeriodSeconds", Kind::Int),
    (11, "labels", Kind::MapStr),
    (12, "annotations", Kind::MapStr),
    (13, "ownerReferences", Kind::RepMsg(OWNER_REFERENCE)),
    (14, "finalizers", Kind::RepStr),
];

const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "spec", Kind::Msg(&[(1, "finalizers", Kind::RepStr)])),
    (3, "status", Kind::Msg(&[(1, "phase", Kind::Str)])),
];

const SECRET: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapBytes),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::MapStr),
    (5, "immutable", Kind::Bool),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapStr),
    (3, "binaryData", Kind::MapBytes),
    (4, "immutable", Kind::Bool),
];

const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", Kind::Int),
    (
        2,
        "preconditions",
        Kind::Msg(&[(1, "uid", Kind::Str), (2, "resourceVersion", Kind::Str)]),
    ),
    (3, "orphanDependents", Kind::Bool),
    (4, "propagationPolicy", Kind::Str),
    (5, "dryRun", Kind::RepStr),
];

// k8s.io/api/authorization/v1/generated.proto; field and label selectors (8, 9) are not read.
const RESOURCE_ATTRIBUTES: &[Field] = &[
    (1, "namespace", Kind::Str),
    (2, "verb", Kind::Str),
    (3, "group", Kind::Str),
    (4, "version", Kind::Str),
    (5, "resource", Kind::Str),
    (6, "subresource", Kind::Str),
    (7, "name", Kind::Str),
];

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (
        2,
        "spec",
        Kind::Msg(&[
            (1, "resourceAttributes", Kind::Msg(RESOURCE_ATTRIBUTES)),
            (
                2,
                "nonResourceAttributes",
                Kind::Msg(&[(1, "path", Kind::Str), (2, "verb", Kind::Str)]),
            ),
        ]),
    ),
];

const TYPE_META: &[Field] = &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)];

/// The envelope every protobuf body starts with: `k8s\0` then a `runtime.Unknown`.
const MAGIC: &[u8] = b"k8s\x00";

/// The JSON form of a protobuf request body, or a one-line reason it cannot be read.
pub fn to_json(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with the k8s envelope")?;
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    for field in Fields(envelope) {
        match field? {
            (1, Wire::Len(b)) => type_meta = message(b, TYPE_META)?,
            (2, Wire::Len(b)) => raw = b,
            (3, Wire::Len(b)) if !b.is_empty() => {
                return Err("compressed protobuf bodies are not supported".into());
            }
            _ => {}
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or_default().to_string();
    let schema = match kind.as_str() {
        "Namespace" => NAMESPACE,
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "DeleteOptions" => DELETE_OPTIONS,
        "SelfSubjectAccessReview" => SELF_SUBJECT_ACCESS_REVIEW,
        other => {
            return Err(format!(
                "the sim reads protobuf bodies of Namespace, Secret, ConfigMap, DeleteOptions and SelfSubjectAccessReview only, not {other:?}; send application/json"
            ));
        }
    };
    let mut obj = message(raw, schema)?;
    obj["apiVersion"] = type_meta["apiVersion"].clone();
    obj["kind"] = json!(kind);
    Ok(obj)
}

/// One wire value.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// Iterates over the (field number, value) pairs of a message.
struct Fields<'a>(&'a [u8]);

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint longer than 10 bytes".into())
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = (|| {
            let key = varint(&mut self.0)?;
            let number = u32::try_from(key >> 3).map_err(|_| "field number too large")?;
            let wire = match key & 7 {
                0 => Wire::Varint(varint(&mut self.0)?),
                1 | 5 => {
                    let n = if key & 7 == 1 { 8 } else { 4 };
                    if self.0.len() < n {
                        return Err("truncated fixed-width field".to_string());
                    }
                    self.0 = &self.0[n..];
                    Wire::Fixed
                }
                2 => {
                    let n = usize::try_from(varint(&mut self.0)?).unwrap_or(usize::MAX);
                    if self.0.len() < n {
                        return Err("truncated length-delimited field".to_string());
                    }
                    let (b, rest) = self.0.split_at(n);
                    self.0 = rest;
                    Wire::Len(b)
                }
                w => return Err(format!("unsupported wire type {w}")),
            };
            Ok((number, wire))
        })();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

/// A map entry: key (1) and value (2).
fn entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let (mut key, mut value) = (String::new(), json!(""));
    for field in Fields(b) {
        match field? {
            (1, Wire::Len(k)) => key = text(k)?,
            (2, Wire::Len(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (2, Wire::Len(v)) => value = json!(text(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

/// A time, or None for Go's zero time (what an unset non-pointer Time encodes as).
fn time(b: &[u8]) -> Result<Option<Value>, String> {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    let mut seconds = GO_ZERO_TIME;
    for field in Fields(b) {
        if let (1, Wire::Varint(v)) = field? {
            seconds = v as i64;
        }
    }
    if seconds <= GO_ZERO_TIME {
        return Ok(None);
    }
    let t = chrono::DateTime::from_timestamp(seconds, 0).ok_or("a time field is out of range")?;
    Ok(Some(json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Value, String> {
    let mut out = Map::new();
    for field in Fields(b) {
        let (number, wire) = field?;
        let Some(&(_, name, kind)) = schema.iter().find(|f| f.0 == number) else {
            continue;
        };
        let slot = || Value::Array(vec![]);
        match (kind, wire) {
            // Go writes every non-pointer string, empty or not; JSON omits empty ones, and the
            // server's defaults (a Secret's type) apply only to absent fields.
            (Kind::Str, Wire::Len([])) => {}
            (Kind::Str, Wire::Len(v)) => {
                out.insert(name.into(), json!(text(v)?));
            }
            (Kind::Int, Wire::Varint(v)) => {
                out.insert(name.into(), json!(v as i64));
            }
            (Kind::Bool, Wire::Varint(v)) => {
                out.insert(name.into(), json!(v != 0));
            }
            (Kind::Msg(inner), Wire::Len(v)) => {
                out.insert(name.into(), message(v, inner)?);
            }
            (Kind::Time, Wire::Len(v)) => {
                if let Some(t) = time(v)? {
                    out.insert(name.into(), t);
                }
            }
            (Kind::RepStr, Wire::Len(v)) => {
                let list = out.entry(name).or_insert_with(slot);
                list.as_array_mut().unwrap().push(json!(text(v)?));
            }
            (Kind::RepMsg(inner), Wire::Len(v)) => {
                let item = message(v, inner)?;
                let list = out.entry(name).or_insert_with(slot);
                list.as_array_mut().unwrap().push(item);
            }
            (Kind::MapStr | Kind::MapBytes, Wire::Len(v)) => {
                let (k, val) = entry(v, matches!(kind, Kind::MapBytes))?;
                let map = out.entry(name).or_insert_with(|| json!({}));
                map.as_object_mut().unwrap().insert(k, val);
            }
            _ => return Err(format!("field {name} has the wrong wire type")),
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;

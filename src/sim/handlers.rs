//! The writing verbs on one resource: create, update, patch (merge, JSON, strategic, apply),
//! delete and deletecollection, including the status and scale subresources, and what reads
//! share with them (targets, selectors, the Scale view). Each runs under the state lock and
//! answers like kube-apiserver; get and list are in `reads`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::commit::{Write, commit};
use super::resources::{Builtin, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::state::{Ctx, SimState};
use super::status::{self, Reply};

pub use super::deleting::{delete, delete_collection};
pub use super::patching::patch;

/// Query parameters.
pub type Query = HashMap<String, String>;

/// Where a request points.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource type.
    pub rt: ResourceType,
    /// Namespace from the URL.
    pub namespace: Option<String>,
    /// Object name from the URL.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`).
    pub sub: Option<String>,
}

impl Target {
    pub(super) fn key(&self, name: &str) -> (String, String, String) {
        (
            self.rt.storage_key(),
            if self.rt.namespaced {
                self.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }
}

pub(super) fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(0);
    let mut spec = json!({});
    if replicas != 0 {
        spec["replicas"] = json!(replicas);
    }
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": spec,
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector}, "_rt": rt.kind})
    .as_object()
    .map(|m| {
        let mut m = m.clone();
        m.remove("_rt");
        Value::Object(m)
    })
    .unwrap_or_default()
}

/// Parses the selectors of a list or watch; the error is a 400 reply.
pub fn selectors(t: &Target, q: &Query) -> Result<(LabelSelector, FieldSelector), Reply> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(status::bad_request)?;
    let supported: &[&str] = match (t.rt.group.as_str(), t.rt.kind.as_str()) {
        ("events.k8s.io", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "regarding.name",
            "regarding.kind",
            "regarding.namespace",
            "regarding.uid",
            "reason",
            "type",
            "reportingController",
        ],
        ("", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.name",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ],
        ("", "Pod") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "status.phase",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    };
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        supported,
    )
    .map_err(status::bad_request)?;
    Ok((labels, fields))
}

/// Whether an object passes both selectors.
pub fn selected(obj: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(obj["metadata"]["labels"].as_object()) && fields.matches(obj)
}

/// Parses a request body as JSON, or YAML for YAML content types.
pub fn parse_body(ctype: &str, body: &[u8], rt: &ResourceType) -> Result<Value, Reply> {
    let text =
        std::str::from_utf8(body).map_err(|_| status::bad_request("the body is not UTF-8"))?;
    let parsed = if ctype.contains("yaml") {
        serde_saphyr::from_str::<Value>(text).map_err(|e| crate::manifest::one_line(&e.to_string()))
    } else {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })
}

/// POST: create.
pub fn create(st: &mut SimState, t: &Target, mut obj: Value, ctx: &Ctx) -> Reply {
    if super::views::is_core_event(&t.rt) && obj.is_object() {
        obj = super::views::event_from_core(&obj);
    }
    if !obj.is_object() {
        return status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the body is not an object",
            t.rt.kind, t.rt.version, t.rt.kind
        ));
    }
    if t.rt.namespaced {
        let url_ns = t.namespace.clone().unwrap_or_default();
        match obj["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                );
            }
            _ => obj["metadata"]["namespace"] = json!(url_ns),
        }
    }
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        match obj["metadata"]["generateName"].as_str() {
            Some(prefix) => {
                let suffix: String = st
                    .next_uid()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(5)
                    .collect();
                obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
            }
            None => {
                let c = crate::schema::Cause {
                    reason: crate::schema::CauseReason::Required,
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                };
                return status::invalid(&t.rt, "", &[c]);
            }
        }
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if st.store.get(&t.key(&name)).is_some() {
        return status::already_exists(&t.rt, &name);
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
        ] {
            m.remove(k);
        }
    }
    commit(st, &t.rt, obj, Write::Create, ctx)
}

pub(super) fn check_rv(
    t: &Target,
    name: &str,
    requested: &Value,
    current: &Value,
) -> Result<(), Reply> {
    let Some(rv) = requested.as_str().filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    if rv.parse::<u64>().is_err() {
        return Err(status::bare(
            500,
            format!("strconv.ParseUint: parsing \"{rv}\": invalid syntax"),
        ));
    }
    if Some(rv) != current.as_str() {
        return Err(status::conflict(&t.rt, name));
    }
    Ok(())
}

/// PUT: replace the main resource or a subresource.
pub fn update(st: &mut SimState, t: &Target, mut obj: Value, ctx: &Ctx) -> Reply {
    let name = t.name.clone().unwrap_or_default();
    if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return status::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            obj["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    let Some(current) = st.store.get(&t.key(&name)).cloned() else {
        if t.rt.builtin == Some(Builtin::Lease) && t.sub.is_none() {
            obj["metadata"]["name"] = json!(name);
            return create(st, t, obj, ctx);
        }
        return status::not_found(&t.rt, &name);
    };
    if let Err(r) = check_rv(
        t,
        &name,
        &obj["metadata"]["resourceVersion"],
        &current["metadata"]["resourceVersion"],
    ) {
        return r;
    }
    obj["metadata"]["name"] = json!(name);
    if t.rt.namespaced {
        obj["metadata"]["namespace"] = current["metadata"]["namespace"].clone();
    }
    obj["metadata"]["managedFields"] = current["metadata"]["managedFields"].clone();
    write_to(st, t, &current, obj, ctx)
}

pub(super) fn write_to(
    st: &mut SimState,
    t: &Target,
    current: &Value,
    obj: Value,
    ctx: &Ctx,
) -> Reply {
    match t.sub.as_deref() {
        Some("status") => {
            let mut next = current.clone();
            next["status"] = obj["status"].clone();
            if t.rt.builtin == Some(Builtin::Deployment) {
                next["metadata"]["annotations"] = obj["metadata"]["annotations"].clone();
                if next["metadata"]["annotations"].is_null()
                    && let Some(m) = next["metadata"].as_object_mut()
                {
                    m.remove("annotations");
                }
            }
            commit(st, &t.rt, next, Write::Status(current), ctx)
        }
        Some("scale") => {
            let mut next = current.clone();
            next["spec"]["replicas"] = json!(obj["spec"]["replicas"].as_i64().unwrap_or(0));
            let r = commit(st, &t.rt, next, Write::Scale(current), ctx);
            if r.code.is_success() {
                return Reply::json(r.code, scale_of(&t.rt, &r.body));
            }
            r
        }
        Some(other) => status::not_found_text(other),
        None => commit(st, &t.rt, obj, Write::Update(current), ctx),
    }
}

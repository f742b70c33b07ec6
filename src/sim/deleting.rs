//! DELETE of one object or a collection: finalizers keep an object (with deletionTimestamp),
//! propagation policies add the GC finalizers, otherwise it goes at once.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::handlers::{Query, Target, selected, selectors};
use super::resources::Builtin;
use super::state::{Ctx, SimState};
use super::status::{self, Reply};

/// DELETE of one object: finalizers keep it (with deletionTimestamp), otherwise it goes at once.
pub fn delete(st: &mut SimState, t: &Target, q: &Query, body: &[u8], ctx: &Ctx) -> Reply {
    let name = t.name.clone().unwrap_or_default();
    let key = t.key(&name);
    let Some(current) = st.store.get(&key).cloned() else {
        return status::not_found(&t.rt, &name);
    };
    let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let policy = q
        .get("propagationPolicy")
        .cloned()
        .or_else(|| opts["propagationPolicy"].as_str().map(String::from))
        .unwrap_or_else(|| "Background".into());
    let mut finalizers: Vec<Value> = current["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match policy.as_str() {
        "Foreground" if !finalizers.contains(&json!("foregroundDeletion")) => {
            finalizers.push(json!("foregroundDeletion"))
        }
        "Orphan" if !finalizers.contains(&json!("orphan")) => finalizers.push(json!("orphan")),
        _ => {}
    }
    if finalizers.is_empty() {
        let uid = current["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !ctx.dry_run {
            st.store.remove(&key);
            st.after_delete(&t.rt, &current);
        }
        return status::deleted(&t.rt, &name, &uid);
    }
    if current["metadata"].get("deletionTimestamp").is_some()
        && current["metadata"]["finalizers"].as_array() == Some(&finalizers)
    {
        return Reply::json(StatusCode::OK, st.present(&t.rt, &current));
    }
    let mut next = current.clone();
    next["metadata"]["finalizers"] = Value::Array(finalizers);
    if t.rt.builtin == Some(Builtin::Crd)
        && let Some(conds) = next["status"]["conditions"].as_array_mut()
    {
        conds.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": ctx.now,
                "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"}));
    }
    if next["metadata"].get("deletionTimestamp").is_none() {
        next["metadata"]["deletionTimestamp"] = json!(ctx.now);
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    let mut next_stored = next.clone();
    let dep = t.rt.builtin == Some(Builtin::Deployment);
    if dep {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        next_stored["metadata"]["generation"] = json!(g);
    }
    let stored = st
        .store
        .put(key, next_stored, super::store::EventType::Modified);
    Reply::json(StatusCode::OK, st.present(&t.rt, &stored))
}

/// DELETE of a collection (label/field selectors apply).
pub fn delete_collection(st: &mut SimState, t: &Target, q: &Query, ctx: &Ctx) -> Reply {
    let (labels, fields) = match selectors(t, q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ns = if t.rt.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    let names: Vec<String> = st
        .store
        .list(&t.rt.storage_key(), ns)
        .into_iter()
        .filter(|o| selected(o, &labels, &fields))
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .collect();
    let mut items = Vec::new();
    for n in names {
        let one = Target {
            name: Some(n),
            ..t.clone()
        };
        let r = delete(st, &one, q, b"", ctx);
        if r.body["kind"] != "Status" {
            items.push(r.body);
        }
    }
    Reply::json(
        StatusCode::OK,
        json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": {"resourceVersion": st.store.rv().to_string()}, "items": items}),
    )
}

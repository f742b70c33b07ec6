//! PATCH on one resource: JSON merge, JSON patch, strategic merge (built-ins) and server-side
//! apply, each ending in the shared write pipeline. Runs under the state lock.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::commit::{Write, commit};
use super::fieldset::Shape;
use super::handlers::{Query, Target, check_rv, parse_body, scale_of, write_to};
use super::managed;
use super::patch::{self, PatchError};
use super::state::{Ctx, SimState};
use super::status::{self, Reply};

/// PATCH by content type.
pub fn patch(
    st: &mut SimState,
    t: &Target,
    ctype: &str,
    body: &[u8],
    q: &Query,
    ctx: &Ctx,
) -> Reply {
    let name = t.name.clone().unwrap_or_default();
    let ctype = ctype.split(';').next().unwrap_or("").trim();
    if ctype == "application/apply-patch+yaml" || ctype == "application/apply-patch+json" {
        return apply(st, t, body, q, ctx);
    }
    let supported = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ];
    if !supported.contains(&ctype) {
        return status::unsupported_patch_type();
    }
    if ctype == "application/strategic-merge-patch+json" && t.rt.builtin.is_none() {
        return status::unsupported_media(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        );
    }
    let Some(current) = st.store.get(&t.key(&name)).cloned() else {
        return status::not_found(&t.rt, &name);
    };
    let patch_doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return status::bad_request(format!("error decoding patch: {e}")),
    };
    if ctype == "application/json-patch+json" && !patch_doc.is_array() {
        return status::bad_request(
            "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
        );
    }
    let base = match t.sub.as_deref() {
        Some("scale") => scale_of(&t.rt, &current),
        _ => st.present(&t.rt, &current),
    };
    let mut next = base.clone();
    let result = match ctype {
        "application/merge-patch+json" => {
            patch::merge_patch(&mut next, &patch_doc);
            Ok(())
        }
        "application/json-patch+json" => patch::json_patch(&mut next, &patch_doc),
        _ => patch::strategic_merge(&base, &patch_doc).map(|v| next = v),
    };
    match result {
        Err(PatchError::TestFailed) => return status::patch_test_failed(),
        Err(_) if ctype == "application/json-patch+json" => return status::patch_test_failed(),
        Err(PatchError::Malformed(m)) => return status::bad_request(m),
        Err(PatchError::Invalid(m)) => return status::invalid_message(&t.rt, &name, &m),
        Ok(()) => {}
    }
    if t.rt.builtin.is_some()
        && t.sub.is_none()
        && let Err(e) = super::builtin::decode(&t.rt, &next)
    {
        return status::patch_type_error(&e);
    }
    if let Err(r) = check_rv(
        t,
        &name,
        &next["metadata"]["resourceVersion"],
        &current["metadata"]["resourceVersion"],
    ) {
        return r;
    }
    if t.sub.as_deref() != Some("scale") {
        next["metadata"]["name"] = json!(name);
        next["metadata"]["managedFields"] = current["metadata"]["managedFields"].clone();
    }
    write_to(st, t, &current, next, ctx)
}

fn apply(st: &mut SimState, t: &Target, body: &[u8], q: &Query, ctx: &Ctx) -> Reply {
    let name = t.name.clone().unwrap_or_default();
    let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
        return status::apply_needs_manager();
    };
    let config = match parse_body("yaml", body, &t.rt) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if config["apiVersion"].as_str().is_none_or(str::is_empty) {
        let kind = config["kind"].as_str().unwrap_or_default();
        return status::bad_request(format!("invalid object type: /, Kind={kind}"));
    }
    if config["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n != name)
    {
        return status::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            config["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    let force = q.get("force").is_some_and(|f| f == "true");
    let current = st.store.get(&t.key(&name)).cloned();
    // A resourceVersion in the applied configuration is a precondition, as in kube-apiserver
    // (optimistic concurrency for server-side apply): a stale one is a 409, force or not.
    if let Some(cur) = &current
        && let Err(r) = check_rv(
            t,
            &name,
            &config["metadata"]["resourceVersion"],
            &cur["metadata"]["resourceVersion"],
        )
    {
        return r;
    }
    let sub = t.sub.as_deref();
    let shape = if sub.is_some() {
        Shape::for_status(&t.rt)
    } else {
        Shape::of(&t.rt)
    };
    let mut cfg = config.clone();
    cfg["metadata"]["name"] = json!(name);
    if sub == Some("status")
        && let Some(o) = cfg.as_object_mut()
    {
        o.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
    }
    let api_version = t.rt.api_version();
    let who = managed::Applier {
        manager,
        force,
        api_version: &api_version,
        sub,
        now: &ctx.now,
    };
    let merged = match managed::apply(&shape, current.as_ref(), &cfg, &who) {
        Ok(m) => m,
        Err(conflicts) => {
            return Reply::json(StatusCode::CONFLICT, managed::conflict_status(&conflicts));
        }
    };
    let mut merged = merged;
    if t.rt.namespaced {
        merged["metadata"]["namespace"] = json!(t.namespace.clone().unwrap_or_default());
    }
    match current {
        None => {
            if sub.is_some() {
                return status::not_found(&t.rt, &name);
            }
            commit(st, &t.rt, merged, Write::Applied(None), ctx)
        }
        Some(cur) if sub == Some("status") => {
            let mut next = cur.clone();
            next["status"] = merged["status"].clone();
            next["metadata"]["managedFields"] = merged["metadata"]["managedFields"].clone();
            commit(st, &t.rt, next, Write::AppliedStatus(&cur), ctx)
        }
        Some(cur) => commit(st, &t.rt, merged, Write::Applied(Some(&cur)), ctx),
    }
}

//! The write pipeline every mutating verb ends in: decode (dropping unknown fields, or refusing them
//! under fieldValidation=Strict), defaults, validation, generation rules, managedFields,
//! validating admission policies, no-op detection, storage, and CRD registration.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::builtin;
use super::fieldset::Shape;
use super::managed;
use super::resources::{Builtin, ResourceType};
use super::state::{Ctx, FieldValidation, SimState};
use super::status::{self, Reply};
use super::store::EventType;
use crate::schema;

/// How the written object relates to what is stored.
pub enum Write<'a> {
    /// A new object.
    Create,
    /// A change of the main resource (status is kept from `old` when there is a status subresource).
    Update(&'a Value),
    /// A change through /status.
    Status(&'a Value),
    /// A change through /scale (a main-resource update that admission sees as the subresource).
    Scale(&'a Value),
    /// A server-side apply result (managedFields already computed).
    Applied(Option<&'a Value>),
    /// A server-side apply through /status (managedFields already computed).
    AppliedStatus(&'a Value),
}

fn strip_for_generation(v: &Value, deployment: bool) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        o.remove("apiVersion");
        o.remove("kind");
        let meta = o.remove("metadata").unwrap_or(Value::Null);
        if deployment {
            o.insert("annotations".into(), meta["annotations"].clone());
            o.insert(
                "deleting".into(),
                json!(meta.get("deletionTimestamp").is_some()),
            );
        }
    }
    v
}

/// Decodes, defaults and checks the object; returns it and the unknown-field warnings.
pub fn normalize(rt: &ResourceType, obj: Value, ctx: &Ctx) -> Result<(Value, Vec<String>), Reply> {
    let (mut obj, unknown) = match &rt.schema {
        Some(schema) => {
            let mut v = obj;
            let unknown = schema::prune_unknown(schema, &mut v);
            (v, unknown)
        }
        None => builtin::decode(rt, &obj).map_err(status::bad_request)?,
    };
    if ctx.field_validation == FieldValidation::Strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|u| format!("unknown field \"{u}\""))
            .collect();
        return Err(status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            rt.kind,
            rt.version,
            rt.kind,
            list.join(", ")
        )));
    }
    match &rt.schema {
        Some(schema) => obj = schema::apply_defaults(schema, &obj),
        None => builtin::apply_defaults(rt, &mut obj),
    }
    let warnings = if ctx.field_validation == FieldValidation::Warn {
        unknown
            .iter()
            .map(|u| format!("299 - \"unknown field \\\"{u}\\\"\""))
            .collect()
    } else {
        Vec::new()
    };
    Ok((obj, warnings))
}

fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<schema::Cause> {
    if super::views::is_event(rt) {
        return super::views::validate_event(obj, old);
    }
    match &rt.schema {
        Some(s) => schema::validate(s, obj, old),
        None => builtin::validate(rt, obj, old),
    }
}

/// Runs the pipeline and stores the result. `key` is (storage key, namespace, name).
pub fn commit(st: &mut SimState, rt: &ResourceType, new: Value, how: Write, ctx: &Ctx) -> Reply {
    let (mut obj, warnings) = match normalize(rt, new, ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let old = match &how {
        Write::Create | Write::Applied(None) => None,
        Write::Update(o)
        | Write::Status(o)
        | Write::Scale(o)
        | Write::Applied(Some(o))
        | Write::AppliedStatus(o) => Some(*o),
    };
    if let (Some(old), true) = (old, rt.status)
        && matches!(how, Write::Update(_) | Write::Scale(_) | Write::Applied(_))
    {
        match old.get("status") {
            Some(s) => obj["status"] = s.clone(),
            None => {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if matches!(how, Write::Create | Write::Applied(None))
        && rt.status
        && rt.builtin.is_none()
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    let mut causes = validate(rt, &obj, old);
    if matches!(how, Write::Status(_) | Write::AppliedStatus(_)) {
        // kube-apiserver validates /status writes against the status schema, so its messages
        // name the field without the `status.` prefix (08 step 16); the cause's field keeps it.
        for c in &mut causes {
            if let Some(rel) = c.field.strip_prefix("status.") {
                c.message = c
                    .message
                    .replace(&format!("{} in body", c.field), &format!("{rel} in body"));
            }
        }
    }
    if !causes.is_empty() {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return status::invalid(rt, &name, &causes);
    }
    if let Some(old) = old
        && let Err(r) = finalizer_rules(rt, old, &obj)
    {
        return r;
    }
    stamp_metadata(st, rt, &mut obj, old, &how, ctx);
    let warnings = match admit(st, rt, &obj, old, &how, ctx) {
        Ok(more) => [warnings, more].concat(),
        Err(r) => return r,
    };
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = (rt.storage_key(), ns, name);
    if let Some(old) = old {
        if without_rv(old) == without_rv(&obj) {
            let mut r = Reply::json(StatusCode::OK, st.present(rt, old));
            r.warnings = warnings;
            return r;
        }
        let deleting = obj["metadata"].get("deletionTimestamp").is_some();
        let no_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if deleting && no_finalizers {
            st.store.remove(&key);
            st.after_delete(rt, &obj);
            return Reply::json(StatusCode::OK, st.present(rt, &obj));
        }
    }
    if ctx.dry_run {
        return Reply::json(
            if old.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            st.present(rt, &obj),
        );
    }
    let kind = if old.is_some() {
        EventType::Modified
    } else {
        EventType::Added
    };
    let stored = st.store.put(key, obj, kind);
    if rt.builtin == Some(Builtin::Crd) {
        st.register_crd(&stored);
    }
    let mut r = Reply::json(
        if old.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        st.present(rt, &stored),
    );
    r.warnings = warnings;
    r
}

/// Validating admission policies, on the object as it would be stored (a Scale for /scale).
fn admit(
    st: &SimState,
    rt: &ResourceType,
    obj: &Value,
    old: Option<&Value>,
    how: &Write,
    ctx: &Ctx,
) -> Result<Vec<String>, Reply> {
    // Every write passes here, the simulated controllers' too: skip the copies below unless a
    // binding could apply.
    if !super::admission::active(st, rt) {
        return Ok(Vec::new());
    }
    let sub = match how {
        Write::Status(_) | Write::AppliedStatus(_) => Some("status"),
        Write::Scale(_) => Some("scale"),
        _ => None,
    };
    let (object, old) = if sub == Some("scale") {
        let present = |o: &Value| super::handlers::scale_of(rt, &st.present(rt, o));
        (present(obj), old.map(present))
    } else {
        (st.present(rt, obj), old.map(|o| st.present(rt, o)))
    };
    super::admission::admit(
        st,
        &super::admission::Write {
            rt,
            sub,
            object: &object,
            old: old.as_ref(),
            dry_run: ctx.dry_run,
        },
    )
}

/// What decides a no-op: everything but the resourceVersion and the managedFields times (an
/// ownership change alone is a real change, as in 06 step 4).
fn without_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        for e in m
            .get_mut("managedFields")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(e) = e.as_object_mut() {
                e.remove("time");
            }
        }
    }
    v
}

fn finalizer_rules(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), Reply> {
    if old["metadata"].get("deletionTimestamp").is_none() {
        return Ok(());
    }
    let before: Vec<&Value> = old["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let added: Vec<&Value> = new["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let list: Vec<String> = added.iter().map(|f| f.to_string()).collect();
    let cause = schema::Cause {
        reason: schema::CauseReason::Forbidden,
        field: "metadata.finalizers".to_string(),
        message: format!(
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            list.join(", ")
        ),
    };
    // The real server reports this cause twice (two validators find it).
    Err(status::invalid(rt, name, &[cause.clone(), cause]))
}

fn stamp_metadata(
    st: &mut SimState,
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    how: &Write,
    ctx: &Ctx,
) {
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    match old {
        None => {
            obj["metadata"]["uid"] = json!(st.next_uid());
            obj["metadata"]["creationTimestamp"] = json!(ctx.now);
            if rt.has_generation {
                obj["metadata"]["generation"] = json!(1);
            }
            if rt.builtin == Some(Builtin::Service) {
                st.allocate_cluster_ip(obj);
            }
            if rt.builtin == Some(Builtin::Crd) {
                obj["status"] = crd_status(obj);
                if obj["spec"].get("conversion").is_none() {
                    obj["spec"]["conversion"] = json!({"strategy": "None"});
                }
                obj["metadata"]["finalizers"] =
                    json!(["customresourcecleanup.apiextensions.k8s.io"]);
            }
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("deletionTimestamp");
            }
        }
        Some(old) => {
            for k in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old["metadata"].get(k) {
                    Some(v) => obj["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = obj["metadata"].as_object_mut()
                            && k != "deletionTimestamp"
                        {
                            m.remove(k);
                        }
                    }
                }
            }
            // Status writes never move the generation (even the annotations a Deployment's
            // /status accepts, which is how the controller sets the revision annotation).
            if rt.has_generation && !matches!(how, Write::Status(_) | Write::AppliedStatus(_)) {
                let dep = rt.builtin == Some(Builtin::Deployment);
                if strip_for_generation(old, dep) != strip_for_generation(obj, dep) {
                    let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    obj["metadata"]["generation"] = json!(g);
                }
            }
            if rt.builtin == Some(Builtin::Service) {
                for k in ["clusterIP", "clusterIPs"] {
                    if obj["spec"].get(k).is_none() {
                        obj["spec"][k] = old["spec"][k].clone();
                    }
                }
            }
        }
    }
    if !matches!(how, Write::Applied(_) | Write::AppliedStatus(_)) {
        let sub = matches!(how, Write::Status(_)).then_some("status");
        let shape = if sub.is_some() {
            Shape::for_status(rt)
        } else {
            Shape::of(rt)
        };
        let base = old.cloned().unwrap_or_else(|| json!({}));
        managed::record_update(
            &shape,
            &base,
            obj,
            &ctx.manager,
            &rt.api_version(),
            sub,
            &ctx.now,
        );
    }
}

fn crd_status(crd: &Value) -> Value {
    let versions: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ],
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": versions,
    })
}

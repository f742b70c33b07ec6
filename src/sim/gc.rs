//! Garbage collection and namespace cleanup: dependents whose owners are gone are deleted
//! (background), foreground deletion waits for blocking dependents, orphan deletion strips the
//! owner references, and a deleted namespace takes its objects with it.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::handlers::{self, Target};
use super::state::{Ctx, FieldValidation, SimState};

fn ctx() -> Ctx {
    Ctx {
        manager: "kube-controller-manager".into(),
        field_validation: FieldValidation::Ignore,
        dry_run: false,
        now: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

fn target_of(st: &SimState, key: &(String, String, String)) -> Option<Target> {
    let rt = st.types.iter().find(|t| t.storage_key() == key.0)?.clone();
    let namespace = (!key.1.is_empty()).then(|| key.1.clone());
    Some(Target {
        rt,
        namespace,
        name: Some(key.2.clone()),
        sub: None,
    })
}

fn remove_finalizer(
    st: &mut SimState,
    key: &(String, String, String),
    obj: &Value,
    finalizer: &str,
) {
    let Some(t) = target_of(st, key) else { return };
    let mut next = obj.clone();
    if let Some(list) = next["metadata"]["finalizers"].as_array_mut() {
        list.retain(|f| f != finalizer);
    }
    handlers::update(st, &t, next, &ctx());
}

/// One collection pass; returns whether it changed anything.
pub fn collect(st: &mut SimState) -> bool {
    let objects: Vec<((String, String, String), Value)> = st
        .store
        .all()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let uids: HashSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| o["metadata"]["uid"].as_str())
        .collect();
    let namespaces: HashSet<&str> = objects
        .iter()
        .filter(|(k, _)| k.0 == "/namespaces")
        .map(|(k, _)| k.2.as_str())
        .collect();
    let deleting = |uid: &str, finalizer: &str| {
        objects.iter().any(|(_, o)| {
            o["metadata"]["uid"] == uid
                && o["metadata"]["deletionTimestamp"].is_string()
                && o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.contains(&json!(finalizer)))
        })
    };
    let mut changed = false;
    let mut referenced: HashSet<String> = HashSet::new();
    for (key, obj) in &objects {
        if !key.1.is_empty() && !namespaces.contains(key.1.as_str()) {
            if let Some(t) = target_of(st, key) {
                handlers::delete(st, &t, &Default::default(), b"", &ctx());
                changed = true;
            }
            continue;
        }
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if refs.is_empty() {
            continue;
        }
        let owner_uids: Vec<&str> = refs.iter().filter_map(|r| r["uid"].as_str()).collect();
        for u in &owner_uids {
            referenced.insert(u.to_string());
        }
        let Some(t) = target_of(st, key) else {
            continue;
        };
        if owner_uids.iter().any(|u| deleting(u, "orphan")) {
            let mut next = obj.clone();
            let keep: Vec<Value> = refs
                .iter()
                .filter(|r| !r["uid"].as_str().is_some_and(|u| deleting(u, "orphan")))
                .cloned()
                .collect();
            next["metadata"]["ownerReferences"] = if keep.is_empty() {
                Value::Null
            } else {
                Value::Array(keep)
            };
            if next["metadata"]["ownerReferences"].is_null() {
                next["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("ownerReferences"));
            }
            handlers::update(st, &t, next, &ctx());
            changed = true;
        } else if owner_uids.iter().all(|u| !uids.contains(u)) {
            handlers::delete(st, &t, &Default::default(), b"", &ctx());
            changed = true;
        } else if owner_uids.iter().any(|u| deleting(u, "foregroundDeletion"))
            && obj["metadata"]["deletionTimestamp"].is_null()
        {
            let q = [("propagationPolicy".to_string(), "Foreground".to_string())]
                .into_iter()
                .collect();
            handlers::delete(st, &t, &q, b"", &ctx());
            changed = true;
        }
    }
    for (key, obj) in &objects {
        if obj["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        for f in ["foregroundDeletion", "orphan"] {
            let has = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|l| l.contains(&json!(f)));
            if has
                && !referenced.contains(uid)
                && let Some(current) = st.store.get(key).cloned()
            {
                remove_finalizer(st, key, &current, f);
                changed = true;
            }
        }
    }
    changed | cleanup_crds(st, &objects)
}

/// A deleted CRD's custom objects go first; then its cleanup finalizer is removed.
fn cleanup_crds(st: &mut SimState, objects: &[((String, String, String), Value)]) -> bool {
    let mut changed = false;
    let crds = objects.iter().filter(|(k, o)| {
        k.0 == "apiextensions.k8s.io/customresourcedefinitions"
            && o["metadata"]["deletionTimestamp"].is_string()
    });
    for (key, crd) in crds {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        st.remove_custom_objects(group, plural);
        if let Some(current) = st.store.get(key).cloned() {
            remove_finalizer(
                st,
                key,
                &current,
                "customresourcecleanup.apiextensions.k8s.io",
            );
            changed = true;
        }
    }
    changed
}

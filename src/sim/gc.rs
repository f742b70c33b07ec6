//! Garbage collection and namespace cleanup: dependents whose owners are gone are deleted
//! (background), foreground deletion waits for blocking dependents, orphan deletion strips the
//! owner references, and a deleted namespace takes its objects with it.

use std::collections::HashSet;

use serde_json::Value;

use super::handlers::{self, Target};
use super::kubelet::ctx;
use super::state::SimState;
use super::store::{Change, EventType, Key};

fn target_of(st: &SimState, key: &Key) -> Option<Target> {
    let rt = st.types.iter().find(|t| t.storage_key() == key.0)?.clone();
    let namespace = (!key.1.is_empty()).then(|| key.1.clone());
    Some(Target {
        rt,
        namespace,
        name: Some(key.2.clone()),
        sub: None,
    })
}

fn remove_finalizer(st: &mut SimState, key: &Key, obj: &Value, finalizer: &str) {
    let Some(t) = target_of(st, key) else { return };
    let mut next = obj.clone();
    if let Some(list) = next["metadata"]["finalizers"].as_array_mut() {
        list.retain(|f| f != finalizer);
    }
    handlers::update(st, &t, next, &ctx());
}

/// Whether a change can give the collector work: something went or is going, a namespace
/// changed, or an object's owners changed (a new dependent may name an owner that is gone).
pub fn needed_after(change: &Change) -> bool {
    let owners = |o: &Value| o["metadata"].get("ownerReferences").cloned();
    change.kind == EventType::Deleted
        || change.object["metadata"]["deletionTimestamp"].is_string()
        || change.resource == "/namespaces"
        || owners(&change.object) != change.old.as_deref().and_then(owners)
}

/// When the collector runs. A pass looks at every object under the lock the API server needs
/// too: it runs when something may have given it work, at most once per `gap` and never more
/// than a tenth of the time (kube-controller-manager's collector is asynchronous as well, and
/// lags under load). Run on every change, a rollout of a thousand apps — each step creating or
/// deleting owned objects — spent half the server's time in it.
pub struct Pacer {
    due: bool,
    next: tokio::time::Instant,
    gap: std::time::Duration,
}

impl Pacer {
    /// A pacer with a pass due now.
    pub fn new(gap: std::time::Duration) -> Pacer {
        Pacer {
            due: true,
            next: tokio::time::Instant::now(),
            gap,
        }
    }

    /// Asks for a pass (a resync: everything may have changed).
    pub fn ask(&mut self) {
        self.due = true;
    }

    /// Asks for a pass if `change` can give the collector work.
    pub fn note(&mut self, change: &Change) {
        self.due |= needed_after(change);
    }

    /// Whether a pass is still wanted.
    pub fn pending(&self) -> bool {
        self.due
    }

    /// Whether a pass may run at `now`.
    fn may_run(&self, now: tokio::time::Instant) -> bool {
        self.due && now >= self.next
    }

    /// Records a pass that started at `now` and took `took`; one that changed something asks
    /// for another (a deletion may leave further dependents without owners).
    fn ran(&mut self, now: tokio::time::Instant, took: std::time::Duration, changed: bool) {
        self.next = now + self.gap.max(took * 10);
        self.due = changed;
    }

    /// Runs a pass if one is wanted and allowed now; whether it changed anything.
    pub fn run(&mut self, st: &mut SimState) -> bool {
        let now = tokio::time::Instant::now();
        if !self.may_run(now) {
            return false;
        }
        let changed = collect(st);
        self.ran(now, tokio::time::Instant::now() - now, changed);
        changed
    }
}

/// What one pass decided to do to one object.
enum Action {
    /// Delete (background), e.g. its namespace or every owner is gone.
    Delete(Key),
    /// Delete with foreground propagation (an owner is being deleted in the foreground).
    DeleteForeground(Key),
    /// Drop the owner references to these uids (their owners are deleted with "orphan").
    StripOwners(Key, HashSet<String>),
    /// Remove a GC finalizer from an object being deleted that no longer has dependents.
    RemoveFinalizer(Key, &'static str),
}

/// The uids of objects being deleted that still carry a GC finalizer.
#[derive(Default)]
struct Deleting<'a> {
    orphan: HashSet<&'a str>,
    foreground: HashSet<&'a str>,
}

/// One collection pass; returns whether it changed anything.
///
/// The plan is made over references (one pass, sets for lookups) and applied afterwards: the
/// earlier version cloned every object and searched all of them per owner reference, which made
/// a pass O(objects²) and stalled the API server at a thousand apps.
pub fn collect(st: &mut SimState) -> bool {
    let actions = plan(st);
    let crds = deleted_crds(st);
    let changed = !actions.is_empty() || !crds.is_empty();
    for action in actions {
        apply(st, action);
    }
    for (key, group, plural) in crds {
        st.remove_custom_objects(&group, &plural);
        if let Some(current) = st.store.get(&key).cloned() {
            remove_finalizer(
                st,
                &key,
                &current,
                "customresourcecleanup.apiextensions.k8s.io",
            );
        }
    }
    changed
}

fn plan(st: &SimState) -> Vec<Action> {
    let mut uids: HashSet<&str> = HashSet::new();
    let mut namespaces: HashSet<&str> = HashSet::new();
    let mut deleting = Deleting::default();
    for (key, o) in st.store.all() {
        if key.0 == "/namespaces" {
            namespaces.insert(key.2.as_str());
        }
        let meta = &o["metadata"];
        let Some(uid) = meta["uid"].as_str() else {
            continue;
        };
        uids.insert(uid);
        if meta["deletionTimestamp"].is_string() {
            let has = |f: &str| {
                meta["finalizers"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x == f))
            };
            if has("orphan") {
                deleting.orphan.insert(uid);
            }
            if has("foregroundDeletion") {
                deleting.foreground.insert(uid);
            }
        }
    }
    let mut actions = Vec::new();
    let mut referenced: HashSet<&str> = HashSet::new();
    for (key, obj) in st.store.all() {
        if !key.1.is_empty() && !namespaces.contains(key.1.as_str()) {
            actions.push(Action::Delete(key.clone()));
            continue;
        }
        let owners: Vec<&str> = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["uid"].as_str())
            .collect();
        if owners.is_empty() {
            continue;
        }
        referenced.extend(owners.iter().copied());
        let orphaning: HashSet<String> = owners
            .iter()
            .filter(|u| deleting.orphan.contains(*u))
            .map(|u| u.to_string())
            .collect();
        if !orphaning.is_empty() {
            actions.push(Action::StripOwners(key.clone(), orphaning));
        } else if owners.iter().all(|u| !uids.contains(u)) {
            actions.push(Action::Delete(key.clone()));
        } else if owners.iter().any(|u| deleting.foreground.contains(u))
            && obj["metadata"]["deletionTimestamp"].is_null()
        {
            actions.push(Action::DeleteForeground(key.clone()));
        }
    }
    for (key, obj) in st.store.all() {
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if referenced.contains(uid) {
            continue;
        }
        if deleting.foreground.contains(uid) {
            actions.push(Action::RemoveFinalizer(key.clone(), "foregroundDeletion"));
        }
        if deleting.orphan.contains(uid) {
            actions.push(Action::RemoveFinalizer(key.clone(), "orphan"));
        }
    }
    actions
}

fn apply(st: &mut SimState, action: Action) {
    match action {
        Action::Delete(key) => {
            if let Some(t) = target_of(st, &key) {
                handlers::delete(st, &t, &Default::default(), b"", &ctx());
            }
        }
        Action::DeleteForeground(key) => {
            if let Some(t) = target_of(st, &key) {
                let q = [("propagationPolicy".to_string(), "Foreground".to_string())]
                    .into_iter()
                    .collect();
                handlers::delete(st, &t, &q, b"", &ctx());
            }
        }
        Action::StripOwners(key, gone) => strip_owners(st, &key, &gone),
        Action::RemoveFinalizer(key, f) => {
            if let Some(current) = st.store.get(&key).cloned() {
                remove_finalizer(st, &key, &current, f);
            }
        }
    }
}

fn strip_owners(st: &mut SimState, key: &Key, gone: &HashSet<String>) {
    let (Some(t), Some(mut next)) = (target_of(st, key), st.store.get(key).cloned()) else {
        return;
    };
    let keep: Vec<Value> = next["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["uid"].as_str().is_some_and(|u| gone.contains(u)))
        .cloned()
        .collect();
    if keep.is_empty() {
        next["metadata"]
            .as_object_mut()
            .map(|m| m.remove("ownerReferences"));
    } else {
        next["metadata"]["ownerReferences"] = Value::Array(keep);
    }
    handlers::update(st, &t, next, &ctx());
}

/// Deleted CRDs (key, group, plural): their custom objects go first, then the cleanup finalizer.
fn deleted_crds(st: &SimState) -> Vec<(Key, String, String)> {
    st.store
        .list("apiextensions.k8s.io/customresourcedefinitions", None)
        .into_iter()
        .filter(|o| o["metadata"]["deletionTimestamp"].is_string())
        .map(|crd| {
            let name = crd["metadata"]["name"].as_str().unwrap_or_default();
            let key = (
                "apiextensions.k8s.io/customresourcedefinitions".to_string(),
                String::new(),
                name.to_string(),
            );
            let group = crd["spec"]["group"].as_str().unwrap_or_default();
            let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
            (key, group.to_string(), plural.to_string())
        })
        .collect()
}

#[cfg(test)]
mod pacer_tests {
    use super::Pacer;
    use std::time::Duration;

    #[test]
    fn passes_are_spaced_by_the_gap_or_ten_times_their_length() {
        let ms = Duration::from_millis;
        let mut p = Pacer::new(ms(300));
        let t0 = tokio::time::Instant::now();
        assert!(p.may_run(t0), "a new pacer runs at once");
        p.ran(t0, ms(5), false);
        assert!(
            !p.pending() && !p.may_run(t0 + ms(400)),
            "nothing asked for"
        );
        p.ask();
        assert!(!p.may_run(t0 + ms(299)) && p.may_run(t0 + ms(300)));
        // A long pass pushes the next one out to ten times its length.
        p.ran(t0 + ms(300), ms(100), true);
        assert!(
            p.pending(),
            "a pass that changed something asks for another"
        );
        assert!(!p.may_run(t0 + ms(1299)) && p.may_run(t0 + ms(1300)));
    }
}

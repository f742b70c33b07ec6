//! In-memory object storage with etcd-like resourceVersions and a bounded event history that
//! watches replay from. One global counter, as in etcd; history older than the window is
//! "compacted" and a watch from there gets 410 Expired. Objects are kept as `Arc<Value>`, so a
//! read snapshots a collection by copying pointers, and a change shares the stored object instead
//! of copying it. Each change encodes its watch line once per served version, for every watcher.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How many events the history keeps for watches that resume from an older resourceVersion.
pub const HISTORY: usize = 20_000;

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// How many of the latest changes keep their encoded watch lines: as many as a live watcher can
/// lag behind before it is closed (the broadcast capacity). Older changes are only replayed to
/// watches that resume, which encode them again.
const LINES_KEPT: usize = 8192;

/// One change, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Storage key of the resource type (`group/plural`).
    pub resource: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// The object after the change (before it, for deletions, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before a modification (watches with selectors turn "no longer matches" into
    /// DELETED, as the real server does).
    pub old: Option<Arc<Value>>,
    /// Watch lines already encoded, by (event type, apiVersion): every watcher of the same
    /// version sends the same bytes, so the first one to need them encodes them for all.
    lines: Mutex<Vec<(&'static str, String, Bytes)>>,
}

impl Change {
    /// The watch line (`{"type":…,"object":…}` and a newline) of this change as `event`, with the
    /// object's apiVersion and kind those of the version watched; encoded at most once.
    pub fn line(&self, event: &'static str, api_version: &str, kind: &str) -> Bytes {
        // Held while encoding: a second watcher of the same version waits for these bytes rather
        // than encoding them again.
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, b)) = lines
            .iter()
            .find(|(e, v, _)| *e == event && v == api_version)
        {
            return b.clone();
        }
        let mut obj = (*self.object).clone();
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        let b = watch_line(event, obj);
        lines.push((event, api_version.to_string(), b.clone()));
        b
    }

    fn forget_lines(&self) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// One watch event as sent: `{"object":…,"type":…}` and a newline.
pub fn watch_line(event: &str, object: Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": event, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

/// Key of a stored object.
pub type Key = (String, String, String);

/// The storage. Callers hold it behind a mutex; every method is short.
pub struct Store {
    objects: BTreeMap<Key, Arc<Value>>,
    /// Keys of the objects that name each uid in their ownerReferences: the simulated controllers
    /// look up dependents per owner, and scanning the namespace made a pass O(objects²).
    dependents: HashMap<String, BTreeSet<Key>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(8192);
        Store {
            objects: BTreeMap::new(),
            dependents: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            compacted: 0,
            tx,
        }
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can resume after.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Receiver of future changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// An object by key.
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key).map(|o| &**o)
    }

    /// An object by key, shared: a reader keeps it after releasing the state lock.
    pub fn get_shared(&self, key: &Key) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// Objects of a resource, optionally in one namespace, in etcd key order (namespace, name).
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.range(resource, namespace).map(|o| &**o).collect()
    }

    /// `list`, shared: a snapshot of the collection that stays as it is after the lock is
    /// released (later writes store new `Arc`s and leave these alone).
    pub fn list_shared(&self, resource: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.range(resource, namespace).cloned().collect()
    }

    fn range<'s, 'q>(
        &'s self,
        resource: &'q str,
        namespace: Option<&'q str>,
    ) -> impl Iterator<Item = &'s Arc<Value>> {
        let start = (
            resource.to_string(),
            namespace.unwrap_or("").to_string(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(move |((r, ns, _), _)| r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v)
    }

    /// Objects of a resource in one namespace whose ownerReferences name `owner_uid`, in key order.
    pub fn dependents(&self, resource: &str, namespace: &str, owner_uid: &str) -> Vec<&Value> {
        let Some(keys) = self.dependents.get(owner_uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|(r, ns, _)| r == resource && ns == namespace)
            .filter_map(|k| self.get(k))
            .collect()
    }

    /// Every stored object with its key (for garbage collection and controllers).
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter().map(|(k, o)| (k, &**o))
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Stores an object, stamping the next resourceVersion, and records the change; the stored
    /// object is shared with the change (no copy).
    pub fn put(&mut self, key: Key, mut object: Value, kind: EventType) -> Arc<Value> {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let object = Arc::new(object);
        let old = self.objects.insert(key.clone(), object.clone());
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &object);
        self.record(key, kind, object.clone(), old);
        object
    }

    /// Removes an object; the DELETED event carries it with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &Key) -> Option<Arc<Value>> {
        let object = self.objects.remove(key)?;
        self.unindex(key, &object);
        self.rv += 1;
        // Readers and the history may still share the stored object: stamp a copy.
        let mut object = Arc::unwrap_or_clone(object);
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let object = Arc::new(object);
        self.record(key.clone(), EventType::Deleted, object.clone(), None);
        Some(object)
    }

    fn index(&mut self, key: &Key, object: &Value) {
        for uid in owner_uids(object) {
            self.dependents
                .entry(uid.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &Key, object: &Value) {
        for uid in owner_uids(object) {
            if let Some(keys) = self.dependents.get_mut(uid) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
    }

    fn record(&mut self, key: Key, kind: EventType, object: Arc<Value>, old: Option<Arc<Value>>) {
        let change = Arc::new(Change {
            rv: self.rv,
            kind,
            resource: key.0,
            namespace: key.1,
            object,
            old,
            lines: Mutex::new(Vec::new()),
        });
        self.history.push_back(change.clone());
        if let Some(aged) = self
            .history
            .len()
            .checked_sub(LINES_KEPT + 1)
            .and_then(|i| self.history.get(i))
        {
            aged.forget_lines();
        }
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(change);
    }

    /// Changes after `rv`, or Err when that part of the history was compacted.
    pub fn since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        // The history is in resourceVersion order.
        let first = self.history.partition_point(|c| c.rv <= rv);
        Ok(self.history.range(first..).cloned().collect())
    }

    /// Drops the whole history (tests: emulate etcd compaction / watch-cache eviction).
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
    }
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

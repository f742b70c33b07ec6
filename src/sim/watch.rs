//! Watches: replay from a resourceVersion (or a synthetic ADDED list for rv 0/unset), then live
//! changes; selectors turn "no longer matches" into DELETED; bookmarks; timeoutSeconds; a
//! compacted resourceVersion gives an in-band ERROR event with 410 Expired, as the real server does;
//! `SimState::drop_watches` breaks every open stream. A watch is opened in two steps: `open`, under
//! the state lock, subscribes and takes its starting point (shared objects or changes, no copies);
//! `Opened::stream`, after the lock, encodes the initial events. Each change's line is encoded
//! once and shared by every watcher of that version (`Change::line`); a watcher only filters.
//! Must not import the controller or the decision core.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::handlers::{Query, Target, selected, selectors};
use super::selector::{FieldSelector, LabelSelector};
use super::state::{SimState, present};
use super::status::{self, Reply};
use super::store::{Change, EventType, watch_line};
use super::table::{self, Representation};

struct Filter {
    target: Target,
    api_version: String,
    labels: LabelSelector,
    fields: FieldSelector,
    /// `Accept: …;as=Table` (`kubectl get -w`): each event's object is a one-row Table with the
    /// type's printer columns (the CRD, when it has one), encoded for this watcher alone.
    table: Option<Option<Value>>,
}

impl Filter {
    /// The change's line for this watcher, if it passes the watcher's filters.
    fn event(&self, c: &Change) -> Option<Bytes> {
        if c.resource != self.target.rt.storage_key() {
            return None;
        }
        if let Some(ns) = self
            .target
            .namespace
            .as_deref()
            .filter(|_| self.target.rt.namespaced)
            && c.namespace != ns
        {
            return None;
        }
        let now = selected(&c.object, &self.labels, &self.fields);
        let before = c
            .old
            .as_ref()
            .map(|o| selected(o, &self.labels, &self.fields));
        let kind = match (c.kind, before, now) {
            (EventType::Modified, Some(false), true) => "ADDED",
            (EventType::Modified, Some(true), false) => "DELETED",
            (_, _, false) => return None,
            (k, _, true) => k.as_str(),
        };
        if self.table.is_some() {
            return Some(self.encode(kind, &c.object));
        }
        Some(c.line(kind, &self.api_version, &self.target.rt.kind))
    }

    /// One event for an object as this watcher asked for it.
    fn encode(&self, kind: &str, obj: &Value) -> Bytes {
        let rt = &self.target.rt;
        match &self.table {
            None => line(kind, present(rt, obj)),
            Some(crd) => {
                let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
                line(
                    kind,
                    table::table(rt, crd.as_ref(), &[present(rt, obj)], rv),
                )
            }
        }
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    watch_line(kind, object)
}

struct Watch {
    queue: VecDeque<Bytes>,
    rx: broadcast::Receiver<Arc<Change>>,
    drops: tokio::sync::watch::Receiver<u64>,
    filter: Filter,
    deadline: Instant,
    bookmark_at: Option<Instant>,
    start_rv: u64,
    last_rv: u64,
    done: bool,
    /// How long each change event is held before it is sent (`SimState::set_watch_latency`).
    latency: Duration,
}

/// How often a watch that asked for bookmarks gets one (kube-apiserver: about once a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// When the last bookmark goes: just before the watch times out.
fn last_bookmark(deadline: Instant) -> Instant {
    deadline
        .checked_sub(Duration::from_secs(2))
        .unwrap_or(deadline)
}

/// Where a watch starts, taken under the lock.
enum Origin {
    /// rv 0 or unset, or sendInitialEvents: the collection as it is, then (for the latter) the
    /// bookmark that ends the initial events.
    List {
        objects: Vec<Arc<Value>>,
        bookmark: bool,
    },
    /// The changes after the requested resourceVersion.
    Replay(Vec<Arc<Change>>),
    /// That resourceVersion is compacted: the 410 message.
    Expired(String),
}

/// A watch subscribed under the lock, not yet encoding anything.
pub struct Opened {
    filter: Filter,
    rx: broadcast::Receiver<Arc<Change>>,
    drops: tokio::sync::watch::Receiver<u64>,
    origin: Origin,
    current: u64,
    start_rv: u64,
    deadline: Instant,
    bookmark_at: Option<Instant>,
    latency: Duration,
}

/// Opens a watch under the state lock: checks the request, subscribes to changes and takes its
/// starting point, so nothing between the two is missed or seen twice.
pub fn open(st: &SimState, target: &Target, q: &Query, accept: &str) -> Result<Opened, Reply> {
    let (labels, fields) = selectors(target, q)?;
    let table =
        (table::representation(accept) == Representation::Table).then(|| st.crd_of(&target.rt));
    let filter = Filter {
        target: target.clone(),
        api_version: target.rt.api_version(),
        labels,
        fields,
        table,
    };
    let rx = st.store.subscribe();
    let drops = st.faults.drops();
    let current = st.store.rv();
    let initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    if initial && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(status::list_options_forbidden());
    }
    let rv_param = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let mut start_rv = current;
    let origin = if rv_param.is_empty() || rv_param == "0" || initial {
        let ns = if target.rt.namespaced {
            target.namespace.as_deref()
        } else {
            None
        };
        Origin::List {
            objects: st.store.list_shared(&target.rt.storage_key(), ns),
            bookmark: initial,
        }
    } else {
        let from: u64 = rv_param
            .parse()
            .map_err(|_| status::bad_request(format!("invalid resource version: {rv_param}")))?;
        start_rv = from.min(current);
        match st.store.since(from) {
            Ok(changes) => Origin::Replay(changes),
            Err(oldest) => Origin::Expired(format!("too old resource version: {from} ({oldest})")),
        }
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let bookmark_at =
        bookmarks.then(|| (Instant::now() + BOOKMARK_EVERY).min(last_bookmark(deadline)));
    Ok(Opened {
        filter,
        rx,
        drops,
        origin,
        current,
        start_rv,
        deadline,
        bookmark_at,
        latency: st.watch_latency(),
    })
}

impl Opened {
    /// How many initial events it may encode.
    pub fn size(&self) -> usize {
        match &self.origin {
            Origin::List { objects, .. } => objects.len(),
            Origin::Replay(changes) => changes.len(),
            Origin::Expired(_) => 1,
        }
    }

    /// After the lock: encodes the initial events; the stream ends at timeoutSeconds or when the
    /// client goes away, and fails (the connection is cut mid-response) on
    /// `SimState::drop_watches`.
    pub fn stream(self) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let Opened {
            filter,
            rx,
            drops,
            origin,
            current,
            start_rv,
            deadline,
            bookmark_at,
            latency,
        } = self;
        let mut queue = VecDeque::new();
        let mut done = false;
        match origin {
            Origin::List { objects, bookmark } => {
                let rt = &filter.target.rt;
                for obj in &objects {
                    if selected(obj, &filter.labels, &filter.fields) {
                        queue.push_back(filter.encode("ADDED", obj));
                    }
                }
                if bookmark {
                    let bookmark = json!({"kind": rt.kind, "apiVersion": filter.api_version,
                        "metadata": {"resourceVersion": current.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                    queue.push_back(line("BOOKMARK", bookmark));
                }
            }
            Origin::Replay(changes) => queue.extend(changes.iter().filter_map(|c| filter.event(c))),
            Origin::Expired(msg) => {
                queue.push_back(line("ERROR", status::expired_body(&msg)));
                done = true;
            }
        }
        let w = Watch {
            queue,
            rx,
            drops,
            filter,
            deadline,
            bookmark_at,
            start_rv,
            last_rv: current,
            done,
            latency,
        };
        futures::stream::unfold(w, next)
    }
}

async fn next(mut w: Watch) -> Option<(Result<Bytes, io::Error>, Watch)> {
    loop {
        if let Some(b) = w.queue.pop_front() {
            return Some((Ok(b), w));
        }
        if w.done {
            return None;
        }
        let wake = w.bookmark_at.map_or(w.deadline, |b| b.min(w.deadline));
        tokio::select! {
            msg = w.rx.recv() => match msg {
                Ok(c) => {
                    w.last_rv = c.rv;
                    if let Some(line) = w.filter.event(&c) {
                        if !w.latency.is_zero() {
                            tokio::time::sleep(w.latency).await;
                        }
                        return Some((Ok(line), w));
                    }
                }
                // A watcher that fell behind is closed; clients re-list and watch again.
                Err(_) => return None,
            },
            dropped = w.drops.changed() => {
                w.done = true;
                w.queue.clear();
                if dropped.is_err() {
                    return None;
                }
                // An error, not the end of the stream: hyper then closes the connection without
                // the final chunk, which is what a client sees when a proxy dies mid-watch.
                let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "watch dropped");
                return Some((Err(cut), w));
            },
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= w.deadline {
                    return None;
                }
                // Like kube-apiserver: a bookmark about once a minute and one just before the
                // timeout, so that an idle watcher's resourceVersion stays recent and its next
                // watch resumes instead of failing with 410 Expired and re-listing everything.
                let before_end = last_bookmark(w.deadline);
                w.bookmark_at = w.bookmark_at.filter(|b| *b < before_end).map(|_| {
                    (Instant::now() + BOOKMARK_EVERY).min(before_end)
                });
                if w.last_rv > w.start_rv {
                    let bm = json!({"kind": w.filter.target.rt.kind, "apiVersion": w.filter.api_version,
                        "metadata": {"resourceVersion": w.last_rv.to_string()}});
                    return Some((Ok(line("BOOKMARK", bm)), w));
                }
            }
        }
    }
}

//! Watches: replay from a resourceVersion (or a synthetic ADDED list for rv 0/unset), then live
//! changes; selectors turn "no longer matches" into DELETED; bookmarks; timeoutSeconds; a
//! compacted resourceVersion gives an in-band ERROR event with 410 Expired, as the real server does;
//! `SimState::drop_watches` breaks every open stream. Must not import the controller or the
//! decision core.

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
use super::state::SimState;
use super::status::{self, Reply};
use super::store::{Change, EventType};

struct Filter {
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn event(&self, c: &Change) -> Option<(&'static str, Value)> {
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
        let mut obj = c.object.clone();
        obj["apiVersion"] = json!(self.target.rt.api_version());
        obj["kind"] = json!(self.target.rt.kind);
        Some((kind, obj))
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
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

/// Starts a watch; the stream ends at timeoutSeconds or when the client goes away, and fails
/// (the connection is cut mid-response) on `SimState::drop_watches`.
pub fn start(
    st: &SimState,
    target: &Target,
    q: &Query,
) -> Result<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static, Reply> {
    let (labels, fields) = selectors(target, q)?;
    let filter = Filter {
        target: target.clone(),
        labels,
        fields,
    };
    let rx = st.store.subscribe();
    let drops = st.faults.drops();
    let current = st.store.rv();
    let mut queue = VecDeque::new();
    let initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    if initial && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(status::list_options_forbidden());
    }
    let rv_param = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let mut done = false;
    let mut start_rv = current;
    if rv_param.is_empty() || rv_param == "0" || initial {
        let ns = if target.rt.namespaced {
            target.namespace.as_deref()
        } else {
            None
        };
        for obj in st.store.list(&target.rt.storage_key(), ns) {
            if selected(obj, &filter.labels, &filter.fields) {
                queue.push_back(line("ADDED", st.present(&target.rt, obj)));
            }
        }
        if initial {
            let bookmark = json!({"kind": target.rt.kind, "apiVersion": target.rt.api_version(),
                "metadata": {"resourceVersion": current.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            queue.push_back(line("BOOKMARK", bookmark));
        }
    } else {
        let from: u64 = rv_param
            .parse()
            .map_err(|_| status::bad_request(format!("invalid resource version: {rv_param}")))?;
        start_rv = from.min(current);
        match st.store.since(from) {
            Ok(changes) => {
                for c in changes {
                    if let Some((k, o)) = filter.event(&c) {
                        queue.push_back(line(k, o));
                    }
                }
            }
            Err(oldest) => {
                let msg = format!("too old resource version: {from} ({oldest})");
                queue.push_back(line("ERROR", status::expired_body(&msg)));
                done = true;
            }
        }
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let bookmark_at =
        bookmarks.then(|| (Instant::now() + BOOKMARK_EVERY).min(last_bookmark(deadline)));
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
        latency: st.watch_latency(),
    };
    Ok(futures::stream::unfold(w, next))
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
                    if let Some((k, o)) = w.filter.event(&c) {
                        if !w.latency.is_zero() {
                            tokio::time::sleep(w.latency).await;
                        }
                        return Some((Ok(line(k, o)), w));
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
                    let bm = json!({"kind": w.filter.target.rt.kind, "apiVersion": w.filter.target.rt.api_version(),
                        "metadata": {"resourceVersion": w.last_rv.to_string()}});
                    return Some((Ok(line("BOOKMARK", bm)), w));
                }
            }
        }
    }
}

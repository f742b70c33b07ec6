//! `GET /events`: server-sent events from the Canary cache the dashboard was given (the
//! controller's own watch cache, or `serin dashboard`'s reflector) — never a request to the API
//! server per browser. One task per dashboard waits for the cache to change, compares each
//! Canary's summary row with the last one sent and broadcasts what changed (`event: canary`) or
//! left (`event: removed`); each browser gets the current rows first, then the changes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use futures::Stream;
use tokio::sync::broadcast;

use super::overview::Row;
use crate::controller::CanaryFeed;

/// One message of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A Canary is new or changed: its row.
    Canary(Row),
    /// A Canary is gone.
    Removed {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl Change {
    fn event(&self) -> Event {
        match self {
            Change::Canary(row) => Event::default()
                .event("canary")
                .data(serde_json::to_string(row).unwrap_or_default()),
            Change::Removed { namespace, name } => Event::default()
                .event("removed")
                .data(serde_json::json!({"namespace": namespace, "name": name}).to_string()),
        }
    }
}

/// The changes between the rows last sent and the rows now (both by `namespace/name`); the
/// passing of time alone is no change (`Row::clockless`).
pub fn diff(before: &BTreeMap<String, Row>, now: &BTreeMap<String, Row>) -> Vec<Change> {
    let mut out: Vec<Change> = now
        .iter()
        .filter(|(k, row)| before.get(*k).map(Row::clockless) != Some(row.clockless()))
        .map(|(_, row)| Change::Canary(row.clone()))
        .collect();
    out.extend(
        before
            .iter()
            .filter(|(k, _)| !now.contains_key(*k))
            .map(|(_, r)| Change::Removed {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            }),
    );
    out
}

/// The fan-out of changes to every open stream.
#[derive(Clone)]
pub struct Hub {
    feed: CanaryFeed,
    rows: Arc<Mutex<BTreeMap<String, Row>>>,
    tx: broadcast::Sender<Change>,
}

/// Every Canary's row now, by `namespace/name`.
fn rows_now(feed: &CanaryFeed) -> BTreeMap<String, Row> {
    let now = Utc::now();
    feed.snapshot()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let row = Row::of(c, now);
            (row.key(), row)
        })
        .collect()
}

/// How long the hub waits between looks at a cache that changes without pause (a thousand
/// Canaries stepping): changes in between are coalesced into one comparison.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(200);

impl Hub {
    /// Starts the task that follows `feed`; it ends when the last handle of the hub is dropped.
    pub fn start(feed: CanaryFeed) -> Hub {
        let (tx, _) = broadcast::channel(1024);
        let hub = Hub {
            feed: feed.clone(),
            rows: Arc::default(),
            tx,
        };
        let weak = Arc::downgrade(&hub.rows);
        let sender = hub.tx.clone();
        tokio::spawn(async move {
            let mut changes = feed.changes();
            loop {
                let Some(rows) = weak.upgrade() else { return };
                // With no browser watching, nothing is compared (a controller with the dashboard
                // on and nobody looking does no work per change); a new stream starts from the
                // rows of that moment.
                let watched = sender.receiver_count() > 0;
                let now = if watched {
                    rows_now(&feed)
                } else {
                    BTreeMap::new()
                };
                let changed = {
                    let mut last = rows.lock().unwrap_or_else(|p| p.into_inner());
                    let changed = if watched {
                        diff(&last, &now)
                    } else {
                        Vec::new()
                    };
                    *last = now;
                    changed
                };
                drop(rows);
                for c in changed {
                    // No receivers: nobody is watching; nothing to do.
                    let _ = sender.send(c);
                }
                if changes.changed().await.is_err() {
                    return;
                }
                tokio::time::sleep(COALESCE).await;
            }
        });
        hub
    }

    /// Every Canary's row now (what a new stream starts with).
    pub fn current(&self) -> Vec<Row> {
        rows_now(&self.feed).into_values().collect()
    }

    /// The stream of one browser: every current row, then the changes. A browser too slow to
    /// keep up gets every current row again instead of the changes it missed.
    pub fn stream(&self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        let rx = self.tx.subscribe();
        let first: Vec<Change> = self.current().into_iter().map(Change::Canary).collect();
        let hub = self.clone();
        futures::stream::unfold(
            (first.into_iter(), rx, hub),
            |(mut pending, mut rx, hub)| async move {
                loop {
                    if let Some(c) = pending.next() {
                        return Some((Ok(c.event()), (pending, rx, hub)));
                    }
                    match rx.recv().await {
                        Ok(c) => return Some((Ok(c.event()), (pending, rx, hub))),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let again: Vec<Change> =
                                hub.current().into_iter().map(Change::Canary).collect();
                            pending = again.into_iter();
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        )
    }

    /// The SSE response.
    pub fn response(&self) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
        Sse::new(self.stream()).keep_alive(KeepAlive::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, phase: &str, weight: i32) -> Row {
        Row {
            namespace: "test".into(),
            name: name.into(),
            phase: phase.into(),
            canary_weight: weight,
            primary_weight: 100 - weight,
            failed_checks: 0,
            threshold: 2,
            step: "-".into(),
            next_step: "-".into(),
            last_transition: "-".into(),
            last_transition_time: None,
            paused: false,
        }
    }

    fn map(rows: &[Row]) -> BTreeMap<String, Row> {
        rows.iter().map(|r| (r.key(), r.clone())).collect()
    }

    #[test]
    fn only_changed_new_and_removed_canaries_are_sent() {
        let before = map(&[
            row("a", "Progressing", 10),
            row("b", "Succeeded", 0),
            row("c", "Failed", 0),
        ]);
        let now = map(&[
            row("a", "Progressing", 20),
            row("b", "Succeeded", 0),
            row("d", "Initialized", 0),
        ]);
        let changes = diff(&before, &now);
        assert_eq!(
            changes,
            vec![
                Change::Canary(row("a", "Progressing", 20)),
                Change::Canary(row("d", "Initialized", 0)),
                Change::Removed {
                    namespace: "test".into(),
                    name: "c".into()
                },
            ]
        );
        assert!(diff(&now, &now).is_empty());
        let mut due = now.clone();
        for r in due.values_mut() {
            r.next_step = "in 40s".into();
        }
        let mut later = due.clone();
        for r in later.values_mut() {
            r.last_transition = "5m ago".into();
            r.next_step = "in 10s".into();
        }
        assert!(diff(&due, &later).is_empty(), "time passing is no change");
        let mut paused = later.clone();
        paused.get_mut("test/a").unwrap().next_step = "paused".into();
        assert_eq!(diff(&later, &paused).len(), 1);
    }

    #[test]
    fn a_row_is_sent_as_the_contracts_json() {
        let v = serde_json::to_value(row("a", "Progressing", 20)).unwrap();
        for key in [
            "namespace",
            "name",
            "phase",
            "canaryWeight",
            "primaryWeight",
            "failedChecks",
            "threshold",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert_eq!(v["primaryWeight"], 80);
    }
}

//! Property tests of the store: after any sequence of puts and removes its dependents index
//! answers exactly what a scan of every object's ownerReferences would, shared snapshots keep
//! their contents, and the history replays in order; a change's watch line is encoded once.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::store::{EventType, Key, Store};

#[derive(Debug, Clone)]
enum Op {
    Put { name: u8, ns: u8, owners: Vec<u8> },
    Remove { name: u8, ns: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..2, prop::collection::vec(0u8..4, 0..3))
            .prop_map(|(name, ns, owners)| Op::Put { name, ns, owners }),
        (0u8..6, 0u8..2).prop_map(|(name, ns)| Op::Remove { name, ns }),
    ]
}

fn key(name: u8, ns: u8) -> Key {
    ("/pods".into(), format!("ns-{ns}"), format!("p-{name}"))
}

fn scan<'a>(store: &'a Store, ns: &str, uid: &str) -> Vec<&'a Value> {
    store
        .list("/pods", Some(ns))
        .into_iter()
        .filter(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["uid"] == uid))
        })
        .collect()
}

proptest! {
    #[test]
    fn dependents_index_matches_a_scan(ops in prop::collection::vec(op(), 1..40)) {
        let mut store = Store::new();
        for op in ops {
            match op {
                Op::Put { name, ns, owners } => {
                    let refs: Vec<Value> =
                        owners.iter().map(|o| json!({"uid": format!("u{o}")})).collect();
                    let obj = json!({"metadata": {"name": format!("p-{name}"), "ownerReferences": refs}});
                    store.put(key(name, ns), obj, EventType::Modified);
                }
                Op::Remove { name, ns } => {
                    store.remove(&key(name, ns));
                }
            }
            for ns in ["ns-0", "ns-1"] {
                for uid in ["u0", "u1", "u2", "u3"] {
                    prop_assert_eq!(store.dependents("/pods", ns, uid), scan(&store, ns, uid));
                }
            }
        }
    }
}

proptest! {
    /// A shared snapshot of a collection stays what it was whatever is written after it, and the
    /// history replays exactly the changes after a resourceVersion, in order.
    #[test]
    fn snapshots_stay_and_history_replays_in_order(ops in prop::collection::vec(op(), 1..40)) {
        let mut store = Store::new();
        let mut snapshots = Vec::new();
        for op in ops {
            let before = store.rv();
            let shot = store.list_shared("/pods", Some("ns-0"));
            let frozen: Vec<Value> = shot.iter().map(|o| (**o).clone()).collect();
            snapshots.push((shot, frozen));
            match op {
                Op::Put { name, ns, .. } => {
                    let obj = json!({"metadata": {"name": format!("p-{name}")}, "n": store.rv()});
                    store.put(key(name, ns), obj, EventType::Modified);
                }
                Op::Remove { name, ns } => {
                    store.remove(&key(name, ns));
                }
            }
            let replay = store.since(before).unwrap();
            prop_assert!(replay.len() <= 1);
            prop_assert!(replay.iter().all(|c| c.rv == store.rv()));
        }
        for (shot, frozen) in snapshots {
            let now: Vec<Value> = shot.iter().map(|o| (**o).clone()).collect();
            prop_assert_eq!(now, frozen);
        }
        let all = store.since(0).unwrap();
        prop_assert!(all.windows(2).all(|w| w[0].rv < w[1].rv));
    }
}

/// A change encodes its watch line once per served version: every watcher gets the same bytes
/// (the same buffer), with the apiVersion and kind of the version it watches.
#[test]
fn a_change_is_encoded_once_per_version() {
    let mut store = Store::new();
    let obj = json!({"metadata": {"name": "e1", "namespace": "d"}, "note": "x"});
    store.put(
        ("/events".into(), "d".into(), "e1".into()),
        obj,
        EventType::Added,
    );
    let change = store.since(0).unwrap().pop().unwrap();
    let a = change.line("ADDED", "events.k8s.io/v1", "Event");
    let b = change.line("ADDED", "events.k8s.io/v1", "Event");
    assert_eq!(a.as_ptr(), b.as_ptr(), "encoded once, shared");
    let v: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["type"], "ADDED");
    assert_eq!(v["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v["object"]["metadata"]["resourceVersion"], "2");
    assert!(a.ends_with(b"}\n"));
    let core = change.line("ADDED", "v1", "Event");
    assert_ne!(core.as_ptr(), a.as_ptr());
    let v: Value = serde_json::from_slice(&core).unwrap();
    assert_eq!(v["object"]["apiVersion"], "v1");
    let deleted = change.line("DELETED", "v1", "Event");
    assert!(deleted.starts_with(br#"{"object":"#) && deleted.ends_with(b"\"type\":\"DELETED\"}\n"));
}

//! Property test of the store's dependents index: after any sequence of puts and removes it
//! answers exactly what a scan of every object's ownerReferences would.

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

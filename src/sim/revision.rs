//! Deployment revision bookkeeping for the simulated controller-manager: the pod-template-hash,
//! the `deployment.kubernetes.io/revision` numbers of ReplicaSets, and maxSurge/maxUnavailable
//! arithmetic. Reads the state only; writes nothing.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::state::SimState;

/// The pod-template-hash of a template (deterministic, 10 characters).
pub fn template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    let digest = Sha256::digest(serde_json::to_vec(&t).unwrap_or_default());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest
        .iter()
        .take(10)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub(super) fn percent_or_int(v: &Value, of: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let p: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            let x = p * of as f64 / 100.0;
            (if round_up { x.ceil() } else { x.floor() }) as i64
        }
        _ => 0,
    }
}

/// The `deployment.kubernetes.io/revision` a ReplicaSet carries.
pub(super) fn revision_of(rs: &Value) -> Option<i64> {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()?
        .parse::<i64>()
        .ok()
}

/// The highest revision among a Deployment's ReplicaSets (0 when it has none).
pub(super) fn max_revision(st: &SimState, d: &Value) -> i64 {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = d["metadata"]["uid"].as_str().unwrap_or_default();
    st.store
        .dependents("apps/replicasets", ns, uid)
        .into_iter()
        .filter_map(revision_of)
        .max()
        .unwrap_or(0)
}

pub(super) fn next_revision(st: &SimState, d: &Value) -> i64 {
    max_revision(st, d) + 1
}

/// The revision an existing ReplicaSet should carry: unchanged if it is already the newest,
/// otherwise the next number (a reused old ReplicaSet becomes the newest revision).
pub(super) fn rev_string(st: &SimState, d: &Value, rs: &Value) -> String {
    let mine = revision_of(rs).unwrap_or(0);
    let max = max_revision(st, d);
    if mine == max {
        mine.to_string()
    } else {
        (max + 1).to_string()
    }
}

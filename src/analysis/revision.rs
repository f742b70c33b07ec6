//! Revisions: what identifies "the code and config the target would run", and the session-affinity
//! cookie values minted per rollout. Deterministic hashing only (no randomness, no clock).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::input::TargetState;
use crate::api::{CanarySpec, CanaryStatus};

/// The revision of a target: its pod-template hash, joined with a digest of the tracked config
/// checksums when it has any (so a ConfigMap change alone is a new revision).
pub fn revision(target: &TargetState) -> String {
    if target.configs.is_empty() {
        return target.template_hash.clone();
    }
    format!(
        "{}-{}",
        target.template_hash,
        configs_digest(&target.configs)
    )
}

fn configs_digest(configs: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in configs {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    short_hex(&h.finalize())
}

fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// How an observed revision relates to the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionChange {
    /// The revision under analysis (or last seen) is unchanged.
    Same,
    /// The target went back to what the primary runs: nothing to roll out.
    BackToPromoted,
    /// A revision that needs a rollout.
    New,
}

/// Compares an observed revision with lastAppliedSpec / lastPromotedSpec.
pub fn classify(rev: &str, status: &CanaryStatus) -> RevisionChange {
    if status.last_applied_spec.as_deref() == Some(rev) {
        RevisionChange::Same
    } else if status.last_promoted_spec.as_deref() == Some(rev) {
        RevisionChange::BackToPromoted
    } else {
        RevisionChange::New
    }
}

/// Rotates the session-affinity cookies for a new rollout: the old canary cookie becomes the
/// previous one (so routers can expire it) and a new one is minted from the revision and time.
pub fn rotate_cookies(spec: &CanarySpec, status: &mut CanaryStatus, rev: &str, now: DateTime<Utc>) {
    let Some(sa) = &spec.analysis.session_affinity else {
        return;
    };
    let mut h = Sha256::new();
    h.update(rev.as_bytes());
    h.update(now.to_rfc3339().as_bytes());
    let value = short_hex(&h.finalize());
    if let Some(old) = status.session_affinity_cookie.take() {
        status.previous_session_affinity_cookie = Some(old);
    }
    status.session_affinity_cookie = Some(format!("{}={value}", sa.cookie_name));
    status.primary_session_affinity_cookie = sa
        .primary_cookie_name
        .as_ref()
        .map(|p| format!("{p}={value}"));
}

/// At the end of a rollout the canary cookie is retired: routers expire the previous one.
pub fn retire_cookie(status: &mut CanaryStatus) {
    if let Some(old) = status.session_affinity_cookie.take() {
        status.previous_session_affinity_cookie = Some(old);
    }
}

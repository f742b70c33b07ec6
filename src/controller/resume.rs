//! Resume order after a start (or after winning the lease): the Canaries the first list shows in
//! flight (a rollout under way, or waiting to start one) reconcile before the settled ones
//! (Initialized, Succeeded, Failed, Terminated), whose reconcile only confirms that nothing
//! changed. kube's controller queues the whole first list at once, in no particular order, and
//! runs `--concurrency` of them at a time: at a thousand Canaries the few in flight waited behind
//! hundreds of settled ones (issue 20: 12.3 s to resume). A settled Canary's reconcile is put off
//! (requeued, touching nothing) until every Canary listed in flight has had its first reconcile,
//! or `PATIENCE` has passed — a stuck one must not keep the rest unreconciled. Must not decide
//! anything else.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::{Canary, CanaryPhase};

/// The longest settled Canaries are put off after the first list.
const PATIENCE: Duration = Duration::from_secs(30);

/// How soon a put-off Canary asks again.
pub const RETRY: Duration = Duration::from_millis(100);

/// Whether a Canary in this phase has nothing under way (its reconcile can wait a moment).
pub fn settled(phase: Option<CanaryPhase>) -> bool {
    matches!(
        phase,
        Some(
            CanaryPhase::Initialized
                | CanaryPhase::Succeeded
                | CanaryPhase::Failed
                | CanaryPhase::Terminated
        )
    )
}

fn phase(c: &Canary) -> Option<CanaryPhase> {
    c.status.as_ref().map(|s| s.phase)
}

fn key(c: &Canary) -> String {
    format!(
        "{}/{}",
        c.metadata.namespace.as_deref().unwrap_or_default(),
        c.metadata.name.as_deref().unwrap_or_default()
    )
}

#[derive(Default)]
struct Gate {
    /// The Canaries listed in flight that have not been reconciled yet.
    pending: HashSet<String>,
    /// When the first list was in (None: not yet; nothing is put off then).
    listed_at: Option<Instant>,
    /// Canaries reconciled since the start (for the one "first reconcile" log line each).
    seen: HashSet<String>,
}

/// One controller run's resume gate.
#[derive(Default)]
pub struct Resume {
    gate: Mutex<Gate>,
}

impl Resume {
    /// The first list is in: remember which Canaries are in flight. Later lists (after a watch
    /// failure) change nothing: the order matters only at the start.
    pub fn listed<'a>(&self, all: impl IntoIterator<Item = &'a Canary>) {
        let Ok(mut g) = self.gate.lock() else {
            return;
        };
        if g.listed_at.is_some() {
            return;
        }
        g.pending = all
            .into_iter()
            .filter(|c| !settled(phase(c)))
            .map(key)
            .collect();
        g.listed_at = Some(Instant::now());
        tracing::debug!(in_flight = g.pending.len(), "resume: first list in");
    }

    /// Whether this Canary's reconcile is put off for now: it is settled, and some Canary listed
    /// in flight still waits for its first reconcile.
    pub fn hold(&self, canary: &Canary) -> bool {
        let Ok(g) = self.gate.lock() else {
            return false;
        };
        !g.pending.is_empty()
            && g.listed_at.is_some_and(|at| at.elapsed() < PATIENCE)
            && settled(phase(canary))
    }

    /// This Canary's reconcile goes ahead: nobody waits for it any more.
    pub fn started(&self, canary: &Canary) {
        let Ok(mut g) = self.gate.lock() else {
            return;
        };
        let k = key(canary);
        g.pending.remove(&k);
        if g.listed_at.is_some() && g.seen.len() < 100_000 && g.seen.insert(k.clone()) {
            let in_flight = !settled(phase(canary));
            tracing::debug!(canary = %k, in_flight, "first reconcile since start");
        }
    }

    /// Forgets Canaries that left (`gone` by `namespace/name`): nobody waits for them.
    pub fn forget(&self, gone: impl Fn(&str) -> bool) {
        if let Ok(mut g) = self.gate.lock() {
            g.pending.retain(|k| !gone(k));
            g.seen.retain(|k| !gone(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(name: &str, phase: &str) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 2, "iterations": 2}},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn settled_canaries_wait_for_those_in_flight() {
        let r = Resume::default();
        let (a, b, s) = (
            canary("a", "Progressing"),
            canary("b", "Waiting"),
            canary("s", "Succeeded"),
        );
        assert!(!r.hold(&s), "nothing is put off before the first list");
        r.listed([&a, &b, &s]);
        assert!(r.hold(&s));
        assert!(!r.hold(&a));
        r.started(&a);
        assert!(r.hold(&s), "b has not been reconciled yet");
        r.forget(|k| k == "test/b");
        assert!(!r.hold(&s), "b left; nobody in flight is waited for");
        r.listed([&a]);
        assert!(!r.hold(&s), "a later list changes nothing");
    }
}

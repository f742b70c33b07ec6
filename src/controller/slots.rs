//! The cap on concurrent rollouts (`--max-concurrent-canaries`): a ConfigMap shared by
//! 500 apps must not start 500 rollouts at once. It counts the Canaries this controller watches,
//! so with `--shard-selector` it is a cap per shard. Canaries in an active phase hold a slot; new
//! revisions beyond the cap wait in `Waiting` and get slots first come, first served (by when
//! they started waiting). Grants are remembered until the cache shows them, so two reconciles
//! running at once cannot both take the last slot. Waiters are queued in memory as they are
//! refused (the tick that records them `Waiting`), not only as the Canary cache shows them: at
//! a thousand Canaries the cache lagged the status writes by seconds, and a Canary whose
//! `Waiting` had not reached it yet was not counted ahead of a later one (16 of 43 started out
//! of order, issue 20). After a restart the queue is empty and the recorded
//! `lastTransitionTime` of the Waiting Canaries in the cache gives the order. Must not decide
//! anything else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::{Canary, CanaryPhase};

/// How long a grant counts before the cache must show the Canary active.
const GRANT_TTL: Duration = Duration::from_secs(120);

/// Phases that hold a rollout slot.
pub fn holds_slot(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        CanaryPhase::Progressing
            | CanaryPhase::WaitingPromotion
            | CanaryPhase::Promoting
            | CanaryPhase::Finalising
    )
}

/// Slots granted by this process, by `namespace/name`, with the reconcile time of the grant;
/// and the Canaries it refused one, with the reconcile time of their first refusal (when they
/// were recorded Waiting). Locked in that order.
#[derive(Default)]
pub struct Slots {
    granted: Mutex<HashMap<String, DateTime<Utc>>>,
    queued: Mutex<HashMap<String, DateTime<Utc>>>,
}

fn key(c: &Canary) -> String {
    format!(
        "{}/{}",
        c.metadata.namespace.as_deref().unwrap_or_default(),
        c.metadata.name.as_deref().unwrap_or_default()
    )
}

/// When a Canary began waiting for a slot; one not waiting yet queues behind everyone (`now`).
fn waiting_since(c: &Canary, now: DateTime<Utc>) -> DateTime<Utc> {
    match &c.status {
        Some(s) if s.phase == CanaryPhase::Waiting => s.last_transition_time.unwrap_or(now),
        _ => now,
    }
}

impl Slots {
    /// Whether `me` may start a rollout now, given every Canary the cache holds and a cap.
    pub fn free(
        &self,
        cap: usize,
        me: &Canary,
        all: &[std::sync::Arc<Canary>],
        now: DateTime<Utc>,
    ) -> bool {
        let (Ok(mut granted), Ok(mut queued)) = (self.granted.lock(), self.queued.lock()) else {
            return false;
        };
        // A grant stands until the cache shows a phase change made at or after it (the rollout
        // started, so the cache counts it; or it is already over), or it is too old.
        // One map per call, not a scan per grant: every waiting Canary asks on every tick.
        let transitions: HashMap<String, DateTime<Utc>> = all
            .iter()
            .filter_map(|c| Some((key(c), c.status.as_ref()?.last_transition_time?)))
            .collect();
        let changed_since =
            |k: &String, at: &DateTime<Utc>| transitions.get(k).is_some_and(|t| t >= at);
        let ttl = chrono::Duration::from_std(GRANT_TTL).unwrap_or_default();
        granted.retain(|k, at| now - *at < ttl && !changed_since(k, at));
        let phase = |c: &Canary| c.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let mut holders: std::collections::HashSet<String> = all
            .iter()
            .filter(|c| holds_slot(phase(c)))
            .map(|c| key(c))
            .collect();
        holders.extend(granted.keys().cloned());
        let mine = key(me);
        if holders.contains(&mine) {
            queued.remove(&mine);
            return true;
        }
        // The line: the cache's Waiting Canaries by their recorded time, overridden by this
        // process's queue (exact, and ahead of the cache). A queued Canary leaves the line when
        // it holds a slot, or when the cache shows it moved on (a phase change at or after its
        // refusal, and not Waiting: reverted, deleted, failed).
        let mut line: HashMap<String, DateTime<Utc>> = all
            .iter()
            .filter(|c| phase(c) == CanaryPhase::Waiting && !holders.contains(&key(c)))
            .map(|c| (key(c), waiting_since(c, now)))
            .collect();
        queued.retain(|k, at| {
            !holders.contains(k) && (line.contains_key(k) || !changed_since(k, at))
        });
        line.extend(queued.iter().map(|(k, at)| (k.clone(), *at)));
        let my_turn = (
            line.get(&mine)
                .copied()
                .unwrap_or_else(|| waiting_since(me, now)),
            mine.clone(),
        );
        let ahead = line
            .iter()
            .filter(|(k, at)| (**at, (*k).clone()) < my_turn)
            .count();
        let free = holders.len() + ahead < cap;
        if free {
            granted.insert(mine.clone(), now);
            queued.remove(&mine);
        } else {
            queued.entry(mine).or_insert(my_turn.0);
        }
        free
    }

    /// Forgets the grants of Canaries that left this controller (`gone` by `namespace/name`):
    /// the cap counts per shard, so a Canary relabelled into another shard holds no slot here.
    pub fn forget(&self, gone: impl Fn(&str) -> bool) {
        if let Ok(mut granted) = self.granted.lock() {
            granted.retain(|k, _| !gone(k));
        }
        if let Ok(mut queued) = self.queued.lock() {
            queued.retain(|k, _| !gone(k));
        }
    }

    /// Forgets a grant the decision did not use (it did not start a rollout after all).
    pub fn release_unless_active(&self, me: &Canary, phase: CanaryPhase) {
        if !holds_slot(phase)
            && let Ok(mut granted) = self.granted.lock()
        {
            granted.remove(&key(me));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn canary(name: &str, phase: &str, since: &str) -> Arc<Canary> {
        Arc::new(serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 2, "iterations": 2}},
            "status": {"phase": phase, "lastTransitionTime": since}
        })).unwrap())
    }

    #[test]
    fn waiting_canaries_get_slots_first_come_first_served() {
        let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let all = vec![
            canary("a", "Progressing", "2026-11-27T11:50:00Z"),
            canary("b", "Waiting", "2026-11-27T11:55:00Z"),
            canary("c", "Waiting", "2026-11-27T11:52:00Z"),
            canary("d", "Succeeded", "2026-11-27T11:00:00Z"),
        ];
        let slots = Slots::default();
        assert!(!slots.free(1, &all[2], &all, now), "a holds the only slot");
        assert!(slots.free(2, &all[2], &all, now), "c waited longest");
        assert!(
            !slots.free(2, &all[1], &all, now),
            "c's grant counts before the cache shows it"
        );
        assert!(
            !slots.free(3, &all[3], &all, now),
            "d (new revision) queues behind b"
        );
        assert!(slots.free(3, &all[1], &all, now));
        slots.release_unless_active(&all[1], CanaryPhase::Waiting);
        assert!(
            slots.free(3, &all[1], &all, now),
            "a released grant can be taken again"
        );
        assert!(slots.free(1, &all[0], &all, now), "a holder keeps its slot");
    }

    #[test]
    fn a_grant_ends_when_the_cache_shows_the_rollout_started_or_over() {
        let t0: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let slots = Slots::default();
        let waiting = vec![canary("a", "Waiting", "2026-11-27T11:59:00Z")];
        assert!(slots.free(1, &waiting[0], &waiting, t0));
        let other = canary("b", "Waiting", "2026-11-27T11:59:30Z");
        let mut all = waiting.clone();
        all.push(other.clone());
        assert!(!slots.free(1, &other, &all, t0), "a's grant holds the slot");
        // The cache now shows a's rollout finished after the grant: the slot is free again.
        let done = vec![
            canary("a", "Succeeded", "2026-11-27T12:00:05Z"),
            other.clone(),
        ];
        assert!(slots.free(1, &other, &done, t0 + chrono::Duration::seconds(6)));
    }

    #[test]
    fn waiters_start_in_the_order_they_were_refused_though_the_cache_lags() {
        let t0: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let slots = Slots::default();
        let a = canary("a", "Progressing", "2026-11-27T11:59:00Z");
        // b, c, d are refused in that order; the cache shows none of them Waiting yet.
        let lagging: Vec<_> = ["b", "c", "d"]
            .iter()
            .map(|n| canary(n, "Succeeded", "2026-11-27T11:00:00Z"))
            .chain([a.clone()])
            .collect();
        for (i, c) in lagging[..3].iter().enumerate() {
            assert!(
                !slots.free(1, c, &lagging, at(i as i64)),
                "a holds the slot"
            );
        }
        // a is done; the cache still lags. d and c ask first: b was refused before them.
        let mut done = lagging.clone();
        done[3] = canary("a", "Succeeded", "2026-11-27T12:00:10Z");
        assert!(!slots.free(1, &done[2], &done, at(11)), "d behind b and c");
        assert!(!slots.free(1, &done[1], &done, at(11)), "c behind b");
        assert!(slots.free(1, &done[0], &done, at(11)), "b first");
        assert!(
            !slots.free(1, &done[1], &done, at(12)),
            "b's grant holds the slot"
        );
    }

    #[test]
    fn after_a_restart_the_recorded_waiting_times_give_the_order() {
        let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let slots = Slots::default();
        let all = vec![
            canary("x", "Waiting", "2026-11-27T11:52:00.300Z"),
            canary("y", "Waiting", "2026-11-27T11:52:00.200Z"),
        ];
        assert!(!slots.free(1, &all[0], &all, now), "y waited longer");
        assert!(slots.free(1, &all[1], &all, now));
    }

    #[test]
    fn a_canary_that_left_the_shard_gives_its_grant_back() {
        let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let slots = Slots::default();
        let a = canary("a", "Waiting", "2026-11-27T11:59:00Z");
        let b = canary("b", "Waiting", "2026-11-27T11:59:30Z");
        assert!(slots.free(1, &a, &[a.clone(), b.clone()], now));
        assert!(
            !slots.free(1, &b, &[a.clone(), b.clone()], now),
            "a's grant"
        );
        // a was relabelled into another shard: it is gone from this shard's cache and grants.
        slots.forget(|k| k == "test/a");
        assert!(slots.free(1, &b, std::slice::from_ref(&b), now));
    }
}

//! The global rollout cap (`--max-concurrent-canaries`) under a change every app sees at once:
//! a ConfigMap shared by all of them. Reports how many rollouts ran at once at most (sampled),
//! how many waited, and whether waiting canaries started first come, first served (from their
//! decision records). With shards the cap counts per shard (`--max-concurrent-canaries` is per
//! controller), and so does first come, first served.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serin::api::{Canary, CanaryPhase};
use serin::controller::slots::holds_slot;

use crate::cluster::Bench;

/// What the cap phase saw.
pub struct CapReport {
    pub cap: usize,
    pub took: Duration,
    pub max_active: usize,
    pub waited: usize,
    /// Pairs where the one that began waiting (by more than a second) earlier started later.
    pub out_of_order: usize,
}

/// Restarts the controller with the cap, changes the shared ConfigMap and follows all the
/// rollouts it starts to the end.
pub async fn run(bench: &mut Bench, cap: usize) -> Result<CapReport, String> {
    let shards = bench.controllers.count();
    let per_shard = cap.div_ceil(shards);
    let cap = per_shard * shards;
    bench
        .controllers
        .set_extra_args(vec![format!("--max-concurrent-canaries={per_shard}")]);
    bench.restart_controller().await?;
    bench.change_shared_config("on").await?;
    let t = Instant::now();
    let n = bench.size();
    let mut started = HashSet::new();
    let mut max_active = 0;
    loop {
        let all = bench.canaries().await?;
        let phase = |c: &Canary| c.status.as_ref().map(|s| s.phase).unwrap_or_default();
        max_active = max_active.max(all.iter().filter(|c| holds_slot(phase(c))).count());
        for c in all.iter().filter(|c| phase(c) != CanaryPhase::Succeeded) {
            started.insert((c.metadata.namespace.clone(), c.metadata.name.clone()));
        }
        if started.len() == n && all.iter().all(|c| phase(c) == CanaryPhase::Succeeded) {
            break;
        }
        if t.elapsed() > Duration::from_secs(3600) {
            return Err(format!(
                "cap phase: not all promoted within 3600s (started {})",
                started.len()
            ));
        }
        tokio::time::sleep(bench.poll_every()).await;
    }
    let took = t.elapsed();
    let pairs: Vec<(DateTime<Utc>, DateTime<Utc>, Option<String>)> = bench
        .canaries()
        .await?
        .iter()
        .filter_map(waited_then_started)
        .collect();
    let second = chrono::Duration::seconds(1);
    let out_of_order = pairs
        .iter()
        .map(|a| {
            pairs
                .iter()
                .filter(|b| a.2 == b.2 && a.0 + second < b.0 && a.1 > b.1)
                .count()
        })
        .sum();
    Ok(CapReport {
        cap,
        took,
        max_active,
        waited: pairs.len(),
        out_of_order,
    })
}

/// When the last rollout began waiting for a slot and when it started, if it waited; and its
/// shard.
fn waited_then_started(c: &Canary) -> Option<(DateTime<Utc>, DateTime<Utc>, Option<String>)> {
    let decisions = &c.status.as_ref()?.decisions;
    let start = decisions
        .iter()
        .rposition(|d| d.action.starts_with("start rollout"))?;
    let first_wait = decisions[..start]
        .iter()
        .rev()
        .take_while(|d| d.action.starts_with("wait: no free rollout slot"))
        .last()?;
    let shard = c
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::apps::SHARD_KEY).cloned());
    Some((first_wait.time, decisions[start].time, shard))
}

impl CapReport {
    pub fn print(&self, check: impl Fn(bool, String)) {
        println!(
            "cap {}: all promoted in {:.1}s; at most {} rollouts at once (sampled); {} waited",
            self.cap,
            self.took.as_secs_f64(),
            self.max_active,
            self.waited
        );
        check(
            self.max_active <= self.cap,
            format!(
                "at most {} rollouts at once <= cap {}",
                self.max_active, self.cap
            ),
        );
        check(
            self.out_of_order == 0,
            format!(
                "{} waiting canaries started out of arrival order == 0",
                self.out_of_order
            ),
        );
    }
}

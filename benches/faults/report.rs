//! The soak's report: rollouts by kind and outcome, chaos events by kind, the time to settle
//! after each outage, then every invariant against its budget of 0 (PASS/FAIL lines, as
//! benches/canaries prints them) with the evidence of each violation, the seed and the wall time.

use std::time::Duration;

use crate::chaos;
use crate::checker::Stats;
use crate::ledger::{Invariant, Ledger};
use crate::rollouts::{Kind, Outcome};
use crate::webhooks::Tally;

/// Everything the report shows.
pub struct Report<'a> {
    pub title: String,
    pub seed: u64,
    pub smoke: bool,
    pub outcomes: &'a [Outcome],
    pub planned: usize,
    pub chaos: &'a chaos::Results,
    pub checker: &'a Stats,
    pub hooks: &'a Tally,
    pub incarnations: u32,
    pub unexpected_exits: u32,
    pub logs: String,
    pub ledger: &'a Ledger,
    pub wall: Duration,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

pub fn check(ok: bool, line: String) {
    println!("{} {line}", if ok { "PASS" } else { "FAIL" });
}

impl Report<'_> {
    fn rollouts(&self) {
        println!(
            "rollouts: {} of {} planned finished",
            self.outcomes
                .iter()
                .filter(|o| o.phase != "unfinished")
                .count(),
            self.planned
        );
        for kind in Kind::ALL {
            let of: Vec<&Outcome> = self.outcomes.iter().filter(|o| o.kind == kind).collect();
            let n = |p: &str| of.iter().filter(|o| o.phase == p).count();
            let took = sorted(
                of.iter()
                    .filter(|o| o.phase != "unfinished")
                    .map(|o| o.took_s)
                    .collect(),
            );
            println!(
                "  {:<16} {:>4}: Succeeded {:>4}, Failed {:>4}, unfinished {:>2}; took p50 {:.1}s, max {:.1}s",
                kind.name(),
                of.len(),
                n("Succeeded"),
                n("Failed"),
                n("unfinished"),
                quantile(&took, 0.5),
                quantile(&took, 1.0)
            );
        }
        let converge = sorted(self.outcomes.iter().map(|o| o.converge_s).collect());
        println!(
            "  final state right after the end of the rollout: p50 {:.2}s, max {:.2}s",
            quantile(&converge, 0.5),
            quantile(&converge, 1.0)
        );
    }

    fn chaos(&self) {
        let c = self.chaos;
        println!("chaos events: {}", c.counts.values().sum::<u32>());
        for kind in chaos::Kind::ALL {
            println!(
                "  {:<46} {:>4}",
                kind.name(),
                c.counts.get(kind.name()).copied().unwrap_or(0)
            );
        }
        let down: Vec<f64> = c.outages.iter().map(|o| o.down_s).collect();
        let settle = sorted(c.outages.iter().filter_map(|o| o.settle_s).collect());
        let none = c
            .outages
            .iter()
            .filter(|o| o.settle_s.is_none() && !o.idle)
            .count();
        println!(
            "  API outages {:.0}s in all ({:.1}s to {:.1}s each); first status write of a Canary with work due after the return: p50 {:.2}s, max {:.2}s, none within 120s: {none}",
            down.iter().sum::<f64>(),
            sorted(down.clone()).first().copied().unwrap_or(0.0),
            sorted(down).last().copied().unwrap_or(0.0),
            quantile(&settle, 0.5),
            quantile(&settle, 1.0),
        );
        for (i, o) in c.outages.iter().enumerate() {
            let settle = match (o.settle_s, o.idle) {
                (Some(s), _) => format!("{s:.2}s"),
                (None, true) => "- (no Canary had work due)".to_string(),
                (None, false) => "never".to_string(),
            };
            println!(
                "    outage {}: {:.1}s down, first write after {settle}",
                i + 1,
                o.down_s
            );
        }
        println!(
            "  Prometheus down {:.0}s in all; latency {:.0}s in all; {} × 500 and {} × 409 injected",
            c.prometheus_down_s, c.latency_s, c.injected_500, c.injected_409
        );
    }

    fn observations(&self) {
        println!(
            "controller: {} processes ({} restarts), {} ended on their own; logs in {}",
            self.incarnations,
            self.incarnations.saturating_sub(1),
            self.unexpected_exits,
            self.logs
        );
        let s = self.checker;
        println!(
            "checker: {} samples; route drops to 0 with the canary unready (withdrawn) {}, ended by a rollback {}, other {}",
            s.samples, s.withdrawals, s.rollback_drops, s.other_drops
        );
        let h = self.hooks;
        println!(
            "webhooks: pre-rollout {} calls ({} analysed rollouts without one, {} asked again after the controller was killed between call and record), post-rollout {} calls ({} rollouts without one)",
            h.pre_calls, h.pre_missing, h.pre_again_after_kill, h.post_calls, h.post_missing
        );
    }

    fn invariants(&self) -> bool {
        println!("-- invariants (budget 0 each):");
        let mut all_ok = true;
        for inv in Invariant::ALL {
            let n = self.ledger.count(inv);
            all_ok &= n == 0;
            check(n == 0, format!("{n} {} == 0", inv.describe()));
        }
        let violations = self.ledger.violations();
        if !violations.is_empty() {
            println!("-- violations (at most 5 of each):");
        }
        for inv in Invariant::ALL {
            for v in violations.iter().filter(|v| v.invariant == inv).take(5) {
                let app = v.app.map_or_else(String::new, |a| format!(" app-{a}"));
                println!("  [{:.1}s] {}{app}: {}", v.at, inv.describe(), v.detail);
            }
        }
        all_ok
    }

    /// Prints the report; returns whether every invariant held.
    pub fn print(&self) -> bool {
        println!("\n{}", self.title);
        self.rollouts();
        self.chaos();
        self.observations();
        let ok = self.invariants();
        let how = if self.smoke {
            "cargo test --bench faults -- --seed"
        } else {
            "cargo bench --bench faults -- --seed"
        };
        println!(
            "wall time {:.0}s; seed {} (replay: {how} {})",
            self.wall.as_secs_f64(),
            self.seed,
            self.seed
        );
        ok
    }
}

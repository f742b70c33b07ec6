//! The benchmark's numbers and its budget (issue 11), printed as a report with PASS/FAIL lines.

use std::time::Duration;

use kube::ResourceExt;
use serin::api::{Canary, CanaryPhase};

use crate::cluster::Size;
use crate::scrape::{Counts, Scrape};

/// How late each analysis step started after its due time, from the decision records: the gap
/// between two consecutive Progressing ticks minus the time between them the schedule asks for
/// (one interval; less for the start tick). Seconds, sorted.
pub fn lateness(canaries: &[Canary], interval: Duration) -> Vec<f64> {
    let mut out = Vec::new();
    for c in canaries {
        // The start tick comes early by the Canary's own offset (`analysis::step_interval`).
        let (ns, name) = (c.namespace().unwrap_or_default(), c.name_any());
        let first = serin::analysis::start_interval(&ns, &name, interval);
        let decisions = c
            .status
            .as_ref()
            .map(|s| s.decisions.clone())
            .unwrap_or_default();
        for pair in decisions.windows(2) {
            if pair[0].phase == CanaryPhase::Progressing
                && pair[1].phase == CanaryPhase::Progressing
            {
                let gap = (pair[1].time - pair[0].time).num_milliseconds() as f64 / 1000.0;
                let due = match pair[0].action.starts_with("start rollout") {
                    true => first,
                    false => interval,
                };
                out.push((gap - due.as_secs_f64()).max(0.0));
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// After a restart, every canary's last rollout still stepped up one weight at a time, each once.
pub fn no_step_repeated(canaries: &[Canary]) -> bool {
    canaries.iter().all(|c| {
        let decisions = c
            .status
            .as_ref()
            .map(|s| s.decisions.clone())
            .unwrap_or_default();
        let start = decisions
            .iter()
            .rposition(|d| d.action.starts_with("start rollout"))
            .unwrap_or(0);
        let advances: Vec<&str> = decisions[start..]
            .iter()
            .filter(|d| d.action.starts_with("advance weight"))
            .map(|d| d.action.as_str())
            .collect();
        let mut unique = advances.clone();
        unique.dedup();
        unique.len() == advances.len()
    })
}

pub struct Report<'a> {
    pub size: &'a Size,
    pub rollout: Duration,
    /// The controllers' own count (`serin_kube_api_requests_total`) during the rollout.
    pub requests: Counts,
    /// Embedded only: the same requests as the sim's access log counted them.
    pub sim_cross_check: Option<u64>,
    /// Embedded only: the sim's own request latency during the rollout: the controller's
    /// requests, every client's.
    pub sim_latency: Option<(serin::sim::LatencyReport, serin::sim::LatencyReport)>,
    /// Requests while every canary was between weight 20 and 30, and the weight steps taken then.
    pub step_writes: (Counts, i32),
    /// Decisions other than weight steps inside that window (0 when it measured steps only).
    pub other_ticks: usize,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    pub steady_rss_mib: f64,
    pub steady_writes: u64,
    pub lateness: Vec<f64>,
    /// The controllers' /metrics over the rollout (lateness by cause).
    pub breakdown: Scrape,
    /// Per controller, with --shards.
    pub shards: Vec<String>,
    pub resume: Duration,
    pub restarted_ok: bool,
}

/// Decisions other than a weight step taken between `from` and `to`: when canaries are spread
/// out, starts and promotions fall into the step window and its writes are not steps alone.
pub fn other_ticks_between(
    canaries: &[Canary],
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> usize {
    canaries
        .iter()
        .filter_map(|c| c.status.as_ref())
        .flat_map(|s| &s.decisions)
        .filter(|d| d.time >= from && d.time <= to && !d.action.starts_with("advance weight"))
        .count()
}

pub fn check(ok: bool, line: String) {
    println!("{} {line}", if ok { "PASS" } else { "FAIL" });
}

impl Report<'_> {
    pub fn print(&self) {
        let n = self.size.canaries as f64;
        // One rollout: start tick, 5 weight steps (10 to 50) and the promotion tick.
        let ticks = n * 7.0;
        println!(
            "rollout of all {} canaries: {:.1}s wall, controller CPU {:.1}s",
            self.size.canaries,
            self.rollout.as_secs_f64(),
            self.cpu_seconds
        );
        println!(
            "controller RSS: peak {:.1} MiB, steady {:.1} MiB",
            self.peak_rss_mib, self.steady_rss_mib
        );
        // Each reconcile takes a slot: more of them than ticks is work that can delay a due step.
        println!(
            "reconciles during the rollout: {:.0} ({:.2} per analysis tick)",
            self.breakdown.reconciles,
            self.breakdown.reconciles / ticks
        );
        if !self.shards.is_empty() {
            println!("per shard (CPU since the rollout began; API requests during the rollout):");
            for l in &self.shards {
                println!("{l}");
            }
        }
        println!(
            "API requests during the rollout, from the controller's serin_kube_api_requests_total, by verb and resource (per canary, per analysis tick):"
        );
        for (k, v) in &self.requests.0 {
            println!(
                "  {k:<48} {v:>8}  {:>6.2}  {:>6.3}",
                *v as f64 / n,
                *v as f64 / ticks
            );
        }
        if let Some(sim) = self.sim_cross_check {
            println!(
                "  cross-check: the sim's access log counted {sim} requests by serin, the controller {}",
                self.requests.total()
            );
        }
        // Time the server took to answer, so that it is not counted as the controller's.
        if let Some((controller, all)) = &self.sim_latency {
            println!("{controller} [controller]");
            println!("{all} [all clients]");
        }
        let (window, steps) = &self.step_writes;
        let steps = f64::from((*steps).max(1));
        let writes = window.object_writes() as f64 / steps;
        let with_events = window.writes() as f64 / steps;
        let per_rollout = self.requests.object_writes() as f64 / n;
        let (p50, p99, max) = (
            quantile(&self.lateness, 0.5),
            quantile(&self.lateness, 0.99),
            quantile(&self.lateness, 1.0),
        );
        println!(
            "step lateness over {} steps (decision records): p50 {p50:.3}s p99 {p99:.3}s max {max:.3}s",
            self.lateness.len()
        );
        crate::breakdown::print(&self.breakdown);
        println!(
            "restart mid-rollout: every canary reconciled {:.2}s after the restart",
            self.resume.as_secs_f64()
        );
        println!("-- budget (N = {}):", self.size.canaries);
        check(
            self.steady_rss_mib <= 64.0,
            format!("steady RSS {:.1} MiB <= 64 MiB", self.steady_rss_mib),
        );
        println!(
            "object writes per canary per rollout: {per_rollout:.1}; per weight step: {writes:.2} ({with_events:.2} with Events), over {steps} steps"
        );
        if self.other_ticks > 0 {
            println!(
                "SKIP writes per weight step: the window also held {} start/promotion ticks (canaries too spread out to isolate steps)",
                self.other_ticks
            );
        } else {
            check(
                writes <= 2.0,
                format!(
                    "{writes:.2} object writes per weight step per canary <= 2 ({with_events:.2} with Events)"
                ),
            );
        }
        check(
            self.steady_writes == 0,
            format!(
                "{} writes in {}s of steady state == 0",
                self.steady_writes,
                self.size.steady.as_secs()
            ),
        );
        // The route is read from the route cache (issue 20): 0 GETs of it per tick.
        let route_gets: u64 = self
            .requests
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("get httproutes"))
            .map(|(_, v)| v)
            .sum();
        check(
            route_gets == 0,
            format!(
                "{:.3} route GETs per tick ({route_gets} get httproutes during the rollout) == 0",
                route_gets as f64 / ticks
            ),
        );
        check(p99 <= 1.0, format!("p99 step lateness {p99:.3}s <= 1s"));
        check(
            self.resume <= Duration::from_secs(2),
            format!(
                "resume after restart {:.2}s <= 2s",
                self.resume.as_secs_f64()
            ),
        );
        check(
            self.restarted_ok,
            "no weight step repeated after the restart".to_string(),
        );
    }
}

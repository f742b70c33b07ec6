//! The parts of the report the controllers' own /metrics give: step lateness by cause
//! (`serin_step_lateness_seconds`, `serin_late_steps_total`, see src/controller/report.rs) and,
//! with several controllers, each shard's CPU, RSS and API requests.

use crate::controllers::ProcFigures;
use crate::scrape::{Scrape, histogram_quantile};

/// The causes in the order printed, with what each means.
const CAUSES: [(&str, &str); 4] = [
    (
        "readiness",
        "the canary was not ready when the step fell due",
    ),
    (
        "slot",
        "due until its reconcile started (queued behind --concurrency)",
    ),
    ("api", "Kubernetes API calls inside the reconcile"),
    (
        "other",
        "rest of the reconcile: metric queries, webhooks, CPU",
    ),
];

/// Prints p50/p99 per cause over the measured rollout and, for steps more than 1 s late, how
/// many had each cause as their largest part.
pub fn print(during: &Scrape) {
    let total = during
        .lateness
        .get("total")
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let steps = total.last().map_or(0.0, |b| b.1);
    let late: f64 = during.late.values().sum();
    println!(
        "step lateness by cause, from the controller's serin_step_lateness_seconds over {steps} steps (p50/p99 interpolated in 1.5x buckets):"
    );
    let (p50, p99) = (
        histogram_quantile(total, 0.5),
        histogram_quantile(total, 0.99),
    );
    println!("  {:<10} p50 {p50:>7.3}s  p99 {p99:>7.3}s", "total");
    for (cause, meaning) in CAUSES {
        let b = during.lateness.get(cause).map(Vec::as_slice).unwrap_or(&[]);
        let (p50, p99) = (histogram_quantile(b, 0.5), histogram_quantile(b, 0.99));
        let n = during.late.get(cause).copied().unwrap_or(0.0);
        println!(
            "  {cause:<10} p50 {p50:>7.3}s  p99 {p99:>7.3}s  largest part of {n:>5} late steps  ({meaning})"
        );
    }
    println!("  {late} of {steps} steps more than 1s late");
}

/// One line per controller: its selector, CPU during the run, RSS now and at peak, and the API
/// requests it made during the measured rollout.
pub fn shard_lines(now: &[ProcFigures], before: &[ProcFigures], during: &[Scrape]) -> Vec<String> {
    if now.len() < 2 {
        return Vec::new();
    }
    now.iter()
        .enumerate()
        .map(|(i, f)| {
            let cpu = f.cpu - before.get(i).map_or(0.0, |b| b.cpu);
            let requests = during.get(i).map_or(0, |s| s.api.total());
            format!(
                "  {:<48} CPU {cpu:>6.1}s  RSS {:>6.1} MiB (peak {:>6.1})  {requests:>8} API requests",
                f.selector, f.rss_mib, f.peak_rss_mib
            )
        })
        .collect()
}

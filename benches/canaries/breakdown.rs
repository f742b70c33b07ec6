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
    // Counts are whole numbers (a difference of two scrapes; `as u64` also drops a -0).
    let steps = total.last().map_or(0.0, |b| b.1).max(0.0) as u64;
    let late = during.late.values().sum::<f64>().max(0.0) as u64;
    println!(
        "step lateness by cause, from the controller's serin_step_lateness_seconds over {steps} steps (p50/p99 interpolated in 1.5x buckets):"
    );
    let q = |b: &[(f64, f64)], q: f64| seconds(b, histogram_quantile(b, q));
    println!(
        "  {:<10} p50 {:>7}  p99 {:>7}",
        "total",
        q(total, 0.5),
        q(total, 0.99)
    );
    for (cause, meaning) in CAUSES {
        let b = during.lateness.get(cause).map(Vec::as_slice).unwrap_or(&[]);
        let n = during.late.get(cause).copied().unwrap_or(0.0).max(0.0) as u64;
        println!(
            "  {cause:<10} p50 {:>7}  p99 {:>7}  largest part of {n:>5} late steps  ({meaning})",
            q(b, 0.5),
            q(b, 0.99)
        );
    }
    println!("  {late} of {steps} steps more than 1s late");
}

/// A quantile as text; inside the first bucket (1 ms) the histogram cannot say more than `<1ms`.
fn seconds(buckets: &[(f64, f64)], v: f64) -> String {
    match buckets.first() {
        _ if v.is_nan() => "-".into(),
        Some((first, _)) if v <= *first => format!("<{:.0}ms", first * 1000.0),
        _ => format!("{v:.3}s"),
    }
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

//! What `serin demo` shows: phase, a primary/canary weight bar, each check's value against its
//! bound, failed checks, hook calls, every decision record with the judge's numbers under it
//! (medians, effect, p-value, verdict) and a one-line verdict per rollout.
//! A live bar (indicatif) on a terminal; plain lines, printed only when something changed,
//! otherwise. Reads Canary objects only; must not talk to the cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::{Canary, CanaryPhase, CanaryStatus, CheckRecord, Verdict};

/// The demo's output.
pub struct View {
    bar: Option<ProgressBar>,
    start: Instant,
    last_state: String,
    last_decision: Option<DateTime<Utc>>,
}

/// `[██████░░░░]` for the canary's share.
fn weight_bar(canary: i32) -> String {
    let filled = (canary.clamp(0, 100) / 10) as usize;
    format!("[{}{}]", "█".repeat(filled), "░".repeat(10 - filled))
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "ok",
        Verdict::Fail => "FAIL",
        Verdict::NoData => "no data",
        Verdict::Skipped => "skipped",
        Verdict::Unreachable => "unreachable",
    }
}

/// The judge's line for a compared check: both medians, the effect, the p-value, the sample
/// counts and the verdict (or why there were no numbers); None for a threshold check.
pub fn judge_line(c: &CheckRecord) -> Option<String> {
    let n = c.judge.as_ref()?;
    let numbers = match (n.canary_median, n.baseline_median, n.effect, n.p_value) {
        (Some(mc), Some(mb), Some(e), Some(p)) => format!(
            "canary median {mc:.4} vs {} {mb:.4}, effect {:+.1}%, p = {p:.4} ({} vs {} samples)",
            n.baseline,
            e * 100.0,
            n.canary_samples,
            n.baseline_samples
        ),
        _ => c.message.clone().unwrap_or_else(|| "no numbers".into()),
    };
    Some(format!(
        "judge {}: {numbers} → {}",
        c.name,
        verdict_word(c.verdict)
    ))
}

fn checks_text(status: &CanaryStatus) -> String {
    let Some(last) = status.decisions.last() else {
        return String::new();
    };
    last.checks
        .iter()
        .map(|c| {
            let verdict = verdict_word(c.verdict);
            if let Some(n) = &c.judge {
                // The judge's bound is a sentence; the status line keeps to the numbers.
                return match (n.effect, n.p_value) {
                    (Some(e), Some(p)) => format!(
                        "{} {:+.1}% vs {} p={p:.3} {verdict}",
                        c.name,
                        e * 100.0,
                        n.baseline
                    ),
                    _ => format!("{} {verdict}", c.name),
                };
            }
            match (c.value, c.bound.as_deref()) {
                (Some(v), Some(bound)) => format!("{} {v:.2} ({bound}) {verdict}", c.name),
                (Some(v), None) => format!("{} {v:.2} {verdict}", c.name),
                (None, _) => format!("{} {verdict}", c.name),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn hooks_text(hooks: &BTreeMap<String, u64>) -> String {
    hooks
        .iter()
        .map(|(name, n)| format!("{name}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The status line of a Canary.
pub fn state_line(c: &Canary, hooks: &BTreeMap<String, u64>) -> String {
    let s = c.status.clone().unwrap_or_default();
    let mut line = format!(
        "{:<12} primary {:>3}% {} canary {:>3}%  failed checks {}",
        format!("{:?}", s.phase),
        100 - s.canary_weight,
        weight_bar(s.canary_weight),
        s.canary_weight,
        s.failed_checks,
    );
    for (label, text) in [("checks", checks_text(&s)), ("hooks", hooks_text(hooks))] {
        if !text.is_empty() {
            line.push_str(&format!("  {label}: {text}"));
        }
    }
    line
}

/// One line per rollout: promoted or rolled back, and why.
pub fn verdict(label: &str, c: &Canary, took: Duration) -> String {
    let s = c.status.clone().unwrap_or_default();
    let last = s
        .decisions
        .last()
        .map(|d| d.action.clone())
        .unwrap_or_default();
    let secs = took.as_secs_f64();
    match s.phase {
        CanaryPhase::Succeeded => format!("✔ VERDICT {label}: promoted in {secs:.1}s — {last}"),
        CanaryPhase::Failed => format!("✘ VERDICT {label}: rolled back in {secs:.1}s — {last}"),
        other => format!("? VERDICT {label}: still {other:?} after {secs:.1}s"),
    }
}

impl View {
    /// A live view when `tty`, plain lines otherwise.
    pub fn new(tty: bool) -> View {
        let bar = tty.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        View {
            bar,
            start: Instant::now(),
            last_state: String::new(),
            last_decision: None,
        }
    }

    /// Prints a line above the live bar (or plainly).
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Shows the Canary's state and any decision records not shown yet.
    pub fn update(&mut self, c: &Canary, hooks: &BTreeMap<String, u64>) {
        let s = c.status.clone().unwrap_or_default();
        for d in &s.decisions {
            if self.last_decision.is_some_and(|t| d.time <= t) {
                continue;
            }
            self.last_decision = Some(d.time);
            let checks: Vec<String> = d
                .checks
                .iter()
                .map(|k| {
                    let v = k
                        .value
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "–".into());
                    format!("{} {v} {:?}", k.name, k.verdict)
                })
                .collect();
            let checks = if checks.is_empty() {
                String::new()
            } else {
                format!(" [{}]", checks.join(", "))
            };
            self.say(&format!(
                "   decision {:?} weight {}: {}{}",
                d.phase, d.weight, d.action, checks
            ));
            for line in d.checks.iter().filter_map(judge_line) {
                self.say(&format!("     {line}"));
            }
        }
        let line = state_line(c, hooks);
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None if line != self.last_state => {
                println!("{:>6.1}s {line}", self.start.elapsed().as_secs_f64());
            }
            None => {}
        }
        self.last_state = state_line(c, hooks);
    }

    /// Ends the live bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compared_check_gets_the_judge_line_and_a_threshold_check_none() {
        let judged = CheckRecord {
            name: "latency".into(),
            value: Some(0.13),
            verdict: Verdict::Fail,
            judge: Some(crate::api::JudgeRecord {
                baseline: "primary".into(),
                canary_median: Some(0.13),
                baseline_median: Some(0.1),
                effect: Some(0.3),
                p_value: Some(2.0 / 252.0),
                canary_samples: 5,
                baseline_samples: 5,
            }),
            ..Default::default()
        };
        assert_eq!(
            judge_line(&judged).unwrap(),
            "judge latency: canary median 0.1300 vs primary 0.1000, effect +30.0%, p = 0.0079 (5 vs 5 samples) → FAIL"
        );
        let few = CheckRecord {
            verdict: Verdict::NoData,
            message: Some("too few samples: canary 2, primary 5 (minSamples 5)".into()),
            judge: Some(crate::api::JudgeRecord {
                baseline: "primary".into(),
                canary_samples: 2,
                baseline_samples: 5,
                ..Default::default()
            }),
            ..judged.clone()
        };
        assert_eq!(
            judge_line(&few).unwrap(),
            "judge latency: too few samples: canary 2, primary 5 (minSamples 5) → no data"
        );
        let bound = CheckRecord {
            judge: None,
            ..judged
        };
        assert_eq!(judge_line(&bound), None);
    }

    #[test]
    fn the_bar_shows_the_canary_share() {
        assert_eq!(weight_bar(0), "[░░░░░░░░░░]");
        assert_eq!(weight_bar(40), "[████░░░░░░]");
        assert_eq!(weight_bar(140), "[██████████]");
    }
}

//! The webhook invariant, judged from everything the receiver got: pre-rollout and post-rollout
//! at most once per (app, revision checksum from the payload). A repeat is a violation, shown
//! with its calls and what the chaos did between them — except a pre-rollout repeat with a
//! controller SIGKILL between the two calls: pre-rollout is a gate, and an answer lost with the
//! process that got it (killed before the status write recording it) must be asked again, never
//! assumed, so those are counted for the report (docs/reliability.md, "pre-rollout after a kill").
//! Also counted, for the report only: the rollouts that never got one (post-rollout is at most
//! once and may be lost with a killed controller; the issue budgets repeats, not losses).

use std::collections::HashSet;

use crate::ledger::{Invariant, Ledger};
use crate::rollouts::{Kind, Outcome};
use crate::standins::Receiver;

/// Counts for the report.
#[derive(Debug, Default)]
pub struct Tally {
    pub pre_calls: usize,
    pub post_calls: usize,
    /// Rollouts that reached the analysis (healthy, bad metrics) with no pre-rollout call.
    pub pre_missing: usize,
    /// Finished rollouts with no post-rollout call.
    pub post_missing: usize,
    /// pre-rollout calls repeated after the controller was killed between them.
    pub pre_again_after_kill: usize,
}

/// Records a violation for every repeated call and returns the counts.
pub fn judge(receiver: &Receiver, outcomes: &[Outcome], ledger: &Ledger) -> Tally {
    let mut tally = Tally::default();
    let mut seen: HashSet<(String, String, String)> = HashSet::new();
    let mut groups: Vec<_> = receiver.tally().into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for ((kind, app, checksum), calls) in groups {
        match kind.as_str() {
            "pre-rollout" => tally.pre_calls += calls.len(),
            "post-rollout" => tally.post_calls += calls.len(),
            _ => {}
        }
        seen.insert((kind.clone(), app.clone(), checksum.clone()));
        if calls.len() < 2 {
            continue;
        }
        let invariant = match kind.as_str() {
            "pre-rollout" => Invariant::PreRolloutTwice,
            _ => Invariant::PostRolloutTwice,
        };
        let times: Vec<f64> = calls.iter().map(|c| ledger.at(c.at)).collect();
        let killed_between = |a: f64, b: f64| {
            ledger
                .between(a, b)
                .iter()
                .any(|(_, e)| e.starts_with("SIGKILL controller"))
        };
        if invariant == Invariant::PreRolloutTwice
            && times.windows(2).all(|w| killed_between(w[0], w[1]))
        {
            tally.pre_again_after_kill += calls.len() - 1;
            ledger.progress(format!(
                "{app}: pre-rollout asked again for rev {} after a controller kill (at {})",
                crate::snapshot::short(Some(&checksum)),
                times
                    .iter()
                    .map(|t| format!("{t:.2}s"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        let (first, last) = (times[0], times[times.len() - 1]);
        let listed: Vec<String> = calls
            .iter()
            .zip(&times)
            .map(|(c, t)| format!("{t:.2}s ({})", c.phase))
            .collect();
        let between: Vec<String> = ledger
            .between(first - 0.5, last + 0.5)
            .into_iter()
            .map(|(t, e)| format!("{t:.2}s {e}"))
            .collect();
        let app_index = app.strip_prefix("app-").and_then(|n| n.parse().ok());
        ledger.violate(
            invariant,
            app_index,
            format!(
                "{kind} called {} times for rev {}: at {}; around them: {}",
                calls.len(),
                crate::snapshot::short(Some(&checksum)),
                listed.join(", "),
                if between.is_empty() {
                    "nothing".to_string()
                } else {
                    between.join("; ")
                }
            ),
        );
    }
    for o in outcomes.iter().filter(|o| o.phase != "unfinished") {
        let rev = o.rev.clone().unwrap_or_default();
        let app = crate::snapshot::app_name(o.app);
        let has = |kind: &str| seen.contains(&(kind.to_string(), app.clone(), rev.clone()));
        if o.kind != Kind::NeverReady && !has("pre-rollout") {
            tally.pre_missing += 1;
        }
        if !has("post-rollout") {
            tally.post_missing += 1;
        }
    }
    tally
}

//! What `serin backtest` prints: the report per analysis (each check's range of values and its
//! bound, the judge's numbers tick by tick for compared metrics, the outcome, the ticks that did
//! not pass), the CSV series (with the judge's columns), the summary line and the progress bar
//! (on a terminal only). Formatting only: the verdicts come from `analysis::backtest`.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use super::backtest::Setup;
use crate::analysis::backtest::{AnalysisReport, Outcome, TickResult, checks_to_promote};
use crate::analysis::bounds;
use crate::api::{CheckRecord, Verdict};

/// A progress bar over `requests` range queries on standard error when it is a terminal; a
/// hidden one otherwise (pipes and CI logs get no control characters).
pub fn progress_bar(requests: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(requests);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "querying Prometheus {bar:30} {pos}/{len} range queries",
    ) {
        bar.set_style(style);
    }
    bar
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A metric's bound as the report shows it; a compared metric's is the judge's, as its records
/// word it.
fn bound_of(m: &crate::api::CanaryMetric, report: &AnalysisReport) -> String {
    if m.compare.is_some() {
        return report
            .ticks
            .iter()
            .flat_map(|t| &t.records)
            .find_map(|r| (r.name == m.name).then(|| r.bound.clone()).flatten())
            .unwrap_or_default();
    }
    match bounds(m) {
        (Some(lo), Some(hi)) => format!("in [{lo}, {hi}]"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => "no bound".into(),
    }
}

/// The last line: "would roll back at <time> (<check>)" for the first rollback, else "would
/// promote", else no verdict.
pub fn summary(reports: &[AnalysisReport]) -> String {
    let first_rollback = reports.iter().find_map(|r| match &r.outcome {
        Outcome::RolledBack { at, check, .. } => Some((*at, check.clone())),
        _ => None,
    });
    if let Some((at, check)) = first_rollback {
        return format!("would roll back at {} ({check})", time(at));
    }
    if reports.iter().any(|r| r.outcome == Outcome::Promoted) {
        return "would promote".into();
    }
    let start = reports
        .first()
        .and_then(|r| r.ticks.first())
        .map(|t| time(t.at))
        .unwrap_or_default();
    format!("no verdict: the analysis from {start} was still running at --to")
}

/// `name lo..hi (bound)` over the analysis's ticks, with how many ticks had no value.
fn check_range(report: &AnalysisReport, name: &str, bound: &str) -> String {
    let records: Vec<&CheckRecord> = report
        .ticks
        .iter()
        .flat_map(|t| t.records.iter().filter(|r| r.name == name))
        .collect();
    let values: Vec<f64> = records.iter().filter_map(|r| r.value).collect();
    let missing = records.len() - values.len();
    let range = match (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo:.2}"),
        (Some(lo), Some(hi)) => format!("{lo:.2}..{hi:.2}"),
        _ => "no data".into(),
    };
    let gaps = if missing > 0 && !values.is_empty() {
        format!(", {missing} tick(s) without a value")
    } else {
        String::new()
    };
    format!("{name} {range} ({bound}{gaps})")
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Promoted => "promoted".into(),
        Outcome::RolledBack { at, check, .. } => {
            format!("rolled back at {} ({check})", time(*at))
        }
        Outcome::Unfinished => "unfinished at --to".into(),
    }
}

/// The human report: a header, then per analysis its span, outcome, checks and the ticks that
/// did not pass; then the counts. The summary line is the caller's.
pub fn text(
    setup: &Setup,
    reports: &[AnalysisReport],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let c = &setup.canary;
    let metrics = c.spec.analysis.metrics.clone().unwrap_or_default();
    let (first, last) = (setup.ticks[0], setup.ticks[setup.ticks.len() - 1]);
    writeln!(
        out,
        "Canary {}/{} ({}): ticks every {} from {} to {}",
        c.namespace_or_default(),
        c.metadata.name.as_deref().unwrap_or_default(),
        setup.router,
        c.spec.analysis.interval,
        time(first),
        time(last)
    )?;
    writeln!(
        out,
        "an analysis promotes after {} passing ticks and rolls back at {} failed checks",
        checks_to_promote(&setup.plan),
        setup.plan.threshold
    )?;
    let other = crate::analysis::other_side(&c.spec).side;
    for m in &setup.metrics {
        // A template's query may span lines; one line per metric keeps the header readable.
        let one_line = |q: &str| q.split_whitespace().collect::<Vec<_>>().join(" ");
        match &m.other_query {
            None => writeln!(out, "  {}: {}", m.name, one_line(&m.query))?,
            Some(theirs) => {
                writeln!(out, "  {} (canary): {}", m.name, one_line(&m.query))?;
                writeln!(out, "  {} ({other}): {}", m.name, one_line(theirs))?;
            }
        }
    }
    writeln!(out)?;
    for (i, r) in reports.iter().enumerate() {
        let (start, end) = (r.ticks[0].at, r.ticks[r.ticks.len() - 1].at);
        writeln!(
            out,
            "analysis {}  {} .. {}  {} ticks  {}",
            i + 1,
            time(start),
            time(end),
            r.ticks.len(),
            outcome_text(&r.outcome)
        )?;
        let checks: Vec<String> = metrics
            .iter()
            .map(|m| check_range(r, &m.name, &bound_of(m, r)))
            .collect();
        writeln!(out, "    {}", checks.join("  "))?;
        for m in metrics.iter().filter(|m| m.compare.is_some()) {
            judged(r, &m.name, out)?;
        }
        not_passed(r, setup.plan.threshold, out)?;
    }
    let count = |f: fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    writeln!(
        out,
        "\n{} analyses: {} promoted, {} rolled back, {} unfinished",
        reports.len(),
        count(|o| *o == Outcome::Promoted),
        count(|o| matches!(o, Outcome::RolledBack { .. })),
        count(|o| *o == Outcome::Unfinished)
    )
}

/// A verdict as the report spells it.
fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NoData => "no data",
        Verdict::Skipped => "skipped",
        Verdict::Unreachable => "unreachable",
    }
}

/// A compared metric's judgement at every tick of an analysis: both medians, the effect, the
/// p-value, the sample counts and the verdict, or why there were none.
fn judged(r: &AnalysisReport, name: &str, out: &mut impl Write) -> std::io::Result<()> {
    for t in &r.ticks {
        let Some(rec) = t.records.iter().find(|c| c.name == name) else {
            continue;
        };
        let Some(n) = &rec.judge else { continue };
        let numbers = match (n.canary_median, n.baseline_median, n.effect, n.p_value) {
            (Some(c), Some(b), Some(e), Some(p)) => format!(
                "canary {c:.4}  {} {b:.4}  effect {:+.1}%  p {p:.4}  {}/{} samples",
                n.baseline,
                e * 100.0,
                n.canary_samples,
                n.baseline_samples
            ),
            _ => rec.message.clone().unwrap_or_else(|| "no numbers".into()),
        };
        writeln!(
            out,
            "    {}  {name}  {numbers}  {}",
            time(t.at),
            verdict_text(rec.verdict)
        )?;
    }
    Ok(())
}

/// The ticks of an analysis that did not pass, the one that rolled back saying so.
fn not_passed(r: &AnalysisReport, threshold: i32, out: &mut impl Write) -> std::io::Result<()> {
    let last = r.ticks.len() - 1;
    for (k, t) in r.ticks.iter().enumerate() {
        let what = match &t.result {
            TickResult::Passed => continue,
            TickResult::Failed(why) => {
                format!("failed check {}/{}: {why}", t.failed_checks, threshold)
            }
            TickResult::Held(why) => format!("held: {why}"),
        };
        // The tick that rolls back says so on its own line, with the core's reason.
        let what = match &r.outcome {
            Outcome::RolledBack { reason, .. } if k == last => match &t.result {
                TickResult::Failed(_) => format!(
                    "rolled back: failed check {}/{}: {reason}",
                    t.failed_checks, threshold
                ),
                _ => format!("rolled back: {reason}"),
            },
            _ => what,
        };
        writeln!(out, "    {}  {what}", time(t.at))?;
    }
    Ok(())
}

/// A CSV field, quoted when it must be (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The judge's columns of a record: empty for a threshold check.
fn judge_fields(rec: &CheckRecord) -> String {
    let Some(n) = &rec.judge else {
        return ",,,,,,".into();
    };
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{}",
        field(&n.baseline),
        num(n.canary_median),
        num(n.baseline_median),
        num(n.effect),
        num(n.p_value),
        n.canary_samples,
        n.baseline_samples
    )
}

/// The series: one row per tick and check; compared metrics fill the judge's columns.
pub fn csv(reports: &[AnalysisReport], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "time,analysis,check,value,bound,verdict,tick,failed_checks,outcome,baseline,canary_median,baseline_median,effect,p_value,canary_samples,baseline_samples"
    )?;
    for (i, r) in reports.iter().enumerate() {
        let last = r.ticks.len() - 1;
        for (k, t) in r.ticks.iter().enumerate() {
            let tick = match t.result {
                TickResult::Passed => "passed",
                TickResult::Failed(_) => "failed",
                TickResult::Held(_) => "held",
            };
            let outcome = match (&r.outcome, k == last) {
                (Outcome::Promoted, true) => "promoted",
                (Outcome::RolledBack { .. }, true) => "rolled back",
                _ => "",
            };
            for rec in &t.records {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{}",
                    time(t.at),
                    i + 1,
                    field(&rec.name),
                    rec.value.map(|v| v.to_string()).unwrap_or_default(),
                    field(rec.bound.as_deref().unwrap_or_default()),
                    verdict_text(rec.verdict),
                    tick,
                    t.failed_checks,
                    outcome,
                    judge_fields(rec)
                )?;
            }
        }
    }
    Ok(())
}

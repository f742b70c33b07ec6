//! `serin backtest`: replays a Canary's analysis against its metric provider's history. Reads the
//! Canary (and MetricTemplates) from files, renders each metric's query as the controller does
//! (`metrics::inline_query`, `QueryModel::for_metric`, and `QueryModel::for_sides` once per side
//! for a metric with `compare`), has `backtest_fetch` fetch the values (or per-side samples) at
//! every tick with Prometheus range queries, and hands them to the pure `analysis::backtest` for
//! the verdicts; `backtest_report` prints them. Only Prometheus history can be replayed. Holds no decision logic and must not
//! import the controller.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::Args;
use std::io::Write as _;

use super::{backtest_fetch, backtest_report};
use crate::analysis::Plan;
use crate::analysis::backtest::{checks_to_promote, replay, tick_times};
use crate::api::validate::validate_for;
use crate::api::{Canary, CanaryMetric, MetricProviderType, MetricTemplate};
use crate::manifest;
use crate::metrics::{HttpSettings, QueryModel, distinct_sides, inline_query};

/// `serin backtest` arguments.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct BacktestArgs {
    /// The Canary manifest (serin.io or flagger.app; multi-document files are fine). The
    /// MetricTemplates its metrics refer to may be in the same file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Further files holding MetricTemplates (repeatable).
    #[arg(long = "template-file", value_name = "FILE")]
    pub template_files: Vec<PathBuf>,
    /// Which Canary of the file, when it holds several (by metadata.name).
    #[arg(long, value_name = "NAME")]
    pub canary: Option<String>,
    /// Start of the replay: the first tick (RFC 3339 such as 2026-11-01T00:00Z or
    /// 2026-11-01T00:00:00+01:00, or a date, read as midnight UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: DateTime<Utc>,
    /// End of the replay, excluded (same forms as --from; default: now).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// The Prometheus to query, for every metric (default: the MetricTemplate's address, else
    /// the Canary's spec.metricsServer). Use it for a port-forward to an in-cluster Prometheus.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// The traffic provider for Canaries that name none (the controller's --mesh-provider); it
    /// picks the built-in queries.
    #[arg(long, env = "SERIN_MESH_PROVIDER", default_value = "kubernetes")]
    pub mesh_provider: String,
    /// Print every tick's values as CSV on standard output instead of the report (the summary
    /// line goes to standard error).
    #[arg(long)]
    pub csv: bool,
    /// Timeout of one range query (Go duration).
    #[arg(long, default_value = "60s", value_parser = super::parse_positive_duration)]
    pub timeout: std::time::Duration,
}

/// A point in time from the command line: RFC 3339, RFC 3339 without seconds, or a date.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // RFC 3339 without seconds (2026-11-01T00:00Z): add them.
    if let Some(i) = s.find('T')
        && s[i + 1..].find(['Z', 'z', '+', '-']) == Some(5)
    {
        let (head, zone) = s.split_at(i + 6);
        if let Ok(t) = DateTime::parse_from_rfc3339(&format!("{head}:00{zone}")) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(format!(
        "'{s}' is not a time: use RFC 3339 such as 2026-11-01T00:00Z, or a date such as 2026-11-01"
    ))
}

/// A metric ready to replay: where and what to ask.
#[derive(Debug, Clone)]
pub struct Replayable {
    /// The metric's name.
    pub name: String,
    /// The rendered PromQL (for a compared metric: the canary's side).
    pub query: String,
    /// For a metric with `compare`: the query rendered for the other side (the judge's).
    pub other_query: Option<String>,
    /// The Prometheus to ask.
    pub address: String,
    /// Headers and TLS mode of its MetricTemplate.
    pub http: HttpSettings,
}

/// The Canary and templates read from the files.
pub struct Loaded {
    /// The Canary to replay.
    pub canary: Canary,
    /// Every MetricTemplate found, by (namespace, name); a template without namespace is filed
    /// under the Canary's.
    pub templates: BTreeMap<(String, String), MetricTemplate>,
}

fn read(path: &PathBuf, flag: &str) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))?;
    manifest::parse_documents(&text)
        .map_err(|e| format!("{flag} {}: invalid YAML: {e}", path.display()))
}

fn is_ours(doc: &serde_json::Value, kind: &str) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    doc["kind"] == kind && (api.starts_with("serin.io/") || api.starts_with("flagger.app/"))
}

/// Reads the Canary of `-f` and every MetricTemplate of `-f` and `--template-file`.
pub fn load(args: &BacktestArgs) -> Result<Loaded, String> {
    let docs = read(&args.file, "-f")?;
    let file = args.file.display();
    let canaries: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| is_ours(d, "Canary"))
        .filter(|d| {
            args.canary
                .as_ref()
                .is_none_or(|n| d["metadata"]["name"].as_str() == Some(n))
        })
        .collect();
    let doc = match canaries.as_slice() {
        [one] => *one,
        [] if let Some(name) = &args.canary => {
            return Err(format!("-f {file}: no Canary named {name} (--canary)"));
        }
        [] => return Err(format!("-f {file}: holds no Canary")),
        _ => {
            return Err(format!(
                "-f {file}: holds several Canaries; name one with --canary"
            ));
        }
    };
    let canary: Canary = serde_json::from_value(doc.clone())
        .map_err(|e| format!("-f {file}: the Canary is not valid: {e}"))?;
    let mut templates = BTreeMap::new();
    let mut sources = vec![(args.file.clone(), "-f", docs.clone())];
    for path in &args.template_files {
        sources.push((
            path.clone(),
            "--template-file",
            read(path, "--template-file")?,
        ));
    }
    for (path, flag, docs) in sources {
        for doc in docs.iter().filter(|d| is_ours(d, "MetricTemplate")) {
            let t: MetricTemplate = serde_json::from_value(doc.clone()).map_err(|e| {
                format!(
                    "{flag} {}: a MetricTemplate is not valid: {e}",
                    path.display()
                )
            })?;
            let ns = t
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| canary.namespace_or_default());
            templates.insert((ns, t.metadata.name.clone().unwrap_or_default()), t);
        }
    }
    Ok(Loaded { canary, templates })
}

/// The traffic provider in effect.
pub fn router(canary: &Canary, args: &BacktestArgs) -> String {
    canary
        .spec
        .provider
        .clone()
        .unwrap_or_else(|| args.mesh_provider.clone())
}

/// Renders one metric as the controller would, or says why it cannot be replayed. A metric with
/// `compare` is rendered once per side, with the controller's per-side models.
pub fn resolve(
    loaded: &Loaded,
    router: &str,
    m: &CanaryMetric,
    args: &BacktestArgs,
    notes: &mut Vec<String>,
) -> Result<Replayable, String> {
    let canary = &loaded.canary;
    if m.compare.is_none() {
        let model = QueryModel::for_metric(canary, m);
        return resolve_with(loaded, router, m, args, model, notes);
    }
    let [ours, theirs] = QueryModel::for_sides(canary, m);
    let mut r = resolve_with(loaded, router, m, args, ours, notes)?;
    // The other side's notes would repeat the canary side's.
    let other = resolve_with(loaded, router, m, args, theirs, &mut Vec::new())?;
    distinct_sides(m, &r.query, &other.query).map_err(|e| e.to_string())?;
    r.other_query = Some(other.query);
    Ok(r)
}

/// Renders one metric with the template values given.
fn resolve_with(
    loaded: &Loaded,
    router: &str,
    m: &CanaryMetric,
    args: &BacktestArgs,
    model: QueryModel,
    notes: &mut Vec<String>,
) -> Result<Replayable, String> {
    let canary = &loaded.canary;
    let fallback = || {
        args.prometheus
            .clone()
            .or_else(|| canary.spec.metrics_server.clone())
            .ok_or_else(|| {
                format!(
                    "metric '{}': no Prometheus address: give --prometheus or set spec.metricsServer",
                    m.name
                )
            })
    };
    let Some(r) = &m.template_ref else {
        let query = inline_query(router, m, model).map_err(|e| e.to_string())?;
        return Ok(Replayable {
            name: m.name.clone(),
            query,
            other_query: None,
            address: fallback()?,
            http: HttpSettings::default(),
        });
    };
    let ns = r
        .namespace
        .clone()
        .unwrap_or_else(|| canary.namespace_or_default());
    let t = loaded
        .templates
        .get(&(ns.clone(), r.name.clone()))
        .ok_or_else(|| {
            format!(
                "metric '{}': templateRef {ns}/{} is in neither -f nor a --template-file",
                m.name, r.name
            )
        })?;
    let p = &t.spec.provider;
    if p.r#type != MetricProviderType::Prometheus {
        return Err(format!(
            "metric '{}': MetricTemplate {ns}/{} uses provider type {}, which serin backtest cannot replay (only prometheus templates, inline queries and the built-in metrics have a history it can range-query)",
            m.name,
            r.name,
            serde_json::to_value(p.r#type)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ));
    }
    if p.secret_ref.is_some() {
        notes.push(format!(
            "MetricTemplate {ns}/{}: its secretRef is not read (no cluster); queries go without its credentials",
            r.name
        ));
    }
    let query = model
        .render(&t.spec.query)
        .map_err(|e| format!("metric '{}': MetricTemplate {ns}/{}: {e}", m.name, r.name))?;
    let address = match (&args.prometheus, &p.address) {
        (Some(a), _) | (None, Some(a)) => a.clone(),
        (None, None) => fallback()?,
    };
    Ok(Replayable {
        name: m.name.clone(),
        query,
        other_query: None,
        address,
        http: HttpSettings {
            insecure_skip_verify: p.insecure_skip_verify.unwrap_or(false),
            headers: p.headers.clone().unwrap_or_default(),
            ..HttpSettings::default()
        },
    })
}

/// Everything checked before the first query: the Canary, the plan, the ticks, the metrics.
pub struct Setup {
    /// The Canary.
    pub canary: Canary,
    /// Its plan.
    pub plan: Plan,
    /// The traffic provider in effect.
    pub router: String,
    /// The tick times.
    pub ticks: Vec<DateTime<Utc>>,
    /// The metrics to fetch.
    pub metrics: Vec<Replayable>,
    /// Things the user should know (what is not replayed).
    pub notes: Vec<String>,
}

/// Reads and checks everything; the error is one sentence naming the field or flag.
pub fn prepare(args: &BacktestArgs, now: DateTime<Utc>) -> Result<Setup, String> {
    let loaded = load(args)?;
    let canary = &loaded.canary;
    let router = router(canary, args);
    if let Err(errs) = validate_for(canary, &router) {
        return Err(format!("-f {}: {}", args.file.display(), errs[0]));
    }
    if canary.spec.skip_analysis == Some(true) {
        return Err("spec.skipAnalysis is true: there is no analysis to replay".into());
    }
    let metrics = canary.spec.analysis.metrics.clone().unwrap_or_default();
    if metrics.is_empty() {
        return Err("spec.analysis.metrics is empty: there is nothing to replay".into());
    }
    let plan = Plan::new(&canary.spec, &router);
    let to = args.to.unwrap_or(now);
    if to <= args.from {
        return Err("--to must be later than --from".into());
    }
    let ticks = tick_times(args.from, to, plan.interval);
    let needed = checks_to_promote(&plan);
    if ticks.len() < needed {
        return Err(format!(
            "--to: from --from to --to there are {} ticks of {}, and one analysis needs {needed}",
            ticks.len(),
            canary.spec.analysis.interval
        ));
    }
    let mut notes = Vec::new();
    let replayable = metrics
        .iter()
        .map(|m| resolve(&loaded, &router, m, args, &mut notes))
        .collect::<Result<Vec<_>, _>>()?;
    let hooks = canary.spec.analysis.webhooks.as_ref().map_or(0, Vec::len);
    if hooks > 0 {
        notes.push(format!("{hooks} webhook(s) are not replayed"));
    }
    Ok(Setup {
        canary: canary.clone(),
        plan,
        router,
        ticks,
        metrics: replayable,
        notes,
    })
}

/// Runs `serin backtest`; 0 when it ran (whatever the verdict), 2 when it could not.
pub async fn run(args: BacktestArgs) -> i32 {
    let setup = match prepare(&args, Utc::now()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    for note in &setup.notes {
        eprintln!("note: {note}");
    }
    let values = match backtest_fetch::tick_values(&setup, args.timeout).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let reports = replay(&setup.canary.spec, &setup.plan, &values);
    let summary = backtest_report::summary(&reports);
    let mut out = std::io::stdout().lock();
    let written = if args.csv {
        eprintln!("{summary}");
        backtest_report::csv(&reports, &mut out)
    } else {
        backtest_report::text(&setup, &reports, &mut out).and_then(|()| writeln!(out, "{summary}"))
    };
    // A closed pipe (`serin backtest … | head`) is not worth an error.
    drop(written);
    0
}

#[cfg(test)]
#[path = "backtest_tests.rs"]
mod tests;

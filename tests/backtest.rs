//! `serin backtest` against a real Prometheus whose TSDB holds four hours of backfilled history
//! (promtool, 2026-11-01 00:00–04:00 UTC): 100 requests/s to podinfo, P99 about 247 ms, and one
//! incident from 02:00 to 02:10 when 10 % of the requests answer 500. The Canary checks the
//! built-in request-duration (<= 500 ms) and a MetricTemplate error-rate (<= 1 %), ticks every
//! minute, promotes after five passing ticks and rolls back at two failed checks.

mod common;
/// The judged metrics' replay, over per-pod history of its own.
#[path = "backtest/judge.rs"]
mod judge;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use common::prometheus::Prometheus;

/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200;
const INCIDENT: (i64, i64) = (T0 + 2 * 3600, T0 + 2 * 3600 + 600);
const SEL: &str = r#"reporter="destination",destination_workload_namespace="test",destination_workload="podinfo""#;

/// A sample every 15 s; requests counted at the end of each 15 s, errors only inside the incident.
fn history() -> String {
    let mut om = String::new();
    let (mut ok, mut errors, mut fast, mut slow) = (0.0, 0.0, 0.0, 0.0);
    let mut lines: Vec<(String, f64, i64)> = Vec::new();
    for i in 0..=(4 * 240) {
        let t = T0 + i * 15;
        if i > 0 {
            let failing = t > INCIDENT.0 && t <= INCIDENT.1;
            ok += if failing { 1350.0 } else { 1500.0 };
            errors += if failing { 150.0 } else { 0.0 };
            fast += 750.0;
            slow += 750.0;
        }
        lines.push((
            format!(r#"istio_requests_total{{{SEL},response_code="200"}}"#),
            ok,
            t,
        ));
        lines.push((
            format!(r#"istio_requests_total{{{SEL},response_code="500"}}"#),
            errors,
            t,
        ));
        let bucket =
            |le: &str| format!(r#"istio_request_duration_milliseconds_bucket{{{SEL},le="{le}"}}"#);
        lines.push((bucket("100"), fast, t));
        lines.push((bucket("250"), fast + slow, t));
        lines.push((bucket("500"), fast + slow, t));
        lines.push((bucket("+Inf"), fast + slow, t));
    }
    // OpenMetrics wants each series' samples together.
    lines.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    for (series, v, t) in lines {
        let _ = writeln!(om, "{series} {v} {t}");
    }
    om
}

const TEMPLATE: &str = r#"apiVersion: serin.io/v1beta1
kind: MetricTemplate
metadata: {name: error-rate, namespace: test}
spec:
  provider: {type: prometheus, address: http://prometheus.monitoring:9090}
  query: |
    sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",response_code=~"5.*"}[{{ interval }}]))
    / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}])) * 100
"#;

const CANARY: &str = r#"apiVersion: serin.io/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 2
    stepWeights: [20, 40, 60, 80, 100]
    metrics:
    - name: request-duration
      thresholdRange: {max: 500}
    - name: error-rate
      interval: 1m
      thresholdRange: {max: 1}
      templateRef: {name: error-rate}
"#;

fn serin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("backtest")
        .args(args)
        .env_remove("SERIN_MESH_PROVIDER")
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn backtest_against_backfilled_history() {
    let prom = Prometheus::start(&history());
    let dir = tempfile::tempdir().unwrap();
    // The Canary alone, its template in a --template-file.
    let canary = write(dir.path(), "canary.yaml", CANARY);
    let template = write(dir.path(), "template.yaml", TEMPLATE);
    // Both in one file.
    let both = write(dir.path(), "both.yaml", &format!("{CANARY}---\n{TEMPLATE}"));

    incident(&prom, &canary, &template);
    quiet(&prom, &both);
    csv_series(&prom, &both);
    // Cannot run: an unreachable Prometheus, said in one sentence naming the flag.
    prom_down(&both);

    every_second(&prom, dir.path());
}

/// The incident, its template given with --template-file.
fn incident(prom: &Prometheus, canary: &str, template: &str) {
    // The incident: the first failing tick is 02:01 (the rate over (02:00, 02:01]), the second
    // at 02:02 reaches the threshold, and error-rate is the check, not request-duration.
    let o = serin(&[
        "-f",
        canary,
        "--template-file",
        template,
        "--prometheus",
        &prom.url,
        "--from",
        "2026-11-01T01:00Z",
        "--to",
        "2026-11-01T03:00Z",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert_eq!(
        out.lines().last(),
        Some("would roll back at 2026-11-01T02:02:00Z (error-rate)"),
        "{out}"
    );
    assert!(
        out.contains("analysis 13  2026-11-01T02:00:00Z .. 2026-11-01T02:02:00Z  3 ticks  rolled back at 2026-11-01T02:02:00Z (error-rate)"),
        "{out}"
    );
    assert!(
        out.contains("2026-11-01T02:01:00Z  failed check 1/2: error-rate 10.00 not <= 1"),
        "{out}"
    );
    assert!(
        out.contains("analysis 1  2026-11-01T01:00:00Z .. 2026-11-01T01:04:00Z  5 ticks  promoted"),
        "{out}"
    );
    assert!(
        out.contains("request-duration 247.00 (<= 500)"),
        "the P99 is shown with its bound: {out}"
    );
    // After the incident (the window (02:10, 02:11] is clean) analyses promote again.
    assert!(
        out.contains(
            "analysis 18  2026-11-01T02:11:00Z .. 2026-11-01T02:15:00Z  5 ticks  promoted"
        ),
        "{out}"
    );
}

fn quiet(prom: &Prometheus, both: &str) {
    // A quiet period promotes: 00:05 to 01:35 is 18 analyses of five ticks, all promoted. (At
    // 00:00 the history begins: that tick has no data, a failed check under onNoData: fail.)
    let o = serin(&[
        "-f",
        both,
        "--prometheus",
        &prom.url,
        "--from",
        "2026-11-01T00:05:00Z",
        "--to",
        "2026-11-01T01:35Z",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(
        out.contains("18 analyses: 18 promoted, 0 rolled back, 0 unfinished"),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("would promote"), "{out}");
}

fn csv_series(prom: &Prometheus, both: &str) {
    // --csv: one row per tick and check, the summary on stderr.
    let o = serin(&[
        "-f",
        both,
        "--prometheus",
        &prom.url,
        "--from",
        "2026-11-01T01:58Z",
        "--to",
        "2026-11-01T02:05Z",
        "--csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "would roll back at 2026-11-01T02:02:00Z (error-rate)"
    );
    let csv = stdout(&o);
    let rows: Vec<Vec<String>> = csv.lines().map(split_csv).collect();
    assert_eq!(rows[0], CSV_HEADER);
    assert_eq!(rows.len(), 1 + 7 * 2, "7 ticks x 2 checks:\n{csv}");
    for row in &rows[1..] {
        assert_eq!(row.len(), 16, "{row:?}");
        assert!(
            row[9..].iter().all(String::is_empty),
            "no judge columns for a threshold check: {row:?}"
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(&row[0]).is_ok(),
            "{row:?}"
        );
        let value: f64 = row[3].parse().unwrap_or_else(|_| panic!("{row:?}"));
        assert!(value.is_finite());
    }
    let at = |time: &str, check: &str| {
        rows.iter()
            .find(|r| r[0] == time && r[2] == check)
            .unwrap_or_else(|| panic!("no row {time} {check}:\n{csv}"))
            .clone()
    };
    let failed = at("2026-11-01T02:01:00Z", "error-rate");
    assert_eq!(&failed[3..9], ["10", "<= 1", "fail", "failed", "1", ""]);
    let last = at("2026-11-01T02:02:00Z", "error-rate");
    assert_eq!(&last[5..9], ["fail", "failed", "2", "rolled back"]);
    assert_eq!(at("2026-11-01T02:00:00Z", "error-rate")[3], "0");
    assert_eq!(at("2026-11-01T02:00:00Z", "request-duration")[5], "pass");
}

/// The columns of --csv: the threshold checks' nine, then the judge's seven.
const CSV_HEADER: [&str; 16] = [
    "time",
    "analysis",
    "check",
    "value",
    "bound",
    "verdict",
    "tick",
    "failed_checks",
    "outcome",
    "baseline",
    "canary_median",
    "baseline_median",
    "effect",
    "p_value",
    "canary_samples",
    "baseline_samples",
];

/// A 1 s interval over three hours is 10,800 ticks: two range queries (at most 10,000 points
/// each), both read. The first tick whose 1m window holds an incident sample is 02:00:15.
fn every_second(prom: &Prometheus, dir: &Path) {
    let fast = CANARY.replace("interval: 1m\n    threshold", "interval: 1s\n    threshold");
    let file = write(dir, "fast.yaml", &format!("{fast}---\n{TEMPLATE}"));
    let o = serin(&[
        "-f",
        &file,
        "--prometheus",
        &prom.url,
        "--from",
        "2026-11-01T01:00Z",
        "--to",
        "2026-11-01T04:00Z",
        "--csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "would roll back at 2026-11-01T02:00:16Z (error-rate)"
    );
    let csv = stdout(&o);
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(split_csv).collect();
    assert_eq!(rows.len(), 10_800 * 2);
    let late = rows
        .iter()
        .find(|r| r[0] == "2026-11-01T03:59:59Z" && r[2] == "request-duration")
        .expect("the last tick, from the second range query");
    assert_eq!(late[3], "247", "{late:?}");
    assert!(
        rows.iter().all(|r| !r[3].is_empty()),
        "every tick of both range queries has its value"
    );
}

fn prom_down(file: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = serin(&[
        "-f",
        file,
        "--prometheus",
        &format!("http://127.0.0.1:{port}"),
        "--from",
        "2026-11-01T00:00Z",
        "--to",
        "2026-11-01T01:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: cannot query Prometheus at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("(--prometheus)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(stdout(&o).is_empty());
}

/// Splits one CSV line, honouring quotes (RFC 4180).
fn split_csv(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

#[test]
fn input_it_cannot_run_with_exits_2_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let from = ["--from", "2026-11-01T00:00Z", "--to", "2026-11-01T01:00Z"];
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (
            "missing file".into(),
            vec![
                "-f".into(),
                dir.path().join("nope.yaml").display().to_string(),
            ],
            "cannot read",
        ),
        (
            "template not given".into(),
            vec![
                "-f".into(),
                write(dir.path(), "c.yaml", CANARY),
                "--prometheus".into(),
                "http://127.0.0.1:1".into(),
            ],
            "metric 'error-rate': templateRef test/error-rate is in neither -f nor a --template-file",
        ),
        (
            "a provider it cannot replay".into(),
            vec![
                "-f".into(),
                write(
                    dir.path(),
                    "dd.yaml",
                    &format!(
                        "{CANARY}---\n{}",
                        TEMPLATE.replace("type: prometheus", "type: datadog")
                    ),
                ),
                "--prometheus".into(),
                "http://127.0.0.1:1".into(),
            ],
            "MetricTemplate test/error-rate uses provider type datadog, which serin backtest cannot replay",
        ),
        (
            "no address".into(),
            vec![
                "-f".into(),
                write(
                    dir.path(),
                    "na.yaml",
                    &format!(
                        "{CANARY}---\n{}",
                        TEMPLATE.replace(", address: http://prometheus.monitoring:9090", "")
                    ),
                ),
            ],
            "no Prometheus address: give --prometheus or set spec.metricsServer",
        ),
        (
            "an invalid Canary".into(),
            vec![
                "-f".into(),
                write(
                    dir.path(),
                    "bad.yaml",
                    &CANARY.replace("      thresholdRange: {max: 500}\n", ""),
                ),
            ],
            "metric 'request-duration' has no bound",
        ),
    ];
    for (what, args, expected) in cases {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(from);
        let o = serin(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{what}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
    }
}

/// Too short a range for one analysis, and a bad time (clap's usage error, also exit 2).
#[test]
fn bad_ranges_and_times_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let both = write(dir.path(), "both.yaml", &format!("{CANARY}---\n{TEMPLATE}"));
    let o = serin(&[
        "-f",
        &both,
        "--from",
        "2026-11-01T00:00Z",
        "--to",
        "2026-11-01T00:03Z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("there are 3 ticks of 1m, and one analysis needs 5"),
        "{}",
        stderr(&o)
    );
    let o = serin(&["-f", &both, "--from", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'yesterday' is not a time"),
        "{}",
        stderr(&o)
    );
}

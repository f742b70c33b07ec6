//! `serin backtest` replays the statistical judge (issue 21, items 1 and 3) against a real
//! Prometheus backfilled by promtool with three hours of per-pod latency (2026-11-01 00:00–03:00
//! UTC): eight canary pods and eight primary pods at 10 requests/s each, pod i at
//! `100 ms * (1 + (i - 3.5) %)` on both sides, until the canary's pods turn 20 % slower from
//! 02:00 — 120 ms, still under the Canary's fixed 200 ms bound. The judge must find it at the
//! right tick; the alike period must promote.

use std::fmt::Write as _;

use super::common::prometheus::Prometheus;
use super::{CSV_HEADER, serin, split_csv, stderr, stdout, write};

/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200;
/// From then on (counted from the next sample) the canary's pods are slower.
const SLOWER_FROM: i64 = T0 + 2 * 3600;

fn pod_series(om: &mut String, workload: &str, i: u32, slower: bool) {
    let labels =
        format!(r#"kubernetes_namespace="test",kubernetes_pod_name="{workload}-7d9f8c6b5-p{i}""#);
    let base = 0.100 * (1.0 + (f64::from(i) - 3.5) * 0.01);
    let (mut count, mut sum) = (0.0, 0.0);
    let mut counts = String::new();
    let mut sums = String::new();
    for k in 0..=(3 * 240) {
        let t = T0 + k * 15;
        if k > 0 {
            let latency = if slower && t > SLOWER_FROM {
                base * 1.2
            } else {
                base
            };
            count += 150.0;
            sum += 150.0 * latency;
        }
        let _ = writeln!(
            counts,
            "http_request_duration_seconds_count{{{labels}}} {count} {t}"
        );
        let _ = writeln!(
            sums,
            "http_request_duration_seconds_sum{{{labels}}} {sum} {t}"
        );
    }
    // OpenMetrics wants each series' samples together.
    om.push_str(&counts);
    om.push_str(&sums);
}

fn history() -> String {
    let mut om = String::new();
    for i in 0..8 {
        pod_series(&mut om, "podinfo", i, true);
        pod_series(&mut om, "podinfo-primary", i, false);
    }
    om
}

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
    iterations: 5
    judge: {minEffect: 0.1, maxPValue: 0.05, minSamples: 5}
    metrics:
    - name: latency-bound
      interval: 1m
      thresholdRange: {max: 0.2}
      query: |
        sum(rate(http_request_duration_seconds_sum{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-z]+-[0-9a-z]+"}[{{ interval }}]))
        / sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-z]+-[0-9a-z]+"}[{{ interval }}]))
    - name: latency
      interval: 1m
      compare: {direction: increase}
      query: |
        sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_sum{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-z]+-[0-9a-z]+"}[{{ interval }}]))
        / sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-z]+-[0-9a-z]+"}[{{ interval }}]))
"#;

#[test]
fn judged_metrics_are_replayed_per_side_from_backfilled_per_pod_history() {
    let prom = Prometheus::start(&history());
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "judged.yaml", CANARY);
    slower_canary_rolls_back_when_it_turned_slower(&prom, &file);
    alike_sides_promote(&prom, &file);
    csv_has_the_judge_columns(&prom, &file);
}

fn run(prom: &Prometheus, file: &str, from: &str, to: &str, csv: bool) -> (String, String) {
    let mut args = vec![
        "-f",
        file,
        "--prometheus",
        &prom.url,
        "--from",
        from,
        "--to",
        to,
    ];
    if csv {
        args.push("--csv");
    }
    let o = serin(&args);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    (stdout(&o), stderr(&o))
}

fn slower_canary_rolls_back_when_it_turned_slower(prom: &Prometheus, file: &str) {
    // Twelve analyses of five ticks from 01:00 promote; the thirteenth starts at 02:00, whose
    // window (01:59, 02:00] is still alike. 02:01 sees the slower pods (one failed check), 02:02
    // reaches threshold 2 — the judged metric, not the bound, which still passes.
    let (out, _) = run(prom, file, "2026-11-01T01:00Z", "2026-11-01T02:30Z", false);
    assert_eq!(
        out.lines().last(),
        Some("would roll back at 2026-11-01T02:02:00Z (latency)"),
        "{out}"
    );
    assert!(
        out.contains("analysis 13  2026-11-01T02:00:00Z .. 2026-11-01T02:02:00Z  3 ticks  rolled back at 2026-11-01T02:02:00Z (latency)"),
        "{out}"
    );
    assert!(
        out.contains("latency-bound 0.10..0.12 (<= 0.2)"),
        "the fixed bound passes throughout: {out}"
    );
    // The header shows the query of each side; the table the judge's numbers at every tick.
    assert!(
        out.contains(r#"latency (primary): sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_sum{kubernetes_namespace="test",kubernetes_pod_name=~"podinfo-primary-[0-9a-z]+-[0-9a-z]+"}[1m]))"#),
        "{out}"
    );
    assert!(
        out.contains("latency 0.10..0.12 (vs primary: no increase of 10% or more at p < 0.05)"),
        "{out}"
    );
    assert!(
        out.contains("    2026-11-01T02:00:00Z  latency  canary 0.1000  primary 0.1000  effect +0.0%  p 1.0000  8/8 samples  pass"),
        "{out}"
    );
    // Every canary pod above every primary pod: the exact p = 2 / C(16, 8) = 0.000155.
    assert!(
        out.contains("    2026-11-01T02:01:00Z  latency  canary 0.1200  primary 0.1000  effect +20.0%  p 0.0002  8/8 samples  fail"),
        "{out}"
    );
    assert!(
        out.contains("2026-11-01T02:01:00Z  failed check 1/2: latency: canary median 0.1200 vs primary 0.1000: +20.0%, p = 0.0002 (8 vs 8 samples)"),
        "{out}"
    );
}

fn alike_sides_promote(prom: &Prometheus, file: &str) {
    // 00:05 to 01:35: eighteen analyses of five ticks over alike pods. (At 00:00 the history
    // begins: that tick has no samples, too few for the judge.)
    let (out, _) = run(prom, file, "2026-11-01T00:05Z", "2026-11-01T01:35Z", false);
    assert!(
        out.contains("18 analyses: 18 promoted, 0 rolled back, 0 unfinished"),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("would promote"), "{out}");
    assert_eq!(
        out.matches(
            "  latency  canary 0.1000  primary 0.1000  effect +0.0%  p 1.0000  8/8 samples  pass"
        )
        .count(),
        90,
        "one judged line per tick: {out}"
    );
}

fn csv_has_the_judge_columns(prom: &Prometheus, file: &str) {
    let (csv, err) = run(prom, file, "2026-11-01T01:58Z", "2026-11-01T02:05Z", true);
    assert_eq!(
        err.trim(),
        "would roll back at 2026-11-01T02:02:00Z (latency)"
    );
    let rows: Vec<Vec<String>> = csv.lines().map(split_csv).collect();
    assert_eq!(rows[0], CSV_HEADER);
    assert_eq!(rows.len(), 1 + 7 * 2, "7 ticks x 2 checks:\n{csv}");
    let at = |time: &str, check: &str| {
        rows.iter()
            .find(|r| r[0] == time && r[2] == check)
            .unwrap_or_else(|| panic!("no row {time} {check}:\n{csv}"))
            .clone()
    };
    let num = |s: &str| s.parse::<f64>().unwrap_or_else(|_| panic!("{s:?}"));
    let failed = at("2026-11-01T02:01:00Z", "latency");
    assert_eq!(&failed[5..10], ["fail", "failed", "1", "", "primary"]);
    assert!(
        (num(&failed[3]) - 0.12).abs() < 1e-9,
        "value is the canary median: {failed:?}"
    );
    assert!((num(&failed[10]) - 0.12).abs() < 1e-9, "{failed:?}");
    assert!((num(&failed[11]) - 0.10).abs() < 1e-9, "{failed:?}");
    assert!((num(&failed[12]) - 0.2).abs() < 1e-6, "{failed:?}");
    assert!(
        (num(&failed[13]) - 2.0 / 12870.0).abs() < 1e-12,
        "{failed:?}"
    );
    assert_eq!(&failed[14..], ["8", "8"]);
    let last = at("2026-11-01T02:02:00Z", "latency");
    assert_eq!(&last[5..9], ["fail", "failed", "2", "rolled back"]);
    let alike = at("2026-11-01T02:00:00Z", "latency");
    assert_eq!(
        (alike[5].as_str(), num(&alike[12]), num(&alike[13])),
        ("pass", 0.0, 1.0)
    );
    let bound = at("2026-11-01T02:01:00Z", "latency-bound");
    assert_eq!(&bound[4..6], ["<= 0.2", "pass"]);
    assert!(bound[9..].iter().all(String::is_empty), "{bound:?}");
}

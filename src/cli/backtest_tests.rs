//! Argument parsing of `serin backtest` and the times it reads.

use chrono::TimeZone;
use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn parse(args: &[&str]) -> Result<BacktestArgs, clap::Error> {
    let cli = Cli::try_parse_from(["serin", "backtest"].iter().chain(args))?;
    match cli.command {
        Command::Backtest(a) => Ok(*a),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn times_in_rfc3339_with_or_without_seconds_or_as_a_date() {
    let midnight = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    for s in [
        "2026-11-01T00:00Z",
        "2026-11-01T00:00:00Z",
        "2026-11-01T01:00+01:00",
        "2026-11-01T01:00:00+01:00",
        "2026-11-01T00:00:00",
        "2026-11-01",
    ] {
        assert_eq!(parse_time(s), Ok(midnight), "{s}");
    }
    assert_eq!(
        parse_time("2026-10-31T23:30-00:30"),
        Ok(midnight),
        "negative offsets without seconds"
    );
    let err = parse_time("last tuesday").unwrap_err();
    assert!(err.contains("'last tuesday' is not a time"), "{err}");
    assert!(parse_time("2026-11-01T00Z").is_err());
}

#[test]
fn arguments_parse_with_defaults_and_repeated_template_files() {
    let a = parse(&[
        "-f",
        "canary.yaml",
        "--from",
        "2026-11-01T00:00Z",
        "--template-file",
        "a.yaml",
        "--template-file",
        "b.yaml",
        "--prometheus",
        "http://127.0.0.1:9090",
        "--csv",
    ])
    .unwrap();
    assert_eq!(a.file, PathBuf::from("canary.yaml"));
    assert_eq!(
        a.template_files,
        vec![PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
    );
    assert_eq!(a.from, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    assert_eq!(a.to, None, "--to defaults to now, read at run time");
    assert_eq!(a.prometheus.as_deref(), Some("http://127.0.0.1:9090"));
    assert!(a.csv);
    assert_eq!(a.timeout, std::time::Duration::from_secs(60));
    assert_eq!(a.canary, None);
}

#[test]
fn missing_or_bad_arguments_are_usage_errors() {
    let no_file = parse(&["--from", "2026-11-01"]).unwrap_err();
    assert!(no_file.to_string().contains("--file <FILE>"), "{no_file}");
    let no_from = parse(&["-f", "c.yaml"]).unwrap_err();
    assert!(no_from.to_string().contains("--from <TIME>"), "{no_from}");
    let bad_to = parse(&["-f", "c.yaml", "--from", "2026-11-01", "--to", "soon"]).unwrap_err();
    assert!(
        bad_to.to_string().contains("'soon' is not a time"),
        "{bad_to}"
    );
    let zero = parse(&["-f", "c.yaml", "--from", "2026-11-01", "--timeout", "0s"]).unwrap_err();
    assert!(zero.to_string().contains("must be more than 0"), "{zero}");
}

#[test]
fn from_must_precede_to() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: istio\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis:\n    interval: 1m\n    threshold: 1\n    iterations: 2\n    metrics:\n    - {name: request-success-rate, thresholdRange: {min: 99}}\n",
    )
    .unwrap();
    let args = |from: &str, to: &str| {
        parse(&[
            "-f",
            file.to_str().unwrap(),
            "--from",
            from,
            "--to",
            to,
            "--prometheus",
            "http://127.0.0.1:9090",
        ])
        .unwrap()
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    let err = prepare(&args("2026-11-02", "2026-11-01"), now)
        .err()
        .unwrap();
    assert_eq!(err, "--to must be later than --from");
    // A Flagger manifest is read as is; the built-in query is rendered for its provider.
    let setup = prepare(&args("2026-11-01T00:00Z", "2026-11-01T00:05Z"), now).unwrap();
    assert_eq!(setup.ticks.len(), 5);
    assert_eq!(setup.metrics[0].address, "http://127.0.0.1:9090");
    assert!(
        setup.metrics[0]
            .query
            .contains(r#"destination_workload=~"podinfo""#),
        "{}",
        setup.metrics[0].query
    );
}

#[test]
fn canary_is_picked_by_name_when_the_file_holds_several() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.yaml");
    let one = |name: &str| {
        format!(
            "apiVersion: serin.io/v1beta1\nkind: Canary\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  provider: istio\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}\n  service: {{port: 9898}}\n  analysis:\n    interval: 1m\n    threshold: 1\n    iterations: 1\n    metrics:\n    - {{name: request-success-rate, thresholdRange: {{min: 99}}}}\n"
        )
    };
    std::fs::write(&file, format!("{}---\n{}", one("a"), one("b"))).unwrap();
    let path = file.to_str().unwrap();
    let base = ["-f", path, "--from", "2026-11-01"];
    let err = load(&parse(&base).unwrap()).err().unwrap();
    assert!(
        err.ends_with("holds several Canaries; name one with --canary"),
        "{err}"
    );
    let with = |name: &str| parse(&[&base[..], &["--canary", name]].concat()).unwrap();
    let loaded = load(&with("b")).unwrap();
    assert_eq!(loaded.canary.spec.target_ref.name, "b");
    let err = load(&with("c")).err().unwrap();
    assert!(err.ends_with("no Canary named c (--canary)"), "{err}");
}

#[test]
fn a_compared_metric_is_rendered_per_side_and_a_query_blind_to_the_side_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let canary = |query: &str| {
        format!(
            "apiVersion: serin.io/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  provider: istio\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  service: {{port: 9898}}\n  analysis:\n    interval: 1m\n    threshold: 1\n    iterations: 2\n    metrics:\n    - name: latency\n      query: '{query}'\n      compare: {{direction: increase}}\n"
        )
    };
    let run = |name: &str, query: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, canary(query)).unwrap();
        let args = parse(&[
            "-f",
            file.to_str().unwrap(),
            "--from",
            "2026-11-01T00:00Z",
            "--to",
            "2026-11-01T00:05Z",
            "--prometheus",
            "http://127.0.0.1:9090",
        ])
        .unwrap();
        prepare(&args, Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap())
    };
    let setup = run(
        "sides.yaml",
        r#"x{pod=~"{{ target }}-.*",side="{{ side }}"}"#,
    )
    .unwrap();
    let m = &setup.metrics[0];
    assert_eq!(m.query, r#"x{pod=~"podinfo-.*",side="canary"}"#);
    assert_eq!(
        m.other_query.as_deref(),
        Some(r#"x{pod=~"podinfo-primary-.*",side="primary"}"#)
    );
    let err = run("blind.yaml", r#"x{app="podinfo"}"#).err().unwrap();
    assert_eq!(
        err,
        "metric 'latency' has compare, but its query renders the same for both sides; select the side with {{ target }} or {{ side }}"
    );
}

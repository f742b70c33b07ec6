//! The Prometheus provider against a real Prometheus with backfilled data: exact values of the
//! built-in kubernetes queries, NoData (no series, and NaN from an app without traffic), a PromQL
//! error, several series, ±Inf, a stopped server and one that never answers.

mod common;

use std::time::Duration;

use common::prometheus::{Prometheus, series};
use serin::metrics::{HttpSettings, MetricError, PrometheusProvider, QueryModel, builtin};

const POD: &str = r#"kubernetes_namespace="test",kubernetes_pod_name="podinfo-7d9f8c6b5-x2x4z""#;
/// A pod that is scraped but serves no requests: its counters stay flat.
const IDLE: &str = r#"kubernetes_namespace="test",kubernetes_pod_name="idle-5c8d7b9f4-q7w2e""#;

/// 8 requests/s: 6 answered 200 and 2 answered 500 (75% success); latency buckets for
/// 100 requests/s where 98 finish under 0.5 s and all under 1 s (P99 = 750 ms).
fn podinfo_traffic() -> String {
    let mut om = String::new();
    series(
        &mut om,
        &format!(r#"http_request_duration_seconds_count{{{POD},status="200"}}"#),
        6.0,
    );
    series(
        &mut om,
        &format!(r#"http_request_duration_seconds_count{{{POD},status="500"}}"#),
        2.0,
    );
    series(
        &mut om,
        &format!(r#"http_request_duration_seconds_count{{{IDLE},status="200"}}"#),
        0.0,
    );
    for (le, per_second) in [
        ("0.1", 50.0),
        ("0.25", 90.0),
        ("0.5", 98.0),
        ("1", 100.0),
        ("+Inf", 100.0),
    ] {
        series(
            &mut om,
            &format!(r#"http_request_duration_seconds_bucket{{{POD},le="{le}"}}"#),
            per_second,
        );
    }
    om
}

fn model(target: &str) -> QueryModel {
    QueryModel {
        name: target.into(),
        namespace: "test".into(),
        target: target.into(),
        service: target.into(),
        route: target.into(),
        interval: "1m".into(),
        ..Default::default()
    }
}

fn provider(url: &str) -> PrometheusProvider {
    PrometheusProvider::new(url, HttpSettings::default()).unwrap()
}

async fn builtin_value(
    p: &PrometheusProvider,
    target: &str,
    name: &str,
) -> Result<f64, MetricError> {
    let q = model(target)
        .render(&builtin::query("kubernetes", name).unwrap())
        .unwrap();
    p.query(&q).await
}

#[tokio::test]
async fn builtin_queries_give_exact_values_and_no_data_without_traffic() {
    let prom = Prometheus::start(&podinfo_traffic());
    let p = provider(&prom.url);
    p.is_online().await.unwrap();
    let rate = builtin_value(&p, "podinfo", builtin::SUCCESS_RATE)
        .await
        .unwrap();
    assert!((rate - 75.0).abs() < 1e-9, "{rate}");
    let p99 = builtin_value(&p, "podinfo", builtin::DURATION)
        .await
        .unwrap();
    assert!((p99 - 750.0).abs() < 1e-9, "{p99}");
    // The primary's pods (three name segments after the target) are not the canary's.
    assert_eq!(
        builtin_value(&p, "podinfo-primary", builtin::SUCCESS_RATE).await,
        Err(MetricError::NoData)
    );
    assert_eq!(
        builtin_value(&p, "other", builtin::SUCCESS_RATE).await,
        Err(MetricError::NoData)
    );
    // No traffic: 0 requests / 0 requests is NaN, which is no data, not a success rate.
    assert_eq!(
        builtin_value(&p, "idle", builtin::SUCCESS_RATE).await,
        Err(MetricError::NoData)
    );
}

#[tokio::test]
async fn errors_are_told_apart() {
    let mut prom = Prometheus::start(&podinfo_traffic());
    let p = provider(&prom.url);
    let err = p.query("sum(rate(x[1m])").await.unwrap_err();
    assert!(
        matches!(&err, MetricError::Query(m) if m.starts_with("bad_data: ") && m.contains("parse error")),
        "{err:?}"
    );
    assert_eq!(
        p.query("rate(http_request_duration_seconds_count[1m])")
            .await,
        Err(MetricError::ManySeries(3))
    );
    assert_eq!(
        p.query("vector(0) / vector(0)").await,
        Err(MetricError::NoData)
    );
    assert_eq!(
        p.query("vector(1) / vector(0)").await,
        Err(MetricError::NotFinite("+Inf".into()))
    );
    assert_eq!(
        p.query("scalar(vector(-1)) / 0").await,
        Err(MetricError::NotFinite("-Inf".into()))
    );
    assert_eq!(p.query("scalar(vector(2.5))").await, Ok(2.5));
    prom.stop();
    let err = p.query("vector(1)").await.unwrap_err();
    assert!(matches!(err, MetricError::Connection(_)), "{err:?}");
    assert!(p.is_online().await.is_err());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept connections and hold them without ever answering.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let http = HttpSettings {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let p = PrometheusProvider::new(&format!("http://{addr}"), http).unwrap();
    assert_eq!(
        p.query("vector(1)").await,
        Err(MetricError::Timeout(Duration::from_millis(300)))
    );
    hold.abort();
}

/// The judge's samples: one per series of an instant vector, one per point of a subquery's
/// range, a scalar as one, and an empty answer as an empty list (the judge says no data).
#[tokio::test]
async fn samples_are_one_per_series_or_one_per_point_of_a_range() {
    let prom = Prometheus::start(&podinfo_traffic());
    let p = provider(&prom.url);
    let by_status = r#"sum by (status) (rate(http_request_duration_seconds_count{kubernetes_namespace="test"}[1m]))"#;
    let mut per_series = p.samples(by_status).await.unwrap();
    per_series.sort_by(f64::total_cmp);
    assert_eq!(per_series.len(), 2, "{per_series:?}");
    assert!((per_series[0] - 2.0).abs() < 1e-9 && (per_series[1] - 6.0).abs() < 1e-9);
    // Five minutes at a 1 m step from now: both bounds are points, so five or six samples.
    let range =
        format!(r#"rate(http_request_duration_seconds_count{{{POD},status="200"}}[1m])[5m:1m]"#);
    let points = p.samples(&range).await.unwrap();
    assert!((5..=6).contains(&points.len()), "{points:?}");
    assert!(points.iter().all(|v| (v - 6.0).abs() < 1e-9), "{points:?}");
    assert_eq!(p.samples("scalar(vector(3))").await.unwrap(), vec![3.0]);
    assert!(
        p.samples(r#"absent_metric{x="y"}"#)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        p.samples("sum(").await,
        Err(MetricError::Query(_))
    ));
}

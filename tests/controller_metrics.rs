//! Scenario (issue 6 "done when"): the real controller on serin::sim with a real Prometheus. A
//! canary whose error rate breaks the threshold is rolled back; one within it is promoted; the
//! values are in status.decisions and in serin_canary_metric_analysis.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::prometheus::{Prometheus, series};
use common::scenario::{set_image, setup_with, start_controller_with, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::{CanaryPhase, CanaryStatus, MetricTemplate, Verdict};
use serin::controller::Settings;

const POD: &str = r#"kubernetes_namespace="test",kubernetes_pod_name="podinfo-7d9f8c6b5-x2x4z""#;

/// Canary traffic: `ok` and `failed` requests per second, latency buckets for 100 requests/s.
fn traffic(ok: f64, failed: f64, buckets: &[(&str, f64)]) -> String {
    let mut om = String::new();
    series(
        &mut om,
        &format!(r#"http_request_duration_seconds_count{{{POD},status="200"}}"#),
        ok,
    );
    if failed > 0.0 {
        series(
            &mut om,
            &format!(r#"http_request_duration_seconds_count{{{POD},status="503"}}"#),
            failed,
        );
    }
    for (le, n) in buckets {
        series(
            &mut om,
            &format!(r#"http_request_duration_seconds_bucket{{{POD},le="{le}"}}"#),
            *n,
        );
    }
    om
}

const FAST: &[(&str, f64)] = &[
    ("0.1", 50.0),
    ("0.25", 100.0),
    ("0.5", 100.0),
    ("+Inf", 100.0),
];

fn analysis() -> serde_json::Value {
    json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "metrics": [
        {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}},
        {"name": "p99-latency", "interval": "1m", "thresholdRange": {"max": 500},
            "templateRef": {"name": "latency"}, "templateVariables": {"quantile": "0.99"}}
    ]}})
}

async fn start(prom: &Prometheus) -> (serin::sim::Cluster, kube::Client, Settings) {
    let (cluster, client) = setup_with(analysis()).await;
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    templates.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "latency"},
        "spec": {"provider": {"type": "prometheus", "address": prom.url},
            "query": "histogram_quantile({{ variables.quantile }}, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"}[{{ interval }}])) by (le)) * 1000"}
    })).unwrap()).await.unwrap();
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    (cluster, client, settings)
}

fn checks(st: &CanaryStatus, name: &str) -> Vec<(Option<f64>, Verdict)> {
    st.decisions
        .iter()
        .flat_map(|d| d.checks.iter())
        .filter(|c| c.name == name)
        .map(|c| (c.value, c.verdict))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_within_its_thresholds_is_promoted() {
    let prom = Prometheus::start(&traffic(100.0, 0.0, FAST));
    let (cluster, client, settings) = start(&prom).await;
    let telemetry = settings.telemetry.clone();
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    let rate = checks(&st, "request-success-rate");
    assert!(rate.len() >= 2, "{:?}", st.decisions);
    assert!(
        rate.iter()
            .all(|(v, verdict)| *v == Some(100.0) && *verdict == Verdict::Pass),
        "{rate:?}"
    );
    let p99 = checks(&st, "p99-latency");
    assert!(
        p99.iter()
            .all(|(v, verdict)| v.is_some_and(|v| (v - 247.0).abs() < 1e-9)
                && *verdict == Verdict::Pass),
        "{p99:?}"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(common::scenario::image(&primary), "podinfo:6.0.1");
    let exposed = telemetry.encode();
    assert!(
        exposed.contains(r#"serin_canary_metric_analysis{name="podinfo",namespace="test",metric="request-success-rate"} 100.0"#),
        "{exposed}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_error_rate_breaks_the_threshold_is_rolled_back() {
    let prom = Prometheus::start(&traffic(6.0, 2.0, FAST));
    let (cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    let rate = checks(&st, "request-success-rate");
    assert_eq!(
        rate.len(),
        2,
        "two failed checks reach threshold 2: {:?}",
        st.decisions
    );
    assert!(
        rate.iter()
            .all(|(v, verdict)| v.is_some_and(|v| (v - 75.0).abs() < 1e-9)
                && *verdict == Verdict::Fail),
        "{rate:?}"
    );
    assert_eq!(st.failed_checks, 2);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(
        common::scenario::image(&primary),
        "podinfo:6.0.0",
        "primary untouched"
    );
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );
    let notes = common::scenario::event_notes(&client, "CheckFailed").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("request-success-rate 75.00")),
        "{notes:?}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

/// Starts the canary's rollout with `overrides` merged into the analysis, and waits for the
/// first passed check; returns the revision the primary ran before.
async fn rollout_until_a_check_passed(
    client: &kube::Client,
    overrides: serde_json::Value,
) -> String {
    let canaries: Api<serin::api::Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": overrides})),
        )
        .await
        .unwrap();
    let c = wait_phase(client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(client, "podinfo:6.0.1", json!({})).await;
    common::scenario::wait_status(client, "a passed check", |st| {
        checks(st, "request-success-rate")
            .iter()
            .any(|(_, v)| *v == Verdict::Pass)
    })
    .await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_outage_holds_the_analysis_and_a_healthy_canary_is_still_promoted() {
    let mut prom = Prometheus::start(&traffic(100.0, 0.0, FAST));
    let (_cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let first = rollout_until_a_check_passed(&client, json!({"analysis": {"iterations": 6}})).await;
    prom.stop();
    let held =
        common::scenario::wait_status(&client, "a held tick", |st| st.held_since.is_some()).await;
    assert_eq!(
        held.failed_checks, 0,
        "an unreachable provider is not evidence against the canary"
    );
    assert_eq!(held.phase, CanaryPhase::Progressing);
    let record = held.decisions.last().unwrap();
    assert!(
        record
            .action
            .starts_with("hold: metrics provider unreachable"),
        "{}",
        record.action
    );
    assert!(
        record
            .checks
            .iter()
            .all(|c| c.verdict == Verdict::Unreachable)
    );
    let iterations = held.iterations;
    // Held for a while: no step forward, no failed check.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api: Api<serin::api::Canary> = Api::namespaced(client.clone(), "test");
    let st = api.get("podinfo").await.unwrap().status.unwrap();
    assert_eq!((st.iterations, st.failed_checks), (iterations, 0));
    let notes = common::scenario::event_notes(&client, "AnalysisHeld").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("metrics provider unreachable")),
        "{notes:?}"
    );
    prom.restart();
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    assert_eq!((st.failed_checks, st.held_since), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_outage_longer_than_the_progress_deadline_rolls_back() {
    let mut prom = Prometheus::start(&traffic(100.0, 0.0, FAST));
    let (_cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let overrides = json!({"progressDeadlineSeconds": 3, "analysis": {"iterations": 6}});
    let first = rollout_until_a_check_passed(&client, overrides).await;
    prom.stop();
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    let last = &st.decisions.last().unwrap().action;
    assert!(
        last.contains("without a verdict: metrics provider unreachable"),
        "{last}"
    );
    assert_eq!(st.failed_checks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_provider_error_fail_counts_failed_checks_as_flagger_and_the_controller_goes_on() {
    let mut prom = Prometheus::start(&traffic(100.0, 0.0, FAST));
    let (_cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let overrides = json!({"analysis": {"iterations": 6, "onProviderError": "fail"}});
    let first = rollout_until_a_check_passed(&client, overrides).await;
    prom.stop();
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    let messages: Vec<String> = st
        .decisions
        .iter()
        .flat_map(|d| d.checks.iter())
        .filter(|c| c.verdict == Verdict::Fail)
        .filter_map(|c| c.message.clone())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("provider unreachable: cannot connect")),
        "{messages:?}"
    );
    // The controller is still at work: a newer image starts a new analysis.
    let failed = st.last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.2", json!({})).await;
    common::scenario::wait_status(&client, "a new analysis", |st| {
        st.phase == CanaryPhase::Progressing && st.last_applied_spec.as_deref() != Some(&failed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_metrics_server_is_a_warning_at_first_sight() {
    // Port 9 (discard) is closed on loopback: connections are refused at once.
    let (_cluster, client) = setup_with(json!({"metricsServer": "http://127.0.0.1:9",
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 2,
            "metrics": [{"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}}]}}))
    .await;
    let _stop = start_controller_with(&client, Settings::default());
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "test");
    let warning = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("MetricsProviderUnavailable"))
        .expect("a warning event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(
        warning
            .note
            .unwrap()
            .starts_with("metric 'request-success-rate': cannot connect"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_credentials_come_from_a_secret_and_never_show() {
    use k8s_openapi::api::core::v1::Secret;
    let (_cluster, client) = setup_with(json!({"analysis": {"interval": "1s", "threshold": 1, "iterations": 1,
        "metrics": [{"name": "error-rate", "thresholdRange": {"max": 1}, "templateRef": {"name": "errors"}}]}}))
    .await;
    // A JSON endpoint that wants a bearer token and answers 0.5 only to the right one.
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let log = log.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            log.lock().unwrap().push(auth.clone());
            let rate = if auth == "Bearer t0ps3cret" {
                "0.5"
            } else {
                "99"
            };
            axum::Json(json!({"errorRate": rate}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "test");
    secrets.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "stats-auth"}, "stringData": {"token": "t0ps3cret", "address": format!("{url}/{{{{ namespace }}}}/{{{{ target }}}}")}
    })).unwrap()).await.unwrap();
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    templates.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "errors"},
        "spec": {"provider": {"type": "web", "address": "http://unused.invalid", "secretRef": {"name": "stats-auth"}}, "query": "$.errorRate"}
    })).unwrap()).await.unwrap();
    let _stop = start_controller_with(&client, Settings::default());
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    assert!(
        checks(&st, "error-rate").contains(&(Some(0.5), Verdict::Pass)),
        "{:?}",
        st.decisions
    );
    assert!(seen.lock().unwrap().iter().all(|a| a == "Bearer t0ps3cret"));
    let status_text = serde_json::to_string(&st).unwrap();
    assert!(!status_text.contains("t0ps3cret"));
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "test");
    let all =
        serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap();
    assert!(!all.contains("t0ps3cret"));
}

//! Scenario (issue 21, item 2): `analysis.baseline` with the real controller on serin::sim, the
//! official Gateway API CRDs and a real Prometheus. When the canary first gets traffic Serin
//! starts `podinfo-baseline` (the primary's version, the canary's 2 replicas) and its Service,
//! the HTTPRoute splits three ways (80/10/10, then 60/20/20) once it is ready, and the judge
//! compares the canary with the baseline, not with the warm primary: a canary 20 % slower than
//! the baseline but like the primary is rolled back; one like the baseline is promoted. After
//! either, the baseline Deployment, Service and backendRef are gone. A provider that cannot
//! split three ways is an invalid spec naming the field, and nothing is created.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::prometheus::{Prometheus, series};
use common::scenario::{
    dynamic_httproutes, install_gateway_api, set_image, setup_with, start_controller_with,
    wait_phase,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde_json::{Value, json};
use serin::api::{CanaryPhase, CanaryStatus, CheckRecord, Verdict};
use serin::controller::Settings;

/// Per-pod mean latency over the query window, per side (`{{ target }}`).
const PER_POD: &str = concat!(
    "sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_sum{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-z]+-[0-9a-z]+\"}[{{ interval }}]))",
    " / sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_count{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-z]+-[0-9a-z]+\"}[{{ interval }}]))"
);

/// Eight pods of `workload`, pod i at `seconds * (1 + (i - 3.5) %)` mean latency.
fn pods(out: &mut String, workload: &str, seconds: f64) {
    for i in 0..8 {
        let pod = format!(
            r#"kubernetes_namespace="test",kubernetes_pod_name="{workload}-7d9f8c6b5-p{i}""#
        );
        let latency = seconds * (1.0 + (f64::from(i) - 3.5) * 0.01);
        let count = format!("http_request_duration_seconds_count{{{pod}}}");
        series(out, &count, 10.0);
        let sum = format!("http_request_duration_seconds_sum{{{pod}}}");
        series(out, &sum, 10.0 * latency);
    }
}

/// The warm primary is as slow as the canary; the fresh baseline is not (or is, `canary == b`).
fn history(canary: f64, baseline: f64, primary: f64) -> String {
    let mut om = String::new();
    pods(&mut om, "podinfo", canary);
    pods(&mut om, "podinfo-baseline", baseline);
    pods(&mut om, "podinfo-primary", primary);
    om
}

fn spec() -> Value {
    json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "hosts": ["podinfo.example.com"], "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 10, "maxWeight": 20,
            "baseline": true,
            "judge": {"minEffect": 0.1, "maxPValue": 0.05, "minSamples": 5},
            "metrics": [{"name": "latency", "interval": "1m", "query": PER_POD,
                "compare": {"direction": "increase"}}]}})
}

/// Weights of (primary, canary, baseline) in the catch-all rule; baseline 0 when it has no ref.
fn weights(route: &Value) -> Option<(i64, i64, i64)> {
    let rules = route["spec"]["rules"].as_array()?;
    let refs = rules.last()?["backendRefs"].as_array()?;
    let w = |n: &str| {
        refs.iter()
            .find(|b| b["name"] == n)
            .map(|b| b["weight"].as_i64().unwrap_or(1))
    };
    Some((
        w("podinfo-primary")?,
        w("podinfo-canary")?,
        w("podinfo-baseline").unwrap_or(0),
    ))
}

#[derive(Default)]
struct Seen {
    weights: Vec<(i64, i64, i64)>,
    /// The baseline Deployment as first seen: (replicas, image, selector value of `app`).
    baseline: Option<(i32, String, String)>,
    /// The baseline Service's selector, as first seen.
    service: Option<String>,
}

/// Polls the route, the baseline Deployment and its Service every 20 ms.
fn observe(client: &kube::Client) -> Arc<Mutex<Seen>> {
    let seen: Arc<Mutex<Seen>> = Default::default();
    let (routes, log) = (dynamic_httproutes(client), seen.clone());
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    tokio::spawn(async move {
        loop {
            let route = routes.get_opt("podinfo").await.ok().flatten();
            let w = route.and_then(|r| weights(&serde_json::to_value(r).unwrap()));
            let d = deploys.get_opt("podinfo-baseline").await.ok().flatten();
            let s = services.get_opt("podinfo-baseline").await.ok().flatten();
            {
                let mut l = log.lock().unwrap();
                if let Some(w) = w
                    && l.weights.last() != Some(&w)
                {
                    l.weights.push(w);
                }
                if let Some(d) = d.filter(|_| l.baseline.is_none()) {
                    let spec = d.spec.clone().unwrap();
                    let app = spec.selector.match_labels.unwrap_or_default()["app"].clone();
                    let image = common::scenario::image(&d);
                    l.baseline = Some((spec.replicas.unwrap_or(0), image, app));
                }
                if let Some(s) = s.filter(|_| l.service.is_none()) {
                    let sel = s.spec.and_then(|s| s.selector).unwrap_or_default();
                    l.service = sel.get("app").cloned();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

fn judged(st: &CanaryStatus) -> Vec<CheckRecord> {
    st.decisions
        .iter()
        .flat_map(|d| d.checks.iter())
        .filter(|c| c.name == "latency")
        .cloned()
        .collect()
}

/// Every route the controller wrote keeps the invariants: the weights sum to 100 and the
/// baseline has the canary's weight or none.
fn assert_three_way(seen: &Seen) {
    for &(p, c, b) in &seen.weights {
        assert_eq!(p + c + b, 100, "{:?}", seen.weights);
        assert!(b == 0 || b == c, "{:?}", seen.weights);
    }
    assert!(seen.weights.contains(&(80, 10, 10)), "{:?}", seen.weights);
    assert_eq!(
        seen.weights.last(),
        Some(&(100, 0, 0)),
        "{:?}",
        seen.weights
    );
}

/// After the analysis: no baseline Deployment, Service or backendRef.
async fn assert_baseline_gone(client: &kube::Client) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = deploys.get_opt("podinfo-baseline").await.unwrap();
        let s = services.get_opt("podinfo-baseline").await.unwrap();
        if d.is_none() && s.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "baseline left: {d:?} {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let route = dynamic_httproutes(client).get("podinfo").await.unwrap();
    let text = serde_json::to_string(&route).unwrap();
    assert!(!text.contains("podinfo-baseline"), "{text}");
}

/// The controller's stop handle, the cluster, its client, what was seen, and the final status.
type Run = (
    tokio::sync::oneshot::Sender<()>,
    serin::sim::Cluster,
    kube::Client,
    Arc<Mutex<Seen>>,
    CanaryStatus,
);

async fn run(prom: &Prometheus, end: CanaryPhase) -> Run {
    let (cluster, client) = setup_with(spec()).await;
    install_gateway_api(&client).await;
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    let stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let seen = observe(&client);
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, end, Some(&first)).await;
    assert_baseline_gone(&client).await;
    (stop, cluster, client, seen, c.status.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_worse_than_a_fresh_baseline_is_rolled_back_and_the_baseline_removed() {
    // 120 ms against a fresh baseline at 100 ms; the warm primary is at 119 ms (a comparison
    // with it would pass: +0.8 %).
    let prom = Prometheus::start(&history(0.120, 0.100, 0.119));
    let (_stop, cluster, client, seen, st) = run(&prom, CanaryPhase::Failed).await;
    let judged = judged(&st);
    assert_eq!(judged.len(), 2, "threshold 2: {judged:?}");
    for r in &judged {
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        let n = r.judge.clone().unwrap();
        assert_eq!(n.baseline, "baseline");
        assert_eq!((n.canary_samples, n.baseline_samples), (8, 8));
        assert!((n.baseline_median.unwrap() - 0.100).abs() < 1e-6, "{n:?}");
        assert!((n.effect.unwrap() - 0.2).abs() < 1e-6, "{n:?}");
        assert!(
            r.bound.as_deref().unwrap().starts_with("vs baseline:"),
            "{r:?}"
        );
    }
    // Taken out, so no lock is held across the awaits below.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    // The old version, fresh pods, as many as the canary (2), on labels of its own.
    assert_eq!(
        seen.baseline,
        Some((
            2,
            "podinfo:6.0.0".to_string(),
            "podinfo-baseline".to_string()
        ))
    );
    assert_eq!(seen.service.as_deref(), Some("podinfo-baseline"));
    assert_three_way(&seen);
    let notes = common::scenario::event_notes(&client, "CheckFailed").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("vs baseline 0.1000: +20.0%")),
        "{notes:?}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_like_the_baseline_is_promoted_and_the_baseline_removed() {
    let prom = Prometheus::start(&history(0.1005, 0.100, 0.080));
    let (_stop, _cluster, client, seen, st) = run(&prom, CanaryPhase::Succeeded).await;
    let judged = judged(&st);
    assert!(judged.len() >= 2, "{:?}", st.decisions);
    for r in &judged {
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.judge.clone().unwrap().baseline, "baseline");
    }
    // Taken out, so no lock is held across the awaits below.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_three_way(&seen);
    assert!(seen.weights.contains(&(60, 20, 20)), "{:?}", seen.weights);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(common::scenario::image(&primary), "podinfo:6.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_on_a_router_that_cannot_split_three_ways_is_an_invalid_spec() {
    let (_cluster, client) = setup_with(json!({"provider": "contour",
        "analysis": {"iterations": null, "stepWeight": 10, "baseline": true}}))
    .await;
    let _stop = start_controller_with(&client, Settings::default());
    assert_eq!(
        common::scenario::invalid_spec_message(&client).await,
        "spec.analysis.baseline: provider 'contour' cannot split traffic three ways (primary, canary, baseline); use gatewayapi, istio or linkerd, or remove baseline"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
    assert!(deploys.get_opt("podinfo-baseline").await.unwrap().is_none());
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    assert!(services.get_opt("podinfo-primary").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_that_turns_ready_gets_its_share_without_waiting_for_the_next_step() {
    // A 20 s interval: the share must come from the baseline's own watch event, not a step.
    let mut s = spec();
    s["analysis"]["interval"] = json!("20s");
    s["analysis"]["metrics"] = json!(null);
    let (_cluster, client) = setup_with(s).await;
    install_gateway_api(&client).await;
    let _stop = start_controller_with(&client, Settings::default());
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let seen = observe(&client);
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Progressing, Some(&first)).await;
    let at = |w: (i64, i64, i64)| {
        let seen = seen.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !seen.lock().unwrap().weights.contains(&w) {
                assert!(tokio::time::Instant::now() < deadline, "never saw {w:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::Instant::now()
        }
    };
    // The first step (one interval after the scale-up) starts the baseline without a share...
    let started = at((90, 10, 0)).await;
    // ...and its pods are ready 100 ms later: the share follows well within the interval.
    let shared = at((80, 10, 10)).await;
    assert!(
        shared - started < Duration::from_secs(5),
        "the share came {:?} after the start",
        shared - started
    );
}

//! Scenario (issue 21, item 4): the real controller on serin::sim with a real Prometheus. A new
//! version passes its canary analysis and is promoted; under full traffic on the primary a
//! regression appears (the primary's pods start answering 503s) and the post-promotion watch
//! reverts the primary to its previous pod template within the window, sending the rollback
//! alert, the post-rollout webhook and the RolledBack event.

mod common;

use std::time::Duration;

use common::prometheus::{Prometheus, now, series};
use common::receiver;
use common::scenario::{
    image, set_image, setup_with, start_controller_with, wait_phase, wait_status,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use serin::api::{AlertProvider, CanaryPhase, CanaryStatus, Verdict};
use serin::controller::Settings;

/// The canary's pods (`podinfo-<rs>-<pod>`) and the primary's (`podinfo-primary-<rs>-<pod>`):
/// the built-in kubernetes queries tell them apart by `{{ target }}`.
const CANARY_POD: &str =
    r#"kubernetes_namespace="test",kubernetes_pod_name="podinfo-7d9f8c6b5-x2x4z""#;
const PRIMARY_POD: &str =
    r#"kubernetes_namespace="test",kubernetes_pod_name="podinfo-primary-5f6d7c8b9-abcde""#;

fn healthy() -> String {
    let mut om = String::new();
    for pod in [CANARY_POD, PRIMARY_POD] {
        series(
            &mut om,
            &format!(r#"http_request_duration_seconds_count{{{pod},status="200"}}"#),
            100.0,
        );
    }
    om
}

/// 503s from the primary's pods from now on (a counter that starts now), 50 per second.
fn primary_errors_from_now() -> String {
    use std::fmt::Write as _;
    let start = (now() as i64 / 5) * 5 - 5;
    let mut om = String::new();
    for i in 0..=180 {
        let _ = writeln!(
            om,
            r#"http_request_duration_seconds_count{{{PRIMARY_POD},status="503"}} {} {}"#,
            50.0 * (i * 5) as f64,
            start + i * 5
        );
    }
    om
}

fn watch_records(st: &CanaryStatus) -> Vec<(Option<f64>, Verdict)> {
    st.decisions
        .iter()
        .filter(|d| d.phase == CanaryPhase::Succeeded)
        .flat_map(|d| d.checks.iter())
        .map(|c| (c.value, c.verdict))
        .collect()
}

fn condition<'a>(st: &'a CanaryStatus, kind: &str) -> Option<(&'a str, &'a str)> {
    st.conditions
        .iter()
        .find(|c| c.r#type == kind)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_after_promotion_is_reverted_within_the_window() {
    let mut prom = Prometheus::start(&healthy());
    let hooks = receiver::ok().await;
    let rate = |interval: &str| json!({"name": "request-success-rate", "interval": interval, "thresholdRange": {"min": 99}});
    let (cluster, client) = setup_with(json!({"analysis": {
        "interval": "1s", "threshold": 2, "iterations": 2,
        "metrics": [rate("1m")],
        "alerts": [{"name": "pager", "severity": "error", "providerRef": {"name": "pager"}}],
        "webhooks": [
            {"name": "after", "type": "post-rollout", "url": format!("{}/post-rollout", hooks.url)},
            {"name": "events", "type": "event", "url": format!("{}/event", hooks.url)}
        ],
        "postPromotion": {"window": "2m", "metrics": [rate("20s")], "action": "rollback"}
    }}))
    .await;
    let providers: Api<AlertProvider> = Api::namespaced(client.clone(), "test");
    providers.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "AlertProvider", "metadata": {"name": "pager"},
        "spec": {"type": "webhook", "address": format!("{}/pager", hooks.url)}
    })).unwrap()).await.unwrap();
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(image(&primary), "podinfo:6.0.1", "promoted");
    // The watch checks the primary under full traffic: healthy at first.
    let st = wait_status(&client, "a passed watch tick", |st| {
        watch_records(st)
            .iter()
            .any(|(v, verdict)| *v == Some(100.0) && *verdict == Verdict::Pass)
    })
    .await;
    assert_eq!(st.phase, CanaryPhase::Succeeded);
    assert_eq!(condition(&st, "Watching"), Some(("True", "Watching")));
    let kept = st.post_promotion.as_ref().expect("watch state in status");
    assert_eq!(kept.previous_revision, first);
    assert_eq!(
        kept.previous_template["spec"]["containers"][0]["image"],
        "podinfo:6.0.0"
    );
    let until = kept.until.expect("window end");
    // The regression shows up only now, after the promotion.
    prom.add_data(&primary_errors_from_now());
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    assert!(
        chrono::Utc::now() < until,
        "reverted within the window (ends {until})"
    );
    let failed: Vec<_> = watch_records(&st)
        .into_iter()
        .filter(|(_, v)| *v == Verdict::Fail)
        .collect();
    assert_eq!(failed.len(), 2, "threshold 2: {:?}", st.decisions);
    assert!(
        failed.iter().all(|(v, _)| v.is_some_and(|v| v < 99.0)),
        "{failed:?}"
    );
    let last = &st.decisions.last().unwrap().action;
    assert!(
        last.starts_with("roll back after promotion: post-promotion checks failed 2 times"),
        "{last}"
    );
    assert_eq!(condition(&st, "Watching"), Some(("False", "RolledBack")));
    assert_eq!(st.last_promoted_spec.as_deref(), Some(first.as_str()));
    // The primary runs the previous template again, under its previous revision.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let primary = deploys.get("podinfo-primary").await.unwrap();
        let rev = primary
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("serin.io/revision").cloned());
        if image(&primary) == "podinfo:6.0.0" && rev.as_deref() == Some(first.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "primary not restored: {primary:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // All traffic stayed on the primary: the apex Service still selects its pods.
    let services: Api<Service> = Api::namespaced(client.clone(), "test");
    let apex = services.get("podinfo").await.unwrap();
    let selector = apex.spec.unwrap().selector.unwrap();
    assert_eq!(
        selector.get("app").map(String::as_str),
        Some("podinfo-primary")
    );
    // Once the primary runs it, the template leaves status; 6.0.1 is not rolled out again.
    let st = wait_status(&client, "the template dropped", |st| {
        st.post_promotion.is_none()
    })
    .await;
    assert_eq!(st.phase, CanaryPhase::Failed);
    // The rollback alert, the post-rollout webhook and the RolledBack event were sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hits = hooks.hits();
        let pager = hits.iter().any(|h| {
            h.path == "/pager"
                && h.body
                    .to_string()
                    .contains("Post-promotion watch failed, podinfo.test rolled back")
        });
        let event = hits.iter().any(|h| {
            h.path == "/event"
                && h.body
                    .to_string()
                    .contains("Rolling back podinfo.test after promotion")
        });
        let post = hits.iter().filter(|h| h.path == "/post-rollout").count();
        // One post-rollout call after the promotion, one after the rollback.
        if pager && event && post >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pager {pager}, event {event}, post-rollout calls {post}: {:?}",
            hooks.paths()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notes = common::scenario::event_notes(&client, "RolledBack").await;
    assert!(
        notes.iter().any(|n| n.contains("primary back to revision")),
        "{notes:?}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

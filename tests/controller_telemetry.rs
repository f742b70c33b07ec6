//! Scenario: `/metrics` of a controller that ran a canary with a webhook and a default alert
//! provider shows the families operators dashboard on (issue 9), and `/readyz` turns ready after
//! the first list of Canaries.

mod common;

use common::receiver;
use common::scenario::{set_image, setup_with, start_controller_with, wait_phase};
use serde_json::json;
use serin::api::{AlertProviderType, AlertSeverity, CanaryPhase};
use serin::controller::Settings;
use serin::notify::Notifier;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_canary_families() {
    let hooks = receiver::ok().await;
    let (_cluster, client) = setup_with(json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 1,
        "webhooks": [{"name": "smoke", "type": "rollout", "url": format!("{}/smoke", hooks.url)}]}}))
    .await;
    let chat = receiver::ok().await;
    let settings = Settings {
        default_alerts: Some((
            Notifier {
                kind: AlertProviderType::Webhook,
                url: format!("{}/alerts", chat.url),
                channel: None,
                username: None,
                proxy: None,
                key: None,
                timeout: serin::notify::TIMEOUT,
            },
            AlertSeverity::Info,
        )),
        ..Default::default()
    };
    let addr = serin::telemetry::serve("127.0.0.1:0".parse().unwrap(), settings.telemetry.clone())
        .await
        .unwrap();
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    // Alerts are sent in the background: wait for the promotion's.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !chat.hits().iter().any(|h| h.body["phase"] == "Succeeded") {
        assert!(tokio::time::Instant::now() < deadline, "no Succeeded alert");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let info = format!(
        r#"serin_info{{version="{}",mesh_provider="kubernetes"}} 1"#,
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&info), "missing {info}\n{text}");
    for line in [
        r#"serin_canary_total{namespace="test"} 1"#,
        r#"serin_canary_status{name="podinfo",namespace="test"} 1"#,
        r#"serin_canary_weight{workload="podinfo",namespace="test"} 0"#,
        r#"serin_canary_successes_total{name="podinfo",namespace="test",deployment_strategy="blue_green",analysis_status="completed"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    for family in [
        "serin_canary_duration_seconds_count{name=\"podinfo\",namespace=\"test\"}",
        "serin_reconcile_duration_seconds_count{result=\"ok\"}",
        "serin_reconcile_total{result=\"ok\"}",
        "serin_alerts_total{kind=\"webhook\",outcome=\"success\"}",
        "serin_webhook_calls_total{kind=\"rollout\",outcome=\"success\"}",
        // Every API call is counted: the one status write per tick, the watches, the primary.
        "serin_kube_api_requests_total{verb=\"patch\",resource=\"canaries.serin.io/status\",code=\"200\"}",
        "serin_kube_api_requests_total{verb=\"watch\",resource=\"deployments.apps\",code=\"200\"}",
        "serin_kube_api_requests_total{verb=\"patch\",resource=\"deployments.apps\",code=\"201\"}",
    ] {
        assert!(text.contains(family), "missing {family}\n{text}");
    }
    assert!(
        !text.contains("serin_canary_failures_total{"),
        "no rollback happened"
    );
}

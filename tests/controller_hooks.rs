//! Scenarios (issue 8 "done when"): the real controller on serin::sim calls each webhook type at
//! the right moment with the right phase (the ordered list of calls is asserted), gates through
//! `serin loadtester` hold and release promotion, rollback gates roll back while Progressing and
//! while Waiting, and alerts reach their providers with the Secret's address.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver::{self, Receiver};
use common::scenario::{
    initialized_then_new_image, set_image, setup_with, start_controller, wait_phase, wait_status,
};
use serde_json::json;
use serin::api::CanaryPhase;

const TYPES: [&str; 7] = [
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
];

fn hooks(url: &str) -> serde_json::Value {
    let mut hooks: Vec<serde_json::Value> = TYPES
        .iter()
        .map(|t| json!({"name": t, "type": t, "url": format!("{url}/{t}")}))
        .collect();
    hooks.push(json!({"name": "events", "type": "event", "url": format!("{url}/event")}));
    json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "webhooks": hooks}})
}

/// (hook, phase) of every call to the hooks named in `names`, in order.
fn calls(r: &Receiver, names: &[&str]) -> Vec<(String, String)> {
    r.hits()
        .into_iter()
        .map(|h| {
            let phase = h.body["phase"].as_str().unwrap_or_default().to_string();
            (h.path.trim_start_matches('/').to_string(), phase)
        })
        .filter(|(name, _)| names.contains(&name.as_str()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hook_type_fires_at_its_moment_with_its_phase() {
    // The rollback hook answers 404 ("not now"); all others say yes.
    let r = receiver::start(Arc::new(|path, _| {
        Some(if path == "/rollback" { 404 } else { 200 })
    }))
    .await;
    let (cluster, client) = setup_with(hooks(&r.url)).await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    assert_eq!(calls(&r, &TYPES), [], "initialisation calls no gating hook");
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    // Post-rollout hooks go out right after the status write, in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !calls(&r, &["post-rollout"])
        .iter()
        .any(|(_, p)| p == "Succeeded")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no post-rollout call"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Blue/green has no weight steps, so confirm-traffic-increase is never asked.
    let in_order = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "post-rollout",
    ];
    let seq = calls(&r, &in_order);
    assert_eq!(
        seq[..2],
        pairs(&[
            ("confirm-rollout", "Initialized"),
            ("pre-rollout", "Progressing")
        ])[..],
        "{seq:?}"
    );
    assert_eq!(
        seq.last(),
        pairs(&[("post-rollout", "Succeeded")]).first(),
        "{seq:?}"
    );
    // Two analysis ticks call the rollout hook; the last of them also asks confirm-promotion
    // (hooks of one tick are called concurrently, so those two may arrive in either order).
    let mut middle = seq[2..seq.len() - 1].to_vec();
    assert_eq!(
        middle[0],
        pairs(&[("rollout", "Progressing")])[0],
        "{seq:?}"
    );
    middle.sort();
    assert_eq!(
        middle,
        pairs(&[
            ("confirm-promotion", "Progressing"),
            ("rollout", "Progressing"),
            ("rollout", "Progressing"),
        ]),
        "{seq:?}"
    );
    // The rollback hook is asked at every analysis tick (concurrently with that tick's others).
    let rollbacks = calls(&r, &["rollback"]);
    assert!(rollbacks.len() >= 3, "{rollbacks:?}");
    assert!(rollbacks.iter().all(|(_, phase)| phase == "Progressing"));
    // Event hooks are posted in the background: give the last Event's post time to arrive.
    let promoted = |r: &Receiver| {
        r.hits().iter().any(|h| {
            h.body["metadata"]["eventMessage"]
                .as_str()
                .is_some_and(|m| m.starts_with("Promotion completed"))
        })
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !promoted(&r) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let events: Vec<serde_json::Value> = r
        .hits()
        .into_iter()
        .filter(|h| h.path == "/event")
        .map(|h| h.body)
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["metadata"]["eventMessage"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("New revision detected")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Promotion completed")),
        "{messages:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["metadata"]["eventType"] == "Normal"
                && e["metadata"]["timestamp"].is_string())
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

/// `serin loadtester` in-process on a free port; its base URL.
async fn loadtester() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serin::loadtester::serve(listener, 4));
    url
}

async fn post(url: &str) {
    let status = reqwest::Client::new()
        .post(url)
        .json(&json!({"name": "podinfo", "namespace": "test"}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{url}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_promotion_gate_holds_until_opened_and_load_is_generated() {
    let lt = loadtester().await;
    let target = receiver::ok().await;
    let (_cluster, client) = setup_with(json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "webhooks": [
        {"name": "load", "type": "rollout", "url": format!("{lt}/"),
            "metadata": {"type": "cmd", "cmd": format!("hey -z 2s -q 5 -c 1 {}/load", target.url)}},
        {"name": "gate", "type": "confirm-promotion", "url": format!("{lt}/gate/check")}
    ]}}))
    .await;
    let _stop = start_controller(&client);
    let first = initialized_then_new_image(&client).await;
    wait_phase(&client, CanaryPhase::WaitingPromotion, Some(&first)).await;
    // Held: still waiting a few ticks later.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let st = wait_status(&client, "still waiting", |_| true).await;
    assert_eq!(st.phase, CanaryPhase::WaitingPromotion);
    post(&format!("{lt}/gate/open")).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let load = target.paths().iter().filter(|p| *p == "/load").count();
    assert!(
        load >= 2,
        "the hey task ran against the target: {load} requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opened_rollback_gate_rolls_back_while_progressing() {
    let lt = loadtester().await;
    let (_cluster, client) = setup_with(
        json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 1000, "webhooks": [
            {"name": "rollback", "type": "rollback", "url": format!("{lt}/rollback/check")}
        ]}}),
    )
    .await;
    let _stop = start_controller(&client);
    let first = initialized_then_new_image(&client).await;
    wait_status(&client, "progressing", |st| {
        st.phase == CanaryPhase::Progressing && st.iterations >= 1
    })
    .await;
    post(&format!("{lt}/rollback/open")).await;
    wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opened_rollback_gate_rolls_back_while_waiting() {
    let lt = loadtester().await;
    let (_cluster, client) = setup_with(
        json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "webhooks": [
            {"name": "start", "type": "confirm-rollout", "url": format!("{lt}/gate/check")},
            {"name": "rollback", "type": "rollback", "url": format!("{lt}/rollback/check")}
        ]}}),
    )
    .await;
    let _stop = start_controller(&client);
    let first = initialized_then_new_image(&client).await;
    // Waiting: the new revision is held before its rollout starts.
    wait_status(&client, "waiting", |st| st.phase == CanaryPhase::Waiting).await;
    post(&format!("{lt}/rollback/open")).await;
    let st = wait_status(&client, "failed", |st| st.phase == CanaryPhase::Failed).await;
    assert_ne!(
        st.last_applied_spec.as_deref(),
        Some(first.as_str()),
        "the held revision is the failed one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_their_providers_by_severity_and_a_bad_secret_is_an_event() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    use serin::api::AlertProvider;
    let chat = receiver::ok().await;
    let (cluster, client) = setup_with(
        json!({"analysis": {"interval": "1s", "threshold": 1, "iterations": 1, "alerts": [
            {"name": "all", "severity": "info", "providerRef": {"name": "slack"}},
            {"name": "errors-only", "severity": "error", "providerRef": {"name": "pager"}},
            {"name": "broken", "providerRef": {"name": "no-address"}}
        ]}}),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "test");
    for (name, data) in [
        (
            "slack-url",
            json!({"address": format!("{}/slack", chat.url)}),
        ),
        (
            "pager-url",
            json!({"address": format!("{}/pager", chat.url)}),
        ),
        ("empty", json!({"token": "x"})),
    ] {
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let providers: Api<AlertProvider> = Api::namespaced(client.clone(), "test");
    for (name, secret, kind) in [
        ("slack", "slack-url", "slack"),
        ("pager", "pager-url", "webhook"),
        ("no-address", "empty", "slack"),
    ] {
        providers.create(&PostParams::default(), &serde_json::from_value(json!({
            "apiVersion": "serin.io/v1beta1", "kind": "AlertProvider", "metadata": {"name": name},
            "spec": {"type": kind, "channel": "#deploys", "secretRef": {"name": secret}}
        })).unwrap()).await.unwrap();
    }
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !chat.paths().contains(&"/slack".to_string()) {
        assert!(tokio::time::Instant::now() < deadline, "no Slack alert");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let slack = chat
        .hits()
        .into_iter()
        .find(|h| h.path == "/slack")
        .unwrap()
        .body;
    assert_eq!(slack["channel"], "#deploys");
    assert_eq!(slack["attachments"][0]["author_name"], "podinfo.test");
    assert_eq!(slack["attachments"][0]["color"], "good");
    assert!(
        slack["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Initialization done!")
    );
    assert!(
        !chat.paths().contains(&"/pager".to_string()),
        "info alerts do not reach an error-only provider"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let notes = common::scenario::event_notes(&client, "AlertFailed").await;
        if let Some(n) = notes.first() {
            assert_eq!(
                n,
                "alert 'broken': Secret test/empty of AlertProvider no-address has no key 'address'"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no AlertFailed event"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_receiver_that_never_answers_does_not_hold_up_the_canary() {
    use kube::api::{Api, PostParams};
    use serin::api::AlertProvider;
    let hang = receiver::start(Arc::new(|_, _| None)).await;
    let (_cluster, client) = setup_with(
        json!({"analysis": {"interval": "1s", "threshold": 1, "iterations": 1,
        "alerts": [{"name": "all", "providerRef": {"name": "hang"}}]}}),
    )
    .await;
    let providers: Api<AlertProvider> = Api::namespaced(client.clone(), "test");
    providers.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "AlertProvider", "metadata": {"name": "hang"},
        "spec": {"type": "slack", "address": format!("{}/hang", hang.url)}
    })).unwrap()).await.unwrap();
    let _stop = start_controller(&client);
    let started = tokio::time::Instant::now();
    let first = initialized_then_new_image(&client).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    // Each alert may wait 3 x 10 s on this receiver; the rollout did not.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(!hang.paths().is_empty(), "alerts were attempted");
}

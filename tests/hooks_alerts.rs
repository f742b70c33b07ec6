//! Webhook calls and alert sends against local receivers: retries after a 500, 204 as success,
//! a receiver that never answers (timeout), no redirects followed, HMAC signatures; alerts retried
//! (but not after a 4xx) and given up with a clear error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver;
use serde_json::json;
use serin::analysis::HookOutcome;
use serin::api::{AlertProviderType, AlertSeverity, CanaryWebhook};
use serin::hooks::{self, Prepared};
use serin::notify::{Notification, Notifier};

use common::hooks::{hook, subject};

async fn call(h: &CanaryWebhook, key: Option<&[u8]>) -> HookOutcome {
    let p = Prepared {
        hook: h,
        key: key.map(<[u8]>::to_vec),
    };
    hooks::call(&p, &hooks::payload(&subject(), h, None)).await
}

#[tokio::test]
async fn a_500_is_retried_and_204_is_success() {
    let r = receiver::start(Arc::new(|path, n| match path {
        "/flaky" if n == 0 => Some(500),
        "/empty" => Some(204),
        "/moved" => Some(302),
        "/down" => Some(503),
        _ => Some(200),
    }))
    .await;
    assert_eq!(
        call(
            &hook(format!("{}/flaky", r.url), json!({"retries": 2})),
            None
        )
        .await,
        HookOutcome::Success
    );
    assert_eq!(
        call(&hook(format!("{}/empty", r.url), json!({})), None).await,
        HookOutcome::Success
    );
    assert_eq!(
        call(&hook(format!("{}/moved", r.url), json!({})), None).await,
        HookOutcome::Status(302)
    );
    assert_eq!(
        call(
            &hook(format!("{}/down", r.url), json!({"retries": 1})),
            None
        )
        .await,
        HookOutcome::Status(503)
    );
    assert_eq!(
        r.paths(),
        ["/flaky", "/flaky", "/empty", "/moved", "/down", "/down"]
    );
    let body = &r.hits()[0].body;
    assert_eq!(
        body,
        &json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc"})
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_unreachable_is_told() {
    let r = receiver::start(Arc::new(|_, _| None)).await;
    let started = tokio::time::Instant::now();
    let outcome = call(&hook(format!("{}/hang", r.url), json!({})), None).await;
    assert_eq!(
        outcome,
        HookOutcome::Unreachable("no answer before the timeout".into())
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let outcome = call(&hook("http://127.0.0.1:9/x".into(), json!({})), None).await;
    assert!(
        matches!(&outcome, HookOutcome::Unreachable(m) if m.contains("refused")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn calls_are_signed_when_a_key_is_given() {
    let r = receiver::ok().await;
    call(
        &hook(format!("{}/signed", r.url), json!({"metadata": {"a": "b"}})),
        Some(b"k3y"),
    )
    .await;
    let hit = &r.hits()[0];
    assert_eq!(
        hit.headers["x-serin-signature-256"],
        serin::signing::signature(b"k3y", &hit.raw)
    );
    call(&hook(format!("{}/plain", r.url), json!({})), None).await;
    assert!(!r.hits()[1].headers.contains_key("x-serin-signature-256"));
}

fn notifier(url: String) -> Notifier {
    Notifier {
        kind: AlertProviderType::Webhook,
        url,
        channel: None,
        username: None,
        proxy: None,
        key: Some(b"k".to_vec()),
        timeout: Duration::from_millis(300),
    }
}

fn note() -> Notification {
    Notification {
        name: "podinfo".into(),
        namespace: "test".into(),
        phase: "Failed".into(),
        severity: AlertSeverity::Error,
        message: "Rolling back".into(),
        cluster: None,
    }
}

#[tokio::test]
async fn alerts_are_retried_and_given_up_with_a_clear_error() {
    let r = receiver::start(Arc::new(|path, n| match path {
        "/flaky" if n == 0 => Some(500),
        "/broken" => Some(500),
        "/revoked" => Some(404),
        "/hang" => None,
        _ => Some(200),
    }))
    .await;
    notifier(format!("{}/flaky", r.url))
        .send(&note())
        .await
        .unwrap();
    assert_eq!(r.paths(), ["/flaky", "/flaky"]);
    let hit = &r.hits()[1];
    assert_eq!(
        hit.headers["x-serin-signature-256"],
        serin::signing::signature(b"k", &hit.raw)
    );
    assert_eq!(
        notifier(format!("{}/broken", r.url)).send(&note()).await,
        Err("Webhook alert not delivered after 3 attempts: HTTP 500".into())
    );
    assert_eq!(
        notifier(format!("{}/revoked", r.url)).send(&note()).await,
        Err("Webhook alert not delivered after 1 attempt: HTTP 404".into()),
        "a revoked chat webhook stays revoked: no retry"
    );
    assert_eq!(r.paths().iter().filter(|p| *p == "/revoked").count(), 1);
    assert_eq!(
        notifier(format!("{}/hang", r.url)).send(&note()).await,
        Err("Webhook alert not delivered after 3 attempts: no answer before the timeout".into())
    );
}

async fn loadtester(max_tasks: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serin::loadtester::serve(listener, max_tasks));
    url
}

async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn loadtester_gates_task_types_and_limits() {
    let lt = loadtester(1).await;
    let who = json!({"name": "podinfo", "namespace": "test"});
    assert_eq!(
        post(&format!("{lt}/gate/approve"), who.clone()).await.0,
        200
    );
    assert_eq!(post(&format!("{lt}/gate/halt"), who.clone()).await.0, 403);
    assert_eq!(post(&format!("{lt}/gate/check"), who.clone()).await.0, 403);
    assert_eq!(post(&format!("{lt}/gate/open"), who.clone()).await.0, 202);
    assert_eq!(post(&format!("{lt}/gate/check"), who.clone()).await.0, 200);
    let other = json!({"name": "other", "namespace": "test"});
    assert_eq!(
        post(&format!("{lt}/gate/check"), other).await.0,
        403,
        "gates are per canary"
    );
    assert_eq!(post(&format!("{lt}/gate/close"), who.clone()).await.0, 202);
    assert_eq!(post(&format!("{lt}/gate/check"), who.clone()).await.0, 403);
    assert_eq!(
        post(&format!("{lt}/rollback/check"), who.clone()).await.0,
        403
    );
    assert_eq!(
        post(&format!("{lt}/rollback/open"), who.clone()).await.0,
        202
    );
    assert_eq!(
        post(&format!("{lt}/rollback/check"), who.clone()).await.0,
        200
    );

    let unknown = json!({"name": "podinfo", "namespace": "test", "metadata": {"type": "jmeter", "cmd": "run x"}});
    assert_eq!(
        post(&format!("{lt}/"), unknown).await,
        (400, "unknown task type jmeter".into())
    );
    let target = receiver::ok().await;
    let task =
        |cmd: String| json!({"name": "podinfo", "namespace": "test", "metadata": {"cmd": cmd}});
    let long = task(format!("hey -z 3s -q 2 -c 1 {}/a", target.url));
    assert_eq!(post(&format!("{lt}/"), long.clone()).await.0, 202);
    assert_eq!(
        post(&format!("{lt}/"), long).await,
        (202, "task already running for podinfo.test".into())
    );
    let second = task(format!("hey -z 3s -q 2 -c 1 {}/b", target.url));
    assert_eq!(
        post(&format!("{lt}/"), second).await.0,
        429,
        "one task at a time here"
    );
    let health = reqwest::get(format!("{lt}/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

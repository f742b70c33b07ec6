//! Webhook calls and alert sends against local receivers: retries after a 500, 204 as success,
//! a receiver that never answers (timeout), no redirects followed, HMAC signatures; alerts retried
//! and given up with a clear error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver;
use serde_json::json;
use serin::analysis::HookOutcome;
use serin::api::{AlertProviderType, AlertSeverity, CanaryWebhook};
use serin::hooks::{self, Prepared, Subject};
use serin::notify::{Notification, Notifier};

fn hook(url: String, extra: serde_json::Value) -> CanaryWebhook {
    let mut v = json!({"name": "h", "url": url, "timeout": "500ms"});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

fn subject() -> Subject {
    Subject {
        name: "podinfo".into(),
        namespace: "test".into(),
        phase: "Progressing".into(),
        checksum: "abc".into(),
    }
}

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
        &json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc", "metadata": {}})
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
        notifier(format!("{}/hang", r.url)).send(&note()).await,
        Err("Webhook alert not delivered after 3 attempts: no answer before the timeout".into())
    );
}

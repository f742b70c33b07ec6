//! Webhook retries and payloads against real receivers on 127.0.0.1 that count every call: only
//! as many retries as `retries` asks, none after a 4xx (408/429 excepted), transport errors and
//! 5xx retried, one call bounded in time, event hooks shaped as Flagger's, TLS verified unless
//! `disableTLS`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver::{self, Receiver};
use serde_json::json;
use serin::analysis::HookOutcome;
use serin::api::CanaryWebhook;
use serin::hooks::{self, EventInfo, Prepared, Retry};
use tokio::time::Instant;

use common::hooks::{hook, subject};

async fn call(h: &CanaryWebhook) -> HookOutcome {
    let p = Prepared { hook: h, key: None };
    hooks::call(&p, &hooks::payload(&subject(), h, None)).await
}

fn hits(r: &Receiver, path: &str) -> usize {
    r.paths().iter().filter(|p| *p == path).count()
}

#[tokio::test]
async fn retries_are_what_the_hook_asks_and_never_after_an_answer() {
    let r = receiver::start(Arc::new(|path, n| match path {
        "/down" | "/down-twice" => Some(503),
        "/no" => Some(403),
        "/missing" => Some(404),
        "/busy" if n < 2 => Some(429),
        "/slow" if n < 1 => Some(408),
        "/unimplemented" => Some(501),
        _ => Some(200),
    }))
    .await;
    let at =
        |path: &str, retries: i32| hook(format!("{}{path}", r.url), json!({"retries": retries}));

    assert_eq!(call(&at("/down", 0)).await, HookOutcome::Status(503));
    assert_eq!(hits(&r, "/down"), 1, "retries: 0 is one call");
    assert_eq!(call(&at("/down-twice", 2)).await, HookOutcome::Status(503));
    assert_eq!(
        hits(&r, "/down-twice"),
        3,
        "a 5xx is retried `retries` times"
    );
    assert_eq!(call(&at("/no", 3)).await, HookOutcome::Status(403));
    assert_eq!(call(&at("/missing", 3)).await, HookOutcome::Status(404));
    assert_eq!(
        (hits(&r, "/no"), hits(&r, "/missing")),
        (1, 1),
        "a 4xx is an answer"
    );
    assert_eq!(call(&at("/busy", 3)).await, HookOutcome::Success);
    assert_eq!(hits(&r, "/busy"), 3, "429 means not now");
    assert_eq!(call(&at("/slow", 1)).await, HookOutcome::Success);
    assert_eq!(hits(&r, "/slow"), 2, "408 means not now");
    assert_eq!(
        call(&at("/unimplemented", 2)).await,
        HookOutcome::Status(501)
    );
    assert_eq!(hits(&r, "/unimplemented"), 1, "501 stays so");
}

#[tokio::test]
async fn a_call_that_got_no_answer_is_retried() {
    // The first request is held forever (a timeout), the second answered.
    let r = receiver::start(Arc::new(|_, n| (n > 0).then_some(200))).await;
    let h = hook(
        format!("{}/hang-once", r.url),
        json!({"retries": 1, "timeout": "300ms"}),
    );
    assert_eq!(call(&h).await, HookOutcome::Success);
    assert_eq!(hits(&r, "/hang-once"), 2);
    // Nobody listens on port 9: refused at once, retried, still unreachable.
    let started = Instant::now();
    let h = hook("http://127.0.0.1:9/x".into(), json!({"retries": 2}));
    let outcome = call(&h).await;
    assert!(
        matches!(&outcome, HookOutcome::Unreachable(m) if m.contains("refused")),
        "{outcome:?}"
    );
    // Two pauses of at least half the backoff: 125 ms + 250 ms.
    assert!(started.elapsed() >= Duration::from_millis(375));
}

#[tokio::test]
async fn one_call_is_bounded_by_timeouts_pauses_and_the_hard_cap() {
    let r = receiver::start(Arc::new(|_, _| None)).await;
    let h = hook(
        format!("{}/hang", r.url),
        json!({"retries": 3, "timeout": "200ms"}),
    );
    let started = Instant::now();
    assert_eq!(
        call(&h).await,
        HookOutcome::Unreachable("no answer before the timeout".into())
    );
    let took = started.elapsed();
    assert_eq!(hits(&r, "/hang"), 4);
    // 4 × 200 ms of timeouts plus pauses of at most 250 + 500 + 1000 ms, with room for a slow host.
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_millis(2550 + 1000), "{took:?}");

    // The hard cap wins over many retries: 10 retries of 300 ms cannot fit in one second.
    let capped = hook(
        format!("{}/capped", r.url),
        json!({"retries": 10, "timeout": "300ms"}),
    );
    let retry = Retry {
        first_pause: Duration::from_millis(10),
        max_pause: Duration::from_millis(10),
        max_call: Duration::from_secs(1),
    };
    let p = Prepared {
        hook: &capped,
        key: None,
    };
    let started = Instant::now();
    let outcome = hooks::call_with(&p, &hooks::payload(&subject(), &capped, None), retry).await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, HookOutcome::Unreachable(_)),
        "{outcome:?}"
    );
    assert!(took < Duration::from_millis(1000 + 400), "{took:?}");
    let n = hits(&r, "/capped");
    assert!((2..=4).contains(&n), "{n} attempts");
}

#[tokio::test]
async fn event_hooks_get_flaggers_payload() {
    let r = receiver::ok().await;
    let h = hook(
        format!("{}/event", r.url),
        json!({"type": "event", "metadata": {"cluster": "eu-1"}}),
    );
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00.250Z")
        .unwrap()
        .to_utc();
    let event = EventInfo::new(
        "New revision detected! Scaling up podinfo.test",
        "Normal",
        at,
    );
    let p = [Prepared {
        hook: &h,
        key: None,
    }];
    let outcomes = hooks::call_all(&p, &subject(), Some(&event)).await;
    assert_eq!(outcomes["h"], HookOutcome::Success);
    assert_eq!(
        r.hits()[0].body,
        json!({
            "name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc",
            "metadata": {
                "cluster": "eu-1",
                "eventMessage": "New revision detected! Scaling up podinfo.test",
                "eventType": "Normal",
                "timestamp": "1772366400250"
            }
        })
    );
    assert_eq!(r.hits()[0].headers["content-type"], "application/json");
    assert!(r.hits()[0].headers["user-agent"].starts_with("serin/"));
}

#[tokio::test]
async fn tls_is_verified_unless_disable_tls() {
    let server = common::tls::self_signed();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let strict = call(&hook(url.clone(), json!({}))).await;
    assert!(
        matches!(&strict, HookOutcome::Unreachable(m) if m.contains("certificate")),
        "{strict:?}"
    );
    // The handshake is accepted; s_server then never answers the POST.
    let lax = call(&hook(url, json!({"disableTLS": true}))).await;
    assert_eq!(
        lax,
        HookOutcome::Unreachable("no answer before the timeout".into())
    );
}

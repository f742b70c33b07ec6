//! The rendered pages pass the well-formedness check and carry the DOM the browser tests and the
//! live updates rely on (the dashboard contract's ids, classes and data attributes).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::detail::{self, EventRow, Extras, Outcome};
use super::html::{Frame, page};
use super::overview::{self, Filter};
use super::wellformed::check;
use crate::api::Canary;

fn now() -> DateTime<Utc> {
    "2026-11-29T12:01:00Z".parse().unwrap()
}

fn rich_canary() -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 50,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}],
                "webhooks": [{"name": "smoke <test>", "type": "pre-rollout", "url": "http://flagger-loadtester.test/?token=x"}]}},
        "status": {"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1,
            "lastTransitionTime": "2026-11-29T11:55:00Z", "lastStepTime": "2026-11-29T12:00:40Z",
            "decisions": [
                {"time": "2026-11-29T12:00:00Z", "phase": "Progressing", "weight": 10, "action": "advance weight 0 -> 10",
                    "checks": [{"name": "request-success-rate", "value": 99.5, "bound": ">= 99", "verdict": "Pass"},
                               {"name": "smoke <test>", "verdict": "Pass"}]},
                {"time": "2026-11-29T12:00:40Z", "phase": "Progressing", "weight": 20, "action": "advance weight 10 -> 20 & <check>",
                    "checks": [{"name": "request-success-rate", "value": 97.0, "bound": ">= 99", "verdict": "Fail", "message": "below \"99\""}]}
            ]}
    }))
    .unwrap()
}

#[test]
fn the_overview_page_is_well_formed_and_has_the_contracts_dom() {
    let list = vec![rich_canary()];
    let rows = overview::rows(&list, &Filter::default(), now());
    let html = page(
        "Canaries",
        &overview::body(&rows, &["test".into()], &Filter::default(), true),
        &Frame::default(),
    );
    check(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
    for needle in [
        r#"<table id="canaries">"#,
        r#"<tr data-canary="test/podinfo" data-phase="Progressing">"#,
        r#"<td class="phase"><span class="badge phase-progressing">Progressing</span>"#,
        r#"<td class="weight" data-canary-weight="20"><div class="bar" role="img" aria-label="primary 80%, canary 20%">"#,
        r#"<a href="/canaries/test/podinfo">"#,
        r#"<span class="pct">20%</span>"#,
    ] {
        assert!(html.contains(needle), "{needle} missing in\n{html}");
    }
    let empty = page(
        "Canaries",
        &overview::body(&[], &[], &Filter::default(), false),
        &Frame::default(),
    );
    check(&empty).unwrap();
}

#[test]
fn the_detail_page_is_well_formed_and_has_the_contracts_dom() {
    let extras = Extras {
        events: Ok(vec![EventRow {
            time: "2026-11-29T12:00:40Z".into(),
            kind: "Warning".into(),
            reason: "Synced".into(),
            note: "check <failed> & more".into(),
        }]),
        actions_csrf: Some("c5rf".into()),
        outcome: Some(Outcome {
            refused: true,
            message: r#"user "jane" may not patch"#.into(),
        }),
    };
    let frame = Frame {
        csrf: "c5rf".into(),
        login: true,
        signed_in: true,
    };
    let html = page(
        "test/podinfo",
        &detail::body(&rich_canary(), &extras, now()),
        &frame,
    );
    check(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
    for needle in [
        "<h1>test/podinfo</h1>",
        r#"<p id="action-result" role="alert""#,
        r#"<span id="phase" data-phase="Progressing" class="badge phase-progressing">Progressing</span>"#,
        r#"<span id="canary-weight" data-canary-weight="20">20%</span>"#,
        r#"<svg id="weight-chart" role="img" aria-label=""#,
        r#"<table id="checks">"#,
        r#"<tr class="check" data-check="request-success-rate">"#,
        r#"<table id="webhooks">"#,
        "http://flagger-loadtester.test/</code>",
        r#"<table id="events">"#,
        "check &lt;failed&gt; &amp; more",
        r#"<table id="decisions">"#,
        r#"<tr class="decision">"#,
        r#"<dl id="spec">"#,
        r#"<form class="action" method="post" action="/canaries/test/podinfo/action"><input type="hidden" name="csrf" value="c5rf"><button type="submit" name="action" value="abort">Abort</button></form>"#,
    ] {
        assert!(html.contains(needle), "{needle} missing in\n{html}");
    }
    assert!(
        !html.contains("token=x"),
        "a webhook's query string is not shown"
    );
    assert_eq!(html.matches(r#"<tr class="decision">"#).count(), 2);
    assert_eq!(html.matches(r#"<form class="action""#).count(), 4);
    let read_only = Extras {
        events: Err("events.events.k8s.io is forbidden".into()),
        actions_csrf: None,
        outcome: None,
    };
    let read_only = detail::body(&rich_canary(), &read_only, now());
    assert!(read_only.contains("The Events could not be read: events.events.k8s.io is forbidden"));
    assert!(!read_only.contains("<form"));
    check(&page("t", &read_only, &Frame::default())).unwrap();
}

#[test]
fn the_login_page_is_well_formed_and_has_the_contracts_form() {
    use super::Mode;
    for (mode, actions) in [
        (Mode::Controller, true),
        (Mode::Controller, false),
        (Mode::Local, true),
    ] {
        let html = page(
            "Log in",
            &super::pages::login_body(mode, actions, "t0k"),
            &Frame::default(),
        );
        check(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
        assert!(html.contains(r#"<form id="login" method="post" action="/login"><input id="token" name="token" type="password">"#));
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="t0k">"#));
    }
}

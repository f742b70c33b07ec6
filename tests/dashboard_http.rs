//! The dashboard over plain HTTP against serin::sim: the controller's dashboard (fed by its own
//! Canary cache) lists a Canary, renders its page, streams a change over /events and refuses
//! actions without a CSRF token or a bearer token; `serin dashboard`'s mode (the kubeconfig's
//! identity) sets the action annotation, and shows the API server's refusal as one sentence.

mod common;
#[path = "dashboard_http/web.rs"]
mod web;

use std::time::Duration;

use common::scenario::{set_image, setup_with, start_controller_with};
use kube::api::Api;
use serde_json::json;
use serin::api::Canary;
use serin::controller::{CanaryFeed, Settings};
use serin::dashboard::{Dashboard, Mode, Options, own_feed, serve};

use web::{Child, get, post, read_stream_until, session, wait_for_page};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_dashboard_lists_renders_streams_and_guards_actions() {
    let (_cluster, client) = setup_with(json!({})).await;
    let feed = CanaryFeed::default();
    let options = Options {
        mode: Mode::Controller,
        actions: true,
    };
    let dashboard = Dashboard::new(feed.clone(), client.clone(), options).unwrap();
    let addr = serve("127.0.0.1:0".parse().unwrap(), dashboard)
        .await
        .unwrap();
    let _stop = start_controller_with(
        &client,
        Settings {
            canary_feed: Some(feed),
            ..Default::default()
        },
    );

    let overview = wait_for_page(&format!("http://{addr}/"), r#"data-phase="Initialized""#).await;
    assert!(
        overview.contains(r#"<tr data-canary="test/podinfo" data-phase="Initialized">"#),
        "{overview}"
    );
    assert!(overview.contains(r#"<a href="/canaries/test/podinfo">"#));
    let filtered = get(&format!("http://{addr}/?namespace=other"), None).await;
    assert!(!filtered.body.contains(r#"data-canary="test/podinfo""#));

    let detail = get(&format!("http://{addr}/canaries/test/podinfo"), None).await;
    assert_eq!(detail.status, 200);
    for needle in [
        "<h1>test/podinfo</h1>",
        r#"<svg id="weight-chart""#,
        r#"<table id="events">"#,
        r#"<dl id="spec">"#,
    ] {
        assert!(detail.body.contains(needle), "{needle} in {}", detail.body);
    }
    assert_eq!(
        get(&format!("http://{addr}/canaries/test/nothing"), None)
            .await
            .status,
        404
    );
    let css = get(&format!("http://{addr}/assets/dashboard.css"), None).await;
    assert!(css.status == 200 && css.body.contains("prefers-color-scheme"));

    // The stream sends the current rows, then the rollout's change.
    let mut stream = reqwest::get(format!("http://{addr}/events")).await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let first = read_stream_until(&mut stream, r#""phase":"Initialized""#).await;
    assert!(first.contains("event: canary"), "{first}");
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let change = read_stream_until(&mut stream, r#""phase":"Progressing""#).await;
    assert!(
        change.contains(r#""namespace":"test","name":"podinfo""#),
        "{change}"
    );

    // Actions: no CSRF token, a cross-site origin, then no bearer token.
    let action = "/canaries/test/podinfo/action";
    let refused = post(addr, action, "action=abort", None, &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains(r#"<p id="action-result" role="alert""#),
        "{}",
        refused.body
    );
    let (cookie, csrf) = session(addr, "/login").await;
    let form = format!("action=abort&csrf={csrf}");
    let foreign = post(
        addr,
        action,
        &form,
        Some(&cookie),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let anonymous = post(addr, action, &form, Some(&cookie), &[]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous.body.contains(r#"<a href="/login">"#),
        "{}",
        anonymous.body
    );
    let annotations = Api::<Canary>::namespaced(client.clone(), "test")
        .get("podinfo")
        .await
        .unwrap()
        .metadata
        .annotations;
    assert!(
        !annotations
            .unwrap_or_default()
            .contains_key("serin.io/action"),
        "no refused action was applied"
    );

    // Log in stores the token in an HttpOnly cookie and never shows it.
    let login = post(
        addr,
        "/login",
        &format!("csrf={csrf}&token=abc.def"),
        Some(&cookie),
        &[],
    )
    .await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert!(
        login
            .set_cookie
            .iter()
            .any(|c| c.starts_with("serin_token=abc.def;") && c.contains("HttpOnly"))
    );
    let page = get(
        &format!("http://{addr}/"),
        Some(&format!("{cookie}; serin_token=abc.def")),
    )
    .await;
    assert!(!page.body.contains("abc.def") && page.body.contains("Log out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serin_dashboards_actions_use_the_kubeconfigs_identity() {
    let (cluster, _admin) = setup_with(json!({})).await;
    // The kubeconfig of a person, told apart by the sim by its User-Agent.
    let mut config = cluster.config();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("jane-laptop"),
    ));
    let jane = kube::Client::try_from(config).unwrap();
    let canaries: Api<Canary> = Api::namespaced(jane.clone(), "test");
    let (feed, watch) = own_feed(canaries.clone());
    let _watch = tokio::spawn(watch);
    let options = Options {
        mode: Mode::Local,
        actions: true,
    };
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        Dashboard::new(feed, jane, options).unwrap(),
    )
    .await
    .unwrap();
    wait_for_page(&format!("http://{addr}/"), r#"data-canary="test/podinfo""#).await;

    let (cookie, csrf) = session(addr, "/login").await;
    let action = "/canaries/test/podinfo/action";
    let done = post(
        addr,
        action,
        &format!("action=pause&csrf={csrf}"),
        Some(&cookie),
        &[],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains(r#"<p id="action-result" role="status""#),
        "{}",
        done.body
    );
    let value = canaries
        .get("podinfo")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()["serin.io/action"]
        .clone();
    assert!(value.starts_with("pause@"), "{value}");
    assert!(done.body.contains(&value), "the page names the value set");

    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        st.set_user("jane");
        st.deny("jane", "serin.io", "canaries", "patch");
    }
    let refused = post(
        addr,
        action,
        &format!("action=abort&csrf={csrf}"),
        Some(&cookie),
        &[],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains(r#"User &quot;jane&quot; cannot patch resource &quot;canaries&quot; in API group &quot;serin.io&quot; in the namespace &quot;test&quot;"#),
        "{}",
        refused.body
    );
    let after = canaries
        .get("podinfo")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()["serin.io/action"]
        .clone();
    assert_eq!(after, value, "the refused abort changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_dashboard_has_no_action_buttons_and_answers_404_to_actions() {
    let (_cluster, client) = setup_with(json!({})).await;
    let (feed, watch) = own_feed(Api::namespaced(client.clone(), "test"));
    let _watch = tokio::spawn(watch);
    let options = Options {
        mode: Mode::Controller,
        actions: false,
    };
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        Dashboard::new(feed, client, options).unwrap(),
    )
    .await
    .unwrap();
    let page = wait_for_page(
        &format!("http://{addr}/canaries/test/podinfo"),
        "<h1>test/podinfo</h1>",
    )
    .await;
    assert!(!page.contains(r#"class="action""#), "{page}");
    let (cookie, csrf) = session(addr, "/login").await;
    let off = post(
        addr,
        "/canaries/test/podinfo/action",
        &format!("action=abort&csrf={csrf}"),
        Some(&cookie),
        &[],
    )
    .await;
    assert_eq!(off.status, 404, "{}", off.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_controller_only_a_user_allowed_to_patch_the_canary_may_act() {
    let (cluster, client) = setup_with(json!({})).await;
    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        st.add_token("jane-token", "jane", &["devs"]);
        st.add_token("bob-token", "bob", &[]);
        st.grant("devs", "serin.io", "canaries", "patch");
    }
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let (feed, watch) = own_feed(canaries.clone());
    let _watch = tokio::spawn(watch);
    let options = Options {
        mode: Mode::Controller,
        actions: true,
    };
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        Dashboard::new(feed, client, options).unwrap(),
    )
    .await
    .unwrap();
    wait_for_page(&format!("http://{addr}/"), r#"data-canary="test/podinfo""#).await;
    let (cookie, csrf) = session(addr, "/login").await;
    let action = "/canaries/test/podinfo/action";
    let form = format!("action=abort&csrf={csrf}");

    let bob = post(
        addr,
        action,
        &form,
        Some(&format!("{cookie}; serin_token=bob-token")),
        &[],
    )
    .await;
    assert_eq!(bob.status, 403, "{}", bob.body);
    assert!(
        bob.body.contains(r#"<p id="action-result" role="alert">Refused: user &quot;bob&quot; may not patch canaries.serin.io &quot;podinfo&quot; in namespace &quot;test&quot;.</p>"#),
        "{}",
        bob.body
    );
    assert!(
        !bob.body.contains("bob-token"),
        "the token never appears on a page"
    );
    let stranger = post(
        addr,
        action,
        &form,
        Some(&cookie),
        &[("authorization", "Bearer who-knows")],
    )
    .await;
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    assert!(!stranger.body.contains("who-knows"));
    assert!(
        canaries
            .get("podinfo")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .is_empty()
    );

    let jane = post(
        addr,
        action,
        &form,
        Some(&format!("{cookie}; serin_token=jane-token")),
        &[],
    )
    .await;
    assert_eq!(jane.status, 200, "{}", jane.body);
    assert!(
        jane.body.contains(r#"<p id="action-result" role="status""#),
        "{}",
        jane.body
    );
    let value = canaries
        .get("podinfo")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()["serin.io/action"]
        .clone();
    assert!(value.starts_with("abort@"), "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serin_dashboard_prints_its_url_and_serves_the_kubeconfigs_canaries() {
    use std::io::BufRead;
    let (cluster, _client) = setup_with(json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_serin"))
            .args([
                "dashboard",
                "-n",
                "test",
                "--addr",
                "127.0.0.1:0",
                "--kubeconfig",
            ])
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serin dashboard starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the URL line within 20 s")
        .unwrap()
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("no URL line: {line:?}"));
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    wait_for_page(url, r#"data-canary="test/podinfo""#).await;
}

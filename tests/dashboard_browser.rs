//! Scenario (issue 22): the dashboard in a real headless chromium, served by `serin controller
//! --dashboard-addr ... --dashboard-actions` (the built binary) on an embedded cluster during a
//! real Gateway API canary run with a metric check. The overview lists the Canary and its weight
//! follows the HTTPRoute step by step without a reload; the detail page shows the checks and the
//! decisions; an abort clicked by a user without `patch` on the Canary is refused with one clear
//! sentence, and the same click by a user granted it rolls the canary back. Screenshots of both
//! pages go to target/ (reviewed copies live in docs/ for the README).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::browser::Chromium;
use common::scenario::{
    create_app_and_canary, install_gateway_api, set_image, start_cluster, wait_phase,
};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use serin::api::{Canary, CanaryPhase, MetricTemplate};

/// How long the browser may take to show what the cluster already shows.
const LIVE: Duration = Duration::from_secs(15);
/// The row of our Canary on the overview.
const ROW: &str = r#"tr[data-canary="test/podinfo"]"#;
/// A viewer's token: authenticated, granted nothing.
const VIEWER_TOKEN: &str = "viewer-0f3c9a1e5d";
/// An operator's token: granted `patch` on canaries.serin.io.
const OPERATOR_TOKEN: &str = "operator-7b2e4d6a8c";

/// `serin controller` as a process, killed by PID when dropped; its log is printed if the test
/// failed, so a failing run says what the controller and the dashboard did.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- serin controller log (last lines) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

/// A free port on 127.0.0.1 for the dashboard (the controller is told the address up front).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_controller(kubeconfig: &Path, dir: &Path, port: u16) -> Controller {
    let log = dir.join("controller.log");
    let child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["controller", "--namespace", "test", "--log-level", "info"])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--dashboard-addr", &format!("127.0.0.1:{port}")])
        .arg("--dashboard-actions")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("serin controller starts");
    Controller { child, log }
}

/// Polls the dashboard's overview until it answers 200 (30 s at most).
async fn wait_dashboard(base: &str) {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = http.get(format!("{base}/")).send().await;
        if answer.as_ref().is_ok_and(|a| a.status().is_success()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard at {base}/ never answered 200: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stats endpoint of the `web` metric provider: a steady 0.5 % error rate (a passing check).
async fn start_stats() -> String {
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"errorRate": 0.5})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn routes_api(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

/// The canary backend's weight in the route's first rule naming it.
fn canary_weight(route: &Value) -> Option<i64> {
    route["spec"]["rules"].as_array()?.iter().find_map(|r| {
        r["backendRefs"]
            .as_array()?
            .iter()
            .find(|b| b["name"] == "podinfo-canary")
            .map(|b| b["weight"].as_i64().unwrap_or(1))
    })
}

/// The cluster, the running controller with its dashboard, and a browser.
struct Setup {
    client: kube::Client,
    cluster: serin::sim::Cluster,
    base: String,
    browser: Chromium,
    _controller: Controller,
    _dir: tempfile::TempDir,
}

/// A Gateway API canary stepping 5 % every 2 s up to 95 %: the 38 s it needs to promote leave
/// the browser's actions (about 10 s, more on a busy machine) well inside the rollout. One metric
/// check (the `web` provider) runs on every step.
async fn setup() -> Setup {
    let (cluster, client) = start_cluster().await;
    install_gateway_api(&client).await;
    let stats = start_stats().await;
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    templates.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "errors"},
        "spec": {"provider": {"type": "web", "address": stats}, "query": "$.errorRate"}
    })).unwrap()).await.unwrap();
    create_app_and_canary(&client, &json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "hosts": ["podinfo.example.com"], "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "2s", "threshold": 2, "iterations": null, "stepWeight": 5, "maxWeight": 95,
            "metrics": [{"name": "error-rate", "templateRef": {"name": "errors"}, "thresholdRange": {"max": 1}, "interval": "1m"}]}}))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let port = free_port();
    let controller = start_controller(&kubeconfig, dir.path(), port);
    let base = format!("http://127.0.0.1:{port}");
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    wait_dashboard(&base).await;
    let browser = Chromium::launch().await;
    Setup {
        client,
        cluster,
        base,
        browser,
        _controller: controller,
        _dir: dir,
    }
}

/// Records every distinct canary weight the route shows from now on (polled every 20 ms).
fn observe_route(client: &kube::Client) -> Arc<Mutex<Vec<i64>>> {
    let routes = routes_api(client);
    common::routes::observe(
        move || {
            let routes = routes.clone();
            async move {
                let route = routes.get_opt("podinfo").await.ok()??;
                Some(serde_json::to_value(route).unwrap())
            }
        },
        |route| canary_weight(route).unwrap_or(-1),
    )
}

/// In the loaded page: a marker that only survives if the page is never reloaded, and a log of
/// every distinct weight the overview's row shows (however the script updates the row).
const WATCH_WEIGHTS: &str = r#"(() => {
  window.serinLoadMarker = "loaded-once";
  const read = () => document.querySelector('tr[data-canary="test/podinfo"] td.weight')
    ?.getAttribute("data-canary-weight");
  window.serinSeenWeights = [read()];
  new MutationObserver(() => {
    const w = read();
    if (w !== window.serinSeenWeights[window.serinSeenWeights.length - 1]) {
      window.serinSeenWeights.push(w);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  return true;
})()"#;

/// The overview lists the Canary, and while the rollout steps its weight follows the route's,
/// live: the same sequence of weights, in a page that was never reloaded.
async fn overview_follows_the_route(s: &Setup) {
    let b = &s.browser;
    b.open(&format!("{}/", s.base)).await;
    let row = format!("table#canaries {ROW}");
    assert_eq!(
        b.attribute(&row, "data-phase").await.as_deref(),
        Some("Initialized")
    );
    let cell = format!("{ROW} td.weight");
    assert_eq!(
        b.attribute(&cell, "data-canary-weight").await.as_deref(),
        Some("0")
    );
    assert!(
        b.eval::<bool>(&format!(
            r#"document.querySelector('{ROW} a[href="/canaries/test/podinfo"]') !== null"#
        ))
        .await,
        "the row links to the Canary's page"
    );
    assert!(b.eval::<bool>(WATCH_WEIGHTS).await);

    let route_seen = observe_route(&s.client);
    set_image(&s.client, "podinfo:6.0.1", json!({})).await;
    b.wait_for(
        &format!(
            "Number(document.querySelector('{cell}').getAttribute('data-canary-weight')) >= 15"
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        b.eval::<Option<String>>("window.serinLoadMarker")
            .await
            .as_deref(),
        Some("loaded-once"),
        "the page was reloaded; the weight must change live"
    );
    let shown: Vec<String> = b.eval("window.serinSeenWeights").await;
    let route = route_caught_up(&route_seen, shown.len()).await;
    assert!(
        shown.len() >= 4 && route.starts_with(&shown),
        "the overview showed the weights {shown:?}; the route went through {route:?}"
    );
    assert_eq!(shown[..4], ["0", "5", "10", "15"]);
    assert_weight_cell_is_consistent(b, &cell).await;
    assert_eq!(
        b.attribute(&row, "data-phase").await.as_deref(),
        Some("Progressing")
    );
    b.screenshot(&target_png("dashboard-overview.png")).await;
}

/// The route's weights so far once it has shown at least `n` (10 s at most): the status, which
/// the page shows, is written just before the route moves.
async fn route_caught_up(seen: &Mutex<Vec<i64>>, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let route: Vec<String> = seen.lock().unwrap().iter().map(i64::to_string).collect();
        if route.len() >= n || tokio::time::Instant::now() >= deadline {
            return route;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The weight cell's attribute, its text and its bar's label say the same weight.
async fn assert_weight_cell_is_consistent(b: &Chromium, cell: &str) {
    let now: Value = b
        .eval(&format!(
            r#"(() => {{ const c = document.querySelector('{cell}');
              return {{w: c.getAttribute("data-canary-weight"), text: c.textContent,
                       label: c.querySelector('.bar[role="img"]')?.getAttribute("aria-label")}}; }})()"#
        ))
        .await;
    let w: i64 = now["w"].as_str().unwrap().parse().unwrap();
    assert!(
        now["text"].as_str().unwrap().contains(&format!("{w}%")),
        "{now}"
    );
    assert_eq!(
        now["label"],
        json!(format!("primary {}%, canary {w}%", 100 - w)),
        "{now}"
    );
}

fn target_png(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
}

/// Following the row's link, the detail page shows the Canary's checks (the metric, per tick),
/// its decisions and the weight chart, and its weight keeps moving live.
async fn detail_shows_checks_and_decisions(s: &Setup) {
    let b = &s.browser;
    b.click(r#"a[href="/canaries/test/podinfo"]"#).await;
    b.wait_for(
        "location.pathname === '/canaries/test/podinfo' && document.readyState === 'complete'",
        LIVE,
    )
    .await;
    assert_eq!(b.text("h1").await.trim(), "test/podinfo");
    assert_eq!(
        b.attribute("#phase", "data-phase").await.as_deref(),
        Some("Progressing")
    );
    let checks: usize = b
        .eval(r#"document.querySelectorAll('#checks tr.check[data-check="error-rate"]').length"#)
        .await;
    assert!(checks >= 1, "no row for the check error-rate in #checks");
    let decisions: usize = b
        .eval("document.querySelectorAll('#decisions tr.decision').length")
        .await;
    assert!(decisions >= 2, "{decisions} rows in #decisions");
    let chart = b.attribute("svg#weight-chart", "aria-label").await;
    assert!(
        chart.is_some_and(|l| !l.is_empty()),
        "the chart has a label"
    );
    for table in ["#webhooks", "#events", "dl#spec"] {
        b.text(table).await;
    }
    // Taken as loaded, while the chart and the step agree with the weight shown.
    b.screenshot(&target_png("dashboard-detail.png")).await;
    let loaded: i64 = b
        .eval("Number(document.querySelector('#canary-weight').getAttribute('data-canary-weight'))")
        .await;
    b.wait_for(
        &format!(
            "Number(document.querySelector('#canary-weight').getAttribute('data-canary-weight')) > {loaded}"
        ),
        LIVE,
    )
    .await;
}

/// What the answer to an Abort click said: its HTTP status, `#action-result`'s role and text.
struct ActionResult {
    status: u16,
    role: Option<String>,
    text: String,
}

/// Clicks Abort on the detail page and waits for the answer's `#action-result`.
async fn click_abort(s: &Setup) -> ActionResult {
    let b = &s.browser;
    b.open(&format!("{}/canaries/test/podinfo", s.base)).await;
    b.click(r#"form.action button[name="action"][value="abort"]"#)
        .await;
    b.wait_for(
        "location.pathname === '/canaries/test/podinfo/action' && document.querySelector('#action-result') !== null",
        LIVE,
    )
    .await;
    let page: String = b.eval("document.documentElement.outerHTML").await;
    for token in [VIEWER_TOKEN, OPERATOR_TOKEN] {
        assert!(!page.contains(token), "a token is in the page");
    }
    ActionResult {
        // The status of the navigation that loaded this page (the form's POST).
        status: b
            .eval("performance.getEntriesByType('navigation')[0].responseStatus")
            .await,
        role: b.attribute("#action-result", "role").await,
        text: b.text("#action-result").await.trim().to_string(),
    }
}

async fn action_annotation(client: &kube::Client) -> Option<String> {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let c = canaries.get("podinfo").await.unwrap();
    c.metadata.annotations?.get("serin.io/action").cloned()
}

/// A bearer token the API server authenticates as `viewer`, who may not patch Canaries: the
/// abort is refused with one sentence naming the user, the verb and the Canary, and nothing
/// happens to the rollout.
async fn an_unauthorised_abort_is_refused(s: &Setup) {
    s.cluster
        .state()
        .lock()
        .unwrap()
        .add_token(VIEWER_TOKEN, "viewer", &["viewers"]);
    let auth = format!("Bearer {VIEWER_TOKEN}");
    s.browser
        .set_extra_headers(&[("Authorization", &auth)])
        .await;
    let refused = click_abort(s).await;
    assert_eq!(
        (refused.status, refused.role.as_deref()),
        (403, Some("alert")),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains(
            r#"user "viewer" may not patch canaries.serin.io "podinfo" in namespace "test""#
        ),
        "{}",
        refused.text
    );
    assert_eq!(action_annotation(&s.client).await, None);
    s.browser.set_extra_headers(&[]).await;
}

/// Logs in through the /login form with `token` and waits for the redirect to the overview.
async fn login(s: &Setup, token: &str) {
    let b = &s.browser;
    b.open(&format!("{}/login", s.base)).await;
    b.type_text("form#login input#token[type=password]", token)
        .await;
    b.click(r#"form#login [type="submit"]"#).await;
    b.wait_for(
        &format!(
            "location.href === '{}/' && document.readyState === 'complete'",
            s.base
        ),
        LIVE,
    )
    .await;
}

/// An operator granted `patch` on canaries.serin.io logs in through the form and clicks Abort:
/// the Canary fails and its route goes back to the primary, and the page shows it live.
async fn an_authorised_abort_rolls_back(s: &Setup) {
    {
        let state = s.cluster.state();
        let mut state = state.lock().unwrap();
        state.add_token(OPERATOR_TOKEN, "jane", &["operators"]);
        state.grant("jane", "serin.io", "canaries", "patch");
    }
    login(s, OPERATOR_TOKEN).await;
    let done = click_abort(s).await;
    assert_eq!(
        (done.status, done.role.as_deref()),
        (200, Some("status")),
        "{}",
        done.text
    );
    let c = wait_phase(&s.client, CanaryPhase::Failed, None).await;
    assert_eq!(c.status.unwrap().canary_weight, 0);
    let route = serde_json::to_value(routes_api(&s.client).get("podinfo").await.unwrap()).unwrap();
    assert_eq!(canary_weight(&route), Some(0), "{route:#}");
    let b = &s.browser;
    b.wait_for(
        "document.querySelector('#phase').getAttribute('data-phase') === 'Failed' \
         && document.querySelector('#canary-weight').getAttribute('data-canary-weight') === '0'",
        LIVE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_rollout_live_and_lets_only_an_allowed_user_abort_it() {
    let s = setup().await;
    overview_follows_the_route(&s).await;
    detail_shows_checks_and_decisions(&s).await;
    an_unauthorised_abort_is_refused(&s).await;
    an_authorised_abort_rolls_back(&s).await;
}

//! The browser driver (tests/common/browser.rs) against a tiny page of our own served by axum on
//! 127.0.0.1: a real mouse click runs the page's script and changes its text and an attribute,
//! typed keys reach an input, extra headers reach the server, and a screenshot is a PNG. A
//! machine without chromium fails here with a message naming scripts/test.sh (shown with a
//! program name that does not exist).

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;
use common::browser::Chromium;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>self-test</title></head>
<body>
  <p id="out" data-state="idle">before</p>
  <button id="go" type="button">Go</button>
  <label for="name">Name</label> <input id="name" type="text">
  <script>
    document.getElementById("go").addEventListener("click", () => {
      const out = document.getElementById("out");
      out.textContent = "clicked";
      out.dataset.state = "done";
    });
  </script>
</body></html>"#;

/// The page, and `/headers` echoing the request's `x-probe` header as text.
async fn serve() -> String {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/headers",
            get(|h: HeaderMap| async move {
                let probe = h.get("x-probe").and_then(|v| v.to_str().ok());
                Html(format!("<p id=\"probe\">{}</p>", probe.unwrap_or("none")))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_clicks_types_reads_sends_headers_and_takes_a_png_screenshot() {
    let base = serve().await;
    let browser = Chromium::launch().await;
    browser.open(&format!("{base}/")).await;
    assert_eq!(browser.text("#out").await, "before");
    assert_eq!(
        browser.attribute("#out", "data-state").await.as_deref(),
        Some("idle")
    );
    assert_eq!(browser.attribute("#out", "data-missing").await, None);

    browser.click("#go").await;
    browser
        .wait_for(
            "document.querySelector('#out').textContent === 'clicked'",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        browser.attribute("#out", "data-state").await.as_deref(),
        Some("done")
    );

    browser.type_text("#name", "héllo serin").await;
    let typed: String = browser.eval("document.querySelector('#name').value").await;
    assert_eq!(typed, "héllo serin");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-selftest.png");
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{} is not a PNG ({} bytes)",
        shot.display(),
        png.len()
    );

    browser.open(&format!("{base}/headers")).await;
    assert_eq!(browser.text("#probe").await, "none");
    browser.set_extra_headers(&[("x-probe", "42")]).await;
    browser.open(&format!("{base}/headers")).await;
    assert_eq!(browser.text("#probe").await, "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_fails_at_its_deadline_naming_the_predicate() {
    let base = serve().await;
    let browser = Chromium::launch().await;
    browser.open(&format!("{base}/")).await;
    let waited = tokio::spawn(async move {
        browser
            .wait_for("window.neverSet === true", Duration::from_millis(300))
            .await;
    })
    .await;
    let panic = waited.expect_err("wait_for must fail at its deadline");
    let message = panic.into_panic();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("window.neverSet === true") && message.contains("still not true"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_chromium_fails_the_test_naming_scripts_test_sh() {
    let launched = tokio::spawn(Chromium::launch_program("chromium-not-installed-here")).await;
    let panic = launched
        .err()
        .expect("launch must fail without the program");
    let message = panic.into_panic();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("chromium-not-installed-here could not be started")
            && message.contains("./scripts/test.sh installs Debian's `chromium` package"),
        "{message}"
    );
}

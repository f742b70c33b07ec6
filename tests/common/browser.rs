//! A real headless browser for the tests: Debian's `chromium`, started on 127.0.0.1 with a
//! throw-away profile and driven over the Chrome DevTools Protocol by chromiumoxide (a maintained
//! CDP crate: typed commands, real mouse and keyboard input events, screenshots). We start the
//! process ourselves rather than through chromiumoxide's launcher so that the flags, the profile
//! directory and the process's lifetime are ours: it is killed, with every child it forked, by
//! its process-group id when the driver is dropped. Waiting is always a poll of a JavaScript
//! predicate against a deadline, never a sleep standing in for synchronisation.
//! Must not import the controller or the dashboard: it drives pages only through the browser.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::network::{Headers, SetExtraHttpHeadersParams};
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// How long chromium may take to print its DevTools address (a cold start on a busy CI box).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two evaluations of a `wait_for` predicate.
const POLL: Duration = Duration::from_millis(50);
/// How long a selector the test names may take to appear before an action on it fails.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A headless chromium with one page, killed (with its children) when dropped.
pub struct Chromium {
    page: Page,
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    child: Child,
    /// Removed after the process is gone (drop order: fields after `Drop::drop`).
    _profile: tempfile::TempDir,
}

/// The DevTools address from chromium's stderr line `DevTools listening on ws://...`.
fn devtools_url(line: &str) -> Option<String> {
    line.trim()
        .strip_prefix("DevTools listening on ")
        .map(str::to_string)
}

/// Whether this process runs as root, where chromium's sandbox refuses to start without
/// `--no-sandbox` (CI runs as root; a developer's account keeps the sandbox).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Chromium's flags: headless, DevTools on an ephemeral loopback port, a fresh profile, and every
/// background service that would reach the network turned off. The resolver rule leaves only
/// loopback names resolvable, so a page can never fetch from outside this machine.
fn flags(profile: &Path) -> Vec<String> {
    let mut f: Vec<String> = [
        "--headless=new",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-extensions",
        "--disable-sync",
        "--disable-breakpad",
        "--no-pings",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--password-store=basic",
    ]
    .map(String::from)
    .to_vec();
    f.push(format!("--user-data-dir={}", profile.display()));
    if running_as_root() {
        f.push("--no-sandbox".into());
    }
    f.push("about:blank".into());
    f
}

/// Reads chromium's stderr on a thread for its whole life (a full pipe would block chromium),
/// sending the DevTools URL once, or every line read so far if it exits without one.
fn read_stderr(child: &mut Child) -> mpsc::Receiver<Result<String, String>> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(url) = devtools_url(&line) {
                    let _ = tx.send(Ok(url));
                    sent = true;
                } else {
                    seen.push_str(&line);
                    seen.push('\n');
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(seen));
        }
    });
    rx
}

/// Kills the whole process group `pgid` (chromium and its zygote, renderer and GPU children).
fn kill_group(pgid: u32) {
    // std has no killpg; the shell's builtin `kill` signals a process group by its negative id.
    let _ = Command::new("sh")
        .args([
            "-c",
            "kill -KILL -- \"-$1\" 2>/dev/null",
            "sh",
            &pgid.to_string(),
        ])
        .status();
}

impl Chromium {
    /// Starts chromium and opens one blank page. Fails the test (never skips it) when chromium
    /// is not installed: ./scripts/test.sh installs Debian's package.
    pub async fn launch() -> Chromium {
        Chromium::launch_program("chromium").await
    }

    /// `launch` with another executable name (the self-test names one that does not exist).
    pub async fn launch_program(program: &str) -> Chromium {
        let profile = tempfile::tempdir().expect("a temporary chromium profile directory");
        let mut child = Command::new(program)
            .args(flags(profile.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so the drop can end every process chromium forks.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{program} could not be started ({e}): this test drives a real headless \
                     browser; ./scripts/test.sh installs Debian's `chromium` package"
                )
            });
        let stderr = read_stderr(&mut child);
        let url = match tokio::task::spawn_blocking(move || stderr.recv_timeout(LAUNCH_TIMEOUT))
            .await
            .expect("the stderr reader")
        {
            Ok(Ok(url)) => url,
            Ok(Err(output)) => {
                kill_group(child.id());
                panic!("chromium exited before it listened for DevTools:\n{output}")
            }
            Err(_) => {
                kill_group(child.id());
                panic!("chromium printed no DevTools address within {LAUNCH_TIMEOUT:?}")
            }
        };
        assert!(
            url.starts_with("ws://127.0.0.1:"),
            "DevTools must listen on loopback only, got {url}"
        );
        let config = HandlerConfig {
            viewport: Some(Viewport {
                width: 1280,
                height: 900,
                ..Viewport::default()
            }),
            ..HandlerConfig::default()
        };
        let (browser, mut events) = Browser::connect_with_config(url, config)
            .await
            .expect("connect to chromium's DevTools");
        // The handler must be polled for any command to complete; messages it cannot parse
        // (a protocol newer than the crate's) are errors we skip, not reasons to stop.
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        let page = browser
            .new_page("about:blank")
            .await
            .expect("a page in chromium");
        Chromium {
            page,
            browser,
            handler,
            child,
            _profile: profile,
        }
    }

    /// Navigates to `url` and waits for its load event.
    pub async fn open(&self, url: &str) {
        self.page
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The value of the JavaScript expression `js` in the page.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        self.try_eval(js)
            .await
            .unwrap_or_else(|e| panic!("evaluate `{js}`: {e}"))
    }

    async fn try_eval<T: DeserializeOwned>(&self, js: &str) -> Result<T, String> {
        let result = self.page.evaluate(js).await.map_err(|e| e.to_string())?;
        // null and undefined come back without a value: read them as JSON null (an Option).
        let value = result.value().cloned().unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Polls the JavaScript predicate `js` until it is truthy; fails the test after `timeout`
    /// with the page's URL and the last error (an evaluation during a navigation may fail).
    pub async fn wait_for(&self, js: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let predicate = format!("!!({js})");
        loop {
            let last = match self.try_eval::<bool>(&predicate).await {
                Ok(true) => return,
                Ok(false) => "false".to_string(),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                let url = self.url().await;
                panic!("`{js}` still not true after {timeout:?} at {url}: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's current URL.
    pub async fn url(&self) -> String {
        self.try_eval("location.href")
            .await
            .unwrap_or_else(|e| format!("<unknown: {e}>"))
    }

    /// `document.querySelector(selector)` as a JavaScript expression.
    fn query(selector: &str) -> String {
        let quoted = serde_json::to_string(selector).expect("a string serialises");
        format!("document.querySelector({quoted})")
    }

    /// Waits up to `ELEMENT_TIMEOUT` for `selector` to match an element.
    async fn wait_present(&self, selector: &str) {
        self.wait_for(
            &format!("{} !== null", Self::query(selector)),
            ELEMENT_TIMEOUT,
        )
        .await;
    }

    /// The text content of the first element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        self.wait_present(selector).await;
        self.eval(&format!("{}.textContent", Self::query(selector)))
            .await
    }

    /// An attribute of the first element matching `selector` (None when it has none).
    pub async fn attribute(&self, selector: &str, name: &str) -> Option<String> {
        self.wait_present(selector).await;
        let name = serde_json::to_string(name).expect("a string serialises");
        self.eval(&format!("{}.getAttribute({name})", Self::query(selector)))
            .await
    }

    /// Clicks the middle of the first element matching `selector` with real mouse events
    /// (a click that navigates: follow it with `wait_for` on the next page).
    pub async fn click(&self, selector: &str) {
        self.element(selector)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Clicks into the first element matching `selector` and types `text`: key by key where a
    /// US keyboard has the key (chromiumoxide's key map), as inserted text (what an input method
    /// sends) for any other character.
    pub async fn type_text(&self, selector: &str, text: &str) {
        let element = self.element(selector).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
        for c in text.chars() {
            let typed = if c.is_ascii() && !c.is_ascii_control() {
                element.type_str(c.to_string()).await.map(|_| ())
            } else {
                let insert = InsertTextParams::new(c.to_string());
                self.page.execute(insert).await.map(|_| ())
            };
            typed.unwrap_or_else(|e| panic!("type {c:?} into {selector}: {e}"));
        }
    }

    /// The first element matching `selector`, once there is one.
    async fn element(&self, selector: &str) -> chromiumoxide::Element {
        self.wait_present(selector).await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("find {selector}: {e}"))
    }

    /// Saves a PNG of the whole page (beyond the viewport) to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .page
            .screenshot(ScreenshotParams::builder().full_page(true).build())
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Headers sent with every request the page makes from now on (e.g. `Authorization`).
    pub async fn set_extra_headers(&self, headers: &[(&str, &str)]) {
        let map: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
            .collect();
        self.page
            .execute(SetExtraHttpHeadersParams::new(Headers::new(map)))
            .await
            .unwrap_or_else(|e| panic!("set extra headers: {e}"));
    }

    /// The chromiumoxide page, for what this driver does not wrap.
    pub fn page(&self) -> &Page {
        &self.page
    }

    /// The chromiumoxide browser, for what this driver does not wrap.
    pub fn browser(&self) -> &Browser {
        &self.browser
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.handler.abort();
        // The group is signalled before the leader is reaped: until `wait`, its id cannot be
        // reused, so the signal reaches only what this chromium started.
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

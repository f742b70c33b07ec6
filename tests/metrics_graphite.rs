//! The Graphite provider against a real graphite-web (Debian's `graphite-web`, installed by
//! scripts/test.sh) started on 127.0.0.1 over whisper files the test writes: a value, a
//! Flagger-style multi-line `summarize` target, no data, graphite's own error. Basic auth,
//! bad credentials, an outage and a timeout against a local receiver (graphite-web leaves auth
//! to the web server in front of it).

#[path = "support/vendor.rs"]
mod vendor;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serin::metrics::{Auth, GraphiteProvider, MetricError, TemplateSource};
use vendor::{Reply, json, receiver, secret, settings};

/// A graphite-web process (Django's server) over its own whisper directory.
struct Graphite {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Graphite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} not found: install Debian's graphite-web (scripts/test.sh does)"
    );
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One whisper file `<dir>/whisper/<metric path>.wsp` holding `points` (age in seconds, value).
fn whisper(dir: &Path, metric: &str, points: &[(u64, f64)]) {
    let file = dir
        .join("whisper")
        .join(format!("{}.wsp", metric.replace('.', "/")));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let file = file.to_str().unwrap().to_string();
    run("whisper-create", &[&file, "10s:1h"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let updates: Vec<String> = points
        .iter()
        .map(|(age, v)| format!("{}:{v}", now - age))
        .collect();
    let mut args = vec![file.as_str()];
    args.extend(updates.iter().map(String::as_str));
    run("whisper-update", &args);
}

impl Graphite {
    fn start(write: impl FnOnce(&Path)) -> Graphite {
        require("django-admin");
        require("whisper-create");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        write(dir.path());
        let settings = format!(
            "SECRET_KEY = 'serin-test'\nSTORAGE_DIR = '{d}'\nWHISPER_DIR = '{d}/whisper/'\n\
             LOG_DIR = '{d}/log'\nINDEX_FILE = '{d}/index'\nALLOWED_HOSTS = ['127.0.0.1']\n\
             DATABASES = {{'default': {{'NAME': '{d}/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}}}\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("serin_graphite_settings.py"), settings).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("graphite-web.log")).unwrap();
        let child = Command::new("django-admin")
            .args(["runserver", &format!("127.0.0.1:{port}"), "--noreload"])
            .env("PYTHONPATH", dir.path())
            .env("GRAPHITE_SETTINGS_MODULE", "serin_graphite_settings")
            .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let graphite = Graphite {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        graphite.wait_ready();
        graphite
    }

    /// Polls until graphite-web accepts connections (Django needs a few seconds to start).
    fn wait_ready(&self) {
        let addr = self.url.trim_start_matches("http://");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("graphite-web did not start within 60 s");
    }
}

fn provider(address: &str, auth: Auth) -> GraphiteProvider {
    let mut http = settings();
    http.timeout = Duration::from_secs(5);
    http.auth = auth;
    GraphiteProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(&[]),
        region: None,
        window: Duration::from_secs(60),
        http,
        kube: None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_graphite_answers_values_no_data_and_its_errors() {
    let graphite = Graphite::start(|dir| {
        whisper(
            dir,
            "stats.app.podinfo.requests",
            &[(40, 5.0), (30, 7.5), (20, 10.0)],
        );
        whisper(dir, "stats.app.podinfo.errors", &[(30, 1.0)]);
        whisper(dir, "stats.app.other.requests", &[(30, 2.0)]);
    });
    let g = provider(&graphite.url, Auth::None);
    assert_eq!(
        g.query("target=stats.app.podinfo.requests&from=-5min")
            .await,
        Ok(10.0)
    );
    // Flagger's template shape: a target spread over lines, with {{ interval }} rendered.
    let summarize = "target=summarize(\n  asPercent(\n    stats.app.podinfo.errors,\n    sumSeries(stats.app.podinfo.requests)\n  ),\n  '10min',\n  'max'\n)&from=-5min\n";
    let v = g.query(summarize).await.unwrap();
    assert!((v - 13.333).abs() < 0.01, "{v}");
    assert_eq!(
        g.query("target=stats.app.nothing.here&from=-5min").await,
        Err(MetricError::NoData)
    );
    assert_eq!(
        g.query("target=stats.app.*.requests&from=-5min").await,
        Err(MetricError::ManySeries(2))
    );
    let err = g.query("target=nosuchfn(stats.app.podinfo.requests)").await;
    assert!(
        matches!(&err, Err(MetricError::Query(m)) if m.starts_with("HTTP 400 Bad Request: Invalid parameters (Received request for unknown function: nosuchfn)")),
        "{err:?}"
    );
    assert_eq!(g.is_online().await, Ok(()));
}

#[tokio::test]
async fn basic_auth_goes_per_request_and_failures_are_sorted() {
    let (url, log) = receiver(|seen| match seen.param("target").as_deref() {
        _ if seen.headers.get("authorization").map(String::as_str) != Some("Basic dXNlcjpzM2NyZXQ=") => {
            Reply::With(401, "text/html", "<h1>401 Authorization Required</h1>".into())
        }
        Some("slow") => Reply::Never,
        Some("down") => Reply::With(502, "text/html", "<h1>502 Bad Gateway</h1>".into()),
        _ => json(200, r#"[{"target": "t", "tags": {}, "datapoints": [[1.5, 1795872600], [null, 1795872610]]}]"#),
    })
    .await;
    let basic = |password: &str| Auth::Basic {
        username: "user".into(),
        password: password.into(),
    };
    let g = provider(&format!("{url}/graphite"), basic("s3cret"));
    assert_eq!(g.query("target=t").await, Ok(1.5));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/graphite/render");
    assert_eq!(seen.param("format").as_deref(), Some("json"));
    assert_eq!(seen.headers["x-scope-orgid"], "team-a");
    let mut fast = settings();
    fast.auth = basic("s3cret");
    let quick = GraphiteProvider::new(TemplateSource {
        address: Some(url.clone()),
        secret: &secret(&[]),
        region: None,
        window: Duration::from_secs(60),
        http: fast,
        kube: None,
    })
    .unwrap();
    assert_eq!(
        quick.query("target=slow").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        g.query("target=down").await,
        Err(MetricError::Unavailable(
            "HTTP 502 Bad Gateway: <h1>502 Bad Gateway</h1>".into()
        ))
    );
    let wrong = provider(&url, basic("wrong"));
    assert_eq!(
        wrong.query("target=t").await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: <h1>401 Authorization Required</h1>".into()
        ))
    );
}

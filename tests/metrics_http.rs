//! The web and Datadog providers, and the Prometheus provider's auth and headers, against local
//! HTTP receivers on 127.0.0.1 that record what they got and answer in each service's shape:
//! credentials go per request on shared clients, 5xx/429 answers are `Unavailable` (with a short
//! excerpt free of credentials), other non-2xx are query errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serin::metrics::{
    Auth, DatadogProvider, HttpSettings, MetricError, PrometheusProvider, WebProvider,
};

/// What a receiver saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A receiver's answer by path: (status, content type, body).
type Answer = fn(&str) -> (u16, &'static str, String);

/// Serves `answer(path)` as (status, content type, body) and logs every request.
async fn receiver(answer: fn(&str) -> (u16, &'static str, String)) -> (String, Log) {
    let log: Log = Default::default();
    let app = Router::new()
        .fallback(
            |State((log, answer)): State<(Log, Answer)>,
             method: Method,
             uri: Uri,
             RawQuery(q): RawQuery,
             headers: HeaderMap,
             body: Bytes| async move {
                log.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: q.unwrap_or_default(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let (status, ctype, text) = answer(uri.path());
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("content-type", ctype)],
                    text,
                )
                    .into_response()
            },
        )
        .with_state((log.clone(), answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, log)
}

fn settings(auth: Auth) -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        headers: [("X-Scope-OrgID".to_string(), vec!["team-a".to_string()])].into(),
        auth,
        ..Default::default()
    }
}

#[tokio::test]
async fn web_provider_gets_or_posts_and_picks_the_value() {
    let (url, log) = receiver(|path| match path {
        "/big" => (
            200,
            "application/json",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20)),
        ),
        "/html" => (200, "text/html", "<html>hi</html>".into()),
        "/fail" => (500, "text/plain", "backend down".into()),
        "/busy" => (429, "text/plain", "slow down".into()),
        "/gone" => (404, "text/plain", "no such page".into()),
        _ => (
            200,
            "application/json",
            r#"{"data": {"errorRate": "0.5", "none": null}}"#.into(),
        ),
    })
    .await;
    let get = WebProvider::new(
        &format!("{url}/stats?app=podinfo"),
        None,
        settings(Auth::Bearer("tok".into())),
    )
    .unwrap();
    assert_eq!(get.query("$.data.errorRate").await, Ok(0.5));
    assert_eq!(get.query("$.data.none").await, Err(MetricError::NoData));
    let post = WebProvider::new(
        &format!("{url}/query"),
        Some(r#"{"app": "podinfo"}"#.into()),
        settings(Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        }),
    )
    .unwrap();
    assert_eq!(post.query("$.data.errorRate").await, Ok(0.5));
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].path.as_str(),
            seen[0].query.as_str()
        ),
        ("GET", "/stats", "app=podinfo")
    );
    assert_eq!(seen[0].headers["authorization"], "Bearer tok");
    assert_eq!(seen[0].headers["x-scope-orgid"], "team-a");
    assert_eq!(
        (seen[2].method.as_str(), seen[2].body.as_str()),
        ("POST", r#"{"app": "podinfo"}"#)
    );
    assert_eq!(seen[2].headers["authorization"], "Basic dTpw");
    assert_eq!(seen[2].headers["content-type"], "application/json");

    let big = WebProvider::new(&format!("{url}/big"), None, HttpSettings::default()).unwrap();
    assert_eq!(
        big.query("$.pad").await,
        Err(MetricError::Answer(
            "the answer is larger than 1048576 bytes".into()
        ))
    );
    let html = WebProvider::new(&format!("{url}/html"), None, HttpSettings::default()).unwrap();
    assert!(
        matches!(html.query("$.x").await, Err(MetricError::Answer(m)) if m.starts_with("the answer is not JSON"))
    );
    let fail = WebProvider::new(&format!("{url}/fail"), None, HttpSettings::default()).unwrap();
    assert_eq!(
        fail.query("$.x").await,
        Err(MetricError::Unavailable(
            "HTTP 500 Internal Server Error: backend down".into()
        ))
    );
    let busy = WebProvider::new(&format!("{url}/busy"), None, HttpSettings::default()).unwrap();
    assert_eq!(
        busy.query("$.x").await,
        Err(MetricError::Unavailable(
            "HTTP 429 Too Many Requests: slow down".into()
        ))
    );
    let gone = WebProvider::new(&format!("{url}/gone"), None, HttpSettings::default()).unwrap();
    assert_eq!(
        gone.query("$.x").await,
        Err(MetricError::Query(
            "HTTP 404 Not Found: no such page".into()
        ))
    );
    let nowhere = WebProvider::new("http://127.0.0.1:9/x", None, HttpSettings::default()).unwrap();
    assert!(matches!(
        nowhere.query("$.x").await,
        Err(MetricError::Connection(_))
    ));
}

#[tokio::test]
async fn datadog_provider_sends_its_keys_and_reads_the_last_point() {
    let (url, log) = receiver(|path| match path {
        "/api/v1/validate" => (200, "application/json", r#"{"valid": true}"#.into()),
        _ => (
            200,
            "application/json",
            r#"{"status": "ok", "res_type": "time_series", "series": [{"metric": "trace.http.request.errors", "pointlist": [[1700000000000.0, 1.5], [1700000060000.0, 2.25]]}]}"#.into(),
        ),
    })
    .await;
    let keys = Auth::Headers(
        [
            ("DD-API-KEY".to_string(), "api".to_string()),
            ("DD-APPLICATION-KEY".to_string(), "app".to_string()),
        ]
        .into(),
    );
    let dd = DatadogProvider::new(&url, Duration::from_secs(60), settings(keys)).unwrap();
    dd.is_online().await.unwrap();
    assert_eq!(
        dd.query("sum:trace.http.request.errors{service:podinfo}.as_count()")
            .await,
        Ok(2.25)
    );
    let seen = log.lock().unwrap().clone();
    let q = &seen[1];
    assert_eq!(q.path, "/api/v1/query");
    assert_eq!(
        (
            q.headers["dd-api-key"].as_str(),
            q.headers["dd-application-key"].as_str()
        ),
        ("api", "app")
    );
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(q.query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        params["query"],
        "sum:trace.http.request.errors{service:podinfo}.as_count()"
    );
    let (from, to): (u64, u64) = (
        params["from"].parse().unwrap(),
        params["to"].parse().unwrap(),
    );
    assert_eq!(to - from, 60);
}

#[tokio::test]
async fn prometheus_provider_sends_auth_and_headers() {
    let (url, log) = receiver(|_| {
        (
            200,
            "application/json",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.123,"99.5"]}]}}"#.into(),
        )
    })
    .await;
    let p = PrometheusProvider::new(&url, settings(Auth::Bearer("prom-token".into()))).unwrap();
    assert_eq!(p.query("sum(up)").await, Ok(99.5));
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/api/v1/query");
    assert_eq!(seen[0].headers["authorization"], "Bearer prom-token");
    assert_eq!(seen[0].headers["x-scope-orgid"], "team-a");
    // Clients are shared per TLS mode: another provider's credentials never ride along.
    let anonymous = PrometheusProvider::new(&url, HttpSettings::default()).unwrap();
    assert_eq!(anonymous.query("sum(up)").await, Ok(99.5));
    let seen = log.lock().unwrap().clone();
    assert!(!seen[1].headers.contains_key("authorization"));
    assert!(!seen[1].headers.contains_key("x-scope-orgid"));
    assert!(seen[1].headers["user-agent"].starts_with("serin/"));
}

#[tokio::test]
async fn prometheus_that_cannot_answer_is_unavailable_and_rejections_are_query_errors() {
    let (url, _log) = receiver(|path| match path {
        "/down/api/v1/query" => (
            503,
            "text/html",
            "<html><body>503 upstream down (Authorization: Bearer prom-token)</body></html>".into(),
        ),
        "/overloaded/api/v1/query" => (
            503,
            "application/json",
            r#"{"status":"error","errorType":"unavailable","error":"too many queries"}"#.into(),
        ),
        "/slow/api/v1/query" => (
            503,
            "application/json",
            r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#.into(),
        ),
        "/limited/api/v1/query" => (429, "text/plain", "rate limited".into()),
        "/denied/api/v1/query" => (401, "text/plain", "unauthorized".into()),
        _ => (
            422,
            "application/json",
            r#"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#
                .into(),
        ),
    })
    .await;
    let at = |path: &str| {
        PrometheusProvider::new(
            &format!("{url}{path}"),
            settings(Auth::Bearer("prom-token".into())),
        )
        .unwrap()
    };
    assert_eq!(
        at("/down").query("up").await,
        Err(MetricError::Unavailable(
            "HTTP 503 Service Unavailable: <html><body>503 upstream down (Authorization: Bearer ***)</body></html>"
                .into()
        ))
    );
    assert_eq!(
        at("/overloaded").query("up").await,
        Err(MetricError::Unavailable(
            "HTTP 503 Service Unavailable: unavailable: too many queries".into()
        ))
    );
    assert_eq!(
        at("/slow").query("up").await,
        Err(MetricError::Timeout(Duration::from_secs(5)))
    );
    assert_eq!(
        at("/limited").query("up").await,
        Err(MetricError::Unavailable(
            "HTTP 429 Too Many Requests: rate limited".into()
        ))
    );
    assert_eq!(
        at("/denied").query("up").await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: unauthorized".into()
        ))
    );
    assert_eq!(
        at("/rejected").query("a * on() b").await,
        Err(MetricError::Query(
            "execution: many-to-many matching not allowed".into()
        ))
    );
}

#[tokio::test]
async fn datadog_that_cannot_answer_is_unavailable_and_its_errors_are_quoted() {
    // Datadog's API path is absolute: one receiver per behaviour.
    let (down, _) = receiver(|_| (502, "text/html", "<h1>Bad Gateway</h1>".into())).await;
    let (limited, _) = receiver(|_| {
        (
            429,
            "application/json",
            r#"{"errors": ["Rate limit of 300 requests in 3600 seconds reached"]}"#.into(),
        )
    })
    .await;
    let (bad, _) = receiver(|_| {
        (
            400,
            "application/json",
            r#"{"errors": ["Error parsing query: unable to parse sum:foo{: Rule 'scope_expr' didn't match"]}"#
                .into(),
        )
    })
    .await;
    let at = |url: &str| {
        DatadogProvider::new(url, Duration::from_secs(60), HttpSettings::default()).unwrap()
    };
    assert_eq!(
        at(&down).query("sum:foo{*}").await,
        Err(MetricError::Unavailable(
            "HTTP 502 Bad Gateway: <h1>Bad Gateway</h1>".into()
        ))
    );
    assert_eq!(
        at(&limited).query("sum:foo{*}").await,
        Err(MetricError::Unavailable(
            "HTTP 429 Too Many Requests: Rate limit of 300 requests in 3600 seconds reached".into()
        ))
    );
    assert_eq!(
        at(&bad).query("sum:foo{").await,
        Err(MetricError::Query(
            "HTTP 400 Bad Request: Error parsing query: unable to parse sum:foo{: Rule 'scope_expr' didn't match"
                .into()
        ))
    );
}

/// `openssl s_server` with a fresh self-signed certificate, stopped by PID on drop.
struct SelfSignedServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for SelfSignedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_signed_server() -> SelfSignedServer {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (scripts/test.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
        ])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    SelfSignedServer {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test]
async fn tls_is_verified_unless_the_template_says_otherwise() {
    let server = self_signed_server();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let strict = WebProvider::new(&url, None, HttpSettings::default()).unwrap();
    let err = strict.query("$.x").await.unwrap_err();
    assert!(
        matches!(&err, MetricError::Connection(m) if m.contains("certificate")),
        "{err:?}"
    );
    let lax = WebProvider::new(
        &url,
        None,
        HttpSettings {
            insecure_skip_verify: true,
            ..Default::default()
        },
    )
    .unwrap();
    // The handshake succeeds; s_server answers its HTML status page, which is not JSON.
    let err = lax.query("$.x").await.unwrap_err();
    assert!(
        matches!(&err, MetricError::Answer(m) if m.starts_with("the answer is not JSON")),
        "{err:?}"
    );
}

//! The CloudWatch provider against a real AWS-API server: moto in server mode (the PyPI package,
//! installed by scripts/test.sh into target/moto-venv), with IAM authentication on so that moto
//! verifies every SigV4 signature; the test puts the metrics there. A value (Flagger's query
//! shape, an expression over a hidden MetricStat), no data, a rejected query, bad credentials;
//! IRSA (STS AssumeRoleWithWebIdentity) against a second moto; a timeout against a receiver
//! that never answers. The test fails, never skips, when moto cannot run.

#[path = "support/vendor.rs"]
mod vendor;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serin::metrics::{CloudWatchProvider, MetricError, TemplateSource};
use vendor::{Reply, receiver, secret, settings};

/// A moto server process.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv() -> PathBuf {
    std::env::var("SERIN_MOTO_VENV").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv"),
        PathBuf::from,
    )
}

impl Moto {
    /// Starts `moto_server`; with `auth`, every request after the first three must be signed by
    /// a key moto's IAM knows.
    fn start(auth: bool) -> Moto {
        let server = venv().join("bin/moto_server");
        assert!(
            server.exists(),
            "{} not found: run scripts/test.sh (it installs moto into target/moto-venv)",
            server.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(server);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
        }
        let moto = Moto {
            child: cmd.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Creates the signing user and puts the metrics; the user's key.
    fn setup(&self) -> (String, String) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_setup.py");
        let out = Command::new(venv().join("bin/python"))
            .arg(script)
            .args([&self.url, "ap-northeast-1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            key["id"].as_str().unwrap().into(),
            key["secret"].as_str().unwrap().into(),
        )
    }
}

fn provider(address: &str, keys: &[(&str, &str)], timeout: Duration) -> CloudWatchProvider {
    let mut http = settings();
    http.timeout = timeout;
    CloudWatchProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(keys),
        region: Some("ap-northeast-1".into()),
        window: Duration::from_secs(60),
        http,
        kube: None,
    })
    .unwrap()
}

/// Flagger's documented query shape: an expression over MetricStats that return no data.
fn query(metric: &str, expression: &str) -> String {
    format!(
        r#"[
  {{"Id": "e1", "Expression": "{expression}", "Label": "ErrorRate"}},
  {{"Id": "m1", "MetricStat": {{"Metric": {{"Namespace": "MyKubernetesCluster", "MetricName": "{metric}",
     "Dimensions": [{{"Name": "appName", "Value": "podinfo.test"}}]}}, "Period": 60, "Stat": "Sum", "Unit": "Count"}},
   "ReturnData": false}}
]"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_verifies_the_signature_and_answers_get_metric_data() {
    let moto = Moto::start(true);
    let (id, secret_key) = moto.setup();
    let keys = [
        ("aws_access_key_id", id.as_str()),
        ("aws_secret_access_key", secret_key.as_str()),
    ];
    let cw = provider(&moto.url, &keys, Duration::from_secs(10));
    assert_eq!(cw.query(&query("ErrorCount", "m1")).await, Ok(5.0));
    let direct = r#"[{"Id": "r", "MetricStat": {"Metric": {"Namespace": "MyKubernetesCluster", "MetricName": "RequestCount",
        "Dimensions": [{"Name": "appName", "Value": "podinfo.test"}]}, "Period": 60, "Stat": "Sum"}}]"#;
    assert_eq!(cw.query(direct).await, Ok(100.0));
    assert_eq!(
        cw.query(&query("NoSuchMetric", "m1")).await,
        Err(MetricError::NoData)
    );
    let rejected = cw.query(r#"[{"Id": "x", "ReturnData": true}]"#).await;
    assert!(
        matches!(&rejected, Err(MetricError::Query(m)) if m.starts_with("HTTP 400 Bad Request:") && m.contains("MetricStat")),
        "{rejected:?}"
    );
    assert!(matches!(
        cw.query("not json").await,
        Err(MetricError::Config(_))
    ));
    assert_eq!(cw.is_online().await, Ok(()));

    let wrong = provider(
        &moto.url,
        &[
            ("aws_access_key_id", id.as_str()),
            ("aws_secret_access_key", "wrong-s3cret"),
        ],
        Duration::from_secs(10),
    );
    let err = wrong.query(direct).await.unwrap_err();
    assert!(
        matches!(&err, MetricError::Query(m) if m.starts_with("HTTP 403 Forbidden: SignatureDoesNotMatch:")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("wrong-s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_assumes_the_role_at_sts_with_the_projected_token() {
    let moto = Moto::start(false);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.projected.token\n").unwrap();
    // SAFETY of the test: only this test of this binary reads these variables.
    unsafe {
        std::env::set_var("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/serin");
        std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
        std::env::set_var("AWS_ENDPOINT_URL_STS", &moto.url);
    }
    let cw = provider(&moto.url, &[], Duration::from_secs(10));
    // moto (without IAM checks here) answers STS's documented XML and an empty query.
    assert_eq!(
        cw.query(&query("ErrorCount", "m1")).await,
        Err(MetricError::NoData)
    );
    assert_eq!(cw.is_online().await, Ok(()));
}

#[tokio::test]
async fn a_cloudwatch_that_never_answers_times_out() {
    let (url, _) = receiver(|_| Reply::Never).await;
    let keys = [
        ("aws_access_key_id", "AKIA"),
        ("aws_secret_access_key", "s3cret"),
    ];
    let cw = provider(&url, &keys, Duration::from_millis(500));
    assert_eq!(
        cw.query(&query("ErrorCount", "m1")).await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
}

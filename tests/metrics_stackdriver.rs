//! The Google Cloud Monitoring provider against local receivers answering as Google documents
//! (bodies in tests/data/metrics/): MQL (Flagger's form) and PromQL, a value, no data, an error
//! body, a timeout, bad credentials and an outage; and each token source — the Secret's token,
//! a service-account key (the JWT checked with openssl against the key's public half) and the
//! GKE metadata server.

#[path = "support/vendor.rs"]
mod vendor;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use serin::metrics::{MetricError, StackdriverProvider, TemplateSource};
use vendor::{Reply, json, receiver, recorded, secret, settings};

const MQL: &str = "fetch k8s_container\n| metric 'istio.io/service/server/response_latencies'\n| align delta(1m)\n| every 1m\n";

fn provider(address: &str, keys: &[(&str, &str)]) -> StackdriverProvider {
    StackdriverProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(keys),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
    .unwrap()
}

#[tokio::test]
async fn mql_and_promql_with_the_secrets_token() {
    let (url, log) = receiver(|seen| {
        if seen.headers.get("authorization").map(String::as_str) != Some("Bearer ya29.s3cret") {
            return json(401, recorded("stackdriver-unauthenticated.json"));
        }
        if seen.path.ends_with("/api/v1/query") {
            return json(200, recorded("stackdriver-promql-value.json"));
        }
        let body: Value = serde_json::from_str(&seen.body).unwrap_or_default();
        match body["query"].as_str().unwrap_or_default() {
            q if q.contains("'empty'") => json(200, recorded("stackdriver-mql-empty.json")),
            q if q.contains("metric 42") => json(400, recorded("stackdriver-error.json")),
            q if q.contains("'slow'") => Reply::Never,
            q if q.contains("'quota'") => json(429, r#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}"#),
            _ => json(200, recorded("stackdriver-mql-value.json")),
        }
    })
    .await;
    let keys = [("project", "my-project"), ("token", "ya29.s3cret")];
    let gcm = provider(&url, &keys);
    assert_eq!(gcm.query(MQL).await, Ok(245.7));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v3/projects/my-project/timeSeries:query")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&seen.body).unwrap()["query"],
        MQL
    );

    assert_eq!(gcm.query("sum(rate(x[1m]))").await, Ok(99.5));
    let seen = log.lock().unwrap()[1].clone();
    assert_eq!(
        seen.path,
        "/v1/projects/my-project/location/global/prometheus/api/v1/query"
    );
    assert_eq!(seen.param("query").as_deref(), Some("sum(rate(x[1m]))"));

    assert_eq!(
        gcm.query("fetch x | metric 'empty'").await,
        Err(MetricError::NoData)
    );
    assert_eq!(
        gcm.query("fetch x | metric 42").await,
        Err(MetricError::Query("HTTP 400 Bad Request: Line 2: Table operation 'metric' expects a string for argument 'metric_name', but got a number.".into()))
    );
    assert_eq!(
        gcm.query("fetch x | metric 'slow'").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        gcm.query("fetch x | metric 'quota'").await,
        Err(MetricError::Unavailable(
            "HTTP 429 Too Many Requests: Quota exceeded".into()
        ))
    );
    let wrong = provider(&url, &[("project", "my-project"), ("token", "ya29.wrong")]);
    let err = wrong.query(MQL).await.unwrap_err();
    assert!(
        matches!(&err, MetricError::Query(m) if m.starts_with("HTTP 401 Unauthorized: Request had invalid authentication credentials.")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_gke_metadata_server_gives_the_token_when_the_secret_has_none() {
    let (url, log) = receiver(|seen| match seen.path.as_str() {
        "/computeMetadata/v1/instance/service-accounts/default/token" => {
            match seen.headers.get("metadata-flavor").map(String::as_str) {
                Some("Google") => json(200, recorded("gce-metadata-token.json")),
                _ => Reply::With(
                    403,
                    "text/html",
                    "Missing Metadata-Flavor:Google header.".into(),
                ),
            }
        }
        _ if seen.headers.get("authorization").map(String::as_str)
            == Some("Bearer ya29.metadata-s3cret") =>
        {
            json(200, recorded("stackdriver-mql-value.json"))
        }
        _ => json(401, recorded("stackdriver-unauthenticated.json")),
    })
    .await;
    // SAFETY of the test: only this test reads the variable, and it is set before any provider.
    unsafe { std::env::set_var("GCE_METADATA_HOST", url.trim_start_matches("http://")) };
    let gcm = provider(&url, &[("project", "my-project")]);
    assert_eq!(gcm.query(MQL).await, Ok(245.7));
    // The token is cached: a second query asks the metadata server nothing.
    assert_eq!(gcm.query(MQL).await, Ok(245.7));
    let paths: Vec<String> = log.lock().unwrap().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.starts_with("/computeMetadata"))
            .count(),
        1,
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_service_account_key_is_exchanged_for_a_token_with_a_signed_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("openssl runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (url, log) = receiver(|seen| match seen.path.as_str() {
        "/token" => match seen
            .param("grant_type")
            .or_else(|| form(&seen.body, "grant_type"))
            .as_deref()
        {
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                json(200, recorded("google-oauth-token.json"))
            }
            _ => json(
                400,
                r#"{"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}"#,
            ),
        },
        _ if seen.headers.get("authorization").map(String::as_str)
            == Some("Bearer ya29.sa-s3cret") =>
        {
            json(200, recorded("stackdriver-mql-value.json"))
        }
        _ => json(401, recorded("stackdriver-unauthenticated.json")),
    })
    .await;
    let sa = serde_json::json!({
        "type": "service_account",
        "project_id": "my-project",
        "client_email": "serin@my-project.iam.gserviceaccount.com",
        "private_key": std::fs::read_to_string(&key).unwrap(),
        "token_uri": format!("{url}/token"),
    })
    .to_string();
    let gcm = provider(
        &url,
        &[("project", "my-project"), ("serviceAccountKey", &sa)],
    );
    assert_eq!(gcm.query(MQL).await, Ok(245.7));
    let grant = log.lock().unwrap()[0].clone();
    let jwt = form(&grant.body, "assertion").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "serin@my-project.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], format!("{url}/token"));
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/monitoring.read"
    );
    // The signature verifies with the key's public half.
    std::fs::write(
        dir.path().join("input"),
        format!("{}.{}", parts[0], parts[1]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sig"),
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
    .unwrap();
    let verified = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "dgst",
            "-sha256",
            "-prverify",
            "key.pem",
            "-signature",
            "sig",
            "input",
        ])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // A bad key is a configuration error that does not quote the key.
    let err = StackdriverProvider::new(TemplateSource {
        address: Some(url.clone()),
        secret: &secret(&[
            ("project", "p"),
            (
                "serviceAccountKey",
                r#"{"client_email": "a", "private_key": "not-a-key-s3cret"}"#,
            ),
        ]),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "serviceAccountKey: private_key is not a PEM key"
    );
}

/// A field of a form-encoded body.
fn form(body: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

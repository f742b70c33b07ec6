//! The InfluxDB provider against a local receiver answering as the v2 query API documents
//! (Debian's influxdb is 1.6, without /api/v2/query; bodies in tests/data/metrics/): the request
//! (path, org, `Token` auth, Flux in a JSON body, CSV accepted), a value, no data, several
//! tables, an error body, a timeout, bad credentials and an outage.

#[path = "support/vendor.rs"]
mod vendor;

use std::time::Duration;

use serde_json::Value;
use serin::metrics::{InfluxDbProvider, MetricError, TemplateSource};
use vendor::{Reply, json, receiver, recorded, secret, settings};

fn provider(address: &str, token: &str) -> InfluxDbProvider {
    InfluxDbProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(&[("token", token), ("org", "my-org")]),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
    .unwrap()
}

fn csv(name: &str) -> Reply {
    Reply::With(200, "text/csv; charset=utf-8", recorded(name))
}

#[tokio::test]
async fn flux_is_posted_with_the_org_and_token_and_the_csv_read() {
    let (url, log) = receiver(|seen| {
        if seen.headers.get("authorization").map(String::as_str) != Some("Token s3cret-token") {
            return json(401, recorded("influxdb-unauthorized.json"));
        }
        let body: Value = serde_json::from_str(&seen.body).unwrap_or_default();
        match body["query"].as_str().unwrap_or_default() {
            q if q.contains("empty") => csv("influxdb-empty.csv"),
            q if q.contains("both") => csv("influxdb-two-tables.csv"),
            q if q.contains("broken") => json(400, recorded("influxdb-error.json")),
            q if q.contains("slow") => Reply::Never,
            q if q.contains("down") => json(
                503,
                r#"{"code":"unavailable","message":"service unavailable"}"#,
            ),
            _ => csv("influxdb-value.csv"),
        }
    })
    .await;
    let influx = provider(&url, "s3cret-token");
    let flux = "from(bucket: \"default\")\n  |> range(start: -2h)\n  |> count()\n  |> yield(name: \"count\")\n";
    assert_eq!(influx.query(flux).await, Ok(42.0));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/api/v2/query")
    );
    assert_eq!(seen.param("org").as_deref(), Some("my-org"));
    assert_eq!(seen.headers["accept"], "application/csv");
    assert_eq!(seen.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["query"], flux);
    assert_eq!(body["type"], "flux");

    assert_eq!(influx.query("empty").await, Err(MetricError::NoData));
    assert_eq!(influx.query("both").await, Err(MetricError::ManySeries(2)));
    assert_eq!(
        influx.query("broken(").await,
        Err(MetricError::Query(
            "HTTP 400 Bad Request: compilation failed: error at @2:6-2:12: expected RPAREN, got EOF"
                .into()
        ))
    );
    assert_eq!(
        influx.query("slow").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        influx.query("down").await,
        Err(MetricError::Unavailable(
            "HTTP 503 Service Unavailable: service unavailable".into()
        ))
    );
    let wrong = provider(&url, "wrong-token");
    assert_eq!(
        wrong.query(flux).await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: unauthorized access".into()
        ))
    );
    assert!(wrong.is_online().await.is_err());
    assert!(influx.is_online().await.is_ok());
}

#[test]
fn a_secret_needs_token_and_org_as_in_flagger() {
    let err = InfluxDbProvider::new(TemplateSource {
        address: Some("http://influxdb:8086".into()),
        secret: &secret(&[("token", "t")]),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "the influxdb provider needs the key 'org' in the template's secretRef"
    );
}

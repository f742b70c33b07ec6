//! The New Relic provider against a local receiver answering as NerdGraph and the Insights query
//! API document (bodies in tests/data/metrics/): the request (path, key header, NRQL with
//! `SINCE`), a value, no data, an error body, a timeout, bad credentials and an outage.

#[path = "support/vendor.rs"]
mod vendor;

use std::time::Duration;

use serde_json::Value;
use serin::metrics::{MetricError, NewRelicProvider, TemplateSource};
use vendor::{Reply, json, receiver, recorded, secret, settings};

fn provider(address: &str, keys: &[(&str, &str)]) -> Result<NewRelicProvider, MetricError> {
    NewRelicProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(keys),
        region: None,
        window: Duration::from_secs(120),
        http: settings(),
        kube: None,
    })
}

const NERDGRAPH: &[(&str, &str)] = &[
    ("newrelic_account_id", "1234567"),
    ("newrelic_api_key", "NRAK-s3cret"),
];
const INSIGHTS: &[(&str, &str)] = &[
    ("newrelic_account_id", "1234567"),
    ("newrelic_query_key", "NRIQ-s3cret"),
];

#[tokio::test]
async fn nerdgraph_runs_nrql_with_the_window_and_reads_the_only_value() {
    let (url, log) = receiver(|seen| {
        let body: Value = serde_json::from_str(&seen.body).unwrap_or_default();
        match body["variables"]["nrql"].as_str().unwrap_or_default() {
            q if q.starts_with("SELECT empty") => {
                json(200, recorded("newrelic-nerdgraph-empty.json"))
            }
            q if q.starts_with("SELECT FRM") => {
                json(200, recorded("newrelic-nerdgraph-error.json"))
            }
            q if q.starts_with("SELECT slow") => Reply::Never,
            q if q.starts_with("SELECT down") => {
                json(503, r#"{"errors":[{"message":"Service unavailable"}]}"#)
            }
            _ => json(200, recorded("newrelic-nerdgraph-value.json")),
        }
    })
    .await;
    let nr = provider(&format!("{url}/graphql"), NERDGRAPH).unwrap();
    assert_eq!(
        nr.query("SELECT average(duration) FROM Transaction\n")
            .await,
        Ok(2.5)
    );
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/graphql")
    );
    assert_eq!(seen.headers["api-key"], "NRAK-s3cret");
    assert_eq!(seen.headers["x-scope-orgid"], "team-a");
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        body["variables"]["nrql"],
        "SELECT average(duration) FROM Transaction SINCE 120 seconds ago"
    );
    assert!(
        body["query"]
            .as_str()
            .unwrap()
            .contains("account(id: 1234567)")
    );

    assert_eq!(
        nr.query("SELECT empty FROM Metric").await,
        Err(MetricError::NoData)
    );
    assert_eq!(
        nr.query("SELECT FRM").await,
        Err(MetricError::Query(
            "NRQL Syntax Error: Error at line 1 position 8, unexpected 'FRM'".into()
        ))
    );
    assert_eq!(
        nr.query("SELECT slow FROM Metric").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        nr.query("SELECT down FROM Metric").await,
        Err(MetricError::Unavailable(
            "HTTP 503 Service Unavailable: Service unavailable".into()
        ))
    );
}

#[tokio::test]
async fn nerdgraph_with_a_bad_key_is_a_query_error_without_the_key() {
    let (url, _) = receiver(|_| json(200, recorded("newrelic-nerdgraph-unauthorized.json"))).await;
    let nr = provider(&format!("{url}/graphql"), NERDGRAPH).unwrap();
    let err = nr.query("SELECT 1 FROM Metric").await.unwrap_err();
    assert_eq!(err, MetricError::Query("Invalid API key".into()));
    assert!(nr.is_online().await.is_err());
    let (url, _) =
        receiver(|_| json(401, r#"{"errors":[{"message":"Bad key NRAK-s3cret"}]}"#)).await;
    let nr = provider(&format!("{url}/graphql"), NERDGRAPH).unwrap();
    assert_eq!(
        nr.query("SELECT 1 FROM Metric").await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: Bad key ***".into()
        ))
    );
}

#[tokio::test]
async fn insights_gets_the_account_query_with_the_query_key() {
    let (url, log) = receiver(|seen| match seen.param("nrql").unwrap_or_default() {
        q if q.starts_with("SELECT FRM") => json(400, recorded("newrelic-insights-error.json")),
        q if q.starts_with("SELECT denied") => json(401, r#"{"error": "Invalid query key"}"#),
        _ => json(200, recorded("newrelic-insights-value.json")),
    })
    .await;
    let nr = provider(&url, INSIGHTS).unwrap();
    assert_eq!(
        nr.query("SELECT count(*) FROM Transaction").await,
        Ok(1843.0)
    );
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/accounts/1234567/query")
    );
    assert_eq!(seen.headers["x-query-key"], "NRIQ-s3cret");
    assert_eq!(
        seen.param("nrql").unwrap(),
        "SELECT count(*) FROM Transaction SINCE 120 seconds ago"
    );
    assert_eq!(
        nr.query("SELECT FRM").await,
        Err(MetricError::Query(
            "HTTP 400 Bad Request: NRQL Syntax Error: Error at line 1 position 8, unexpected 'FRM'"
                .into()
        ))
    );
    assert_eq!(
        nr.query("SELECT denied FROM Metric").await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: Invalid query key".into()
        ))
    );
}

#[tokio::test]
async fn missing_keys_are_named_and_keys_never_printed() {
    let err = provider("http://127.0.0.1:1", &[("newrelic_api_key", "NRAK-s3cret")])
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "the newrelic provider needs the key 'newrelic_account_id' in the template's secretRef"
    );
    let err = provider("http://127.0.0.1:1", &[("newrelic_account_id", "1")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("newrelic_query_key"), "{err}");
    // Nothing listens on port 1: a connection error, which must not carry the key.
    let nr = provider("http://127.0.0.1:1", INSIGHTS).unwrap();
    let err = nr.query("SELECT 1").await.unwrap_err();
    assert!(matches!(err, MetricError::Connection(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("s3cret"));
}

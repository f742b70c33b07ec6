//! The Dynatrace provider against a local receiver answering as the metrics v2 API documents
//! (bodies in tests/data/metrics/): the request (path, `Api-Token`, selector, resolution and
//! window), a value, no data, an error body, a timeout, bad credentials and an outage.

#[path = "support/vendor.rs"]
mod vendor;

use std::time::Duration;

use serin::metrics::{DynatraceProvider, MetricError, TemplateSource};
use vendor::{Reply, json, receiver, recorded, secret, settings};

fn provider(address: Option<String>, token: &str) -> Result<DynatraceProvider, MetricError> {
    DynatraceProvider::new(TemplateSource {
        address,
        secret: &secret(&[("dynatrace_token", token)]),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
}

#[tokio::test]
async fn metric_selector_over_the_window_gives_the_last_point() {
    let (url, log) = receiver(|seen| {
        if seen.headers.get("authorization").map(String::as_str) != Some("Api-Token dt0c01.s3cret")
        {
            return json(401, recorded("dynatrace-unauthorized.json"));
        }
        match seen.param("metricSelector").unwrap_or_default().as_str() {
            s if s.starts_with("empty") => json(200, recorded("dynatrace-empty.json")),
            s if s.starts_with("bad") => json(400, recorded("dynatrace-error.json")),
            s if s.starts_with("slow") => Reply::Never,
            s if s.starts_with("busy") => json(
                429,
                r#"{"error":{"code":429,"message":"Too Many Requests"}}"#,
            ),
            _ => json(200, recorded("dynatrace-value.json")),
        }
    })
    .await;
    let dt = provider(Some(format!("{url}/e/abc")), "dt0c01.s3cret").unwrap();
    let selector = "builtin:service.response.time:filter(eq(dt.entity.service,SERVICE-ABCDEFG0123456789)):percentile(95)";
    assert_eq!(dt.query(&format!("{selector}\n")).await, Ok(182461.5));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/e/abc/api/v2/metrics/query")
    );
    assert_eq!(seen.param("metricSelector").unwrap(), selector);
    assert_eq!(seen.param("resolution").unwrap(), "Inf");
    let from: u64 = seen.param("from").unwrap().parse().unwrap();
    let to: u64 = seen.param("to").unwrap().parse().unwrap();
    assert_eq!(to - from, 60_000);
    assert_eq!(seen.headers["x-scope-orgid"], "team-a");

    assert_eq!(dt.query("empty:metric").await, Err(MetricError::NoData));
    assert_eq!(
        dt.query("bad:percentil(95)").await,
        Err(MetricError::Query(
            "HTTP 400 Bad Request: Constraints violated. metricSelector: The metric selector is invalid: unknown transformation 'percentil'.".into()
        ))
    );
    assert_eq!(
        dt.query("slow:metric").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        dt.query("busy:metric").await,
        Err(MetricError::Unavailable(
            "HTTP 429 Too Many Requests: Too Many Requests".into()
        ))
    );
    assert!(dt.is_online().await.is_ok());

    let wrong = provider(Some(url.clone()), "dt0c01.wrong").unwrap();
    let err = wrong.query(selector).await.unwrap_err();
    assert_eq!(
        err,
        MetricError::Query("HTTP 401 Unauthorized: Token Authentication failed".into())
    );
    assert!(wrong.is_online().await.is_err());
}

#[test]
fn address_and_token_are_required() {
    assert!(
        provider(None, "t")
            .err()
            .unwrap()
            .to_string()
            .contains("address")
    );
    let err = DynatraceProvider::new(TemplateSource {
        address: Some("https://abc.live.dynatrace.com".into()),
        secret: &secret(&[]),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "the dynatrace provider needs the key 'dynatrace_token' in the template's secretRef"
    );
}

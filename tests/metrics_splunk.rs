//! The Splunk Observability provider against a local receiver answering as SignalFlow's SSE
//! transport documents (streams in tests/data/metrics/): the request (path, `X-SF-Token`, the
//! program as text, start/stop over the window, immediate), a value, no data, several series,
//! an error message, a timeout, bad credentials and an outage.

#[path = "support/vendor.rs"]
mod vendor;

use std::time::Duration;

use serin::metrics::{MetricError, SplunkProvider, TemplateSource};
use vendor::{Reply, json, receiver, recorded, secret, settings};

fn provider(address: &str, token: &str) -> SplunkProvider {
    SplunkProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(&[("sf_token_key", token)]),
        region: None,
        window: Duration::from_secs(60),
        http: settings(),
        kube: None,
    })
    .unwrap()
}

fn sse(name: &str) -> Reply {
    Reply::With(200, "text/event-stream", recorded(name))
}

#[tokio::test]
async fn signalflow_runs_over_the_window_and_the_stream_gives_the_value() {
    let (url, log) = receiver(|seen| {
        if seen.headers.get("x-sf-token").map(String::as_str) != Some("sf-s3cret") {
            return json(401, recorded("splunk-unauthorized.json"));
        }
        if seen.path == "/v2/metric" {
            return json(200, r#"{"count": 1, "results": [{"name": "traces.count"}]}"#);
        }
        match seen.body.as_str() {
            b if b.starts_with("empty") => sse("splunk-empty.sse"),
            b if b.starts_with("dta") => sse("splunk-error.sse"),
            b if b.starts_with("both") => Reply::With(200, "text/event-stream", "event: data\ndata: {\"data\": [{\"tsId\": \"A\", \"value\": 1}, {\"tsId\": \"B\", \"value\": 2}], \"logicalTimestampMs\": 1}\n\n".into()),
            b if b.starts_with("slow") => Reply::Never,
            b if b.starts_with("down") => json(503, r#"{"code": 503, "message": "Service Unavailable"}"#),
            _ => sse("splunk-value.sse"),
        }
    })
    .await;
    let splunk = provider(&url, "sf-s3cret");
    let program = "total = data('traces.count', filter=filter('sf_service', 'podinfo')).sum().publish(enable=False)\n((total/total) * 100).publish()\n";
    assert_eq!(splunk.query(program).await, Ok(99.25));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v2/signalflow/execute")
    );
    assert_eq!(seen.body, program.trim());
    assert_eq!(seen.headers["content-type"], "text/plain");
    assert_eq!(seen.param("immediate").as_deref(), Some("true"));
    let start: u64 = seen.param("start").unwrap().parse().unwrap();
    let stop: u64 = seen.param("stop").unwrap().parse().unwrap();
    assert_eq!(stop - start, 60_000);

    assert_eq!(splunk.query("empty").await, Err(MetricError::NoData));
    assert_eq!(splunk.query("both").await, Err(MetricError::ManySeries(2)));
    assert_eq!(
        splunk.query("dta('traces.count').publish()").await,
        Err(MetricError::Query(
            "Unable to compile program: ANALYTICS_PROGRAM_NAME_ERROR".into()
        ))
    );
    assert_eq!(
        splunk.query("slow").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        splunk.query("down").await,
        Err(MetricError::Unavailable(
            "HTTP 503 Service Unavailable: Service Unavailable".into()
        ))
    );
    assert_eq!(splunk.is_online().await, Ok(()));
    let wrong = provider(&url, "sf-wrong");
    assert_eq!(
        wrong.query(program).await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: Unauthorized".into()
        ))
    );
    assert!(wrong.is_online().await.is_err());
}

//! The externalmetrics provider against a local server answering like the aggregated External
//! Metrics API (bodies in tests/data/metrics/): the request (path with namespace and metric, the
//! label selector, the bearer token), a value (a quantity), no data, an error `Status`, a
//! timeout, bad credentials and an outage.

#[path = "support/vendor.rs"]
mod vendor;

use std::time::Duration;

use serin::metrics::{Auth, ExternalMetricsProvider, MetricError, TemplateSource};
use vendor::{Reply, json, receiver, recorded, secret, settings};

fn provider(address: &str, token: &str) -> ExternalMetricsProvider {
    let mut http = settings();
    http.auth = Auth::Bearer(token.into());
    ExternalMetricsProvider::new(TemplateSource {
        address: Some(address.to_string()),
        secret: &secret(&[("token", token)]),
        region: None,
        window: Duration::from_secs(60),
        http,
        kube: None,
    })
    .unwrap()
}

#[tokio::test]
async fn an_external_metric_value_list_gives_the_value() {
    let (url, log) = receiver(|seen| {
        if seen.headers.get("authorization").map(String::as_str) != Some("Bearer sa-s3cret") {
            return json(401, recorded("external-metrics-unauthorized.json"));
        }
        match seen.path.rsplit('/').next().unwrap_or_default() {
            "s0-rabbitmq-orders" => json(200, recorded("external-metrics-value.json")),
            "idle" => json(200, recorded("external-metrics-empty.json")),
            "slow" => Reply::Never,
            "down" => json(503, r#"{"kind": "Status", "status": "Failure", "message": "the server is currently unable to handle the request", "code": 503}"#),
            _ => json(404, recorded("external-metrics-not-found.json")),
        }
    })
    .await;
    let em = provider(&url, "sa-s3cret");
    let query = "test/s0-rabbitmq-orders?labelSelector=scaledobject.keda.sh%2Fname%3Dpodinfo\n";
    assert_eq!(em.query(query).await, Ok(1.5));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        seen.path,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/test/s0-rabbitmq-orders"
    );
    assert_eq!(
        seen.param("labelSelector").as_deref(),
        Some("scaledobject.keda.sh/name=podinfo")
    );
    assert_eq!(em.query("idle").await, Err(MetricError::NoData));
    assert_eq!(
        log.lock().unwrap()[1].path,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/idle"
    );
    assert_eq!(
        em.query("test/nope").await,
        Err(MetricError::Query(
            "HTTP 404 Not Found: scaledobject.keda.sh \"nope\" not found".into()
        ))
    );
    assert_eq!(
        em.query("slow").await,
        Err(MetricError::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        em.query("down").await,
        Err(MetricError::Unavailable(
            "HTTP 503 Service Unavailable: the server is currently unable to handle the request"
                .into()
        ))
    );
    let wrong = provider(&url, "wrong-token");
    assert_eq!(
        wrong.query(query).await,
        Err(MetricError::Query(
            "HTTP 401 Unauthorized: Unauthorized".into()
        ))
    );
    assert!(wrong.is_online().await.is_err());
}

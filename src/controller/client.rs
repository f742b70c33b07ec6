//! The controller's Kubernetes client: every request carries Serin's User-Agent (so audit logs
//! and the API server name the caller) and is counted in `serin_kube_api_requests_total` by verb,
//! resource and status code; a request that is not a watch gives up after a bounded time, and
//! connections are not kept for minutes after the API server went away (idle ones are dropped,
//! TCP keepalive finds dead peers). Must not decide anything or read request bodies.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::header::USER_AGENT;
use kube::client::{Body, ConfigExt};

use crate::telemetry::{ApiCallLabels, Telemetry, api_calls};

/// The User-Agent of every request the controller makes.
pub const AGENT: &str = concat!("serin/", env!("CARGO_PKG_VERSION"));

/// Longest time a request that is not a watch may take to answer: one left on a dead connection
/// must fail and be retried, not hold a reconcile for the five minutes of kube's read timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// TCP keepalive: first probe after this much silence, then every `KEEPALIVE_INTERVAL`.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A client for a long-running controller: kube's own stack (base URI, authentication, extra
/// headers, TLS from the kubeconfig) on a connection pool that drops idle connections after
/// 30 s and probes silent ones with TCP keepalive, so that after an API server restart no request
/// waits on a connection to a process that is gone.
pub fn connect(config: kube::Config) -> kube::Result<kube::Client> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(KEEPALIVE));
    http.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
    http.set_keepalive_retries(Some(3));
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut timeouts = hyper_timeout::TimeoutConnector::new(https);
    timeouts.set_connect_timeout(config.connect_timeout.or(Some(Duration::from_secs(10))));
    timeouts.set_read_timeout(config.read_timeout);
    timeouts.set_write_timeout(config.write_timeout);
    let pool = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(timeouts);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(pool);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Wraps `client` so that its requests are named and counted. Must run inside a Tokio runtime.
pub fn instrumented(client: kube::Client, telemetry: Arc<Telemetry>) -> kube::Client {
    let namespace = client.default_namespace().to_string();
    let service = tower::service_fn(move |mut req: http::Request<Body>| {
        let client = client.clone();
        let telemetry = telemetry.clone();
        async move {
            if !req.headers().contains_key(USER_AGENT) {
                req.headers_mut()
                    .insert(USER_AGENT, HeaderValue::from_static(AGENT));
            }
            let (verb, resource) = api_calls::classify(
                req.method().as_str(),
                req.uri().path(),
                req.uri().query().unwrap_or(""),
            );
            let watch = req
                .uri()
                .query()
                .is_some_and(|q| q.contains("watch=1") || q.contains("watch=true"));
            let result = if watch {
                client.send(req).await
            } else {
                match tokio::time::timeout(REQUEST_TIMEOUT, client.send(req)).await {
                    Ok(r) => r,
                    Err(_) => Err(kube::Error::Service(
                        format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()).into(),
                    )),
                }
            };
            let code = match &result {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            telemetry
                .api_calls
                .get_or_create(&ApiCallLabels {
                    verb: verb.to_string(),
                    resource,
                    code,
                })
                .inc();
            result
        }
    });
    kube::Client::new(service, namespace)
}

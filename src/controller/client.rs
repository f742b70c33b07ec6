//! The controller's Kubernetes client: every request carries Serin's User-Agent (so audit logs
//! and the API server name the caller) and is counted in `serin_kube_api_requests_total` by verb,
//! resource and status code; a request that is not a watch gives up after a bounded time, and
//! connections are not kept for minutes after the API server went away (idle ones are dropped,
//! TCP keepalive finds dead peers). The time a reconcile spends waiting on the API server is
//! clocked (`with_api_clock`, `api_time`) for the step lateness breakdown. Must not decide
//! anything or read request bodies.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

tokio::task_local! {
    /// The API clock of the reconcile being polled (none outside a reconcile, e.g. in watches).
    static API_CLOCK: Arc<ApiClock>;
}

/// Wall time during which at least one API request of one reconcile was in flight (concurrent
/// requests count once: the reconcile waits for them together).
#[derive(Default)]
struct ApiClock(Mutex<Busy>);

#[derive(Default)]
struct Busy {
    in_flight: u32,
    since: Option<Instant>,
    total: Duration,
}

impl ApiClock {
    fn begin(self: &Arc<Self>) -> InFlight {
        if let Ok(mut b) = self.0.lock() {
            if b.in_flight == 0 {
                b.since = Some(Instant::now());
            }
            b.in_flight += 1;
        }
        InFlight(self.clone())
    }

    fn elapsed(&self) -> Duration {
        self.0.lock().map_or(Duration::ZERO, |b| {
            b.total + b.since.map_or(Duration::ZERO, |s| s.elapsed())
        })
    }
}

/// One request in flight; its end is clocked on drop (also when the request is cancelled).
struct InFlight(Arc<ApiClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.0.lock() {
            b.in_flight = b.in_flight.saturating_sub(1);
            if b.in_flight == 0
                && let Some(s) = b.since.take()
            {
                b.total += s.elapsed();
            }
        }
    }
}

/// Runs `f` (one reconcile) with its own API clock. kube's client polls the request future in
/// the caller's task, so requests made inside `f` find the clock.
pub async fn with_api_clock<F: std::future::Future>(f: F) -> F::Output {
    API_CLOCK.scope(Arc::default(), f).await
}

/// Time the current reconcile has spent waiting on API requests so far (zero outside one).
pub fn api_time() -> Duration {
    API_CLOCK.try_with(|c| c.elapsed()).unwrap_or_default()
}

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
            let _in_flight = if watch {
                None
            } else {
                API_CLOCK.try_with(|c| c.begin()).ok()
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ListParams};

    /// Requests made inside `with_api_clock` are clocked (kube polls them in the caller's task),
    /// requests outside one are not, and the clock of one reconcile is not another's.
    #[tokio::test]
    async fn a_reconcile_clocks_its_own_api_requests() {
        let cluster = crate::sim::Cluster::start().await.expect("sim");
        let client = instrumented(cluster.client(), Telemetry::new("kubernetes"));
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        api.list(&ListParams::default()).await.expect("list");
        assert_eq!(api_time(), Duration::ZERO);
        let (before, after) = with_api_clock(async {
            let before = api_time();
            api.list(&ListParams::default()).await.expect("list");
            (before, api_time())
        })
        .await;
        assert_eq!(before, Duration::ZERO);
        assert!(after > Duration::ZERO, "no API time clocked");
        let fresh = with_api_clock(async { api_time() }).await;
        assert_eq!(fresh, Duration::ZERO);
    }
}

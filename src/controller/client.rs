//! The controller's Kubernetes client: every request carries Serin's User-Agent (so audit logs
//! and the API server name the caller) and is counted in `serin_kube_api_requests_total` by verb,
//! resource and status code. Must not decide anything or read request bodies.

use std::sync::Arc;

use http::HeaderValue;
use http::header::USER_AGENT;
use kube::client::Body;

use crate::telemetry::{ApiCallLabels, Telemetry, api_calls};

/// The User-Agent of every request the controller makes.
pub const AGENT: &str = concat!("serin/", env!("CARGO_PKG_VERSION"));

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
            let result = client.send(req).await;
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

//! The `externalmetrics` provider: a Kubernetes External Metrics API server
//! (`external.metrics.k8s.io/v1beta1`: KEDA's metrics server, Datadog's cluster agent, the
//! Stackdriver adapter...), with Flagger's query `[<namespace>/]<metric>[?labelSelector=<sel>]`
//! (namespace `default` when omitted, as Flagger). Through the cluster's API server (the chart's
//! `integrations.externalMetrics`), or, when the template has an address, straight to that server
//! with the Secret's `token` and `insecureSkipVerify`, as Flagger overrides its REST config. The
//! value is the only item of the `ExternalMetricValueList`, its Kubernetes quantity read as a
//! number; no item is `NoData`, several an error naming the count. Must not import the controller.

use serde_json::Value;

use super::{HttpSettings, MetricError, TemplateSource, finite, kube_error, parse_url};
use crate::rbac::{Needed, Rule};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 4 << 20;
/// The API's path prefix.
const PREFIX: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// What the provider calls through the API server (granted with `integrations.externalMetrics`).
/// The resources of this API are metric names, unknown in advance: this is the one wildcard
/// Serin asks for, the same grant Kubernetes gives the HPA controller, read-only.
pub const RBAC: &[Rule] = &[Rule {
    group: "external.metrics.k8s.io",
    resources: &["*"],
    verbs: &["list"],
    needed: Needed::Integration("externalMetrics"),
    why: "externalmetrics checks: read external metric values (the resources are metric names)",
}];

/// Where the API answers.
enum Server {
    /// The cluster's API server, as the controller reaches it.
    Cluster(kube::Client),
    /// A server at this address, with the template's credentials.
    Direct {
        client: reqwest::Client,
        base: reqwest::Url,
    },
}

/// One External Metrics API.
pub struct ExternalMetricsProvider {
    server: Server,
    http: HttpSettings,
}

/// The request path of a query (`/apis/.../namespaces/<ns>/<metric>?labelSelector=...`).
fn path_of(query: &str) -> Result<String, MetricError> {
    let q = query.trim();
    let (path, params) = q.split_once('?').unwrap_or((q, ""));
    let (namespace, metric) = match path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..]
    {
        [metric] => ("default", metric),
        [namespace, metric] => (
            if namespace.is_empty() {
                "default"
            } else {
                namespace
            },
            metric,
        ),
        _ => {
            return Err(MetricError::Config(format!(
                "externalmetrics query '{q}': expected [<namespace>/]<metric>[?labelSelector=...]"
            )));
        }
    };
    if metric.is_empty() {
        return Err(MetricError::Config(format!(
            "externalmetrics query '{q}': the metric name is empty"
        )));
    }
    let selector = url::form_urlencoded::parse(params.as_bytes())
        .find(|(k, _)| k == "labelSelector")
        .map(|(_, v)| v.into_owned());
    let mut path = format!("{PREFIX}/namespaces/{namespace}/{metric}");
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        path.push_str(&format!("?labelSelector={encoded}"));
    }
    Ok(path)
}

impl ExternalMetricsProvider {
    /// A provider on the template's address, else on the cluster's API server.
    pub fn new(source: TemplateSource<'_>) -> Result<ExternalMetricsProvider, MetricError> {
        let server = match (&source.address, source.kube) {
            (Some(a), _) => Server::Direct {
                client: source.http.client()?,
                base: parse_url(a)?,
            },
            (None, Some(client)) => Server::Cluster(client),
            (None, None) => {
                return Err(MetricError::Config(
                    "the externalmetrics provider needs an address or the Kubernetes API".into(),
                ));
            }
        };
        Ok(ExternalMetricsProvider {
            server,
            http: source.http,
        })
    }

    /// Reads the metric the query names.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let list = self.get(&path_of(query)?, query.trim()).await?;
        value_of(&list)
    }

    /// The API answers (a dummy metric's empty list, as Flagger checks).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        self.get(
            &format!("{PREFIX}/namespaces/kube-system/dummy-metric"),
            "the External Metrics API",
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, path: &str, what: &str) -> Result<Value, MetricError> {
        match &self.server {
            Server::Cluster(client) => {
                let request = http::Request::get(path)
                    .body(Vec::new())
                    .map_err(|e| MetricError::Config(e.to_string()))?;
                tokio::time::timeout(self.http.timeout, client.request::<Value>(request))
                    .await
                    .map_err(|_| MetricError::Timeout(self.http.timeout))?
                    .map_err(|e| kube_error(e, &format!("external metric {what}")))
            }
            Server::Direct { client, base } => {
                let url = base
                    .join(path)
                    .map_err(|e| MetricError::Config(e.to_string()))?;
                let request = client.get(url).header("accept", "application/json");
                let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
                let message = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|b| b["message"].as_str().map(String::from));
                self.http
                    .judge(status, message.as_deref().map_or(&bytes[..], str::as_bytes))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| MetricError::Answer(format!("the answer is not JSON: {e}")))
            }
        }
    }
}

/// A Kubernetes quantity (`1500m`, `2k`, `3Mi`, `1e3`) as a number.
pub fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in suffixes {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|v| v * factor);
        }
    }
    match q.strip_suffix('E') {
        // `E` alone is exa; `1E3` is an exponent, which parse() reads.
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            n.parse::<f64>().ok().map(|v| v * 1e18)
        }
        _ => q.parse().ok(),
    }
}

/// The value of the only item of an `ExternalMetricValueList`.
pub fn value_of(list: &Value) -> Result<f64, MetricError> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let one = match items.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let raw = match &one["value"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(MetricError::Answer(format!(
                "value {other} is not a quantity"
            )));
        }
    };
    match quantity(&raw) {
        Some(v) => finite(v),
        None => Err(MetricError::Answer(format!(
            "value '{raw}' is not a quantity"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flagger_queries_become_paths() {
        assert_eq!(
            path_of("queue_length").unwrap(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length"
        );
        assert_eq!(
            path_of(
                "test/s0-rabbitmq-orders?labelSelector=scaledobject.keda.sh%2Fname%3Dpodinfo\n"
            )
            .unwrap(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/test/s0-rabbitmq-orders?labelSelector=scaledobject.keda.sh%2Fname%3Dpodinfo"
        );
        assert!(path_of("a/b/c").is_err());
        assert!(path_of("ns/").is_err());
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity("1500m"), Some(1.5));
        assert_eq!(quantity("2k"), Some(2000.0));
        assert_eq!(quantity("1Ki"), Some(1024.0));
        assert_eq!(quantity("42"), Some(42.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("2E"), Some(2e18));
        assert_eq!(quantity("x"), None);
    }

    #[test]
    fn the_only_item_is_the_value() {
        let one = json!({"kind": "ExternalMetricValueList", "items": [{"metricName": "q", "value": "250m"}]});
        assert_eq!(value_of(&one), Ok(0.25));
        assert_eq!(value_of(&json!({"items": []})), Err(MetricError::NoData));
        assert_eq!(
            value_of(&json!({"items": [{"value": "1"}, {"value": "2"}]})),
            Err(MetricError::ManySeries(2))
        );
    }
}

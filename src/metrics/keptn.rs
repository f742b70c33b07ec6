//! The Keptn provider: reads Keptn's metrics objects (`metrics.keptn.sh/v1beta1`) through the
//! Kubernetes API, with Flagger's query `<keptnmetric|analysis>/<namespace>/<name>[/<timeframe>
//! [/<k=v;k=v>]]`. A `KeptnMetric`'s value is its `status.value` (none yet is `NoData`, its
//! `status.errMsg` a query error). An `analysis` creates an `Analysis` of the named
//! `AnalysisDefinition` over the timeframe (default `1m`) with the arguments, waits for Keptn to
//! complete it within the timeout, answers 1 (passed) or 0 (failed) as Flagger does, and deletes
//! it. API errors are sorted like HTTP ones (5xx/429 `Unavailable`, no connection, timeout).
//! Must not import the controller.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use super::{MetricError, TemplateSource, kube_error};
use crate::rbac::{Needed, Rule};

/// Keptn's metrics API group and the version Flagger reads.
const GROUP: &str = "metrics.keptn.sh";
const VERSION: &str = "v1beta1";
/// How often a pending Analysis is looked at.
const POLL: Duration = Duration::from_millis(500);

/// What the keptn provider calls (granted with the chart's `integrations.keptn`).
pub const RBAC: &[Rule] = &[
    Rule {
        group: GROUP,
        resources: &["keptnmetrics"],
        verbs: &["get"],
        needed: Needed::Integration("keptn"),
        why: "keptn metric checks: read a KeptnMetric's value",
    },
    Rule {
        group: GROUP,
        resources: &["analyses"],
        verbs: &["get", "create", "delete"],
        needed: Needed::Integration("keptn"),
        why: "keptn metric checks: run an Analysis, read its verdict, delete it when read",
    },
];

/// A parsed query.
#[derive(Debug, PartialEq)]
enum Query {
    Metric {
        namespace: String,
        name: String,
    },
    Analysis {
        namespace: String,
        definition: String,
        timeframe: String,
        args: BTreeMap<String, String>,
    },
}

fn parse(query: &str) -> Result<Query, MetricError> {
    let bad = |why: &str| {
        MetricError::Config(format!(
            "keptn query '{}': {why}; expected <keptnmetric|analysis>/<namespace>/<name>/<timeframe>/<k=v;...>",
            query.trim()
        ))
    };
    let parts: Vec<&str> = query.trim().split('/').map(str::trim).collect();
    if parts.len() < 3 || parts[1].is_empty() || parts[2].is_empty() {
        return Err(bad("too few parts"));
    }
    let (namespace, name) = (parts[1].to_string(), parts[2].to_string());
    match parts[0].to_lowercase().as_str() {
        "keptnmetric" | "keptnmetrics" => Ok(Query::Metric { namespace, name }),
        "analysis" | "analyses" => Ok(Query::Analysis {
            namespace,
            definition: name,
            timeframe: parts
                .get(3)
                .filter(|t| !t.is_empty())
                .unwrap_or(&"1m")
                .to_string(),
            args: parts
                .get(4)
                .into_iter()
                .flat_map(|a| a.split(';'))
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        }),
        _ => Err(bad("the kind must be keptnmetric or analysis")),
    }
}

/// Keptn through the cluster's API.
pub struct KeptnProvider {
    client: kube::Client,
    timeout: Duration,
}

fn api(client: &kube::Client, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(GROUP, VERSION, kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

impl KeptnProvider {
    /// A provider on the cluster the controller runs against.
    pub fn new(source: TemplateSource<'_>) -> Result<KeptnProvider, MetricError> {
        let client = source.kube.ok_or_else(|| {
            MetricError::Config("the keptn provider needs the Kubernetes API".into())
        })?;
        Ok(KeptnProvider {
            client,
            timeout: source.http.timeout,
        })
    }

    /// Runs the query within the timeout. An Analysis is deleted even when Keptn did not
    /// complete it in time: only the wait is cut short, never the clean-up.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        match parse(query)? {
            Query::Metric { namespace, name } => self.bounded(self.metric(&namespace, &name)).await,
            Query::Analysis {
                namespace,
                definition,
                timeframe,
                args,
            } => {
                let api = api(&self.client, &namespace, "Analysis", "analyses");
                let created = self
                    .bounded(self.start(&api, &definition, &timeframe, &args))
                    .await?;
                let verdict = self.bounded(self.verdict(&api, &created, &namespace)).await;
                // Deleted whatever the verdict; a failed delete leaves one object, not a failure.
                let deleted = self
                    .bounded(async {
                        api.delete(&created, &DeleteParams::default())
                            .await
                            .map_err(|e| kube_error(e, "deleting the Analysis"))
                    })
                    .await;
                if let Err(e) = deleted {
                    tracing::warn!(analysis = %created, namespace = %namespace, error = %e, "cannot delete a Keptn Analysis");
                }
                verdict
            }
        }
    }

    /// `work` within the timeout.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, MetricError>>,
    ) -> Result<T, MetricError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| MetricError::Timeout(self.timeout))?
    }

    /// Keptn needs no connection of its own: the API server answers (it is up, or nothing is).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        Ok(())
    }

    async fn metric(&self, namespace: &str, name: &str) -> Result<f64, MetricError> {
        let what = format!("KeptnMetric {namespace}/{name}");
        let obj = api(&self.client, namespace, "KeptnMetric", "keptnmetrics")
            .get(name)
            .await
            .map_err(|e| kube_error(e, &what))?;
        let status = &obj.data["status"];
        match status["value"].as_str().filter(|v| !v.is_empty()) {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| MetricError::Answer(format!("{what} has value '{v}', not a number")))
                .and_then(super::finite),
            None => match status["errMsg"].as_str().filter(|m| !m.is_empty()) {
                Some(m) => Err(MetricError::Query(format!("{what}: {m}"))),
                None => Err(MetricError::NoData),
            },
        }
    }

    /// Creates the Analysis; its name.
    async fn start(
        &self,
        api: &Api<DynamicObject>,
        definition: &str,
        timeframe: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<String, MetricError> {
        let name = format!("{definition}-{:06x}", fastrand::u32(..0x0100_0000));
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "Analysis",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "serin"}},
            "spec": {
                "analysisDefinition": {"name": definition},
                "timeframe": {"recent": timeframe},
                "args": args,
            },
        }))
        .map_err(|e| MetricError::Config(e.to_string()))?;
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| kube_error(e, &format!("creating an Analysis of {definition}")))?;
        Ok(created.metadata.name.unwrap_or(name))
    }

    /// Waits for Keptn to complete the Analysis: 1 when it passed, 0 when not.
    async fn verdict(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        namespace: &str,
    ) -> Result<f64, MetricError> {
        let what = format!("Analysis {namespace}/{name}");
        let started = Instant::now();
        loop {
            let obj = api.get(name).await.map_err(|e| kube_error(e, &what))?;
            let status = &obj.data["status"];
            if status["state"] == "Completed" {
                return match status["pass"] {
                    Value::Bool(true) => Ok(1.0),
                    _ => Ok(0.0),
                };
            }
            if started.elapsed() + POLL > self.timeout {
                return Err(MetricError::Timeout(self.timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagger_queries_parse() {
        assert_eq!(
            parse("keptnmetric/my-namespace/response-time/2m/reporter=destination\n").unwrap(),
            Query::Metric {
                namespace: "my-namespace".into(),
                name: "response-time".into()
            }
        );
        assert_eq!(
            parse("analysis/ns/my-def/5m/foo=bar;bar=foo").unwrap(),
            Query::Analysis {
                namespace: "ns".into(),
                definition: "my-def".into(),
                timeframe: "5m".into(),
                args: [("bar".into(), "foo".into()), ("foo".into(), "bar".into())].into(),
            }
        );
        assert!(matches!(
            parse("analysis/ns/def").unwrap(),
            Query::Analysis { timeframe, .. } if timeframe == "1m"
        ));
        assert!(matches!(
            parse("keptnmetric/ns"),
            Err(MetricError::Config(_))
        ));
        assert!(matches!(parse("metric/ns/x"), Err(MetricError::Config(_))));
    }
}

//! Rendering of query templates with Flagger's placeholders: `{{ name }}`, `{{ namespace }}`,
//! `{{ target }}`, `{{ service }}`, `{{ ingress }}`, `{{ route }}`, `{{ interval }}` and
//! `{{ variables.<key> }}`, and `{{ side }}` for the statistical judge. Hand-written (Flagger's Go
//! templates are only ever used this way); a placeholder it does not know is an error naming it,
//! never an empty string in a query. Pure: the model of a Canary's metric is built here so the
//! controller and `serin backtest` render alike.

use std::collections::BTreeMap;

use crate::api::duration::{parse_duration, to_prometheus_range};
use crate::api::{Canary, CanaryMetric};

/// The values a query template can use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryModel {
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// The target workload's name.
    pub target: String,
    /// The apex Service's name.
    pub service: String,
    /// The ingress (spec.ingressRef) name, empty when none.
    pub ingress: String,
    /// The route (spec.routeRef, else the apex) name.
    pub route: String,
    /// The query window, such as `1m`.
    pub interval: String,
    /// `templateVariables` of the metric.
    pub variables: BTreeMap<String, String>,
    /// The side a compared metric is queried for (`canary` or `primary`); None for other metrics,
    /// where `{{ side }}` is an error.
    pub side: Option<String>,
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder names nothing the model has.
    #[error("unknown template variable '{0}'")]
    UnknownVariable(String),
    /// `{{ variables.<key> }}` names a key the metric's templateVariables lack.
    #[error("templateVariables has no key '{0}'")]
    MissingVariable(String),
    /// `{{ side }}` in a metric without `compare`.
    #[error("'side' is only defined for metrics with compare")]
    NoSide,
    /// `{{` without a matching `}}`.
    #[error("unclosed '{{{{' at byte {0}")]
    Unclosed(usize),
}

impl QueryModel {
    /// The model of metric `m` of `canary`: names from the spec, `{{ interval }}` the metric's
    /// own window (default `DEFAULT_INTERVAL`) in Prometheus range syntax.
    pub fn for_metric(canary: &Canary, m: &CanaryMetric) -> QueryModel {
        let spec = &canary.spec;
        let window = m.interval.as_deref().unwrap_or(super::DEFAULT_INTERVAL);
        QueryModel {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.namespace_or_default(),
            target: spec.target_ref.name.clone(),
            service: canary.apex_name(),
            ingress: spec
                .ingress_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_else(|| spec.target_ref.name.clone()),
            route: spec
                .route_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_else(|| canary.apex_name()),
            interval: parse_duration(window)
                .map(to_prometheus_range)
                .unwrap_or_else(|_| window.to_string()),
            variables: m.template_variables.clone().unwrap_or_default(),
            // A compared metric renders for the canary unless the judge asks for the other side.
            side: m
                .compare
                .as_ref()
                .map(|_| crate::analysis::CANARY_SIDE.to_string()),
        }
    }

    /// The two models of a compared metric, the canary's first: each side's `{{ side }}` is its
    /// name and `{{ target }}` its workload (the other side is the judge's, `other_side`). The
    /// controller's sampling and `serin backtest` both render the sides through here.
    pub fn for_sides(canary: &Canary, m: &CanaryMetric) -> [QueryModel; 2] {
        let other = crate::analysis::other_side(&canary.spec);
        let base = QueryModel::for_metric(canary, m);
        let ours = QueryModel {
            side: Some(crate::analysis::CANARY_SIDE.to_string()),
            ..base.clone()
        };
        let theirs = QueryModel {
            target: other.workload,
            side: Some(other.side.to_string()),
            ..base
        };
        [ours, theirs]
    }

    fn lookup(&self, key: &str) -> Result<&str, TemplateError> {
        if let Some(var) = key.strip_prefix("variables.") {
            return self
                .variables
                .get(var)
                .map(String::as_str)
                .ok_or_else(|| TemplateError::MissingVariable(var.to_string()));
        }
        Ok(match key {
            "name" => &self.name,
            "namespace" => &self.namespace,
            "target" => &self.target,
            "service" => &self.service,
            "ingress" => &self.ingress,
            "route" => &self.route,
            "interval" => &self.interval,
            "side" => self.side.as_deref().ok_or(TemplateError::NoSide)?,
            other => return Err(TemplateError::UnknownVariable(other.to_string())),
        })
    }

    /// Renders `template`, replacing every `{{ placeholder }}` (whitespace inside optional).
    pub fn render(&self, template: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(TemplateError::Unclosed(offset + start));
            };
            out.push_str(self.lookup(after[..end].trim())?);
            let consumed = start + 2 + end + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model() -> QueryModel {
        QueryModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "web".into(),
            route: "podinfo".into(),
            interval: "1m".into(),
            variables: [("direction".to_string(), "inbound".to_string())].into(),
            side: None,
        }
    }

    #[test]
    fn side_renders_only_for_compared_metrics() {
        let q = r#"x{side="{{ side }}",app="{{ target }}"}"#;
        assert_eq!(model().render(q), Err(TemplateError::NoSide));
        let primary = QueryModel {
            target: "podinfo-primary".into(),
            side: Some("primary".into()),
            ..model()
        };
        assert_eq!(
            primary.render(q).unwrap(),
            r#"x{side="primary",app="podinfo-primary"}"#
        );
    }

    #[test]
    fn a_compared_metric_renders_once_per_side() {
        let canary: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 1, "iterations": 1, "metrics": [
                    {"name": "latency", "query": "q", "compare": {"direction": "increase"}}]}}
        }))
        .unwrap();
        let m = &canary.spec.analysis.metrics.as_ref().unwrap()[0];
        let [ours, theirs] = QueryModel::for_sides(&canary, m);
        let q = "x{app=\"{{ target }}\",side=\"{{ side }}\"}";
        assert_eq!(
            ours.render(q).unwrap(),
            "x{app=\"podinfo\",side=\"canary\"}"
        );
        assert_eq!(
            theirs.render(q).unwrap(),
            "x{app=\"podinfo-primary\",side=\"primary\"}"
        );
        assert_eq!(theirs.namespace, "test", "only the side's names differ");
    }

    #[test]
    fn flagger_placeholders_render_with_or_without_spaces() {
        let q = r#"rate(x{ns="{{ namespace }}",d=~"{{target}}",s="{{ service }}",dir="{{ variables.direction }}"}[{{ interval }}])"#;
        assert_eq!(
            model().render(q).unwrap(),
            r#"rate(x{ns="test",d=~"podinfo",s="podinfo-svc",dir="inbound"}[1m])"#
        );
        assert_eq!(
            model()
                .render("{{ name }}/{{ ingress }}/{{ route }}")
                .unwrap(),
            "podinfo/web/podinfo"
        );
    }

    #[test]
    fn unknown_and_missing_variables_are_named() {
        assert_eq!(
            model().render("{{ targt }}"),
            Err(TemplateError::UnknownVariable("targt".into()))
        );
        assert_eq!(
            model()
                .render("{{ variables.nope }}")
                .unwrap_err()
                .to_string(),
            "templateVariables has no key 'nope'"
        );
        assert_eq!(
            model().render("sum(x) {{ target"),
            Err(TemplateError::Unclosed(7))
        );
    }

    proptest! {
        #[test]
        fn rendering_never_panics_and_text_without_braces_is_unchanged(s in "\\PC{0,80}") {
            let r = model().render(&s);
            if !s.contains("{{") {
                prop_assert_eq!(r.unwrap(), s);
            }
        }
    }
}

//! The built-in metrics `request-success-rate` (percent of non-5xx requests) and
//! `request-duration` (P99 in milliseconds) for each router, with the queries Flagger uses, so a
//! Canary moved over from Flagger measures the same thing. `gatewayapi` uses the Istio queries, as
//! Flagger does (Gateway API implementations export different metrics; a MetricTemplate fits
//! yours). Pure: returns query templates for `template::QueryModel::render`.

use super::template::QueryModel;

/// Name of the built-in success-rate metric.
pub const SUCCESS_RATE: &str = "request-success-rate";
/// Name of the built-in duration metric.
pub const DURATION: &str = "request-duration";

/// Whether `name` is a built-in metric.
pub fn is_builtin(name: &str) -> bool {
    name == SUCCESS_RATE || name == DURATION
}

/// Success rate: 100 x non-5xx rate / total rate, over the same selector.
fn success_rate(metric: &str, selector: &str, ok: &str) -> String {
    format!(
        "sum(rate({metric}{{{selector},{ok}}}[{{{{ interval }}}}])) / sum(rate({metric}{{{selector}}}[{{{{ interval }}}}])) * 100"
    )
}

/// P99 from histogram buckets; `scale` converts the bucket unit to milliseconds.
fn p99(bucket: &str, selector: &str, scale: &str) -> String {
    format!(
        "histogram_quantile(0.99, sum(rate({bucket}{{{selector}}}[{{{{ interval }}}}])) by (le)){scale}"
    )
}

/// The query template of a built-in metric for a provider; None when the name is not built in
/// or the provider has no built-in queries.
pub fn query(provider: &str, name: &str) -> Option<String> {
    let base = provider.split(':').next().unwrap_or(provider);
    let (metric, bucket, selector, ok, scale) = match base {
        "kubernetes" => (
            "http_request_duration_seconds_count",
            "http_request_duration_seconds_bucket",
            r#"kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)""#,
            r#"status!~"5.*""#,
            " * 1000",
        ),
        "istio" | "gatewayapi" => (
            "istio_requests_total",
            "istio_request_duration_milliseconds_bucket",
            r#"reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}""#,
            r#"response_code!~"5.*""#,
            "",
        ),
        "linkerd" => (
            "response_total",
            "response_latency_ms_bucket",
            r#"namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound""#,
            r#"classification!="failure""#,
            "",
        ),
        "contour" => (
            "envoy_cluster_upstream_rq",
            "envoy_cluster_upstream_rq_time_bucket",
            r#"envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+""#,
            r#"envoy_response_code!~"5.*""#,
            "",
        ),
        "kuma" => (
            "envoy_cluster_upstream_rq",
            "envoy_cluster_upstream_rq_time_bucket",
            r#"kuma_io_service=~"{{ service }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+""#,
            r#"envoy_response_code!~"5.*""#,
            "",
        ),
        // Gloo names an Upstream's Envoy cluster `<upstream>_<namespace>`; Prometheus anchors
        // the regex, so the `_<namespace>` part must be matched too (as Flagger's query does).
        "gloo" => (
            "envoy_cluster_upstream_rq",
            "envoy_cluster_upstream_rq_time_bucket",
            r#"envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+""#,
            r#"envoy_response_code!~"5.*""#,
            "",
        ),
        // Knative behind Kourier: Envoy clusters named `<namespace>/<name>`, Flagger's selector.
        "knative" => (
            "envoy_cluster_upstream_rq",
            "envoy_cluster_upstream_rq_time_bucket",
            r#"envoy_cluster_name=~"{{ namespace }}/{{ route }}""#,
            r#"envoy_response_code!~"5.*""#,
            "",
        ),
        "traefik" => (
            "traefik_service_request_duration_seconds_bucket",
            "traefik_service_request_duration_seconds_bucket",
            r#"service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd""#,
            r#"code!~"5..""#,
            " * 1000",
        ),
        "nginx" => return nginx(name),
        "skipper" => return skipper(name),
        "apisix" => return apisix(name),
        _ => return None,
    };
    match name {
        SUCCESS_RATE if base == "traefik" => Some(success_rate(
            metric,
            &format!(r#"{selector},le="+Inf""#),
            ok,
        )),
        SUCCESS_RATE => Some(success_rate(metric, selector, ok)),
        DURATION => Some(p99(bucket, selector, scale)),
        _ => None,
    }
}

/// NGINX exports no latency histogram per ingress: the duration is the mean upstream latency.
fn nginx(name: &str) -> Option<String> {
    let selector = r#"namespace="{{ namespace }}",ingress="{{ ingress }}""#;
    match name {
        SUCCESS_RATE => Some(success_rate(
            "nginx_ingress_controller_requests",
            selector,
            r#"status!~"5.*""#,
        )),
        DURATION => Some(format!(
            "sum(rate(nginx_ingress_controller_ingress_upstream_latency_seconds_sum{{{selector}}}[{{{{ interval }}}}])) / sum(rate(nginx_ingress_controller_ingress_upstream_latency_seconds_count{{{selector}}}[{{{{ interval }}}}])) * 1000"
        )),
        _ => None,
    }
}

/// Skipper exports no latency histogram per route either: the duration is the mean. Its route
/// names hold the namespace, the canary Ingress and the canary Service (`for_model` makes every
/// non-word character of them `_`, as Skipper does).
fn skipper(name: &str) -> Option<String> {
    let route = r#"route=~"kube(ew)?_{{ namespace }}__{{ ingress }}_canary__.*__{{ service }}_canary(_[0-9]+)?""#;
    match name {
        SUCCESS_RATE => Some(success_rate(
            "skipper_response_duration_seconds_bucket",
            &format!(r#"{route},le="+Inf""#),
            r#"code!~"5..""#,
        )),
        DURATION => Some(format!(
            "sum(rate(skipper_serve_route_duration_seconds_sum{{{route}}}[{{{{ interval }}}}])) / sum(rate(skipper_serve_route_duration_seconds_count{{{route}}}[{{{{ interval }}}}])) * 1000"
        )),
        _ => None,
    }
}

/// APISIX labels its metrics with the route the ingress controller made of Serin's ApisixRoute
/// (`<namespace>_<routeRef>-<apex>-canary_<rule>`), which carries both sides' requests, as in
/// Flagger (whose query names the target where the route is named after the apex); latency
/// buckets are in milliseconds.
fn apisix(name: &str) -> Option<String> {
    let route = r#"route=~"{{ namespace }}_{{ route }}-{{ service }}-canary_.+""#;
    match name {
        SUCCESS_RATE => Some(success_rate("apisix_http_status", route, r#"code!~"5..""#)),
        DURATION => Some(p99(
            "apisix_http_latency_bucket",
            &format!(r#"type="request",{route}"#),
            "",
        )),
        _ => None,
    }
}

/// The model a provider's built-in queries render with: Skipper names routes after the
/// namespace, Ingress and Service with every non-word character made `_`.
pub fn for_model(provider: &str, mut model: QueryModel) -> QueryModel {
    if provider == "skipper" {
        let word = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        for field in [
            &mut model.name,
            &mut model.namespace,
            &mut model.target,
            &mut model.service,
            &mut model.ingress,
        ] {
            *field = word(field);
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::template::QueryModel;

    fn rendered(provider: &str, name: &str) -> String {
        let model = QueryModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo".into(),
            ingress: "podinfo".into(),
            route: "podinfo".into(),
            interval: "1m".into(),
            variables: Default::default(),
            side: None,
        };
        model.render(&query(provider, name).unwrap()).unwrap()
    }

    #[test]
    fn kubernetes_queries() {
        assert_eq!(
            rendered("kubernetes", SUCCESS_RATE),
            r#"sum(rate(http_request_duration_seconds_count{kubernetes_namespace="test",kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",status!~"5.*"}[1m])) / sum(rate(http_request_duration_seconds_count{kubernetes_namespace="test",kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("kubernetes", DURATION),
            r#"histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace="test",kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[1m])) by (le)) * 1000"#
        );
    }

    #[test]
    fn istio_and_gatewayapi_queries() {
        let sr = r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo"}[1m])) * 100"#;
        assert_eq!(rendered("istio", SUCCESS_RATE), sr);
        assert_eq!(rendered("gatewayapi:v1", SUCCESS_RATE), sr);
        assert_eq!(
            rendered("istio", DURATION),
            r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo"}[1m])) by (le))"#
        );
    }

    #[test]
    fn linkerd_queries() {
        assert_eq!(
            rendered("linkerd", SUCCESS_RATE),
            r#"sum(rate(response_total{namespace="test",deployment=~"podinfo",direction="inbound",classification!="failure"}[1m])) / sum(rate(response_total{namespace="test",deployment=~"podinfo",direction="inbound"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("linkerd", DURATION),
            r#"histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{namespace="test",deployment=~"podinfo",direction="inbound"}[1m])) by (le))"#
        );
    }

    #[test]
    fn contour_traefik_and_nginx_queries() {
        assert_eq!(
            rendered("contour", SUCCESS_RATE),
            r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[1m])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("contour", DURATION),
            r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"}[1m])) by (le))"#
        );
        assert_eq!(
            rendered("traefik", SUCCESS_RATE),
            r#"sum(rate(traefik_service_request_duration_seconds_bucket{service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd",le="+Inf",code!~"5.."}[1m])) / sum(rate(traefik_service_request_duration_seconds_bucket{service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd",le="+Inf"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("traefik", DURATION),
            r#"histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd"}[1m])) by (le)) * 1000"#
        );
        assert_eq!(
            rendered("nginx", SUCCESS_RATE),
            r#"sum(rate(nginx_ingress_controller_requests{namespace="test",ingress="podinfo",status!~"5.*"}[1m])) / sum(rate(nginx_ingress_controller_requests{namespace="test",ingress="podinfo"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("nginx", DURATION),
            r#"sum(rate(nginx_ingress_controller_ingress_upstream_latency_seconds_sum{namespace="test",ingress="podinfo"}[1m])) / sum(rate(nginx_ingress_controller_ingress_upstream_latency_seconds_count{namespace="test",ingress="podinfo"}[1m])) * 1000"#
        );
    }

    #[test]
    fn gloo_queries_select_the_canary_upstream_as_flagger() {
        assert_eq!(
            rendered("gloo", SUCCESS_RATE),
            r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[1m])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("gloo", DURATION),
            r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"}[1m])) by (le))"#
        );
    }

    #[test]
    fn knative_queries_select_the_envoy_cluster_as_flagger() {
        assert_eq!(
            rendered("knative", SUCCESS_RATE),
            r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test/podinfo",envoy_response_code!~"5.*"}[1m])) / sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test/podinfo"}[1m])) * 100"#
        );
        assert_eq!(
            rendered("knative", DURATION),
            r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"test/podinfo"}[1m])) by (le))"#
        );
    }

    #[test]
    fn skipper_queries_name_its_routes_with_word_characters() {
        let model = QueryModel {
            name: "podinfo".into(),
            namespace: "test-ns".into(),
            target: "podinfo".into(),
            service: "pod-info".into(),
            ingress: "pod-info".into(),
            route: "pod-info".into(),
            interval: "1m".into(),
            variables: Default::default(),
            side: None,
        };
        let raw = model.clone();
        let model = for_model("skipper", model);
        let route = r#"route=~"kube(ew)?_test_ns__pod_info_canary__.*__pod_info_canary(_[0-9]+)?""#;
        assert_eq!(
            model
                .render(&query("skipper", SUCCESS_RATE).unwrap())
                .unwrap(),
            format!(
                r#"sum(rate(skipper_response_duration_seconds_bucket{{{route},le="+Inf",code!~"5.."}}[1m])) / sum(rate(skipper_response_duration_seconds_bucket{{{route},le="+Inf"}}[1m])) * 100"#
            )
        );
        assert_eq!(
            model.render(&query("skipper", DURATION).unwrap()).unwrap(),
            format!(
                r#"sum(rate(skipper_serve_route_duration_seconds_sum{{{route}}}[1m])) / sum(rate(skipper_serve_route_duration_seconds_count{{{route}}}[1m])) * 1000"#
            )
        );
        assert_eq!(
            for_model("nginx", raw.clone()),
            raw,
            "other providers keep the names"
        );
    }

    #[test]
    fn kuma_queries_select_the_canary_service_tag() {
        let tag = r#"kuma_io_service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+""#;
        assert_eq!(
            rendered("kuma", SUCCESS_RATE),
            format!(
                r#"sum(rate(envoy_cluster_upstream_rq{{{tag},envoy_response_code!~"5.*"}}[1m])) / sum(rate(envoy_cluster_upstream_rq{{{tag}}}[1m])) * 100"#
            )
        );
        assert_eq!(
            rendered("kuma", DURATION),
            format!(
                r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{{{tag}}}[1m])) by (le))"#
            )
        );
    }

    #[test]
    fn apisix_queries_name_serins_copy_of_the_route() {
        let route = r#"route=~"test_podinfo-podinfo-canary_.+""#;
        assert_eq!(
            rendered("apisix", SUCCESS_RATE),
            format!(
                r#"sum(rate(apisix_http_status{{{route},code!~"5.."}}[1m])) / sum(rate(apisix_http_status{{{route}}}[1m])) * 100"#
            )
        );
        assert_eq!(
            rendered("apisix", DURATION),
            format!(
                r#"histogram_quantile(0.99, sum(rate(apisix_http_latency_bucket{{type="request",{route}}}[1m])) by (le))"#
            )
        );
    }

    #[test]
    fn other_names_and_providers_have_no_builtin() {
        assert!(query("istio", "error-rate").is_none());
        assert!(query("appmesh", SUCCESS_RATE).is_none());
        assert!(is_builtin(DURATION) && !is_builtin("latency"));
    }
}

//! What the ingress and gateway routers (nginx, skipper, contour, traefik, gloo) can express, checked
//! on the spec alone so that a Canary asking for more is refused naming the field before anything
//! is written (never silently dropped, as Flagger does). Pure; part of `validate`, called from
//! `targets::check_routing`. Must not import the routers (they depend on `api`, not the reverse).

use super::validate::Errors;
use super::{Canary, HeaderMatch};

/// `ingressRef.apiVersion` values naming the Ingress kind (read as networking.k8s.io/v1).
const INGRESS_API_VERSIONS: [&str; 3] = [
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "extensions/v1beta1",
];

/// Characters ingress-nginx accepts in a header name, header value or cookie name
/// (`canary-by-header`, `-value`, `canary-by-cookie`); other values are dropped with a warning.
fn nginx_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/:".contains(c))
}

/// Characters ingress-nginx accepts in `canary-by-header-pattern`.
fn nginx_pattern(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/:^$[](){}*+?|&=\\".contains(c))
}

/// Checks of the providers routing through an Ingress or a gateway CRD.
pub(super) fn check(errs: &mut Errors, provider: &str, canary: &Canary) {
    if matches!(provider, "nginx" | "skipper") {
        check_ingress_ref(errs, provider, canary);
    }
    let a = &canary.spec.analysis;
    if matches!(provider, "nginx" | "skipper") && a.mirror == Some(true) {
        errs.add(
            "spec.analysis.mirror",
            format!("the {provider} provider cannot mirror traffic (its Ingress annotations have no mirroring); use istio, gatewayapi, contour or traefik"),
        );
    }
    if provider == "apisix" {
        check_apisix(errs, canary);
    }
    if matches!(provider, "apisix" | "kuma") {
        check_header_and_query_matches(errs, provider, canary);
    }
    if matches!(
        provider,
        "nginx" | "skipper" | "contour" | "traefik" | "apisix" | "kuma" | "gloo"
    ) && a.session_affinity.is_some()
    {
        errs.add(
            "spec.analysis.sessionAffinity",
            format!("the {provider} provider cannot pin clients to a side by cookie; session affinity needs istio or gatewayapi"),
        );
    }
    if provider == "nginx" {
        check_nginx_match(errs, canary);
    }
    if provider == "contour" {
        check_contour(errs, canary);
    }
    if provider == "gloo" {
        check_gloo(errs, canary);
    }
    if provider == "traefik" && a.r#match.as_ref().is_some_and(|m| !m.is_empty()) {
        errs.add(
            "spec.analysis.match",
            "the traefik provider writes a TraefikService, which balances by weight only (requests are matched by the IngressRoute, which is the user's); A/B testing needs nginx, istio, gatewayapi or contour",
        );
    }
    if provider == "skipper" && a.r#match.as_ref().is_some_and(|m| !m.is_empty()) {
        errs.add(
            "spec.analysis.match",
            "the skipper provider splits traffic by backend weights only: its predicates apply to every route of the Ingress, so requests cannot be sent to the canary by match (as in Flagger); A/B testing needs nginx, istio, gatewayapi or contour",
        );
    }
}

/// APISIX copies a rule of the user's ApisixRoute (`spec.routeRef`).
fn check_apisix(errs: &mut Errors, canary: &Canary) {
    match &canary.spec.route_ref {
        None => errs.add(
            "spec.routeRef",
            "the apisix provider copies a rule of your ApisixRoute: name it here (apiVersion apisix.apache.org/v2, kind ApisixRoute)",
        ),
        Some(r) if r.kind != "ApisixRoute" => errs.add(
            "spec.routeRef.kind",
            format!("'{}' is not an ApisixRoute; the apisix provider copies a rule of an ApisixRoute (apisix.apache.org/v2)", r.kind),
        ),
        Some(_) => {}
    }
}

/// APISIX and Kuma match requests by headers and query parameters only.
fn check_header_and_query_matches(errs: &mut Errors, provider: &str, canary: &Canary) {
    let name = if provider == "kuma" { "Kuma" } else { "APISIX" };
    for (i, m) in canary.spec.analysis.r#match.iter().flatten().enumerate() {
        let path = format!("spec.analysis.match[{i}]");
        if m.source_labels.is_some() {
            errs.add(format!("{path}.sourceLabels"), format!("{name} routes by request headers and query parameters; it cannot match the calling workload"));
        }
        let conditions = m.headers.as_ref().map_or(0, |h| h.len())
            + m.query_params.as_ref().map_or(0, |q| q.len());
        if conditions == 0 {
            errs.add(path, "an entry without a header or query parameter condition would send every request to the canary");
        }
    }
}

/// Retry conditions Contour's HTTPProxy takes (its `retryOn` enum).
const CONTOUR_RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Contour matches headers and query parameters (every condition of an entry at once, any
/// entry), sets or removes headers (it cannot add a second value), and retries on its own list
/// of conditions.
fn check_contour(errs: &mut Errors, canary: &Canary) {
    for (i, m) in canary.spec.analysis.r#match.iter().flatten().enumerate() {
        let path = format!("spec.analysis.match[{i}]");
        if m.source_labels.is_some() {
            errs.add(format!("{path}.sourceLabels"), "Contour routes by request headers and query parameters; it cannot match the calling workload");
        }
        let conditions = m.headers.as_ref().map_or(0, |h| h.len())
            + m.query_params.as_ref().map_or(0, |q| q.len());
        if conditions == 0 {
            errs.add(path, "an entry without a header or query parameter condition would send every request to the canary");
        }
    }
    let s = &canary.spec.service;
    for (side, op) in [
        (
            "request",
            s.headers.as_ref().and_then(|h| h.request.as_ref()),
        ),
        (
            "response",
            s.headers.as_ref().and_then(|h| h.response.as_ref()),
        ),
    ] {
        if op.is_some_and(|o| o.add.is_some()) {
            errs.add(
                format!("spec.service.headers.{side}.add"),
                "Contour sets or removes headers; it cannot add a value to one (use set)",
            );
        }
    }
    let retry_on = s
        .retries
        .as_ref()
        .and_then(|r| r.retry_on.as_deref())
        .unwrap_or_default();
    for cond in retry_on.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !CONTOUR_RETRY_ON.contains(&cond) {
            errs.add(
                "spec.service.retries.retryOn",
                format!(
                    "'{cond}' is not a retry condition Contour knows ({})",
                    CONTOUR_RETRY_ON.join(", ")
                ),
            );
        }
    }
}

/// Gloo matches headers and query parameters (every condition of an entry at once, any entry),
/// takes the per-try timeout as a duration, and copies settings from an Upstream
/// (`spec.upstreamRef`, read as gloo.solo.io/v1).
fn check_gloo(errs: &mut Errors, canary: &Canary) {
    let s = &canary.spec.service;
    if let Some(t) = s
        .retries
        .as_ref()
        .and_then(|r| r.per_try_timeout.as_deref())
        && let Err(e) = super::duration::parse_duration(t)
    {
        errs.add("spec.service.retries.perTryTimeout", e.to_string());
    }
    for (i, m) in canary.spec.analysis.r#match.iter().flatten().enumerate() {
        let path = format!("spec.analysis.match[{i}]");
        if m.source_labels.is_some() {
            errs.add(format!("{path}.sourceLabels"), "a Gloo RouteTable routes by request headers and query parameters; it cannot match the calling workload");
        }
        let conditions = m.headers.as_ref().map_or(0, |h| h.len())
            + m.query_params.as_ref().map_or(0, |q| q.len());
        if conditions == 0 {
            errs.add(path, "an entry without a header or query parameter condition would send every request to the canary");
        }
    }
    if let Some(r) = &canary.spec.upstream_ref {
        if r.kind != "Upstream" {
            errs.add(
                "spec.upstreamRef.kind",
                format!(
                    "'{}' is not Upstream; the template must be a Gloo Upstream",
                    r.kind
                ),
            );
        }
        if r.api_version != "gloo.solo.io/v1" {
            errs.add(
                "spec.upstreamRef.apiVersion",
                format!(
                    "'{}': Gloo's Upstream API is gloo.solo.io/v1",
                    r.api_version
                ),
            );
        }
    }
}

fn check_ingress_ref(errs: &mut Errors, provider: &str, canary: &Canary) {
    match &canary.spec.ingress_ref {
        None => errs.add(
            "spec.ingressRef",
            format!("the {provider} provider routes through an Ingress: name it here (apiVersion networking.k8s.io/v1, kind Ingress)"),
        ),
        Some(r) if r.kind != "Ingress" => errs.add(
            "spec.ingressRef.kind",
            format!("'{}' is not Ingress; the {provider} provider routes through an Ingress", r.kind),
        ),
        // Older Flagger docs name the retired beta APIs; the Ingress is read as v1 either way.
        Some(r) if !INGRESS_API_VERSIONS.contains(&r.api_version.as_str()) => errs.add(
            "spec.ingressRef.apiVersion",
            format!("'{}': the Ingress API is networking.k8s.io/v1", r.api_version),
        ),
        Some(_) => {}
    }
}

/// ingress-nginx routes to a canary by one header (an exact value or a pattern) or one cookie
/// (set to `always`): a match list of at most one header entry and one cookie entry, each with a
/// single condition, and values in the characters it accepts.
fn check_nginx_match(errs: &mut Errors, canary: &Canary) {
    let (mut header, mut cookie) = (None, None);
    for (i, m) in canary.spec.analysis.r#match.iter().flatten().enumerate() {
        let path = format!("spec.analysis.match[{i}]");
        if m.query_params.is_some() {
            errs.add(format!("{path}.queryParams"), "ingress-nginx routes to a canary by one header or one cookie; it cannot match query parameters");
        }
        if m.source_labels.is_some() {
            errs.add(format!("{path}.sourceLabels"), "ingress-nginx routes to a canary by one header or one cookie; it cannot match the calling workload");
        }
        let headers: Vec<_> = m.headers.iter().flatten().collect();
        if headers.len() != 1 {
            errs.add(format!("{path}.headers"), format!("ingress-nginx matches one header or one cookie per condition; this entry has {} (several would have to hold at once, which it cannot express)", headers.len()));
            continue;
        }
        let (name, h) = headers[0];
        let at = format!("{path}.headers.{name}");
        let seen = if name.eq_ignore_ascii_case("cookie") {
            check_nginx_cookie(errs, &at, h);
            &mut cookie
        } else {
            check_nginx_header(errs, &at, name, h);
            &mut header
        };
        if let Some(first) = seen.replace(i) {
            errs.add(at, format!("ingress-nginx takes one {} condition per canary; spec.analysis.match[{first}] already has one", if name.eq_ignore_ascii_case("cookie") { "cookie" } else { "header" }));
        }
    }
}

fn check_nginx_cookie(errs: &mut Errors, at: &str, h: &HeaderMatch) {
    match &h.exact {
        Some(v) if nginx_plain(v) => {}
        Some(v) => errs.add(format!("{at}.exact"), format!("'{v}' is not a cookie name ingress-nginx accepts (letters, digits and - . _ ~ / : only)")),
        None => errs.add(at, "ingress-nginx matches a cookie by name (exact: the cookie's name; requests where it is set to 'always' go to the canary); prefix, suffix and regex cannot be expressed"),
    }
}

fn check_nginx_header(errs: &mut Errors, at: &str, name: &str, h: &HeaderMatch) {
    if !nginx_plain(name) {
        errs.add(
            at,
            format!("'{name}' is not a header name ingress-nginx accepts"),
        );
    }
    let plain = [
        ("exact", &h.exact),
        ("prefix", &h.prefix),
        ("suffix", &h.suffix),
    ];
    for (field, value) in plain {
        if let Some(v) = value
            && !nginx_plain(v)
        {
            errs.add(format!("{at}.{field}"), format!("'{v}' has characters ingress-nginx drops from a canary header value (it accepts letters, digits and - . _ ~ / : only)"));
        }
    }
    if let Some(r) = &h.regex
        && !nginx_pattern(r)
    {
        errs.add(
            format!("{at}.regex"),
            format!("'{r}' has characters ingress-nginx refuses in canary-by-header-pattern"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::api::validate::validate_for;

    fn errors(provider: &str, spec: serde_json::Value) -> Vec<String> {
        let mut c = serde_json::json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web"},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 2, "iterations": 2}}});
        json_patch::merge(&mut c["spec"], &spec);
        let c = serde_json::from_value(c).unwrap();
        validate_for(&c, provider)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn nginx_needs_an_ingress_and_cannot_mirror_or_pin_sessions() {
        assert!(errors("nginx", serde_json::json!({})).is_empty());
        let got = errors(
            "nginx",
            serde_json::json!({"ingressRef": null, "analysis": {"mirror": true, "sessionAffinity": {"cookieName": "c"}}}),
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].starts_with("spec.ingressRef: the nginx provider routes through an Ingress")
        );
        assert!(got[1].starts_with("spec.analysis.mirror: the nginx provider cannot mirror"));
        assert!(got[2].starts_with("spec.analysis.sessionAffinity: the nginx provider"));
        let got = errors(
            "nginx",
            serde_json::json!({"ingressRef": {"apiVersion": "v1", "kind": "Ingress", "name": "web"}}),
        );
        assert_eq!(
            got,
            ["spec.ingressRef.apiVersion: 'v1': the Ingress API is networking.k8s.io/v1"]
        );
    }

    #[test]
    fn contour_refuses_what_an_httpproxy_cannot_carry() {
        let ok = serde_json::json!({"service": {"retries": {"retryOn": "gateway-error,connect-failure"}},
            "analysis": {"match": [{"headers": {"x": {"suffix": "1"}}, "queryParams": {"q": {"regex": "a.*"}}}]}});
        assert!(errors("contour", ok).is_empty());
        let bad = serde_json::json!({"service": {"retries": {"retryOn": "5xx,retriable-on-bad-day"},
                "headers": {"request": {"add": {"x-a": "1"}}}},
            "analysis": {"match": [{"sourceLabels": {"app": "x"}}]}});
        assert_eq!(
            errors("contour", bad),
            [
                "spec.analysis.match[0].sourceLabels: Contour routes by request headers and query parameters; it cannot match the calling workload",
                "spec.analysis.match[0]: an entry without a header or query parameter condition would send every request to the canary",
                "spec.service.headers.request.add: Contour sets or removes headers; it cannot add a value to one (use set)",
                "spec.service.retries.retryOn: 'retriable-on-bad-day' is not a retry condition Contour knows (5xx, gateway-error, reset, reset-before-request, connect-failure, envoy-ratelimited, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)",
            ]
        );
    }

    #[test]
    fn traefik_mirrors_but_matches_nothing() {
        assert!(errors("traefik", serde_json::json!({"analysis": {"mirror": true}})).is_empty());
        let got = errors(
            "traefik",
            serde_json::json!({"analysis": {"match": [{"headers": {"x": {"exact": "1"}}}]}}),
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("spec.analysis.match: the traefik provider writes a TraefikService")
        );
    }

    #[test]
    fn gloo_matches_headers_and_query_parameters_and_takes_an_upstream_template() {
        let ok = serde_json::json!({"upstreamRef": {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "tpl"},
            "analysis": {"mirror": true, "match": [{"headers": {"x": {"suffix": "1"}}, "queryParams": {"q": {"prefix": "a"}}}]}});
        assert!(errors("gloo", ok).is_empty());
        let bad = serde_json::json!({"upstreamRef": {"apiVersion": "v1", "kind": "Service", "name": "tpl"},
            "service": {"retries": {"perTryTimeout": "soon"}},
            "analysis": {"sessionAffinity": {"cookieName": "c"}, "match": [{"sourceLabels": {"app": "x"}}]}});
        assert_eq!(
            errors("gloo", bad),
            [
                "spec.analysis.sessionAffinity: the gloo provider cannot pin clients to a side by cookie; session affinity needs istio or gatewayapi",
                "spec.service.retries.perTryTimeout: 'soon' is not a duration; write one such as 30s, 1m or 1m30s",
                "spec.analysis.match[0].sourceLabels: a Gloo RouteTable routes by request headers and query parameters; it cannot match the calling workload",
                "spec.analysis.match[0]: an entry without a header or query parameter condition would send every request to the canary",
                "spec.upstreamRef.kind: 'Service' is not Upstream; the template must be a Gloo Upstream",
                "spec.upstreamRef.apiVersion: 'v1': Gloo's Upstream API is gloo.solo.io/v1",
            ]
        );
    }

    #[test]
    fn skipper_splits_by_weight_only() {
        assert!(errors("skipper", serde_json::json!({})).is_empty());
        let got = errors(
            "skipper",
            serde_json::json!({"analysis": {"mirror": true, "match": [{"headers": {"x": {"exact": "1"}}}]}}),
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("spec.analysis.mirror: the skipper provider cannot mirror"));
        assert!(got[1].starts_with(
            "spec.analysis.match: the skipper provider splits traffic by backend weights only"
        ));
        let got = errors(
            "skipper",
            serde_json::json!({"ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Service", "name": "web"}}),
        );
        assert_eq!(
            got,
            [
                "spec.ingressRef.kind: 'Service' is not Ingress; the skipper provider routes through an Ingress"
            ]
        );
    }

    #[test]
    fn apisix_copies_an_apisixroute_and_matches_headers_and_query_parameters() {
        let route = serde_json::json!({"routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "web"}});
        assert!(errors("apisix", route.clone()).is_empty());
        let mut ab = route.clone();
        ab["analysis"] = serde_json::json!({"mirror": true, "match": [
            {"headers": {"x": {"suffix": "1"}}, "queryParams": {"q": {"regex": "a.*"}}}]});
        assert!(
            errors("apisix", ab).is_empty(),
            "A/B and mirroring on a copied rule"
        );
        assert_eq!(
            errors("apisix", serde_json::json!({})),
            [
                "spec.routeRef: the apisix provider copies a rule of your ApisixRoute: name it here (apiVersion apisix.apache.org/v2, kind ApisixRoute)"
            ]
        );
        let mut bad = route;
        bad["routeRef"]["kind"] = serde_json::json!("HTTPRoute");
        bad["analysis"] = serde_json::json!({"sessionAffinity": {"cookieName": "c"}, "match": [
            {"sourceLabels": {"app": "web"}}]});
        assert_eq!(
            errors("apisix", bad),
            [
                "spec.routeRef.kind: 'HTTPRoute' is not an ApisixRoute; the apisix provider copies a rule of an ApisixRoute (apisix.apache.org/v2)",
                "spec.analysis.match[0].sourceLabels: APISIX routes by request headers and query parameters; it cannot match the calling workload",
                "spec.analysis.match[0]: an entry without a header or query parameter condition would send every request to the canary",
                "spec.analysis.sessionAffinity: the apisix provider cannot pin clients to a side by cookie; session affinity needs istio or gatewayapi",
            ]
        );
        // Gateway API's routeRef is still an HTTPRoute or GRPCRoute.
        let apisix_ref = serde_json::json!({"routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "web"}});
        assert_eq!(
            errors("gatewayapi", apisix_ref),
            ["spec.routeRef.kind: 'ApisixRoute' cannot be adopted; use HTTPRoute or GRPCRoute"]
        );
    }

    #[test]
    fn nginx_takes_flaggers_header_and_cookie_and_refuses_what_it_cannot_express() {
        let ok = serde_json::json!({"analysis": {"match": [{"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"exact": "canary"}}}]}});
        assert!(errors("nginx", ok).is_empty());
        let bad = serde_json::json!({"analysis": {"match": [
            {"headers": {"x-a": {"exact": "1"}, "x-b": {"exact": "2"}}},
            {"headers": {"x-c": {"exact": "has space"}}},
            {"headers": {"x-d": {"regex": "a.*"}}},
            {"headers": {"cookie": {"regex": "c.*"}}},
            {"queryParams": {"q": {"exact": "1"}}, "headers": {"cookie": {"exact": "c"}}}]}});
        let got = errors("nginx", bad);
        assert_eq!(
            got,
            [
                "spec.analysis.match[0].headers: ingress-nginx matches one header or one cookie per condition; this entry has 2 (several would have to hold at once, which it cannot express)",
                "spec.analysis.match[1].headers.x-c.exact: 'has space' has characters ingress-nginx drops from a canary header value (it accepts letters, digits and - . _ ~ / : only)",
                "spec.analysis.match[2].headers.x-d: ingress-nginx takes one header condition per canary; spec.analysis.match[1] already has one",
                "spec.analysis.match[3].headers.cookie: ingress-nginx matches a cookie by name (exact: the cookie's name; requests where it is set to 'always' go to the canary); prefix, suffix and regex cannot be expressed",
                "spec.analysis.match[4].queryParams: ingress-nginx routes to a canary by one header or one cookie; it cannot match query parameters",
                "spec.analysis.match[4].headers.cookie: ingress-nginx takes one cookie condition per canary; spec.analysis.match[3] already has one",
            ]
        );
    }
}

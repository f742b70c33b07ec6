//! Tests of the request-attribute parser, the deny-rule matcher and the 403 body.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

fn attrs(method: Method, path: &str, query: &[(&str, &str)]) -> Option<Attributes> {
    let q: Query = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    attributes(&method, path, &q)
}

#[test]
fn the_parser_reads_paths_like_kube_apiserver() {
    let a = attrs(Method::GET, "/apis/apps/v1/namespaces/t/deployments", &[]).unwrap();
    assert_eq!(
        (a.group.as_str(), a.resource.as_str(), a.verb),
        ("apps", "deployments", "list")
    );
    assert_eq!(a.namespace.as_deref(), Some("t"));
    let a = attrs(
        Method::GET,
        "/apis/apps/v1/namespaces/t/deployments",
        &[("watch", "1")],
    );
    assert_eq!(a.unwrap().verb, "watch");
    let a = attrs(
        Method::PATCH,
        "/apis/apps/v1/namespaces/t/deployments/web/scale",
        &[],
    )
    .unwrap();
    assert_eq!(
        (a.verb, a.combined().as_str()),
        ("patch", "deployments/scale")
    );
    assert_eq!(a.name.as_deref(), Some("web"));
    let a = attrs(Method::GET, "/api/v1/namespaces/t", &[]).unwrap();
    assert_eq!(
        (
            a.resource.as_str(),
            a.name.as_deref(),
            a.namespace.as_deref()
        ),
        ("namespaces", Some("t"), Some("t"))
    );
    let a = attrs(Method::PUT, "/api/v1/namespaces/t/finalize", &[]).unwrap();
    assert_eq!(a.combined(), "namespaces/finalize");
    let a = attrs(Method::DELETE, "/api/v1/namespaces/t/configmaps", &[]).unwrap();
    assert_eq!(a.verb, "deletecollection");
    let a = attrs(
        Method::GET,
        "/apis/apps/v1/deployments",
        &[("fieldSelector", "metadata.name=web")],
    )
    .unwrap();
    assert_eq!(
        (a.verb, a.name.as_deref(), a.namespace),
        ("list", Some("web"), None)
    );
    for path in [
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/healthz",
    ] {
        assert_eq!(attrs(Method::GET, path, &[]), None, "{path}");
    }
}

#[test]
fn forbidden_bodies_are_the_ones_in_transcript_19() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/k8s-transcripts/19-rbac-forbidden.json"
        ))
        .expect("transcript 19"),
    )
    .unwrap();
    let mut compared = 0;
    for step in doc["steps"].as_array().unwrap() {
        let resp = &step["response"];
        if resp["status"] != 403 || step["request"]["auth"] == "none" {
            continue;
        }
        let path = step["request"]["path"].as_str().unwrap();
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let q: Query = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let method =
            Method::from_bytes(step["request"]["method"].as_str().unwrap().as_bytes()).unwrap();
        let a = attributes(&method, path, &q).unwrap();
        let got = forbidden("system:serviceaccount:t:reader", &a);
        assert_eq!(got.code.as_u16(), 403);
        assert_eq!(got.body, resp["body"], "{path}");
        compared += 1;
    }
    assert_eq!(compared, 7, "steps 5-11 of transcript 19");
}

#[test]
fn rbac_resource_rules_cover_subresources_as_rbac_does() {
    assert!(resource_matches("*", "deployments/status", Some("status")));
    assert!(resource_matches("deployments", "deployments", None));
    assert!(!resource_matches(
        "deployments",
        "deployments/status",
        Some("status")
    ));
    assert!(resource_matches(
        "deployments/status",
        "deployments/status",
        Some("status")
    ));
    assert!(resource_matches(
        "*/status",
        "deployments/status",
        Some("status")
    ));
    assert!(!resource_matches("*/status", "deployments", None));
    assert!(!resource_matches(
        "*/scale",
        "deployments/status",
        Some("status")
    ));
}

fn arb_attributes() -> impl Strategy<Value = Attributes> {
    (
        prop::sample::select(vec!["", "apps", "serin.io"]),
        prop::sample::select(vec!["deployments", "configmaps", "canaries"]),
        prop::option::of(prop::sample::select(vec!["status", "scale"])),
        prop::option::of("[a-z]{1,5}"),
        prop::option::of("[a-z]{1,5}"),
        prop::sample::select(vec![
            "get", "list", "watch", "create", "update", "patch", "delete",
        ]),
    )
        .prop_map(|(g, r, sub, ns, name, verb)| Attributes {
            group: g.into(),
            version: "v1".into(),
            namespace: ns,
            resource: r.into(),
            subresource: sub.map(String::from),
            name,
            verb,
        })
}

proptest! {
    /// Any path and query parse without panicking; what parses names a resource and a verb.
    #[test]
    fn the_parser_never_panics(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        segs in prop::collection::vec(prop_oneof![
            Just("api".to_string()), Just("apis".to_string()), Just("v1".to_string()),
            Just("namespaces".to_string()), Just("watch".to_string()), Just("status".to_string()),
            "[a-z0-9.%=-]{0,8}",
        ], 0..8),
        watch in prop::option::of("[01tTfa-z]{0,5}"),
        selector in prop::option::of("[a-z.=!,]{0,24}"),
    ) {
        let mut q = Query::new();
        if let Some(w) = watch { q.insert("watch".into(), w); }
        if let Some(s) = selector { q.insert("fieldSelector".into(), s); }
        let path = format!("/{}", segs.join("/"));
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        if let Some(a) = attributes(&m, &path, &q) {
            prop_assert!(!a.resource.is_empty());
            prop_assert!(!a.verb.is_empty());
            prop_assert!(a.name.as_deref().is_none_or(|n| !n.contains('/')));
        }
    }

    /// Well-formed paths round-trip their parts.
    #[test]
    fn well_formed_paths_round_trip(a in arb_attributes()) {
        let mut path = if a.group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{}/v1", a.group) };
        if let Some(ns) = &a.namespace { path += &format!("/namespaces/{ns}"); }
        path += &format!("/{}", a.resource);
        let named = a.name.is_some() || a.subresource.is_some();
        let name = a.name.clone().unwrap_or_else(|| "obj".into());
        if named { path += &format!("/{name}"); }
        if let Some(s) = &a.subresource { path += &format!("/{s}"); }
        let got = attributes(&Method::GET, &path, &Query::new()).unwrap();
        prop_assert_eq!(&got.group, &a.group);
        prop_assert_eq!(&got.resource, &a.resource);
        prop_assert_eq!(&got.namespace, &a.namespace);
        prop_assert_eq!(&got.subresource, &a.subresource);
        prop_assert_eq!(got.name.is_some(), named);
        prop_assert_eq!(got.verb, if named { "get" } else { "list" });
    }

    /// A rule made from the request itself refuses it, wildcards refuse at least as much as the
    /// exact rule, and another agent, group, resource or verb is never refused by an exact rule.
    #[test]
    fn deny_rules_match_like_rbac(a in arb_attributes(), other in arb_attributes()) {
        let exact = DenyRule { agent_prefix: "serin/".into(), group: a.group.clone(), resource: a.combined(), verb: a.verb.into() };
        prop_assert!(exact.matches("serin/0.1.0", &a));
        prop_assert!(!exact.matches("kubectl/v1.36", &a));
        for wild in [
            DenyRule { group: "*".into(), ..exact.clone() },
            DenyRule { resource: "*".into(), ..exact.clone() },
            DenyRule { verb: "*".into(), ..exact.clone() },
            DenyRule { agent_prefix: String::new(), ..exact.clone() },
        ] {
            prop_assert!(wild.matches("serin/0.1.0", &a));
        }
        let differs = other.group != a.group || other.combined() != a.combined() || other.verb != a.verb;
        prop_assert_eq!(exact.matches("serin/0.1.0", &other), !differs);
    }
}

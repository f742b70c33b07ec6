//! Names a Kubernetes API request in RBAC terms (verb, resource) for the
//! `serin_kube_api_requests_total` counter. Pure: parses the method and URL only; must not import
//! kube or anything that does I/O.

/// Verb and group-qualified resource of one API request, e.g. `("patch", "canaries.serin.io/status")`.
/// Non-resource paths (discovery, `/version`) are `("get", "nonresource")`, so the label set stays
/// bounded whatever URL a caller builds.
pub fn classify(method: &str, path: &str, query: &str) -> (&'static str, String) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return ("get", "nonresource".into()),
    };
    // `namespaces/{ns}/...` scopes what follows; `namespaces/{name}` alone is the Namespace itself.
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (plural, named, sub) = match rest {
        [plural] => (*plural, false, None),
        [plural, _name] => (*plural, true, None),
        [plural, _name, sub] => (*plural, true, Some(*sub)),
        _ => return ("get", "nonresource".into()),
    };
    if plural.is_empty() {
        return ("get", "nonresource".into());
    }
    let mut resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    if let Some(sub) = sub {
        resource = format!("{resource}/{sub}");
    }
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::classify;
    use proptest::prelude::*;

    #[test]
    fn names_requests_like_the_authorizer() {
        let cases = [
            (
                "GET",
                "/apis/serin.io/v1beta1/namespaces/test/canaries",
                "",
                "list",
                "canaries.serin.io",
            ),
            (
                "GET",
                "/apis/serin.io/v1beta1/canaries",
                "watch=true&resourceVersion=1",
                "watch",
                "canaries.serin.io",
            ),
            (
                "PATCH",
                "/apis/serin.io/v1beta1/namespaces/test/canaries/app/status",
                "fieldManager=serin",
                "patch",
                "canaries.serin.io/status",
            ),
            (
                "GET",
                "/api/v1/namespaces/test/secrets/token",
                "",
                "get",
                "secrets",
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/test/events",
                "",
                "create",
                "events.events.k8s.io",
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/serin/leases/serin",
                "",
                "update",
                "leases.coordination.k8s.io",
            ),
            ("GET", "/api/v1/namespaces/test", "", "get", "namespaces"),
            (
                "DELETE",
                "/api/v1/namespaces/test/services",
                "",
                "deletecollection",
                "services",
            ),
            ("GET", "/version", "", "get", "nonresource"),
            ("GET", "/apis", "", "get", "nonresource"),
        ];
        for (method, path, query, verb, resource) in cases {
            assert_eq!(
                classify(method, path, query),
                (verb, resource.to_string()),
                "{method} {path}"
            );
        }
    }

    proptest! {
        /// Any URL gives a bounded, well-formed pair; never a panic.
        #[test]
        fn any_path_is_classified(method in "(GET|PUT|POST|PATCH|DELETE|HEAD)", path in "(/[a-z0-9.]{0,8}){0,8}", query in "[a-z=&0-9]{0,20}") {
            let (verb, resource) = classify(&method, &path, &query);
            prop_assert!(["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "other"].contains(&verb));
            prop_assert!(!resource.is_empty());
            prop_assert!(resource.matches('/').count() <= 1);
        }
    }
}

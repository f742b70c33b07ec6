//! Tests of the reviews without HTTP: TokenReview from the tokens of `add_token`,
//! SubjectAccessReview from the grants of `grant` (deny by default, wildcards, groups,
//! system:masters), SelfSubjectAccessReview still following the deny list, and the 400/422s of
//! bodies that are not the right kind, version or shape.

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::sim::reviews::answer;
use crate::sim::state::{Ctx, FieldValidation, SimState};
use crate::sim::status::Reply;

fn ctx() -> Ctx {
    Ctx {
        manager: "test".into(),
        field_validation: FieldValidation::Warn,
        dry_run: false,
        now: "2026-11-29T10:00:00Z".into(),
    }
}

fn post(st: &SimState, group: &str, plural: &str, body: Value) -> Reply {
    let rt = st.find(group, "v1", plural).expect("review type");
    answer(st, &rt, "serin/0.1.0", &body, &ctx())
}

fn token_review(st: &SimState, spec: Value) -> Reply {
    let body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
    post(st, "authentication.k8s.io", "tokenreviews", body)
}

fn sar(st: &SimState, spec: Value) -> Reply {
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    post(st, "authorization.k8s.io", "subjectaccessreviews", body)
}

/// The status of a 201, or a panic naming what came instead.
fn status_of(r: &Reply) -> &Value {
    assert_eq!(r.code, StatusCode::CREATED, "{}", r.body);
    &r.body["status"]
}

fn patch_canaries(user: &str, groups: &[&str], ns: &str) -> Value {
    json!({"user": user, "groups": groups, "resourceAttributes": {"namespace": ns, "verb": "patch",
        "group": "serin.io", "resource": "canaries", "name": "podinfo"}})
}

#[test]
fn a_known_token_is_its_user_and_an_unknown_one_is_not_authenticated() {
    let mut st = SimState::new();
    st.add_token("s3cret-token", "jane", &["devs"]);
    let r = token_review(&st, json!({"token": "s3cret-token"}));
    assert_eq!(
        status_of(&r),
        &json!({"authenticated": true, "user": {"username": "jane", "groups": ["devs", "system:authenticated"]},
            "audiences": ["https://kubernetes.default.svc.cluster.local"]})
    );
    assert_eq!(r.body["spec"], json!({"token": "s3cret-token"}));
    assert_eq!(r.body["kind"], "TokenReview");
    assert_eq!(r.body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(r.body["metadata"]["managedFields"][0]["manager"], "test");
    let r = token_review(
        &st,
        json!({"token": "s3cret-token", "audiences": ["dashboard"]}),
    );
    assert_eq!(status_of(&r)["audiences"], json!(["dashboard"]));
    let r = token_review(&st, json!({"token": "guess"}));
    assert_eq!(
        status_of(&r),
        &json!({"user": {}, "error": "invalid bearer token"})
    );
    st.clear_identities();
    let r = token_review(&st, json!({"token": "s3cret-token"}));
    assert_eq!(status_of(&r)["error"], "invalid bearer token");
}

#[test]
fn a_token_review_without_a_token_is_a_400_that_never_shows_a_token() {
    let st = SimState::new();
    for spec in [json!({}), json!({"token": ""}), json!({"token": null})] {
        let r = token_review(&st, spec);
        assert_eq!(r.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.body["message"],
            "token is required for TokenReview in authentication"
        );
    }
    let r = token_review(&st, json!({"token": 42}));
    assert_eq!(r.code, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["message"],
        "TokenReview in version \"v1\" cannot be handled as a TokenReview: json: cannot unmarshal number into Go struct field TokenReviewSpec.spec.token of type string"
    );
    let r = token_review(&st, json!({"token": "s3cret-token", "audiences": "x"}));
    assert_eq!(r.code, StatusCode::BAD_REQUEST);
    assert!(!r.body.to_string().contains("s3cret"), "{}", r.body);
}

#[test]
fn subject_access_reviews_are_denied_by_default_and_allowed_by_grants() {
    let mut st = SimState::new();
    let no = sar(&st, patch_canaries("jane", &["devs"], "test"));
    assert_eq!(status_of(&no), &json!({"allowed": false}));
    assert_eq!(
        no.body["spec"],
        json!({"user": "jane", "groups": ["devs"], "resourceAttributes": {"namespace": "test",
            "verb": "patch", "group": "serin.io", "resource": "canaries", "name": "podinfo"}})
    );
    st.grant("jane", "serin.io", "canaries", "patch");
    assert_eq!(
        status_of(&sar(&st, patch_canaries("jane", &[], "test"))),
        &json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"sim-grant-1\" of ClusterRole \"sim-grant-1\" to User \"jane\""})
    );
    // Another user, another verb, another group's resource: still no.
    for spec in [
        patch_canaries("bob", &["devs"], "test"),
        json!({"user": "jane", "resourceAttributes": {"verb": "delete", "group": "serin.io", "resource": "canaries"}}),
        json!({"user": "jane", "resourceAttributes": {"verb": "patch", "group": "apps", "resource": "canaries"}}),
        json!({"user": "jane", "resourceAttributes": {"verb": "patch", "group": "serin.io", "resource": "canaries", "subresource": "status"}}),
    ] {
        assert_eq!(
            status_of(&sar(&st, spec.clone())),
            &json!({"allowed": false}),
            "{spec}"
        );
    }
    st.grant("devs", "*", "*", "*");
    let r = sar(&st, patch_canaries("bob", &["devs"], "prod"));
    assert_eq!(
        status_of(&r)["reason"],
        "RBAC: allowed by ClusterRoleBinding \"sim-grant-2\" of ClusterRole \"sim-grant-2\" to Group \"devs\""
    );
}

#[test]
fn a_namespaced_grant_allows_in_its_namespace_only() {
    let mut st = SimState::new();
    st.grant_in("test", "jane", "serin.io", "canaries", "patch");
    assert_eq!(
        status_of(&sar(&st, patch_canaries("jane", &[], "test"))),
        &json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"sim-grant-1/test\" of Role \"sim-grant-1\" to User \"jane\""})
    );
    let elsewhere = sar(&st, patch_canaries("jane", &[], "prod"));
    assert_eq!(status_of(&elsewhere), &json!({"allowed": false}));
    let cluster_wide = json!({"user": "jane", "resourceAttributes": {"verb": "patch",
        "group": "serin.io", "resource": "canaries"}});
    assert_eq!(status_of(&sar(&st, cluster_wide))["allowed"], false);
}

#[test]
fn grants_match_verbs_resources_and_subresources_as_rbac_does() {
    let mut st = SimState::new();
    st.grant("ops", "serin.io", "*/status", "get");
    st.grant("ops", "apps", "deployments", "*");
    let ask = |verb: &str, group: &str, resource: &str, sub: &str| {
        let spec = json!({"groups": ["ops"], "resourceAttributes": {"verb": verb, "group": group,
            "resource": resource, "subresource": sub}});
        status_of(&sar(&st, spec))["allowed"].as_bool().unwrap()
    };
    assert!(ask("get", "serin.io", "canaries", "status"));
    assert!(!ask("get", "serin.io", "canaries", ""));
    assert!(ask("delete", "apps", "deployments", ""));
    assert!(!ask("delete", "apps", "deployments", "scale"));
    // A request for every verb needs a `*` rule.
    assert!(!ask("*", "serin.io", "canaries", "status"));
    assert!(ask("*", "apps", "deployments", ""));
}

#[test]
fn system_masters_may_do_everything_with_no_reason() {
    let st = SimState::new();
    let spec = patch_canaries("admin", &["system:masters"], "test");
    assert_eq!(status_of(&sar(&st, spec)), &json!({"allowed": true}));
    let url = |groups: &[&str]| json!({"user": "x", "groups": groups, "nonResourceAttributes": {"path": "/metrics", "verb": "get"}});
    assert_eq!(
        status_of(&sar(&st, url(&["system:masters"])))["allowed"],
        true
    );
    let r = sar(&st, url(&["devs"]));
    assert_eq!(status_of(&r), &json!({"allowed": false}));
    assert_eq!(
        r.body["spec"]["nonResourceAttributes"],
        json!({"path": "/metrics", "verb": "get"})
    );
}

#[test]
fn invalid_subject_access_reviews_get_every_cause_in_one_422() {
    let st = SimState::new();
    let r = sar(&st, json!({}));
    assert_eq!(r.code, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(
        r.body["message"],
        "SubjectAccessReview.authorization.k8s.io \"\" is invalid: [spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified, spec.user: Invalid value: \"\": at least one of user or group must be specified]"
    );
    let fields: Vec<&str> = r.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["spec.resourceAttributes", "spec.user"]);
    let both = json!({"user": "jane", "resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/"}});
    let r = sar(&st, both);
    assert_eq!(r.code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["details"]["causes"][0]["field"],
        "spec.nonResourceAttributes"
    );
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "metadata": {"name": "x"}, "spec": patch_canaries("jane", &[], "t")});
    let r = post(&st, "authorization.k8s.io", "subjectaccessreviews", body);
    assert_eq!(r.code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["details"]["causes"][0]["field"], "metadata");
    // Zero values are an empty ObjectMeta (kubectl's protobuf bodies carry `generation: 0`).
    let body = json!({"metadata": {"generation": 0, "name": "", "creationTimestamp": null},
        "spec": patch_canaries("jane", &[], "t")});
    let r = post(&st, "authorization.k8s.io", "subjectaccessreviews", body);
    assert_eq!(r.code, StatusCode::CREATED, "{}", r.body);
    let r = sar(
        &st,
        json!({"user": "jane", "groups": [1], "resourceAttributes": {}}),
    );
    assert_eq!(r.code, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["message"],
        "SubjectAccessReview in version \"v1\" cannot be handled as a SubjectAccessReview: json: cannot unmarshal number into Go struct field SubjectAccessReviewSpec.spec.groups of type string"
    );
}

#[test]
fn bodies_of_another_kind_or_version_are_400s() {
    let st = SimState::new();
    let spec = json!({"token": "t"});
    let tr = |api: &str, kind: &str| {
        let body = json!({"apiVersion": api, "kind": kind, "spec": spec});
        post(&st, "authentication.k8s.io", "tokenreviews", body)
    };
    let r = tr("v1", "ConfigMap");
    assert_eq!(r.code, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["message"],
        "the API version in the data (v1) does not match the expected API version (authentication.k8s.io/v1)"
    );
    let r = tr("authentication.k8s.io/v1", "Widget");
    assert_eq!(
        r.body["message"],
        "TokenReview in version \"v1\" cannot be handled as a TokenReview: no kind \"Widget\" is registered for version \"authentication.k8s.io/v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
    );
    // Missing apiVersion and kind are the URL's.
    assert_eq!(tr("", "").code, StatusCode::CREATED);
    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": patch_canaries("jane", &[], "t")});
    let r = post(&st, "authorization.k8s.io", "subjectaccessreviews", ssar);
    assert_eq!(
        (r.code, r.body["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("not a SubjectAccessReview: SelfSubjectAccessReview")
        )
    );
    for body in [json!([]), json!("x"), json!({"spec": []})] {
        let r = post(&st, "authorization.k8s.io", "subjectaccessreviews", body);
        assert_eq!(r.code, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["kind"], "Status");
    }
}

#[test]
fn self_subject_access_reviews_still_follow_the_deny_list() {
    let mut st = SimState::new();
    st.deny("serin/", "serin.io", "canaries", "patch");
    let ask = |verb: &str| {
        let body = json!({"spec": {"resourceAttributes": {"verb": verb, "group": "serin.io", "resource": "canaries"}}});
        post(
            &st,
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            body,
        )
    };
    assert_eq!(status_of(&ask("patch")), &json!({"allowed": false}));
    assert_eq!(status_of(&ask("get")), &json!({"allowed": true}));
    let r = post(
        &st,
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        json!({"spec": {}}),
    );
    assert_eq!(r.code, StatusCode::UNPROCESSABLE_ENTITY);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z:*/-]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "token",
                    "audiences",
                    "user",
                    "groups",
                    "uid",
                    "extra",
                    "verb",
                    "group",
                    "resource",
                    "subresource",
                    "namespace",
                    "name",
                    "path",
                    "resourceAttributes",
                    "nonResourceAttributes",
                    "spec",
                    "metadata",
                    "kind",
                    "apiVersion",
                ])
                .prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Any body to any review is answered with a review (201) or a Status (400, 422), never a
    /// panic.
    #[test]
    fn random_review_bodies_get_a_review_or_a_status(
        body in arb_json(),
        spec in arb_json(),
        which in 0usize..3,
    ) {
        let mut st = SimState::new();
        st.add_token("t", "jane", &["devs"]);
        st.grant("devs", "*", "*", "get");
        let (group, plural, kind) = [
            ("authentication.k8s.io", "tokenreviews", "TokenReview"),
            ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
            ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ][which];
        for b in [body.clone(), json!({"kind": kind, "spec": spec})] {
            let r = post(&st, group, plural, b);
            let kind_answered = r.body["kind"].as_str().unwrap_or_default();
            match r.code.as_u16() {
                201 => prop_assert_eq!(kind_answered, kind),
                400 | 422 => prop_assert_eq!(kind_answered, "Status"),
                other => prop_assert!(false, "{other}: {}", r.body),
            }
        }
    }
}

#[test]
fn the_400_of_a_broken_body_never_shows_the_token() {
    let st = SimState::new();
    let rt = st
        .find("authentication.k8s.io", "v1", "tokenreviews")
        .unwrap();
    let broken = [
        ("application/yaml", "spec:\n  token: s3cret-xyz\n bad: ["),
        (
            "application/yaml",
            "spec: {token: s3cret-xyz, token: again}",
        ),
        ("application/yaml", "spec:\n  token: \"s3cret-xyz\n"),
        (
            "application/json",
            "{\"spec\": {\"token\": \"s3cret-xyz\\q\"}}",
        ),
        ("application/json", "{\"spec\": {\"token\": \"s3cret-xyz\"}"),
    ];
    for (ctype, body) in broken {
        let refusal = crate::sim::handlers::parse_body(ctype, body.as_bytes(), &rt).unwrap_err();
        assert_eq!(refusal.code, StatusCode::BAD_REQUEST);
        assert!(
            !refusal.body.to_string().contains("s3cret"),
            "{}",
            refusal.body
        );
    }
}

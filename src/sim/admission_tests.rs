//! Tests of validating admission through the write pipeline (no HTTP): the denial envelope,
//! reasons, messages, failure policies, actions, selectors, dryRun, and that no expression or
//! object can panic the sim.

use super::*;
use crate::sim::handlers::{self, Target};
use crate::sim::state::{Ctx, FieldValidation};
use proptest::prelude::*;

fn ctx() -> Ctx {
    Ctx {
        manager: "test".into(),
        field_validation: FieldValidation::Warn,
        dry_run: false,
        now: "2026-11-28T10:00:00Z".into(),
    }
}

fn target(st: &SimState, group: &str, plural: &str, ns: Option<&str>) -> Target {
    let rt = st
        .types
        .iter()
        .find(|t| t.group == group && t.plural == plural)
        .cloned()
        .expect("type");
    Target {
        rt,
        namespace: ns.map(String::from),
        name: None,
        sub: None,
    }
}

fn create(st: &mut SimState, group: &str, plural: &str, ns: Option<&str>, obj: Value) -> Reply {
    let t = target(st, group, plural, ns);
    handlers::create(st, &t, obj, &ctx())
}

/// A policy on ConfigMaps (CREATE and UPDATE) and its binding.
fn policy(st: &mut SimState, spec: Value, actions: &[&str], binding_extra: Value) {
    let mut p = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "p"}, "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""],
        "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]}}});
    for (k, v) in spec.as_object().into_iter().flatten() {
        p["spec"][k] = v.clone();
    }
    let r = create(st, GROUP, "validatingadmissionpolicies", None, p);
    assert_eq!(r.code, 201, "{}", r.body);
    let mut b = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": actions}});
    for (k, v) in binding_extra.as_object().into_iter().flatten() {
        b["spec"][k] = v.clone();
    }
    let r = create(st, GROUP, "validatingadmissionpolicybindings", None, b);
    assert_eq!(r.code, 201, "{}", r.body);
}

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

#[test]
fn a_false_validation_is_denied_with_kube_apiservers_envelope() {
    let mut st = SimState::new();
    policy(
        &mut st,
        json!({"validations": [{"expression": "object.data.size == 'small'"}]}),
        &["Deny"],
        json!({}),
    );
    let r = create(
        &mut st,
        "",
        "configmaps",
        Some("default"),
        cm("big", json!({"size": "large"})),
    );
    let why = "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: object.data.size == 'small'";
    assert_eq!(r.code, 422);
    assert_eq!(
        r.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("configmaps \"big\" is forbidden: {why}"), "reason": "Invalid",
            "details": {"name": "big", "kind": "configmaps", "causes": [{"message": why}]}, "code": 422})
    );
    assert!(
        st.store
            .get(&("/configmaps".into(), "default".into(), "big".into()))
            .is_none()
    );
    let ok = create(
        &mut st,
        "",
        "configmaps",
        Some("default"),
        cm("small", json!({"size": "small"})),
    );
    assert_eq!(ok.code, 201);
}

#[test]
fn reasons_messages_and_dry_run() {
    let mut st = SimState::new();
    let v = json!({"validations": [
        {"expression": "!has(object.data.a)", "message": "  no a  ", "reason": "Forbidden"},
        {"expression": "!has(object.data.b)", "messageExpression": "'b is ' + object.data.b"},
    ]});
    policy(&mut st, v, &["Deny"], json!({}));
    let r = create(
        &mut st,
        "",
        "configmaps",
        Some("default"),
        cm("x", json!({"a": "1"})),
    );
    assert_eq!(
        (r.code.as_u16(), r.body["reason"].as_str()),
        (403, Some("Forbidden"))
    );
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: no a"),
        "{}",
        r.body
    );
    let mut dry = ctx();
    dry.dry_run = true;
    let t = target(&st, "", "configmaps", Some("default"));
    let r = handlers::create(&mut st, &t, cm("y", json!({"b": "2"})), &dry);
    assert_eq!(r.code, 422, "dryRun answers the denial too");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: b is 2"),
        "{}",
        r.body
    );
}

#[test]
fn failure_policy_decides_about_broken_expressions() {
    for (failure, code) in [("Fail", 422), ("Ignore", 201)] {
        let mut st = SimState::new();
        let v =
            json!({"failurePolicy": failure, "validations": [{"expression": "object.data.(("}]});
        policy(&mut st, v, &["Deny"], json!({}));
        let r = create(
            &mut st,
            "",
            "configmaps",
            Some("default"),
            cm("x", json!({})),
        );
        assert_eq!(r.code, code, "{failure}: {}", r.body);
        if code == 422 {
            let m = r.body["message"].as_str().unwrap();
            assert!(
                m.contains("denied request: compilation error: compilation failed: "),
                "{m}"
            );
        }
    }
    let mut st = SimState::new();
    let v = json!({"validations": [{"expression": "object.data.missing == 'x'"}]});
    policy(&mut st, v, &["Deny"], json!({}));
    let r = create(
        &mut st,
        "",
        "configmaps",
        Some("default"),
        cm("x", json!({})),
    );
    let m = r.body["message"].as_str().unwrap();
    assert!(
        m.contains("denied request: expression 'object.data.missing == 'x'' resulted in error: "),
        "{m}"
    );
}

#[test]
fn warn_actions_warn_and_binding_selectors_narrow() {
    let mut st = SimState::new();
    let sel = json!({"matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}});
    policy(
        &mut st,
        json!({"validations": [{"expression": "false", "message": "nope"}]}),
        &["Warn"],
        sel,
    );
    let r = create(
        &mut st,
        "",
        "configmaps",
        Some("kube-system"),
        cm("x", json!({})),
    );
    assert_eq!(r.code, 201);
    assert_eq!(
        r.warnings,
        vec![
            "299 - \"Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': nope\""
                .to_string()
        ]
    );
    let r = create(
        &mut st,
        "",
        "configmaps",
        Some("default"),
        cm("x", json!({})),
    );
    assert!(
        r.warnings.is_empty(),
        "the binding selects kube-system only"
    );
}

#[test]
fn old_object_is_bound_on_update_and_defaults_are_applied() {
    let mut st = SimState::new();
    let v = json!({"validations": [{"expression": "oldObject == null || object.data.v >= oldObject.data.v", "message": "no going back"}]});
    policy(&mut st, v, &["Deny"], json!({}));
    let stored = st
        .store
        .get(&(POLICIES.into(), String::new(), "p".into()))
        .unwrap();
    assert_eq!(stored["spec"]["failurePolicy"], "Fail");
    assert_eq!(
        stored["spec"]["matchConstraints"]["matchPolicy"],
        "Equivalent"
    );
    assert_eq!(
        stored["spec"]["matchConstraints"]["resourceRules"][0]["scope"],
        "*"
    );
    assert_eq!(
        create(
            &mut st,
            "",
            "configmaps",
            Some("default"),
            cm("x", json!({"v": "2"}))
        )
        .code,
        201
    );
    let mut t = target(&st, "", "configmaps", Some("default"));
    t.name = Some("x".into());
    let r = handlers::update(&mut st, &t, cm("x", json!({"v": "1"})), &ctx());
    assert_eq!(r.code, 422, "{}", r.body);
    assert_eq!(
        handlers::update(&mut st, &t, cm("x", json!({"v": "3"})), &ctx()).code,
        200
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_expression() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "object",
            "oldObject",
            "request",
            "variables",
            ".",
            "data",
            "metadata",
            "name",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "'x'",
            "1",
            "1u",
            "2.5",
            "true",
            "null",
            "==",
            "!=",
            "<",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "%",
            "&&",
            "||",
            "!",
            "?",
            ":",
            ",",
            "has",
            "size",
            "all",
            "exists",
            "map",
            "filter",
            "matches",
            "int",
            "string",
            "b'\\xff'",
            "duration('1s')",
            "timestamp('x')",
            "quantity('1Gi')",
            "url('x')",
            " ",
            "9223372036854775807",
            "-9223372036854775808",
        ])
        .prop_map(String::from),
        "\\PC{0,6}",
    ];
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// No expression and no object can panic the sim: admission answers Ok or a 4xx Status.
    #[test]
    fn no_expression_or_object_panics_the_sim(
        expression in arb_expression(),
        message_expression in prop::option::of(arb_expression()),
        data in arb_json(),
        failure in prop::sample::select(vec!["Fail", "Ignore"]),
    ) {
        let mut st = SimState::new();
        let mut v = json!({"expression": expression});
        if let Some(m) = message_expression { v["messageExpression"] = json!(m); }
        policy(&mut st, json!({"failurePolicy": failure, "variables": [{"name": "v", "expression": expression}],
            "matchConditions": [{"name": "m", "expression": "true"}], "validations": [v]}), &["Deny", "Warn"], json!({}));
        let mut obj = cm("x", json!({}));
        obj["metadata"]["annotations"] = json!({"a": data.to_string()});
        let r = create(&mut st, "", "configmaps", Some("default"), obj);
        prop_assert!(matches!(r.code.as_u16(), 201 | 422), "{} {}", r.code, r.body);
        // A policy's `object` can have any shape: bind the random value itself too.
        let outcome = crate::sim::admission_cel::on_big_stack(|| {
            crate::sim::admission_cel::Env::new(&data, Some(&data), &json!({}), None).check(&expression)
        });
        prop_assert!(outcome.is_some());
    }
}

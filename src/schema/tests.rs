use serde_json::json;

use super::*;

fn canary_like_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["targetRef"],
                "properties": {
                    "targetRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                    "provider": {"type": "string", "enum": ["kubernetes", "istio"]},
                    "progressDeadlineSeconds": {"type": "integer", "default": 600},
                    "port": {"x-kubernetes-int-or-string": true},
                    "analysis": {
                        "type": "object",
                        "properties": {
                            "interval": {"type": "string", "pattern": "^[0-9]+(s|m|h)$"},
                            "stepWeight": {"type": "integer", "minimum": 0, "maximum": 100},
                            "maxWeight": {"type": "integer", "minimum": 0, "maximum": 100},
                            "stepWeights": {"type": "array", "items": {"type": "integer", "maximum": 100}}
                        },
                        "x-kubernetes-validations": [{
                            "rule": "!has(self.stepWeight) || !has(self.maxWeight) || self.stepWeight <= self.maxWeight",
                            "message": "stepWeight must not exceed maxWeight",
                            "fieldPath": ".stepWeight"
                        }]
                    }
                }
            }
        }
    })
}

#[test]
fn range_and_pattern_errors_are_worded_like_kube_apiserver() {
    let obj = json!({"spec": {"targetRef": {"name": "a"}, "analysis": {"interval": "5 minutes", "stepWeight": 50, "stepWeights": [10, 200]}}});
    let causes = validate(&canary_like_schema(), &obj, None);
    let msgs: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
    assert!(msgs.contains(&"spec.analysis.stepWeights[1]: Invalid value: 200: spec.analysis.stepWeights[1] in body should be less than or equal to 100".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"spec.analysis.interval: Invalid value: \"5 minutes\": spec.analysis.interval in body should match '^[0-9]+(s|m|h)$'".to_string()), "{msgs:?}");
}

#[test]
fn blocking_errors_skip_cel_and_add_the_nil_cause() {
    let obj = json!({"spec": {"provider": "nginx", "progressDeadlineSeconds": "ten", "analysis": {"stepWeight": 60, "maxWeight": 50}}});
    let causes = validate(&canary_like_schema(), &obj, None);
    let by_field = |f: &str| {
        causes
            .iter()
            .find(|c| c.field == f)
            .unwrap_or_else(|| panic!("no cause for {f}: {causes:?}"))
    };
    assert_eq!(causes.len(), 4, "{causes:?}");
    assert_eq!(causes.last().map(|c| c.field.as_str()), Some("<nil>"));
    assert_eq!(
        by_field("spec.provider").message,
        "Unsupported value: \"nginx\": supported values: \"kubernetes\", \"istio\""
    );
    assert_eq!(
        by_field("spec.progressDeadlineSeconds").message,
        "Invalid value: \"string\": spec.progressDeadlineSeconds in body must be of type integer: \"string\""
    );
    assert_eq!(by_field("spec.targetRef").reason, CauseReason::Required);
}

#[test]
fn cel_rules_run_when_only_range_errors_exist() {
    let obj = json!({"spec": {"targetRef": {"name": "a"}, "analysis": {"stepWeight": 101, "maxWeight": 50}}});
    let causes = validate(&canary_like_schema(), &obj, None);
    let msgs: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m
            == "spec.analysis.stepWeight: Invalid value: stepWeight must not exceed maxWeight"),
        "{msgs:?}"
    );
}

#[test]
fn int_or_string_accepts_both_and_nothing_else() {
    let schema = canary_like_schema();
    for port in [json!(8080), json!("http")] {
        let obj = json!({"spec": {"targetRef": {"name": "a"}, "port": port}});
        assert!(validate(&schema, &obj, None).is_empty());
    }
    let obj = json!({"spec": {"targetRef": {"name": "a"}, "port": true}});
    assert_eq!(
        validate(&schema, &obj, None)[0].reason,
        CauseReason::TypeInvalid
    );
}

#[test]
fn unknown_fields_are_found_and_pruned() {
    let schema = canary_like_schema();
    let mut obj = json!({"metadata": {"anything": 1}, "spec": {"targetRef": {"name": "a", "x": 1}, "fooBar": 1}});
    assert_eq!(
        unknown_fields(&schema, &obj),
        vec!["spec.fooBar", "spec.targetRef.x"]
    );
    let pruned = prune_unknown(&schema, &mut obj);
    assert_eq!(pruned.len(), 2);
    assert_eq!(
        obj,
        json!({"metadata": {"anything": 1}, "spec": {"targetRef": {"name": "a"}}})
    );
}

#[test]
fn defaults_are_applied() {
    let obj = json!({"spec": {"targetRef": {"name": "a"}}});
    let defaulted = apply_defaults(&canary_like_schema(), &obj);
    assert_eq!(defaulted["spec"]["progressDeadlineSeconds"], json!(600));
}

#[test]
fn one_of_requires_exactly_one_branch() {
    let schema = json!({"type": "object", "oneOf": [{"required": ["address"]}, {"required": ["secretRef"]}],
        "properties": {"address": {"type": "string"}, "secretRef": {"type": "object"}}});
    assert!(validate(&schema, &json!({"address": "x"}), None).is_empty());
    assert_eq!(
        validate(&schema, &json!({"address": "x", "secretRef": {}}), None).len(),
        1
    );
    assert_eq!(validate(&schema, &json!({}), None).len(), 1);
}

mod props {
    use proptest::prelude::*;
    use serde_json::Value;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn validation_never_panics_on_arbitrary_values(v in arb_json()) {
            let schema = super::canary_like_schema();
            let _ = super::validate(&schema, &v, None);
            let mut w = v.clone();
            let _ = super::prune_unknown(&schema, &mut w);
        }
    }
}

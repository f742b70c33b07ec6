//! Structural OpenAPI v3 checks as kube-apiserver applies them to custom objects: type, enum,
//! bounds, pattern, lengths, required, oneOf/anyOf/allOf/not, int-or-string and
//! preserve-unknown-fields; plus finding and pruning fields the schema does not know.

use serde_json::{Map, Value};

use super::{Cause, CauseReason};

/// Structural causes for `value` under `schema` (CEL rules are not evaluated here).
pub fn validate(schema: &Value, value: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    check(schema, value, "", &mut causes);
    causes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        _ => true,
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "<nil>" } else { path }
}

fn push(causes: &mut Vec<Cause>, reason: CauseReason, path: &str, message: String) {
    causes.push(Cause {
        reason,
        field: shown(path).to_string(),
        message,
    });
}

fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(s) = schema.as_object() else { return };
    if value.is_null() && s.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let int_or_string = s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !(value.is_string() || type_matches("integer", value)) {
            push(
                causes,
                CauseReason::TypeInvalid,
                path,
                format!(
                    "Invalid value: \"{}\": {} in body must be of type integer,string: \"{}\"",
                    json_type_name(value),
                    shown(path),
                    json_type_name(value)
                ),
            );
            return;
        }
    } else if let Some(ty) = s.get("type").and_then(Value::as_str)
        && !type_matches(ty, value)
    {
        push(
            causes,
            CauseReason::TypeInvalid,
            path,
            format!(
                "Invalid value: \"{}\": {} in body must be of type {ty}: \"{}\"",
                json_type_name(value),
                shown(path),
                json_type_name(value)
            ),
        );
        return;
    }
    if let Some(Value::Array(members)) = s.get("enum")
        && !members.contains(value)
    {
        let list: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        push(
            causes,
            CauseReason::NotSupported,
            path,
            format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        );
    }
    match value {
        Value::String(text) => check_string(s, text, path, causes),
        Value::Number(_) => check_number(s, value, path, causes),
        Value::Array(items) => check_array(s, items, path, causes),
        Value::Object(fields) => check_object(s, fields, path, causes),
        _ => {}
    }
    check_combinators(s, value, path, causes);
}

fn check_string(s: &Map<String, Value>, text: &str, path: &str, causes: &mut Vec<Cause>) {
    let len = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        push(
            causes,
            CauseReason::TooLong,
            path,
            format!("Too long: may not be more than {max} bytes"),
        );
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        push(
            causes,
            CauseReason::Invalid,
            path,
            format!(
                "Invalid value: \"{text}\": {} in body should be at least {min} chars long",
                shown(path)
            ),
        );
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        // An unparseable pattern in someone's CRD is not the object's fault: skip it.
        if let Ok(re) = regex::Regex::new(pattern)
            && !re.is_match(text)
        {
            push(
                causes,
                CauseReason::Invalid,
                path,
                format!(
                    "Invalid value: \"{text}\": {} in body should match '{pattern}'",
                    shown(path)
                ),
            );
        }
    }
}

fn check_number(s: &Map<String, Value>, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(n) = value.as_f64() else { return };
    let exclusive = |key: &str| s.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(max) = s.get("maximum").and_then(Value::as_f64)
        && (n > max || (exclusive("exclusiveMaximum") && n >= max))
    {
        let rel = if exclusive("exclusiveMaximum") {
            "less than"
        } else {
            "less than or equal to"
        };
        push(
            causes,
            CauseReason::Invalid,
            path,
            format!(
                "Invalid value: {value}: {} in body should be {rel} {}",
                shown(path),
                fmt_num(max)
            ),
        );
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64)
        && (n < min || (exclusive("exclusiveMinimum") && n <= min))
    {
        let rel = if exclusive("exclusiveMinimum") {
            "greater than"
        } else {
            "greater than or equal to"
        };
        push(
            causes,
            CauseReason::Invalid,
            path,
            format!(
                "Invalid value: {value}: {} in body should be {rel} {}",
                shown(path),
                fmt_num(min)
            ),
        );
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn check_array(s: &Map<String, Value>, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        push(
            causes,
            CauseReason::TooMany,
            path,
            format!("Too many: {}: must have at most {max} items", items.len()),
        );
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        push(
            causes,
            CauseReason::Invalid,
            path,
            format!(
                "Invalid value: {}: {} in body should have at least {min} items",
                items.len(),
                shown(path)
            ),
        );
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), causes);
        }
    }
}

fn check_object(
    s: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(Value::Array(required)) = s.get("required") {
        for key in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(key) {
                push(
                    causes,
                    CauseReason::Required,
                    &join(path, key),
                    "Required value".to_string(),
                );
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (key, child) in fields {
        if let Some(child_schema) = props.and_then(|p| p.get(key)) {
            check(child_schema, child, &join(path, key), causes);
        } else if let Some(additional) = s.get("additionalProperties").filter(|a| a.is_object()) {
            check(additional, child, &format!("{path}[{key}]"), causes);
        }
    }
}

fn check_combinators(s: &Map<String, Value>, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let passes = |sub: &Value| validate_at(sub, value, path).is_empty();
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            causes.extend(validate_at(sub, value, path));
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf")
        && !any.iter().any(passes)
    {
        push(
            causes,
            CauseReason::Invalid,
            path,
            "Invalid value: must validate at least one schema (anyOf)".to_string(),
        );
    }
    if let Some(Value::Array(one)) = s.get("oneOf")
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        push(
            causes,
            CauseReason::Invalid,
            path,
            "Invalid value: must validate one and only one schema (oneOf)".to_string(),
        );
    }
    if let Some(not) = s.get("not")
        && passes(not)
    {
        push(
            causes,
            CauseReason::Invalid,
            path,
            "Invalid value: must not validate the schema (not)".to_string(),
        );
    }
}

fn validate_at(schema: &Value, value: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    check(schema, value, path, &mut causes);
    causes
}

/// Paths of fields the schema does not declare (what `fieldValidation=Strict` rejects).
pub fn unknown_fields(schema: &Value, value: &Value) -> Vec<String> {
    prune_unknown(schema, &mut value.clone())
}

/// Removes fields the schema does not declare, as the API server prunes custom objects, and returns
/// their paths (for `Warning: unknown field` headers).
pub fn prune_unknown(schema: &Value, value: &mut Value) -> Vec<String> {
    let mut found = Vec::new();
    prune(schema, value, "", &mut found);
    found
}

fn preserves_unknown(s: &Map<String, Value>) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// An object schema without `properties` or `additionalProperties` (e.g. `metadata: {type: object}`)
/// declares nothing to prune against; the server keeps such content, so do we.
fn is_open(s: &Map<String, Value>) -> bool {
    preserves_unknown(s)
        || (!s.contains_key("properties") && !s.contains_key("additionalProperties"))
}

fn prune(schema: &Value, value: &mut Value, path: &str, found: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    match value {
        Value::Object(fields) => {
            if is_open(s) {
                return;
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = fields.keys().cloned().collect();
            for key in keys {
                // The server never prunes the object's envelope, declared or not.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(child_schema) = props.and_then(|p| p.get(&key)) {
                    if let Some(child) = fields.get_mut(&key) {
                        prune(child_schema, child, &join(path, &key), found);
                    }
                } else if let Some(add) = additional {
                    if let Some(child) = fields.get_mut(&key) {
                        prune(add, child, &format!("{path}[{key}]"), found);
                    }
                } else {
                    fields.remove(&key);
                    found.push(join(path, &key));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

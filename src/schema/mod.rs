//! Validation of JSON values against a CRD's `openAPIV3Schema`, as kube-apiserver does it: structural
//! checks (types, enums, bounds, required), unknown-field detection and pruning, defaults, and the
//! CEL rules of `x-kubernetes-validations` (through kube's CEL engine).
//!
//! Used by `serin check`, by the embedded API server for custom objects, and by the router tests that
//! hold generated third-party objects to the official CRDs. Causes are worded like the real server's
//! (recorded in ../shared/k8s-transcripts/08-crd-canary.json). Pure: no I/O.

mod structural;

use serde_json::Value;

pub use structural::{prune_unknown, unknown_fields};

/// The `reason` of a validation cause, as in a Kubernetes `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseReason {
    /// `FieldValueInvalid`: bounds, patterns, CEL rules.
    Invalid,
    /// `FieldValueRequired`: a required field is missing.
    Required,
    /// `FieldValueNotSupported`: a value outside the enum.
    NotSupported,
    /// `FieldValueTypeInvalid`: wrong JSON type.
    TypeInvalid,
    /// `FieldValueTooLong`: a string over maxLength.
    TooLong,
    /// `FieldValueTooMany`: a list over maxItems.
    TooMany,
    /// `FieldValueForbidden`: a change that is not allowed (e.g. new finalizers while deleting).
    Forbidden,
}

impl CauseReason {
    /// The reason string Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseReason::Invalid => "FieldValueInvalid",
            CauseReason::Required => "FieldValueRequired",
            CauseReason::NotSupported => "FieldValueNotSupported",
            CauseReason::TypeInvalid => "FieldValueTypeInvalid",
            CauseReason::TooLong => "FieldValueTooLong",
            CauseReason::TooMany => "FieldValueTooMany",
            CauseReason::Forbidden => "FieldValueForbidden",
        }
    }

    /// Blocking causes stop the CEL rules from running, as in kube-apiserver.
    pub fn is_blocking(self) -> bool {
        !matches!(self, CauseReason::Invalid | CauseReason::Forbidden)
    }
}

/// One validation failure: the field path, the reason and the message the real server would give.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Reason class.
    pub reason: CauseReason,
    /// Field path such as `spec.analysis.stepWeights[1]`, or `<nil>`.
    pub field: String,
    /// Message without the field prefix, e.g. `Required value`.
    pub message: String,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The cause kube-apiserver appends when blocking errors kept CEL rules from running.
pub fn cel_not_checked_cause() -> Cause {
    Cause {
        reason: CauseReason::Invalid,
        field: "<nil>".to_string(),
        message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".to_string(),
    }
}

/// Applies the schema's defaults to a value (as the API server does before validating).
pub fn apply_defaults(schema: &Value, value: &Value) -> Value {
    kube::core::cel::apply_defaults(schema, value)
}

/// Validates a (defaulted) value against the schema: structural checks, then the CEL rules when no
/// blocking cause was found. `old` enables transition rules (`oldSelf`) on updates.
pub fn validate(schema: &Value, value: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = structural::validate(schema, value);
    if causes.iter().any(|c| c.reason.is_blocking()) {
        if has_cel_rules(schema) {
            causes.push(cel_not_checked_cause());
        }
        return causes;
    }
    causes.extend(cel_causes(schema, value, old));
    causes
}

fn has_cel_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_cel_rules)
        }
        Value::Array(items) => items.iter().any(has_cel_rules),
        _ => false,
    }
}

fn cel_causes(schema: &Value, value: &Value, old: Option<&Value>) -> Vec<Cause> {
    let validator = kube::core::cel::Validator::new();
    match validator.validate(schema, value, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| Cause {
                reason: CauseReason::Invalid,
                field: cel_field_path(&e.field_path),
                message: format!("Invalid value: {}", e.message),
            })
            .collect(),
    }
}

/// kube-cel reports paths like `spec.analysis` or `.spec.analysis`; Kubernetes has no leading dot.
fn cel_field_path(path: &str) -> String {
    let p = path.trim_start_matches('.');
    if p.is_empty() {
        "<nil>".to_string()
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests;

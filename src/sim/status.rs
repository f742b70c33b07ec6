//! `Status` bodies shaped exactly like kube-apiserver's (../shared/k8s-transcripts): 404/409 name the
//! plural resource in `details.kind`, 422 names the Kind, 400s carry no details.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::resources::ResourceType;
use crate::schema::Cause;

/// An HTTP answer: status, JSON (or text) body, and Warning headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub code: StatusCode,
    /// The body.
    pub body: Value,
    /// `Warning` header values.
    pub warnings: Vec<String>,
    /// Other response headers (`Retry-After` of a 429).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(code: StatusCode, body: Value) -> Reply {
        Reply {
            code,
            body,
            warnings: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A plain-text answer (the real server's `404 page not found`, Go's `http.Error` bodies).
    pub fn text(code: StatusCode, text: &str) -> Reply {
        Reply {
            code,
            body: Value::String(text.to_string()),
            warnings: Vec::new(),
            headers: Vec::new(),
        }
    }
}

pub(super) fn status(code: u16, reason: &str, message: String, details: Option<Value>) -> Reply {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason});
    if let Some(d) = details {
        body["details"] = d;
    }
    body["code"] = json!(code);
    Reply::json(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

pub(super) fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name});
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d["kind"] = json!(rt.plural);
    d
}

/// 404 NotFound for a named object.
pub fn not_found(rt: &ResourceType, name: &str) -> Reply {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", rt.qualified()),
        Some(details(rt, name)),
    )
}

/// 409 AlreadyExists.
pub fn already_exists(rt: &ResourceType, name: &str) -> Reply {
    status(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", rt.qualified()),
        Some(details(rt, name)),
    )
}

/// 409 Conflict on a stale resourceVersion.
pub fn conflict(rt: &ResourceType, name: &str) -> Reply {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            rt.qualified()
        ),
        Some(details(rt, name)),
    )
}

/// 400 BadRequest.
pub fn bad_request(message: impl Into<String>) -> Reply {
    status(400, "BadRequest", message.into(), None)
}

/// A failure Status with no reason (what the real server sends for some decoding errors).
pub fn bare(code: u16, message: impl Into<String>) -> Reply {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message.into(), "code": code});
    Reply::json(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

/// 415 UnsupportedMediaType.
pub fn unsupported_media(message: impl Into<String>) -> Reply {
    status(415, "UnsupportedMediaType", message.into(), None)
}

/// 415 for a PATCH with a plain `application/json` (or other unknown) content type.
pub fn unsupported_patch_type() -> Reply {
    status(
        415,
        "UnsupportedMediaType",
        "415: Unsupported Media Type".to_string(),
        Some(json!({})),
    )
}

/// 413 RequestEntityTooLarge.
pub fn too_large() -> Reply {
    status(
        413,
        "RequestEntityTooLarge",
        "the request body is too large".to_string(),
        None,
    )
}

/// 405 MethodNotAllowed.
pub fn method_not_allowed(method: &str) -> Reply {
    status(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
        None,
    )
}

/// 410 Expired (as a Status object, also used in-band in watch ERROR events).
pub fn expired_body(message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": "Expired", "code": 410})
}

/// 422 Invalid with one cause per problem; the message lists them all like the real server.
pub fn invalid(rt: &ResourceType, name: &str, causes: &[Cause]) -> Reply {
    let mut listed: Vec<String> = Vec::new();
    for c in causes {
        let line = format!("{}: {}", c.field, c.message);
        if !listed.contains(&line) {
            listed.push(line);
        }
    }
    let list = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    let mut d = json!({"name": name});
    // events.k8s.io Events are validated as the internal core Event: no group in the answer.
    let core_validated = rt.group == "events.k8s.io";
    if !rt.group.is_empty() && !core_validated {
        d["group"] = json!(rt.group);
    }
    d["kind"] = json!(rt.kind);
    d["causes"] = Value::Array(
        causes
            .iter()
            .map(|c| json!({"reason": c.reason.as_str(), "message": c.message, "field": c.field}))
            .collect(),
    );
    status(
        422,
        "Invalid",
        format!(
            "{} \"{name}\" is invalid: {list}",
            (if core_validated {
                rt.kind.clone()
            } else {
                rt.qualified_kind()
            })
        ),
        Some(d),
    )
}

/// 422 for a JSON patch whose `test` failed: the real server's generic message, empty details.
pub fn patch_test_failed() -> Reply {
    status(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request".to_string(),
        Some(json!({})),
    )
}

/// A success Status for deletes that removed the object at once.
pub fn deleted(rt: &ResourceType, name: &str, uid: &str) -> Reply {
    let mut d = details(rt, name);
    d["uid"] = json!(uid);
    Reply::json(
        StatusCode::OK,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d}),
    )
}

/// A plain `404 page not found` (unknown paths and subresources).
pub fn not_found_text(_what: &str) -> Reply {
    Reply::text(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// 410 Expired as a reply (continue tokens whose snapshot is gone).
pub fn expired_reply() -> Reply {
    Reply::json(
        StatusCode::GONE,
        expired_body(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        ),
    )
}

/// 422 from a patch that could not be applied (message of the patch engine).
pub fn invalid_message(rt: &ResourceType, name: &str, message: &str) -> Reply {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Invalid", "details": {"name": name, "kind": rt.kind}, "code": 422});
    if !rt.group.is_empty() {
        body["details"]["group"] = json!(rt.group);
    }
    Reply::json(StatusCode::UNPROCESSABLE_ENTITY, body)
}

/// 422 for an apply without fieldManager.
pub fn apply_needs_manager() -> Reply {
    Reply::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        "reason": "Invalid", "details": {"group": "meta.k8s.io", "kind": "PatchOptions",
        "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]}, "code": 422}),
    )
}

/// 422 for a patch whose result does not decode (the real message embeds the patched object).
pub fn patch_type_error(decode_error: &str) -> Reply {
    let detail = decode_error.rsplit(": ").next().unwrap_or(decode_error);
    let message = format!("Invalid value: \"<the patched object as JSON>\": {detail}");
    Reply::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!(" \"\" is invalid: patch: {message}"), "reason": "Invalid",
        "details": {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": "patch"}]}, "code": 422}),
    )
}

/// 422 for sendInitialEvents without resourceVersionMatch=NotOlderThan.
pub fn list_options_forbidden() -> Reply {
    let m = "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan";
    Reply::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: {m}"), "reason": "Invalid",
        "details": {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [{"reason": "FieldValueForbidden", "message": m, "field": "resourceVersionMatch"}]}, "code": 422}),
    )
}

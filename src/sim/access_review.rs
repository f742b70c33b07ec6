//! `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: a client asks whether it may do
//! something, and the answer follows the deny list of `authz` (what the requests themselves would
//! get). Shaped like k8s-transcripts 19 step 14: 201, the spec echoed without empty fields,
//! `status: {allowed: false}` for a refusal (RBAC refuses by having no opinion, so there is no
//! `denied` and no `reason`), `status: {allowed: true}` otherwise (as the privileged-group
//! authorizer answers an admin, with no reason). Never stored.
//! Must not import the controller or the decision core.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::authz::Attributes;
use super::fieldset::Shape;
use super::managed;
use super::resources::ResourceType;
use super::state::{Ctx, SimState};
use super::status::{self, Reply};
use crate::schema::{Cause, CauseReason};

const RESOURCE_FIELDS: [&str; 7] = [
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
];

/// Keeps the known attribute fields that are non-empty strings (Go's `omitempty`).
fn echo(attrs: &Value, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if let Some(s) = attrs[*f].as_str().filter(|s| !s.is_empty()) {
            out.insert((*f).to_string(), json!(s));
        }
    }
    Value::Object(out)
}

/// The attributes a review asks about, in the authorizer's terms.
fn asked(ra: &Value) -> Attributes {
    let s = |k: &str| ra[k].as_str().unwrap_or_default().to_string();
    let opt = |k: &str| Some(s(k)).filter(|v| !v.is_empty());
    let verb = s("verb");
    Attributes {
        group: s("group"),
        version: s("version"),
        namespace: opt("namespace"),
        resource: s("resource"),
        subresource: opt("subresource"),
        name: opt("name"),
        // The authorizer compares verbs as strings; a verb outside the usual set matches only
        // a `*` rule.
        verb: match verb.as_str() {
            "get" => "get",
            "list" => "list",
            "watch" => "watch",
            "create" => "create",
            "update" => "update",
            "patch" => "patch",
            "delete" => "delete",
            "deletecollection" => "deletecollection",
            "*" => "*",
            _ => "",
        },
    }
}

/// Answers a SelfSubjectAccessReview for the client with this User-Agent.
pub fn review(st: &SimState, rt: &ResourceType, agent: &str, body: &Value, ctx: &Ctx) -> Reply {
    let spec = &body["spec"];
    let resource = spec["resourceAttributes"]
        .as_object()
        .map(|_| &spec["resourceAttributes"]);
    let non_resource = spec["nonResourceAttributes"]
        .as_object()
        .map(|_| &spec["nonResourceAttributes"]);
    let (echoed, allowed) = match (resource, non_resource) {
        (Some(ra), None) => {
            let a = asked(ra);
            let allowed = st.rbac.allows(agent, &a);
            (
                json!({"resourceAttributes": echo(ra, &RESOURCE_FIELDS)}),
                allowed,
            )
        }
        // The deny list names resources only; non-resource URLs are always allowed.
        (None, Some(nra)) => (
            json!({"nonResourceAttributes": echo(nra, &["path", "verb"])}),
            true,
        ),
        (Some(_), Some(_)) => {
            return invalid(
                rt,
                "spec.nonResourceAttributes",
                "cannot be specified in combination with resourceAttributes",
                &spec["nonResourceAttributes"],
            );
        }
        (None, None) => {
            return invalid(
                rt,
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                &Value::Null,
            );
        }
    };
    let mut out = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {},
        "spec": echoed, "status": {"allowed": allowed}});
    // kube-apiserver fills in managedFields for the (never stored) create, as for any other.
    let shape = Shape::of(rt);
    managed::record_update(
        &shape,
        &json!({}),
        &mut out,
        &ctx.manager,
        &rt.api_version(),
        None,
        &ctx.now,
    );
    Reply::json(StatusCode::CREATED, out)
}

/// 422 as `ValidateSelfSubjectAccessReviewSpec` words it.
fn invalid(rt: &ResourceType, field: &str, why: &str, value: &Value) -> Reply {
    let shown = if value.is_null() {
        "null".to_string()
    } else {
        value.to_string()
    };
    let cause = Cause {
        reason: CauseReason::Invalid,
        field: field.to_string(),
        message: format!("Invalid value: {}: {why}", json!(shown)),
    };
    status::invalid(rt, "", &[cause])
}

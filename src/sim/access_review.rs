//! The access reviews of authorization.k8s.io/v1, shaped like k8s-transcripts 19 step 14: 201,
//! the spec echoed without empty fields, `status: {allowed: false}` for a refusal (RBAC refuses
//! by having no opinion, so there is no `denied` and no `reason`). Never stored.
//! - `selfsubjectaccessreviews`: a client asks whether it may do something; the answer follows
//!   the deny list of `authz` (what its requests themselves would get), `{allowed: true}` with no
//!   reason otherwise (as the privileged-group authorizer answers an admin).
//! - `subjectaccessreviews`: a server asks about someone else (`spec.user`, `groups`, `uid`,
//!   `extra`); the answer follows the grants of `identities` (`SimState::grant`, deny by
//!   default): `{allowed: true, reason: "RBAC: allowed by ClusterRoleBinding \"sim-grant-1\" of
//!   ClusterRole \"sim-grant-1\" to User \"jane\""}` when a grant to the user or one of its
//!   groups covers the request, `{allowed: true}` for members of `system:masters`, and
//!   non-resource requests are allowed to `system:masters` only.
//!
//! Both are validated as `ValidateSubjectAccessReviewSpec` does, every cause in one 422.
//! Must not import the controller or the decision core.

use serde_json::{Map, Value, json};

use super::authz::Attributes;
use super::resources::ResourceType;
use super::reviews::{Want, created, expect, invalid_cause, metadata_cause, strings};
use super::state::{Ctx, SimState};
use super::status::{self, Reply};
use crate::schema::Cause;

const RESOURCE_FIELDS: [&str; 7] = [
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
];

const NON_RESOURCE_FIELDS: [&str; 2] = ["path", "verb"];

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

/// What a review asks about: a resource request or a non-resource URL.
enum Asked {
    /// `resourceAttributes`, in the authorizer's terms.
    Resource(Attributes),
    /// `nonResourceAttributes`.
    NonResource,
}

/// What a review's spec asks, with the attributes to echo; or why it is invalid.
type Read = (Option<(Asked, Value)>, Vec<Cause>);

/// Reads the attributes of a review's spec: what is asked, the attributes echoed, and the
/// causes of a spec that asks for neither or both. Field types are checked first (400).
fn attributes(rt: &ResourceType, spec: &Value, owner: &str) -> Result<Read, Reply> {
    expect(rt, spec, owner, "spec.resourceAttributes", Want::Object)?;
    expect(rt, spec, owner, "spec.nonResourceAttributes", Want::Object)?;
    let ra = &spec["resourceAttributes"];
    let nra = &spec["nonResourceAttributes"];
    for f in RESOURCE_FIELDS {
        let path = format!("spec.resourceAttributes.{f}");
        expect(rt, ra, "ResourceAttributes", &path, Want::Str)?;
    }
    for f in NON_RESOURCE_FIELDS {
        let path = format!("spec.nonResourceAttributes.{f}");
        expect(rt, nra, "NonResourceAttributes", &path, Want::Str)?;
    }
    Ok(match (ra.is_object(), nra.is_object()) {
        (true, false) => {
            let echoed = json!({"resourceAttributes": echo(ra, &RESOURCE_FIELDS)});
            (Some((Asked::Resource(asked(ra)), echoed)), Vec::new())
        }
        (false, true) => {
            let echoed = json!({"nonResourceAttributes": echo(nra, &NON_RESOURCE_FIELDS)});
            (Some((Asked::NonResource, echoed)), Vec::new())
        }
        (true, true) => {
            let why = "cannot be specified in combination with resourceAttributes";
            let c = invalid_cause("spec.nonResourceAttributes", &nra.to_string(), why);
            (None, vec![c])
        }
        (false, false) => {
            let why =
                "exactly one of nonResourceAttributes or resourceAttributes must be specified";
            (
                None,
                vec![invalid_cause("spec.resourceAttributes", "null", why)],
            )
        }
    })
}

/// Answers a SelfSubjectAccessReview for the client with this User-Agent.
pub fn self_subject(
    st: &SimState,
    rt: &ResourceType,
    agent: &str,
    body: &Value,
    ctx: &Ctx,
) -> Result<Reply, Reply> {
    let (asked, mut causes) = attributes(rt, &body["spec"], "SelfSubjectAccessReviewSpec")?;
    causes.extend(metadata_cause(body));
    let Some((asked, echoed)) = asked.filter(|_| causes.is_empty()) else {
        return Err(status::invalid(rt, "", &causes));
    };
    let allowed = match asked {
        Asked::Resource(a) => st.rbac.allows(agent, &a),
        // The deny list names resources only; non-resource URLs are always allowed.
        Asked::NonResource => true,
    };
    Ok(created(
        rt,
        json!({}),
        echoed,
        json!({"allowed": allowed}),
        ctx,
    ))
}

/// Answers a SubjectAccessReview from the grants of `SimState::grant`.
pub fn subject(st: &SimState, rt: &ResourceType, body: &Value, ctx: &Ctx) -> Result<Reply, Reply> {
    let spec = &body["spec"];
    let owner = "SubjectAccessReviewSpec";
    expect(rt, spec, owner, "spec.user", Want::Str)?;
    expect(rt, spec, owner, "spec.uid", Want::Str)?;
    expect(rt, spec, owner, "spec.groups", Want::Strings)?;
    expect(rt, spec, owner, "spec.extra", Want::StringLists)?;
    let (asked, mut causes) = attributes(rt, spec, owner)?;
    let user = spec["user"].as_str().unwrap_or_default();
    let groups = strings(&spec["groups"]);
    if user.is_empty() && groups.is_empty() {
        let why = "at least one of user or group must be specified";
        causes.push(invalid_cause("spec.user", user, why));
    }
    causes.extend(metadata_cause(body));
    let Some((asked, mut echoed)) = asked.filter(|_| causes.is_empty()) else {
        return Err(status::invalid(rt, "", &causes));
    };
    let decision = match asked {
        Asked::Resource(a) => st.identities.authorize(user, &groups, &a),
        Asked::NonResource => st.identities.authorize_non_resource(&groups),
    };
    echo_subject(spec, &mut echoed);
    let mut answer = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        answer["reason"] = json!(decision.reason);
    }
    Ok(created(rt, json!({}), echoed, answer, ctx))
}

/// Adds user, groups, extra and uid to the echoed spec, leaving out empty ones (`omitempty`).
fn echo_subject(spec: &Value, echoed: &mut Value) {
    if let Some(user) = spec["user"].as_str().filter(|u| !u.is_empty()) {
        echoed["user"] = json!(user);
    }
    let groups = strings(&spec["groups"]);
    if !groups.is_empty() {
        echoed["groups"] = json!(groups);
    }
    let extra: Map<String, Value> = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), json!(strings(v))))
        .collect();
    if !extra.is_empty() {
        echoed["extra"] = Value::Object(extra);
    }
    if let Some(uid) = spec["uid"].as_str().filter(|u| !u.is_empty()) {
        echoed["uid"] = json!(uid);
    }
}

#[cfg(test)]
#[path = "reviews_tests.rs"]
mod tests;

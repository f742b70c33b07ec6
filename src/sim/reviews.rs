//! What the reviews have in common — TokenReview (`token_review`), SelfSubjectAccessReview and
//! SubjectAccessReview (`access_review`): a POST to the collection is answered 201 with the
//! object, its `status` filled in, and nothing is stored. The body is decoded as kube-apiserver's
//! create handler decodes it: a body of another API version or kind is a 400, and so is a field
//! of the wrong JSON type (Go's `json: cannot unmarshal ...`); `null` is an absent field.
//! Must not import the controller or the decision core.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::fieldset::Shape;
use super::managed;
use super::resources::ResourceType;
use super::state::{Ctx, SimState};
use super::status::{self, Reply};
use crate::schema::{Cause, CauseReason};

/// Answers a review of type `rt` sent by the client with this User-Agent.
pub fn answer(st: &SimState, rt: &ResourceType, agent: &str, body: &Value, ctx: &Ctx) -> Reply {
    let checked = check_kind(st, rt, body).and_then(|()| match rt.kind.as_str() {
        "TokenReview" => super::token_review::review(st, rt, body, ctx),
        "SubjectAccessReview" => super::access_review::subject(st, rt, body, ctx),
        _ => super::access_review::self_subject(st, rt, agent, body, ctx),
    });
    checked.unwrap_or_else(|refusal| refusal)
}

/// The 400 of a body that is not a `rt` of this version: wrong apiVersion, another kind of the
/// same group (the storage's `not a SubjectAccessReview`), a kind the group does not have, or no
/// object at all. Missing apiVersion and kind default to the URL's, as the real decoder does.
fn check_kind(st: &SimState, rt: &ResourceType, body: &Value) -> Result<(), Reply> {
    if !body.is_object() {
        return Err(undecodable(rt, "the body is not an object"));
    }
    expect(rt, body, "", "apiVersion", Want::Str)?;
    expect(rt, body, "", "kind", Want::Str)?;
    expect(rt, body, "", "metadata", Want::Object)?;
    expect(rt, body, "", "spec", Want::Object)?;
    let gv = rt.api_version();
    if let Some(v) = body["apiVersion"]
        .as_str()
        .filter(|v| !v.is_empty() && *v != gv)
    {
        return Err(status::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({gv})"
        )));
    }
    let Some(kind) = body["kind"]
        .as_str()
        .filter(|k| !k.is_empty() && *k != rt.kind)
    else {
        return Ok(());
    };
    let sibling = st
        .types
        .iter()
        .any(|t| t.group == rt.group && t.version == rt.version && t.kind == kind);
    Err(if sibling {
        status::bad_request(format!("not a {}: {kind}", rt.kind))
    } else {
        undecodable(
            rt,
            &format!(
                "no kind \"{kind}\" is registered for version \"{gv}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
            ),
        )
    })
}

/// `<Kind> in version "v1" cannot be handled as a <Kind>: <why>`.
fn undecodable(rt: &ResourceType, why: &str) -> Reply {
    status::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: {why}",
        rt.kind, rt.version, rt.kind
    ))
}

/// The Go type a field decodes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// `string`.
    Str,
    /// `[]string`.
    Strings,
    /// `map[string][]string` (`extra`).
    StringLists,
    /// A struct or pointer to one.
    Object,
}

impl Want {
    fn go(self) -> &'static str {
        match self {
            Want::Str => "string",
            Want::Strings => "[]string",
            Want::StringLists => "map[string][]string",
            Want::Object => "struct",
        }
    }

    fn fits(self, v: &Value) -> bool {
        match self {
            Want::Str => v.is_string(),
            Want::Strings => v
                .as_array()
                .is_some_and(|a| a.iter().all(|s| s.is_string() || s.is_null())),
            Want::StringLists => v
                .as_object()
                .is_some_and(|m| m.values().all(|l| l.is_null() || Want::Strings.fits(l))),
            Want::Object => v.is_object(),
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks that `parent[field]` (at `path`, in Go struct `owner`) decodes as `want`; absent and
/// `null` do. The 400 names the field as Go's decoder does, never the value (a token may be
/// in it).
pub fn expect(
    rt: &ResourceType,
    parent: &Value,
    owner: &str,
    path: &str,
    want: Want,
) -> Result<(), Reply> {
    let field = path.rsplit('.').next().unwrap_or(path);
    let v = &parent[field];
    if v.is_null() || want.fits(v) {
        return Ok(());
    }
    let owner = if owner.is_empty() { &rt.kind } else { owner };
    // Go names the innermost value that does not fit: an element of a list is not a string.
    let (got, go) = match (want, v) {
        (Want::Strings, Value::Array(items)) => (bad_element(items.iter()), "string"),
        (Want::StringLists, Value::Object(m)) => {
            let lists = m.values().filter(|l| !l.is_null());
            match lists.clone().find(|l| !l.is_array()) {
                Some(l) => (json_type(l), "[]string"),
                None => {
                    let items = lists.filter_map(Value::as_array).flatten();
                    (bad_element(items), "string")
                }
            }
        }
        _ => (json_type(v), want.go()),
    };
    Err(undecodable(
        rt,
        &format!("json: cannot unmarshal {got} into Go struct field {owner}.{path} of type {go}"),
    ))
}

/// The JSON type of the first element that is neither a string nor null.
fn bad_element<'a>(mut items: impl Iterator<Item = &'a Value>) -> &'static str {
    items
        .find(|s| !s.is_string() && !s.is_null())
        .map_or("null", json_type)
}

/// The strings of a `[]string` field already checked with [`expect`] (nulls skipped).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// A 422 cause as `field.Invalid` words it: `Invalid value: <value>: <why>`.
pub fn invalid_cause(field: &str, shown: &str, why: &str) -> Cause {
    Cause {
        reason: CauseReason::Invalid,
        field: field.to_string(),
        message: format!("Invalid value: {}: {why}", json!(shown)),
    }
}

/// The access reviews' `metadata: must be empty`, managedFields aside. Go compares with the zero
/// ObjectMeta, so zero values (`null`, `0`, `""`, `{}` as protobuf decoding leaves them) are empty.
pub fn metadata_cause(body: &Value) -> Option<Cause> {
    let zero = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    let set = body["metadata"]
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, v)| k != "managedFields" && !zero(v)));
    set.then(|| invalid_cause("metadata", &body["metadata"].to_string(), "must be empty"))
}

/// The 201 answer: the review with its spec as decoded and its status, plus the managedFields
/// kube-apiserver fills in for any create, stored or not.
pub fn created(rt: &ResourceType, metadata: Value, spec: Value, state: Value, ctx: &Ctx) -> Reply {
    let mut out = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata,
        "spec": spec, "status": state});
    if let Some(m) = out["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    managed::record_update(
        &Shape::of(rt),
        &json!({}),
        &mut out,
        &ctx.manager,
        &rt.api_version(),
        None,
        &ctx.now,
    );
    Reply::json(StatusCode::CREATED, out)
}

//! `POST /apis/authentication.k8s.io/v1/tokenreviews`: a server asks who a bearer token belongs
//! to, as kube-apiserver's TokenReview storage answers: 201 with the spec echoed (the token
//! included, as the real server does: the caller sent it) and the status filled in from the
//! tokens of `SimState::add_token`:
//! - a known token: `{authenticated: true, user: {username, groups}, audiences}`, the groups
//!   ending with `system:authenticated`; the tokens are valid for any audience (like a static
//!   token file), so `audiences` are the ones asked for, else the API server's own;
//! - an unknown token: `{user: {}, error: "invalid bearer token"}` (`authenticated: false` is
//!   left out, as Go's `omitempty` leaves it out: read a missing `authenticated` as false).
//!
//! A missing `spec.token` is the storage's 400 `token is required for TokenReview in
//! authentication`. Never stored. The token never appears in an error.
//! Must not import the controller or the decision core.

use serde_json::{Value, json};

use super::resources::ResourceType;
use super::reviews::{Want, created, expect, strings};
use super::state::{Ctx, SimState};
use super::status::{self, Reply};

/// The audience kube-apiserver's tokens are for when `--api-audiences` is not set (its issuer).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Answers a TokenReview.
pub fn review(st: &SimState, rt: &ResourceType, body: &Value, ctx: &Ctx) -> Result<Reply, Reply> {
    let spec = &body["spec"];
    expect(rt, spec, "TokenReviewSpec", "spec.token", Want::Str)?;
    expect(rt, spec, "TokenReviewSpec", "spec.audiences", Want::Strings)?;
    let token = spec["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        return Err(status::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let asked = strings(&spec["audiences"]);
    let mut echoed = json!({"token": token});
    if !asked.is_empty() {
        echoed["audiences"] = json!(asked);
    }
    let answer = match st.identities.authenticate(token) {
        Some(who) => {
            let audiences = if asked.is_empty() {
                vec![API_AUDIENCE.to_string()]
            } else {
                asked
            };
            json!({"authenticated": true, "user": {"username": who.user, "groups": who.groups},
                "audiences": audiences})
        }
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    let metadata = body["metadata"]
        .as_object()
        .map_or(json!({}), |m| Value::Object(m.clone()));
    Ok(created(rt, metadata, echoed, answer, ctx))
}

//! Who may act from the dashboard. In the controller (one identity for everyone who reaches the
//! port) a person proves who they are with a bearer token: TokenReview says whose it is, and a
//! SubjectAccessReview asks whether that user may `patch` the Canary — the same question RBAC
//! answers for `serin abort`. Only then does the controller's own client set the annotation.
//! `serin dashboard` needs none of this: it acts with the kubeconfig's identity and the API
//! server refuses what that identity may not do. The mapping from the API server's answers to a
//! decision is pure and tested here; the token never appears in a message.

use k8s_openapi::api::authentication::v1::{
    TokenReview, TokenReviewSpec, TokenReviewStatus, UserInfo,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::{Api, PostParams};

use crate::manifest::one_line;

/// A refused action: the HTTP status and one sentence for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// 401 (no or unknown token), 403 (not allowed) or 502 (the API server could not answer).
    pub status: u16,
    /// One sentence, without the token.
    pub message: String,
}

impl Denied {
    fn new(status: u16, message: String) -> Denied {
        Denied { status, message }
    }
}

/// The Canary an action is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
}

/// The sentence when no token came with the request.
pub const NO_TOKEN: &str = "actions need you to log in with a Kubernetes bearer token first";

/// Removes every occurrence of the token from a text from the API server (an authenticator's
/// error could quote it).
fn scrub(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token, "<token>")
    }
}

/// The user a TokenReview's answer names, or why the token is not accepted.
pub fn reviewed_user(status: Option<&TokenReviewStatus>, token: &str) -> Result<UserInfo, Denied> {
    let refused = |why: String| {
        Denied::new(
            401,
            format!("the API server did not accept the token{why}; log in again"),
        )
    };
    let Some(s) = status else {
        return Err(refused(String::new()));
    };
    if s.authenticated != Some(true) {
        let why = s
            .error
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| format!(" ({})", one_line(&scrub(e, token))))
            .unwrap_or_default();
        return Err(refused(why));
    }
    match &s.user {
        Some(u) if u.username.as_deref().is_some_and(|n| !n.is_empty()) => Ok(u.clone()),
        _ => Err(refused(" (it names no user)".into())),
    }
}

/// The SubjectAccessReview asking whether `user` may patch the Canary.
pub fn review_of(user: &UserInfo, target: &Target<'_>) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(target.namespace.to_string()),
                verb: Some("patch".into()),
                group: Some("serin.io".into()),
                resource: Some("canaries".into()),
                name: Some(target.name.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The sentence of a refusal: `user "jane" may not patch canaries.serin.io "podinfo" in namespace "test"`.
pub fn refusal(user: &str, target: &Target<'_>) -> String {
    format!(
        "user {user:?} may not patch canaries.serin.io {:?} in namespace {:?}",
        target.name, target.namespace
    )
}

/// Whether a SubjectAccessReview's answer allows the action.
pub fn allowed(
    user: &UserInfo,
    status: Option<&SubjectAccessReviewStatus>,
    target: &Target<'_>,
) -> Result<(), Denied> {
    match status {
        Some(s) if s.allowed && s.denied != Some(true) => Ok(()),
        _ => Err(Denied::new(
            403,
            refusal(user.username.as_deref().unwrap_or_default(), target),
        )),
    }
}

/// The whole check against the API server: TokenReview, then SubjectAccessReview. Returns the
/// user's name when allowed.
pub async fn authorise(
    client: &kube::Client,
    token: &str,
    target: &Target<'_>,
) -> Result<String, Denied> {
    if token.is_empty() {
        return Err(Denied::new(401, NO_TOKEN.into()));
    }
    let unavailable = |what: &str, e: kube::Error| {
        Denied::new(
            502,
            format!(
                "the API server could not answer the {what}: {}",
                one_line(&scrub(&e.to_string(), token))
            ),
        )
    };
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("TokenReview", e))?;
    let user = reviewed_user(answer.status.as_ref(), token)?;
    let access: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = access
        .create(&PostParams::default(), &review_of(&user, target))
        .await
        .map_err(|e| unavailable("SubjectAccessReview", e))?;
    allowed(&user, answer.status.as_ref(), target)?;
    Ok(user.username.unwrap_or_default())
}

/// The sentence for an action the API server refused (`serin dashboard`, the kubeconfig's
/// identity), or for a failed patch in the controller.
pub fn patch_refusal(e: &kube::Error) -> Denied {
    match e {
        kube::Error::Api(s) if s.code == 403 => Denied::new(403, one_line(&s.message)),
        kube::Error::Api(s) if s.code == 404 => Denied::new(404, one_line(&s.message)),
        kube::Error::Api(s) => Denied::new(
            502,
            format!(
                "the API server refused the change: {}",
                one_line(&s.message)
            ),
        ),
        other => Denied::new(
            502,
            format!(
                "the API server could not be reached: {}",
                one_line(&other.to_string())
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        namespace: "test",
        name: "podinfo",
    };

    fn jane() -> UserInfo {
        UserInfo {
            username: Some("jane".into()),
            groups: Some(vec!["devs".into()]),
            uid: Some("u-1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_authenticated_token_yields_its_user() {
        let s = TokenReviewStatus {
            authenticated: Some(true),
            user: Some(jane()),
            ..Default::default()
        };
        assert_eq!(
            reviewed_user(Some(&s), "tok").unwrap().username.as_deref(),
            Some("jane")
        );
    }

    #[test]
    fn an_unknown_token_is_a_401_that_never_quotes_the_token() {
        let s = TokenReviewStatus {
            authenticated: Some(false),
            error: Some("invalid bearer token s3cr3t-token".into()),
            ..Default::default()
        };
        let d = reviewed_user(Some(&s), "s3cr3t-token").unwrap_err();
        assert_eq!(d.status, 401);
        assert_eq!(
            d.message,
            "the API server did not accept the token (invalid bearer token <token>); log in again"
        );
        assert_eq!(reviewed_user(None, "t").unwrap_err().status, 401);
        let nameless = TokenReviewStatus {
            authenticated: Some(true),
            ..Default::default()
        };
        assert_eq!(reviewed_user(Some(&nameless), "t").unwrap_err().status, 401);
    }

    #[test]
    fn the_access_review_asks_for_patch_on_that_canary_as_the_reviewed_user() {
        let r = review_of(&jane(), &TARGET);
        assert_eq!(r.spec.user.as_deref(), Some("jane"));
        assert_eq!(r.spec.groups, Some(vec!["devs".to_string()]));
        assert_eq!(r.spec.uid.as_deref(), Some("u-1"));
        let a = r.spec.resource_attributes.unwrap();
        assert_eq!(
            (
                a.namespace.as_deref(),
                a.verb.as_deref(),
                a.group.as_deref(),
                a.resource.as_deref(),
                a.name.as_deref()
            ),
            (
                Some("test"),
                Some("patch"),
                Some("serin.io"),
                Some("canaries"),
                Some("podinfo")
            )
        );
    }

    #[test]
    fn only_an_allowed_answer_allows_and_a_refusal_is_one_sentence() {
        let yes = SubjectAccessReviewStatus {
            allowed: true,
            ..Default::default()
        };
        assert_eq!(allowed(&jane(), Some(&yes), &TARGET), Ok(()));
        let no = SubjectAccessReviewStatus {
            allowed: false,
            reason: Some("no RBAC policy matched".into()),
            ..Default::default()
        };
        let d = allowed(&jane(), Some(&no), &TARGET).unwrap_err();
        assert_eq!(d.status, 403);
        assert_eq!(
            d.message,
            r#"user "jane" may not patch canaries.serin.io "podinfo" in namespace "test""#
        );
        // An explicit deny wins even if some authorizer allowed; no answer is no permission.
        let both = SubjectAccessReviewStatus {
            allowed: true,
            denied: Some(true),
            ..Default::default()
        };
        assert_eq!(
            allowed(&jane(), Some(&both), &TARGET).unwrap_err().status,
            403
        );
        assert_eq!(allowed(&jane(), None, &TARGET).unwrap_err().status, 403);
    }
}

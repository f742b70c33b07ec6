//! Who is who and who may do what, for the reviews the embedded API server answers on behalf of
//! other clients: bearer tokens and their users (TokenReview, `SimState::add_token`) and RBAC-like
//! grants to users and groups, everywhere or in one namespace (SubjectAccessReview,
//! `SimState::grant`, `SimState::grant_in`). Deny by default, as RBAC
//! is; members of `system:masters` may do everything, as kube-apiserver's privileged-group
//! authorizer lets them. These identities are only what the reviews answer: the sim's own
//! requests are authorized by the deny list of `authz`.
//! Tokens are secrets: no Debug, no logging, and no error message ever names one.
//! Must not import the controller or the decision core.

use std::collections::HashMap;

use super::authz::{Attributes, resource_matches};
use super::state::SimState;

/// The group kube-apiserver's privileged-group authorizer allows everything.
pub const MASTERS: &str = "system:masters";

/// The group the authenticator adds to every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";

/// A user as an authenticator reports it.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// `jane`, `system:serviceaccount:ns:name`.
    pub user: String,
    /// The groups as set, then `system:authenticated`.
    pub groups: Vec<String>,
}

/// One grant: a one-rule ClusterRole bound by a ClusterRoleBinding (everywhere), or a one-rule
/// Role bound by a RoleBinding (in `namespace` only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// The RoleBinding's namespace; None for a ClusterRoleBinding.
    namespace: Option<String>,
    /// A user name or a group name.
    subject: String,
    /// API group or `*`.
    group: String,
    /// Resource, `resource/subresource`, `*/subresource` or `*`.
    resource: String,
    /// Verb or `*`.
    verb: String,
    /// The binding (and role) name reasons cite: `sim-grant-<n>`.
    binding: String,
}

impl Grant {
    /// RBAC's reason for an allow: `RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "b"
    /// to User "jane"`, or `RoleBinding "b/ns" of Role "b"` for a namespaced grant.
    fn reason(&self, kind: &str) -> String {
        let (binding, role) = match &self.namespace {
            Some(ns) => (
                format!("RoleBinding \"{}/{ns}\"", self.binding),
                format!("Role \"{}\"", self.binding),
            ),
            None => (
                format!("ClusterRoleBinding \"{}\"", self.binding),
                format!("ClusterRole \"{}\"", self.binding),
            ),
        };
        format!(
            "RBAC: allowed by {binding} of {role} to {kind} \"{}\"",
            self.subject
        )
    }
}

/// The answer to a SubjectAccessReview: allowed or not, and RBAC's reason when allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request would be allowed.
    pub allowed: bool,
    /// `RBAC: allowed by ClusterRoleBinding ...`; empty for a refusal and for system:masters.
    pub reason: String,
}

/// The tokens and grants set by tests.
#[derive(Default)]
pub struct Identities {
    tokens: HashMap<String, Identity>,
    grants: Vec<Grant>,
}

impl Identities {
    /// The user a bearer token belongs to, if any.
    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        self.tokens.get(token)
    }

    /// RBAC's verdict on `a` for a user with these groups: the first grant to the user, then to
    /// one of its groups, that covers the request (`*` covering any group, resource or verb,
    /// subresources as RBAC matches them); system:masters is allowed everything with no reason.
    pub fn authorize(&self, user: &str, groups: &[String], a: &Attributes) -> Decision {
        if groups.iter().any(|g| g == MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let covers = |g: &Grant| {
            g.namespace
                .as_ref()
                .is_none_or(|ns| a.namespace.as_ref() == Some(ns))
                && (g.group == "*" || g.group == a.group)
                && (g.verb == "*" || g.verb == a.verb)
                && resource_matches(&g.resource, &a.combined(), a.subresource.as_deref())
        };
        let to_user = self
            .grants
            .iter()
            .find(|g| !user.is_empty() && g.subject == user && covers(g));
        let found = to_user.map(|g| (g, "User")).or_else(|| {
            self.grants
                .iter()
                .find(|g| groups.contains(&g.subject) && covers(g))
                .map(|g| (g, "Group"))
        });
        match found {
            Some((g, kind)) => Decision {
                allowed: true,
                reason: g.reason(kind),
            },
            None => Decision {
                allowed: false,
                reason: String::new(),
            },
        }
    }

    /// RBAC's verdict on a non-resource URL: grants name resources only, so only
    /// system:masters may.
    pub fn authorize_non_resource(&self, groups: &[String]) -> Decision {
        Decision {
            allowed: groups.iter().any(|g| g == MASTERS),
            reason: String::new(),
        }
    }
}

impl SimState {
    /// Makes `token` a valid bearer token of `user` in `groups` for TokenReviews (the
    /// authenticator adds `system:authenticated`). Setting a token again replaces its user.
    pub fn add_token(&mut self, token: &str, user: &str, groups: &[&str]) {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        let identity = Identity {
            user: user.to_string(),
            groups,
        };
        self.identities.tokens.insert(token.to_string(), identity);
    }

    /// Lets the user or group `subject` do `verb` on `resource` in API `group` everywhere, as a
    /// ClusterRoleBinding of a one-rule ClusterRole would, for SubjectAccessReviews. `"*"` works
    /// for group, resource and verb; `resource` may be `canaries/status` or `*/status`.
    pub fn grant(&mut self, subject: &str, group: &str, resource: &str, verb: &str) {
        self.push_grant(None, subject, group, resource, verb);
    }

    /// [`SimState::grant`] in one namespace only, as a RoleBinding of a one-rule Role would.
    pub fn grant_in(
        &mut self,
        namespace: &str,
        subject: &str,
        group: &str,
        resource: &str,
        verb: &str,
    ) {
        self.push_grant(Some(namespace), subject, group, resource, verb);
    }

    fn push_grant(
        &mut self,
        namespace: Option<&str>,
        subject: &str,
        group: &str,
        resource: &str,
        verb: &str,
    ) {
        let binding = format!("sim-grant-{}", self.identities.grants.len() + 1);
        self.identities.grants.push(Grant {
            namespace: namespace.map(String::from),
            subject: subject.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            verb: verb.to_string(),
            binding,
        });
    }

    /// Forgets every token and grant.
    pub fn clear_identities(&mut self) {
        self.identities = Identities::default();
    }
}

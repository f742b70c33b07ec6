//! Authorization as the embedded API server models it: kube-apiserver's request attributes read
//! from the path alone (authorization comes before routing: a forbidden request for a resource
//! that does not exist is a 403, k8s-transcripts 19 step 11), a deny list by User-Agent prefix
//! standing in for missing RBAC rules, the exact 403 body the RBAC authorizer's refusal gets
//! (19), and the access log of every request in RBAC terms.
//! Must not import the controller or the decision core.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::handlers::{Query, Target};
use super::state::{Access, SimState};
use super::status::{self, Reply};

/// The user kube-apiserver names in a 403 unless a test sets another: Serin's ServiceAccount as
/// the Helm chart installs it.
pub const DEFAULT_USER: &str = "system:serviceaccount:serin-system:serin";

/// A resource request in kube-apiserver's terms (`RequestInfo`, apiserver/pkg/endpoints/request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace, also for `namespaces/<name>` itself (the real parser does the same).
    pub namespace: Option<String>,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`status`, `scale`).
    pub subresource: Option<String>,
    /// Object name; for list and watch the name a `metadata.name=` field selector pins.
    pub name: Option<String>,
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
}

impl Attributes {
    /// `deployments.apps`, `configmaps`: how kube-apiserver names the resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `deployments/status`: the resource as RBAC rules name it.
    pub fn combined(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// Go's `strconv.ParseBool` truths (how `?watch=` is read).
fn go_true(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The name a field selector pins with `metadata.name=<name>` (or `==`), as kube-apiserver's
/// request-info parser reads it for list and watch (only names valid as a path segment count).
fn selector_name(q: &Query) -> Option<String> {
    let selector = q.get("fieldSelector")?;
    let name = selector.split(',').find_map(|term| {
        let term = term.trim();
        term.strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))
    })?;
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('%');
    valid.then(|| name.to_string())
}

/// The attributes of a request, or None for a non-resource path (`/version`, discovery).
/// Follows kube-apiserver's `RequestInfoFactory.NewRequestInfo`.
pub fn attributes(method: &Method, path: &str, q: &Query) -> Option<Attributes> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => (("", *version), rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => ((*group, *version), rest),
        _ => return None,
    };
    let (mut rest, mut verb): (&[&str], &'static str) = match (method.as_str(), rest) {
        ("GET" | "HEAD", ["watch", tail @ ..]) => (tail, "watch"),
        ("GET" | "HEAD", _) => (rest, "get"),
        ("POST", _) => (rest, "create"),
        ("PUT", _) => (rest, "update"),
        ("PATCH", _) => (rest, "patch"),
        ("DELETE", _) => (rest, "delete"),
        _ => (rest, ""),
    };
    let mut namespace = None;
    if let ["namespaces", ns, tail @ ..] = rest {
        namespace = Some(ns.to_string());
        if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") {
            rest = tail;
        }
    }
    let resource = rest.first().filter(|r| !r.is_empty())?.to_string();
    let mut name = rest.get(1).map(|n| n.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if name.is_none() && verb == "get" {
        verb = if q.get("watch").is_some_and(|w| go_true(w)) {
            "watch"
        } else {
            "list"
        };
        name = selector_name(q);
    } else if name.is_none() && verb == "watch" {
        name = selector_name(q);
    }
    if name.is_none() && verb == "delete" {
        verb = "deletecollection";
    }
    if verb.is_empty() {
        return None;
    }
    Some(Attributes {
        group: group.0.to_string(),
        version: group.1.to_string(),
        namespace,
        resource,
        subresource,
        name,
        verb,
    })
}

/// One refused permission: clients whose User-Agent starts with `agent_prefix` may not `verb`
/// `resource` in `group`. `"*"` is a wildcard for group, resource and verb, and `resource` may
/// name a subresource (`deployments/status`) or `*/status`, as RBAC rules do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    /// User-Agent prefix (`serin/` for the controller, `kubectl` for kubectl).
    pub agent_prefix: String,
    /// API group or `*`.
    pub group: String,
    /// Resource, `resource/subresource`, `*/subresource` or `*`.
    pub resource: String,
    /// Verb or `*`.
    pub verb: String,
}

/// RBAC's `ResourceMatches` (plugin/pkg/auth/authorizer/rbac): `*` covers everything, subresources
/// included; `deployments` does not cover `deployments/status`; `*/status` covers every status.
pub fn resource_matches(rule: &str, combined: &str, subresource: Option<&str>) -> bool {
    if rule == "*" || rule == combined {
        return true;
    }
    match (subresource, rule.strip_prefix("*/")) {
        (Some(sub), Some(rule_sub)) => rule_sub == sub,
        _ => false,
    }
}

impl DenyRule {
    /// Whether this rule refuses the request.
    pub fn matches(&self, agent: &str, a: &Attributes) -> bool {
        agent.starts_with(&self.agent_prefix)
            && (self.group == "*" || self.group == a.group)
            && (self.verb == "*" || self.verb == a.verb)
            && resource_matches(&self.resource, &a.combined(), a.subresource.as_deref())
    }
}

/// The authorizer's settings.
#[derive(Debug, Clone)]
pub struct Rbac {
    /// The user named in 403 messages.
    pub user: String,
    /// Refused permissions; everything else is allowed.
    pub rules: Vec<DenyRule>,
}

impl Default for Rbac {
    fn default() -> Self {
        Rbac {
            user: DEFAULT_USER.to_string(),
            rules: Vec::new(),
        }
    }
}

impl Rbac {
    /// Whether a client (full User-Agent) may make the request.
    pub fn allows(&self, agent: &str, a: &Attributes) -> bool {
        !self.rules.iter().any(|r| r.matches(agent, a))
    }
}

impl SimState {
    /// Refuses `verb` on `resource` in `group` to every client whose User-Agent starts with
    /// `agent_prefix` (the controller sends `serin/<version>`), as a missing RBAC rule would:
    /// the request gets kube-apiserver's 403 Forbidden (see [`forbidden`]), before routing, so
    /// also for resources that do not exist. `"*"` works for group, resource and verb; `resource`
    /// may be `deployments/status` or `*/status`. SelfSubjectAccessReviews answer accordingly.
    /// Denied requests are recorded in `access_log` (the client did make the call, and the chart
    /// must grant it) and also in `denied_log`.
    pub fn deny(&mut self, agent_prefix: &str, group: &str, resource: &str, verb: &str) {
        self.rbac.rules.push(DenyRule {
            agent_prefix: agent_prefix.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            verb: verb.to_string(),
        });
    }

    /// Removes every refusal set with [`SimState::deny`]: everything is allowed again.
    pub fn clear_denials(&mut self) {
        self.rbac.rules.clear();
    }

    /// The user named in 403 messages (default `system:serviceaccount:serin-system:serin`).
    pub fn set_user(&mut self, user: &str) {
        self.rbac.user = user.to_string();
    }
}

/// The 403 kube-apiserver sends when RBAC refuses: `responsewriters.Forbidden` with
/// `errors.NewForbidden` — the message names the qualified resource (and the object, when the
/// request has a name) and then what the user cannot do, `in the namespace "<ns>"` or `at the
/// cluster scope`; `details` carry name, group (not for core) and the plural as `kind`
/// (k8s-transcripts 19 steps 5-11).
pub fn forbidden(user: &str, a: &Attributes) -> Reply {
    let scope = match &a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let why = format!(
        "User \"{user}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        a.verb,
        a.combined(),
        a.group
    );
    let (message, mut details) = match &a.name {
        Some(name) => (
            format!("{} \"{name}\" is forbidden: {why}", a.qualified()),
            json!({"name": name}),
        ),
        None => (format!("{} is forbidden: {why}", a.qualified()), json!({})),
    };
    if !a.group.is_empty() {
        details["group"] = json!(a.group);
    }
    details["kind"] = json!(a.resource);
    status::status(403, "Forbidden", message, Some(details))
}

/// Authorizes a request; a refusal is recorded (access and denied logs) and answered with 403.
pub fn check(st: &mut SimState, agent: &str, a: &Attributes) -> Option<Reply> {
    if st.rbac.allows(agent, a) {
        return None;
    }
    let namespaced = st
        .types
        .iter()
        .find(|t| t.group == a.group && t.plural == a.resource)
        .is_some_and(|t| t.namespaced);
    let access = Access {
        agent: short_agent(agent).to_string(),
        group: a.group.clone(),
        resource: a.combined(),
        verb: a.verb,
        all_namespaces: namespaced && a.namespace.is_none(),
    };
    *st.access_log.entry(access.clone()).or_default() += 1;
    *st.denied_log.entry(access).or_default() += 1;
    Some(forbidden(&st.rbac.user, a))
}

/// The User-Agent up to the first `/` (`serin`, `kubectl`), as the access log keys clients.
pub fn short_agent(agent: &str) -> &str {
    agent.split('/').next().unwrap_or(agent)
}

/// The RBAC verbs kube-apiserver's authorizer checks for a request: an apply PATCH that created
/// the object needs `create` as well as `patch`.
pub fn rbac_verbs(method: &Method, named: bool, code: StatusCode) -> Vec<&'static str> {
    match (method, named) {
        (&Method::GET, true) => vec!["get"],
        (&Method::GET, false) => vec!["list"],
        (&Method::POST, _) => vec!["create"],
        (&Method::PUT, _) => vec!["update"],
        (&Method::PATCH, _) if code == StatusCode::CREATED => vec!["patch", "create"],
        (&Method::PATCH, _) => vec!["patch"],
        (&Method::DELETE, true) => vec!["delete"],
        (&Method::DELETE, false) => vec!["deletecollection"],
        _ => vec![],
    }
}

/// Records one access to a routed resource in the access log.
pub fn record_access(st: &mut SimState, agent: &str, target: &Target, verb: &'static str) {
    let resource = match &target.sub {
        Some(sub) => format!("{}/{sub}", target.rt.plural),
        None => target.rt.plural.clone(),
    };
    let access = Access {
        agent: agent.to_string(),
        group: target.rt.group.clone(),
        resource,
        verb,
        all_namespaces: target.rt.namespaced && target.namespace.is_none(),
    };
    *st.access_log.entry(access).or_default() += 1;
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;

//! Validating admission by `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicies and
//! their bindings, run by the write pipeline on every CREATE and UPDATE (POST, PUT, every PATCH
//! including apply, subresources included) after the object's own validation and before it is
//! stored — dryRun too — for every writer, the simulated controllers included. Follows
//! kube-apiserver's plugin (apiserver/pkg/admission/plugin/policy/validating: dispatcher.go,
//! validator.go): policies in name order, their bindings in name order, the first denial wins;
//! a false validation denies with its `reason` (default Invalid: 422; Forbidden: 403), an
//! expression that fails to compile or to run denies under `failurePolicy: Fail` (the default) and
//! is ignored under `Ignore`; `validationActions` `Deny` refuses, `Warn` adds a Warning header,
//! `Audit` is not modelled. The policies' and bindings' own writes are exempt, as in Kubernetes.
//!
//! Unlike kube-apiserver, which refuses to store a policy whose expressions do not compile, the
//! sim stores it, so that the runtime `failurePolicy` path (which real clusters reach when the
//! CEL environment changes between versions) can be tested. `paramKind`/`paramRef`,
//! `auditAnnotations` and `matchPolicy: Equivalent` (other versions of a resource) are not
//! modelled; `request.userInfo` is empty.
//! Must not import the controller or the decision core.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde_json::{Value, json};

use super::admission_cel::{Env, Outcome, on_big_stack};
use super::admission_match::{Labels, Request, matches};
use super::resources::ResourceType;
use super::state::SimState;
use super::status::{self, Reply};

const GROUP: &str = "admissionregistration.k8s.io";
const POLICIES: &str = "admissionregistration.k8s.io/validatingadmissionpolicies";
const BINDINGS: &str = "admissionregistration.k8s.io/validatingadmissionpolicybindings";

/// A write that admission looks at.
pub struct Write<'a> {
    /// The resource written.
    pub rt: &'a ResourceType,
    /// `status` or `scale` for subresource writes.
    pub sub: Option<&'a str>,
    /// The object as it would be stored (a Scale for `/scale`).
    pub object: &'a Value,
    /// The stored object an update replaces; None for CREATE.
    pub old: Option<&'a Value>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// A refusal: which policy and binding, why, and the reason that picks the HTTP code.
#[derive(Debug, Clone)]
struct Denial {
    policy: String,
    binding: String,
    message: String,
    reason: String,
}

/// One policy with the bindings that apply to the request.
struct Hook {
    policy: ValidatingAdmissionPolicy,
    bindings: Vec<ValidatingAdmissionPolicyBinding>,
}

/// Whether admission has anything to check for writes of `rt`: some binding exists, and the
/// resource is not one of the policy kinds themselves.
pub fn active(st: &SimState, rt: &ResourceType) -> bool {
    rt.group != GROUP && !st.store.list(BINDINGS, None).is_empty()
}

/// Runs validating admission; Ok carries Warning header values (`Warn` actions).
pub fn admit(st: &SimState, w: &Write) -> Result<Vec<String>, Reply> {
    if !active(st, w.rt) {
        return Ok(Vec::new());
    }
    let bindings = st.store.list(BINDINGS, None);
    let name = w.object["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = w.object["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let ns_object = (w.rt.namespaced && !namespace.is_empty())
        .then(|| {
            st.store
                .get(&("/namespaces".into(), String::new(), namespace.into()))
        })
        .flatten();
    let req = Request {
        operation: if w.old.is_some() { "UPDATE" } else { "CREATE" },
        group: &w.rt.group,
        version: &w.rt.version,
        resource: &w.rt.plural,
        subresource: w.sub.unwrap_or_default(),
        namespaced: w.rt.namespaced,
        name,
        is_namespace: w.rt.group.is_empty() && w.rt.plural == "namespaces",
    };
    let labels = Labels {
        object: labels_of(w.object),
        old: w.old.map(labels_of),
        namespace: ns_object.map(labels_of).unwrap_or_default(),
    };
    let hooks = hooks(st, &bindings, &req, &labels);
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let request = request_variable(w, &req);
    let run = || evaluate(&hooks, w, &request, ns_object);
    // A thread that cannot start (or an interpreter that brought it down) fails closed.
    let (denials, warnings) = on_big_stack(run).unwrap_or_else(|| {
        let first = &hooks[0];
        let denial = Denial {
            policy: first.policy.metadata.name.clone().unwrap_or_default(),
            binding: first.bindings[0].metadata.name.clone().unwrap_or_default(),
            message: "the CEL evaluation could not be run".into(),
            reason: String::new(),
        };
        (vec![denial], Vec::new())
    });
    match denials.first() {
        Some(d) => Err(denied(w.rt, name, d)),
        None => Ok(warnings),
    }
}

fn labels_of(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The policies whose constraints match, each with its matching bindings, in name order.
fn hooks(st: &SimState, bindings: &[&Value], req: &Request, labels: &Labels) -> Vec<Hook> {
    let bindings: Vec<ValidatingAdmissionPolicyBinding> = bindings
        .iter()
        .filter_map(|b| serde_json::from_value((*b).clone()).ok())
        .collect();
    let mut out = Vec::new();
    for p in st.store.list(POLICIES, None) {
        let Ok(policy) = serde_json::from_value::<ValidatingAdmissionPolicy>(p.clone()) else {
            continue;
        };
        let Some(spec) = &policy.spec else { continue };
        let constrained = spec
            .match_constraints
            .as_ref()
            .is_some_and(|m| matches(m, req, labels, true));
        if !constrained {
            continue;
        }
        let mine: Vec<ValidatingAdmissionPolicyBinding> = bindings
            .iter()
            .filter(|b| {
                let s = &b.spec;
                Some(&s.policy_name) == policy.metadata.name.as_ref()
                    && s.match_resources
                        .as_ref()
                        .is_none_or(|m| matches(m, req, labels, false))
            })
            .cloned()
            .collect();
        if !mine.is_empty() {
            out.push(Hook {
                policy,
                bindings: mine,
            });
        }
    }
    out
}

/// The `request` variable (admission/v1 AdmissionRequest as CEL sees it).
fn request_variable(w: &Write, req: &Request) -> Value {
    let (kind_group, kind_version, kind) = match w.sub {
        Some("scale") => ("autoscaling", "v1", "Scale"),
        _ => (req.group, req.version, w.rt.kind.as_str()),
    };
    let kind = json!({"group": kind_group, "version": kind_version, "kind": kind});
    let resource = json!({"group": req.group, "version": req.version, "resource": req.resource});
    json!({"kind": kind, "resource": resource, "subResource": req.subresource,
        "requestKind": kind, "requestResource": resource, "requestSubResource": req.subresource,
        "name": req.name, "namespace": w.object["metadata"]["namespace"].as_str().unwrap_or_default(),
        "operation": req.operation, "userInfo": {}, "dryRun": w.dry_run})
}

/// Evaluates every hook; returns the denials in order and the warnings.
fn evaluate(
    hooks: &[Hook],
    w: &Write,
    request: &Value,
    ns: Option<&Value>,
) -> (Vec<Denial>, Vec<String>) {
    let mut denials = Vec::new();
    let mut warnings = Vec::new();
    for hook in hooks {
        let Some(spec) = &hook.policy.spec else {
            continue;
        };
        let policy = hook.policy.metadata.name.clone().unwrap_or_default();
        let mut env = Env::new(w.object, w.old, request, ns);
        let vars: Vec<(String, String)> = spec
            .variables
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.expression.clone()))
            .collect();
        env.bind_variables(&vars);
        let fail = spec.failure_policy.as_deref() != Some("Ignore");
        for binding in &hook.bindings {
            let name = binding.metadata.name.clone().unwrap_or_default();
            let actions = &binding.spec.validation_actions;
            for (message, reason) in decisions(&env, spec, fail) {
                if actions.iter().any(|a| a == "Deny") {
                    denials.push(Denial {
                        policy: policy.clone(),
                        binding: name.clone(),
                        message: message.clone(),
                        reason: reason.clone(),
                    });
                }
                if actions.iter().any(|a| a == "Warn") {
                    warnings.push(warning(&format!(
                        "Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{name}': {message}"
                    )));
                }
            }
        }
    }
    (denials, warnings)
}

/// The failed validations of one policy for one binding: (message, reason) each.
fn decisions(
    env: &Env,
    spec: &k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicySpec,
    fail: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in spec.match_conditions.iter().flatten() {
        match env.check(&c.expression) {
            Outcome::True => {}
            Outcome::False => return out,
            Outcome::Error(e) if fail => {
                out.push((e, String::new()));
                return out;
            }
            Outcome::Error(_) => return out,
        }
    }
    for v in spec.validations.iter().flatten() {
        match env.check(&v.expression) {
            Outcome::True => {}
            Outcome::False => {
                let message = v
                    .message_expression
                    .as_deref()
                    .and_then(|m| env.message(m))
                    .or_else(|| {
                        v.message
                            .as_deref()
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(String::from)
                    })
                    .unwrap_or_else(|| format!("failed expression: {}", v.expression.trim()));
                out.push((message, v.reason.clone().unwrap_or_default()));
            }
            Outcome::Error(e) if fail => out.push((e, String::new())),
            Outcome::Error(_) => {}
        }
    }
    out
}

/// A Warning header value as kube-apiserver writes it (`299 - "<text>"`, Go-quoted).
fn warning(text: &str) -> String {
    let quoted: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("299 - \"{quoted}\"")
}

/// The denial as kube-apiserver answers it: `admission.NewForbidden` (message
/// `<resource>.<group> "<name>" is forbidden: <why>`, details name/group/plural kind) with the
/// reason and code of the validation (Invalid 422 unless it says Forbidden 403, Unauthorized 401
/// or RequestEntityTooLarge 413) and the policy's message as the one cause.
fn denied(rt: &ResourceType, name: &str, d: &Denial) -> Reply {
    let why = format!(
        "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
        d.policy, d.binding, d.message
    );
    let reason = if d.reason.is_empty() {
        "Invalid"
    } else {
        d.reason.as_str()
    };
    let code = match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    };
    let (message, mut details) = if name.is_empty() {
        (format!("{} is forbidden: {why}", rt.qualified()), json!({}))
    } else {
        (
            format!("{} \"{name}\" is forbidden: {why}", rt.qualified()),
            json!({"name": name}),
        )
    };
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    details["kind"] = json!(rt.plural);
    details["causes"] = json!([{"message": why}]);
    status::status(code, reason, message, Some(details))
}

/// kube-apiserver's defaults for the two kinds (SetDefaults_ValidatingAdmissionPolicy and
/// friends in pkg/apis/admissionregistration/v1/defaults.go).
pub fn apply_defaults(kind: &str, obj: &mut Value) {
    let spec = &mut obj["spec"];
    let match_key = match kind {
        "ValidatingAdmissionPolicy" => {
            if spec.get("failurePolicy").is_none_or(Value::is_null) {
                spec["failurePolicy"] = json!("Fail");
            }
            "matchConstraints"
        }
        "ValidatingAdmissionPolicyBinding" => "matchResources",
        _ => return,
    };
    let Some(m) = spec.get_mut(match_key).filter(|m| m.is_object()) else {
        return;
    };
    for (k, v) in [
        ("matchPolicy", json!("Equivalent")),
        ("namespaceSelector", json!({})),
        ("objectSelector", json!({})),
    ] {
        if m.get(k).is_none_or(Value::is_null) {
            m[k] = v;
        }
    }
    for key in ["resourceRules", "excludeResourceRules"] {
        for rule in m[key].as_array_mut().into_iter().flatten() {
            if rule.get("scope").is_none_or(Value::is_null) {
                rule["scope"] = json!("*");
            }
        }
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;

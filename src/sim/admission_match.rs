//! Which requests a ValidatingAdmissionPolicy (and its binding) applies to, as kube-apiserver's
//! admission matcher decides (apiserver/pkg/admission/plugin/policy/matching and
//! webhook/predicates/rules): resource rules by operation, group, version, resource and
//! subresource (`deployments` does not match `deployments/scale` and vice versa; `*` is every
//! resource but no subresource, `*/*` everything, `deployments/*` every subresource), scope,
//! resourceNames, exclusions, and namespace and object label selectors.
//! Must not import the controller or the decision core.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MatchResources, NamedRuleWithOperations};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// An admission request as the matcher sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// CREATE or UPDATE.
    pub operation: &'a str,
    /// API group of the resource.
    pub group: &'a str,
    /// API version requested.
    pub version: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    /// Subresource (`""` for the main resource).
    pub subresource: &'a str,
    /// Whether the resource is namespaced.
    pub namespaced: bool,
    /// Object name.
    pub name: &'a str,
    /// Whether the object is itself a Namespace (matched against its own labels).
    pub is_namespace: bool,
}

/// Labels of the objects involved: the new object, the old one (updates), and the namespace.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Labels of the object being written.
    pub object: BTreeMap<String, String>,
    /// Labels of the stored object an update replaces.
    pub old: Option<BTreeMap<String, String>>,
    /// Labels of the request's namespace (empty when cluster-scoped or missing).
    pub namespace: BTreeMap<String, String>,
}

fn listed(list: &Option<Vec<String>>, value: &str) -> bool {
    list.iter().flatten().any(|v| v == "*" || v == value)
}

/// The webhook-rules resource matcher: `res/sub` against the request's resource and subresource.
pub fn resource_listed(resources: &[String], resource: &str, subresource: &str) -> bool {
    resources.iter().any(|entry| {
        let (res, sub) = entry.split_once('/').unwrap_or((entry.as_str(), ""));
        (res == "*" || res == resource) && (sub == "*" || sub == subresource)
    })
}

/// Whether one rule covers the request.
pub fn rule_matches(rule: &NamedRuleWithOperations, req: &Request) -> bool {
    let scope_ok = match rule.scope.as_deref() {
        Some("Cluster") => !req.namespaced,
        Some("Namespaced") => req.namespaced,
        _ => true,
    };
    let names_ok = rule
        .resource_names
        .as_ref()
        .is_none_or(|names| names.is_empty() || names.iter().any(|n| n == req.name));
    scope_ok
        && names_ok
        && listed(&rule.operations, req.operation)
        && listed(&rule.api_groups, req.group)
        && listed(&rule.api_versions, req.version)
        && resource_listed(
            rule.resources.as_deref().unwrap_or_default(),
            req.resource,
            req.subresource,
        )
}

/// A metav1.LabelSelector against labels; an absent selector matches everything, and so does an
/// empty one. Unknown operators match nothing (the real server refuses them at creation).
pub fn selector_matches(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return true };
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// The namespace selector: the request's namespace labels; a Namespace is matched by its own
/// labels; other cluster-scoped objects always pass.
fn namespace_ok(m: &MatchResources, req: &Request, labels: &Labels) -> bool {
    if req.is_namespace {
        return selector_matches(m.namespace_selector.as_ref(), &labels.object);
    }
    !req.namespaced || selector_matches(m.namespace_selector.as_ref(), &labels.namespace)
}

/// The object selector: the new or the old object's labels (either one matching is enough).
fn object_ok(m: &MatchResources, labels: &Labels) -> bool {
    let sel = m.object_selector.as_ref();
    selector_matches(sel, &labels.object)
        || labels
            .old
            .as_ref()
            .is_some_and(|old| selector_matches(sel, old))
}

/// Whether a policy's `matchConstraints` (or a binding's `matchResources`) cover the request.
/// `rules_required`: a policy must list resource rules; a binding without any inherits the
/// policy's (it only narrows by selectors then).
pub fn matches(m: &MatchResources, req: &Request, labels: &Labels, rules_required: bool) -> bool {
    let rules = m.resource_rules.as_deref().unwrap_or_default();
    let included = if rules.is_empty() {
        !rules_required
    } else {
        rules.iter().any(|r| rule_matches(r, req))
    };
    let excluded = m
        .exclude_resource_rules
        .iter()
        .flatten()
        .any(|r| rule_matches(r, req));
    included && !excluded && namespace_ok(m, req, labels) && object_ok(m, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn rule(resources: &[&str]) -> NamedRuleWithOperations {
        NamedRuleWithOperations {
            api_groups: Some(vec!["apps".into()]),
            api_versions: Some(vec!["v1".into()]),
            operations: Some(vec!["UPDATE".into()]),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn req<'a>(resource: &'a str, sub: &'a str) -> Request<'a> {
        Request {
            operation: "UPDATE",
            group: "apps",
            version: "v1",
            resource,
            subresource: sub,
            namespaced: true,
            name: "web",
            is_namespace: false,
        }
    }

    #[test]
    fn subresources_are_matched_apart_from_their_resource() {
        assert!(rule_matches(
            &rule(&["deployments"]),
            &req("deployments", "")
        ));
        assert!(!rule_matches(
            &rule(&["deployments"]),
            &req("deployments", "scale")
        ));
        assert!(!rule_matches(
            &rule(&["deployments/scale"]),
            &req("deployments", "")
        ));
        assert!(rule_matches(
            &rule(&["deployments/scale"]),
            &req("deployments", "scale")
        ));
        assert!(rule_matches(
            &rule(&["deployments/*"]),
            &req("deployments", "status")
        ));
        assert!(rule_matches(&rule(&["*"]), &req("replicasets", "")));
        assert!(!rule_matches(&rule(&["*"]), &req("replicasets", "scale")));
        assert!(rule_matches(&rule(&["*/*"]), &req("replicasets", "scale")));
        assert!(rule_matches(
            &rule(&["*/scale"]),
            &req("deployments", "scale")
        ));
        let mut create_only = rule(&["deployments"]);
        create_only.operations = Some(vec!["CREATE".into()]);
        assert!(!rule_matches(&create_only, &req("deployments", "")));
    }

    #[test]
    fn selectors_follow_label_selector_semantics() {
        let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
        let sel = |op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(selector_matches(None, &labels));
        assert!(selector_matches(Some(&LabelSelector::default()), &labels));
        assert!(selector_matches(Some(&sel("In", &["prod", "x"])), &labels));
        assert!(!selector_matches(Some(&sel("NotIn", &["prod"])), &labels));
        assert!(selector_matches(
            Some(&sel("NotIn", &["prod"])),
            &BTreeMap::new()
        ));
        assert!(selector_matches(Some(&sel("Exists", &[])), &labels));
        assert!(!selector_matches(Some(&sel("DoesNotExist", &[])), &labels));
        assert!(!selector_matches(Some(&sel("Bogus", &[])), &labels));
    }

    fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map("[a-c]", "[x-z]", 0..3)
    }

    proptest! {
        /// A selector made of an object's own labels matches it; `*` rules match any
        /// main resource of any group, version and operation, and never a subresource unless
        /// they say `*/*`; listing the exact resource/subresource always matches.
        #[test]
        fn matcher_properties(
            labels in arb_labels(),
            extra in arb_labels(),
            resource in "[a-z]{1,8}",
            sub in prop::sample::select(vec!["", "status", "scale"]),
            group in prop::sample::select(vec!["", "apps", "serin.io"]),
            op in prop::sample::select(vec!["CREATE", "UPDATE"]),
        ) {
            let own = LabelSelector { match_labels: Some(labels.clone()), ..Default::default() };
            let mut more = labels.clone();
            more.extend(extra);
            // Extra labels never stop a matchLabels selector from matching, unless they
            // overwrote one of its keys.
            prop_assert_eq!(selector_matches(Some(&own), &more), labels.iter().all(|(k, v)| more.get(k) == Some(v)));
            prop_assert!(selector_matches(Some(&own), &labels));
            let r = Request { operation: op, group, version: "v1", resource: &resource, subresource: sub, namespaced: true, name: "n", is_namespace: false };
            let wild = |res: &str| NamedRuleWithOperations {
                api_groups: Some(vec!["*".into()]), api_versions: Some(vec!["*".into()]),
                operations: Some(vec!["*".into()]), resources: Some(vec![res.into()]), ..Default::default()
            };
            prop_assert_eq!(rule_matches(&wild("*"), &r), sub.is_empty());
            prop_assert!(rule_matches(&wild("*/*"), &r));
            let exact = if sub.is_empty() { resource.clone() } else { format!("{resource}/{sub}") };
            prop_assert!(rule_matches(&wild(&exact), &r));
            let other = format!("{resource}x");
            prop_assert!(!rule_matches(&wild(&other), &r));
        }
    }
}

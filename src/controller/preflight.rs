//! Permissions preflight: asks the API server (SelfSubjectAccessReview) whether the controller's
//! ServiceAccount may make the calls Serin makes for a provider — its own (always), the provider's
//! router, and Secret tracking where it is on — so that a missing permission shows on the Canaries
//! it affects, naming the rule to grant and the chart value that grants it, before anything is
//! half-applied. `serin check --cluster` prints the same report. Must not decide about rollouts.

use std::collections::BTreeSet;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use crate::rbac::{Needed, Rule};

/// What Serin needs from RBAC to preflight at all (any authenticated user has it by default).
pub const RBAC: &[Rule] = &[Rule {
    group: "authorization.k8s.io",
    resources: &["selfsubjectaccessreviews"],
    verbs: &["create"],
    needed: Needed::Everyone,
    why: "check at start-up (and for each provider) that the ServiceAccount may make Serin's calls, so a missing permission shows on the Canaries it affects",
}];

/// One permission the ServiceAccount lacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Missing {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource, with `/subresource` when there is one.
    pub resource: String,
    /// RBAC verb.
    pub verb: String,
    /// The chart value that grants it.
    pub grant_with: String,
}

/// The chart value that grants a rule.
fn chart_value(needed: Needed) -> String {
    match needed {
        Needed::Always => "rbac.create=true (the chart's ClusterRole or Role)".into(),
        Needed::Everyone => "none: Kubernetes grants it to every user (system:basic-user)".into(),
        Needed::LeaderElection => "leaderElection.enabled=true".into(),
        Needed::Router(name) => format!("routers.{name}=true"),
        Needed::Integration(name) => format!("integrations.{name}=true"),
        Needed::SecretTracking => "secretTracking.enabled=true".into(),
        Needed::DashboardActions => "dashboard.actions=true".into(),
    }
}

/// One sentence for a Canary's condition: what is missing, where, and how to grant it.
pub fn sentence(missing: &[Missing], scope: Option<&str>) -> String {
    let place = scope.map_or("in all namespaces".to_string(), |ns| {
        format!("in namespace {ns}")
    });
    let mut by_value: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for m in missing {
        let group = if m.group.is_empty() { "\"\"" } else { &m.group };
        by_value
            .entry(m.grant_with.as_str())
            .or_default()
            .push(format!("{} {} (apiGroups: [{group}])", m.verb, m.resource));
    }
    let parts: Vec<String> = by_value
        .iter()
        .map(|(value, perms)| {
            format!(
                "{} {place} (granted by the chart value {value})",
                perms.join(", ")
            )
        })
        .collect();
    format!(
        "the controller's ServiceAccount may not {}",
        parts.join("; nor ")
    )
}

/// The rule sets a provider's Canaries need; any one set granted in full is enough (Linkerd
/// works with Gateway API routes or with SMI TrafficSplits).
pub fn needed_for(provider: &str, secret_tracking: bool) -> Vec<Vec<Rule>> {
    let base: Vec<Rule> = super::rbac::all()
        .into_iter()
        .filter(|r| match r.needed {
            Needed::Always => true,
            Needed::SecretTracking => secret_tracking,
            _ => false,
        })
        .collect();
    let router = |name: &str| -> Vec<Rule> {
        super::rbac::all()
            .into_iter()
            .filter(|r| matches!(r.needed, Needed::Router(n) if n == name))
            .collect()
    };
    let routers: Vec<Vec<Rule>> = match provider {
        p if p.starts_with("gatewayapi") => vec![router("gatewayApi")],
        "istio" => vec![router("istio")],
        "linkerd" => vec![router("gatewayApi"), router("smi")],
        "nginx" => vec![router("nginx")],
        "skipper" => vec![router("skipper")],
        "contour" => vec![router("contour")],
        "traefik" => vec![router("traefik")],
        "apisix" => vec![router("apisix")],
        "kuma" => vec![router("kuma")],
        "gloo" => vec![router("gloo")],
        "knative" => vec![router("knative")],
        _ => vec![Vec::new()],
    };
    routers
        .into_iter()
        .map(|r| base.iter().copied().chain(r).collect())
        .collect()
}

/// Asks about every (group, resource, verb) of `rules` in `namespace` (None: all namespaces).
/// Err when the API server cannot answer (then nothing is known).
pub async fn review(
    client: &kube::Client,
    namespace: Option<&str>,
    rules: &[Rule],
) -> kube::Result<Vec<Missing>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut asked = BTreeSet::new();
    let mut missing = Vec::new();
    for rule in rules {
        for resource in rule.resources {
            for verb in rule.verbs {
                if !asked.insert((rule.group, *resource, *verb)) {
                    continue;
                }
                let (resource_name, sub) = match resource.split_once('/') {
                    Some((r, s)) => (r, Some(s.to_string())),
                    None => (*resource, None),
                };
                let review = SelfSubjectAccessReview {
                    spec: SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(ResourceAttributes {
                            group: Some(rule.group.to_string()),
                            resource: Some(resource_name.to_string()),
                            subresource: sub,
                            verb: Some(verb.to_string()),
                            namespace: namespace.map(String::from),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let answer = api.create(&PostParams::default(), &review).await?;
                if !answer.status.is_some_and(|s| s.allowed) {
                    missing.push(Missing {
                        group: rule.group.to_string(),
                        resource: resource.to_string(),
                        verb: verb.to_string(),
                        grant_with: chart_value(rule.needed),
                    });
                }
            }
        }
    }
    Ok(missing)
}

/// What a provider's Canaries lack: nothing when one of its rule sets is granted in full, else
/// what the first set lacks.
pub async fn missing_for(
    client: &kube::Client,
    namespace: Option<&str>,
    provider: &str,
    secret_tracking: bool,
) -> kube::Result<Vec<Missing>> {
    let mut first = None;
    for rules in needed_for(provider, secret_tracking) {
        let missing = review(client, namespace, &rules).await?;
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        first.get_or_insert(missing);
    }
    Ok(first.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_needs_serins_own_rules_and_its_routers() {
        let resources = |sets: Vec<Vec<Rule>>| -> Vec<Vec<&str>> {
            sets.iter()
                .map(|s| s.iter().flat_map(|r| r.resources.iter().copied()).collect())
                .collect()
        };
        let k = resources(needed_for("kubernetes", true));
        assert_eq!(k.len(), 1);
        assert!(k[0].contains(&"canaries/status") && !k[0].contains(&"httproutes"));
        assert!(resources(needed_for("gatewayapi:v1", true))[0].contains(&"httproutes"));
        assert!(resources(needed_for("istio", false))[0].contains(&"virtualservices"));
        let linkerd = resources(needed_for("linkerd", true));
        assert!(linkerd[0].contains(&"httproutes") && linkerd[1].contains(&"trafficsplits"));
        for (provider, resource) in [
            ("nginx", "ingresses"),
            ("skipper", "ingresses"),
            ("contour", "httpproxies"),
            ("traefik", "traefikservices"),
            ("apisix", "apisixroutes"),
            ("kuma", "trafficroutes"),
            ("gloo", "routetables"),
            ("gloo", "upstreams"),
            ("knative", "services"),
        ] {
            let sets = resources(needed_for(provider, true));
            assert_eq!(sets.len(), 1, "{provider}");
            assert!(sets[0].contains(&resource), "{provider}");
        }
    }

    #[test]
    fn the_sentence_names_the_permission_the_place_and_the_chart_value() {
        let m = vec![Missing {
            group: "gateway.networking.k8s.io".into(),
            resource: "httproutes".into(),
            verb: "patch".into(),
            grant_with: chart_value(Needed::Router("gatewayApi")),
        }];
        assert_eq!(
            sentence(&m, Some("test")),
            "the controller's ServiceAccount may not patch httproutes (apiGroups: [gateway.networking.k8s.io]) in namespace test (granted by the chart value routers.gatewayApi=true)"
        );
    }
}

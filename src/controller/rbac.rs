//! Every permission Serin needs, collected from the seams that declare them next to their calls.
//! The Helm chart's ClusterRole/Role must grant exactly these; tests hold the chart to this list
//! and this list to the calls the controller makes against the sim. Pure data.

use std::collections::BTreeSet;

use crate::rbac::{Grant, Needed, Rule};

/// Every rule Serin declares.
pub fn all() -> Vec<Rule> {
    [
        crate::controller::RBAC,
        crate::workload::RBAC,
        crate::router::gateway_api::RBAC,
        crate::router::istio::RBAC,
        crate::router::nginx::RBAC,
        crate::router::skipper::RBAC,
        crate::router::contour::RBAC,
        crate::router::traefik::RBAC,
        crate::router::apisix::RBAC,
        crate::router::kuma::RBAC,
        crate::router::gloo::RBAC,
        crate::router::knative::RBAC,
        crate::router::smi::RBAC,
        crate::controller::leader::RBAC,
        crate::controller::preflight::RBAC,
        crate::metrics::keptn::RBAC,
        crate::metrics::externalmetrics::RBAC,
        crate::workload::keda::RBAC,
        crate::rbac::DASHBOARD_ACTIONS_RBAC,
    ]
    .concat()
}

/// Routers whose route kinds the chart can grant (`routers.<name>` values).
pub const ROUTERS: &[&str] = &[
    "gatewayApi",
    "istio",
    "smi",
    "nginx",
    "skipper",
    "contour",
    "traefik",
    "apisix",
    "kuma",
    "gloo",
    "knative",
];

/// Integrations the chart can grant (`integrations.<name>` values, off by default).
pub const INTEGRATIONS: &[&str] = &["keptn", "externalMetrics", "keda"];

/// The triples an integration adds to the watched namespaces' grants when it is on.
pub fn integration_grants(name: &str) -> BTreeSet<Grant> {
    expand(
        all()
            .iter()
            .filter(|r| matches!(r.needed, Needed::Integration(n) if n == name)),
    )
}

/// The (group, resource, verb) triples granted for the watched namespaces with these routers on,
/// with Secrets tracked wherever the controller watches (`--secret-namespaces` unset: the default).
pub fn grants(routers: &[&str]) -> BTreeSet<Grant> {
    watched_namespace_grants(routers, true)
}

/// `grants` without the Secret-tracking rules: what the watched namespaces get when
/// `--secret-namespaces` names namespaces (each gets `secret_tracking_grants` in a Role of its
/// own) or is `none`.
pub fn grants_without_secret_tracking(routers: &[&str]) -> BTreeSet<Grant> {
    watched_namespace_grants(routers, false)
}

/// The triples granted in each namespace `--secret-namespaces` names.
pub fn secret_tracking_grants() -> BTreeSet<Grant> {
    expand(all().iter().filter(|r| r.needed == Needed::SecretTracking))
}

fn watched_namespace_grants(routers: &[&str], secret_tracking: bool) -> BTreeSet<Grant> {
    expand(all().iter().filter(|r| match r.needed {
        Needed::Always => true,
        Needed::LeaderElection
        | Needed::Everyone
        | Needed::Integration(_)
        | Needed::DashboardActions => false,
        Needed::Router(name) => routers.contains(&name),
        Needed::SecretTracking => secret_tracking,
    }))
}

/// The triples Kubernetes grants every authenticated user (the chart grants none of them).
pub fn everyone_grants() -> BTreeSet<Grant> {
    expand(all().iter().filter(|r| r.needed == Needed::Everyone))
}

/// The triples the cluster-wide rules add with the dashboard's actions on (`dashboard.actions`).
pub fn dashboard_actions_grants() -> BTreeSet<Grant> {
    expand(
        all()
            .iter()
            .filter(|r| r.needed == Needed::DashboardActions),
    )
}

/// The triples granted in the controller's namespace with leader election on.
pub fn leader_election_grants() -> BTreeSet<Grant> {
    expand(all().iter().filter(|r| r.needed == Needed::LeaderElection))
}

fn expand<'a>(rules: impl Iterator<Item = &'a Rule>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for resource in rule.resources {
            for verb in rule.verbs {
                out.insert((
                    rule.group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_router_rule_names_a_known_router_and_verbs_are_real() {
        let verbs = [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        for rule in all() {
            if let Needed::Router(name) = rule.needed {
                assert!(ROUTERS.contains(&name), "{name}");
            }
            if let Needed::Integration(name) = rule.needed {
                assert!(INTEGRATIONS.contains(&name), "{name}");
            }
            assert!(!rule.why.is_empty());
            for verb in rule.verbs {
                assert!(verbs.contains(verb), "{verb} in {rule:?}");
            }
        }
    }

    #[test]
    fn secret_tracking_is_the_only_way_to_list_watch_or_write_secrets() {
        let secret = |g: &Grant| g.0.is_empty() && g.1 == "secrets";
        let without: Vec<Grant> = grants_without_secret_tracking(ROUTERS)
            .into_iter()
            .filter(secret)
            .collect();
        // Credentials a Canary's resources name (secretRef) are read by name, never listed.
        assert_eq!(without, [("".into(), "secrets".into(), "get".into())]);
        let tracking = secret_tracking_grants();
        assert!(tracking.iter().all(secret));
        for verb in ["get", "list", "watch", "create", "patch"] {
            let grant = ("".to_string(), "secrets".to_string(), verb.to_string());
            assert!(tracking.contains(&grant), "{verb}");
            assert!(grants(&[]).contains(&grant), "{verb}");
        }
    }

    #[test]
    fn nothing_is_granted_twice_and_no_wildcards() {
        let mut seen = BTreeSet::new();
        for rule in all() {
            for r in rule.resources {
                // The External Metrics API's resources are metric names, unknown in advance.
                let metric_names =
                    rule.group == "external.metrics.k8s.io" && rule.verbs == ["list"];
                assert!((!r.contains('*') || metric_names) && !rule.group.contains('*'));
                for verb in rule.verbs {
                    let grant = (rule.group, *r, *verb, format!("{:?}", rule.needed));
                    assert!(seen.insert(grant), "{r} {verb} twice");
                }
            }
        }
    }
}

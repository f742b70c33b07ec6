//! The Helm chart's RBAC with Helm's own engine: Secret tracking everywhere, in named namespaces
//! or off, leader election, each router and each metrics integration add exactly the rules the
//! code declares (`serin::rbac`), and nothing cluster-wide that a namespace would do.

mod common;

use common::Server;
use common::helm::{args, cluster, get, grants, install};
use serde_json::{Value, json};

fn any_secret_role(s: &Server, namespaces: &[&str]) -> bool {
    let named = |r: &Value| r["metadata"]["name"] == "serin-secrets";
    let roles = |ns: &&str| get(s, &["-n", ns, "get", "roles"])["items"].clone();
    namespaces
        .iter()
        .any(|ns| roles(ns).as_array().unwrap().iter().any(named))
}

#[test]
fn secret_tracking_in_named_namespaces_is_a_role_each_and_nothing_cluster_wide() {
    use serin::controller::rbac;
    let s = cluster();
    install(
        &s,
        json!({"secretTracking": {"namespaces": ["apps", "shop"]}}),
    )
    .unwrap();
    let role = get(&s, &["get", "clusterrole", "serin"]);
    assert_eq!(
        grants(&role),
        rbac::grants_without_secret_tracking(&[]),
        "no Secret list/watch/write cluster-wide"
    );
    for ns in ["apps", "shop"] {
        let role = get(&s, &["-n", ns, "get", "role", "serin-secrets"]);
        assert_eq!(grants(&role), rbac::secret_tracking_grants(), "{ns}");
        let binding = get(&s, &["-n", ns, "get", "rolebinding", "serin-secrets"]);
        assert_eq!(binding["roleRef"]["name"], "serin-secrets");
        assert_eq!(binding["subjects"][0]["namespace"], "serin-system");
    }
    assert!(!any_secret_role(&s, &["serin-system"]));
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    assert!(args(&d).contains(&"--secret-namespaces=apps,shop".to_string()));
}

#[test]
fn secret_tracking_off_grants_only_the_credential_read() {
    use serin::controller::rbac;
    let s = cluster();
    install(&s, json!({"secretTracking": {"enabled": false}})).unwrap();
    let role = get(&s, &["get", "clusterrole", "serin"]);
    // Only the credential `get` on Secrets is left (controller::rbac's unit tests hold that).
    assert_eq!(grants(&role), rbac::grants_without_secret_tracking(&[]));
    assert!(!any_secret_role(&s, &["serin-system", "apps", "shop"]));
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    assert!(args(&d).contains(&"--secret-namespaces=none".to_string()));
}

#[test]
fn namespaced_mode_with_secret_tracking_named_keeps_it_in_its_own_role() {
    use serin::controller::rbac;
    let s = cluster();
    install(
        &s,
        json!({"rbac": {"scope": "namespace"}, "namespace": "apps",
            "secretTracking": {"namespaces": ["apps"]}}),
    )
    .unwrap();
    let role = get(&s, &["-n", "apps", "get", "role", "serin"]);
    assert_eq!(grants(&role), rbac::grants_without_secret_tracking(&[]));
    let role = get(&s, &["-n", "apps", "get", "role", "serin-secrets"]);
    assert_eq!(grants(&role), rbac::secret_tracking_grants());
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    let a = args(&d);
    assert!(a.contains(&"--secret-namespaces=apps".to_string()), "{a:?}");
}

#[test]
fn leader_election_and_routers_add_exactly_their_rules() {
    let s = cluster();
    let routers = json!({"gatewayApi": true, "istio": true, "smi": true, "nginx": true, "skipper": true, "contour": true, "traefik": true, "apisix": true, "kuma": true, "gloo": true, "knative": true});
    install(
        &s,
        json!({"leaderElection": {"enabled": true}, "routers": routers, "meshProvider": "istio"}),
    )
    .unwrap();
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(args(&d).contains(&"--leader-elect".to_string()));
    let role = get(&s, &["get", "clusterrole", "serin"]);
    assert_eq!(
        grants(&role),
        serin::controller::rbac::grants(serin::controller::rbac::ROUTERS)
    );
    let lease_role = get(
        &s,
        &["-n", "serin-system", "get", "role", "serin-leader-election"],
    );
    assert_eq!(
        grants(&lease_role),
        serin::controller::rbac::leader_election_grants()
    );
    get(
        &s,
        &[
            "-n",
            "serin-system",
            "get",
            "rolebinding",
            "serin-leader-election",
        ],
    );
}

#[test]
fn each_integration_adds_exactly_its_rules() {
    use serin::controller::rbac;
    for name in rbac::INTEGRATIONS {
        let s = cluster();
        install(&s, json!({"integrations": {*name: true}})).unwrap();
        let role = get(&s, &["get", "clusterrole", "serin"]);
        let mut expected = rbac::grants(&[]);
        expected.extend(rbac::integration_grants(name));
        assert_eq!(grants(&role), expected, "{name}");
        assert!(!rbac::integration_grants(name).is_empty(), "{name}");
    }
}

//! The chart's web dashboard values with Helm's own engine (see tests/chart.rs): off by default
//! (no Service, port, flag or review permission); `dashboard.enabled` adds the flag, the
//! container port and a ClusterIP Service per controller Deployment; `dashboard.actions` adds
//! exactly `serin::rbac::DASHBOARD_ACTIONS_RBAC` to the ClusterRole (a ClusterRole of its own in
//! namespaced mode, since a Role cannot grant cluster-scoped reviews).

mod common;

use common::Server;
use common::helm::{args, cluster, get, grants, install};
use serde_json::{Value, json};
use serin::controller::rbac;

fn deployment(s: &Server, name: &str) -> Value {
    get(s, &["-n", "serin-system", "get", "deployment", name])
}

fn dashboard_services(s: &Server) -> Vec<Value> {
    let all = get(s, &["-n", "serin-system", "get", "services"]);
    let mut found: Vec<Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|svc| {
            let name = svc["metadata"]["name"].as_str().unwrap_or_default();
            name.ends_with("-dashboard")
        })
        .cloned()
        .collect();
    found.sort_by_key(|svc| svc["metadata"]["name"].as_str().unwrap().to_string());
    found
}

fn ports(d: &Value) -> Vec<(String, u64)> {
    d["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            (name, p["containerPort"].as_u64().unwrap())
        })
        .collect()
}

fn dashboard_flags(d: &Value) -> Vec<String> {
    args(d)
        .into_iter()
        .filter(|a| a.starts_with("--dashboard"))
        .collect()
}

fn has_cluster_role(s: &Server, name: &str) -> bool {
    let roles = get(s, &["get", "clusterroles"]);
    roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["metadata"]["name"] == name)
}

#[test]
fn the_dashboard_is_off_by_default_with_no_service_port_flag_or_review_permission() {
    let s = cluster();
    install(&s, json!({})).unwrap();
    let d = deployment(&s, "serin");
    assert_eq!(dashboard_flags(&d), Vec::<String>::new());
    assert_eq!(ports(&d), [("metrics".to_string(), 8080)]);
    assert_eq!(dashboard_services(&s), Vec::<Value>::new());
    let role = get(&s, &["get", "clusterrole", "serin"]);
    assert_eq!(grants(&role), rbac::grants(&[]));
    assert!(
        grants(&role).is_disjoint(&rbac::dashboard_actions_grants()),
        "no review permission"
    );
    assert!(!has_cluster_role(&s, "serin-dashboard"));
}

#[test]
fn an_enabled_dashboard_is_read_only_behind_a_cluster_ip_service() {
    let s = cluster();
    let release = install(&s, json!({"dashboard": {"enabled": true}})).unwrap();
    let d = deployment(&s, "serin");
    assert_eq!(dashboard_flags(&d), ["--dashboard-addr=0.0.0.0:8081"]);
    assert_eq!(
        ports(&d),
        [
            ("metrics".to_string(), 8080),
            ("dashboard".to_string(), 8081)
        ]
    );
    let services = dashboard_services(&s);
    assert_eq!(services.len(), 1);
    let svc = &services[0];
    assert_eq!(svc["metadata"]["name"], "serin-dashboard");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "dashboard", "port": 8081, "targetPort": "dashboard", "protocol": "TCP"}])
    );
    // The Service selects the controller's pods.
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "{k}");
    }
    let role = get(&s, &["get", "clusterrole", "serin"]);
    assert_eq!(grants(&role), rbac::grants(&[]), "read-only: no reviews");
    let notes = release["info"]["notes"].as_str().unwrap_or_default();
    assert!(
        notes.contains("kubectl -n serin-system port-forward service/serin-dashboard 8081"),
        "{notes}"
    );
}

#[test]
fn actions_add_exactly_the_two_review_rules_to_the_cluster_role() {
    let s = cluster();
    install(
        &s,
        json!({"dashboard": {"enabled": true, "port": 9000, "actions": true}}),
    )
    .unwrap();
    let d = deployment(&s, "serin");
    assert_eq!(
        dashboard_flags(&d),
        ["--dashboard-addr=0.0.0.0:9000", "--dashboard-actions"]
    );
    assert_eq!(dashboard_services(&s)[0]["spec"]["ports"][0]["port"], 9000);
    let role = get(&s, &["get", "clusterrole", "serin"]);
    let mut expected = rbac::grants(&[]);
    expected.extend(rbac::dashboard_actions_grants());
    assert_eq!(grants(&role), expected);
    let reviews: Vec<(String, String, String)> =
        rbac::dashboard_actions_grants().into_iter().collect();
    let triple = |g: &str, r: &str| (g.to_string(), r.to_string(), "create".to_string());
    assert_eq!(
        reviews,
        [
            triple("authentication.k8s.io", "tokenreviews"),
            triple("authorization.k8s.io", "subjectaccessreviews"),
        ]
    );
    assert!(!has_cluster_role(&s, "serin-dashboard"));
}

#[test]
fn namespaced_mode_grants_the_reviews_in_a_cluster_role_of_their_own() {
    let s = cluster();
    install(
        &s,
        json!({"rbac": {"scope": "namespace"}, "namespace": "apps",
            "dashboard": {"enabled": true, "actions": true}}),
    )
    .unwrap();
    let role = get(&s, &["-n", "apps", "get", "role", "serin"]);
    assert_eq!(grants(&role), rbac::grants(&[]));
    let reviews = get(&s, &["get", "clusterrole", "serin-dashboard"]);
    assert_eq!(grants(&reviews), rbac::dashboard_actions_grants());
    let binding = get(&s, &["get", "clusterrolebinding", "serin-dashboard"]);
    assert_eq!(binding["roleRef"]["name"], "serin-dashboard");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "serin", "namespace": "serin-system"}])
    );
}

#[test]
fn with_shards_each_controller_serves_its_own_canaries_behind_its_own_service() {
    let s = cluster();
    install(&s, json!({"shards": ["a"], "dashboard": {"enabled": true}})).unwrap();
    let services = dashboard_services(&s);
    let names: Vec<&str> = services
        .iter()
        .map(|svc| svc["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["serin-a-dashboard", "serin-unlabelled-dashboard"]);
    for (svc, shard) in services.iter().zip(["a", "unlabelled"]) {
        assert_eq!(svc["spec"]["selector"]["serin.io/shard"], shard);
        let d = deployment(&s, &format!("serin-{shard}"));
        assert_eq!(dashboard_flags(&d), ["--dashboard-addr=0.0.0.0:8081"]);
    }
}

#[test]
fn actions_without_the_dashboard_or_a_shared_port_are_refused() {
    for (values, why) in [
        (
            json!({"dashboard": {"actions": true}}),
            "dashboard.actions needs dashboard.enabled",
        ),
        (
            json!({"dashboard": {"enabled": true, "port": 8080}}),
            "dashboard.port must differ from metrics.port",
        ),
        (json!({"dashboard": {"enabled": "yes"}}), "dashboard"),
        (json!({"dashboard": {"port": 0}}), "dashboard"),
    ] {
        let err = install(&cluster(), values.clone()).unwrap_err();
        assert!(err.contains(why), "{values}: {err}");
    }
}

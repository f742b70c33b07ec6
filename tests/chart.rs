//! The Helm chart with Helm's own engine (helm-sdkpy, set up by scripts/test.sh in
//! target/helm-venv): lint, install into `serin sim serve` in cluster and namespace mode, the
//! values schema refusing bad values, upgrades, the notes, and every rendered flag accepted by
//! `serin controller`. (The RBAC each option adds: tests/chart_rbac.rs; the chart's files:
//! tests/chart_files.rs.)

mod common;

use std::collections::BTreeSet;

use common::helm::{args, chart, cluster, get, grants, helm, install, release};
use serde_json::{Value, json};

#[test]
fn helm_lint_is_clean() {
    let result = helm(&["lint", &chart()]).unwrap();
    assert_eq!(result["Errors"], Value::Null, "{result}");
    // Severity 1 is INFO (e.g. "icon is recommended"); 2 and above are warnings and errors.
    for m in result["Messages"].as_array().unwrap() {
        assert!(m["Severity"].as_i64().unwrap() < 2, "lint: {m}");
    }
}

#[test]
fn default_install_holds_a_hardened_deployment_least_privilege_rbac_and_the_crds() {
    let s = cluster();
    install(&s, json!({})).unwrap();
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        format!("ghcr.io/serin-dev/serin:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let a = args(&d);
    assert!(
        a.contains(&"--mesh-provider=kubernetes".to_string()),
        "{a:?}"
    );
    assert!(
        a.contains(&"--metrics-addr=0.0.0.0:8080".to_string()),
        "{a:?}"
    );
    assert!(
        !a.iter().any(|x| x.starts_with("--namespace")
            || x == "--leader-elect"
            || x.starts_with("--secret-namespaces")),
        "{a:?}"
    );

    let role = get(&s, &["get", "clusterrole", "serin"]);
    assert_eq!(
        grants(&role),
        serin::controller::rbac::grants(&[]),
        "chart vs serin::rbac"
    );
    let binding = get(&s, &["get", "clusterrolebinding", "serin"]);
    assert_eq!(binding["subjects"][0]["name"], "serin");
    assert_eq!(binding["subjects"][0]["namespace"], "serin-system");
    get(
        &s,
        &["-n", "serin-system", "get", "serviceaccount", "serin"],
    );
    let svc = get(&s, &["-n", "serin-system", "get", "service", "serin"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    let roles = get(&s, &["-n", "serin-system", "get", "roles"]);
    assert_eq!(
        roles["items"],
        json!([]),
        "no Lease role without leader election"
    );
    for crd in [
        "canaries.serin.io",
        "metrictemplates.serin.io",
        "alertproviders.serin.io",
    ] {
        get(&s, &["get", "crd", crd]);
    }
}

#[test]
fn namespaced_mode_uses_a_role_in_the_watched_namespace() {
    let s = cluster();
    install(
        &s,
        json!({"rbac": {"scope": "namespace"}, "namespace": "apps"}),
    )
    .unwrap();
    let role = get(&s, &["-n", "apps", "get", "role", "serin"]);
    assert_eq!(grants(&role), serin::controller::rbac::grants(&[]));
    let binding = get(&s, &["-n", "apps", "get", "rolebinding", "serin"]);
    assert_eq!(binding["roleRef"]["kind"], "Role");
    let cluster_roles = get(&s, &["get", "clusterroles"]);
    assert!(
        !cluster_roles["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["metadata"]["name"] == "serin"),
        "no ClusterRole in namespaced mode"
    );
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    assert!(args(&d).contains(&"--namespace=apps".to_string()));
}

/// Whether a Role `serin-secrets` (Secret tracking per namespace) is in one of these namespaces.
#[test]
fn the_notes_warn_of_a_router_that_is_off_for_the_default_or_an_existing_canary() {
    let s = cluster();
    let crds = std::process::Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("crds")
        .output()
        .unwrap();
    let canary = "apiVersion: v1\nkind: Namespace\nmetadata: {name: test}\n---\napiVersion: serin.io/v1beta1\nkind: Canary\nmetadata: {name: web, namespace: test}\nspec: {provider: nginx, targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, service: {port: 80}, analysis: {interval: 1m, threshold: 1, iterations: 1}}\n";
    // Two applies: the Canary kind is served once its CRD is in.
    for manifests in [
        String::from_utf8_lossy(&crds.stdout).into_owned(),
        canary.to_string(),
    ] {
        let out = common::kubectl(&s, &["apply", "--server-side", "-f", "-"], Some(&manifests));
        assert!(out.status.success(), "{out:?}");
    }
    let release = install(&s, json!({"meshProvider": "istio"})).unwrap();
    let notes = release["info"]["notes"].as_str().unwrap_or_default();
    assert!(
        notes.contains("WARNING: meshProvider is \"istio\" but routers.istio is not on"),
        "{notes}"
    );
    assert!(
        notes.contains("WARNING: Canary test/web uses provider \"nginx\" but routers.nginx is off"),
        "{notes}"
    );
}

#[test]
fn optional_monitoring_policy_and_budget_objects_install() {
    let s = cluster();
    // Stand-ins for the Prometheus Operator CRDs (not in ../shared/crds): they accept any spec, so
    // this checks that Helm renders and applies the objects, not their schema.
    let stand_in = |plural: &str, kind: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n  scope: Namespaced\n  names: {{plural: {plural}, kind: {kind}, singular: {}}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
            kind.to_lowercase()
        )
    };
    let crds = format!(
        "{}---\n{}",
        stand_in("servicemonitors", "ServiceMonitor"),
        stand_in("podmonitors", "PodMonitor")
    );
    let out = common::kubectl(&s, &["apply", "-f", "-"], Some(&crds));
    assert!(out.status.success(), "{out:?}");
    install(
        &s,
        json!({"serviceMonitor": {"enabled": true}, "podMonitor": {"enabled": true},
        "networkPolicy": {"enabled": true}, "podDisruptionBudget": {"enabled": true},
        "grafanaDashboard": {"enabled": true}}),
    )
    .unwrap();
    let sm = get(
        &s,
        &[
            "-n",
            "serin-system",
            "get",
            "servicemonitors.monitoring.coreos.com",
            "serin",
        ],
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    get(
        &s,
        &[
            "-n",
            "serin-system",
            "get",
            "podmonitors.monitoring.coreos.com",
            "serin",
        ],
    );
    let np = get(&s, &["-n", "serin-system", "get", "networkpolicy", "serin"]);
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 8080);
    let pdb = get(
        &s,
        &["-n", "serin-system", "get", "poddisruptionbudget", "serin"],
    );
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let dashboard = get(
        &s,
        &["-n", "serin-system", "get", "configmap", "serin-dashboard"],
    );
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value =
        serde_json::from_str(dashboard["data"]["serin.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["uid"], "serin-overview");
}

#[test]
fn bad_values_are_refused_naming_the_value_and_nothing_is_installed() {
    let s = cluster();
    let err = install(&s, json!({"logFormat": "xml"})).unwrap_err();
    assert!(err.contains("logFormat"), "{err}");
    let err = install(&s, json!({"leaderElection": {"replicaCount": 0}})).unwrap_err();
    assert!(err.contains("replicaCount"), "{err}");
    let err = install(&s, json!({"routers": {"appmesh": true}})).unwrap_err();
    assert!(err.contains("appmesh"), "{err}");
    let err = install(&s, json!({"rbac": {"scope": "namespace"}})).unwrap_err();
    assert!(
        err.contains("namespace is required when rbac.scope is namespace"),
        "{err}"
    );
    let err = install(&s, json!({"secretTracking": {"namespaces": ["Apps"]}})).unwrap_err();
    assert!(err.contains("secretTracking"), "{err}");
    let err = install(
        &s,
        json!({"secretTracking": {"enabled": false, "namespaces": ["apps"]}}),
    )
    .unwrap_err();
    assert!(
        err.contains(
            "secretTracking.namespaces must be empty when secretTracking.enabled is false"
        ),
        "{err}"
    );
    let err = install(
        &s,
        json!({"namespace": "apps", "secretTracking": {"namespaces": ["shop"]}}),
    )
    .unwrap_err();
    assert!(
        err.contains("secretTracking.namespaces names shop, which namespace=apps does not watch"),
        "{err}"
    );
    let deploys = get(&s, &["-n", "serin-system", "get", "deployments"]);
    assert_eq!(deploys["items"], json!([]), "nothing half-applied");
}

#[test]
fn an_upgrade_keeps_the_release_record_and_changes_the_deployment() {
    let s = cluster();
    install(&s, json!({})).unwrap();
    let up = release("upgrade", &s, json!({"leaderElection": {"enabled": true}})).unwrap();
    assert_eq!(up["version"], 2, "{up}");
    // Helm's release records: Secrets labelled owner=helm, written as protobuf.
    let records = get(
        &s,
        &[
            "-n",
            "serin-system",
            "get",
            "secrets",
            "-l",
            "owner=helm,name=serin",
        ],
    );
    assert_eq!(records["items"].as_array().unwrap().len(), 2, "{records}");
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    assert_eq!(d["spec"]["replicas"], 2);
    get(
        &s,
        &["-n", "serin-system", "get", "role", "serin-leader-election"],
    );
}

/// Every value that becomes a flag or an environment variable is one `serin controller` accepts.
#[test]
fn every_rendered_flag_and_variable_is_accepted_by_serin_controller() {
    use clap::{CommandFactory, Parser};
    let s = cluster();
    install(
        &s,
        json!({"namespace": "apps", "metricsServer": "http://prometheus.monitoring:9090",
            "leaderElection": {"enabled": true}, "concurrency": 4, "maxConcurrentCanaries": 10, "clusterName": "prod-eu",
            "eventWebhook": "https://events.example.com/serin", "extraArgs": ["--metrics-timeout=5s"],
            "alerts": {"channel": "deploys", "severity": "warn", "urlSecretRef": {"name": "serin-alerts"}},
            "labelPrefixes": {"include": "app,team", "exclude": "argocd.argoproj.io/"},
            "secretTracking": {"namespaces": ["apps"]},
            "dashboard": {"enabled": true, "actions": true}}),
    )
    .unwrap();
    let d = get(&s, &["-n", "serin-system", "get", "deployment", "serin"]);
    let mut argv = vec!["serin".to_string()];
    argv.extend(args(&d));
    let parsed = serin::cli::Cli::try_parse_from(&argv);
    let Ok(serin::cli::Cli {
        command: serin::cli::Command::Controller(parsed),
    }) = parsed
    else {
        panic!("{argv:?}: {:?}", parsed.err());
    };
    assert_eq!(
        parsed.metrics_timeout,
        std::time::Duration::from_secs(5),
        "extraArgs override the chart's flags"
    );
    assert_eq!(
        parsed.secret_namespaces,
        serin::workload::SecretTracking::parse("apps").unwrap()
    );
    assert_eq!(
        (parsed.dashboard_addr, parsed.dashboard_actions),
        (Some("0.0.0.0:8081".parse().unwrap()), true),
        "the dashboard's flags"
    );
    for flag in [
        "--namespace=apps",
        "--cluster-name=prod-eu",
        "--alert-channel=deploys",
        "--concurrency=4",
    ] {
        assert!(argv.contains(&flag.to_string()), "{flag} in {argv:?}");
    }
    let command = serin::cli::Cli::command();
    let controller = command.find_subcommand("controller").unwrap();
    let envs: BTreeSet<String> = controller
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    for var in d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        let name = var["name"].as_str().unwrap();
        assert!(
            envs.contains(name) || name == "POD_NAME",
            "{name} is not read by serin controller"
        );
    }
}

/// `shards: [a, b]`: one Deployment per shard and one for the unlabelled rest, each with its
/// --shard-selector and, with leader election, its own Lease; none selects another's pods.
#[test]
fn shards_render_one_deployment_per_shard_and_one_for_the_unlabelled_rest() {
    let s = cluster();
    install(
        &s,
        json!({"shards": ["a", "b"], "leaderElection": {"enabled": true}}),
    )
    .unwrap();
    let deploys = get(&s, &["-n", "serin-system", "get", "deployments"]);
    let mut seen = Vec::new();
    let mut leases = BTreeSet::new();
    let mut pod_shards = BTreeSet::new();
    for d in deploys["items"].as_array().unwrap() {
        let a = args(d);
        let flag = |prefix: &str| {
            let found: Vec<&String> = a.iter().filter(|x| x.starts_with(prefix)).collect();
            assert_eq!(found.len(), 1, "{prefix} in {a:?}");
            found[0].trim_start_matches(prefix).to_string()
        };
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        seen.push((name, flag("--shard-selector=")));
        leases.insert(flag("--lease-name="));
        let selector = &d["spec"]["selector"]["matchLabels"]["serin.io/shard"];
        assert_eq!(
            selector, &d["spec"]["template"]["metadata"]["labels"]["serin.io/shard"],
            "{d}"
        );
        pod_shards.insert(selector.as_str().unwrap().to_string());
        // Every rendered argument is one serin controller accepts, the selector included.
        use clap::Parser;
        let argv = std::iter::once("serin".to_string()).chain(a.iter().cloned());
        assert!(serin::cli::Cli::try_parse_from(argv).is_ok(), "{a:?}");
    }
    seen.sort();
    let expected = [
        ("serin-a", "sharding.fluxcd.io/key=a"),
        ("serin-b", "sharding.fluxcd.io/key=b"),
        ("serin-unlabelled", "!sharding.fluxcd.io/key"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    assert_eq!(seen, expected);
    let want: BTreeSet<String> = [
        "serin-leader-a",
        "serin-leader-b",
        "serin-leader-unlabelled",
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    assert_eq!(leases, want, "a Lease per shard");
    assert_eq!(pod_shards.len(), 3, "each Deployment selects its own pods");
    // The names the chart passes are the ones serin controller derives from the selector itself.
    for (_, selector) in &seen {
        let derived = serin::controller::shard::ShardSelector::parse(selector)
            .unwrap()
            .lease_name();
        assert!(leases.contains(&derived), "{derived}");
    }
    let err = install(&cluster(), json!({"shards": ["Team A"]})).unwrap_err();
    assert!(err.contains("shards"), "{err}");
}

//! The chart's files without Helm: Chart.yaml follows the crate, the Grafana dashboard's queries
//! parse (promtool) and use exported families, the Dockerfile matches the chart's user, and the
//! README's Configuration and Security tables follow values.yaml and `serin::rbac`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn chart_version_follows_the_crate() {
    let text = std::fs::read_to_string(root().join("charts/serin/Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

/// Every query of the Grafana dashboard parses (promtool, Prometheus's own parser, on a rules file
/// made of them) and names only families the controller exports.
#[test]
fn the_dashboard_queries_parse_and_use_exported_families() {
    let text = std::fs::read_to_string(root().join("charts/serin/dashboards/serin.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 8);
    let exposition = every_family_with_one_series();
    let names = regex::Regex::new(r"serin_[a-z_]+").unwrap();
    for expr in &exprs {
        for m in names.find_iter(expr) {
            let name = m.as_str();
            let family = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            let typed = |f: &str| exposition.contains(&format!("# TYPE {f} "));
            assert!(
                typed(name) || typed(family),
                "{family} (in {expr}) is not exported"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$namespace", ".*");
            json!({"record": format!("dashboard:query{i}"), "expr": e})
        })
        .collect();
    let file = dir.path().join("rules.json");
    std::fs::write(
        &file,
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The exposition with one series in every family (prometheus-client omits empty families).
fn every_family_with_one_series() -> String {
    use serin::telemetry::*;
    let t = Telemetry::new("kubernetes");
    let x = || "x".to_string();
    let canary = CanaryLabels {
        name: x(),
        namespace: x(),
    };
    let outcome = OutcomeLabels {
        name: x(),
        namespace: x(),
        deployment_strategy: x(),
        analysis_status: x(),
    };
    let call = CallLabels {
        kind: x(),
        outcome: x(),
    };
    t.reconciles
        .get_or_create(&ResultLabels { result: x() })
        .inc();
    t.reconcile_seconds
        .get_or_create(&ResultLabels { result: x() })
        .observe(0.1);
    t.canaries
        .get_or_create(&NamespaceLabels { namespace: x() })
        .set(1);
    t.status.get_or_create(&canary).set(0);
    t.weight
        .get_or_create(&WorkloadLabels {
            workload: x(),
            namespace: x(),
        })
        .set(0);
    t.duration.get_or_create(&canary).observe(1.0);
    t.metric_analysis
        .get_or_create(&MetricLabels {
            name: x(),
            namespace: x(),
            metric: x(),
        })
        .set(1.0);
    t.successes.get_or_create(&outcome).inc();
    t.failures.get_or_create(&outcome).inc();
    t.webhooks.get_or_create(&call).inc();
    t.alerts.get_or_create(&call).inc();
    t.api_calls
        .get_or_create(&ApiCallLabels {
            verb: x(),
            resource: x(),
            code: x(),
        })
        .inc();
    t.encode()
}

/// The Dockerfile packages the release binary and runs as the chart's non-root user.
#[test]
fn the_image_runs_the_release_binary_as_the_charts_user() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked --bin serin"));
    assert!(dockerfile.contains("COPY --from=build /src/target/release/serin "));
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("charts/serin/values.yaml")).unwrap(),
    )
    .unwrap();
    let uid = &values["podSecurityContext"]["runAsUser"];
    let gid = &values["podSecurityContext"]["runAsGroup"];
    assert!(
        dockerfile.contains(&format!("USER {uid}:{gid}")),
        "USER {uid}:{gid}"
    );
}

/// One README Security row per rule of `serin::rbac`.
fn security_row(rule: &serin::rbac::Rule) -> String {
    use serin::rbac::Needed;
    let group = if rule.group.is_empty() {
        "core"
    } else {
        rule.group
    };
    let needed = match rule.needed {
        Needed::Always => "always".to_string(),
        Needed::LeaderElection => "`leaderElection.enabled`".to_string(),
        Needed::Router(r) => format!("`routers.{r}`"),
        Needed::Integration(i) => format!("`integrations.{i}`"),
        Needed::SecretTracking => "`secretTracking`".to_string(),
        Needed::Everyone => "every user (Kubernetes' `system:basic-user`)".to_string(),
        Needed::DashboardActions => "`dashboard.actions`".to_string(),
    };
    format!(
        "| `{group}` | {} | {} | {needed} | {} |",
        rule.resources.join(", "),
        rule.verbs.join(", "),
        rule.why
    )
}

/// The README's Security table lists exactly the rules the code declares, and its Configuration
/// table every value of values.yaml with its default (`scripts/values-table.py` prints it).
#[test]
fn the_readme_tables_follow_the_code_and_values() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let rows: Vec<String> = serin::controller::rbac::all()
        .iter()
        .map(security_row)
        .collect();
    let missing: Vec<&String> = rows
        .iter()
        .filter(|r| !readme.contains(r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README Security table lacks:\n{}",
        missing
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // ...and nothing else: a rule that was split or dropped leaves no stale row behind.
    let header = "| API group | resources | verbs | when | why |";
    let table = readme.split(header).nth(1).expect("README Security table");
    let stale: Vec<&str> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !rows.iter().any(|r| r == l))
        .collect();
    assert!(
        stale.is_empty(),
        "README Security rows no rule declares:\n{}",
        stale.join("\n")
    );

    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("charts/serin/values.yaml")).unwrap(),
    )
    .unwrap();
    let row = regex::Regex::new(r"(?m)^\| `([A-Za-z][A-Za-z0-9.]*)` \| `(.*)` \| .* \|$").unwrap();
    let mut documented = BTreeSet::new();
    for c in row.captures_iter(&readme) {
        let path = c[1].to_string();
        if path.contains('/') || !path.chars().next().unwrap().is_ascii_lowercase() {
            continue;
        }
        let value = path.split('.').fold(&values, |v, k| &v[k]);
        if value.is_null() {
            continue; // not a values row (the Security table's groups are not key paths)
        }
        let default: Value =
            serde_json::from_str(&c[2]).unwrap_or_else(|_| panic!("{path}: default is not JSON"));
        assert_eq!(&default, value, "README default of {path}");
        documented.insert(path);
    }
    let mut leaves = Vec::new();
    fn walk(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(child, p, out);
                }
            }
            _ => out.push(path),
        }
    }
    walk(&values, String::new(), &mut leaves);
    for leaf in leaves {
        let covered = documented
            .iter()
            .any(|d| leaf == *d || leaf.starts_with(&format!("{d}.")));
        assert!(
            covered,
            "values.yaml key {leaf} is not in the README Configuration table (scripts/values-table.py)"
        );
    }
}

//! Helm's own engine (helm-sdkpy, set up by scripts/test.sh in target/helm-venv) driven against
//! `serin sim serve`, for the chart tests.

use std::collections::BTreeSet;
use std::process::Command;

use super::{Server, ok, root, serve};
use serde_json::Value;

/// The Python with helm-sdkpy: $SERIN_HELM_PYTHON, else the venv scripts/test.sh makes.
pub fn helm_python() -> std::path::PathBuf {
    let path = std::env::var_os("SERIN_HELM_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| root().join("target/helm-venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run ./scripts/test.sh once (it creates the helm-sdkpy venv) or set SERIN_HELM_PYTHON",
        path.display()
    );
    path
}

/// Runs tests/chart/helm.py; Ok(stdout JSON) or Err(Helm's message).
pub fn helm(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(helm_python())
        .arg(root().join("tests/chart/helm.py"))
        .args(args)
        .env_remove("HELM_DRIVER")
        .output()
        .expect("python runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("helm.py prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

pub fn chart() -> String {
    root().join("charts/serin").display().to_string()
}

/// A sim with the release namespace `serin-system` (and `apps` and `shop`, for namespaced mode
/// and Secret tracking in named namespaces).
pub fn cluster() -> Server {
    let s = serve();
    let namespaces: Vec<String> = ["serin-system", "apps", "shop"]
        .iter()
        .map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n"))
        .collect();
    let out = super::kubectl(&s, &["apply", "-f", "-"], Some(&namespaces.join("---\n")));
    assert!(out.status.success(), "{out:?}");
    s
}

pub fn install(s: &Server, values: Value) -> Result<Value, String> {
    release("install", s, values)
}

pub fn release(action: &str, s: &Server, values: Value) -> Result<Value, String> {
    let kubeconfig = s.kubeconfig.display().to_string();
    helm(&[
        action,
        &kubeconfig,
        "serin-system",
        "serin",
        &chart(),
        &values.to_string(),
    ])
}

pub fn get(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(s, &all)).unwrap()
}

/// The (group, resource, verb) triples a Role or ClusterRole grants.
pub fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    let s = |x: &Value| x.as_str().unwrap().to_string();
                    out.insert((s(g), s(r), s(v)));
                }
            }
        }
    }
    out
}

pub fn args(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

//! kubectl, the real outside client, against `serin sim serve`: server-side apply, get -o json,
//! patch, wait for Available, get --watch, delete, CRDs with printer columns and explain.
//! Skipped (with a message) only when kubectl is absent and CI is not set; in CI it must run.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{kubectl, ok, require_kubectl, root, serve, setup_test_namespace};

#[test]
fn kubectl_drives_the_sim() {
    require_kubectl();
    let s = serve();
    let ns = kubectl(
        &s,
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test\n"),
    );
    assert!(
        ns.status.success(),
        "{}",
        String::from_utf8_lossy(&ns.stderr)
    );
    let applied = ok(
        &s,
        &[
            "apply",
            "--server-side",
            "-f",
            root().join("examples/app/podinfo.yaml").to_str().unwrap(),
        ],
    );
    assert!(
        applied.contains("deployment.apps/podinfo serverside-applied"),
        "{applied}"
    );
    ok(
        &s,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/podinfo",
            "-n",
            "test",
            "--timeout=30s",
        ],
    );

    let json: serde_json::Value = serde_json::from_str(&ok(
        &s,
        &[
            "get",
            "deployment",
            "podinfo",
            "-n",
            "test",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ))
    .unwrap();
    assert_eq!(json["status"]["availableReplicas"], 2);
    assert_eq!(json["metadata"]["managedFields"][0]["manager"], "kubectl");

    ok(
        &s,
        &[
            "patch",
            "deployment",
            "podinfo",
            "-n",
            "test",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"podinfo","image":"ghcr.io/stefanprodan/podinfo:6.7.1"}]}}}}"#,
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&ok(
        &s,
        &["get", "deployment", "podinfo", "-n", "test", "-o", "json"],
    ))
    .unwrap();
    let c = &json["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/stefanprodan/podinfo:6.7.1");
    assert_eq!(
        c["ports"][0]["containerPort"], 9898,
        "strategic merge kept the container's other fields"
    );
    assert_eq!(json["metadata"]["generation"], 2);
    ok(
        &s,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/podinfo",
            "-n",
            "test",
            "--timeout=30s",
        ],
    );

    let watcher = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "get",
            "configmaps",
            "-n",
            "test",
            "--watch",
            "--request-timeout=4s",
            "-o",
            "name",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    kubectl(
        &s,
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: test\n"),
    );
    let seen = String::from_utf8_lossy(&watcher.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        seen.contains("configmap/podinfo-config"),
        "initial state missing: {seen}"
    );
    assert!(
        seen.contains("configmap/watched"),
        "watch did not see the new object: {seen}"
    );

    ok(&s, &["delete", "deployment", "podinfo", "-n", "test"]);
    let gone = kubectl(&s, &["get", "deployment", "podinfo", "-n", "test"], None);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

#[test]
fn kubectl_sees_serin_crds_with_printer_columns_and_field_docs() {
    require_kubectl();
    let s = serve();
    setup_test_namespace(&s, &["crds", "examples/bluegreen-kubernetes.yaml"]);
    let table = ok(&s, &["get", "canaries", "-n", "test"]);
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "NAME",
        "STATUS",
        "WEIGHT",
        "FAILEDCHECKS",
        "LASTTRANSITIONTIME",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let explain = ok(&s, &["explain", "canary.spec.analysis.stepWeight"]);
    assert!(
        explain.contains("Percentage added to the canary's traffic at each step."),
        "{explain}"
    );
    let bad = kubectl(
        &s,
        &[
            "apply",
            "--server-side",
            "-f",
            root()
                .join("examples/invalid/weight-out-of-range.yaml")
                .to_str()
                .unwrap(),
        ],
        None,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("spec.analysis.stepWeight in body should be less than or equal to 100"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// kubectl's `create namespace|secret|configmap` send protobuf (client-go's typed clients), as
/// Helm's release records do; the sim reads them and applies kube-apiserver's defaults.
#[test]
fn kubectl_create_sends_protobuf_and_the_sim_reads_it() {
    require_kubectl();
    let s = serve();
    ok(&s, &["create", "namespace", "made"]);
    let ns: serde_json::Value =
        serde_json::from_str(&ok(&s, &["get", "namespace", "made", "-o", "json"])).unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "made"
    );
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    ok(
        &s,
        &[
            "create",
            "secret",
            "generic",
            "token",
            "-n",
            "made",
            "--from-literal=token=s3cr3t",
        ],
    );
    ok(
        &s,
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "made",
            "--from-literal=level=debug",
        ],
    );
    let secret: serde_json::Value = serde_json::from_str(&ok(
        &s,
        &["get", "secret", "token", "-n", "made", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["token"], "czNjcjN0");
    assert!(secret["metadata"].get("generateName").is_none(), "{secret}");
    let cm = ok(
        &s,
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            "made",
            "-o",
            "jsonpath={.data.level}",
        ],
    );
    assert_eq!(cm, "debug");
    ok(&s, &["delete", "secret", "token", "-n", "made"]);
    ok(&s, &["delete", "namespace", "made"]);
}

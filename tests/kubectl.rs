//! kubectl, the real outside client, against `serin sim serve`: server-side apply, get -o json,
//! patch, wait for Available, get --watch, delete, CRDs with printer columns and explain.
//! Skipped (with a message) only when kubectl is absent and CI is not set; in CI it must run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl_available() -> bool {
    let found = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is required in CI (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: kubectl not found (set CI=1 to make this a failure)");
    }
    found
}

fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args([
            "sim",
            "serve",
            "--port",
            "0",
            "--pod-ready-ms",
            "100",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serin sim serve starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubeconfig.exists() {
        assert!(
            Instant::now() < deadline,
            "serin sim serve wrote no kubeconfig"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        kubeconfig,
        _dir: dir,
    }
}

fn kubectl(s: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(&s.kubeconfig).args(args);
    if let Some(input) = stdin {
        use std::io::Write;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        return child.wait_with_output().unwrap();
    }
    cmd.output().unwrap()
}

fn ok(s: &Server, args: &[&str]) -> String {
    let out = kubectl(s, args, None);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn kubectl_drives_the_sim() {
    if !kubectl_available() {
        return;
    }
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
    if !kubectl_available() {
        return;
    }
    let s = serve();
    ok(
        &s,
        &[
            "apply",
            "--server-side",
            "-f",
            root().join("crds").to_str().unwrap(),
        ],
    );
    kubectl(
        &s,
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test\n"),
    );
    ok(
        &s,
        &[
            "apply",
            "--server-side",
            "-f",
            root()
                .join("examples/bluegreen-kubernetes.yaml")
                .to_str()
                .unwrap(),
        ],
    );
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

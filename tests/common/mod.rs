//! Shared helpers of the tests that drive `serin sim serve` with kubectl as an outside client.
#![allow(dead_code)]

pub mod browser;
pub mod helm;
pub mod hooks;
pub mod ingress;
pub mod knative;
pub mod prometheus;
pub mod receiver;
pub mod routes;
pub mod scenario;
pub mod schemas;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `serin sim serve`, stopped (by PID) when dropped.
pub struct Server {
    child: Child,
    /// The kubeconfig `serin sim serve` wrote.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails the test at once when kubectl is missing: a test that cannot run must not pass
/// (scripts/test.sh installs Debian's kubectl).
pub fn require_kubectl() {
    let found = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "kubectl is required by this test and was not found on PATH; ./scripts/test.sh installs it"
    );
}

pub fn serve() -> Server {
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

pub fn kubectl(s: &Server, args: &[&str], stdin: Option<&str>) -> Output {
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

pub fn ok(s: &Server, args: &[&str]) -> String {
    let out = kubectl(s, args, None);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Creates namespace `test` and server-side-applies the given repository paths (files or dirs).
pub fn setup_test_namespace(s: &Server, paths: &[&str]) {
    let ns = kubectl(
        s,
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test\n"),
    );
    assert!(
        ns.status.success(),
        "{}",
        String::from_utf8_lossy(&ns.stderr)
    );
    for p in paths {
        ok(
            s,
            &[
                "apply",
                "--server-side",
                "-f",
                root().join(p).to_str().unwrap(),
            ],
        );
    }
}

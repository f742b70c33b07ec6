//! `serin controller` as a process against `serin sim serve`, with examples/ applied by kubectl:
//! the blue/green example runs to Succeeded after `kubectl set image`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kubectl, ok, require_kubectl, serve, setup_test_namespace};

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn phase(s: &common::Server) -> String {
    String::from_utf8_lossy(
        &kubectl(
            s,
            &[
                "get",
                "canary",
                "podinfo",
                "-n",
                "test",
                "-o",
                "jsonpath={.status.phase}/{.status.lastAppliedSpec}",
            ],
            None,
        )
        .stdout,
    )
    .into_owned()
}

fn wait_for(s: &common::Server, want: &str, not_rev: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = phase(s);
        let (ph, rev) = p.split_once('/').unwrap_or((&p, ""));
        if ph == want && not_rev.is_none_or(|r| r != rev) {
            return rev.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "canary never reached {want}; last {p}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serin_controller_runs_the_bluegreen_example_to_succeeded() {
    require_kubectl();
    let s = serve();
    setup_test_namespace(
        &s,
        &[
            "crds",
            "examples/app/podinfo.yaml",
            "examples/bluegreen-kubernetes.yaml",
        ],
    );
    // The example analyses every 30s; a test has no minutes to spare.
    ok(
        &s,
        &[
            "patch",
            "canary",
            "podinfo",
            "-n",
            "test",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"analysis":{"interval":"1s"}}}"#,
        ],
    );
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_serin"))
            .args([
                "controller",
                "--namespace",
                "test",
                "--log-level",
                "warn",
                "--kubeconfig",
            ])
            .arg(&s.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serin controller starts"),
    );
    let first = wait_for(&s, "Initialized", None);
    ok(
        &s,
        &[
            "set",
            "image",
            "deployment/podinfo",
            "-n",
            "test",
            "podinfo=ghcr.io/stefanprodan/podinfo:6.7.1",
        ],
    );
    wait_for(&s, "Succeeded", Some(&first));
    let image = ok(
        &s,
        &[
            "get",
            "deployment",
            "podinfo-primary",
            "-n",
            "test",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "ghcr.io/stefanprodan/podinfo:6.7.1");
    let replicas = ok(
        &s,
        &[
            "get",
            "deployment",
            "podinfo",
            "-n",
            "test",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(replicas, "0");
    let selector = ok(
        &s,
        &[
            "get",
            "service",
            "podinfo",
            "-n",
            "test",
            "-o",
            "jsonpath={.spec.selector.app}",
        ],
    );
    assert_eq!(selector, "podinfo-primary");
    let events = ok(
        &s,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            "test",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    assert!(
        events.contains("NewRevision") && events.contains("Promoted"),
        "{events}"
    );
}

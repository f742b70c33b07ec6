//! The operator's CLI as a user runs it (the `serin` binary with a kubeconfig) against the sim with
//! the controller running: pause/resume freeze and thaw the analysis, promote skips the remaining
//! steps, abort rolls back now, status shows it all; and `serin migrate` over examples/flagger.

mod common;

use std::process::Command;
use std::time::Duration;

use common::scenario::{
    initialized_then_new_image, install_gateway_api, set_image, setup_with, start_controller,
    wait_phase, wait_status,
};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

/// Runs `serin <args>`; (exit code, stdout, stderr).
async fn serin(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(&args)
        .output()
        .await
        .expect("serin runs");
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        s(&out.stdout),
        s(&out.stderr),
    )
}

fn args(kubeconfig: &std::path::Path, words: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    v.extend([
        "-n".into(),
        "test".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ]);
    v
}

/// (primary, canary) weights of the HTTPRoute Serin writes.
async fn route_weights(client: &kube::Client) -> (i64, i64) {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    );
    let route = serde_json::to_value(api.get("podinfo").await.unwrap()).unwrap();
    let refs = route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .clone();
    let weight = |suffix: &str| {
        refs.iter()
            .find(|r| r["name"].as_str().unwrap().ends_with(suffix))
            .map(|r| r["weight"].as_i64().unwrap())
            .unwrap()
    };
    (weight("-primary"), weight("-canary"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_promote_abort_and_status_drive_the_controller() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "2s", "threshold": 2, "iterations": null, "stepWeight": 10, "maxWeight": 50}}))
    .await;
    install_gateway_api(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kc).unwrap();
    let _stop = start_controller(&client);
    let first = initialized_then_new_image(&client).await;
    wait_status(&client, "weight 10", |s| s.canary_weight >= 10).await;
    let (code, out, err) = serin(args(&kc, &["pause", "podinfo"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("the controller acted: operator: paused"),
        "{out}"
    );
    let paused = wait_status(&client, "paused", |s| s.paused_at.is_some()).await;
    let (_, table, _) = serin(args(&kc, &["status"])).await;
    assert!(table.contains("paused"), "{table}");
    // Three intervals later nothing has moved, in the status or the route.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = wait_status(&client, "still paused", |_| true).await;
    assert_eq!(still.canary_weight, paused.canary_weight);
    assert_eq!(
        route_weights(&client).await,
        (
            100 - i64::from(paused.canary_weight),
            i64::from(paused.canary_weight)
        )
    );
    let (code, out, _) = serin(args(&kc, &["resume", "podinfo"])).await;
    assert_eq!(code, 0);
    assert!(out.contains("operator: resumed"), "{out}");

    let (code, out, _) = serin(args(&kc, &["promote", "podinfo"])).await;
    assert_eq!(code, 0, "{out}");
    let done = wait_phase(&client, CanaryPhase::Succeeded, Some(&first))
        .await
        .status
        .unwrap();
    let max = done.decisions.iter().map(|d| d.weight).max().unwrap();
    assert!(
        max < 50,
        "promote skipped the steps to 50, reached {max}: {:?}",
        done.decisions
    );
    assert!(
        done.decisions
            .iter()
            .any(|d| d.action.contains("operator: promote"))
    );
    assert_eq!(route_weights(&client).await, (100, 0));

    set_image(&client, "podinfo:6.0.2", json!({})).await;
    wait_status(&client, "weight 10 again", |s| {
        s.phase == CanaryPhase::Progressing && s.canary_weight >= 10
    })
    .await;
    let (code, out, _) = serin(args(&kc, &["abort", "podinfo"])).await;
    assert_eq!(code, 0, "{out}");
    let failed = wait_phase(&client, CanaryPhase::Failed, None)
        .await
        .status
        .unwrap();
    assert!(
        failed
            .decisions
            .last()
            .unwrap()
            .action
            .contains("aborted by an operator")
    );
    assert_eq!(route_weights(&client).await, (100, 0));
    let events = common::scenario::event_notes(&client, "RolledBack").await;
    assert!(
        events.iter().any(|e| e.contains("aborted by an operator")),
        "{events:?}"
    );

    let (_, detail, _) = serin(args(&kc, &["status", "podinfo"])).await;
    assert!(
        detail.contains("Failed")
            && detail.contains("operator: paused")
            && detail.contains("last operator action: abort@"),
        "{detail}"
    );
    let (code, _, err) = serin(args(&kc, &["promote", "nope", "--timeout", "1"])).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("canary nope.test") && err.contains("not found"),
        "{err}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[test]
fn migrate_converts_every_flagger_example_field_for_field() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flagger");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        // Flagger's Istio example names no provider (its controller ran -mesh-provider=istio).
        let out = Command::new(env!("CARGO_BIN_EXE_serin"))
            .args(["migrate", "--mesh-provider", "istio"])
            .arg(&file)
            .output()
            .unwrap();
        let (yaml, notes) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{}: {notes}", file.display());
        assert!(notes.contains("1 Flagger object(s) converted"), "{notes}");
        let converted = serin::manifest::parse_documents(&yaml).unwrap();
        let original =
            serin::manifest::parse_documents(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (mut c, o) in converted.into_iter().zip(original) {
            assert_eq!(c["apiVersion"], "serin.io/v1beta1");
            // Flagger's Istio example names no provider: its controller runs --mesh-provider=istio,
            // and so must Serin's for it.
            let default = if c["spec"]["provider"].is_null() {
                "istio"
            } else {
                "kubernetes"
            };
            assert!(
                serin::manifest::check_document_with(&c, default)
                    .errors
                    .is_empty(),
                "{}: {c}",
                file.display()
            );
            c["apiVersion"] = Value::from("flagger.app/v1beta1");
            assert_eq!(c, o, "{}: a field changed", file.display());
        }
    }
}

#[test]
fn completions_cover_every_command_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_serin"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        for command in [
            "status",
            "promote",
            "abort",
            "pause",
            "resume",
            "migrate",
            "demo",
            "controller",
        ] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
}

//! `serin loadtester` task types as Flagger users script them, with real programs: `bash` runs
//! `bash -c` and blocks (200, or 500 with the error), `helm`/`kubectl` run the binary found on the
//! search path with the command split into words (no shell), a missing binary is a 400 naming it,
//! unknown types stay 400, and a repeated blocking call shares the running task's result.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use serin::loadtester::Options;

async fn loadtester(options: Options) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serin::loadtester::serve_with(listener, options));
    url
}

fn task(metadata: Value) -> Value {
    json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc", "metadata": metadata})
}

async fn post(url: &str, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}/"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `ok` until it holds or 10 s pass.
async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn bash_runs_blocks_and_answers_like_flagger() {
    let lt = loadtester(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cmd = format!("echo $((6 * 7)) > {} && echo done", out.display());
    // Blocking: the file is there when the answer arrives.
    assert_eq!(
        post(&lt, task(json!({"type": "bash", "cmd": cmd}))).await,
        (200, String::new())
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "42\n");
    assert_eq!(
        post(
            &lt,
            task(json!({"type": "bash", "cmd": "echo hi; echo there", "returnCmdOutput": "true"}))
        )
        .await,
        (200, "hi\nthere\n".into())
    );
    let (code, body) = post(
        &lt,
        task(json!({"type": "bash", "cmd": "echo oops >&2; exit 3"})),
    )
    .await;
    assert_eq!(code, 500);
    assert_eq!(body, "bash exit status: 3\noops");
}

#[tokio::test]
async fn a_repeated_blocking_call_shares_the_running_tasks_result() {
    let lt = loadtester(Options {
        max_tasks: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (starts, go) = (dir.path().join("starts"), dir.path().join("go"));
    let cmd = format!(
        "echo run >> {s}; while [ ! -f {g} ]; do sleep 0.02; done; echo finished",
        s = starts.display(),
        g = go.display()
    );
    let body = task(json!({"type": "bash", "cmd": cmd, "returnCmdOutput": "true"}));
    let first = tokio::spawn({
        let (lt, body) = (lt.clone(), body.clone());
        async move { post(&lt, body).await }
    });
    until("the first run started", || lines(&starts) == 1).await;
    let mut second = tokio::spawn({
        let (lt, body) = (lt.clone(), body.clone());
        async move { post(&lt, body).await }
    });
    // The second call waits (for the first run), and the only slot is taken.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second)
            .await
            .is_err()
    );
    let other = post(&lt, task(json!({"type": "bash", "cmd": "true"}))).await;
    assert_eq!(other, (429, "1 tasks are running; try again later".into()));
    std::fs::write(&go, "").unwrap();
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(a, (200, "finished\n".into()));
    assert_eq!(b, a);
    assert_eq!(lines(&starts), 1, "one run served both calls");
}

/// A fake binary that records its arguments, one per line, next to itself.
fn fake(dir: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join(name);
    let log = dir.join(format!("{name}.args"));
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho {name} ok\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn helm_and_kubectl_run_the_binary_on_the_path_without_a_shell() {
    let bin = tempfile::tempdir().unwrap();
    fake(bin.path(), "helm");
    fake(bin.path(), "kubectl");
    let lt = loadtester(Options {
        search_path: Some(bin.path().as_os_str().to_owned()),
        ..Default::default()
    })
    .await;
    let helm = task(
        json!({"type": "helmv3", "cmd": "test podinfo -n test --timeout 3m; touch pwned", "returnCmdOutput": "true"}),
    );
    assert_eq!(post(&lt, helm).await, (200, "helm ok\n".into()));
    assert_eq!(
        std::fs::read_to_string(bin.path().join("helm.args")).unwrap(),
        "test\npodinfo\n-n\ntest\n--timeout\n3m;\ntouch\npwned\n"
    );
    assert!(!Path::new("pwned").exists() && !bin.path().join("pwned").exists());
    let kubectl = task(
        json!({"type": "kubectl", "cmd": r#"run smoke --image=alpine --overrides='{"spec": {}}'"#}),
    );
    assert_eq!(post(&lt, kubectl).await, (200, String::new()));
    assert_eq!(
        std::fs::read_to_string(bin.path().join("kubectl.args")).unwrap(),
        "run\nsmoke\n--image=alpine\n--overrides={\"spec\": {}}\n"
    );
    // `helm` also answers for Flagger's older `type: helm`.
    assert_eq!(
        post(&lt, task(json!({"type": "helm", "cmd": "version"})))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn missing_binaries_and_unknown_types_are_400s_that_say_why() {
    let empty = tempfile::tempdir().unwrap();
    let lt = loadtester(Options {
        search_path: Some(empty.path().as_os_str().to_owned()),
        ..Default::default()
    })
    .await;
    for (metadata, why) in [
        (
            json!({"type": "helmv3", "cmd": "test podinfo"}),
            "helm is not installed: no executable 'helm' on the loadtester's PATH",
        ),
        (
            json!({"type": "kubectl", "cmd": "get pods"}),
            "kubectl is not installed: no executable 'kubectl' on the loadtester's PATH",
        ),
        (
            json!({"type": "bash", "cmd": "true"}),
            "bash is not installed: no executable 'bash' on the loadtester's PATH",
        ),
        (
            json!({"type": "cmd", "cmd": "ghz --insecure podinfo.test:9898"}),
            "ghz is not installed: no executable 'ghz' on the loadtester's PATH",
        ),
        (
            json!({"type": "cmd", "cmd": "curl http://podinfo.test/"}),
            "type: cmd runs hey (built in) or ghz, not 'curl'; use type: bash for other commands",
        ),
        (
            json!({"type": "wrk", "cmd": "-d 1m x"}),
            "unknown task type wrk",
        ),
        (
            json!({"type": "concord", "org": "o"}),
            "task type 'concord' is not supported by serin loadtester",
        ),
    ] {
        assert_eq!(post(&lt, task(metadata)).await, (400, why.into()));
    }
}

#[tokio::test]
async fn a_task_over_its_timeout_is_killed_and_fails() {
    let lt = loadtester(Options {
        task_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // `exec` makes the recorded pid the sleeping process itself.
    let cmd = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let started = tokio::time::Instant::now();
    let answer = post(&lt, task(json!({"type": "bash", "cmd": cmd}))).await;
    assert_eq!(answer, (500, "bash killed after 300ms".into()));
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    // Gone, or a zombie waiting to be reaped: either way no longer running.
    until("the timed-out process was killed", || {
        std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z "))
    })
    .await;
}

//! The README's first-contact path, run as a new user would: the shell block after "Try the whole
//! loop without a cluster" is taken from README.md itself (so the two cannot drift) and run by bash
//! against the embedded cluster with kubectl, line for line. Only three things are rewritten, each
//! found or the test fails: `cargo build` (cargo test has built the binary), the binary's path (the
//! one cargo built for this test) and the kubeconfig path (a temporary file, not /tmp/serin-kc).
//! The last line, `kubectl get canaries -n test -w`, runs until the Canary shows `Succeeded`.

mod common;

use std::process::Command;

use common::{require_kubectl, root};

const HEADING: &str = "Try the whole loop without a cluster:";
const WATCH: &str = "kubectl get canaries -n test -w";

/// The lines of the first ```sh block after `heading`, or a message saying what is missing.
fn sh_block_after(readme: &str, heading: &str) -> Result<Vec<String>, String> {
    let start = readme
        .find(heading)
        .ok_or_else(|| format!("README.md has no line {heading:?}"))?;
    let rest = &readme[start..];
    let open = rest
        .find("```sh\n")
        .ok_or_else(|| format!("no ```sh block after {heading:?}"))?;
    let body = &rest[open + "```sh\n".len()..];
    let close = body
        .find("```")
        .ok_or_else(|| "the ```sh block is not closed".to_string())?;
    Ok(body[..close].lines().map(str::to_string).collect())
}

/// The script bash runs: the README's lines with the three rewrites, every background job killed
/// on exit, and the final watch read until `Succeeded`.
fn script(
    lines: &[String],
    bin: &str,
    kubeconfig: &str,
    watch_out: &str,
) -> Result<String, String> {
    let (last, body) = lines
        .split_last()
        .ok_or_else(|| "the block is empty".to_string())?;
    if last.trim() != WATCH {
        return Err(format!("the block's last line is {last:?}, not {WATCH:?}"));
    }
    let mut out = vec![
        "set -euo pipefail".to_string(),
        // Stops `serin sim serve` and `serin controller`, started with `&` by the block.
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT".to_string(),
    ];
    let mut built = false;
    for line in body {
        if line.trim() == "cargo build" {
            built = true;
            continue;
        }
        out.push(
            line.replace("./target/debug/serin", bin)
                .replace("/tmp/serin-kc", kubeconfig),
        );
    }
    if !built || !body.iter().any(|l| l.contains("./target/debug/serin")) {
        return Err("the block no longer builds and runs ./target/debug/serin".into());
    }
    if !body.iter().any(|l| l.contains("/tmp/serin-kc")) {
        return Err("the block no longer writes its kubeconfig to /tmp/serin-kc".into());
    }
    out.push(format!("{last} > {watch_out} 2>&1 &"));
    out.push(format!(
        "for _ in $(seq 600); do grep -q Succeeded {watch_out} && exit 0; \
         grep -q Failed {watch_out} && break; sleep 0.5; done; echo 'no Succeeded' >&2; exit 1"
    ));
    Ok(out.join("\n"))
}

#[test]
fn the_readme_block_is_found_and_rewritten_exactly() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = sh_block_after(&readme, HEADING).unwrap();
    let s = script(&lines, "/bin/serin", "/x/kc", "/x/out").unwrap();
    assert!(!s.contains("cargo build"), "{s}");
    assert!(!s.contains("./target/debug/serin"), "{s}");
    assert!(!s.contains("/tmp/serin-kc"), "{s}");
    assert!(
        s.contains("/bin/serin sim serve --kubeconfig-out /x/kc &"),
        "{s}"
    );
    assert!(s.contains(&format!("{WATCH} > /x/out 2>&1 &")), "{s}");
    // Drift is reported, not run around.
    let mut moved = lines.clone();
    moved.pop();
    assert!(script(&moved, "b", "k", "o").is_err());
    assert!(sh_block_after("no such heading", HEADING).is_err());
}

#[test]
fn the_readme_loop_runs_verbatim_against_the_embedded_cluster() {
    require_kubectl();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = sh_block_after(&readme, HEADING).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let watch_out = dir.path().join("watch.out");
    let text = script(
        &lines,
        env!("CARGO_BIN_EXE_serin"),
        kubeconfig.to_str().unwrap(),
        watch_out.to_str().unwrap(),
    )
    .unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&text)
        .current_dir(root())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let watched = std::fs::read_to_string(&watch_out).unwrap_or_default();
    assert!(
        out.status.success(),
        "the README's block failed ({}):\nscript:\n{text}\nstdout:\n{}\nstderr:\n{}\nwatch:\n{watched}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // What the README promises the user sees, in order.
    let mut at = 0;
    for phase in ["Progressing", "Promoting", "Finalising", "Succeeded"] {
        let found = watched[at..].find(phase);
        assert!(
            found.is_some(),
            "no {phase} after {at} in the watch:\n{watched}"
        );
        at += found.unwrap();
    }
}

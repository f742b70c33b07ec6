//! The task types of Flagger's loadtester, read from a webhook's `metadata` (`type`, `cmd`,
//! `logCmdOutput`, `returnCmdOutput`) and run the way Flagger runs them:
//!
//! | `type` | runs | mode |
//! |---|---|---|
//! | `cmd` (default) | `hey …` natively (no binary), `ghz …` the real `ghz` | background |
//! | `bash` | `bash -c <cmd>` | blocking |
//! | `helm`, `helmv3` | `helm <cmd>` (Flagger's image ships Helm 3 as `helm`) | blocking |
//! | `kubectl` | `kubectl <cmd>` | blocking |
//!
//! Only `bash` goes through a shell, as in Flagger; other commands are split into words (with `'…'`
//! and `"…"` quotes) and executed directly. A binary that is not on the search path is refused
//! with its name before anything runs. Programs run under tokio with a timeout and are killed when
//! it passes. `concord` and `ngrinder` are not implemented and are refused by name.
//! Must not import the controller.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::hey;

/// Most bytes of a command's output kept (its end, where errors are).
const MAX_OUTPUT: usize = 64 * 1024;

/// One task to run.
#[derive(Debug, Clone)]
pub enum Task {
    /// `hey` load, generated natively.
    Hey(hey::Load),
    /// An external program and its arguments.
    Program {
        /// The binary's name, for messages.
        name: &'static str,
        /// The binary found on the search path.
        binary: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// A task and how to run it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// What to run.
    pub task: Task,
    /// The webhook waits for the result (else it runs in the background).
    pub blocking: bool,
    /// What tells two tasks apart for the per-canary dedupe: the type and the command.
    pub identity: String,
    /// `logCmdOutput: "true"`: log the output.
    pub log_output: bool,
    /// `returnCmdOutput: "true"`: answer with the output.
    pub return_output: bool,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// It succeeded (exit status 0; for `hey`, every request answered 2xx).
    pub ok: bool,
    /// One line: what happened.
    pub summary: String,
    /// stdout then stderr (the last `MAX_OUTPUT` bytes).
    pub output: String,
}

fn flag(metadata: &std::collections::HashMap<String, String>, key: &str) -> bool {
    metadata
        .get(key)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The task a webhook's metadata asks for, with binaries looked up in `search` (a PATH-style
/// list); the error is the text of a 400 answer.
pub fn parse(
    metadata: &std::collections::HashMap<String, String>,
    search: &OsString,
) -> Result<Spec, String> {
    let kind = metadata.get("type").map(String::as_str).unwrap_or("cmd");
    if matches!(kind, "concord" | "ngrinder") {
        return Err(format!(
            "task type '{kind}' is not supported by serin loadtester"
        ));
    }
    let cmd = metadata
        .get("cmd")
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .ok_or("metadata.cmd is missing")?;
    let program = |name: &'static str, args: Vec<String>| -> Result<Task, String> {
        let binary = find(name, search).ok_or_else(|| {
            format!("{name} is not installed: no executable '{name}' on the loadtester's PATH")
        })?;
        Ok(Task::Program { name, binary, args })
    };
    let (task, blocking) = match kind {
        "cmd" => {
            let words = hey::split_words(cmd)?;
            match words.first().map(String::as_str) {
                Some("hey") => (Task::Hey(hey::parse(cmd)?), false),
                Some("ghz") => (program("ghz", words[1..].to_vec())?, false),
                other => {
                    return Err(format!(
                        "type: cmd runs hey (built in) or ghz, not '{}'; use type: bash for other commands",
                        other.unwrap_or_default()
                    ));
                }
            }
        }
        "bash" => (program("bash", vec!["-c".into(), cmd.to_string()])?, true),
        "helm" | "helmv3" => (program("helm", hey::split_words(cmd)?)?, true),
        "kubectl" => (program("kubectl", hey::split_words(cmd)?)?, true),
        other => return Err(format!("unknown task type {other}")),
    };
    Ok(Spec {
        task,
        blocking,
        identity: format!("{kind}/{cmd}"),
        log_output: flag(metadata, "logCmdOutput"),
        return_output: flag(metadata, "returnCmdOutput"),
    })
}

/// The executable `name` in the first directory of `search` that has one.
pub fn find(name: &str, search: &OsString) -> Option<PathBuf> {
    std::env::split_paths(search)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Task {
    /// Runs the task to its end, or until `timeout` (a program is then killed).
    pub async fn run(self, timeout: Duration) -> Finished {
        match self {
            Task::Hey(load) => run_hey(load, timeout).await,
            Task::Program { name, binary, args } => {
                run_program(name, &binary, &args, timeout).await
            }
        }
    }
}

async fn run_hey(load: hey::Load, timeout: Duration) -> Finished {
    use std::sync::atomic::Ordering::Relaxed;
    let Ok(outcome) = tokio::time::timeout(timeout, hey::run(load)).await else {
        return Finished {
            ok: false,
            summary: format!("hey stopped after {timeout:?}"),
            output: String::new(),
        };
    };
    let (answered, failed) = (outcome.answered.load(Relaxed), outcome.failed.load(Relaxed));
    Finished {
        ok: failed == 0,
        summary: format!("hey: {answered} requests, {failed} failed"),
        output: String::new(),
    }
}

async fn run_program(name: &str, binary: &Path, args: &[String], timeout: Duration) -> Finished {
    let child = tokio::process::Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        // Dropping the future on timeout then kills the process instead of leaking it.
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => Finished {
            ok: false,
            summary: format!("{name} killed after {timeout:?}"),
            output: String::new(),
        },
        Ok(Err(e)) => Finished {
            ok: false,
            summary: format!("cannot start {name}: {e}"),
            output: String::new(),
        },
        Ok(Ok(out)) => {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            let tail = &all[all.len().saturating_sub(MAX_OUTPUT)..];
            Finished {
                ok: out.status.success(),
                summary: format!("{name} {}", out.status),
                output: String::from_utf8_lossy(tail).into_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn types_map_to_flaggers_programs_and_modes() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let bash = parse(
            &meta(&[
                ("type", "bash"),
                ("cmd", "echo a; echo b"),
                ("returnCmdOutput", "True"),
            ]),
            &path,
        )
        .unwrap();
        assert!(bash.blocking && bash.return_output && !bash.log_output);
        assert!(
            matches!(&bash.task, Task::Program { name: "bash", args, .. } if args == &["-c", "echo a; echo b"])
        );
        let hey = parse(&meta(&[("cmd", "hey -z 1m http://x/")]), &path).unwrap();
        assert!(matches!(hey.task, Task::Hey(_)) && !hey.blocking);
        assert_eq!(hey.identity, "cmd/hey -z 1m http://x/");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let empty = OsString::new();
        let err = |pairs: &[(&str, &str)]| parse(&meta(pairs), &empty).unwrap_err();
        assert_eq!(
            err(&[("type", "helmv3"), ("cmd", "test podinfo")]),
            "helm is not installed: no executable 'helm' on the loadtester's PATH"
        );
        assert_eq!(
            err(&[("cmd", "ghz --insecure x:9898")]),
            "ghz is not installed: no executable 'ghz' on the loadtester's PATH"
        );
        assert_eq!(
            err(&[("cmd", "curl http://x/")]),
            "type: cmd runs hey (built in) or ghz, not 'curl'; use type: bash for other commands"
        );
        assert_eq!(
            err(&[("type", "k6"), ("cmd", "run")]),
            "unknown task type k6"
        );
        assert_eq!(
            err(&[("type", "concord")]),
            "task type 'concord' is not supported by serin loadtester"
        );
        assert_eq!(err(&[("type", "bash")]), "metadata.cmd is missing");
    }
}

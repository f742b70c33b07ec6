//! The controllers under test: `serin controller` child processes (one, or one per shard with
//! `--shard-selector`), each measured through /proc (RSS, CPU) and its own /metrics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::scrape::Scrape;

/// One controller process and how to reach its metrics.
struct Proc {
    child: Option<Child>,
    metrics_port: u16,
    /// Its --shard-selector, if any.
    selector: Option<String>,
}

/// The controller processes of a run.
pub struct Controllers {
    procs: Vec<Proc>,
    kubeconfig: PathBuf,
    /// Fixed flags (scope, Prometheus stand-in).
    base_args: Vec<String>,
    /// Flags the controllers are (re)started with beyond the fixed ones.
    extra_args: Vec<String>,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

fn proc_field(pid: u32, file: &str, key: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// One controller's figures.
pub struct ProcFigures {
    pub selector: String,
    pub cpu: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

impl Controllers {
    /// `selectors`: one controller per entry (None: no --shard-selector).
    pub fn new(
        kubeconfig: PathBuf,
        base_args: Vec<String>,
        selectors: Vec<Option<String>>,
    ) -> Controllers {
        Controllers {
            procs: selectors
                .into_iter()
                .map(|selector| Proc {
                    child: None,
                    metrics_port: free_port(),
                    selector,
                })
                .collect(),
            kubeconfig,
            base_args,
            extra_args: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.procs.len()
    }

    pub fn start(&mut self) -> Result<(), String> {
        for p in &mut self.procs {
            // SERIN_BENCH_BIN runs another build of the controller (e.g. a size-optimised one).
            let bin = std::env::var_os("SERIN_BENCH_BIN")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_serin").into());
            let mut cmd = Command::new(bin);
            cmd.arg("controller")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--log-level")
                // SERIN_BENCH_LOG (e.g. `warn`, `serin=debug`) shows the controller's log.
                .arg(std::env::var("SERIN_BENCH_LOG").unwrap_or_else(|_| "error".into()))
                .args(&self.base_args)
                .args(&self.extra_args)
                .arg(format!("--metrics-addr=127.0.0.1:{}", p.metrics_port));
            if let Some(s) = &p.selector {
                cmd.arg(format!("--shard-selector={s}"));
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start serin controller: {e}"))?;
            p.child = Some(child);
        }
        Ok(())
    }

    /// SIGKILL, and wait for the processes to be gone.
    pub fn kill(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Flags for the next (re)start.
    pub fn set_extra_args(&mut self, args: Vec<String>) {
        self.extra_args = args;
    }

    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.procs
            .iter()
            .map(|p| p.child.as_ref().map_or(0, Child::id))
    }

    /// RSS of all controllers, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.pids()
            .map(|pid| proc_field(pid, "status", "VmRSS:") / 1024.0)
            .sum()
    }

    /// Each controller's CPU so far and RSS now (peak: the high-water mark).
    pub fn figures(&self) -> Vec<ProcFigures> {
        self.procs
            .iter()
            .map(|p| {
                let pid = p.child.as_ref().map_or(0, Child::id);
                ProcFigures {
                    selector: p.selector.clone().unwrap_or_else(|| "(all)".into()),
                    cpu: cpu_seconds(pid),
                    rss_mib: proc_field(pid, "status", "VmRSS:") / 1024.0,
                    peak_rss_mib: proc_field(pid, "status", "VmHWM:") / 1024.0,
                }
            })
            .collect()
    }

    /// Each controller's /metrics (empty when it does not answer yet).
    pub async fn scrape_each(&self) -> Vec<Scrape> {
        let mut out = Vec::new();
        for p in &self.procs {
            let url = format!("http://127.0.0.1:{}/metrics", p.metrics_port);
            let text = match self.http.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            out.push(Scrape::parse(&text));
        }
        out
    }

    /// Every controller's /metrics, summed.
    pub async fn scrape(&self) -> Scrape {
        let mut total = Scrape::default();
        for s in self.scrape_each().await {
            total.add(&s);
        }
        total
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.kill();
    }
}

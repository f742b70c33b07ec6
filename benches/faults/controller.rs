//! The real `serin controller` binary as a child process on the sim's kubeconfig: started,
//! killed with SIGKILL by its PID and started again; each incarnation's stderr goes to its own
//! file, which is where a panic would show ("panicked at").

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ledger::Ledger;
use crate::snapshot::NS;

/// The controller process and its logs.
pub struct Controller {
    kubeconfig: PathBuf,
    logs: PathBuf,
    child: Option<Child>,
    /// How many processes were started.
    pub incarnations: u32,
    /// How many ended without being killed by the soak.
    pub unexpected_exits: u32,
}

/// Shared between the soak's tasks; every operation under the lock is quick.
pub type Shared = Arc<Mutex<Controller>>;

pub fn lock(c: &Shared) -> std::sync::MutexGuard<'_, Controller> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    pub fn new(kubeconfig: PathBuf, logs: PathBuf) -> Controller {
        Controller {
            kubeconfig,
            logs,
            child: None,
            incarnations: 0,
            unexpected_exits: 0,
        }
    }

    /// Where incarnation `n` writes its stderr.
    fn log_file(&self, n: u32) -> PathBuf {
        self.logs.join(format!("controller-{n}.log"))
    }

    /// Starts a new controller process (killing the previous one if it is still there: never two
    /// at once).
    pub fn start(&mut self) -> Result<u32, String> {
        self.kill();
        self.incarnations += 1;
        let path = self.log_file(self.incarnations);
        let log = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_serin"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", NS, "--log-level"])
            // SERIN_BENCH_LOG (e.g. `info`, `serin=debug`) puts more of the log in the files.
            .arg(std::env::var("SERIN_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .args(["--metrics-timeout", "2s"])
            // Plain text in the log files.
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start serin controller: {e}"))?;
        let pid = child.id();
        self.child = Some(child);
        Ok(pid)
    }

    /// SIGKILL by PID (std's `Child::kill`), then reaps it. Returns the PID killed.
    pub fn kill(&mut self) -> Option<u32> {
        let mut child = self.child.take()?;
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        Some(pid)
    }

    /// The exit status if the process ended by itself (it is then forgotten).
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.unexpected_exits += 1;
        Some(status.to_string())
    }

    /// Lines containing "panicked at" in every incarnation's stderr, with the file they are in.
    pub fn panics(&self) -> Vec<String> {
        (1..=self.incarnations)
            .flat_map(|n| {
                let text = std::fs::read_to_string(self.log_file(n)).unwrap_or_default();
                text.lines()
                    .filter(|l| l.contains("panicked at"))
                    .map(|l| format!("controller-{n}.log: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The directory holding the logs.
    pub fn logs(&self) -> &PathBuf {
        &self.logs
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Restarts the controller whenever it ends on its own (noted on the timeline: a controller that
/// exits because the API server is away would be a finding too), until `stop` turns true.
pub async fn supervise(
    ctl: Shared,
    ledger: Arc<Ledger>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let mut c = lock(&ctl);
        if let Some(status) = c.exited() {
            ledger.note(format!(
                "controller exited by itself ({status}); restarting"
            ));
            match c.start() {
                Ok(pid) => ledger.note(format!("controller started (pid {pid})")),
                Err(e) => ledger.note(format!("controller restart failed: {e}")),
            }
        }
    }
}

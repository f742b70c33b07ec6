//! A real Prometheus (Debian's `prometheus` package, installed by scripts/test.sh) for tests: data
//! is written as OpenMetrics, turned into TSDB blocks by `promtool tsdb create-blocks-from
//! openmetrics`, and served by a `prometheus` process on a free 127.0.0.1 port with its own
//! config and data dir. The process is stopped (by PID) when the handle is dropped.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running Prometheus.
pub struct Prometheus {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// OpenMetrics lines of a counter-like series growing by `per_second`, one sample every 5 s from
/// 15 minutes ago to 15 minutes ahead (so any query in between sees samples on both edges of its
/// window and `rate()` of the straight line is exact).
pub fn series(out: &mut String, name_and_labels: &str, per_second: f64) {
    let start = (now() as i64 / 5) * 5 - 900;
    for i in 0..=360 {
        let t = start + i * 5;
        let _ = writeln!(out, "{name_and_labels} {} {t}", per_second * (i * 5) as f64);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} not found: install Debian's `prometheus` package (scripts/test.sh does)"
    );
}

impl Prometheus {
    /// Starts Prometheus over `openmetrics` (lines without `# EOF`; it is added).
    pub fn start(openmetrics: &str) -> Prometheus {
        require("promtool");
        require("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let input = dir.path().join("input.om");
        std::fs::write(&input, format!("{openmetrics}# EOF\n")).unwrap();
        if !openmetrics.trim().is_empty() {
            let out = Command::new("promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
                .arg(&input)
                .arg(&data)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "promtool: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
        )
        .unwrap();
        let port = free_port();
        let child = spawn(&config, &data, port, dir.path());
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url);
        Prometheus {
            child: Some(child),
            url,
            port,
            dir,
        }
    }

    /// Starts it again after `stop`, on the same port with the same data (an outage that ends).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        let (config, data) = (
            self.dir.path().join("prometheus.yml"),
            self.dir.path().join("data"),
        );
        self.child = Some(spawn(&config, &data, self.port, self.dir.path()));
        wait_ready(&self.url);
    }

    /// Adds series to the stored history while running: stops the process, writes `openmetrics`
    /// as another TSDB block into the same data dir (Prometheus 2.39+ merges overlapping blocks),
    /// and starts it again on the same port. Queries fail while it restarts (a short outage).
    pub fn add_data(&mut self, openmetrics: &str) {
        self.stop();
        let input = self.dir.path().join("added.om");
        std::fs::write(&input, format!("{openmetrics}# EOF\n")).unwrap();
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
            .arg(&input)
            .arg(self.dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.restart();
    }

    /// Stops the process (idempotent).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(config: &Path, data: &Path, port: u16, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=1d")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts")
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = format!("{}/-/ready", url.trim_start_matches("http://"));
    let (host, path) = ready.split_once('/').unwrap();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(host) {
            use std::io::{Read, Write};
            let _ = write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

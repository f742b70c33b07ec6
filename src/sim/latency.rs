//! The embedded API server's own request latency: from the request reaching the dispatcher to
//! its response being ready (a watch: to its initial events being encoded), by client and verb,
//! in log-scale buckets (4.4% wide) so memory stays fixed however many requests are served.
//! Benchmarks print it next to the controller's figures, so that time spent in the server is not
//! mistaken for the controller's. Kept outside the state lock (its own small mutex).
//! Must not import the controller or the decision core.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;

/// Buckets per doubling: bucket `b` holds latencies up to 2^(b/16) µs.
const PER_OCTAVE: f64 = 16.0;
/// 2^30 µs ≈ 18 minutes: anything longer lands in the last bucket.
const BUCKETS: usize = 30 * 16 + 1;

struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max_us: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            max_us: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us <= 1 {
            return 0;
        }
        ((us as f64).log2() * PER_OCTAVE)
            .ceil()
            .min((BUCKETS - 1) as f64) as usize
    }

    fn record(&mut self, us: u64) {
        self.counts[Self::bucket(us)] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The upper bound of the bucket holding the `p` quantile (never above the maximum seen).
    fn quantile(&self, p: f64) -> Duration {
        let rank = ((self.n as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = 2f64.powf(b as f64 / PER_OCTAVE).round() as u64;
                return Duration::from_micros(upper.min(self.max_us));
            }
        }
        Duration::from_micros(self.max_us)
    }

    fn summary(&self, verb: &str) -> VerbLatency {
        VerbLatency {
            verb: verb.to_string(),
            count: self.n,
            p50: self.quantile(0.50),
            p99: self.quantile(0.99),
            max: Duration::from_micros(self.max_us),
        }
    }
}

/// The verb a routed request is recorded under.
pub fn verb_of(method: &Method, named: bool, watch: bool) -> &'static str {
    match (method, named, watch) {
        (&Method::GET, false, true) => "watch",
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, false) => "list",
        (&Method::POST, ..) => "create",
        (&Method::PUT, ..) => "update",
        (&Method::PATCH, ..) => "patch",
        (&Method::DELETE, true, _) => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => "other",
    }
}

/// Latencies recorded by the server, by (client, verb).
#[derive(Default)]
pub struct Latencies {
    by: Mutex<BTreeMap<(String, &'static str), Histogram>>,
}

impl Latencies {
    /// Records one request of `agent` (User-Agent up to the first `/`).
    pub fn record(&self, agent: &str, verb: &'static str, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        match by.get_mut(&(agent.to_string(), verb)) {
            Some(h) => h.record(us),
            None => {
                let mut h = Histogram::new();
                h.record(us);
                by.insert((agent.to_string(), verb), h);
            }
        }
    }

    /// Forgets everything recorded so far (a benchmark phase starts).
    pub fn reset(&self) {
        self.by.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The report over the requests of one client, or of every client with `None`.
    pub fn report(&self, agent: Option<&str>) -> LatencyReport {
        let by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        let mut verbs: BTreeMap<&'static str, Histogram> = BTreeMap::new();
        let mut all = Histogram::new();
        for ((a, verb), h) in by.iter() {
            if agent.is_some_and(|want| want != a) {
                continue;
            }
            verbs.entry(verb).or_insert_with(Histogram::new).merge(h);
            all.merge(h);
        }
        LatencyReport {
            all: all.summary("all"),
            verbs: verbs.iter().map(|(v, h)| h.summary(v)).collect(),
        }
    }
}

/// Latency of one verb (or of all requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerbLatency {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `discovery` (non-resource documents) or `other` (refused before routing, unknown paths).
    pub verb: String,
    /// Requests recorded.
    pub count: u64,
    /// Median (upper bound of its 4.4% bucket).
    pub p50: Duration,
    /// 99th percentile (upper bound of its bucket).
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// The server's request latency, overall and by verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyReport {
    /// Every request.
    pub all: VerbLatency,
    /// By verb, alphabetically; verbs with no request are absent.
    pub verbs: Vec<VerbLatency>,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for LatencyReport {
    /// `sim request latency p50 X ms, p99 Y ms over N requests (get p50/p99 ..., list ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sim request latency p50 {} ms, p99 {} ms over {} requests (",
            ms(self.all.p50),
            ms(self.all.p99),
            self.all.count
        )?;
        for (i, v) in self.verbs.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(
                f,
                "{sep}{} {} p50/p99 {}/{} ms",
                v.verb,
                v.count,
                ms(v.p50),
                ms(v.p99)
            )?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_in_the_bucket_of_the_recorded_values() {
        let l = Latencies::default();
        for ms in 1..=100u64 {
            l.record("serin", "get", Duration::from_millis(ms));
        }
        l.record("kubectl", "list", Duration::from_secs(2));
        let r = l.report(Some("serin"));
        assert_eq!(r.all.count, 100);
        let p50 = r.verbs[0].p50.as_secs_f64() * 1000.0;
        let p99 = r.verbs[0].p99.as_secs_f64() * 1000.0;
        assert!((50.0..=50.0 * 1.045).contains(&p50), "p50 {p50}");
        assert!((99.0..=100.0).contains(&p99), "p99 {p99}");
        let everyone = l.report(None);
        assert_eq!(everyone.all.count, 101);
        assert_eq!(everyone.all.max, Duration::from_secs(2));
        assert_eq!(everyone.verbs.len(), 2);
        let line = everyone.to_string();
        assert!(line.starts_with("sim request latency p50 "), "{line}");
        assert!(line.contains("list 1 p50/p99 2000.00/2000.00 ms"), "{line}");
        l.reset();
        assert_eq!(l.report(None).all.count, 0);
    }
}

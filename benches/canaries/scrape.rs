//! Reads the controller's own /metrics (prometheus text format): API requests by verb and
//! resource (`serin_kube_api_requests_total`), reconciles, and the step lateness breakdown
//! (`serin_step_lateness_seconds`, `serin_late_steps_total`). Sums over every shard's scrape.

use std::collections::BTreeMap;

/// Requests the controller made, by `"<verb> <resource>"` (RBAC verb, group-qualified resource).
#[derive(Clone, Default, Debug)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn since(&self, before: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(k, v)| {
                    let b = before.0.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(b))
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }

    pub fn add(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Writes of any kind.
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| is_write(k))
            .map(|(_, v)| v)
            .sum()
    }

    /// Writes other than Events.
    pub fn object_writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| is_write(k) && !k.contains("events"))
            .map(|(_, v)| v)
            .sum()
    }
}

fn is_write(key: &str) -> bool {
    ["create ", "update ", "patch ", "delete "]
        .iter()
        .any(|w| key.starts_with(w))
}

/// One sample line: metric name, labels, value.
fn samples(text: &str) -> impl Iterator<Item = (&str, BTreeMap<&str, &str>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            Some((name, labels, value))
        })
}

/// What one scrape says.
#[derive(Clone, Default, Debug)]
pub struct Scrape {
    pub api: Counts,
    pub reconciles: f64,
    /// Cumulative bucket counts of `serin_step_lateness_seconds` by cause, by upper bound.
    pub lateness: BTreeMap<String, Vec<(f64, f64)>>,
    /// `serin_late_steps_total` by cause.
    pub late: BTreeMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for (name, labels, v) in samples(text) {
            let label = |k: &str| labels.get(k).copied().unwrap_or_default().to_string();
            match name {
                "serin_kube_api_requests_total" => {
                    let key = format!("{} {}", label("verb"), label("resource"));
                    *s.api.0.entry(key).or_default() += v as u64;
                }
                "serin_reconcile_total" => s.reconciles += v,
                "serin_step_lateness_seconds_bucket" => {
                    let le = match label("le").as_str() {
                        "+Inf" => f64::INFINITY,
                        x => x.parse().unwrap_or(f64::INFINITY),
                    };
                    s.lateness.entry(label("cause")).or_default().push((le, v));
                }
                "serin_late_steps_total" => *s.late.entry(label("cause")).or_default() += v,
                _ => {}
            }
        }
        for buckets in s.lateness.values_mut() {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        s
    }

    /// Adds another shard's scrape.
    pub fn add(&mut self, o: &Scrape) {
        self.api.add(&o.api);
        self.reconciles += o.reconciles;
        for (cause, buckets) in &o.lateness {
            let mine = self.lateness.entry(cause.clone()).or_default();
            if mine.is_empty() {
                mine.clone_from(buckets);
            } else {
                for (m, b) in mine.iter_mut().zip(buckets) {
                    m.1 += b.1;
                }
            }
        }
        for (cause, v) in &o.late {
            *self.late.entry(cause.clone()).or_default() += v;
        }
    }

    /// What happened between `before` and this scrape (same controllers, no restart between).
    pub fn since(&self, before: &Scrape) -> Scrape {
        let mut lateness = self.lateness.clone();
        for (cause, buckets) in lateness.iter_mut() {
            if let Some(b) = before.lateness.get(cause) {
                for (m, o) in buckets.iter_mut().zip(b) {
                    m.1 -= o.1;
                }
            }
        }
        let late = self
            .late
            .iter()
            .map(|(k, v)| (k.clone(), v - before.late.get(k).copied().unwrap_or(0.0)))
            .collect();
        Scrape {
            api: self.api.since(&before.api),
            reconciles: self.reconciles - before.reconciles,
            lateness,
            late,
        }
    }
}

/// The q-quantile of a cumulative histogram, interpolated linearly inside its bucket (as
/// Prometheus' histogram_quantile does); the count of observations with it. NaN when empty.
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, count)) = buckets.last() else {
        return f64::NAN;
    };
    if count <= 0.0 {
        return f64::NAN;
    }
    let rank = q * count;
    let mut lower = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let inside = c - lower.1;
            let frac = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return lower.0 + (le - lower.0) * frac;
        }
        lower = (le, c);
    }
    lower.0
}

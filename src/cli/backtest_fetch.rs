//! The history `serin backtest` replays: Prometheus range queries (step = the analysis interval,
//! `{{ interval }}` = each metric's own window) in chunks Prometheus accepts, turned into each
//! tick's values. A threshold metric gets its one value per tick, judged as an instant query at
//! that time would be; a metric with `compare` gets, per tick and per side, one sample per series
//! at that time, as the controller's sampling takes them from an instant query. Fetching only:
//! no verdicts; must not import the controller.

use chrono::{DateTime, Utc};

use super::backtest::{Replayable, Setup};
use super::backtest_report;
use crate::analysis::backtest::TickValues;
use crate::analysis::{MetricFailure, Samples};
use crate::metrics::{HttpSettings, MetricError, PrometheusProvider};

/// Most evaluation times asked of Prometheus in one range query (it refuses above 11,000).
const MAX_POINTS: usize = 10_000;

/// What one metric gave at every tick.
enum History {
    /// A threshold metric's value (or why none) per tick.
    Values(Vec<Result<f64, MetricFailure>>),
    /// A compared metric's samples per side per tick.
    Samples(Vec<Samples>),
}

/// Where and how to ask, one range query at a time.
struct Fetch<'a> {
    m: &'a Replayable,
    prom: PrometheusProvider,
    step: i64,
    progress: &'a indicatif::ProgressBar,
}

impl Fetch<'_> {
    /// Values of the metric at every tick (missing times are no data).
    async fn values(&self, ticks: &[DateTime<Utc>]) -> Result<History, String> {
        let mut out = Vec::with_capacity(ticks.len());
        for chunk in ticks.chunks(MAX_POINTS) {
            let (first, last) = span(chunk);
            let got = self
                .prom
                .query_range(&self.m.query, first, last, self.step)
                .await
                .map_err(|e| describe(self.m, &e))?;
            self.progress.inc(1);
            out.extend(chunk.iter().map(|t| match got.get(&t.timestamp()) {
                Some(v) => v.clone().map_err(MetricFailure::from),
                None => Err(MetricFailure::NoData),
            }));
        }
        Ok(History::Values(out))
    }

    /// Each side's samples at every tick: a time without any series is an empty sample, which the
    /// judge counts as too few (no data), as it does an empty instant answer.
    async fn samples(&self, other: &str, ticks: &[DateTime<Utc>]) -> Result<History, String> {
        let mut out = Vec::with_capacity(ticks.len());
        for chunk in ticks.chunks(MAX_POINTS) {
            let (first, last) = span(chunk);
            let mut sides = Vec::with_capacity(2);
            for query in [self.m.query.as_str(), other] {
                let got = self
                    .prom
                    .query_range_samples(query, first, last, self.step)
                    .await
                    .map_err(|e| describe(self.m, &e))?;
                self.progress.inc(1);
                sides.push(got);
            }
            let at = |side: usize, t: &DateTime<Utc>| {
                sides[side].get(&t.timestamp()).cloned().unwrap_or_default()
            };
            out.extend(chunk.iter().map(|t| Samples {
                canary: at(0, t),
                baseline: at(1, t),
            }));
        }
        Ok(History::Samples(out))
    }
}

/// First and last evaluation time of a chunk, in Unix seconds.
fn span(chunk: &[DateTime<Utc>]) -> (i64, i64) {
    (chunk[0].timestamp(), chunk[chunk.len() - 1].timestamp())
}

fn describe(m: &Replayable, e: &MetricError) -> String {
    match e {
        MetricError::Connection(_) | MetricError::Timeout(_) | MetricError::Unavailable(_) => {
            format!(
                "cannot query Prometheus at {} (--prometheus): {e}",
                m.address
            )
        }
        _ => format!(
            "metric '{}': Prometheus at {} refused its query: {e}",
            m.name, m.address
        ),
    }
}

/// Range queries the whole replay needs, for the progress bar.
fn requests(setup: &Setup) -> u64 {
    let chunks = setup.ticks.len().div_ceil(MAX_POINTS);
    let queries: usize = setup
        .metrics
        .iter()
        .map(|m| if m.other_query.is_some() { 2 } else { 1 })
        .sum();
    (queries * chunks) as u64
}

/// Fetches every metric's history and lays it out tick by tick; the error is one sentence.
pub async fn tick_values(
    setup: &Setup,
    timeout: std::time::Duration,
) -> Result<Vec<TickValues>, String> {
    let step = i64::try_from(setup.plan.interval.as_secs().max(1)).unwrap_or(60);
    let progress = backtest_report::progress_bar(requests(setup));
    let mut histories = Vec::with_capacity(setup.metrics.len());
    for m in &setup.metrics {
        let http = HttpSettings {
            timeout,
            ..m.http.clone()
        };
        let fetched = match PrometheusProvider::new(&m.address, http) {
            Err(e) => Err(format!("--prometheus: {e}")),
            Ok(prom) => {
                let f = Fetch {
                    m,
                    prom,
                    step,
                    progress: &progress,
                };
                match &m.other_query {
                    Some(other) => f.samples(other, &setup.ticks).await,
                    None => f.values(&setup.ticks).await,
                }
            }
        };
        match fetched {
            Ok(h) => histories.push(h),
            Err(e) => {
                progress.finish_and_clear();
                return Err(e);
            }
        }
    }
    progress.finish_and_clear();
    Ok(layout(setup, &histories))
}

/// The histories, metric by metric, as the values of each tick.
fn layout(setup: &Setup, histories: &[History]) -> Vec<TickValues> {
    let mut ticks: Vec<TickValues> = setup
        .ticks
        .iter()
        .map(|at| TickValues {
            at: *at,
            metrics: Default::default(),
            samples: Default::default(),
        })
        .collect();
    for (m, history) in setup.metrics.iter().zip(histories) {
        match history {
            History::Values(v) => {
                for (tick, value) in ticks.iter_mut().zip(v) {
                    tick.metrics.insert(m.name.clone(), value.clone());
                }
            }
            History::Samples(v) => {
                for (tick, samples) in ticks.iter_mut().zip(v) {
                    tick.samples.insert(m.name.clone(), Ok(samples.clone()));
                }
            }
        }
    }
    ticks
}

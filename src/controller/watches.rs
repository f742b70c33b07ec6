//! The controller's watch streams, made to survive the API server's bad days. kube's
//! `Controller` merges every trigger stream behind ONE backoff: an error from any watch paused all
//! of them, each wake-up met a new error and renewed the pause (seen: 40-48 s while the API server
//! was already back). Here each watch handles its own errors and never passes one on: it backs off
//! on its own (800 ms doubling to 5 s, jittered, reset once a list or watch delivers — client-go's reflector
//! caps at 30 s; coming back within seconds matters more here), says so in the log (first failure
//! at warn, then now and then), and starts over with a fresh list when its resourceVersion is gone
//! (410 at the start of a watch, which kube's watcher would retry with the same version forever)
//! or when it keeps failing. Must not decide anything.

use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::watcher;

/// First pause after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(800);
/// Longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// After this many failures in a row, throw the watcher away and list afresh.
const RESTART_AFTER: u32 = 6;
/// How often a watch that keeps failing is logged at warn.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The pause before attempt `n + 1` after `n` failures in a row.
pub fn backoff(n: u32) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1u32 << n.saturating_sub(1).min(8));
    exp.min(BACKOFF_MAX).mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// Whether the watcher cannot get past this error by itself (its resourceVersion is gone).
fn needs_fresh_list(e: &watcher::Error) -> bool {
    let gone =
        |s: &kube::core::Status| s.code == 410 || s.reason == "Expired" || s.reason == "Gone";
    match e {
        watcher::Error::WatchStartFailed(kube::Error::Api(s)) => gone(s),
        watcher::Error::WatchError(s) => gone(s),
        _ => false,
    }
}

/// Whether this event shows the watch works again. `Init` does not: kube's watcher sends it
/// before every (re)list, which may fail again — counting it reset the backoff before every retry,
/// so a watch failing for minutes retried every 800 ms and always logged `failures=1`.
fn shows_health<K>(event: &watcher::Event<K>) -> bool {
    !matches!(event, watcher::Event::Init)
}

type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

struct State<K, F> {
    /// Starts a watch afresh: a new list, then a watch from that list's resourceVersion.
    fresh: F,
    what: &'static str,
    inner: Events<K>,
    failures: u32,
    warned: Option<Instant>,
}

/// A watch of `api` (named `what` in the log) that yields only events: errors are handled here.
pub fn resilient<K>(
    api: Api<K>,
    what: &'static str,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    resilient_with(api, what, watcher::Config::default())
}

/// [`resilient`] with a watcher configuration (the Canary watch's shard label selector).
pub fn resilient_with<K>(
    api: Api<K>,
    what: &'static str,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    retrying(what, move || watcher(api.clone(), config.clone()).boxed())
}

/// The retry loop of [`resilient`] over any source of watch streams.
fn retrying<K, F>(
    what: &'static str,
    fresh: F,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Send + 'static,
    F: Fn() -> Events<K> + Send + 'static,
{
    let state = State {
        inner: fresh(),
        fresh,
        what,
        failures: 0,
        warned: None,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            match s.inner.next().await {
                Some(Ok(event)) => {
                    if s.failures > 0 && shows_health(&event) {
                        tracing::info!(watch = s.what, after = s.failures, "watch recovered");
                        s.failures = 0;
                        s.warned = None;
                    }
                    return Some((Ok(event), s));
                }
                Some(Err(e)) => {
                    s.failures += 1;
                    if s.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        tracing::warn!(watch = s.what, error = %e, failures = s.failures, "watch failed; retrying with backoff");
                        s.warned = Some(Instant::now());
                    } else {
                        tracing::debug!(watch = s.what, error = %e, failures = s.failures, "watch failed");
                    }
                    if needs_fresh_list(&e) || s.failures % RESTART_AFTER == 0 {
                        tracing::info!(watch = s.what, "listing afresh");
                        s.inner = (s.fresh)();
                    }
                    tokio::time::sleep(backoff(s.failures)).await;
                }
                // A watcher never ends by itself; if it does, start over rather than stop.
                None => s.inner = (s.fresh)(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_800ms_and_stays_at_most_6s() {
        for n in 1..40 {
            let d = backoff(n);
            assert!(d >= Duration::from_millis(640), "{n}: {d:?}");
            assert!(d <= Duration::from_secs(6), "{n}: {d:?}");
        }
        assert!(backoff(1) < Duration::from_secs(1));
        assert!(backoff(3) > Duration::from_secs(2));
    }

    #[test]
    fn only_a_listed_or_watched_object_resets_the_backoff() {
        use k8s_openapi::api::core::v1::ConfigMap;
        assert!(!shows_health::<ConfigMap>(&watcher::Event::Init));
        assert!(shows_health::<ConfigMap>(&watcher::Event::InitDone));
        assert!(shows_health(&watcher::Event::InitApply(
            ConfigMap::default()
        )));
        assert!(shows_health(&watcher::Event::Apply(ConfigMap::default())));
        assert!(shows_health(&watcher::Event::Delete(ConfigMap::default())));
    }

    #[test]
    fn a_gone_resource_version_means_a_fresh_list() {
        let gone = kube::core::Status::failure("too old resource version: 1 (2)", "Expired")
            .with_code(410);
        assert!(needs_fresh_list(&watcher::Error::WatchStartFailed(
            kube::Error::Api(Box::new(gone.clone()))
        )));
        assert!(needs_fresh_list(&watcher::Error::WatchError(Box::new(
            gone
        ))));
        let other = kube::core::Status::failure("boom", "InternalError").with_code(500);
        assert!(!needs_fresh_list(&watcher::Error::WatchStartFailed(
            kube::Error::Api(Box::new(other))
        )));
    }
}

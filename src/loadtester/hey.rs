//! `hey`-style load, generated natively: the command line users already put in Flagger's
//! loadtester metadata (`hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/`) is parsed and
//! run by tokio tasks, no external binary. Supported flags: -z duration, -n requests, -q QPS per
//! worker, -c workers, -m method, -H header (repeatable), -d body, -T content type, -t timeout
//! seconds. Anything else is refused with a message naming it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::api::duration::parse_duration;

/// A parsed `hey` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Target URL.
    pub url: String,
    /// How long to run (with `requests`, whichever ends first).
    pub duration: Option<Duration>,
    /// Total requests across workers.
    pub requests: Option<u64>,
    /// Requests per second per worker (0: as fast as possible).
    pub qps: f64,
    /// Concurrent workers.
    pub workers: u32,
    /// HTTP method.
    pub method: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Splits a command line like a POSIX shell does for plain words and '…' / "…" quotes.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unclosed {c} quote")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    v.as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{flag} needs a number"))
}

/// Parses `hey …`.
pub fn parse(cmd: &str) -> Result<Load, String> {
    let mut words = split_words(cmd)?.into_iter();
    match words.next().as_deref() {
        Some("hey") => {}
        Some(other) => return Err(format!("only hey commands are run natively, not '{other}'")),
        None => return Err("the cmd is empty".into()),
    }
    let mut load = Load {
        url: String::new(),
        duration: None,
        requests: None,
        qps: 0.0,
        workers: 50,
        method: "GET".into(),
        headers: Vec::new(),
        body: None,
        timeout: Duration::from_secs(20),
    };
    while let Some(w) = words.next() {
        match w.as_str() {
            "-z" => {
                let v = words.next().ok_or("-z needs a duration")?;
                load.duration = Some(parse_duration(&v).map_err(|e| format!("-z: {e}"))?);
            }
            "-n" => load.requests = Some(number("-n", words.next())?),
            "-q" => load.qps = number("-q", words.next())?,
            "-c" => load.workers = number::<u32>("-c", words.next())?.clamp(1, 1000),
            "-m" => load.method = words.next().ok_or("-m needs a method")?.to_uppercase(),
            "-H" => {
                let h = words.next().ok_or("-H needs a header")?;
                let (k, v) = h
                    .split_once(':')
                    .ok_or_else(|| format!("-H '{h}' is not name: value"))?;
                load.headers
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
            "-d" => load.body = Some(words.next().ok_or("-d needs a body")?),
            "-T" => {
                let t = words.next().ok_or("-T needs a content type")?;
                load.headers.push(("content-type".into(), t));
            }
            "-t" => load.timeout = Duration::from_secs(number("-t", words.next())?),
            flag if flag.starts_with('-') => {
                return Err(format!("hey flag {flag} is not supported"));
            }
            url => {
                reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
                load.url = url.to_string();
            }
        }
    }
    if load.url.is_empty() {
        return Err("the hey command has no URL".into());
    }
    if load.duration.is_none() && load.requests.is_none() {
        load.requests = Some(200);
    }
    Ok(load)
}

/// Counts of a finished run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests answered (any status).
    pub answered: AtomicU64,
    /// Requests with a non-2xx answer or none.
    pub failed: AtomicU64,
}

/// Runs the load to its end.
pub async fn run(load: Load) -> Arc<Outcome> {
    let outcome = Arc::new(Outcome::default());
    let Ok(client) = reqwest::Client::builder().timeout(load.timeout).build() else {
        return outcome;
    };
    let deadline = load.duration.map(|d| tokio::time::Instant::now() + d);
    let budget = Arc::new(AtomicU64::new(load.requests.unwrap_or(u64::MAX)));
    let method =
        reqwest::Method::from_bytes(load.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let workers = (0..load.workers).map(|_| {
        let (client, load, budget, outcome, method) = (
            client.clone(),
            load.clone(),
            budget.clone(),
            outcome.clone(),
            method.clone(),
        );
        tokio::spawn(async move {
            let mut tick = (load.qps > 0.0)
                .then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / load.qps)));
            loop {
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
                if budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let mut req = client.request(method.clone(), &load.url);
                for (k, v) in &load.headers {
                    req = req.header(k, v);
                }
                if let Some(b) = &load.body {
                    req = req.body(b.clone());
                }
                let ok = req.send().await.is_ok_and(|r| r.status().is_success());
                outcome.answered.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    outcome.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    futures::future::join_all(workers).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flaggers_usual_commands_parse() {
        let l =
            parse("hey -z 1m -q 10 -c 2 -H 'X-Canary: insider' http://podinfo-canary.test:9898/")
                .unwrap();
        assert_eq!(l.duration, Some(Duration::from_secs(60)));
        assert_eq!(
            (l.qps, l.workers, l.url.as_str()),
            (10.0, 2, "http://podinfo-canary.test:9898/")
        );
        assert_eq!(l.headers, [("X-Canary".to_string(), "insider".to_string())]);
        let l = parse(r#"hey -n 100 -m post -d '{"a": 1}' -T application/json http://x/"#).unwrap();
        assert_eq!((l.requests, l.method.as_str()), (Some(100), "POST"));
        assert_eq!(l.body.as_deref(), Some(r#"{"a": 1}"#));
    }

    #[test]
    fn other_commands_and_flags_are_named() {
        assert_eq!(
            parse("curl http://x/"),
            Err("only hey commands are run natively, not 'curl'".into())
        );
        assert_eq!(
            parse("hey -x 1 http://x/"),
            Err("hey flag -x is not supported".into())
        );
        assert_eq!(parse("hey -z 1m"), Err("the hey command has no URL".into()));
        assert_eq!(
            parse("hey -q ten http://x/"),
            Err("-q needs a number".into())
        );
        assert_eq!(split_words("a 'b c"), Err("unclosed ' quote".into()));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,60}") {
            let _ = parse(&format!("hey {s}"));
        }
    }
}

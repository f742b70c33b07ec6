//! N canaries per controller: memory, CPU, API economy, step punctuality (and why a step was
//! late), steady state and restart. The controller is the real `serin controller` binary in its
//! own process (so its RSS and CPU are its own; `SERIN_BENCH_BIN` runs another build), against the
//! embedded cluster in this process or, with `--kubeconfig PATH`, any cluster (apps in its own
//! namespaces `--namespace-prefix`-0.., deleted at the end, also after an error or Ctrl-C); a
//! fast in-process stand-in for Prometheus answers every query with 99.9. API requests are the
//! controller's own `serin_kube_api_requests_total`. `--shards K` runs K controllers, each with
//! `--shard-selector`, the Canaries labelled round-robin.
//!
//! Last, `--max-concurrent-canaries` at half of N while a ConfigMap every app reads changes
//! (`--no-cap` leaves it out: at N = 10,000 it is two more full rollouts).
//!
//! `--interval SECS` sets the analysis interval of the full sizes (default 10): a controller
//! must take N / interval steps a second, so N = 10,000 on two cores runs with a longer one.
//!
//! `cargo bench --bench canaries` runs N = 100 and N = 1,000 (interval 10 s, stepWeight 10 to 50);
//! `-- --canaries N` picks one size. Without `--bench` (as `cargo test --all-targets` runs it) a
//! smoke size (N = 10, interval 2 s, 5 s of steady state). Prints a report with PASS/FAIL lines
//! against the budget; asserts nothing about speed (a busy machine must not fail the build).

mod apps;
mod breakdown;
mod cap;
mod cluster;
mod controllers;
mod report;
mod scrape;
mod world;

use std::time::{Duration, Instant};

use cluster::{Bench, Size, Where};

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn number(args: &[String], name: &str) -> Result<Option<usize>, String> {
    flag(args, name)
        .map(|n| {
            n.parse::<usize>()
                .map_err(|_| format!("{name} wants a number, not '{n}'"))
        })
        .transpose()
}

fn parse() -> Result<(Vec<Size>, Where), String> {
    let args: Vec<String> = std::env::args().collect();
    let full_run = args.iter().any(|a| a == "--bench");
    let interval = Duration::from_secs(number(&args, "--interval")?.unwrap_or(10).max(1) as u64);
    let full = |n: usize| Size {
        interval,
        ..Size::full(n)
    };
    let mut sizes = match (full_run, number(&args, "--canaries")?) {
        (_, Some(n)) => vec![full(n)],
        (true, None) => vec![full(100), full(1000)],
        (false, None) => vec![Size::smoke()],
    };
    if args.iter().any(|a| a == "--no-cap") {
        sizes.iter_mut().for_each(|s| s.cap = false);
    }
    let at = Where {
        kubeconfig: flag(&args, "--kubeconfig").map(Into::into),
        namespace_prefix: flag(&args, "--namespace-prefix")
            .unwrap_or("serin-bench")
            .to_string(),
        namespaces: number(&args, "--namespaces")?.unwrap_or(4).max(1),
        image: flag(&args, "--image").map(String::from),
        shards: number(&args, "--shards")?.unwrap_or(0),
    };
    Ok((sizes, at))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (sizes, at) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("benchmark: {e}");
            std::process::exit(2);
        }
    };
    for size in sizes {
        let cleanup = world::Shared::default();
        let outcome = tokio::select! {
            r = run(&size, &at, cleanup.clone()) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        };
        // The run (and its controllers) is gone by now: delete what it made on the cluster.
        let list = cleanup.lock().map(|c| c.clone()).unwrap_or_default();
        list.run().await;
        if let Err(e) = outcome {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(size: &Size, at: &Where, cleanup: world::Shared) -> Result<(), String> {
    let place = match &at.kubeconfig {
        Some(k) => format!("cluster of {}", k.display()),
        None => "embedded cluster".into(),
    };
    println!(
        "\n== serin canaries benchmark: N = {}, interval {}s, stepWeight 10 to 50, {} cores, {place}, {} ==",
        size.canaries,
        size.interval.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        match at.shards {
            0 => "1 controller".to_string(),
            k => format!("{k} shards"),
        }
    );
    let mut bench = Bench::start(size, at, cleanup).await?;
    let t = Instant::now();
    bench.create_apps().await?;
    println!(
        "setup: {} apps created in {} namespace(s) in {:.1}s",
        size.canaries,
        bench.world.namespaces.len(),
        t.elapsed().as_secs_f64()
    );
    bench.start_controller()?;
    let t = Instant::now();
    bench
        .wait_all(|p| p == "Initialized", Duration::from_secs(600))
        .await?;
    bench.wait_routes(Duration::from_secs(600)).await?;
    println!("initialized all in {:.1}s", t.elapsed().as_secs_f64());

    // Rollout 1, measured: a new revision on every app at once.
    let before = bench.scrape().await;
    let before_each = bench.controllers.scrape_each().await;
    let sim_before = bench.sim_counts();
    bench.reset_sim_latency();
    let cpu_before = bench.controllers.figures();
    let t = Instant::now();
    bench.new_revision_on_all("2").await?;
    // Writes per weight step: between "all at 20" and "all at 30" every canary takes weight
    // steps only; the weights say exactly how many.
    let limit = Duration::from_secs(1800);
    bench.wait_all_reached(20, limit).await?;
    let (c1, w1, t1) = (
        bench.scrape().await,
        bench.weights().await?,
        chrono::Utc::now(),
    );
    bench.wait_all_reached(30, limit).await?;
    let (c2, w2, t2) = (
        bench.scrape().await,
        bench.weights().await?,
        chrono::Utc::now(),
    );
    let steps: i32 = w1.iter().zip(&w2).map(|(a, b)| (b - a).max(0) / 10).sum();
    let step_writes = (c2.api.since(&c1.api), steps);
    bench.wait_all(|p| p == "Succeeded", limit).await?;
    let rollout = t.elapsed();
    let during = bench.scrape().await.since(&before);
    let per_shard: Vec<_> = bench
        .controllers
        .scrape_each()
        .await
        .iter()
        .zip(&before_each)
        .map(|(a, b)| a.since(b))
        .collect();
    let figures = bench.controllers.figures();
    let cpu =
        figures.iter().map(|f| f.cpu).sum::<f64>() - cpu_before.iter().map(|f| f.cpu).sum::<f64>();
    let peak = figures.iter().map(|f| f.peak_rss_mib).sum();
    let sim_latency = bench
        .sim_latency(Some("serin"))
        .zip(bench.sim_latency(None));
    let sim_cross_check = bench
        .sim_counts()
        .zip(sim_before)
        .map(|(after, before)| after.since(&before).total());
    println!("rollout: all promoted in {:.1}s", rollout.as_secs_f64());
    let canaries = bench.canaries().await?;
    let other_ticks = report::other_ticks_between(&canaries, t1, t2);

    // Steady state: nothing to do, so nothing may be written. It begins 2 s after the last
    // canary was seen Succeeded: that status write is visible before the Events of the same
    // tick have been answered and counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady_before = bench.scrape().await.api;
    tokio::time::sleep(size.steady).await;
    let steady = bench.scrape().await.api.since(&steady_before);
    let steady_writes = steady.writes();
    if steady_writes > 0 {
        println!("writes in steady state: {:?}", steady.0);
    }
    let steady_rss = bench.controllers.rss_mib();
    let shards = breakdown::shard_lines(&bench.controllers.figures(), &cpu_before, &per_shard);

    // Restart mid-run: a second rollout, killed once every canary has taken a step in it.
    bench.new_revision_on_all("3").await?;
    let in_flight = bench.wait_each_stepped(Duration::from_secs(600)).await?;
    let resume = bench.restart_controller().await?;
    println!(
        "restart: killed with {in_flight} canaries in flight, all reconciled again after {:.1}s",
        resume.as_secs_f64()
    );
    bench
        .wait_all(|p| p == "Succeeded", Duration::from_secs(1800))
        .await?;
    let restarted_ok = report::no_step_repeated(&bench.canaries().await?);

    let r = report::Report {
        size,
        rollout,
        requests: during.api.clone(),
        sim_cross_check,
        sim_latency,
        step_writes,
        other_ticks,
        cpu_seconds: cpu,
        peak_rss_mib: peak,
        steady_rss_mib: steady_rss,
        steady_writes,
        lateness: report::lateness(&canaries, size.interval),
        breakdown: during,
        shards,
        resume,
        restarted_ok,
    };
    r.print();

    // A ConfigMap every app reads changes, under a cap of half the apps at once (per shard).
    if size.cap {
        let cap = cap::run(&mut bench, (size.canaries / 2).max(1)).await?;
        cap.print(report::check);
    }
    bench.stop();
    Ok(())
}

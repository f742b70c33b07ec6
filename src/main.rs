//! The `serin` binary: parses the command line and hands over to `serin::cli`; and the one
//! thing the library cannot do (it forbids unsafe code): give the controller's freed heap back
//! to the system (`release_free_memory`).

use clap::Parser;
use serin::analysis::Action;
use serin::cli::{self, Cli, Command, SimCommand};

// glibc's malloc by default (the controller gives its freed memory back: `spawn_trimmer`);
// `--features mimalloc` builds with mimalloc instead, to compare.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args = Cli::parse();
    let code = match args.command {
        Command::Crds { out_dir } => cli::crds(out_dir.as_deref()),
        Command::Check {
            cluster: true,
            kubeconfig,
            namespace,
            mesh_provider,
            ..
        } => {
            cli::cluster_check::run(
                kubeconfig,
                namespace,
                &mesh_provider,
                &mut std::io::stdout(),
            )
            .await
        }
        Command::Check {
            files,
            mesh_provider,
            ..
        } => cli::check(&files, &mesh_provider, &mut std::io::stdout()),
        Command::Controller(args) => {
            #[cfg(not(feature = "mimalloc"))]
            spawn_trimmer();
            cli::controller(*args).await
        }
        Command::Sim {
            action:
                SimCommand::Serve {
                    port,
                    kubeconfig_out,
                    pod_ready_ms,
                },
        } => cli::sim_serve(port, kubeconfig_out, pod_ready_ms).await,
        Command::Status(args) => cli::operate::status(args).await,
        Command::Dashboard(args) => cli::dashboard::run(args).await,
        Command::Promote(args) => cli::operate::act(Action::Promote, args).await,
        Command::Abort(args) => cli::operate::act(Action::Abort, args).await,
        Command::Pause(args) => cli::operate::act(Action::Pause, args).await,
        Command::Resume(args) => cli::operate::act(Action::Resume, args).await,
        Command::Migrate {
            files,
            mesh_provider,
        } => cli::migrate(
            &files,
            &mesh_provider,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        Command::Backtest(args) => cli::backtest::run(*args).await,
        Command::Completions { shell } => cli::completions(shell),
        Command::Loadtester {
            listen,
            max_tasks,
            task_timeout,
        } => cli::loadtester(listen, max_tasks, task_timeout).await,
        Command::Demo {
            prometheus,
            keep,
            plain,
        } => {
            serin::demo::run(serin::demo::DemoOptions {
                prometheus,
                keep,
                plain,
            })
            .await
        }
    };
    std::process::exit(code);
}

/// How often the controller's freed memory is given back: a trim walks the free lists
/// (milliseconds at a thousand Canaries); the gain is a steady RSS close to the live heap.
#[cfg(not(feature = "mimalloc"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// glibc's malloc keeps what a program frees for reuse and returns only the top of each arena to
/// the system. The controller's heap churns (every watch event and reconcile allocates and frees
/// its objects), so its free memory sits in the middle and its RSS stays at the high-water mark.
/// `malloc_trim(0)` releases those free pages; measured at 300 Canaries it gave back 4-10 MiB of
/// ~30 MiB of anonymous memory (docs/performance.md, "Controller memory"). True when some memory
/// was released.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn release_free_memory() -> bool {
    unsafe extern "C" {
        /// glibc: release free heap memory (pad 0: keep nothing spare at the top).
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes the arenas' own locks and only hands free pages back to the
    // kernel; it touches no memory the program holds, and takes no pointer from us.
    unsafe { malloc_trim(0) == 1 }
}

/// Other C libraries: nothing to release this way.
#[cfg(all(
    not(all(target_os = "linux", target_env = "gnu")),
    not(feature = "mimalloc")
))]
fn release_free_memory() -> bool {
    false
}

/// Releases freed memory every [`TRIM_EVERY`] for as long as the runtime runs, on the blocking
/// pool (a trim holds each arena's lock while it walks it; a runtime worker must not wait there).
#[cfg(not(feature = "mimalloc"))]
fn spawn_trimmer() {
    tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    });
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    #[test]
    fn freed_small_allocations_are_given_back() {
        // 32 MiB in 1 KiB pieces (under the mmap threshold: they live in the arena), all freed
        // but the last, which keeps the arena's top in use: only a trim can return the rest.
        let mut pieces: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let last = pieces.pop();
        drop(pieces);
        assert!(super::release_free_memory());
        assert_eq!(last.map(|v| v.len()), Some(1024));
    }
}

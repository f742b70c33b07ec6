//! The `serin` binary: parses the command line and hands over to `serin::cli`.

use clap::Parser;
use serin::analysis::Action;
use serin::cli::{self, Cli, Command, SimCommand};

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
        Command::Controller(args) => cli::controller(*args).await,
        Command::Sim {
            action:
                SimCommand::Serve {
                    port,
                    kubeconfig_out,
                    pod_ready_ms,
                },
        } => cli::sim_serve(port, kubeconfig_out, pod_ready_ms).await,
        Command::Status(args) => cli::operate::status(args).await,
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

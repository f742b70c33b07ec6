//! The `serin` binary: parses the command line and hands over to `serin::cli`.

use clap::Parser;
use serin::cli::{self, Cli, Command};

#[tokio::main]
async fn main() {
    let args = Cli::parse();
    let code = match args.command {
        Command::Crds { out_dir } => cli::crds(out_dir.as_deref()),
        Command::Check { files } => cli::check(&files, &mut std::io::stdout()),
        Command::Controller {
            kubeconfig,
            namespace,
            mesh_provider,
            log_format,
            log_level,
        } => {
            cli::controller(cli::ControllerArgs {
                kubeconfig,
                namespace,
                mesh_provider,
                log_format,
                log_level,
            })
            .await
        }
        Command::Sim {
            action:
                cli::SimCommand::Serve {
                    port,
                    kubeconfig_out,
                    pod_ready_ms,
                },
        } => cli::sim_serve(port, kubeconfig_out, pod_ready_ms).await,
        Command::Demo => {
            eprintln!(
                "serin demo is coming: it needs the embedded cluster and the controller (issues 3, 5, 10)"
            );
            2
        }
    };
    std::process::exit(code);
}

//! `serin dashboard`: the web dashboard run locally against the kubeconfig's cluster — its own
//! reflector on Canaries (one watch, shared by every browser tab), bound to 127.0.0.1 by default,
//! actions (with --actions) using the kubeconfig's identity so the API server decides. Prints
//! `dashboard: http://ADDR/` once listening. Must not decide anything: the controller does.

use std::net::SocketAddr;

use clap::Args;
use kube::api::Api;

use super::operate::{Target, client};
use crate::api::Canary;

/// `serin dashboard` arguments.
#[derive(Args, Debug, Clone)]
pub struct DashboardArgs {
    /// Every namespace (default: the -n namespace, else the kubeconfig context's).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Address to listen on; 127.0.0.1:0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "HOST:PORT")]
    pub addr: SocketAddr,
    /// Show the promote/abort/pause/resume buttons; they act with the kubeconfig's identity.
    #[arg(long)]
    pub actions: bool,
    #[command(flatten)]
    pub target: Target,
}

/// Runs `serin dashboard` until Ctrl-C / SIGTERM.
pub async fn run(args: DashboardArgs) -> i32 {
    super::init_logging("text", "warn");
    let (client, ns) = match client(&args.target).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let api: Api<Canary> = if args.all_namespaces {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &ns)
    };
    let (feed, watch) = crate::dashboard::own_feed(api);
    let options = crate::dashboard::Options {
        mode: crate::dashboard::Mode::Local,
        actions: args.actions,
    };
    let dashboard = match crate::dashboard::Dashboard::new(feed, client, options) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let bound = match crate::dashboard::serve(args.addr, dashboard).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot listen on {} (--addr): {e}", args.addr);
            return 2;
        }
    };
    println!("dashboard: http://{bound}/");
    tokio::select! {
        _ = watch => {}
        _ = super::wait_for_shutdown() => {}
    }
    0
}

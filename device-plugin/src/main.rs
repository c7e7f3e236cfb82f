//! `sriov-device-plugin`: the node agent (kubelet device plugin, ledger, pod table) and the
//! operator tools around it (`inventory`, `emulate`).

mod cli;
mod podtable;
mod pools;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sriov-device-plugin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

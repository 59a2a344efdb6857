//! The `meshfleet` binary: parse arguments, dispatch to a command, map the result to an
//! exit code (0 success, 1 the fleet or clusters have problems, 2 the command could not
//! do its job).

mod cli;
mod commands;
mod printer;

use std::process::ExitCode;

use clap::Parser as _;

use crate::commands::ExitStatus;
use crate::printer::Printer;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging(cli.global.verbose);
    let printer = Printer::new(cli.global.color);
    let status = match commands::run(&cli, printer) {
        Ok(status) => status,
        Err(err) => {
            printer.report(&err);
            ExitStatus::Error
        }
    };
    status.into()
}

fn init_logging(verbose: u8) {
    // Only meshfleet's own logs: the client libraries log the failures meshfleet
    // reports itself (kube logs every refused connection at ERROR), which would say
    // the same thing twice. `RUST_LOG` opens everything up. A directive's target is a
    // prefix, so `meshfleet` covers the binary and every library crate (`meshfleet_live`, ...).
    let default = match verbose {
        0 => "meshfleet=warn",
        1 => "meshfleet=info",
        _ => "meshfleet=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

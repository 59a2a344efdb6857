//! `meshfleet graph [PATH] --format svg|dot|mermaid [--live]`.
//!
//! Without `--live` the picture needs nothing but the fleet file. With `--live` the
//! checks of `meshfleet check` run first (the same library call, the same report) and
//! the picture is coloured by their results; the picture still goes to stdout when a
//! check failed, and the exit code is `check`'s: 1 when a check failed.

use std::time::Duration;

use meshfleet_core::graph::{self, FleetHealth};
use meshfleet_core::live::check::{self, CheckOptions};

use super::{CommandError, ExitStatus, hinted, kubeconfigs, load_plan, now, runtime};
use crate::cli::{GlobalArgs, GraphArgs, GraphFormat};
use crate::printer::Printer;

pub fn run(args: &GraphArgs, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    if args.live && args.timeout == 0 {
        return Err(hinted(
            "`--timeout 0` leaves no time for a cluster to answer",
            "give the seconds to wait for each cluster, e.g. `--timeout 10`",
        ));
    }
    let (_, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let (health, status) = if args.live {
        let kubeconfigs = kubeconfigs(global)?.with_timeout(Duration::from_secs(args.timeout));
        let options = CheckOptions {
            clusters: Vec::new(),
            now: now(),
        };
        let report = runtime()?
            .block_on(check::run(&plan, &kubeconfigs, &options, &()))
            .map_err(|e| hinted(e.to_string(), "run `meshfleet check` to see every check"))?;
        let status = if report.success() {
            ExitStatus::Success
        } else {
            printer.status(&format!(
                "some checks failed; `meshfleet check {}` explains each with a hint",
                args.path.display()
            ));
            ExitStatus::Failure
        };
        (Some(FleetHealth::from_report(&plan, &report)), status)
    } else {
        (None, ExitStatus::Success)
    };
    let text = match args.format {
        GraphFormat::Svg => graph::svg(&plan, health.as_ref()),
        GraphFormat::Dot => graph::dot(&plan, health.as_ref()),
        GraphFormat::Mermaid => graph::mermaid(&plan, health.as_ref()),
    };
    printer.data(&text);
    Ok(status)
}

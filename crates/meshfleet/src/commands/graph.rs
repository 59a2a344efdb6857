//! `meshfleet graph [PATH] --format svg|dot|mermaid`.

use meshfleet_core::graph;

use super::{ExitStatus, load_plan};
use crate::cli::{GraphArgs, GraphFormat};
use crate::printer::Printer;

pub fn run(args: &GraphArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let (_, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let text = match args.format {
        GraphFormat::Svg => graph::svg(&plan),
        GraphFormat::Dot => graph::dot(&plan),
        GraphFormat::Mermaid => graph::mermaid(&plan),
    };
    printer.data(&text);
    Ok(ExitStatus::Success)
}

//! `meshfleet schema`, `completions` and `man`: generated from the types.

use clap::CommandFactory as _;
use meshfleet_core::fleet::Fleet;

use super::{CommandError, ExitStatus};
use crate::cli::Cli;
use crate::printer::Printer;

pub fn run(printer: Printer) -> Result<ExitStatus, CommandError> {
    // As a JSON value: its map keeps insertion order, so `$id` goes last as committed.
    let mut schema = serde_json::to_value(schemars::schema_for!(Fleet)).map_err(CommandError::unhinted)?;
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            "https://meshfleet.io/schema/fleet-v1alpha1.json".into(),
        );
    }
    printer.json(&schema)?;
    Ok(ExitStatus::Success)
}

#[allow(clippy::unnecessary_wraps)] // every command returns the same type
pub fn completions(shell: clap_complete::Shell, printer: Printer) -> Result<ExitStatus, CommandError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "meshfleet", &mut out);
    printer.data(&String::from_utf8_lossy(&out));
    Ok(ExitStatus::Success)
}

pub fn man(printer: Printer) -> Result<ExitStatus, CommandError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(CommandError::unhinted)?;
    printer.data(&String::from_utf8_lossy(&out));
    Ok(ExitStatus::Success)
}

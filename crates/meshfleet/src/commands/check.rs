//! `meshfleet check`: not written yet (placeholder until its issue lands).

use super::{ExitStatus, hinted};
use crate::cli::GlobalArgs;
use crate::printer::Printer;

pub fn run(_args: &crate::cli::CheckArgs, _global: &GlobalArgs, _printer: Printer) -> anyhow::Result<ExitStatus> {
    Err(hinted("this command is not available yet", "see the README"))
}

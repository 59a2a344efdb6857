//! `meshfleet trust`: not written yet (placeholder until its issue lands).

use super::{ExitStatus, hinted};
use crate::cli::GlobalArgs;
use crate::printer::Printer;

pub fn extract(_args: &crate::cli::TrustExtractArgs, _global: &GlobalArgs, _printer: Printer) -> anyhow::Result<ExitStatus> {
    Err(hinted("this command is not available yet", "see the README"))
}

pub fn verify(_path: &std::path::Path, _global: &GlobalArgs, _printer: Printer) -> anyhow::Result<ExitStatus> {
    Err(hinted("this command is not available yet", "see the README"))
}

//! `meshfleet schema`, `completions` and `man`: generated from the types.

use clap::CommandFactory as _;
use meshfleet_core::fleet::Fleet;

use super::{CommandError, ExitStatus, hinted};
use crate::cli::{Cli, ManArgs, manual};
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

/// `meshfleet man [COMMAND]...` prints one page; `--out DIR` writes every page.
pub fn man(args: &ManArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    if let Some(dir) = &args.out {
        fs_err::create_dir_all(dir).map_err(CommandError::unhinted)?;
        let pages = manual::pages();
        for (file, roff) in &pages {
            fs_err::write(dir.join(file), roff).map_err(CommandError::unhinted)?;
        }
        printer.status(&format!(
            "wrote {} man pages into `{}`: `meshfleet.1` and one `meshfleet-<command>.1` per command",
            pages.len(),
            dir.display()
        ));
        return Ok(ExitStatus::Success);
    }
    // `meshfleet man trust rotate`, or the page's own name, `meshfleet man meshfleet-trust-rotate`.
    let words: Vec<String> = match args.command.as_slice() {
        [one] if one.starts_with("meshfleet") => one.split('-').skip(1).map(str::to_owned).collect(),
        words => words.to_vec(),
    };
    let Some((_, roff)) = manual::page(&words) else {
        let known: Vec<String> = manual::commands()
            .into_iter()
            .filter(|(w, _)| !w.is_empty())
            .map(|(w, _)| format!("`{}`", w.join(" ")))
            .collect();
        return Err(hinted(
            format!("meshfleet has no command `{}`", words.join(" ")),
            format!("`meshfleet man` takes one of {}", known.join(", ")),
        ));
    };
    printer.data(&String::from_utf8_lossy(&roff));
    Ok(ExitStatus::Success)
}

//! `meshfleet schema`, `completions`, `man` and `version`: generated from the types.

use clap::CommandFactory as _;
use meshfleet_core::fleet::Fleet;
use meshfleet_core::version::{LinkerdVersion, NEWEST_KNOWN, OLDEST_SUPPORTED};
use serde::Serialize;

use super::{CommandError, ExitStatus, hinted};
use crate::cli::{Cli, ManArgs, OutputFormat, manual};
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
    let mut words: Vec<String> = match args.command.as_slice() {
        [one] if one.starts_with("meshfleet") => one.split('-').skip(1).map(str::to_owned).collect(),
        words => words.to_vec(),
    };
    // `completion` is another name of `completions`, which has the page.
    if words == ["completion"] {
        words = vec!["completions".to_owned()];
    }
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

/// `meshfleet version -o json`; field names are stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionJson {
    version: &'static str,
    linkerd: LinkerdSupportJson,
}

/// The Linkerd releases a fleet may name in `spec.linkerd.version`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkerdSupportJson {
    /// The oldest release `validate` accepts (declarative Links).
    oldest: ReleaseJson,
    /// The newest release meshfleet's output was checked against; newer ones are
    /// accepted with a `linkerd-version-untested` warning.
    newest_checked: ReleaseJson,
}

#[derive(Serialize)]
struct ReleaseJson {
    chart: String,
    edge: String,
    release: &'static str,
}

impl From<LinkerdVersion> for ReleaseJson {
    fn from(v: LinkerdVersion) -> Self {
        Self {
            chart: v.to_string(),
            edge: v.edge_tag(),
            release: v.major(),
        }
    }
}

/// `meshfleet version`: the tool's version, and the Linkerd releases it supports.
pub fn version(output: OutputFormat, printer: Printer) -> Result<ExitStatus, CommandError> {
    let document = VersionJson {
        version: env!("CARGO_PKG_VERSION"),
        linkerd: LinkerdSupportJson {
            oldest: OLDEST_SUPPORTED.into(),
            newest_checked: NEWEST_KNOWN.into(),
        },
    };
    match output {
        OutputFormat::Json => printer.json(&document)?,
        OutputFormat::Text => {
            let (old, new) = (&document.linkerd.oldest, &document.linkerd.newest_checked);
            printer.data(&format!(
                "meshfleet {}\nlinkerd: chart versions {} ({}, Linkerd {}) through {} ({}, Linkerd {}); newer ones validate with a warning\n",
                document.version, old.chart, old.edge, old.release, new.chart, new.edge, new.release
            ));
        }
    }
    Ok(ExitStatus::Success)
}

//! `meshfleet validate [PATH]`: every static rule, all findings at once.

use std::path::Path;

use meshfleet_core::diagnostic::{Finding, Severity};
use meshfleet_core::fleet::LoadError;
use meshfleet_core::validate::{Rule, check_file};
use serde::Serialize;

use super::{CommandError, ExitStatus, now};
use crate::cli::OutputFormat;
use crate::printer::{Printer, Style};

pub fn run(path: &Path, output: OutputFormat, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (file, text, fleet_name, findings, summary) = match check_file(path, now()) {
        Err(e @ (LoadError::Unreadable { .. } | LoadError::Ambiguous { .. })) => return Err(e.into()),
        Err(LoadError::Invalid { file, findings }) => {
            (file.path.clone(), file.text.clone(), None, findings, None)
        }
        Ok(checked) => {
            let links = meshfleet_core::fleet::links::declared_links(&checked.fleet).len();
            let clusters = checked.fleet.spec.clusters.len();
            (
                checked.source.path.clone(),
                checked.source.text.clone(),
                Some(checked.fleet.metadata.name.value.clone()),
                checked.findings,
                Some((clusters, links)),
            )
        }
    };
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let path_text = file.display().to_string();
    match output {
        OutputFormat::Json => printer.json(&ValidateReport {
            file: path_text.clone(),
            fleet: fleet_name.clone(),
            valid: errors == 0,
            errors,
            warnings,
            findings: findings.iter().map(FindingJson::from).collect(),
        })?,
        OutputFormat::Text => {
            printer.data(&printer.findings(&path_text, &text, &findings, true));
            let name = fleet_name.unwrap_or_else(|| path_text.clone());
            let line = if errors == 0 {
                let (clusters, links) = summary.unwrap_or_default();
                format!(
                    "{} fleet `{name}` is valid: {clusters} cluster(s), {links} link(s){}\n",
                    printer.out(Style::Success, "✓"),
                    if warnings > 0 {
                        format!(", {warnings} warning(s)")
                    } else {
                        String::new()
                    }
                )
            } else {
                format!(
                    "{} fleet `{name}`: {errors} error(s), {warnings} warning(s)\n",
                    printer.out(Style::Error, "×")
                )
            };
            printer.data(&line);
        }
    }
    Ok(if errors == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// The `-o json` document; its field names are stable.
#[derive(Serialize)]
struct ValidateReport<'a> {
    file: String,
    fleet: Option<String>,
    valid: bool,
    errors: usize,
    warnings: usize,
    findings: Vec<FindingJson<'a>>,
}

#[derive(Serialize)]
struct FindingJson<'a> {
    rule: Rule,
    severity: Severity,
    line: Option<u32>,
    column: Option<u32>,
    message: &'a str,
    hint: &'a str,
}

impl<'a> From<&'a Finding> for FindingJson<'a> {
    fn from(f: &'a Finding) -> Self {
        Self {
            rule: f.rule,
            severity: f.severity,
            line: f.location.map(|l| l.line),
            column: f.location.map(|l| l.column),
            message: &f.message,
            hint: &f.hint,
        }
    }
}

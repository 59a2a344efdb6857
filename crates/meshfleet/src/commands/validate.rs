//! `meshfleet validate [PATH]`: every static rule, all findings at once.

use std::path::Path;

use meshfleet_core::diagnostic::Finding;
use meshfleet_core::fleet::LoadError;
use meshfleet_core::validate::check_file;
use serde_json::json;

use super::{ExitStatus, now, unreadable_fleet};
use crate::cli::OutputFormat;
use crate::printer::Printer;

pub fn run(path: &Path, output: OutputFormat, printer: Printer) -> anyhow::Result<ExitStatus> {
    let (file, text, fleet_name, findings, summary) = match check_file(path, now()) {
        Err(e @ (LoadError::Unreadable { .. } | LoadError::Ambiguous { .. })) => {
            return Err(unreadable_fleet(e));
        }
        Err(LoadError::Invalid { file, finding }) => {
            (file.path.clone(), file.text.clone(), None, vec![*finding], None)
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
        OutputFormat::Json => {
            let report = json!({
                "file": path_text,
                "fleet": fleet_name,
                "valid": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
            });
            printer.data(&format!("{}\n", serde_json::to_string_pretty(&report)?));
        }
        OutputFormat::Text => {
            printer.data(&printer.findings(&path_text, &text, &findings, true));
            let name = fleet_name.unwrap_or_else(|| path_text.clone());
            let line = if errors == 0 {
                let (clusters, links) = summary.unwrap_or_default();
                format!(
                    "{} fleet `{name}` is valid: {clusters} cluster(s), {links} link(s){}\n",
                    printer.paint_out("✓", "1;32"),
                    if warnings > 0 {
                        format!(", {warnings} warning(s)")
                    } else {
                        String::new()
                    }
                )
            } else {
                format!(
                    "{} fleet `{name}`: {errors} error(s), {warnings} warning(s)\n",
                    printer.paint_out("×", "1;31")
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

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "rule": f.rule,
        "severity": f.severity,
        "line": f.location.map(|l| l.line),
        "column": f.location.map(|l| l.column),
        "message": f.message,
        "hint": f.hint,
    })
}

//! `meshfleet import --context CTX... [--out PATH]`: a fleet file describing the mesh
//! that runs on the named contexts, and its anchor bundle; the report of what was
//! guessed and where the clusters disagree on stdout (`-o json` for scripts).
//!
//! The file is written even when the clusters disagree (marked at its top, exit 1), so
//! the user fixes it in place; it is never written over an existing file.

use std::time::Duration;

use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::fleet::draft::DraftError;
use meshfleet_core::live::import::{self, Adoption, ImportFinding, Severity};
use serde::Serialize;

use super::init::{default_name, fleet_file_target, sibling_fleet};
use super::{CommandError, ExitStatus, hinted, kubeconfigs, runtime};
use crate::cli::{GlobalArgs, ImportArgs, OutputFormat};
use crate::printer::{Printer, Style};

pub fn run(args: &ImportArgs, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = args.contexts.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(hinted(
            format!("context `{twice}` is given twice"),
            "pass each cluster's context once",
        ));
    }
    let path = fleet_file_target(&args.out);
    if let Some(refusal) = sibling_fleet(&path) {
        printer.error(&refusal, Some("pass another `--out`"));
        return Ok(ExitStatus::Failure);
    }
    if path.exists() {
        let e = DraftError::Exists(path.clone());
        printer.error(&format!("{e}; nothing was read"), e.hint().as_deref());
        return Ok(ExitStatus::Failure);
    }
    let timeout = Duration::from_secs(args.timeout);
    let kubeconfigs = kubeconfigs(global)?.with_timeout(timeout);
    let readings = runtime()?.block_on(import::read_all(&kubeconfigs, &args.contexts, timeout * 3));
    if readings.iter().all(Result::is_err) {
        for (context, error) in args.contexts.iter().zip(&readings) {
            if let Err(e) = error {
                printer.error(
                    &format!(
                        "cannot read context `{context}`: {}",
                        meshfleet_core::diagnostic::error_chain(e)
                    ),
                    Some(&e.hint_for(context, "read Namespaces, ConfigMaps, Services and Links")),
                );
            }
        }
        printer.status("no context could be read; nothing was written");
        return Ok(ExitStatus::Error);
    }
    let label = readings.iter().find_map(|r| r.as_ref().ok()?.fleet_label.clone());
    let name = args.name.clone().or(label).unwrap_or_else(|| default_name(&path));
    let adoption = import::compose(Some(&name), &args.contexts, &readings);
    let dir = meshfleet_core::fleet::atomic::parent_dir(&path).to_path_buf();
    let anchor = dir.join(&adoption.anchor_file);
    if let Some(pem) = &adoption.anchor_pem
        && anchor.exists()
        && std::fs::read_to_string(&anchor).ok().as_deref() != Some(pem.as_str())
    {
        printer.error(
            &format!(
                "`{}` exists and holds other anchors than the clusters use; nothing was written",
                anchor.display()
            ),
            Some("move it away (or pass another `--out` folder) and import again"),
        );
        return Ok(ExitStatus::Failure);
    }
    match adoption.draft.write_new(&path) {
        Ok(()) => {}
        Err(e @ DraftError::Exists(_)) => {
            printer.error(&e.to_string(), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(pem) = &adoption.anchor_pem
        && !anchor.exists()
    {
        meshfleet_core::fleet::atomic::publish_new(
            &anchor,
            pem.as_bytes(),
            meshfleet_core::fleet::atomic::PUBLIC_MODE,
        )
        .map_err(|e| {
            hinted(
                format!("cannot write `{}`: {e}", anchor.display()),
                "check the folder's permissions",
            )
        })?;
    }
    match global.output {
        OutputFormat::Json => printer.json(&ImportReport::new(&adoption, &path, &anchor))?,
        OutputFormat::Text => printer.data(&report_text(&adoption, printer)),
    }
    let problems = adoption
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    printer.status(&format!(
        "wrote `{}` ({} cluster(s), {} link(s)){}",
        path.display(),
        adoption.clusters.len(),
        adoption.links.iter().filter(|l| l.1.is_some()).count(),
        if adoption.anchor_pem.is_some() {
            format!(" and `{}`", anchor.display())
        } else {
            String::new()
        }
    ));
    if problems > 0 {
        printer.error(
            &format!("{problems} problem(s): the file is marked NOT READY at its top"),
            Some("fix them in the clusters or the file, then `meshfleet validate`"),
        );
        Ok(ExitStatus::Failure)
    } else {
        printer.status(&format!(
            "next: `meshfleet validate {0}`, `meshfleet render {0} --out gitops` and compare it with what runs (`meshfleet check`)",
            path.display()
        ));
        Ok(ExitStatus::Success)
    }
}

fn report_text(adoption: &Adoption, printer: Printer) -> String {
    let mut out = String::new();
    for (context, name) in &adoption.clusters {
        let links: Vec<String> = adoption
            .links
            .iter()
            .filter(|l| &l.0 == name)
            .map(|(_, target, link, legacy)| {
                format!(
                    "`{link}` -> {}{}",
                    target
                        .as_deref()
                        .map_or_else(|| "?".to_string(), |t| format!("`{t}`")),
                    if *legacy { " (legacy)" } else { "" }
                )
            })
            .collect();
        out.push_str(&format!(
            "cluster `{name}` (context `{context}`): {}\n",
            if links.is_empty() {
                "no links".to_string()
            } else {
                format!("links {}", links.join(", "))
            }
        ));
    }
    for f in &adoption.findings {
        let (mark, style) = match f.severity {
            Severity::Problem => ("× problem", Style::Error),
            Severity::Guess => ("‼ guess", Style::Warning),
        };
        out.push_str(&format!(
            "{} {}\n  hint: {}\n",
            printer.out(style, mark),
            import::compose::describe(f),
            f.hint
        ));
    }
    out
}

/// The `-o json` document; its field names are stable.
#[derive(Serialize)]
struct ImportReport<'a> {
    file: String,
    anchor: Option<String>,
    ready: bool,
    clusters: Vec<ClusterJson<'a>>,
    links: Vec<LinkJson<'a>>,
    findings: &'a [ImportFinding],
}

#[derive(Serialize)]
struct ClusterJson<'a> {
    name: &'a str,
    context: &'a str,
}

#[derive(Serialize)]
struct LinkJson<'a> {
    source: &'a str,
    target: Option<&'a str>,
    name: &'a str,
    legacy: bool,
}

impl<'a> ImportReport<'a> {
    fn new(adoption: &'a Adoption, path: &std::path::Path, anchor: &std::path::Path) -> Self {
        Self {
            file: path.display().to_string(),
            anchor: adoption.anchor_pem.as_ref().map(|_| anchor.display().to_string()),
            ready: !adoption.has_problems(),
            clusters: adoption
                .clusters
                .iter()
                .map(|(context, name)| ClusterJson { name, context })
                .collect(),
            links: adoption
                .links
                .iter()
                .map(|(source, target, name, legacy)| LinkJson {
                    source,
                    target: target.as_deref(),
                    name,
                    legacy: *legacy,
                })
                .collect(),
            findings: &adoption.findings,
        }
    }
}

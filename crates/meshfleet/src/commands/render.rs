//! `meshfleet render [PATH] --out DIR [--check]`.
//!
//! With `-o json`, what was written (or, with `--check`, what differs) is a JSON
//! document on stdout instead of the text summary.

mod out_dir;

use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::fleet::model::{Engine, InstallMethod};
use meshfleet_core::render::{self, Difference, RenderError, TreeError};
use serde::Serialize;

use super::{CommandError, ExitStatus, load_plan};
use crate::cli::{OutputFormat, RenderArgs};
use crate::printer::Printer;

/// `render --check -o json`; field names are stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckJson<'a> {
    out: String,
    up_to_date: bool,
    files: usize,
    added: Vec<&'a str>,
    changed: Vec<ChangedJson<'a>>,
    removed: Vec<&'a str>,
}

/// A file `render` would change, with its unified diff.
#[derive(Serialize)]
struct ChangedJson<'a> {
    path: &'a str,
    diff: &'a str,
}

/// `render -o json`; field names are stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WrittenJson {
    out: String,
    files: usize,
    clusters: usize,
    engine: &'static str,
    install_method: &'static str,
}

fn check_json<'a>(out: &std::path::Path, files: usize, diffs: &'a [Difference]) -> CheckJson<'a> {
    let mut json = CheckJson {
        out: out.display().to_string(),
        up_to_date: diffs.is_empty(),
        files,
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
    };
    for d in diffs {
        match d {
            Difference::Added(p) => json.added.push(p),
            Difference::Removed(p) => json.removed.push(p),
            Difference::Changed(p, diff) => json.changed.push(ChangedJson { path: p, diff }),
        }
    }
    json
}

/// How many changed files `--check` shows a diff of.
const DIFFS_SHOWN: usize = 5;

pub fn run(args: &RenderArgs, output: OutputFormat, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    if !args.any_dir
        && let Some(why) = out_dir::misplaced(&args.out, &checked.source.dir(), &plan.gitops.path)
    {
        printer.error(
            &format!("{why}; nothing was written"),
            Some(&format!(
                "render into `{}`, or set `spec.gitops.repository.path` to where `{}` is inside the repository, or pass `--any-dir` to write a copy elsewhere on purpose",
                why.expected.display(),
                args.out.display()
            )),
        );
        return Ok(ExitStatus::Failure);
    }
    // With SOPS, the encrypted Secrets `secrets sync` wrote into DIR are kept.
    let sealed = render::SealedFiles::read(&plan, &args.out).map_err(TreeError::Io)?;
    let tree = match render::render_with(&plan, &sealed) {
        Ok(tree) => tree,
        Err(e @ RenderError::SecretInOutput { .. }) => {
            printer.error(&format!("{e}; nothing was written"), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    let out = &args.out;
    if args.check {
        let diffs = tree.differences(out)?;
        if output == OutputFormat::Json {
            printer.json(&check_json(out, tree.files.len(), &diffs))?;
            return Ok(if diffs.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            });
        }
        if diffs.is_empty() {
            printer.status(&format!(
                "`{}` is up to date ({} files)",
                out.display(),
                tree.files.len()
            ));
            return Ok(ExitStatus::Success);
        }
        let (mut added, mut changed, mut removed) = (0, 0, 0);
        let mut listing = String::new();
        for d in &diffs {
            match d {
                Difference::Added(p) => {
                    added += 1;
                    listing.push_str(&format!("  + {p}\n"));
                }
                Difference::Removed(p) => {
                    removed += 1;
                    listing.push_str(&format!("  - {p}\n"));
                }
                Difference::Changed(p, _) => {
                    changed += 1;
                    listing.push_str(&format!("  ~ {p}\n"));
                }
            }
        }
        let mut text = format!(
            "`{}` differs from the fleet: {added} to add, {changed} to change, {removed} to remove\n{listing}",
            out.display()
        );
        for diff in diffs
            .iter()
            .filter_map(|d| {
                if let Difference::Changed(_, diff) = d {
                    Some(diff)
                } else {
                    None
                }
            })
            .take(DIFFS_SHOWN)
        {
            text.push('\n');
            text.push_str(diff);
        }
        if changed > DIFFS_SHOWN {
            text.push_str(&format!(
                "\n... and {} more changed file(s)\n",
                changed - DIFFS_SHOWN
            ));
        }
        printer.data(&text);
        printer.status(&format!(
            "hint: run `meshfleet render {} --out {}` and commit the result",
            args.path.display(),
            out.display()
        ));
        return Ok(ExitStatus::Failure);
    }
    match tree.write_atomically(out) {
        Ok(()) => {}
        Err(e @ TreeError::ForeignDirectory(_)) => {
            printer.error(&format!("{e}; nothing was written"), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    }
    let written = WrittenJson {
        out: out.display().to_string(),
        files: tree.files.len(),
        clusters: plan.clusters.len(),
        engine: match plan.gitops.engine {
            Engine::Flux => "flux",
            Engine::Argocd => "argocd",
        },
        install_method: match plan.gitops.install_method {
            InstallMethod::Helm => "helm",
            InstallMethod::Jobs => "jobs",
        },
    };
    match output {
        OutputFormat::Json => printer.json(&written)?,
        OutputFormat::Text => printer.status(&format!(
            "rendered {} files for {} cluster(s) ({}, {}) into `{}`",
            written.files, written.clusters, written.engine, written.install_method, written.out
        )),
    }
    Ok(ExitStatus::Success)
}

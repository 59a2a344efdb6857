//! `meshfleet render [PATH] --out DIR [--check]`.

use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::render::{self, Difference, RenderError, TreeError};

use super::{CommandError, ExitStatus, load_plan};
use crate::cli::RenderArgs;
use crate::printer::Printer;

/// How many changed files `--check` shows a diff of.
const DIFFS_SHOWN: usize = 5;

pub fn run(args: &RenderArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (_, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
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
    printer.status(&format!(
        "rendered {} files for {} cluster(s) ({}, {}) into `{}`",
        tree.files.len(),
        plan.clusters.len(),
        match plan.gitops.engine {
            meshfleet_core::fleet::model::Engine::Flux => "flux",
            meshfleet_core::fleet::model::Engine::Argocd => "argocd",
        },
        match plan.gitops.install_method {
            meshfleet_core::fleet::model::InstallMethod::Helm => "helm",
            meshfleet_core::fleet::model::InstallMethod::Jobs => "jobs",
        },
        out.display()
    ));
    Ok(ExitStatus::Success)
}

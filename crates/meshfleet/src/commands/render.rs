//! `meshfleet render [PATH] --out DIR [--check]`.

use meshfleet_core::render::{self, Difference, RenderError, TreeError};

use super::{ExitStatus, hinted, load_plan};
use crate::cli::RenderArgs;
use crate::printer::Printer;

/// How many changed files `--check` shows a diff of.
const DIFFS_SHOWN: usize = 5;

pub fn run(args: &RenderArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let (_, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let tree = match render::render(&plan) {
        Ok(tree) => tree,
        Err(RenderError::SecretInOutput { file, what }) => {
            printer.error(
                &format!("refusing to render: `{file}` would contain {what}; nothing was written"),
                Some("rendered trees hold public material only; keep keys and tokens in Vault (`meshfleet secrets sync`)"),
            );
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
        Err(TreeError::ForeignDirectory(dir)) => {
            printer.error(
                &format!(
                    "`{}` is not empty and was not rendered by meshfleet; nothing was written",
                    dir.display()
                ),
                Some("render into a new or empty folder (it is replaced as a whole on every render)"),
            );
            return Ok(ExitStatus::Failure);
        }
        Err(TreeError::NotADirectory(path)) => {
            return Err(hinted(
                format!("`{}` exists and is not a folder", path.display()),
                "choose another `--out`",
            ));
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

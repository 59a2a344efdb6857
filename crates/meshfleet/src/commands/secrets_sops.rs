//! `meshfleet secrets sync [PATH] --out DIR [--age-key FILE] [--dry-run]` for a fleet with
//! `spec.secrets.sops`, and `meshfleet secrets age-key --out FILE`.
//!
//! The library (`meshfleet_core::live::secrets::sealed`) computes, encrypts and writes;
//! this file finds the operator's age key the way `sops` does and reports. The report
//! holds ids, file paths and errors only: no value or key can reach it. Exit 0 when
//! every file is written or unchanged, 2 when any could not be (a value not computable
//! now leaves its file as it was and the others are written; a file the operator cannot
//! open writes nothing).

use std::path::PathBuf;

use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::identity::sops::AgeIdentities;
use meshfleet_core::keys::KeyFolder;
use meshfleet_core::live::secrets::SyncOptions;
use meshfleet_core::live::secrets::sealed::{self, SealOutcome, SealReport};
use serde::Serialize;

use super::{CommandError, ExitStatus, kubeconfigs, load_plan, runtime};
use crate::cli::{GlobalArgs, OutputFormat, SecretsAgeKeyArgs, SecretsSyncArgs};
use crate::printer::{Printer, Style};

/// `--age-key`, else `SOPS_AGE_KEY_FILE`, else sops's default location.
pub(super) fn operator_key_file(arg: Option<&PathBuf>) -> PathBuf {
    if let Some(path) = arg {
        return path.clone();
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    config.join("sops/age/keys.txt")
}

pub fn sync(
    args: &SecretsSyncArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let (checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let out = args.out.clone().unwrap_or_default();
    let keys = args
        .keys
        .clone()
        .map_or_else(|| KeyFolder::default_for(&checked.source.dir()), KeyFolder::new);
    let identities = AgeIdentities::read_key_file(&operator_key_file(args.age_key.as_ref()))?;
    let has_links = plan.clusters.iter().any(|c| !c.outgoing.is_empty());
    let kubeconfigs = if has_links {
        Some(kubeconfigs(global)?)
    } else {
        None
    };
    let options = SyncOptions {
        dry_run: args.dry_run,
    };
    tracing::info!(out = %out.display(), dry_run = args.dry_run, "secrets sync (sops)");
    let report = runtime()?.block_on(sealed::sync(
        &plan,
        &keys,
        kubeconfigs.as_ref(),
        &identities,
        &out,
        &options,
    ))?;
    match global.output {
        OutputFormat::Json => printer.json(&report_json(&report, args.dry_run))?,
        OutputFormat::Text => printer.data(&report_text(&report, &out, args.dry_run, printer)),
    }
    let failed = report.failed();
    if failed == 0 {
        return Ok(ExitStatus::Success);
    }
    let what = if report.written {
        "they were left as they were; the others were written (commit them, then run it again)"
    } else {
        "nothing was written"
    };
    printer.error(
        &format!(
            "{failed} of {} files could not be sealed; {what}",
            report.entries.len()
        ),
        None,
    );
    Ok(ExitStatus::Error)
}

fn report_text(report: &SealReport, out: &std::path::Path, dry_run: bool, printer: Printer) -> String {
    let mut text = String::new();
    let (mut changed, mut unchanged, mut rotating) = (0, 0, 0);
    for e in &report.entries {
        let (id, path) = (&e.id, &e.path);
        match &e.outcome {
            SealOutcome::Changed(action) => {
                changed += 1;
                let verb = if dry_run {
                    format!("would {}", action.as_str())
                } else {
                    format!("{}d", action.as_str())
                };
                text.push_str(&format!(
                    "{} {path} ({id}): {verb} (values encrypted)\n",
                    printer.out(Style::Success, "✓")
                ));
            }
            SealOutcome::Unchanged => {
                unchanged += 1;
                text.push_str(&format!(
                    "{} {path} ({id}): unchanged\n",
                    printer.out(Style::Success, "✓")
                ));
            }
            SealOutcome::Rotating => {
                rotating += 1;
                text.push_str(&format!(
                    "{} {path} ({id}): left alone: a rotation is moving it\n",
                    printer.out(Style::Pending, "~")
                ));
            }
            SealOutcome::Failed(error) => text.push_str(&format!(
                "{} {path} ({id}): {error}\n  {}: {}\n",
                printer.out(Style::Error, "×"),
                printer.out(Style::Hint, "hint"),
                error.hint().unwrap_or_default()
            )),
        }
    }
    let done = if report.written {
        format!("written into `{}`; commit it", out.display())
    } else if dry_run {
        "dry run: nothing was written".into()
    } else if report.failed() > 0 {
        "nothing was written".into()
    } else {
        "nothing to write".into()
    };
    text.push_str(&format!(
        "{} files: {changed} {}, {unchanged} unchanged, {rotating} rotating, {} failed; {done}\n",
        report.entries.len(),
        if dry_run { "to write" } else { "written" },
        report.failed()
    ));
    text
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SealJson<'a> {
    dry_run: bool,
    written: bool,
    entries: Vec<SealEntryJson<'a>>,
}

#[derive(Serialize)]
struct SealEntryJson<'a> {
    id: &'a str,
    path: &'a str,
    status: &'static str,
    action: Option<&'static str>,
    error: Option<String>,
    hint: Option<String>,
}

fn report_json(report: &SealReport, dry_run: bool) -> SealJson<'_> {
    SealJson {
        dry_run,
        written: report.written,
        entries: report
            .entries
            .iter()
            .map(|e| {
                let (status, action, error, hint) = match &e.outcome {
                    SealOutcome::Changed(a) => (
                        if dry_run { "planned" } else { "written" },
                        Some(a.as_str()),
                        None,
                        None,
                    ),
                    SealOutcome::Unchanged => ("unchanged", None, None, None),
                    SealOutcome::Rotating => ("rotating", None, None, None),
                    SealOutcome::Failed(err) => ("failed", None, Some(err.to_string()), err.hint()),
                };
                SealEntryJson {
                    id: &e.id,
                    path: &e.path,
                    status,
                    action,
                    error,
                    hint,
                }
            })
            .collect(),
    }
}

/// `secrets age-key --out FILE`: a new X25519 age key, 0600, never overwriting; prints
/// the recipient only.
pub fn age_key(args: &SecretsAgeKeyArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let ids = AgeIdentities::generate();
    ids.write_new_key_file(&args.out)?;
    let recipient = ids.recipients()[0].to_string();
    printer.data(&format!("{recipient}\n"));
    printer.status(&format!(
        "wrote the private key to `{}` (0600; keep it out of git); its recipient is above",
        args.out.display()
    ));
    Ok(ExitStatus::Success)
}

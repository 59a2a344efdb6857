//! `meshfleet secrets sync [PATH] [--dry-run] [--rotate] [--keys DIR]`: put each link's
//! kubeconfig and the identity keys into Vault, where the rendered ExternalSecrets read
//! them.
//!
//! The library (`meshfleet_core::live::secrets`) computes and writes; this file resolves
//! the settings (fleet, key folder, Vault environment, kubeconfig) and reports. The
//! report holds entry names, versions and errors only: no value can reach it, so no
//! value can be printed. Exit 0 when every entry is written or unchanged, 2 when any
//! could not be (each failed entry has its reason and a `hint:`).

use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::keys::KeyFolder;
use meshfleet_core::live::secrets::{self, Action, EntryKind, Outcome, SyncEntry, SyncOptions, SyncReport};
use meshfleet_core::live::vault::VaultSettings;
use serde::Serialize;

use super::{CommandError, ExitStatus, kubeconfigs, load_plan, runtime};
use crate::cli::{GlobalArgs, OutputFormat, SecretsSyncArgs};
use crate::printer::{Printer, Style};

pub fn sync(
    args: &SecretsSyncArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let (checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let keys = args
        .keys
        .clone()
        .map_or_else(|| KeyFolder::default_for(&checked.source.dir()), KeyFolder::new);
    let vault_plan = plan.vault("`secrets sync` without `--out`")?;
    let vault = VaultSettings::from_env(&vault_plan.server)?;
    let has_links = plan.clusters.iter().any(|c| !c.outgoing.is_empty());
    let kubeconfigs = if has_links {
        Some(kubeconfigs(global)?)
    } else {
        None
    };
    let options = SyncOptions {
        dry_run: args.dry_run,
    };
    tracing::info!(address = %vault.address, mount = %vault_plan.mount, dry_run = args.dry_run, "secrets sync");
    let report = runtime()?.block_on(secrets::sync(
        &plan,
        &keys,
        kubeconfigs.as_ref(),
        &vault,
        &options,
    ));
    match global.output {
        OutputFormat::Json => printer.json(&report_json(&report, &options))?,
        OutputFormat::Text => printer.data(&report_text(&report, &options, printer)),
    }
    let failed = report.failed();
    if failed == 0 {
        return Ok(ExitStatus::Success);
    }
    printer.error(
        &format!(
            "{failed} of {} entries could not be synced; nothing was written for them",
            report.entries.len()
        ),
        None,
    );
    Ok(ExitStatus::Error)
}

/// Counts for the summary line and the JSON `summary`.
#[derive(Default)]
struct Counts {
    written: usize,
    unchanged: usize,
    rotating: usize,
    create: usize,
    update: usize,
    failed: usize,
}

fn counts(report: &SyncReport) -> Counts {
    let mut counts = Counts::default();
    for entry in &report.entries {
        match &entry.outcome {
            Outcome::Written { .. } => counts.written += 1,
            Outcome::Unchanged { .. } => counts.unchanged += 1,
            Outcome::Rotating => counts.rotating += 1,
            Outcome::Planned {
                action: Action::Create,
                ..
            } => counts.create += 1,
            Outcome::Planned { .. } => counts.update += 1,
            Outcome::Failed(_) => counts.failed += 1,
        }
    }
    counts
}

/// One line per entry (two for a failure: the reason and its hint), then a summary.
fn report_text(report: &SyncReport, options: &SyncOptions, printer: Printer) -> String {
    let mut out = String::new();
    for entry in &report.entries {
        out.push_str(&entry_text(entry, printer));
    }
    let c = counts(report);
    let place = format!("Vault `{}`, mount `{}`", report.address, report.mount);
    let rotating = if c.rotating > 0 {
        format!(", {} left to the rotation in progress", c.rotating)
    } else {
        String::new()
    };
    if options.dry_run {
        out.push_str(&format!(
            "dry run ({place}): {} to create, {} to update, {} unchanged{rotating}, {} failed; nothing was written\n",
            c.create, c.update, c.unchanged, c.failed
        ));
    } else {
        out.push_str(&format!(
            "{} entries ({place}): {} written, {} unchanged{rotating}, {} failed\n",
            report.entries.len(),
            c.written,
            c.unchanged,
            c.failed
        ));
    }
    out
}

fn entry_text(entry: &SyncEntry, printer: Printer) -> String {
    let id = &entry.id;
    match &entry.outcome {
        Outcome::Written { version, .. } => format!(
            "{} {id}: written (version {version})\n",
            printer.out(Style::Success, "✓")
        ),
        Outcome::Rotating => format!(
            "{} {id}: left alone: a rotation is moving it (`meshfleet secrets sync --rotate` continues it)\n",
            printer.out(Style::Pending, "~")
        ),
        Outcome::Unchanged { version } => {
            format!(
                "{} {id}: unchanged (version {version})\n",
                printer.out(Style::Success, "✓")
            )
        }
        Outcome::Planned { action, changed } => {
            let mark = if *action == Action::Create { "+" } else { "~" };
            format!(
                "{} {id}: would {} {} (values redacted)\n",
                printer.out(Style::Pending, mark),
                action.as_str(),
                changed.join(", ")
            )
        }
        Outcome::Failed(error) => format!(
            "{} {id}: {error}\n  {}: {}\n",
            printer.out(Style::Error, "×"),
            printer.out(Style::Hint, "hint"),
            error.hint().unwrap_or_default()
        ),
    }
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::TrustAnchor => "trust-anchor",
        EntryKind::Issuer => "issuer",
        EntryKind::Credentials => "credentials",
    }
}

/// The `-o json` document. Field names and the `status`, `action` and `error.code`
/// values are stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncJson<'a> {
    dry_run: bool,
    rotate: bool,
    vault: VaultJson<'a>,
    entries: Vec<EntryJson<'a>>,
    summary: SummaryJson,
}

#[derive(Serialize)]
struct VaultJson<'a> {
    address: &'a str,
    mount: &'a str,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    id: &'a str,
    kind: &'static str,
    path: &'a str,
    keys: &'static [&'static str],
    status: &'static str,
    action: Option<&'static str>,
    version: Option<u64>,
    rotated: bool,
    changed: &'a [String],
    error: Option<ErrorJson>,
}

#[derive(Serialize)]
struct ErrorJson {
    code: &'static str,
    message: String,
    hint: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryJson {
    total: usize,
    written: usize,
    unchanged: usize,
    rotating: usize,
    to_create: usize,
    to_update: usize,
    failed: usize,
}

fn report_json<'a>(report: &'a SyncReport, options: &SyncOptions) -> SyncJson<'a> {
    let entries = report
        .entries
        .iter()
        .map(|entry| {
            let (status, action, version, rotated, changed, error): (_, _, _, _, &[String], _) =
                match &entry.outcome {
                    Outcome::Written { action, version } => {
                        ("written", Some(action.as_str()), Some(*version), false, &[], None)
                    }
                    Outcome::Rotating => ("rotating", None, None, false, &[], None),
                    Outcome::Unchanged { version } => ("unchanged", None, Some(*version), false, &[], None),
                    Outcome::Planned { action, changed } => {
                        ("planned", Some(action.as_str()), None, false, changed, None)
                    }
                    Outcome::Failed(e) => (
                        "failed",
                        None,
                        None,
                        false,
                        &[],
                        Some(ErrorJson {
                            code: e.code(),
                            message: e.to_string(),
                            hint: e.hint(),
                        }),
                    ),
                };
            EntryJson {
                id: &entry.id,
                kind: kind_name(entry.kind),
                path: &entry.path,
                keys: entry.kind.value_names(),
                status,
                action,
                version,
                rotated,
                changed,
                error,
            }
        })
        .collect();
    let c = counts(report);
    SyncJson {
        dry_run: options.dry_run,
        rotate: false,
        vault: VaultJson {
            address: &report.address,
            mount: &report.mount,
        },
        entries,
        summary: SummaryJson {
            total: report.entries.len(),
            written: c.written,
            unchanged: c.unchanged,
            rotating: c.rotating,
            to_create: c.create,
            to_update: c.update,
            failed: c.failed,
        },
    }
}

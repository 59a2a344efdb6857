//! `meshfleet secrets sync [PATH] [--dry-run] [--rotate] [--keys DIR]`: put each link's
//! kubeconfig and the identity keys into Vault, where the rendered ExternalSecrets read
//! them.
//!
//! The library (`meshfleet_core::live::secrets`) computes and writes; this file resolves
//! the settings (fleet, key folder, Vault environment, kubeconfig) and reports. The
//! report holds entry names, versions and errors only: no value can reach it, so no
//! value can be printed. Exit 0 when every entry is written or unchanged, 2 when any
//! could not be (each failed entry has its reason and a `hint:`).

use meshfleet_core::keys::KeyFolder;
use meshfleet_core::live::secrets::{self, Action, EntryKind, Outcome, SyncEntry, SyncOptions, SyncReport};
use meshfleet_core::live::vault::VaultSettings;
use serde_json::{Value, json};

use super::{ExitStatus, hinted, kubeconfigs, load_plan, runtime};
use crate::cli::{GlobalArgs, OutputFormat, SecretsSyncArgs};
use crate::printer::Printer;

pub fn sync(args: &SecretsSyncArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let (checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let keys = args
        .keys
        .clone()
        .map_or_else(|| KeyFolder::default_for(&checked.source.dir()), KeyFolder::new);
    let vault = VaultSettings::from_env(&plan.vault.server).map_err(|e| hinted(e.to_string(), e.hint()))?;
    let has_links = plan.clusters.iter().any(|c| !c.outgoing.is_empty());
    let kubeconfigs = if has_links {
        Some(kubeconfigs(global)?)
    } else {
        None
    };
    let options = SyncOptions {
        dry_run: args.dry_run,
        rotate: args.rotate,
        ..SyncOptions::default()
    };
    tracing::info!(address = %vault.address, mount = %plan.vault.mount, dry_run = args.dry_run, rotate = args.rotate, "secrets sync");
    let report = runtime()?.block_on(secrets::sync(
        &plan,
        &keys,
        kubeconfigs.as_ref(),
        &vault,
        &options,
    ));
    match global.output {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&report_json(&report, &options))?;
            text.push('\n');
            printer.data(&text);
        }
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
    if options.dry_run {
        out.push_str(&format!(
            "dry run ({place}): {} to create, {} to update, {} unchanged, {} failed; nothing was written\n",
            c.create, c.update, c.unchanged, c.failed
        ));
    } else {
        out.push_str(&format!(
            "{} entries ({place}): {} written, {} unchanged, {} failed\n",
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
        Outcome::Written { version, rotated, .. } => {
            let what = if *rotated {
                "written with a new token"
            } else {
                "written"
            };
            format!(
                "{} {id}: {what} (version {version})\n",
                printer.paint_out("✓", "32")
            )
        }
        Outcome::Unchanged { version } => {
            format!(
                "{} {id}: unchanged (version {version})\n",
                printer.paint_out("✓", "32")
            )
        }
        Outcome::Planned {
            action,
            changed,
            rotate,
        } => {
            let mark = if *action == Action::Create { "+" } else { "~" };
            let rotation = if *rotate { ", after rotating the token" } else { "" };
            format!(
                "{} {id}: would {} {} (values redacted{rotation})\n",
                printer.paint_out(mark, "33"),
                action.as_str(),
                changed.join(", ")
            )
        }
        Outcome::Failed(error) => format!(
            "{} {id}: {error}\n  {}: {}\n",
            printer.paint_out("×", "31"),
            printer.paint_out("hint", "1;36"),
            error.hint()
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
fn report_json(report: &SyncReport, options: &SyncOptions) -> Value {
    let entries: Vec<Value> = report
        .entries
        .iter()
        .map(|entry| {
            let (status, action, version, rotated, changed, error) = match &entry.outcome {
                Outcome::Written {
                    action,
                    version,
                    rotated,
                } => (
                    "written",
                    Some(action.as_str()),
                    Some(*version),
                    *rotated,
                    vec![],
                    None,
                ),
                Outcome::Unchanged { version } => ("unchanged", None, Some(*version), false, vec![], None),
                Outcome::Planned {
                    action,
                    changed,
                    rotate,
                } => (
                    "planned",
                    Some(action.as_str()),
                    None,
                    *rotate,
                    changed.clone(),
                    None,
                ),
                Outcome::Failed(e) => (
                    "failed",
                    None,
                    None,
                    false,
                    vec![],
                    Some(json!({"code": e.code(), "message": e.to_string(), "hint": e.hint()})),
                ),
            };
            json!({
                "id": entry.id,
                "kind": kind_name(entry.kind),
                "path": entry.path,
                "keys": entry.kind.value_names(),
                "status": status,
                "action": action,
                "version": version,
                "rotated": rotated,
                "changed": changed,
                "error": error,
            })
        })
        .collect();
    let c = counts(report);
    json!({
        "dryRun": options.dry_run,
        "rotate": options.rotate,
        "vault": {"address": report.address, "mount": report.mount},
        "entries": entries,
        "summary": {
            "total": report.entries.len(),
            "written": c.written,
            "unchanged": c.unchanged,
            "toCreate": c.create,
            "toUpdate": c.update,
            "failed": c.failed,
        },
    })
}

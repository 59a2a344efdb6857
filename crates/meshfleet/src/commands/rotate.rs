//! `meshfleet trust rotate start|status|next|abort [PATH]`: a fleet-wide trust anchor
//! rotation. The state lives in the fleet file (`spec.identity.rotation`); each step
//! writes files only (bundle, fleet file, key folder), all or nothing, and says what to
//! commit, sync or restart next. `next` first reads every cluster and refuses (exit 1)
//! while one is not ready. The one step that touches Vault is the end of `retire`: it
//! destroys the KV v2 versions holding the retired anchor's private key (and its
//! issuers') before it writes anything, so a rerun after an interruption finishes it;
//! `--keep-retired-key` skips that. `status` says whether such versions remain.

use std::path::Path;
use std::time::Duration;

use meshfleet_core::anchor_rotation::{self, AnchorRotation, Step, StepError, StepInput, short};
use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::fleet::model::{AnchorRotationPhase, IssuerKind};
use meshfleet_core::keys::KeyFolder;
use meshfleet_core::live::anchor_rotation::{self as live, RotationStatus};
use meshfleet_core::live::retired_keys::{self, RetiredKeys};
use meshfleet_core::live::vault::{KvClient, VaultError, VaultSettings};
use meshfleet_core::plan::FleetPlan;
use meshfleet_core::render::stages::{ISSUER_SECRET, TRUST_ANCHOR_SECRET};

use super::{CommandError, ExitStatus, kubeconfigs, load_plan, now, runtime};
use crate::cli::{GlobalArgs, OutputFormat, RotateCommand, RotateStatusArgs};
use crate::printer::{Printer, Style};

/// `trust rotate status`: exit 0 when nothing blocks `next`, 1 when something does, 2
/// when no cluster could be read.
pub fn status(
    args: &RotateStatusArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let (_, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let retired = runtime()?.block_on(read_retired_keys(&plan));
    if plan.identity.rotation.is_none() {
        if global.output == OutputFormat::Json {
            printer.json(&serde_json::json!({
                "inProgress": false,
                "retiredKeys": retired_json(&retired),
            }))?;
        } else {
            printer.data(retired_text(&retired, printer).trim_start());
        }
        printer.status("no trust anchor rotation is in progress");
        printer.status("hint: start one with `meshfleet trust rotate start`");
        return Ok(ExitStatus::Success);
    }
    let kubeconfigs = kubeconfigs(global)?.with_timeout(Duration::from_secs(args.timeout));
    let Some(report) = runtime()?.block_on(live::status(&kubeconfigs, &plan)) else {
        return Ok(ExitStatus::Success);
    };
    print_status(&report, &plan, Some(&retired), global.output, printer, true)?;
    Ok(status_exit(&report))
}

/// What `status` found of retired private keys in Vault, or why it could not look.
type RetiredRead = Result<RetiredKeys, VaultError>;

/// The fleet's identity keys in Vault, classified against the bundle (reads only).
async fn read_retired_keys(plan: &FleetPlan) -> RetiredRead {
    // A fleet without Vault keeps no key versions there.
    let Some(vault) = &plan.vault else {
        return Ok(RetiredKeys::default());
    };
    let kv = KvClient::new(&VaultSettings::from_env(&vault.server)?, &vault.mount)?;
    retired_keys::find(&kv, plan).await
}

/// `vault kv destroy` of an entry's retired versions, for a hint.
fn destroy_command(entry: &retired_keys::RetiredKeyEntry) -> String {
    let versions: Vec<String> = entry.retired_versions.iter().map(u64::to_string).collect();
    format!("vault kv destroy -versions={} {}", versions.join(","), entry.path)
}

fn version_list(versions: &[u64]) -> String {
    versions.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// `retiredKeys` of `status -o json`: `status` is `none`, `remain` or `unknown` (stable).
fn retired_json(retired: &RetiredRead) -> serde_json::Value {
    match retired {
        Ok(found) => serde_json::json!({
            "status": if found.remain() { "remain" } else { "none" },
            "remaining": found.count(),
            "entries": found.entries,
            "error": null,
        }),
        Err(e) => serde_json::json!({
            "status": "unknown",
            "remaining": null,
            "entries": [],
            "error": {"code": e.code(), "message": e.to_string(), "hint": e.hint()},
        }),
    }
}

/// The text of `status`'s Vault section.
fn retired_text(retired: &RetiredRead, printer: Printer) -> String {
    let mut text = String::from("\nretired private keys in Vault\n");
    let found = match retired {
        Ok(found) => found,
        Err(e) => {
            text.push_str(&format!(
                "  {} retired-keys: cannot read Vault: {e}\n    {}: {}\n",
                printer.out(Style::Warning, "‼"),
                printer.out(Style::Hint, "hint"),
                e.hint().unwrap_or_default()
            ));
            return text;
        }
    };
    if found.entries.is_empty() {
        text.push_str(&format!(
            "  {} retired-keys: Vault holds no identity key of the fleet\n",
            printer.out(Style::Success, "✓")
        ));
    }
    for entry in &found.entries {
        let destroyed = if entry.destroyed_versions.is_empty() {
            String::new()
        } else {
            format!(
                "; destroyed: version(s) {}",
                version_list(&entry.destroyed_versions)
            )
        };
        if entry.retired_versions.is_empty() {
            text.push_str(&format!(
                "  {} retired-keys: `{}`: no earlier version holds a retired key (current version {}{destroyed})\n",
                printer.out(Style::Success, "✓"),
                entry.path,
                entry.current_version,
            ));
        } else {
            text.push_str(&format!(
                "  {} retired-keys: `{}`: version(s) {} still hold the private key of a retired anchor or issuer (current version {}{destroyed})\n    {}: destroy them: `{}`\n",
                printer.out(Style::Warning, "‼"),
                entry.path,
                version_list(&entry.retired_versions),
                entry.current_version,
                printer.out(Style::Hint, "hint"),
                destroy_command(entry),
            ));
        }
        if !entry.deleted_versions.is_empty() {
            text.push_str(&format!(
                "    note: version(s) {} of `{}` are deleted but not destroyed; meshfleet cannot read what they hold (`vault kv destroy` removes them for good)\n",
                version_list(&entry.deleted_versions),
                entry.path
            ));
        }
    }
    text
}

fn status_exit(report: &RotationStatus) -> ExitStatus {
    if !report.clusters.is_empty() && report.clusters.iter().all(|c| c.state.is_none()) {
        ExitStatus::Error
    } else if report.ready() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

fn print_status(
    report: &RotationStatus,
    plan: &FleetPlan,
    retired: Option<&RetiredRead>,
    output: OutputFormat,
    printer: Printer,
    summary: bool,
) -> Result<(), CommandError> {
    if output == OutputFormat::Json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            #[serde(rename = "inProgress")]
            in_progress: bool,
            ready: bool,
            #[serde(flatten)]
            report: &'a RotationStatus,
            #[serde(rename = "retiredKeys", skip_serializing_if = "Option::is_none")]
            retired_keys: Option<serde_json::Value>,
        }
        return printer.json(&Json {
            in_progress: true,
            ready: report.ready(),
            report,
            retired_keys: retired.map(retired_json),
        });
    }
    let mut text = format!(
        "trust anchor rotation, phase `{}` ({}): from {} to {}\n",
        report.phase,
        phase_meaning(report.phase),
        short(&report.from),
        short(&report.to)
    );
    for cluster in &report.clusters {
        text.push_str(&format!(
            "\n{} (context `{}`)\n",
            cluster.cluster, cluster.context
        ));
        for item in &cluster.done {
            text.push_str(&format!(
                "  {} {}: {}\n",
                printer.out(Style::Success, "✓"),
                item.id,
                item.message
            ));
        }
        for item in &cluster.blocking {
            text.push_str(&format!(
                "  {} {}: {}\n",
                printer.out(Style::Error, "×"),
                item.id,
                item.message
            ));
            for line in item.restarts.iter().flat_map(|r| r.lines()) {
                text.push_str(&format!("      {line}\n"));
            }
        }
    }
    if let Some(retired) = retired {
        text.push_str(&retired_text(retired, printer));
    }
    printer.data(&text);
    if !summary {
        return Ok(());
    }
    let blocked = report.clusters.iter().filter(|c| !c.blocking.is_empty()).count();
    if blocked == 0 {
        printer.status(&format!(
            "ready: every cluster is done with phase `{}`; `meshfleet trust rotate next` moves on",
            report.phase
        ));
    } else {
        printer.status(&format!(
            "not ready: {blocked} of {} cluster(s) block the next step (×); {}",
            report.clusters.len(),
            plan.identity
                .rotation
                .as_ref()
                .map_or("", |r| what_clears(r.phase))
        ));
    }
    Ok(())
}

fn phase_meaning(phase: &str) -> &'static str {
    match phase {
        "distribute" => "every cluster must trust both anchors",
        "issuers" => "the issuers move to the new anchor",
        "recertify" => "every proxy must get a certificate from a new issuer",
        _ => "the old anchor leaves every bundle",
    }
}

fn what_clears(phase: AnchorRotationPhase) -> &'static str {
    match phase {
        AnchorRotationPhase::Distribute => {
            "render and commit the bundle, let the GitOps engine apply it, then run the restarts listed"
        }
        AnchorRotationPhase::Issuers => {
            "sync the new issuer material (see what `next` printed), then check again"
        }
        AnchorRotationPhase::Recertify => "run the restarts listed",
        AnchorRotationPhase::Retire => {
            "render and commit the bundle of the new anchor alone, and let it apply"
        }
    }
}

/// `trust rotate start|next|abort`.
pub fn step(
    command: &RotateCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let (RotateCommand::Start(args) | RotateCommand::Next(args) | RotateCommand::Abort(args)) = command
    else {
        unreachable!("status is dispatched on its own")
    };
    let (checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let dir = checked.source.dir();
    let keys = args
        .keys
        .clone()
        .map_or_else(|| KeyFolder::default_for(&dir), KeyFolder::new);
    let anchor_path = meshfleet_core::validate::anchor_path(&dir, &checked.fleet);
    let input = StepInput {
        fleet_path: &checked.source.path,
        fleet_text: &checked.source.text,
        plan: &plan,
        anchor_path: &anchor_path,
        keys: &keys,
        now: now(),
    };
    if let RotateCommand::Next(_) = command
        && let Some(rotation) = &plan.identity.rotation
    {
        let kubeconfigs = kubeconfigs(global)?.with_timeout(Duration::from_secs(args.timeout));
        if let Some(report) = runtime()?.block_on(live::status(&kubeconfigs, &plan))
            && !report.ready()
        {
            print_status(&report, &plan, None, OutputFormat::Text, printer, false)?;
            printer.error(
                &format!(
                    "cannot leave phase `{}`: not every cluster is ready (nothing was written)",
                    rotation.phase.as_str()
                ),
                Some(what_clears(rotation.phase)),
            );
            return Ok(match status_exit(&report) {
                ExitStatus::Error => ExitStatus::Error,
                _ => ExitStatus::Failure,
            });
        }
    }
    let result = match command {
        RotateCommand::Start(_) => anchor_rotation::start(&input),
        RotateCommand::Next(_) => anchor_rotation::next(&input),
        RotateCommand::Abort(_) => anchor_rotation::abort(&input),
        RotateCommand::Status(_) => unreachable!("status is dispatched on its own"),
    };
    let step = match result {
        Ok(step) => step,
        Err(e @ (StepError::Identity(_) | StepError::Io(_))) => return Err(e.into()),
        Err(e) => {
            printer.error(&format!("{e} (nothing was written)"), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
    };
    let ends_retire = matches!(command, RotateCommand::Next(_))
        && plan
            .identity
            .rotation
            .as_ref()
            .is_some_and(|r| r.phase == AnchorRotationPhase::Retire);
    // Before any file is written: an interrupted run stays in `retire`, and its rerun
    // destroys what is left (already destroyed versions are no longer listed).
    if ends_retire && let Err(exit) = destroy_retired_keys(&plan, args, printer)? {
        return Ok(exit);
    }
    if !args.dry_run {
        step.changes.apply()?;
    }
    for change in &step.changes.0 {
        let what = if args.dry_run {
            format!("would {}", change.action())
        } else {
            change.done()
        };
        printer.status(&format!("{what}: {}", change.purpose));
    }
    if args.dry_run {
        printer.status("dry run: nothing was written");
        return Ok(ExitStatus::Success);
    }
    print_next(
        &step,
        &plan,
        &args.path,
        matches!(command, RotateCommand::Abort(_)),
        printer,
    );
    Ok(ExitStatus::Success)
}

/// The end of `retire`: destroy the Vault versions holding retired private keys (or,
/// with `--keep-retired-key`, say they are kept). `Err(exit)` when Vault could not be
/// used: nothing was written and the rotation stays in `retire`.
fn destroy_retired_keys(
    plan: &FleetPlan,
    args: &crate::cli::RotateArgs,
    printer: Printer,
) -> Result<Result<(), ExitStatus>, CommandError> {
    if args.keep_retired_key {
        printer.status(
            "kept (`--keep-retired-key`): the Vault versions holding the retired anchor's private key \
             (and its issuers') were not destroyed; `meshfleet trust rotate status` lists them",
        );
        return Ok(Ok(()));
    }
    let outcome = runtime()?.block_on(async {
        let Some(vault) = &plan.vault else {
            return Ok(RetiredKeys::default());
        };
        let kv = KvClient::new(&VaultSettings::from_env(&vault.server)?, &vault.mount)?;
        let found = retired_keys::find(&kv, plan).await?;
        if args.dry_run || !found.remain() {
            return Ok::<_, VaultError>(found);
        }
        retired_keys::destroy(&kv, plan, &found).await?;
        Ok(found)
    });
    let found = match outcome {
        Ok(found) => found,
        Err(e) => {
            printer.error(
                &format!(
                    "cannot destroy the retired anchor's private key in Vault: {e} (nothing was written; the rotation stays in `retire`)"
                ),
                Some(&format!(
                    "{}; then run `meshfleet trust rotate next` again, or pass `--keep-retired-key` to end the rotation and keep those versions",
                    e.hint().unwrap_or_default()
                )),
            );
            return Ok(Err(ExitStatus::Error));
        }
    };
    if plan.sops.is_some() {
        printer.status(
            "the fleet keeps no secret in Vault (SOPS): the retired anchor's private key is left only in git history, \
             encrypted for the clusters' and operators' age keys",
        );
    } else if !found.remain() {
        printer.status("no Vault version holds the retired anchor's private key (nothing to destroy)");
    }
    for entry in found.entries.iter().filter(|e| !e.retired_versions.is_empty()) {
        let what = if entry.id == "trust-anchor" {
            "the retired anchor's private key"
        } else {
            "the private key of an issuer the retired anchor signed"
        };
        printer.status(&format!(
            "{} version(s) {} of `{}` (they held {what}; current version {} kept)",
            if args.dry_run {
                "would destroy"
            } else {
                "destroyed"
            },
            version_list(&entry.retired_versions),
            entry.path,
            entry.current_version
        ));
    }
    Ok(Ok(()))
}

/// What the user does after a step.
fn print_next(step: &Step, plan: &FleetPlan, path: &Path, aborted: bool, printer: Printer) {
    let path = path.display();
    let render = format!("`meshfleet render {path} --out <tree>`, review and commit");
    let ns = &plan.linkerd.namespace;
    let Some(rotation) = &step.after else {
        printer.status(&format!(
            "{}: the fleet trusts only {}. next: {render} (the fleet file and bundle); \
             `meshfleet check {path}` confirms every cluster",
            if aborted {
                "the rotation is aborted"
            } else {
                "the rotation is over"
            },
            short(
                &plan
                    .identity
                    .rotation
                    .as_ref()
                    .map_or_else(|| plan.identity.anchors[0].sha256.clone(), signing_anchor)
            )
        ));
        return;
    };
    if let Some(new) = &step.new_anchor {
        printer.status(&format!(
            "new trust anchor {} (`{}`)",
            short(&new.sha256),
            new.subject
        ));
    }
    let sync_and_refresh = |what: &str, secret: &str| {
        if plan.sops.is_some() {
            // SOPS: sealed into the tree, applied by Flux once committed.
            return format!(
                "run `meshfleet secrets sync {path} --out <tree>` ({what} sealed into the tree), commit it, \
                 and let Flux apply `{ns}/{secret}` on every cluster"
            );
        }
        format!(
            "run `meshfleet secrets sync {path}` ({what} to Vault), then on every cluster make External Secrets \
             fetch it now: `kubectl --context <ctx> -n {ns} annotate externalsecret {secret} force-sync=$(date +%s) --overwrite`"
        )
    };
    let steps: Vec<String> = match rotation.phase {
        AnchorRotationPhase::Distribute => vec![
            render.clone(),
            "once every cluster applied it, restart the control plane and the meshed workloads (`trust rotate status` lists them)".into(),
            format!("`meshfleet trust rotate status {path}`, then `meshfleet trust rotate next {path}`"),
        ],
        AnchorRotationPhase::Issuers => match plan.identity.issuer {
            IssuerKind::CertManager => vec![
                sync_and_refresh("the new signing anchor's key pair", TRUST_ANCHOR_SECRET),
                format!(
                    "make cert-manager re-issue the issuer: `cmctl renew -n {ns} {ISSUER_SECRET}` (or delete the Secret `{ns}/{ISSUER_SECRET}`)"
                ),
                format!("commit the fleet file, then `meshfleet trust rotate status {path}`"),
            ],
            IssuerKind::Vault => vec![
                sync_and_refresh("the new issuers", ISSUER_SECRET),
                format!("commit the fleet file, then `meshfleet trust rotate status {path}`"),
            ],
        },
        AnchorRotationPhase::Recertify => vec![
            "once the identity controller loaded the new issuer (`issuer-loaded` in `trust rotate status`), restart every meshed workload so that its proxy gets a certificate of the new chain (`trust rotate status` lists the restarts per cluster)".into(),
            format!("commit the fleet file, then `meshfleet trust rotate next {path}`"),
        ],
        AnchorRotationPhase::Retire => vec![
            format!("{render}: the bundle now holds only the new anchor"),
            format!("once every cluster applied it, `meshfleet trust rotate next {path}` ends the rotation"),
        ],
    };
    printer.status(&format!("phase is now `{}`; next:", rotation.phase.as_str()));
    for (i, line) in steps.iter().enumerate() {
        printer.status(&format!("  {}. {line}", i + 1));
    }
}

fn signing_anchor(rotation: &AnchorRotation) -> String {
    rotation.signing().to_string()
}

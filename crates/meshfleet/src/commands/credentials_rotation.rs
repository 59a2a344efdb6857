//! `meshfleet secrets sync --rotate [--link ID]... [--dry-run] [--wait SECONDS]` and
//! `meshfleet secrets status`: start or continue a link credential rotation, or say
//! where it stands.
//!
//! The library (`meshfleet_core::live::secrets::rotation`) reads the clusters and Vault
//! and does the live steps; this file records the state it returns in the fleet file
//! (atomic, comments kept) and reports what was
//! done, what blocks and what the user does next. `status` also says when the source
//! controllers were last restarted and by whom, and which earlier Vault versions of the
//! credentials are kept and why (`rotation_traces`; with SOPS, that git history holds the
//! earlier sealed ones). Exit 0 when the run got as far as it
//! can without the user (a commit, GitOps), 1 when a step is blocked or the input is
//! wrong, 2 when meshfleet could not do its job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Context as _;
use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::fleet::edit::FleetFileMut;
use meshfleet_core::identity::sops::AgeIdentities;
use meshfleet_core::live::secrets::rotation::{
    self, LinkProgress, Restart, RotateError, RotateOptions, RotationReport, Secrets, Stage, StepState,
};
use meshfleet_core::live::secrets::rotation_traces::{self, CredentialsHistory, RestartSeen};
use meshfleet_core::live::vault::{KvClient, VaultSettings};
use meshfleet_core::plan::FleetPlan;
use serde::Serialize;

use super::{CommandError, ExitStatus, kubeconfigs, load_plan, runtime};
use crate::cli::{GlobalArgs, OutputFormat, SecretsSyncArgs};
use crate::printer::{Printer, Style};

/// `secrets sync --rotate`.
pub fn rotate(
    args: &SecretsSyncArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let options = RotateOptions {
        dry_run: args.dry_run,
        links: args.links.clone(),
        wait: Duration::from_secs(args.wait),
    };
    let sops = SopsArgs {
        out: args.out.clone(),
        age_key: args.age_key.clone(),
    };
    run(&args.path, &options, false, &sops, global, printer)
}

/// `secrets status`: a dry run of the rotation.
pub fn status(path: &Path, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let options = RotateOptions {
        dry_run: true,
        ..RotateOptions::default()
    };
    run(path, &options, true, &SopsArgs::default(), global, printer)
}

/// With `spec.secrets.sops`: the rendered tree (`--out`, else `spec.gitops.repository.path`
/// beside the fleet file, where `render` writes it) and the operator's key file.
#[derive(Default)]
struct SopsArgs {
    out: Option<PathBuf>,
    age_key: Option<PathBuf>,
}

/// `status`: a dry run that, with no rotation in progress, says so rather than what a
/// start would record.
fn run(
    path: &Path,
    options: &RotateOptions,
    status: bool,
    sops: &SopsArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let (checked, plan) = match load_plan(path, printer)? {
        Ok(loaded) => loaded,
        Err(exit) => return Ok(exit),
    };
    // Starting only records the rotation in the fleet file; everything after reads the
    // clusters and Vault.
    let in_progress = plan.link_credentials.rotation.is_some();
    let (kubeconfigs, vault) = if in_progress && plan.sops.is_none() {
        (
            Some(kubeconfigs(global)?),
            Some(VaultSettings::from_env(
                &plan.vault("a link credential rotation")?.server,
            )?),
        )
    } else if in_progress {
        (Some(kubeconfigs(global)?), None)
    } else {
        (None, None)
    };
    // With SOPS the credentials are sealed into the rendered tree with an operator's key.
    let tree = sops
        .out
        .clone()
        .unwrap_or_else(|| checked.source.dir().join(&plan.gitops.path));
    let identities = if in_progress && plan.sops.is_some() {
        Some(AgeIdentities::read_key_file(
            &super::secrets_sops::operator_key_file(sops.age_key.as_ref()),
        )?)
    } else {
        None
    };
    let secrets = match &identities {
        Some(identities) => Secrets::Sops {
            tree: &tree,
            identities,
        },
        None => Secrets::Vault(vault.as_ref()),
    };
    tracing::info!(dry_run = options.dry_run, "secrets rotation");
    let report = match runtime()?.block_on(rotation::rotate(&plan, kubeconfigs.as_ref(), secrets, options)) {
        Ok(report) => report,
        Err(
            e @ (RotateError::UnknownLink(..)
            | RotateError::OtherRotation(_)
            | RotateError::NoLinks
            | RotateError::NotAnOperator),
        ) => {
            printer.error(&e.to_string(), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    // Record the new state before reporting: the live steps are done, and a rerun must
    // see where they left the rotation.
    let fleet_path = &checked.source.path;
    let mut written = false;
    if let Some(state) = &report.recorded
        && !options.dry_run
    {
        let mut fleet = FleetFileMut::new(&checked.source.text)
            .with_context(|| format!("cannot record the rotation in `{}`", fleet_path.display()))?;
        fleet
            .set_link_credentials(state)
            .with_context(|| format!("cannot record the rotation in `{}`", fleet_path.display()))?;
        fleet.write(fleet_path)?;
        written = true;
    }
    let file = fleet_path.display().to_string();
    let traces = if status {
        let kubeconfigs = match kubeconfigs {
            Some(k) => Ok(k),
            None => self::kubeconfigs(global).map_err(|e| meshfleet_core::diagnostic::error_chain(&e)),
        };
        Some(runtime()?.block_on(read_traces(&plan, kubeconfigs.as_ref())))
    } else {
        None
    };
    match global.output {
        OutputFormat::Json => {
            let mut json = report_json(&report, options, &file, written);
            if let Some(traces) = &traces {
                json.restarts_seen = Some(&traces.restarts);
                json.credentials_history = Some(traces_history_json(traces));
            }
            printer.json(&json)?;
        }
        OutputFormat::Text if status && report.stage == Stage::Start => {
            let mut text = idle_text(&report);
            text.push_str(
                &traces
                    .as_ref()
                    .map(|t| traces_text(t, false, plan.sops.is_some(), printer))
                    .unwrap_or_default(),
            );
            printer.data(&text);
        }
        OutputFormat::Text => {
            let mut text = report_text(&report, options, &file, written, plan.sops.is_some(), printer);
            text.push_str(
                &traces
                    .as_ref()
                    .map(|t| traces_text(t, report.stage != Stage::Start, plan.sops.is_some(), printer))
                    .unwrap_or_default(),
            );
            printer.data(&text);
        }
    }
    Ok(if report.blocked() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// What `status` reads beside the rotation: restarts on the clusters, Vault's history.
struct Traces {
    restarts: Vec<RestartSeen>,
    /// Why the clusters could not be read at all (no kubeconfig).
    restarts_error: Option<String>,
    history: Result<Vec<CredentialsHistory>, String>,
}

async fn read_traces(
    plan: &FleetPlan,
    kubeconfigs: Result<&meshfleet_core::live::cluster::Kubeconfigs, &String>,
) -> Traces {
    let (restarts, restarts_error) = match kubeconfigs {
        Ok(k) => (rotation_traces::restarts_seen(plan, k).await, None),
        Err(e) => (Vec::new(), Some(e.clone())),
    };
    let history = async {
        let Some(vault) = &plan.vault else {
            return Ok(Vec::new());
        };
        let kv = KvClient::new(&VaultSettings::from_env(&vault.server)?, &vault.mount)?;
        rotation_traces::credentials_history(plan, &kv).await
    }
    .await
    .map_err(|e: meshfleet_core::live::vault::VaultError| e.to_string());
    Traces {
        restarts,
        restarts_error,
        history,
    }
}

fn traces_history_json(traces: &Traces) -> serde_json::Value {
    match &traces.history {
        Ok(history) => serde_json::json!({ "entries": history, "error": null }),
        Err(e) => serde_json::json!({ "entries": [], "error": e }),
    }
}

/// The restarts and the kept Vault versions (with SOPS, where earlier credentials are),
/// for `status`.
fn traces_text(traces: &Traces, in_progress: bool, sops: bool, printer: Printer) -> String {
    let mut out = String::from("\nrestarts of the source controllers (read from the clusters):\n");
    if let Some(e) = &traces.restarts_error {
        out.push_str(&format!(
            "  {} cannot read the clusters: {e}\n",
            printer.out(Style::Warning, "‼")
        ));
    }
    for seen in &traces.restarts {
        let pods = match seen.pods_created.as_slice() {
            [] => "no running pod".to_string(),
            [one] => format!("its pod was created at {one}"),
            [first, .., last] => format!("its pods were created from {first} to {last}"),
        };
        let line = match (&seen.error, &seen.restarted_at) {
            (Some(e), _) => format!("{} cannot be read: {e}", printer.out(Style::Warning, "‼")),
            (None, Some(at)) => format!(
                "restarted at {at} by {}; {pods}",
                match seen.restarted_by.as_deref() {
                    Some(rotation::FIELD_MANAGER) => "the credential rotation (meshfleet)".to_string(),
                    Some(other) => format!("`{other}`"),
                    None => "an unknown field manager".to_string(),
                }
            ),
            (None, None) => format!("never rollout-restarted; {pods}"),
        };
        out.push_str(&format!(
            "  `{}` on `{}`: {line}\n",
            seen.deployment, seen.cluster
        ));
    }
    if traces.restarts.iter().any(RestartSeen::by_rotation) {
        out.push_str(
            "  note: right after a service mirror's restart, Linkerd may delete and recreate a mirror Service once \
             (new UID and ClusterIP), mostly one created within seconds of the restart; it comes back by itself \
             (docs/rotating-link-credentials.md)\n",
        );
    }
    if sops {
        out.push_str(
            "\nhistory of the link credentials (SOPS, no Vault):\n  the rendered tree holds the sealed credentials the links use; \
             earlier ones are only in git history, sealed\n",
        );
        out.push_str(if in_progress {
            "  until the rotation removes the old account (phase `retiring`), the previous credentials hold its token, \
             which still works; after that it is refused\n"
        } else {
            "  a token dies with its account, which a rotation removes from the target and proves refused (`old-token-revoked`)\n"
        });
        return out;
    }
    out.push_str("\nVault history of the link credentials:\n");
    match &traces.history {
        Err(e) => out.push_str(&format!(
            "  {} cannot read Vault: {e}\n",
            printer.out(Style::Warning, "‼")
        )),
        Ok(history) if history.is_empty() => out.push_str("  no link credentials in Vault yet\n"),
        Ok(history) => {
            for entry in history {
                let kept = if entry.kept_versions.is_empty() {
                    "no earlier version kept".to_string()
                } else {
                    format!(
                        "earlier version(s) {} kept",
                        entry
                            .kept_versions
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                out.push_str(&format!(
                    "  `{}`: version {} in use; {kept}\n",
                    entry.path, entry.current_version
                ));
            }
            if in_progress && history.iter().any(|e| !e.kept_versions.is_empty()) {
                out.push_str(
                    "  until the rotation removes the old account (phase `retiring`), the previous version holds its token, \
                     which still works; after that it is refused\n",
                );
            } else if history.iter().any(|e| !e.kept_versions.is_empty()) {
                out.push_str(
                    "  kept on purpose: an earlier version holds the token of an earlier remote-access account, and a token \
                     dies with its account, which a rotation removes from the target and proves refused (`old-token-revoked`)\n",
                );
            }
        }
    }
    out
}

fn mark(state: StepState, printer: Printer) -> String {
    match state {
        StepState::Done => printer.out(Style::Success, "✓"),
        StepState::Would => printer.out(Style::Pending, "~"),
        StepState::Blocked => printer.out(Style::Error, "×"),
    }
}

/// No rotation in progress: the account each link uses.
fn idle_text(report: &RotationReport) -> String {
    let mut out = String::from("link credentials: no rotation in progress\n");
    for link in &report.links {
        out.push_str(&format!("{}: uses `{}`\n", link.id, link.from));
    }
    out.push_str("`meshfleet secrets sync --rotate [--link ID]...` starts one\n");
    out
}

fn report_text(
    report: &RotationReport,
    options: &RotateOptions,
    file: &str,
    written: bool,
    sops: bool,
    printer: Printer,
) -> String {
    let mut out = String::new();
    let phase = match report.stage {
        Stage::Start => "no rotation in progress".to_string(),
        stage => format!("rotation in progress, phase `{}`", stage.as_str()),
    };
    out.push_str(&format!("link credentials: {phase}\n"));
    for link in &report.links {
        out.push_str(&format!("{}: `{}` -> `{}`\n", link.id, link.from, link.to));
        for step in &link.steps {
            out.push_str(&format!(
                "  {} {}: {}\n",
                mark(step.state, printer),
                step.id.as_str(),
                step.detail
            ));
            if let Some(hint) = &step.hint {
                out.push_str(&format!("    {}: {hint}\n", printer.out(Style::Hint, "hint")));
            }
        }
    }
    for restart in &report.restarts {
        out.push_str(&format!(
            "{} {} on `{}`: {}\n",
            mark(restart.state, printer),
            restart.deployment,
            restart.cluster,
            restart.detail
        ));
    }
    out.push_str(&next_text(report, options, file, written, sops));
    out
}

/// What the user does next.
fn next_text(
    report: &RotationReport,
    options: &RotateOptions,
    file: &str,
    written: bool,
    sops: bool,
) -> String {
    let then = "then run `meshfleet secrets sync --rotate` again";
    let commit = format!(
        "review and commit `{file}`, run `meshfleet render` and commit the tree; once GitOps has applied it"
    );
    match (report.stage, report.now, &report.recorded) {
        (_, _, _) if report.blocked() => {
            "blocked: nothing after the blocked step was done; fix what the hints say and run it again\n"
                .into()
        }
        (Stage::Start, _, Some(_)) if !written => format!(
            "dry run: would record the rotation of {} in `{file}` (phase `granting`); nothing was written\n",
            report.links.len()
        ),
        (Stage::Start, _, Some(_)) => format!(
            "recorded in `{file}`: rotation of {} link(s), phase `granting` (the targets grant the next accounts beside the current ones)\nnext: {commit}, {then}\n",
            report.links.len()
        ),
        (Stage::Granting, Some(Stage::Retiring), Some(_)) if written => format!(
            "every link uses its next account; recorded in `{file}`: phase `retiring` (the targets drop the old accounts)\nnext: {commit}, {then} to prove the old tokens are refused and finish\n"
        ),
        (Stage::Retiring, None, Some(_)) if written => format!(
            "the old accounts are gone and their tokens refused; rotation finished and removed from `{file}`\n\
             kept: {}; they hold only the refused tokens of the removed accounts\n\
             next: review and commit `{file}`\n",
            if sops {
                "the earlier sealed credentials, in git history only (SOPS)"
            } else {
                "Vault's earlier versions of the link credentials (KV v2 history)"
            }
        ),
        (_, _, Some(_)) => {
            format!("dry run: every step is done; a real run records the next phase in `{file}`\n")
        }
        _ if options.dry_run => format!("dry run: nothing was changed; {then} to do the steps marked `~`\n"),
        _ => format!("not finished; {then}\n"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RotationJson<'a> {
    dry_run: bool,
    /// Where the rotation was when the run began: start, granting, retiring.
    stage: &'static str,
    /// Where it is now: granting, retiring, or null when none is in progress.
    now: Option<&'static str>,
    blocked: bool,
    fleet_file: &'a str,
    /// Whether this run wrote the fleet file.
    recorded: bool,
    links: Vec<LinkJson<'a>>,
    restarts: Vec<RestartJson<'a>>,
    /// `status` only: the Deployments the rotation restarts, as they are now.
    #[serde(skip_serializing_if = "Option::is_none")]
    restarts_seen: Option<&'a [RestartSeen]>,
    /// `status` only: the earlier Vault versions of each link's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials_history: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct LinkJson<'a> {
    id: &'a str,
    from: &'a str,
    to: &'a str,
    steps: Vec<StepJson<'a>>,
}

#[derive(Serialize)]
struct StepJson<'a> {
    id: &'static str,
    state: &'static str,
    detail: &'a str,
    hint: Option<&'a str>,
}

#[derive(Serialize)]
struct RestartJson<'a> {
    cluster: &'a str,
    deployment: &'a str,
    state: &'static str,
    detail: &'a str,
}

fn state_name(state: StepState) -> &'static str {
    match state {
        StepState::Done => "done",
        StepState::Would => "would",
        StepState::Blocked => "blocked",
    }
}

fn report_json<'a>(
    report: &'a RotationReport,
    options: &RotateOptions,
    file: &'a str,
    written: bool,
) -> RotationJson<'a> {
    let link = |l: &'a LinkProgress| LinkJson {
        id: &l.id,
        from: &l.from,
        to: &l.to,
        steps: l
            .steps
            .iter()
            .map(|s| StepJson {
                id: s.id.as_str(),
                state: state_name(s.state),
                detail: &s.detail,
                hint: s.hint.as_deref(),
            })
            .collect(),
    };
    let restart = |r: &'a Restart| RestartJson {
        cluster: &r.cluster,
        deployment: &r.deployment,
        state: state_name(r.state),
        detail: &r.detail,
    };
    RotationJson {
        dry_run: options.dry_run,
        stage: report.stage.as_str(),
        now: if written {
            report.now
        } else {
            Some(report.stage).filter(|s| *s != Stage::Start)
        }
        .map(Stage::as_str),
        blocked: report.blocked(),
        fleet_file: file,
        recorded: written,
        links: report.links.iter().map(link).collect(),
        restarts: report.restarts.iter().map(restart).collect(),
        restarts_seen: None,
        credentials_history: None,
    }
}

//! `meshfleet migrate [PATH] [--apply]`: from the deprecated `linkerd multicluster link`
//! to declarative Links, in an order that never leaves a link without a controller.
//!
//! Without `--apply` it only reads and prints the plan, per cluster and link: sync the
//! rendered tree, wait for `controller-<n>`, delete the legacy controller's objects, and
//! what to do with Links nobody manages. With `--apply` it deletes the legacy objects of
//! the links whose declarative controller is available, and says why it skipped others.

use meshfleet_core::diagnostic::error_chain;
use meshfleet_core::live::migrate::{
    self, ClusterMigration, ClusterSurvey, ControllerState, DeletionOutcome, Handover, LegacyLink,
    LegacyObject, MigrationReport, Removal, UnmanagedLink,
};
use meshfleet_core::plan::FleetPlan;
use meshfleet_core::render::stages::StageKind;
use serde::Serialize;

use super::{CommandError, ExitStatus, kubeconfigs, load_plan, runtime};
use crate::cli::{GlobalArgs, MigrateArgs, OutputFormat};
use crate::printer::Printer;

pub fn run(args: &MigrateArgs, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (_checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let kubeconfigs = kubeconfigs(global)?;
    let report = runtime()?.block_on(migrate::migrate_fleet(&kubeconfigs, &plan, args.apply));
    match global.output {
        OutputFormat::Json => printer.json(&report_json(&report))?,
        OutputFormat::Text => printer.data(&report_text(&report, &plan)),
    }
    for cluster in &report.clusters {
        if let Err(e) = &cluster.survey {
            printer.error(
                &format!(
                    "cluster `{}` (context `{}`): {}",
                    cluster.cluster,
                    cluster.context,
                    error_chain(e)
                ),
                Some(&format!(
                    "{}; nothing was changed there",
                    e.hint_for(
                        &cluster.context,
                        "list and delete Deployments, Services, RBAC and ServiceAccounts"
                    )
                )),
            );
        }
    }
    printer.status(&summary(&report));
    Ok(if report.none_reachable() {
        ExitStatus::Error
    } else if report.legacy_remaining() > 0 || report.any_unreachable() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn summary(report: &MigrationReport) -> String {
    let surveys = || report.clusters.iter().filter_map(|c| c.survey.as_ref().ok());
    let found = surveys().map(|s| s.legacy.len()).sum::<usize>();
    let remaining = report.legacy_remaining();
    let removed = found - remaining;
    let unread = report.clusters.iter().filter(|c| c.survey.is_err()).count();
    if report.none_reachable() {
        return format!(
            "none of the {unread} cluster(s) could be read (see above): nothing is known of their legacy `linkerd multicluster link` controllers, and nothing was changed"
        );
    }
    // What was found says nothing of the clusters that could not be read.
    let unread_note = if unread > 0 {
        format!(
            "; {unread} of {} cluster(s) could not be read (see above), so this says nothing of them",
            report.clusters.len()
        )
    } else {
        String::new()
    };
    let line = if found == 0 {
        "no legacy `linkerd multicluster link` controllers found".to_string()
    } else if !report.apply {
        format!(
            "{found} legacy link controller(s) found; nothing was changed. Follow the steps above, then run `meshfleet migrate --apply`"
        )
    } else if remaining == 0 {
        format!("removed the legacy controllers of {removed} link(s); none is left")
    } else if removed == 0 {
        format!("nothing was deleted: {remaining} legacy link controller(s) still there (see above)")
    } else {
        format!("removed the legacy controllers of {removed} link(s); {remaining} still there (see above)")
    };
    format!("{line}{unread_note}")
}

/// The plan (and what `--apply` did) as text.
fn report_text(report: &MigrationReport, plan: &FleetPlan) -> String {
    let mut out = String::new();
    for cluster in &report.clusters {
        let Ok(survey) = &cluster.survey else {
            out.push_str(&format!(
                "cluster `{}` (context `{}`): unreachable\n",
                cluster.cluster, cluster.context
            ));
            continue;
        };
        if survey.legacy.is_empty() && survey.unmanaged_links.is_empty() {
            out.push_str(&format!(
                "cluster `{}` (context `{}`): nothing left of `linkerd multicluster link`\n",
                cluster.cluster, cluster.context
            ));
            continue;
        }
        out.push_str(&format!(
            "cluster `{}` (context `{}`)\n",
            cluster.cluster, cluster.context
        ));
        for link in &survey.legacy {
            link_text(&mut out, cluster, survey, link, plan);
        }
        unmanaged_text(&mut out, cluster, survey);
    }
    out
}

fn link_text(
    out: &mut String,
    cluster: &ClusterMigration,
    survey: &ClusterSurvey,
    link: &LegacyLink,
    plan: &FleetPlan,
) {
    let name = &link.name;
    let source = &cluster.cluster;
    let controller = format!("{}/{}", link.namespace, migrate::legacy_controller(name));
    let Some(target) = &link.fleet_target else {
        out.push_str(&format!(
            "  link `{name}`: legacy controller `{controller}`; the fleet declares no link from `{source}` to a cluster with linkName `{name}`\n    to migrate it, add that link to the fleet file and run `meshfleet migrate` again; to drop it, delete these objects by hand (meshfleet does not, since nothing would replace them):\n"
        ));
        for object in &link.objects {
            out.push_str(&format!("      {object}\n"));
        }
        return;
    };
    out.push_str(&format!(
        "  link `{name}`: legacy controller `{controller}`, replaced by the fleet's link `{source}` -> `{target}`\n"
    ));
    out.push_str(&format!(
        "    1. commit and sync the rendered tree of `{source}`: `{}/{source}/{}/` (Link `{name}` and its `cluster-credentials-{name}` Secrets) and the `{}` stage (its `controllers` entry `{name}`)\n",
        plan.gitops.path,
        StageKind::Links.name(),
        StageKind::LinkerdMulticluster.name(),
    ));
    if let Some(existing) = survey
        .unmanaged_links
        .iter()
        .find(|l| l.declared && &l.name == name)
    {
        out.push_str(&format!(
            "       the Link `{}/{}` is not labelled as meshfleet's yet; the sync takes it over\n",
            existing.namespace, existing.name
        ));
    }
    out.push_str(&format!(
        "    2. wait until Deployment `{}/{}` is available: {}\n",
        meshfleet_core::defaults::MULTICLUSTER_NAMESPACE,
        link.controller_name,
        link.controller
    ));
    match &link.removal {
        Removal::Planned => {
            out.push_str("    3. delete the legacy controller's objects:\n");
            for object in &link.objects {
                out.push_str(&format!("         {object}\n"));
            }
            let when = if link.blocker().is_none() {
                "now"
            } else {
                "once step 2 is done"
            };
            out.push_str(&format!(
                "       `meshfleet migrate --apply` does this {when} (the Link, its Secrets and the Lease stay)\n"
            ));
        }
        Removal::Skipped(blocker) => {
            out.push_str(&format!(
                "    3. delete the legacy controller's objects: SKIPPED, {blocker}; left in place:\n"
            ));
            for object in &link.objects {
                out.push_str(&format!("         {object}\n"));
            }
        }
        Removal::Attempted { deletions, handover } => {
            out.push_str("    3. delete the legacy controller's objects:\n");
            let attempted = deletions.len();
            let mut deletions = deletions.iter().peekable();
            if let Some((object, outcome)) = deletions.next_if(|(o, _)| o.is_controller()) {
                out.push_str(&format!("         {object}: {}\n", outcome_text(outcome)));
            }
            if let Some(handover) = handover {
                out.push_str(&format!("         {}\n", handover_text(link, handover)));
            }
            for (object, outcome) in deletions {
                out.push_str(&format!("         {object}: {}\n", outcome_text(outcome)));
            }
            for object in link.objects.iter().skip(attempted) {
                out.push_str(&format!("         {object}: not attempted\n"));
            }
        }
    }
}

fn outcome_text(outcome: &DeletionOutcome) -> String {
    match outcome {
        DeletionOutcome::Deleted => "deleted".to_string(),
        DeletionOutcome::AlreadyGone => "already gone".to_string(),
        DeletionOutcome::Failed(reason) => format!("FAILED: {reason}"),
    }
}

/// The line between the old Deployment and its permissions: who took the Lease over.
fn handover_text(link: &LegacyLink, handover: &Handover) -> String {
    let lease = format!("Lease `{}`", link.lease());
    match handover {
        Handover::Served { holder, waited } => format!(
            "{lease}: held by `{holder}` of `{}` ({:.0} s after the old Deployment went)",
            link.controller_name,
            waited.as_secs_f64()
        ),
        Handover::NotYet { holder, waited } => format!(
            "{lease}: NOT taken over by `{}` within {:.0} s (holder: {}); the old controller's permissions are kept so it can still release the Lease; check `{}`'s log, then run `meshfleet migrate --apply` again",
            link.controller_name,
            waited.as_secs_f64(),
            holder.as_deref().map_or("none".to_string(), |h| format!("`{h}`")),
            link.controller_name
        ),
        Handover::Unreadable(e) => {
            format!("{lease}: could not be read ({e}); the old controller's permissions are kept")
        }
    }
}

fn unmanaged_text(out: &mut String, cluster: &ClusterMigration, survey: &ClusterSurvey) {
    let undeclared: Vec<&UnmanagedLink> = survey.unmanaged_links.iter().filter(|l| !l.declared).collect();
    let legacy: Vec<&str> = survey.legacy.iter().map(|l| l.name.as_str()).collect();
    for link in survey
        .unmanaged_links
        .iter()
        .filter(|l| l.declared && !legacy.contains(&l.name.as_str()))
    {
        out.push_str(&format!(
            "  Link `{}/{}`: declared by the fleet but not labelled as meshfleet's; commit and sync the rendered tree of `{}` to take it over\n",
            link.namespace, link.name, cluster.cluster
        ));
    }
    if undeclared.is_empty() {
        return;
    }
    // Step 4 of the plan when there is one; a note of its own otherwise.
    let step = if survey.legacy.is_empty() { "" } else { "4. " };
    out.push_str(&format!(
        "  {step}Links not managed by meshfleet that the fleet does not declare (meshfleet never deletes them):\n"
    ));
    for link in undeclared {
        out.push_str(&format!(
            "       Link `{ns}/{name}`: to keep it, add a link from `{source}` to the cluster whose linkName is `{name}` to the fleet file; to remove it, `kubectl --context {ctx} -n {ns} delete link {name}` and its `cluster-credentials-{name}` Secrets\n",
            ns = link.namespace,
            name = link.name,
            source = cluster.cluster,
            ctx = cluster.context,
        ));
    }
}

/// A legacy object in `-o json`.
#[derive(Serialize)]
struct ObjectJson<'a> {
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
}

fn object_json(object: &LegacyObject) -> ObjectJson<'_> {
    ObjectJson {
        kind: &object.resource.kind,
        namespace: object.namespace.as_deref(),
        name: &object.name,
    }
}

/// A legacy object and what `--apply` did to it.
#[derive(Serialize)]
struct DeletionJson<'a> {
    #[serde(flatten)]
    object: ObjectJson<'a>,
    outcome: &'static str,
    error: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControllerJson<'a> {
    name: &'a str,
    state: &'static str,
    available_replicas: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkJson<'a> {
    link: &'a str,
    namespace: &'a str,
    fleet_target: Option<&'a str>,
    controller: ControllerJson<'a>,
    objects: Vec<ObjectJson<'a>>,
    action: &'static str,
    skip_reason: Option<String>,
    deletions: Vec<DeletionJson<'a>>,
    handover: Option<HandoverJson<'a>>,
    remains: bool,
}

/// The link's Lease when `--apply` came to the old controller's permissions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HandoverJson<'a> {
    lease: String,
    /// `served` (a pod of the declarative controller holds it), `not-yet` or `unreadable`.
    state: &'static str,
    holder: Option<&'a str>,
    waited_seconds: Option<f64>,
    error: Option<&'a str>,
}

fn handover_json<'a>(link: &LegacyLink, handover: &'a Handover) -> HandoverJson<'a> {
    let (state, holder, waited, error) = match handover {
        Handover::Served { holder, waited } => ("served", Some(holder.as_str()), Some(waited), None),
        Handover::NotYet { holder, waited } => ("not-yet", holder.as_deref(), Some(waited), None),
        Handover::Unreadable(e) => ("unreadable", None, None, Some(e.as_str())),
    };
    HandoverJson {
        lease: link.lease(),
        state,
        holder,
        waited_seconds: waited.map(|w| (w.as_secs_f64() * 10.0).round() / 10.0),
        error,
    }
}

fn link_json(link: &LegacyLink) -> LinkJson<'_> {
    let (state, available) = match link.controller {
        ControllerState::Missing => ("missing", 0),
        ControllerState::Unavailable { available, .. } => ("unavailable", available),
        ControllerState::Available { available } => ("available", available),
    };
    let (action, skip_reason, deletions, handover) = match &link.removal {
        Removal::Planned => ("planned", None, Vec::new(), None),
        Removal::Skipped(blocker) => ("skipped", Some(blocker.to_string()), Vec::new(), None),
        Removal::Attempted { deletions, handover } => (
            match handover {
                _ if !link.remains() => "removed",
                Some(Handover::NotYet { .. } | Handover::Unreadable(_)) => "waiting",
                _ => "failed",
            },
            None,
            deletions
                .iter()
                .map(|(object, outcome)| {
                    let (outcome, error) = match outcome {
                        DeletionOutcome::Deleted => ("deleted", None),
                        DeletionOutcome::AlreadyGone => ("already-gone", None),
                        DeletionOutcome::Failed(e) => ("failed", Some(e.as_str())),
                    };
                    DeletionJson {
                        object: object_json(object),
                        outcome,
                        error,
                    }
                })
                .collect(),
            handover.as_ref().map(|h| handover_json(link, h)),
        ),
    };
    LinkJson {
        link: &link.name,
        namespace: &link.namespace,
        fleet_target: link.fleet_target.as_deref(),
        controller: ControllerJson {
            name: &link.controller_name,
            state,
            available_replicas: available,
        },
        objects: link.objects.iter().map(object_json).collect(),
        action,
        skip_reason,
        deletions,
        handover,
        remains: link.remains(),
    }
}

/// `migrate -o json`; field names and the `action`, `state` and `outcome` values are
/// stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MigrateJson<'a> {
    apply: bool,
    legacy_remaining: usize,
    clusters: Vec<ClusterJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterJson<'a> {
    cluster: &'a str,
    context: &'a str,
    error: Option<String>,
    legacy_links: Vec<LinkJson<'a>>,
    unmanaged_links: Vec<UnmanagedJson<'a>>,
}

#[derive(Serialize)]
struct UnmanagedJson<'a> {
    namespace: &'a str,
    name: &'a str,
    declared: bool,
}

fn report_json(report: &MigrationReport) -> MigrateJson<'_> {
    let clusters = report
        .clusters
        .iter()
        .map(|c| match &c.survey {
            Ok(survey) => ClusterJson {
                cluster: &c.cluster,
                context: &c.context,
                error: None,
                legacy_links: survey.legacy.iter().map(link_json).collect(),
                unmanaged_links: survey
                    .unmanaged_links
                    .iter()
                    .map(|l| UnmanagedJson {
                        namespace: &l.namespace,
                        name: &l.name,
                        declared: l.declared,
                    })
                    .collect(),
            },
            Err(e) => ClusterJson {
                cluster: &c.cluster,
                context: &c.context,
                error: Some(error_chain(e)),
                legacy_links: Vec::new(),
                unmanaged_links: Vec::new(),
            },
        })
        .collect();
    MigrateJson {
        apply: report.apply,
        legacy_remaining: report.legacy_remaining(),
        clusters,
    }
}

//! A link's credentials: `credentials-secret`, `credentials-kubeconfig` and
//! `credentials-access`.
//!
//! Two Secrets hold the same kubeconfig (reference section 2.4): the service mirror reads
//! the one in the multicluster namespace, and the destination controller the one in the
//! control-plane namespace, which it ignores SILENTLY unless it has the exact type, the
//! `multicluster.linkerd.io/cluster-name` label and both domain annotations. Both are
//! compared with the template of the ExternalSecret meshfleet renders for them, so the
//! expectation is what the tree says, not a second copy of the rules.

use secrecy::ExposeSecret as _;

use super::access::{self, Access, FailureKind};
use super::files::{self, TreeFiles, in_tree};
use super::snapshot::{ClusterState, CredentialsSecret, Read};
use super::{CheckId, CheckResult, Status};
use meshfleet_fleet::defaults;
use meshfleet_fleet::model::RotationPhase;
use meshfleet_plan::{ClusterPlan, FleetPlan, LinkPlan};
use meshfleet_render::stages;

#[allow(clippy::too_many_arguments)]
pub(super) fn credentials_secret(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    link: &LinkPlan,
    ns: &str,
    for_destination: bool,
    read: Option<&Read<Option<CredentialsSecret>>>,
    state: &ClusterState,
) -> CheckResult {
    let name = format!("`{ns}/{}`", link.credentials_secret());
    let file = files::link(cluster, link);
    let made_by = match &plan.vault {
        Some(vault) => format!(
            "External Secrets builds it from the ExternalSecret {name} ({}) out of Vault `{}/{}`: \
             `kubectl -n {ns} get externalsecret {}` shows its state, and `meshfleet secrets sync` writes the key",
            in_tree(&file),
            vault.mount,
            vault.credentials_key(&link.source, &link.target),
            link.credentials_secret()
        ),
        None => format!(
            "Flux decrypts it from `{}/links/{}.{ns}.sops.yaml` with the cluster's `flux-system/sops-age` key: \
             `meshfleet secrets sync --out DIR` writes the file, then commit it",
            cluster.name,
            link.credentials_secret()
        ),
    };
    let secret = match read {
        None => return CheckResult::error(CheckId::CredentialsSecret, format!("Secret {name} was not read")),
        Some(Err(failure)) => return failure.to_result(CheckId::CredentialsSecret, &state.context),
        Some(Ok(None)) => {
            return CheckResult::error(CheckId::CredentialsSecret, format!("there is no Secret {name}"))
                .hint(made_by)
                .file(file);
        }
        Some(Ok(Some(secret))) => secret,
    };
    let template = stages::credentials(plan, link, ns, for_destination)
        .spec
        .target
        .template;
    let mut problems = Vec::new();
    if secret.secret_type.as_deref() != Some(template.secret_type.as_str()) {
        problems.push(format!(
            "type `{}`, not `{}`",
            secret.secret_type.as_deref().unwrap_or("Opaque"),
            template.secret_type
        ));
    }
    if secret.kubeconfig.is_none() {
        problems.push("no `kubeconfig` key".into());
    }
    let metadata = template.metadata.unwrap_or_default();
    // Linkerd reads its own label and the annotations; meshfleet's bookkeeping labels
    // (`managed-by`, `fleet`) do not change how the link works.
    for (key, want) in metadata
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("multicluster.linkerd.io/"))
    {
        compare(&mut problems, "label", key, want, secret.labels.get(key));
    }
    for (key, want) in &metadata.annotations {
        compare(
            &mut problems,
            "annotation",
            key,
            want,
            secret.annotations.get(key),
        );
    }
    let mut result = if problems.is_empty() {
        CheckResult::ok(
            CheckId::CredentialsSecret,
            format!(
                "Secret {name} has type `{}`{}",
                template.secret_type,
                if for_destination {
                    ", its label and annotations"
                } else {
                    ""
                }
            ),
        )
    } else {
        let why = if for_destination {
            "; the destination controller silently ignores such a Secret, so remote-discovery and federated services get no endpoints (linkerd2#11542)"
        } else {
            ""
        };
        CheckResult::error(
            CheckId::CredentialsSecret,
            format!("Secret {name} is not as the fleet renders it{why}"),
        )
        .details(problems)
        .hint(made_by)
        .file(file)
    };
    if for_destination && result.status == Status::Ok {
        let other = state
            .credentials
            .get(&(
                defaults::MULTICLUSTER_NAMESPACE.to_string(),
                link.credentials_secret(),
            ))
            .and_then(|r| r.as_ref().ok())
            .and_then(Option::as_ref)
            .and_then(|s| s.kubeconfig.as_ref());
        if let (Some(mine), Some(other)) = (secret.kubeconfig.as_ref(), other)
            && mine.expose_secret() != other.expose_secret()
        {
            result = CheckResult::warning(
                CheckId::CredentialsSecret,
                format!(
                    "Secret {name} holds another kubeconfig than its copy in `{}`",
                    defaults::MULTICLUSTER_NAMESPACE
                ),
            )
            .hint(
                "the destination controller does not reload this Secret when it changes in place (only on create \
                 and delete); after a rotation restart it: `kubectl -n linkerd rollout restart deploy/linkerd-destination`",
            );
        }
    }
    result
}

pub(super) fn compare(problems: &mut Vec<String>, what: &str, key: &str, want: &str, have: Option<&String>) {
    match have {
        None => problems.push(format!("no {what} `{key}` (want `{want}`)")),
        Some(have) if have != want => problems.push(format!("{what} `{key}` is `{have}`, not `{want}`")),
        Some(_) => {}
    }
}

pub(super) fn credentials_kubeconfig(
    plan: &FleetPlan,
    link: &LinkPlan,
    state: &ClusterState,
    target: Option<&ClusterState>,
    probe: Option<&Access>,
    files: &TreeFiles<'_>,
    out: &mut Vec<CheckResult>,
) {
    let t = link.link_name();
    // Without a kubeconfig, `credentials-secret` already failed.
    let Some(text) = access::link_kubeconfig(plan, link, state) else {
        return;
    };
    let expected = plan
        .clusters
        .iter()
        .find(|c| c.name == link.target)
        .and_then(|c| c.api_server.as_deref());
    let report = access::inspect(text, expected);
    let sync = format!(
        "`meshfleet secrets sync` writes a kubeconfig with the fleet's `apiServer`, the CA inline and the token of \
         `{}` on `{}`; External Secrets then rebuilds both Secrets",
        link.account(),
        link.target
    );
    out.push(
        if report.problems.is_empty() {
            CheckResult::ok(
                CheckId::CredentialsKubeconfig,
                format!(
                    "the kubeconfig names `{}`, with the CA inline and a token",
                    report.server.as_deref().unwrap_or_default()
                ),
            )
        } else {
            CheckResult::error(
                CheckId::CredentialsKubeconfig,
                "the link's kubeconfig is not usable as it is",
            )
            .details(report.problems)
            .hint(sync.clone())
        }
        .for_link(t),
    );
    let result = match (target, probe) {
        (None, _) => Some(CheckResult::warning(
            CheckId::CredentialsAccess,
            format!("not verified: `{}` is unreachable", link.target),
        )),
        (Some(_), None) => None,
        (Some(target), Some(Access::Verified { route, denied })) if denied.is_empty() => Some(CheckResult::ok(
            CheckId::CredentialsAccess,
            format!(
                "`{}` ({}, dialled at `{route}`) accepts the token and allows get, list and watch on services",
                link.target, target.version
            ),
        )),
        (Some(_), Some(Access::Verified { denied, .. })) => Some(
            CheckResult::error(
                CheckId::CredentialsAccess,
                format!(
                    "`{}` accepts the token but does not allow {} on services in all namespaces",
                    link.target,
                    denied.join(", ")
                ),
            )
            .hint(format!(
                "the ClusterRole `{sa}` on `{}` comes from its multicluster values (`remoteMirrorServiceAccountName`) in {}",
                link.target,
                in_tree(&target_multicluster(plan, link, files)),
                sa = link.account()
            ))
            .file(target_multicluster(plan, link, files)),
        ),
        (Some(_), Some(Access::Failed { route, reason, kind })) => {
            let hint = match kind {
                FailureKind::Unauthorized => format!(
                    "`{}` rejects the token (its ServiceAccount or token Secret was deleted or recreated?): {sync}",
                    link.target
                ),
                FailureKind::Tls => format!("the inline CA does not sign `{}`'s serving certificate: {sync}", link.target),
                FailureKind::Other => format!("`{}` answered your own context but not these credentials: {sync}", link.target),
            };
            Some(
                CheckResult::error(
                    CheckId::CredentialsAccess,
                    format!("`{}` (dialled at `{route}`) does not accept the link's credentials", link.target),
                )
                .details([reason.clone()])
                .hint(hint),
            )
        }
    };
    if let Some(result) = result {
        out.push(result.for_link(t));
    }
}

/// `credentials-loaded`: Linkerd's controllers read a link's credentials when they start
/// (the service mirror also when its Link's spec changes, the destination when the
/// Secret is created), never when the Secret is updated. A pod that started before its Secret last changed runs with what the Secret
/// held before: after a rotation, a token the target will stop accepting. No Linkerd
/// check sees this, since they read the Secret, not what the controller loaded.
pub(super) fn credentials_loaded(plan: &FleetPlan, link: &LinkPlan, state: &ClusterState) -> CheckResult {
    let pods = match &state.pods {
        Err(failure) => return failure.to_result(CheckId::CredentialsLoaded, &state.context),
        Ok(pods) => pods,
    };
    let mc_ns = defaults::MULTICLUSTER_NAMESPACE;
    let controller = link.controller_name();
    let controller_selector = state.controllers.as_ref().ok().and_then(|ds| {
        ds.iter()
            .find(|d| {
                d.metadata.namespace.as_deref() == Some(mc_ns)
                    && d.metadata.name.as_deref() == Some(controller.as_str())
            })
            .and_then(|d| d.spec.as_ref()?.selector.match_labels.clone())
    });
    let matches = |pod: &&k8s_openapi::api::core::v1::Pod,
                   ns: &str,
                   labels: &std::collections::BTreeMap<String, String>| {
        pod.metadata.namespace.as_deref() == Some(ns)
            && pod.metadata.deletion_timestamp.is_none()
            && !labels.is_empty()
            && labels
                .iter()
                .all(|(k, v)| pod.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
    };
    let destination_labels: std::collections::BTreeMap<String, String> = [(
        "linkerd.io/control-plane-component".to_string(),
        "destination".to_string(),
    )]
    .into();
    let linkerd_ns = plan.linkerd.namespace.as_str();
    let mut stale = Vec::new();
    let mut hints = Vec::new();
    for (ns, deployment, labels) in [
        (
            mc_ns,
            controller.as_str(),
            controller_selector.unwrap_or_default(),
        ),
        (linkerd_ns, "linkerd-destination", destination_labels),
    ] {
        let secret = state
            .credentials
            .get(&(ns.to_string(), link.credentials_secret()))
            .and_then(|r| r.as_ref().ok())
            .and_then(Option::as_ref);
        // Both controllers load a Secret that appears (the service mirror retries until
        // it can; the destination registers it on creation): only an update is missed.
        let Some(changed) = secret.and_then(|s| s.changed.clone()).filter(|c| {
            secret
                .and_then(|s| s.created.as_ref())
                .is_none_or(|created| c.0 > created.0)
        }) else {
            continue;
        };
        for pod in pods.iter().filter(|p| matches(p, ns, &labels)) {
            let started = pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.clone())
                .or_else(|| pod.metadata.creation_timestamp.clone());
            if started.as_ref().is_some_and(|t| t.0 < changed.0) {
                stale.push(format!(
                    "pod `{ns}/{}` started {}, before Secret `{ns}/{}` last changed ({})",
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    started.map(|t| t.0.to_string()).unwrap_or_default(),
                    link.credentials_secret(),
                    changed.0
                ));
                let restart = format!(
                    "`kubectl --context {} -n {ns} rollout restart deploy/{deployment}`",
                    state.context
                );
                if !hints.contains(&restart) {
                    hints.push(restart);
                }
            }
        }
    }
    if stale.is_empty() {
        return CheckResult::ok(
            CheckId::CredentialsLoaded,
            format!("`{controller}` and `linkerd-destination` started after their credentials Secrets last changed"),
        )
        .for_link(link.link_name());
    }
    let during = if link.rotation.is_some() {
        "; during a rotation `meshfleet secrets sync --rotate` does it and verifies it"
    } else {
        ""
    };
    CheckResult::warning(
        CheckId::CredentialsLoaded,
        "a controller runs with credentials older than its Secret (Linkerd reads them only at start)",
    )
    .details(stale)
    .hint(format!("restart it: {}{during}", hints.join(" and ")))
    .for_link(link.link_name())
}

/// `credentials-rotation`: a link credential rotation is in progress for this link.
pub(super) fn credentials_rotation(link: &LinkPlan) -> Option<CheckResult> {
    let rotation = link.rotation?;
    let what = match rotation.phase {
        RotationPhase::Granting => format!(
            "its target grants `{}` beside `{}`; the link moves to the new account",
            meshfleet_plan::remote_access_account(&link.source, rotation.other_generation),
            link.account()
        ),
        RotationPhase::Retiring => format!(
            "the link uses `{}`; `{}` is leaving its target",
            link.account(),
            meshfleet_plan::remote_access_account(&link.source, rotation.other_generation)
        ),
    };
    Some(
        CheckResult::warning(
            CheckId::CredentialsRotation,
            format!("a credentials rotation is in progress (phase `{}`): {what}", rotation.phase.as_str()),
        )
        .hint("`meshfleet secrets status` says what is done and what blocks; `meshfleet secrets sync --rotate` continues it")
        .for_link(link.link_name()),
    )
}

fn target_multicluster(plan: &FleetPlan, link: &LinkPlan, files: &TreeFiles<'_>) -> String {
    plan.clusters
        .iter()
        .find(|c| c.name == link.target)
        .map(|c| files.multicluster(c))
        .unwrap_or_default()
}

//! Phase `granting`: per link, the next account's token is accepted, in Vault (or, with
//! SOPS, sealed into the rendered tree) and in both source Secrets; then the sources'
//! controllers are reloaded ([`super::reload`]) and the link's Secret is accepted. Only
//! then is `retiring` recorded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch};
use secrecy::{ExposeSecret as _, SecretString};

use super::context::{Ctx, Store, describe, in_use, patch_params};
use super::reload::reload;
use super::report::{LinkProgress, Restart, RotationReport, Step, StepId, StepState};
use super::{FORCE_SYNC_ANNOTATION, Stage};
use crate::check::access::Access;
use crate::secrets::SyncError;
use crate::secrets::remote_access::{link_kubeconfig, read_token};
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_fleet::lifecycle::LinkCredentialsState;
use meshfleet_fleet::model::RotationPhase;
use meshfleet_plan::LinkPlan;
use meshfleet_render::resources::ExternalSecret;

pub(super) async fn grant(
    ctx: &Ctx<'_>,
    links: &[&LinkPlan],
    recorded: &LinkCredentialsState,
) -> RotationReport {
    let mut progress: Vec<LinkProgress> =
        futures::future::join_all(links.iter().map(|l| move_to_next(ctx, l))).await;
    let mut restarts = Vec::new();
    let ready: Vec<bool> = progress.iter().map(LinkProgress::ok).collect();
    if ready.iter().all(|r| *r) {
        restarts = reload(ctx, links).await;
        for (link, p) in links.iter().zip(&mut progress) {
            let mine: Vec<&Restart> = restarts
                .iter()
                .filter(|r| {
                    r.cluster == link.source
                        && (r.deployment == format!("{MULTICLUSTER_NAMESPACE}/{}", link.controller_name())
                            || r.deployment == format!("{}/linkerd-destination", ctx.plan.linkerd.namespace))
                })
                .collect();
            let step = match mine.iter().find(|r| r.state != StepState::Done) {
                Some(r) if r.state == StepState::Would => Step::would(
                    StepId::Reloaded,
                    format!("restart `{}` on `{}`", r.deployment, r.cluster),
                ),
                Some(r) => Step::blocked(
                    StepId::Reloaded,
                    format!("`{}` on `{}`: {}", r.deployment, r.cluster, r.detail),
                    format!(
                        "look at `kubectl --context {} -n {} rollout status deploy/{}`, then run `meshfleet secrets sync --rotate` again",
                        ctx.context(&r.cluster),
                        r.deployment.split('/').next().unwrap_or_default(),
                        r.deployment.split('/').nth(1).unwrap_or_default()
                    ),
                ),
                None => Step::done(
                    StepId::Reloaded,
                    format!(
                        "{} started after the Secrets changed",
                        mine.iter()
                            .map(|r| format!("`{}`", r.deployment))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ),
            };
            if p.push(step) {
                let step = in_use(ctx, link).await;
                p.push(step);
            }
        }
    }
    let (recorded, now) = if progress.iter().all(LinkProgress::ok) {
        let mut generations = recorded.generations.clone();
        for link in links {
            generations.insert(link.credentials_id(), link.next_generation);
        }
        let rotating = links.iter().map(|l| l.credentials_id()).collect();
        (
            Some(LinkCredentialsState {
                generations,
                rotation: Some((rotating, RotationPhase::Retiring)),
            }),
            Some(Stage::Retiring),
        )
    } else {
        (None, None)
    };
    RotationReport {
        stage: Stage::Granting,
        links: progress,
        restarts,
        recorded,
        now,
    }
}

/// Steps 1 to 4 of one link: the next token, accepted, in Vault, in both source Secrets.
async fn move_to_next(ctx: &Ctx<'_>, link: &LinkPlan) -> LinkProgress {
    let next = link.following_account();
    let mut p = LinkProgress {
        id: link.credentials_id(),
        from: link.account(),
        to: next.clone(),
        steps: Vec::new(),
    };
    let target_context = ctx.context(&link.target);
    let client = match ctx.client(&link.target).await {
        Ok(c) => c,
        Err(e) => {
            p.push(Step::from_error(StepId::NextAccount, &e));
            return p;
        }
    };
    let token = match read_token(&client, &link.target, &target_context, &next).await {
        Ok(token) => token,
        Err(
            e @ (SyncError::ServiceAccountMissing { .. }
            | SyncError::TokenSecretMissing { .. }
            | SyncError::TokenNotFilled { .. }),
        ) => {
            p.push(Step::blocked(
                StepId::NextAccount,
                e.to_string(),
                format!(
                    "the target does not grant `{next}` yet: run `meshfleet render`, commit the tree and let GitOps apply it on `{}`, then run `meshfleet secrets sync --rotate` again",
                    link.target
                ),
            ));
            return p;
        }
        Err(e) => {
            p.push(Step::from_error(StepId::NextAccount, &e));
            return p;
        }
    };
    p.push(Step::done(
        StepId::NextAccount,
        format!("`{}` has `{next}` and its token", link.target),
    ));
    let Some(server) = ctx
        .plan
        .clusters
        .iter()
        .find(|c| c.name == link.target)
        .and_then(|c| c.api_server.clone())
    else {
        p.push(Step::from_error(
            StepId::NextTokenAccepted,
            &SyncError::ApiServerMissing {
                cluster: link.target.clone(),
            },
        ));
        return p;
    };
    let kubeconfig = match link_kubeconfig(
        &next,
        &link.target,
        &server,
        &token.token.ca_pem,
        &token.token.bearer,
    ) {
        Ok(k) => k,
        Err(e) => {
            p.push(Step::from_error(StepId::NextTokenAccepted, &e));
            return p;
        }
    };
    drop(token);
    match ctx.try_credentials(link, &kubeconfig).await {
        Access::Verified { denied, .. } if denied.is_empty() => {
            p.push(Step::done(
                StepId::NextTokenAccepted,
                format!("`{}` accepts the token of `{next}`", link.target),
            ));
        }
        access => {
            p.push(Step::blocked(
                StepId::NextTokenAccepted,
                format!("`{}` does not accept the token of `{next}`: {}", link.target, describe(&access)),
                "nothing was changed; check the account's ClusterRoleBinding in the rendered tree and what GitOps applied",
            ));
            return p;
        }
    }
    match &ctx.store {
        Store::Vault { .. } => {
            if !p.push(vault_step(ctx, link, &kubeconfig).await) {
                return p;
            }
            p.push(source_secrets_step(ctx, link, &kubeconfig).await);
        }
        Store::Sops { .. } => {
            let (step, written) = sealed_step(ctx, link, &kubeconfig).await;
            if !p.push(step) {
                return p;
            }
            p.push(applied_step(ctx, link, &kubeconfig, written).await);
        }
    }
    p
}

/// With SOPS: the link's two files in the rendered tree hold `kubeconfig` (sealed now
/// if not). Returns the step and whether this run wrote them (then they are not
/// committed yet).
async fn sealed_step(ctx: &Ctx<'_>, link: &LinkPlan, kubeconfig: &SecretString) -> (Step, bool) {
    let Store::Sops {
        tree,
        identities,
        lock,
    } = &ctx.store
    else {
        unreachable!("sealed_step runs with SOPS only")
    };
    let _one_writer = lock.lock().await;
    match crate::secrets::sealed::seal_link_credentials(
        ctx.plan,
        tree,
        identities,
        link,
        kubeconfig,
        ctx.options.dry_run,
    ) {
        Ok((false, paths)) => (
            Step::done(
                StepId::Sealed,
                format!(
                    "{} in `{}` hold the next credentials",
                    shown(&paths),
                    tree.display()
                ),
            ),
            false,
        ),
        Ok((true, paths)) if ctx.options.dry_run => (
            Step::would(
                StepId::Sealed,
                format!(
                    "seal the next credentials into {} in `{}`",
                    shown(&paths),
                    tree.display()
                ),
            ),
            true,
        ),
        Ok((true, paths)) => (
            Step::done(
                StepId::Sealed,
                format!(
                    "sealed the next credentials into {} in `{}`",
                    shown(&paths),
                    tree.display()
                ),
            ),
            true,
        ),
        Err(e) => {
            use meshfleet_fleet::diagnostic::Hint as _;
            (
                Step::blocked(
                    StepId::Sealed,
                    meshfleet_fleet::diagnostic::error_chain(&e),
                    e.hint().unwrap_or_else(|| "nothing was written".into()),
                ),
                false,
            )
        }
    }
}

/// Names in backquotes, joined by "and".
fn shown<T: std::fmt::Display>(names: impl IntoIterator<Item = T>) -> String {
    names
        .into_iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// With SOPS: both source Secrets hold `kubeconfig`, applied by Flux from a commit. Just
/// written: blocked until committed. Already in the tree: wait up to `--wait` for Flux,
/// except in a dry run (`secrets status`), which looks once and waits for nothing.
async fn applied_step(ctx: &Ctx<'_>, link: &LinkPlan, kubeconfig: &SecretString, written: bool) -> Step {
    let client = match ctx.client(&link.source).await {
        Ok(c) => c,
        Err(e) => return Step::from_error(StepId::SourceSecrets, &e),
    };
    let context = ctx.context(&link.source);
    let names = ctx.source_secrets(link);
    let shown = shown(names.iter().map(|(ns, n)| format!("{ns}/{n}")));
    let links_stage =
        meshfleet_render::flux::kustomization_name(ctx.plan, meshfleet_render::stages::StageKind::Links);
    let commit_hint = format!(
        "commit the rendered tree and let Flux apply it on `{}` (`flux reconcile kustomization {links_stage} --with-source` to hurry it), then run `meshfleet secrets sync --rotate --out DIR` again",
        link.source
    );
    let looks_once = written || ctx.options.dry_run;
    let deadline = Instant::now()
        + if looks_once {
            Duration::ZERO
        } else {
            ctx.options.wait
        };
    loop {
        let waiting: Vec<String> = match not_holding(&client, &names, kubeconfig).await {
            Ok(stale) => stale.iter().map(|(ns, name)| format!("`{ns}/{name}`")).collect(),
            Err(e) => {
                return Step::from_error(
                    StepId::SourceSecrets,
                    &SyncError::from_kube(&e, &link.source, &context, "get secrets"),
                );
            }
        };
        if waiting.is_empty() {
            return Step::done(
                StepId::SourceSecrets,
                format!("{shown} on `{}` hold them (applied by Flux)", link.source),
            );
        }
        if ctx.options.dry_run && written {
            return Step::would(
                StepId::SourceSecrets,
                format!(
                    "wait for Flux to apply {shown} on `{}` once committed",
                    link.source
                ),
            );
        }
        if Instant::now() >= deadline {
            let why = if written {
                "the next credentials were just sealed into the tree".to_string()
            } else if ctx.options.dry_run {
                "Flux has not applied the tree's next credentials (the tree is not committed, or Flux has not reconciled it yet)"
                    .to_string()
            } else {
                format!(
                    "Flux has not applied the tree's next credentials within {}s",
                    ctx.options.wait.as_secs()
                )
            };
            return Step::blocked(
                StepId::SourceSecrets,
                format!(
                    "{} on `{}` do not hold them yet: {why}",
                    waiting.join(" and "),
                    link.source
                ),
                commit_hint,
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Vault holds `kubeconfig` at the link's key (written now, with check-and-set).
async fn vault_step(ctx: &Ctx<'_>, link: &LinkPlan, kubeconfig: &SecretString) -> Step {
    let Store::Vault { kv, vault } = &ctx.store else {
        unreachable!("vault_step runs with Vault only")
    };
    let key = vault.credentials_key(&link.source, &link.target);
    let path = format!("{}/{key}", vault.mount.trim_matches('/'));
    let state = match kv.read(&key).await {
        Ok(s) => s,
        Err(e) => return Step::from_error(StepId::Vault, &e.into()),
    };
    if let Some(current) = &state.current
        && current
            .data
            .get("kubeconfig")
            .is_some_and(|k| k.expose_secret() == kubeconfig.expose_secret())
    {
        return Step::done(
            StepId::Vault,
            format!(
                "`{path}` holds the next credentials (version {})",
                current.version
            ),
        );
    }
    if ctx.options.dry_run {
        return Step::would(StepId::Vault, format!("write the next credentials to `{path}`"));
    }
    let data: BTreeMap<String, SecretString> = [("kubeconfig".to_string(), kubeconfig.clone())].into();
    match kv.write(&key, &data, state.cas).await {
        Ok(version) => Step::done(
            StepId::Vault,
            format!("wrote the next credentials to `{path}` (version {version})"),
        ),
        Err(e) => Step::from_error(StepId::Vault, &e.into()),
    }
}

/// Both source Secrets hold `kubeconfig`: force-sync their ExternalSecrets and wait.
async fn source_secrets_step(ctx: &Ctx<'_>, link: &LinkPlan, kubeconfig: &SecretString) -> Step {
    let client = match ctx.client(&link.source).await {
        Ok(c) => c,
        Err(e) => return Step::from_error(StepId::SourceSecrets, &e),
    };
    let context = ctx.context(&link.source);
    let names = ctx.source_secrets(link);
    let shown = shown(names.iter().map(|(ns, n)| format!("{ns}/{n}")));
    let stale = match not_holding(&client, &names, kubeconfig).await {
        Ok(stale) => stale,
        Err(e) => {
            return Step::from_error(
                StepId::SourceSecrets,
                &SyncError::from_kube(&e, &link.source, &context, "get secrets"),
            );
        }
    };
    if stale.is_empty() {
        return Step::done(
            StepId::SourceSecrets,
            format!("{shown} on `{}` hold them", link.source),
        );
    }
    if ctx.options.dry_run {
        return Step::would(
            StepId::SourceSecrets,
            format!("force-sync the ExternalSecrets of {shown} on `{}`", link.source),
        );
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    for (ns, name) in &stale {
        // Untyped: the live object carries status and defaults meshfleet's type does not model.
        let resource = ApiResource::erase::<ExternalSecret>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let patch = serde_json::json!({"metadata": {"annotations": {FORCE_SYNC_ANNOTATION: stamp}}});
        if let Err(e) = api.patch(name, &patch_params(), &Patch::Merge(&patch)).await {
            return Step::from_error(
                StepId::SourceSecrets,
                &SyncError::from_kube(&e, &link.source, &context, "patch externalsecrets"),
            );
        }
        tracing::info!(cluster = %link.source, namespace = %ns, name = %name, "force-synced the ExternalSecret");
    }
    let deadline = Instant::now() + ctx.options.wait;
    loop {
        let mut waiting = Vec::new();
        for (ns, name) in &stale {
            if !secret_holds(&client, ns, name, kubeconfig).await.unwrap_or(false) {
                waiting.push(format!("`{ns}/{name}`"));
            }
        }
        if waiting.is_empty() {
            return Step::done(
                StepId::SourceSecrets,
                format!("{shown} on `{}` hold them (force-synced)", link.source),
            );
        }
        if Instant::now() >= deadline {
            return Step::blocked(
                StepId::SourceSecrets,
                format!(
                    "{} on `{}` did not get the new credentials within {}s of a force-sync",
                    waiting.join(" and "),
                    link.source,
                    ctx.options.wait.as_secs()
                ),
                format!(
                    "`kubectl --context {context} -n {} describe externalsecret {}` says why External Secrets did not refresh it; then run `meshfleet secrets sync --rotate` again",
                    stale[0].0, stale[0].1
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The Secrets of `names` (namespace, name) that do not hold `kubeconfig` yet.
async fn not_holding(
    client: &kube::Client,
    names: &[(String, String)],
    kubeconfig: &SecretString,
) -> Result<Vec<(String, String)>, kube::Error> {
    let mut stale = Vec::new();
    for (ns, name) in names {
        if !secret_holds(client, ns, name, kubeconfig).await? {
            stale.push((ns.clone(), name.clone()));
        }
    }
    Ok(stale)
}

async fn secret_holds(
    client: &kube::Client,
    ns: &str,
    name: &str,
    kubeconfig: &SecretString,
) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Some(mut secret) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let holds = secret
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .is_some_and(|v| v.0 == kubeconfig.expose_secret().as_bytes());
    crate::secrets::remote_access::scrub(&mut secret);
    Ok(holds)
}

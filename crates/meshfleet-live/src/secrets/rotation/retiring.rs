//! Phase `retiring`: per link, the old account is gone from the target and the
//! previous credentials Vault kept are refused there. Then the rotation is removed.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use secrecy::ExposeSecret as _;

use super::Stage;
use super::context::{Ctx, Store, in_use};
use super::report::{LinkProgress, RotationReport, Step, StepId};
use crate::check::access::{Access, FailureKind};
use crate::secrets::SyncError;
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_fleet::lifecycle::LinkCredentialsState;
use meshfleet_plan::LinkPlan;

/// The API server caches token reviews this long: a revoked token may work until then.
const TOKEN_REVIEW_CACHE: Duration = Duration::from_secs(12);

pub(super) async fn retire(
    ctx: &Ctx<'_>,
    links: &[&LinkPlan],
    recorded: &LinkCredentialsState,
) -> RotationReport {
    let progress: Vec<LinkProgress> =
        futures::future::join_all(links.iter().map(|l| retire_link(ctx, l))).await;
    let done = progress.iter().all(LinkProgress::ok);
    let (recorded, now) = if done {
        (
            Some(LinkCredentialsState {
                generations: recorded.generations.clone(),
                rotation: None,
            }),
            None,
        )
    } else {
        (None, Some(Stage::Retiring))
    };
    RotationReport {
        stage: Stage::Retiring,
        links: progress,
        restarts: Vec::new(),
        recorded,
        now,
    }
}

async fn retire_link(ctx: &Ctx<'_>, link: &LinkPlan) -> LinkProgress {
    let old = link.previous_account();
    let mut p = LinkProgress {
        id: link.credentials_id(),
        from: old.clone(),
        to: link.account(),
        steps: Vec::new(),
    };
    if !p.push(in_use(ctx, link).await) {
        return p;
    }
    let context = ctx.context(&link.target);
    let client = match ctx.client(&link.target).await {
        Ok(c) => c,
        Err(e) => {
            p.push(Step::from_error(StepId::OldAccountRemoved, &e));
            return p;
        }
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client, MULTICLUSTER_NAMESPACE);
    match accounts.get_opt(&old).await {
        Ok(None) => p.push(Step::done(
            StepId::OldAccountRemoved,
            format!("`{}` no longer has `{old}`", link.target),
        )),
        Ok(Some(_)) => p.push(Step::blocked(
            StepId::OldAccountRemoved,
            format!("`{}` still has `{old}`", link.target),
            format!(
                "run `meshfleet render`, commit the tree and let GitOps apply it on `{}` (the fleet no longer grants `{old}`), then run `meshfleet secrets sync --rotate` again",
                link.target
            ),
        )),
        Err(e) => p.push(Step::from_error(
            StepId::OldAccountRemoved,
            &SyncError::from_kube(&e, &link.target, &context, "get serviceaccounts"),
        )),
    };
    if !p.ok() {
        return p;
    }
    p.push(old_token_revoked(ctx, link).await);
    p
}

/// The latest earlier version of the link's Vault key that holds other credentials is
/// refused by the target (within the API server's token-review cache time).
async fn old_token_revoked(ctx: &Ctx<'_>, link: &LinkPlan) -> Step {
    let Store::Vault { kv, vault } = &ctx.store else {
        // With SOPS nothing keeps the previous kubeconfig (git history aside) to try.
        return Step::done(
            StepId::OldTokenRevoked,
            format!(
                "`{}` is gone from `{}`, and its tokens with it (SOPS keeps no earlier credentials to try)",
                link.previous_account(),
                link.target
            ),
        );
    };
    let key = vault.credentials_key(&link.source, &link.target);
    let current = match kv.read(&key).await {
        Ok(state) => state.current,
        Err(e) => return Step::from_error(StepId::OldTokenRevoked, &e.into()),
    };
    let Some(current) = current else {
        return Step::blocked(
            StepId::OldTokenRevoked,
            format!("Vault has no `{key}`"),
            "run `meshfleet secrets sync`",
        );
    };
    let now_value = current
        .data
        .get("kubeconfig")
        .map(|k| k.expose_secret().to_string());
    let mut previous = None;
    for version in (current.version.saturating_sub(10).max(1)..current.version).rev() {
        match kv.read_version(&key, version).await {
            Ok(Some(old)) => {
                let value = old.data.get("kubeconfig").cloned();
                if value.as_ref().map(|v| v.expose_secret().to_string()) != now_value {
                    previous = value.map(|v| (version, v));
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => return Step::from_error(StepId::OldTokenRevoked, &e.into()),
        }
    }
    let Some((version, kubeconfig)) = previous else {
        return Step::done(
            StepId::OldTokenRevoked,
            format!(
                "no earlier version of `{key}` holds other credentials, so there is no old token left in Vault to try"
            ),
        );
    };
    let deadline = Instant::now() + TOKEN_REVIEW_CACHE;
    loop {
        match ctx.try_credentials(link, &kubeconfig).await {
            Access::Failed {
                kind: FailureKind::Unauthorized,
                ..
            } => {
                return Step::done(
                    StepId::OldTokenRevoked,
                    format!(
                        "`{}` refuses the previous credentials (Vault version {version}): 401",
                        link.target
                    ),
                );
            }
            other if Instant::now() >= deadline => {
                return Step::blocked(
                    StepId::OldTokenRevoked,
                    format!(
                        "`{}` does not refuse the previous credentials (Vault version {version}): {}",
                        link.target,
                        match &other {
                            Access::Verified { .. } => "they are still accepted".to_string(),
                            Access::Failed { reason, .. } => reason.clone(),
                        }
                    ),
                    "the old account's token must be revoked before the rotation ends: see whether something recreated the account on the target",
                );
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

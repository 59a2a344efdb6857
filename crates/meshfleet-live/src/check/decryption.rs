//! `sops-decryption`: with `spec.secrets.sops` under Flux, each Kustomization that
//! decrypts the cluster's SOPS files (the `identity` and `links` stages) reports no
//! decryption error. A cluster whose `flux-system/sops-age` Secret is missing or holds
//! another key cannot apply its anchor or its link credentials, and Flux says so only in
//! that Kustomization's Ready condition (`BuildFailed`, "decryption failed for ...").

use super::snapshot::{ClusterState, FluxKustomization};
use super::{CheckId, CheckResult};
use meshfleet_plan::{ClusterPlan, FleetPlan, SopsPlan};
use meshfleet_render::flux::FLUX_NAMESPACE;

/// The longest part of Flux's message kept in the report.
const MESSAGE_CHARS: usize = 600;

/// Whether Flux's Ready condition says the build failed on decryption (Flux's own words:
/// "decryption failed for", "cannot get sops age decryption Secret", "failed to decrypt").
fn decryption_failed(k: &FluxKustomization) -> bool {
    k.ready.as_deref() == Some("False") && k.message.to_ascii_lowercase().contains("decrypt")
}

pub(super) fn check(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    state: &ClusterState,
    checks: &mut Vec<CheckResult>,
) {
    if state.decrypting.is_empty() {
        return;
    }
    let secret = format!("{FLUX_NAMESPACE}/{}", SopsPlan::DECRYPTION_SECRET);
    let mut fine = Vec::new();
    let mut absent = Vec::new();
    for (name, read) in &state.decrypting {
        match read {
            Err(failure) => checks.push(failure.to_result(CheckId::SopsDecryption, &state.context)),
            Ok(None) => absent.push(format!("`{name}`")),
            Ok(Some(k)) if decryption_failed(k) => {
                let recipient = plan
                    .sops
                    .as_ref()
                    .and_then(|s| s.clusters.get(&cluster.name))
                    .map_or_else(|| "the cluster's recipient".to_string(), |r| format!("`{r}`"));
                let message: String = k.message.chars().take(MESSAGE_CHARS).collect();
                checks.push(
                    CheckResult::error(
                        CheckId::SopsDecryption,
                        format!(
                            "Flux cannot decrypt the SOPS files of Kustomization `{FLUX_NAMESPACE}/{name}` ({})",
                            k.reason
                        ),
                    )
                    .details([format!("Flux: {message}")])
                    .hint(format!(
                        "the cluster's `{secret}` Secret must hold the age key of {recipient} \
                         (`spec.secrets.sops.age.clusters.{}`): recreate it with `kubectl --context {} -n {FLUX_NAMESPACE} \
                         create secret generic {} --from-file=age.agekey=KEYFILE`, then `flux reconcile kustomization {name}`",
                        cluster.name,
                        cluster.context,
                        SopsPlan::DECRYPTION_SECRET
                    )),
                );
            }
            Ok(Some(_)) => fine.push(format!("`{name}`")),
        }
    }
    if !absent.is_empty() {
        checks.push(
            CheckResult::warning(
                CheckId::SopsDecryption,
                format!(
                    "no Flux Kustomization {} in `{FLUX_NAMESPACE}` yet",
                    absent.join(", ")
                ),
            )
            .hint("commit the rendered tree; Flux creates it from the cluster's folder"),
        );
    }
    if !fine.is_empty() {
        checks.push(CheckResult::ok(
            CheckId::SopsDecryption,
            format!(
                "Flux decrypts with `{secret}`: no decryption error on {}",
                fine.join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(ready: &str, message: &str) -> FluxKustomization {
        FluxKustomization {
            ready: Some(ready.into()),
            reason: "BuildFailed".into(),
            message: message.into(),
        }
    }

    #[test]
    fn only_a_failed_build_that_names_decryption_is_a_decryption_failure() {
        // Flux's words (kustomize-controller v1.7.3).
        assert!(decryption_failed(&k(
            "False",
            "decryption failed for 'cluster-credentials-pro': failed to decrypt and format 'linkerd/cluster-credentials-pro' Secret data"
        )));
        assert!(decryption_failed(&k(
            "False",
            "cannot get sops age decryption Secret 'flux-system/sops-age': secrets \"sops-age\" not found"
        )));
        assert!(!decryption_failed(&k(
            "False",
            "dependency 'flux-system/lab-namespaces' is not ready"
        )));
        assert!(!decryption_failed(&k("True", "Applied revision: main@sha1:abc")));
    }
}

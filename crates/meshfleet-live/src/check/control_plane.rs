//! Linkerd's control plane and identity: `linkerd-installed`, `trust-anchors-match`,
//! `issuer-valid`.
//!
//! Anchors live in two places (reference section 6.1): `linkerd-config`'s values
//! (`identityTrustAnchorsPEM`, which `linkerd check`, `mc check` and `link-gen` read)
//! and the ConfigMap `linkerd-identity-trust-roots` (`ca-bundle.crt`, which the proxies
//! use). Linkerd's own check reads only the first; a stale second copy breaks mTLS while
//! `linkerd check` stays green. So both are compared with the fleet's bundle, as sets of
//! SHA-256 fingerprints (order does not matter to a proxy; a rotation bundle has two).
//!
//! Issuers made by cert-manager live 48 hours by design, so "under 60 days left" would
//! warn forever: the warning threshold is the smaller of 60 days and a third of the
//! certificate's own lifetime (cert-manager renews at about half of it).

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use time::OffsetDateTime;

use super::files::{self, TreeFiles, in_tree};
use super::snapshot::{ClusterState, IssuerSecret, LINKERD_CONFIG, TRUST_ROOTS};
use super::{CheckId, CheckResult, Status, plural, short_fingerprint};
use crate::trust::{self, AnchorSource, fingerprints};
use meshfleet_fleet::diagnostic::error_chain;
use meshfleet_identity::{CertInfo, EXPIRY_WARNING_DAYS, KeyType};
use meshfleet_plan::{ClusterPlan, FleetPlan};
use meshfleet_render::stages::{ISSUER_SECRET, StageKind};

/// Run the control-plane checks of one cluster.
pub(super) fn check(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    state: &ClusterState,
    files: &TreeFiles<'_>,
    now: OffsetDateTime,
    out: &mut Vec<CheckResult>,
) {
    let ns = &plan.linkerd.namespace;
    out.push(match &state.linkerd_config {
        Err(failure) => failure.to_result(CheckId::LinkerdInstalled, &state.context),
        Ok(None) => CheckResult::error(
            CheckId::LinkerdInstalled,
            format!("Linkerd is not installed: there is no ConfigMap `{ns}/{LINKERD_CONFIG}`"),
        )
        .hint(format!(
            "the control plane is installed from {}; {}",
            in_tree(&files.control_plane(cluster)),
            files.applied(cluster, StageKind::LinkerdControlPlane)
        ))
        .file(files.control_plane(cluster)),
        Ok(Some(config_map)) => match config_values(config_map) {
            Ok(values) => installed(plan, cluster, &values, files),
            Err(why) => CheckResult::error(
                CheckId::LinkerdInstalled,
                format!("`{ns}/{LINKERD_CONFIG}` has no readable `values`: {why}"),
            )
            .hint("reinstall or upgrade the control plane so that its chart rewrites the ConfigMap"),
        },
    });
    out.push(anchors(plan, cluster, state, files));
    out.push(issuer(plan, cluster, state, files, now));
}

/// Why `linkerd-config` has no chart values meshfleet can read.
#[derive(Debug, thiserror::Error)]
enum ConfigValuesError {
    /// The ConfigMap has no `values` key.
    #[error("no key `values`")]
    Missing,
    /// `values` is not YAML.
    #[error("{0}")]
    Yaml(#[source] serde_saphyr::Error),
}

impl meshfleet_fleet::diagnostic::Hint for ConfigValuesError {
    fn hint(&self) -> Option<String> {
        // The `linkerd-installed` check that quotes it carries the fix.
        None
    }
}

fn config_values(config_map: &ConfigMap) -> Result<Value, ConfigValuesError> {
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get("values"))
        .ok_or(ConfigValuesError::Missing)?;
    serde_saphyr::from_str::<Value>(text).map_err(ConfigValuesError::Yaml)
}

fn text_at<'v>(values: &'v Value, key: &str) -> Option<&'v str> {
    values.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn installed(plan: &FleetPlan, cluster: &ClusterPlan, values: &Value, files: &TreeFiles<'_>) -> CheckResult {
    let ns = &plan.linkerd.namespace;
    let expected_version = plan.linkerd.version.edge_tag();
    let version = text_at(values, "linkerdVersion").unwrap_or("an unknown version");
    let cluster_domain = text_at(values, "clusterDomain").unwrap_or("cluster.local");
    // The chart falls back to the cluster domain when the trust domain is empty.
    let trust_domain = text_at(values, "identityTrustDomain").unwrap_or(cluster_domain);
    let mut problems = Vec::new();
    if trust_domain != plan.linkerd.trust_domain {
        problems.push(format!(
            "trust domain `{trust_domain}`, the fleet's is `{}`",
            plan.linkerd.trust_domain
        ));
    }
    if cluster_domain != plan.linkerd.cluster_domain {
        problems.push(format!(
            "cluster domain `{cluster_domain}`, the fleet's is `{}`",
            plan.linkerd.cluster_domain
        ));
    }
    if !problems.is_empty() {
        return CheckResult::error(
            CheckId::LinkerdInstalled,
            format!("Linkerd `{version}` in `{ns}` uses other domains than the fleet"),
        )
        .details(problems)
        .hint(
            "identities and gateway identities of every link are built from these domains; \
             fix `spec.linkerd.trustDomain`/`clusterDomain` in the fleet file, or reinstall the control plane with the fleet's",
        )
        .file(files.control_plane(cluster));
    }
    if version != expected_version {
        return CheckResult::warning(
            CheckId::LinkerdInstalled,
            format!("Linkerd `{version}` is installed in `{ns}`, the fleet says `{expected_version}`"),
        )
        .hint(format!(
            "an upgrade may still be rolling out; {}",
            files.applied(cluster, StageKind::LinkerdControlPlane)
        ))
        .file(files.control_plane(cluster));
    }
    CheckResult::ok(
        CheckId::LinkerdInstalled,
        format!("Linkerd `{version}` is installed in `{ns}` (trust domain `{trust_domain}`)"),
    )
}

fn anchors(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    state: &ClusterState,
    files: &TreeFiles<'_>,
) -> CheckResult {
    let ns = &plan.linkerd.namespace;
    let fleet = &plan.identity.anchors;
    let fleet_set = fingerprints(fleet);
    // Both copies are read the way `trust extract` reads them.
    let found = trust::anchors_from_config_maps(
        ns,
        state.linkerd_config.as_ref().ok().and_then(Option::as_ref),
        state.trust_roots.as_ref().ok().and_then(Option::as_ref),
    );
    let read_failure = |source: AnchorSource| match source {
        AnchorSource::LinkerdConfig => state.linkerd_config.as_ref().err(),
        AnchorSource::TrustRoots => state.trust_roots.as_ref().err(),
    };
    let mut details = Vec::new();
    let mut differ = Vec::new();
    let mut pending = Vec::new();
    let rotation = plan.identity.rotation.as_ref();
    for source in [AnchorSource::LinkerdConfig, AnchorSource::TrustRoots] {
        let name = format!(
            "`{}` ({})",
            source.config_map(),
            source.location().replace('`', "")
        );
        let problem = read_failure(source)
            .map(ToString::to_string)
            .or_else(|| found.source(source).problem(source, ns));
        let Some(certs) = found.source(source).certs().filter(|_| problem.is_none()) else {
            details.push(format!("{name}: {}", problem.unwrap_or_default()));
            differ.push(name);
            continue;
        };
        let live = fingerprints(certs);
        if live == fleet_set {
            details.push(format!("{name}: matches"));
            continue;
        }
        if trust::judge_in_rotation(found.source(source), fleet, rotation) == trust::Verdict::Pending {
            details.push(format!(
                "{name}: holds the bundle of the rotation's previous step"
            ));
            pending.push(name);
            continue;
        }
        let extra: Vec<String> = live
            .difference(&fleet_set)
            .map(|f| short_fingerprint(f))
            .collect();
        let lacking: Vec<String> = fleet_set
            .difference(&live)
            .map(|f| short_fingerprint(f))
            .collect();
        let mut line = format!("{name}:");
        if !extra.is_empty() {
            line.push_str(&format!(
                " holds {} the fleet does not ({})",
                plural(extra.len(), "anchor"),
                extra.join(", ")
            ));
        }
        if !lacking.is_empty() {
            line.push_str(&format!(
                "{} lacks {} of the fleet ({})",
                if extra.is_empty() { "" } else { ";" },
                plural(lacking.len(), "anchor"),
                lacking.join(", ")
            ));
        }
        details.push(line);
        differ.push(name);
    }
    if differ.is_empty()
        && let Some(r) = rotation.filter(|_| !pending.is_empty())
    {
        return CheckResult::warning(
            CheckId::TrustAnchorsMatch,
            format!(
                "a trust anchor rotation is in progress (phase `{}`) and {} still hold(s) the bundle of its previous step",
                r.phase.as_str(),
                pending.join(" and ")
            ),
        )
        .details(details)
        .hint(format!(
            "expected until the GitOps engine applies {}; `meshfleet trust rotate status` shows what blocks the next step",
            in_tree(&files.anchors(cluster))
        ))
        .file(files.anchors(cluster));
    }
    if differ.is_empty() {
        let list: Vec<String> = fleet.iter().map(|c| short_fingerprint(&c.sha256)).collect();
        return CheckResult::ok(
            CheckId::TrustAnchorsMatch,
            format!(
                "`{LINKERD_CONFIG}` and `{TRUST_ROOTS}` hold the fleet's {} ({})",
                plural(fleet.len(), "anchor"),
                list.join(", ")
            ),
        );
    }
    CheckResult::error(
        CheckId::TrustAnchorsMatch,
        format!("the trust anchors in use differ from the fleet's in {}", differ.join(" and ")),
    )
    .details(details)
    .hint(format!(
        "every linked cluster must use the fleet's anchor bundle (`spec.identity.trustAnchor`); it reaches the \
         control plane through {} ({}). A control plane installed with its own anchor must be moved to the \
         fleet's: roll out a bundle of both anchors first, then the new issuer, then drop the old anchor",
        in_tree(&files.anchors(cluster)),
        files.applied(cluster, StageKind::LinkerdControlPlane)
    ))
    .file(files.anchors(cluster))
}

fn issuer(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    state: &ClusterState,
    files: &TreeFiles<'_>,
    now: OffsetDateTime,
) -> CheckResult {
    let ns = &plan.linkerd.namespace;
    let name = format!("`{ns}/{ISSUER_SECRET}`");
    let made_by = || {
        format!(
            "{} writes it ({}); {}",
            files.issuer_source(),
            in_tree(&files::issuer(cluster)),
            files.applied(cluster, StageKind::Identity)
        )
    };
    let secret = match &state.issuer {
        Err(failure) => return failure.to_result(CheckId::IssuerValid, &state.context),
        Ok(None) => {
            return CheckResult::error(CheckId::IssuerValid, format!("there is no issuer Secret {name}"))
                .hint(made_by())
                .file(files::issuer(cluster));
        }
        Ok(Some(secret)) => secret,
    };
    match judge_issuer(plan, secret, now) {
        Ok(result) => result,
        Err(problem) => CheckResult::error(CheckId::IssuerValid, format!("the issuer {name} {problem}"))
            .hint(made_by())
            .file(files::issuer(cluster)),
    }
}

/// What makes the issuer Secret unusable. The message is a predicate: the
/// `issuer-valid` check puts "the issuer `linkerd/linkerd-identity-issuer`" before it.
#[derive(Debug, thiserror::Error)]
enum IssuerProblem {
    /// Not a `kubernetes.io/tls` Secret.
    #[error(
        "has type `{found}`; the fleet's control plane reads `kubernetes.io/tls` (tls.crt, tls.key, ca.crt)"
    )]
    WrongType {
        /// The Secret's type (`Opaque` when unset).
        found: String,
    },
    /// No private key.
    #[error("has no `tls.key`")]
    NoKey,
    /// No certificate.
    #[error("has no `tls.crt`")]
    NoCertificate,
    /// `tls.crt` is not a PEM bundle of certificates.
    #[error("`tls.crt` does not parse: {}", error_chain(.0))]
    Unparsable(#[source] meshfleet_identity::IdentityError),
    /// `tls.crt` parses to no certificate.
    #[error("`tls.crt` holds no certificate")]
    Empty,
    /// A key Linkerd cannot use.
    #[error("uses a {0} key; Linkerd requires ECDSA P-256")]
    KeyType(KeyType),
    /// A leaf certificate where an intermediate CA belongs.
    #[error("is not a CA certificate; Linkerd's issuer must be an intermediate CA")]
    NotCa,
    /// Valid only later.
    #[error("is not valid before {}", meshfleet_identity::format_time(*.not_before))]
    NotYetValid {
        /// Start of validity, Unix seconds.
        not_before: i64,
    },
    /// No longer valid.
    #[error("expired {}", meshfleet_identity::format_time(*.not_after))]
    Expired {
        /// End of validity, Unix seconds.
        not_after: i64,
    },
    /// Signed by another anchor than the fleet's.
    #[error("(`{subject}`) is not signed by the fleet's trust anchor")]
    NotSigned {
        /// The issuer's subject.
        subject: String,
    },
}

impl meshfleet_fleet::diagnostic::Hint for IssuerProblem {
    fn hint(&self) -> Option<String> {
        // The `issuer-valid` check that quotes it says how the issuer is made.
        None
    }
}

/// The issuer's verdict, or the problem that makes it unusable.
fn judge_issuer(
    plan: &FleetPlan,
    secret: &IssuerSecret,
    now: OffsetDateTime,
) -> Result<CheckResult, IssuerProblem> {
    if secret.secret_type.as_deref() != Some("kubernetes.io/tls") {
        return Err(IssuerProblem::WrongType {
            found: secret.secret_type.as_deref().unwrap_or("Opaque").to_string(),
        });
    }
    if !secret.has_key {
        return Err(IssuerProblem::NoKey);
    }
    let pem = secret.tls_crt.as_deref().ok_or(IssuerProblem::NoCertificate)?;
    let chain = meshfleet_identity::parse_pem_bundle(pem).map_err(IssuerProblem::Unparsable)?;
    let fleet = &plan.identity.anchors;
    let Some(cert) = chain.first() else {
        return Err(IssuerProblem::Empty);
    };
    if cert.key_type != KeyType::EcdsaP256 {
        return Err(IssuerProblem::KeyType(cert.key_type.clone()));
    }
    if !cert.is_ca {
        return Err(IssuerProblem::NotCa);
    }
    if !cert.valid_at(now) {
        return Err(if now.unix_timestamp() < cert.not_before {
            IssuerProblem::NotYetValid {
                not_before: cert.not_before,
            }
        } else {
            IssuerProblem::Expired {
                not_after: cert.not_after,
            }
        });
    }
    if meshfleet_identity::chains_to(&chain, fleet).is_none() {
        return Err(IssuerProblem::NotSigned {
            subject: cert.subject.clone(),
        });
    }
    let mut details = Vec::new();
    let mut status = Status::Ok;
    match secret.ca_crt.as_deref().map(meshfleet_identity::parse_pem_bundle) {
        Some(Ok(ca)) if fingerprints(&ca) == fingerprints(fleet) => {}
        Some(Ok(_)) => {
            status = Status::Warning;
            details.push(
                "`ca.crt` holds other anchors than the fleet's (`linkerd check` compares with it)".into(),
            );
        }
        Some(Err(e)) => {
            status = Status::Warning;
            details.push(format!("`ca.crt` does not parse: {}", error_chain(&e)));
        }
        None => {
            status = Status::Warning;
            details.push("`ca.crt` is missing (`linkerd check` reads the anchor from it)".into());
        }
    }
    let (left, threshold, reason) = expiry(cert, now);
    if left < threshold {
        status = Status::Warning;
        details.push(format!(
            "it ends {} ({}); the warning starts {reason}",
            meshfleet_identity::format_time(cert.not_after),
            span(left)
        ));
    }
    let message = format!(
        "issuer `{}` chains to the fleet's anchor and is valid for {} more",
        cert.subject,
        span(left)
    );
    let result = CheckResult::ok(CheckId::IssuerValid, message)
        .details(details)
        .at_least(status);
    Ok(if status == Status::Ok {
        result
    } else {
        result.hint(match plan.identity.issuer {
            meshfleet_fleet::model::IssuerKind::CertManager => {
                "cert-manager renews it long before this; see `kubectl -n linkerd describe certificate linkerd-identity-issuer`"
            }
            meshfleet_fleet::model::IssuerKind::Vault => {
                "issue a new issuer (`meshfleet certs init` adds missing ones) and write it with `meshfleet secrets sync`"
            }
        })
    })
}

/// Seconds left, the warning threshold in seconds, and why that threshold.
fn expiry(cert: &CertInfo, now: OffsetDateTime) -> (i64, i64, String) {
    let left = cert.not_after - now.unix_timestamp();
    let lifetime = (cert.not_after - cert.not_before).max(1);
    let fixed = EXPIRY_WARNING_DAYS * 86_400;
    if lifetime / 3 < fixed {
        (
            left,
            lifetime / 3,
            format!(
                "under a third of its {} lifetime (short-lived issuers, such as cert-manager's, are renewed long before their end)",
                span(lifetime)
            ),
        )
    } else {
        (left, fixed, format!("under {EXPIRY_WARNING_DAYS} days"))
    }
}

/// A duration in seconds as days, hours or minutes.
fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    if seconds >= 3 * 86_400 {
        plural(usize::try_from(seconds / 86_400).unwrap_or(usize::MAX), "day")
    } else if seconds >= 2 * 3600 {
        format!("{}h", seconds / 3600)
    } else {
        format!("{}m", seconds / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            subject: "CN=identity".into(),
            issuer: "CN=root".into(),
            key_type: KeyType::EcdsaP256,
            not_before,
            not_after,
            is_ca: true,
            path_len: Some(0),
            key_cert_sign: Some(true),
            eku_server_auth: None,
            sha256: String::new(),
            der: Vec::new(),
        }
    }

    #[test]
    fn long_lived_issuers_warn_under_sixty_days() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
        let t = now.unix_timestamp();
        let year = cert(t - 300 * 86_400, t + 65 * 86_400);
        let (left, threshold, _) = expiry(&year, now);
        assert!(left >= threshold);
        let year = cert(t - 310 * 86_400, t + 55 * 86_400);
        let (left, threshold, why) = expiry(&year, now);
        assert!(left < threshold);
        assert!(why.contains("60 days"));
    }

    #[test]
    fn short_lived_issuers_warn_relative_to_their_lifetime() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
        let t = now.unix_timestamp();
        // cert-manager's 48h issuer, just renewed: 47h left is fine, not "under 60 days".
        let fresh = cert(t - 3600, t + 47 * 3600);
        let (left, threshold, _) = expiry(&fresh, now);
        assert!(left >= threshold);
        // Renewal failed: 10h of 48h left is under a third.
        let stale = cert(t - 38 * 3600, t + 10 * 3600);
        let (left, threshold, why) = expiry(&stale, now);
        assert!(left < threshold, "{left} {threshold}");
        assert!(why.contains("third of its 48h lifetime"), "{why}");
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(span(364 * 86_400 + 5), "364 days");
        assert_eq!(span(47 * 3600), "47h");
        assert_eq!(span(90), "1m");
    }
}

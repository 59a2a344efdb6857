//! Whether each side of a link trusts the anchor that signed the other side's issuer.
//!
//! A proxy's certificate chains to its cluster's issuer; the peer's proxy accepts it only
//! if the issuer's anchor is in the peer cluster's bundle (`linkerd-identity-trust-roots`,
//! which the injector hands to every proxy). An anchor removed from one cluster's bundle
//! while the other cluster's issuer (and so its proxies) still chains to it is exactly
//! the handshake failure of a trust anchor retired too early.

use meshfleet_identity::CertInfo;

/// One cluster's side: its bundle and its issuer certificate (`None`: unreadable).
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// The anchors in its bundle.
    pub bundle: Option<&'a [CertInfo]>,
    /// Its identity issuer's certificate.
    pub issuer: Option<&'a CertInfo>,
}

/// A side whose issuer the other side does not trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The cluster whose proxies present the certificates.
    pub presenting: String,
    /// The cluster whose proxies refuse them.
    pub refusing: String,
    /// The anchor that signed the presenting side's issuer (short fingerprint), if it is
    /// one the refusing side does not hold but the presenting side does.
    pub anchor: Option<String>,
    /// The refusing side's anchors (short fingerprints).
    pub refusing_bundle: Vec<String>,
}

impl Untrusted {
    /// One line for a report.
    pub fn describe(&self) -> String {
        format!(
            "`{}` does not trust the anchor that signed `{}`'s issuer{} (its bundle holds {}), so its proxies refuse the certificates of `{}`'s proxies",
            self.refusing,
            self.presenting,
            self.anchor
                .as_deref()
                .map_or_else(String::new, |a| format!(" ({a})")),
            if self.refusing_bundle.is_empty() {
                "nothing".to_string()
            } else {
                self.refusing_bundle.join(", ")
            },
            self.presenting,
        )
    }
}

/// The first side (source, then target) whose issuer the other side's bundle cannot
/// verify; `None` when both trust each other or something could not be read.
pub fn untrusted(source: Side<'_>, target: Side<'_>) -> Option<Untrusted> {
    [(source, target), (target, source)]
        .into_iter()
        .find_map(|(presenting, refusing)| one_way(presenting, refusing))
}

fn one_way(presenting: Side<'_>, refusing: Side<'_>) -> Option<Untrusted> {
    let issuer = presenting.issuer?;
    let bundle = refusing.bundle?;
    if bundle
        .iter()
        .any(|a| meshfleet_identity::signed_by(&issuer.der, &a.der))
    {
        return None;
    }
    let anchor = presenting
        .bundle
        .into_iter()
        .flatten()
        .find(|a| meshfleet_identity::signed_by(&issuer.der, &a.der))
        .map(|a| meshfleet_identity::short(&a.sha256));
    Some(Untrusted {
        presenting: presenting.cluster.to_string(),
        refusing: refusing.cluster.to_string(),
        anchor,
        refusing_bundle: bundle
            .iter()
            .map(|a| meshfleet_identity::short(&a.sha256))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use meshfleet_identity::{KeyedCertificate, generate_anchor, generate_issuer, parse_pem_bundle};
    use time::OffsetDateTime;

    use super::*;

    fn info(pem: &str) -> CertInfo {
        parse_pem_bundle(pem).expect("pem").remove(0)
    }

    fn issuer_of(anchor: &KeyedCertificate) -> CertInfo {
        let now = OffsetDateTime::now_utc();
        let issuer = generate_issuer(
            &anchor.cert_pem,
            &anchor.key_pem,
            "identity.linkerd.cluster.local",
            now,
        )
        .expect("issuer");
        info(&issuer.cert_pem)
    }

    #[test]
    fn an_anchor_retired_on_one_side_too_early_is_named() {
        let now = OffsetDateTime::now_utc();
        let (old, new) = (
            generate_anchor(now).expect("old"),
            generate_anchor(now).expect("new"),
        );
        let (old_info, new_info) = (info(&old.cert_pem), info(&new.cert_pem));
        let both = [old_info.clone(), new_info.clone()];
        let only_new = [new_info.clone()];
        let (alpha_issuer, beta_issuer) = (issuer_of(&old), issuer_of(&new));
        // alpha: both anchors, issuer still on the old one; beta already retired the old.
        let alpha = Side {
            cluster: "alpha",
            bundle: Some(&both),
            issuer: Some(&alpha_issuer),
        };
        let beta = Side {
            cluster: "beta",
            bundle: Some(&only_new),
            issuer: Some(&beta_issuer),
        };
        let found = untrusted(alpha, beta).expect("beta refuses alpha");
        assert_eq!(found.presenting, "alpha");
        assert_eq!(found.refusing, "beta");
        assert_eq!(found.anchor, Some(meshfleet_identity::short(&old_info.sha256)));
        assert_eq!(
            found.refusing_bundle,
            [meshfleet_identity::short(&new_info.sha256)]
        );
        assert!(
            found.describe().contains("`beta` does not trust"),
            "{}",
            found.describe()
        );
        // Either direction of the link finds it.
        assert_eq!(untrusted(beta, alpha).map(|u| u.refusing), Some("beta".into()));
        // Mid-rotation, with both anchors on both sides, nothing is wrong.
        let beta_both = Side {
            bundle: Some(&both),
            ..beta
        };
        assert_eq!(untrusted(alpha, beta_both), None);
        // Unreadable: nothing to say.
        assert_eq!(
            untrusted(
                Side {
                    issuer: None,
                    ..alpha
                },
                Side { bundle: None, ..beta }
            ),
            None
        );
    }
}

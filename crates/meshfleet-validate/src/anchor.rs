//! Rules for the trust anchor file: it exists, holds only CA certificates that can sign
//! an issuer (path length absent or at least 1, certificate signing allowed, a key type
//! Linkerd accepts), and is valid now; a warning under 60 days left.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use meshfleet_fleet::diagnostic::Finding;
use meshfleet_identity::{EXPIRY_WARNING_DAYS, KeyType};

use super::{Ctx, Parsed, Rule};
use crate::TrustAnchors;

/// The trust anchor file as read from disk.
#[derive(Debug, Clone)]
pub enum AnchorFile {
    /// Its text.
    Text(String),
    /// The file does not exist.
    Missing(PathBuf),
    /// It exists but could not be read.
    Unreadable(PathBuf, String),
}

impl AnchorFile {
    /// Read the anchor file at `path`.
    pub fn read(path: &Path) -> Self {
        match fs_err::read_to_string(path) {
            Ok(text) => Self::Text(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::Missing(path.to_path_buf()),
            Err(e) => Self::Unreadable(path.to_path_buf(), e.to_string()),
        }
    }
}

pub(super) fn check(
    ctx: &Ctx<'_>,
    anchor: &AnchorFile,
    now: OffsetDateTime,
    parsed: &mut Parsed,
    out: &mut Vec<Finding>,
) {
    let at = ctx.fleet.spec.identity.trust_anchor.at;
    let written = &ctx.fleet.spec.identity.trust_anchor.value;
    let text = match anchor {
        AnchorFile::Text(text) => text,
        AnchorFile::Missing(path) => {
            out.push(Finding::error(Rule::TrustAnchorMissing,
                at,
                format!("trust anchor `{written}` does not exist (looked for `{}`)", path.display()),
                "run `meshfleet certs init` to create the anchor (and its key, outside the rendered tree), or fix the path",
            ));
            return;
        }
        AnchorFile::Unreadable(path, why) => {
            out.push(Finding::error(
                Rule::TrustAnchorMissing,
                at,
                format!("trust anchor `{}` cannot be read: {why}", path.display()),
                "check the file's permissions",
            ));
            return;
        }
    };
    let certs = match meshfleet_identity::parse_pem_bundle(text) {
        Ok(certs) => certs,
        Err(why) => {
            out.push(Finding::error(Rule::TrustAnchorInvalid,
                at,
                format!("trust anchor `{written}`: {}", meshfleet_fleet::diagnostic::error_chain(&why)),
                "the file must hold only PEM certificates (the public anchor, or old and new during a rotation); keys belong in the key folder",
            ));
            return;
        }
    };
    let Ok(rotation) = super::rotation::check(ctx, &certs, out) else {
        return;
    };
    parsed.anchors = Some(TrustAnchors {
        pem: format!("{}\n", text.trim()),
        certs: certs.clone(),
        rotation,
    });
    for (i, cert) in certs.iter().enumerate() {
        let which = if certs.len() == 1 {
            format!("trust anchor `{}`", cert.subject)
        } else {
            format!("trust anchor {} of {} (`{}`)", i + 1, certs.len(), cert.subject)
        };
        let invalid =
            |message: String, hint: &str| Finding::error(Rule::TrustAnchorInvalid, at, message, hint);
        if !cert.is_ca {
            out.push(invalid(
                format!("{which} is not a CA certificate"),
                "the anchor must have BasicConstraints CA:TRUE; create one with `meshfleet certs init`",
            ));
        }
        if cert.path_len == Some(0) {
            out.push(invalid(
                format!("{which} has path length 0, so the issuer it signs cannot sign proxy certificates"),
                "make the anchor with path length 1 or none (`meshfleet certs init` uses 1)",
            ));
        }
        if cert.key_cert_sign == Some(false) {
            out.push(invalid(
                format!("{which} has a KeyUsage without certificate signing"),
                "the anchor's KeyUsage must include keyCertSign (and cRLSign)",
            ));
        }
        let key_ok = matches!(cert.key_type, KeyType::EcdsaP256 | KeyType::Rsa(2048 | 4096));
        if !key_ok {
            out.push(invalid(
                format!("{which} uses a {} key", cert.key_type),
                "Linkerd accepts anchors with ECDSA P-256 or RSA 2048/4096 keys",
            ));
        }
        if !cert.valid_at(now) {
            let expired = now.unix_timestamp() > cert.not_after;
            out.push(Finding::error(Rule::TrustAnchorExpired,
                at,
                if expired {
                    format!("{which} expired on {}", meshfleet_identity::format_time(cert.not_after))
                } else {
                    format!("{which} is not valid before {}", meshfleet_identity::format_time(cert.not_before))
                },
                "make a new anchor and roll it out as a bundle with the old one; proxies reject certificates outside the anchor's validity",
            ));
        } else if cert.days_left(now) < EXPIRY_WARNING_DAYS {
            out.push(Finding::warning(Rule::TrustAnchorExpiring,
                at,
                format!("{which} expires in {} days ({})", cert.days_left(now), meshfleet_identity::format_time(cert.not_after)),
                "rotate it now: add a new anchor to the bundle, roll out, move issuers, then drop the old one",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use crate::fixtures::{BASE, anchor_pem};
    use crate::{AnchorFile, validate};

    fn anchor_rules(anchor: &AnchorFile, now: OffsetDateTime) -> Vec<&'static str> {
        let fleet = meshfleet_fleet::parse(BASE).expect("parses");
        validate(&fleet, anchor, now)
            .iter()
            .map(|f| f.rule.as_str())
            .collect()
    }

    #[test]
    fn a_missing_anchor_and_a_key_in_the_anchor_file_are_errors() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            anchor_rules(&AnchorFile::Missing("anchor.crt".into()), now),
            ["trust-anchor-missing"]
        );
        let anchor = meshfleet_identity::generate_anchor(now).expect("anchor");
        let with_key = format!(
            "{}{}",
            anchor.cert_pem,
            secrecy::ExposeSecret::expose_secret(&anchor.key_pem)
        );
        let fleet = meshfleet_fleet::parse(BASE).expect("parses");
        let found = validate(&fleet, &AnchorFile::Text(with_key), now);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].rule, "trust-anchor-invalid");
        assert!(found[0].message.contains("`PRIVATE KEY`"), "{}", found[0].message);
        assert!(
            !found[0].message.contains("MI"),
            "no key text: {}",
            found[0].message
        );
    }

    #[test]
    fn validity_is_judged_at_now() {
        let anchor = AnchorFile::Text(anchor_pem().to_string());
        let now = OffsetDateTime::now_utc();
        assert!(anchor_rules(&anchor, now).is_empty());
        assert_eq!(
            anchor_rules(&anchor, now + Duration::days(3650 - 30)),
            ["trust-anchor-expiring"]
        );
        assert_eq!(
            anchor_rules(&anchor, now + Duration::days(3651)),
            ["trust-anchor-expired"]
        );
    }
}

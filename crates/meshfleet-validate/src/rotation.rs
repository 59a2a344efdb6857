//! Rule `anchor-rotation`: `spec.identity.rotation` must describe the anchor bundle it
//! sits beside. `from` and `to` are SHA-256 fingerprints of two different anchors; while
//! the old anchor is still trusted (every phase but `retire`) the bundle holds exactly
//! both, and in `retire` exactly `to`. A bundle edited by hand halfway through a rotation
//! is caught here, before `render` could ship a bundle that breaks cross-cluster mTLS.

use std::collections::BTreeSet;

use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::lifecycle::AnchorRotation;
use meshfleet_identity::CertInfo;
use meshfleet_identity::normalise_fingerprint;

use super::{Ctx, Rule};

/// Check the rotation against the bundle's certificates. `Err(())` when a finding was
/// pushed (the plan is not built then); `Ok(None)` when no rotation is in progress.
pub(super) fn check(
    ctx: &Ctx<'_>,
    certs: &[CertInfo],
    out: &mut Vec<Finding>,
) -> Result<Option<AnchorRotation>, ()> {
    let Some(rotation) = ctx.fleet.spec.identity.rotation.as_ref() else {
        return Ok(None);
    };
    let r = &rotation.value;
    let anchor_file = &ctx.fleet.spec.identity.trust_anchor.value;
    let mut fingerprint = |field: &meshfleet_fleet::located::Located<String>, name: &str| {
        let parsed = normalise_fingerprint(&field.value);
        if parsed.is_none() {
            out.push(Finding::error(
                Rule::AnchorRotation,
                field.at,
                format!("`rotation.{name}` is not a SHA-256 fingerprint"),
                "write the fingerprint `meshfleet certs inspect` prints (32 hex bytes separated by `:`); \
                 `meshfleet trust rotate` writes this field",
            ));
        }
        parsed
    };
    let (from, to) = (fingerprint(&r.from, "from"), fingerprint(&r.to, "to"));
    let (Some(from), Some(to)) = (from, to) else {
        return Err(());
    };
    if from == to {
        out.push(Finding::error(
            Rule::AnchorRotation,
            r.to.at,
            "`rotation.to` is the same anchor as `rotation.from`",
            "a rotation moves to a new anchor: start one with `meshfleet trust rotate start`",
        ));
        return Err(());
    }
    let phase = r.phase.value;
    let live: BTreeSet<&str> = certs.iter().map(|c| c.sha256.as_str()).collect();
    let wanted: BTreeSet<&str> = if phase.bundle_holds_both() {
        [from.as_str(), to.as_str()].into()
    } else {
        [to.as_str()].into()
    };
    if live != wanted {
        let expected = if phase.bundle_holds_both() {
            "exactly the two anchors `rotation.from` and `rotation.to`"
        } else {
            "only the anchor `rotation.to`"
        };
        out.push(Finding::error(
            Rule::AnchorRotation,
            r.phase.at,
            format!(
                "in phase `{}` the trust anchor bundle `{anchor_file}` must hold {expected}; {}",
                phase.as_str(),
                describe_difference(&live, &wanted)
            ),
            "the bundle and the rotation state are written together by `meshfleet trust rotate`; restore both \
             from the same commit, or finish with `meshfleet trust rotate next`/`abort`",
        ));
        return Err(());
    }
    Ok(Some(AnchorRotation { phase, from, to }))
}

fn describe_difference(live: &BTreeSet<&str>, wanted: &BTreeSet<&str>) -> String {
    let extra = live.difference(wanted).count();
    let lacking = wanted.difference(live).count();
    let mut parts = Vec::new();
    if extra > 0 {
        parts.push(format!("it holds {extra} anchor(s) the rotation does not name"));
    }
    if lacking > 0 {
        parts.push(format!("it lacks {lacking} of them"));
    }
    parts.join(" and ")
}

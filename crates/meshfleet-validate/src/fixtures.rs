//! Fleets for tests of this layer and the ones above: the ground floor's base fleet run
//! through parsing and validation with a fresh trust anchor. Not part of the API.

use std::sync::OnceLock;

use time::OffsetDateTime;

use meshfleet_fleet::diagnostic::Finding;

use crate::{AnchorFile, CheckedFleet};

pub use meshfleet_fleet::fixtures::{BASE, base_with};

/// A valid anchor, made once per test binary.
pub fn anchor_pem() -> &'static str {
    static ANCHOR: OnceLock<String> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        meshfleet_identity::generate_anchor(OffsetDateTime::now_utc())
            .expect("anchor")
            .cert_pem
    })
}

/// Parse and validate `text` with a valid anchor.
pub fn check(text: &str) -> CheckedFleet {
    let fleet = meshfleet_fleet::parse(text).unwrap_or_else(|f| panic!("parses: {f:?}"));
    let source = meshfleet_fleet::FleetSource {
        path: "fleet.yaml".into(),
        text: text.to_string(),
    };
    let anchor = AnchorFile::Text(anchor_pem().to_string());
    crate::check(source, fleet, anchor, OffsetDateTime::now_utc())
}

/// The findings of `text`.
pub fn findings(text: &str) -> Vec<Finding> {
    check(text).findings
}

/// The rule ids of the findings of `text`.
pub fn rules(text: &str) -> Vec<&'static str> {
    findings(text).iter().map(|f| f.rule.as_str()).collect()
}

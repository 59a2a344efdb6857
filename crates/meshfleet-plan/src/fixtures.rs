//! Fleets for tests of the plan and the layers above it: the validation fixtures, and
//! the plan of a valid fleet text. Not part of the API.

pub use meshfleet_validate::fixtures::{BASE, anchor_pem, base_with, check, findings, rules};

use crate::FleetPlan;

/// The plan of `text`, which must be valid.
pub fn plan(text: &str) -> FleetPlan {
    let checked = check(text);
    crate::from_checked(&checked).unwrap_or_else(|e| panic!("valid fleet: {e}: {:#?}", checked.findings))
}

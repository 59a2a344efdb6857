//! Live commands: talking to the fleet's clusters and to Vault.
//!
//! Everything here starts from the plan (`crate::plan::FleetPlan`), which says what
//! should exist; the live modules read what does exist and report, or write to Vault.
//!
//! - [`cluster`]: one Kubernetes client per fleet cluster, from the kubeconfig context
//!   the fleet names, with timeouts so an unreachable cluster fails fast.

pub mod cluster;

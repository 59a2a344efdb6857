//! Live commands: talking to the fleet's clusters and to Vault.
//!
//! Everything here starts from the plan (`meshfleet_plan::FleetPlan`), which says what
//! should exist; the live modules read what does exist and report, or write to Vault.
//!
//! - [`cluster`]: one Kubernetes client per fleet cluster, from the kubeconfig context
//!   the fleet names, with timeouts so an unreachable cluster fails fast.
//! - [`check`]: `meshfleet check`, every cluster read at once and judged against what
//!   meshfleet renders, as a report of checks with stable ids.
//! - [`vault`] and [`secrets`]: a small KV v2 client, and `secrets sync`, which puts link
//!   kubeconfigs and identity keys where the rendered ExternalSecrets read them.
//! - [`trust`]: the anchor bundles a cluster really uses (`linkerd-config` and
//!   `linkerd-identity-trust-roots`) compared with the fleet's (`trust extract`/`verify`).
//! - [`anchor_rotation`]: where every cluster stands in a trust anchor rotation
//!   (`trust rotate status`), and what blocks its next step.
//! - [`retired_keys`]: private keys a trust anchor rotation retired, still in Vault's
//!   KV v2 history; found for `trust rotate status`, destroyed at the rotation's end.
//! - [`import`]: what a running mesh is (`meshfleet import`), read from every context
//!   at once and composed into a new fleet file and a report.
//! - [`migrate`]: what the deprecated `linkerd multicluster link` left, and its removal
//!   once the declarative controller of the same link is available (`migrate`).
//! - [`verify`]: `meshfleet verify`, a request across each link through the clusters'
//!   data plane, with the identity the server saw and the likely cause of a failure.

pub mod anchor_rotation;
pub mod check;
pub mod cluster;
pub mod import;
pub mod kube_failure;
pub mod migrate;
pub mod retired_keys;
pub mod secrets;
pub mod trust;
pub mod vault;
pub mod verify;

pub use meshfleet_fleet::diagnostic::error_chain;

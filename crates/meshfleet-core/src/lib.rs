//! meshfleet's library: one `fleet.yaml` in, a GitOps tree and live checks out.
//!
//! A thin facade (as `kube` is over `kube-core`, `kube-client` and `kube-runtime`) over
//! one crate per floor of the pipeline. Data flows one way, and each crate depends only
//! on the floors below it, so a back-edge does not compile:
//!
//! 1. [`fleet`] (`meshfleet-fleet`): the fleet file as written, with the line and column
//!    of every value, its comment-preserving editor, and the small shared types
//!    ([`diagnostic`], rule ids, [`defaults`], [`names`], [`duration`], [`selector`],
//!    [`version`], [`sensitive`]);
//! 2. [`identity`] (`meshfleet-identity`): certificates and the key folder;
//! 3. [`validate`] (`meshfleet-validate`): every static rule, all findings at once, and
//!    the checked fleet: every value parsed once, into a typed one;
//! 4. [`plan`] (`meshfleet-plan`): the desired state per cluster, built from the checked
//!    fleet (defaults applied, links expanded, every derived name and port computed
//!    once), and the trust anchor rotation's offline steps ([`anchor_rotation`]);
//! 5. [`render`] (`meshfleet-render`): the plan as files for Flux or Argo CD;
//! 6. [`live`] (`meshfleet-live`): the clusters and Vault, read, checked and changed;
//! 7. [`graph`] (`meshfleet-graph`): pictures of the plan, coloured by live checks.
//!
//! No crate here prints or exits: the `meshfleet` binary owns output and exit codes.

pub use meshfleet_fleet as fleet;
pub use meshfleet_fleet::{defaults, diagnostic, duration, names, selector, sensitive, version};
pub use meshfleet_graph as graph;
pub use meshfleet_identity as identity;
pub use meshfleet_identity::keys;
pub use meshfleet_live as live;
pub use meshfleet_plan as plan;
pub use meshfleet_plan::anchor_rotation;
pub use meshfleet_render as render;
pub use meshfleet_validate as validate;

//! meshfleet's library core: one `fleet.yaml` in, a GitOps tree and live checks out.
//!
//! Data flows one way, and the modules follow it:
//!
//! 1. [`fleet`] reads and parses the fleet file, keeping line and column of every value;
//! 2. [`validate`] runs every static rule and returns all [`diagnostic::Finding`]s at
//!    once, parsing each value it checks into a typed one;
//! 3. [`plan`] is what validation builds from those typed values when there is no error:
//!    the desired state per cluster (defaults applied, links expanded, every derived
//!    name and port computed once);
//! 4. [`render`] turns the plan into files for Flux or Argo CD, and writes them
//!    atomically.
//!
//! [`identity`] makes and reads certificates beside that pipeline. This crate never
//! prints or exits: the `meshfleet` binary owns output and exit codes.

pub mod anchor_rotation;
pub mod defaults;
pub mod diagnostic;
pub mod duration;
pub mod fleet;
pub mod graph;
pub mod identity;
pub mod keys;
pub mod live;
pub mod names;
pub mod plan;
pub mod render;
pub mod selector;
pub mod sensitive;
#[cfg(test)]
mod test_fleet;
pub mod validate;
pub mod version;

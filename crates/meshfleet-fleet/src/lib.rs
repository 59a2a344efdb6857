//! The ground floor of meshfleet: the fleet file as the user wrote it, and the small
//! types every layer above shares.
//!
//! - the file: [`load`] finds, reads and parses it strictly, keeping line and column of
//!   every value ([`located`]) in a raw model ([`model`]) that says what was written, not
//!   what it means, and reports every shape mistake at once (`shape`); [`links`] expands
//!   the topology into declared links; [`edit`] is the one
//!   editor of the file (the lifecycle commands' states of [`lifecycle`], comments kept,
//!   every edit verified before it is kept); [`draft`] writes a new one (`init`, `import`),
//!   comments and all, read back before it is kept ([`starter`] is `init`'s); [`atomic`] is the one
//!   writer of every file meshfleet leaves for a user (trees, bundles, keys, the fleet file);
//! - what is said about it: [`diagnostic`] (findings, the [`diagnostic::Hint`] every
//!   error carries) and [`rules`] (their stable ids);
//! - shared vocabulary: [`defaults`], [`duration`], [`names`], [`selector`], [`version`],
//!   and [`sensitive`] (secret material kept out of messages).
//!
//! Nothing here knows validation, the plan, rendering or clusters: those are the crates
//! above (`meshfleet-validate`, `meshfleet-plan`, `meshfleet-render`, `meshfleet-live`),
//! and the compiler keeps it that way.

pub mod atomic;
pub mod defaults;
pub mod diagnostic;
pub mod draft;
pub mod duration;
pub mod edit;
#[doc(hidden)]
pub mod fixtures;
pub mod lifecycle;
pub mod links;
mod load;
pub mod located;
pub mod model;
pub mod names;
pub mod rules;
pub mod selector;
pub mod sensitive;
mod shape;
pub mod starter;
pub mod version;

pub use load::{
    FLEET_FILE_NAME, FLEET_FILE_NAMES, FleetSource, LoadError, MESHFLEET_FILE_NAME, STDIN_PATH, anchor_path,
    load, offset_of, parse, read, resolve_path,
};
pub use model::Fleet;

//! meshfleet integration tests: one binary, one module per area.

mod bad_input;
mod conformance;
mod support;

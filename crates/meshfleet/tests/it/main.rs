//! meshfleet integration tests: one binary, one module per area.

mod anchor_rotation;
mod apiserver;
mod bad_input;
mod certs;
mod check;
mod cli_snapshots;
mod conformance;
mod examples;
mod fixtures;
mod fleet_file;
mod gitops_flux;
mod graph;
mod jobs;
mod jobs_cli;
mod links;
mod migrate;
mod no_secret_in_messages;
mod picture;
mod real_linkerd;
mod render;
mod robustness;
mod secrets_sync;
mod snapshot;
mod support;
mod testenv;
mod trust;

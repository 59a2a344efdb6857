//! `validate`: every static rule of PRODUCT.md section 6 and the fleet-level rules of the
//! Linkerd reference (section 9), run over a parsed fleet file.
//!
//! Rules never stop at the first problem: each module below pushes findings into one
//! list, which is sorted by position so the report reads top to bottom. Each finding has
//! a stable rule id (listed in [`RULES`]) that `-o json` consumers can match on.
//!
//! - [`settings`]: `apiVersion`, names, `spec.linkerd`, `spec.gitops`, `spec.secrets`
//! - [`clusters`]: cluster names, link names, contexts, API servers, gateways
//! - [`links`]: link endpoints, modes, selectors, duplicates, mirror-name budget
//! - [`network`]: CIDRs, overlaps across linked clusters, `clusterNetworks`
//! - [`anchor`]: the trust anchor file

mod anchor;
mod clusters;
mod links;
mod network;
mod rotation;
mod settings;

#[doc(hidden)]
pub mod fixtures;

use std::collections::HashMap;
use std::path::Path;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use time::OffsetDateTime;

use meshfleet_fleet::Fleet;
use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::duration::ProbePeriod;
use meshfleet_fleet::links::{DeclaredLink, declared_links};
use meshfleet_fleet::model::ClusterSpec;
use meshfleet_fleet::version::LinkerdVersion;
use meshfleet_identity::CertInfo;

pub use anchor::AnchorFile;
pub use meshfleet_fleet::anchor_path;
pub use meshfleet_fleet::lifecycle::{AnchorRotation, LinkCredentialsState};
pub use meshfleet_fleet::rules::{RULES, Rule};

/// What every rule module gets: the fleet, its expanded links and a name index.
pub(crate) struct Ctx<'a> {
    pub fleet: &'a Fleet,
    pub links: &'a [DeclaredLink],
    by_name: HashMap<&'a str, &'a ClusterSpec>,
}

impl<'a> Ctx<'a> {
    fn new(fleet: &'a Fleet, links: &'a [DeclaredLink]) -> Self {
        let mut by_name = HashMap::new();
        for c in &fleet.spec.clusters {
            by_name.entry(c.name.value.as_str()).or_insert(&c.value);
        }
        Self {
            fleet,
            links,
            by_name,
        }
    }

    /// The cluster of that name (the first, if names repeat).
    pub fn cluster(&self, name: &str) -> Option<&'a ClusterSpec> {
        self.by_name.get(name).copied()
    }

    /// A hint for a name that is not a cluster: the closest name, or the list.
    pub fn unknown_cluster_hint(&self, name: &str) -> String {
        let names: Vec<&str> = self
            .fleet
            .spec
            .clusters
            .iter()
            .map(|c| c.name.value.as_str())
            .collect();
        match meshfleet_fleet::diagnostic::did_you_mean(name, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? clusters: {}", names.join(", ")),
            None => format!("use one of the clusters: {}", names.join(", ")),
        }
    }

    /// Links whose both ends exist and differ: the ones later rules reason about.
    pub fn valid_links(&self) -> impl Iterator<Item = &'a DeclaredLink> + '_ {
        self.links.iter().filter(move |l| {
            l.source.value != l.target.value
                && self.by_name.contains_key(l.source.value.as_str())
                && self.by_name.contains_key(l.target.value.as_str())
        })
    }
}

/// What the rules parsed on the way: every fleet value that needs parsing (versions,
/// durations, selectors, CIDRs, the anchor bundle) is parsed once, by its rule, and the
/// plan is built from these typed values, so nothing is parsed twice and nothing that
/// failed to parse can reach the plan with a made-up value.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// `spec.linkerd.version`.
    pub version: Option<LinkerdVersion>,
    /// Each gateway's probe period (written or default), by cluster name.
    pub probe_periods: HashMap<String, ProbePeriod>,
    /// Each link's three selectors (written or default), by (source, target).
    pub selectors: HashMap<(String, String), LinkSelectors>,
    /// Each cluster's pod and service CIDRs, by cluster name.
    pub networks: HashMap<String, ClusterNetworks>,
    /// `spec.secrets.linkCredentials`: each link's remote-access account generation
    /// (links not listed use generation 0) and the rotation in progress.
    pub link_credentials: LinkCredentialsState,
    /// Each enabled gateway's ports (written or default), by cluster name.
    pub gateway_ports: HashMap<String, GatewayPorts>,
    /// The trust anchor bundle.
    pub anchors: Option<TrustAnchors>,
}

/// The trust anchor bundle as validation read it: the PEM (normalised to end with one
/// newline) and its certificates.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    /// The bundle, PEM.
    pub pem: String,
    /// Its certificates.
    pub certs: Vec<CertInfo>,
    /// The anchor rotation in progress (`spec.identity.rotation`), checked against them.
    pub rotation: Option<AnchorRotation>,
}

/// A link's selectors, parsed.
#[derive(Debug, Clone)]
pub struct LinkSelectors {
    pub gateway: LabelSelector,
    pub remote_discovery: LabelSelector,
    pub federated: LabelSelector,
}

/// A gateway's ports, parsed: the defaults applied, each in 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayPorts {
    /// Service port of the gateway.
    pub port: u16,
    /// Its NodePort, when written.
    pub node_port: Option<u16>,
    /// Service port of the probe.
    pub probe_port: u16,
    /// Its NodePort, when written.
    pub probe_node_port: Option<u16>,
}

/// A cluster's CIDRs, parsed.
#[derive(Debug, Clone, Default)]
pub struct ClusterNetworks {
    pub pods: Vec<IpNet>,
    pub services: Vec<IpNet>,
}

/// Run every rule over a parsed fleet. `anchor` is the trust anchor file as read.
pub fn validate(fleet: &Fleet, anchor: &AnchorFile, now: OffsetDateTime) -> Vec<Finding> {
    run_rules(fleet, anchor, now).0
}

fn run_rules(fleet: &Fleet, anchor: &AnchorFile, now: OffsetDateTime) -> (Vec<Finding>, Parsed) {
    let links = declared_links(fleet);
    let ctx = Ctx::new(fleet, &links);
    let mut findings = Vec::new();
    let mut parsed = Parsed::default();
    settings::check(&ctx, &mut parsed, &mut findings);
    clusters::check(&ctx, &mut parsed, &mut findings);
    links::check(&ctx, &mut parsed, &mut findings);
    network::check(&ctx, &mut parsed, &mut findings);
    anchor::check(&ctx, anchor, now, &mut parsed, &mut findings);
    findings.sort_by_key(|f| {
        (
            f.location.map_or(u32::MAX, |l| l.line),
            f.location.map_or(0, |l| l.column),
            f.severity,
        )
    });
    findings.dedup();
    (findings, parsed)
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_error)
}

/// A parsed fleet file together with its trust anchor, every finding and the values
/// the rules parsed: what the plan is built from (`meshfleet_plan::from_checked`), and
/// only when no finding is an error.
#[derive(Debug, Clone)]
pub struct CheckedFleet {
    /// The file as read.
    pub source: meshfleet_fleet::FleetSource,
    /// The parsed model.
    pub fleet: Fleet,
    /// The trust anchor file as read.
    pub anchor: AnchorFile,
    /// Every finding, sorted by position.
    pub findings: Vec<Finding>,
    /// Every value the rules parsed, typed; complete only when no finding is an error.
    pub parsed: Parsed,
}

impl CheckedFleet {
    /// Whether the fleet may be planned (no errors; warnings are fine).
    pub fn is_valid(&self) -> bool {
        !has_errors(&self.findings)
    }
}

/// Validate a parsed fleet file: every rule, every finding, every value parsed once.
pub fn check(
    source: meshfleet_fleet::FleetSource,
    fleet: Fleet,
    anchor: AnchorFile,
    now: OffsetDateTime,
) -> CheckedFleet {
    let (findings, parsed) = run_rules(&fleet, &anchor, now);
    CheckedFleet {
        source,
        fleet,
        anchor,
        findings,
        parsed,
    }
}

/// Read, parse and validate the fleet at `path` (a file, or a folder with `fleet.yaml` or
/// `meshfleet.yaml`).
pub fn check_file(path: &Path, now: OffsetDateTime) -> Result<CheckedFleet, meshfleet_fleet::LoadError> {
    let (source, fleet) = meshfleet_fleet::load(path)?;
    let anchor = AnchorFile::read(&anchor_path(&source.dir(), &fleet));
    Ok(check(source, fleet, anchor, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{BASE, base_with, findings, rules};

    #[test]
    fn the_base_fleet_is_valid_without_warnings() {
        assert_eq!(findings(BASE), Vec::new());
    }

    #[test]
    fn findings_are_sorted_by_place_and_use_listed_rule_ids() {
        let text = base_with("name: pro\n", "name: Pro_X\n")
            .replace("pods: [10.2.0.0/16]", "pods: [10.1.0.0/16]")
            .replace("version: 2025.4.4", "version: 2024.1.1");
        let all = findings(&text);
        assert!(all.len() >= 3, "{all:#?}");
        let lines: Vec<u32> = all
            .iter()
            .map(|f| f.location.map_or(u32::MAX, |l| l.line))
            .collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
        for finding in &all {
            assert!(
                RULES.iter().any(|(id, _)| finding.rule == *id),
                "`{}` is not in RULES",
                finding.rule
            );
            assert!(!finding.hint.is_empty(), "{finding:?}");
        }
    }

    #[test]
    fn a_warning_alone_keeps_the_fleet_valid() {
        let checked = crate::fixtures::check(&base_with(
            "    version: 2025.4.4\n",
            "    version: 2025.4.4\n    gatewayAPI: v0.9.0\n",
        ));
        assert_eq!(
            checked.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            [Rule::GatewayApiVersion]
        );
        assert!(checked.is_valid());
        assert!(!rules(&base_with("version: 2025.4.4", "version: 25.4")).is_empty());
    }
}

//! Validation rule ids: one enum, like the live check ids, so a rule cannot be misspelt
//! and `-o json` consumers have a closed list to match on.
//!
//! Each id is stable (add, never rename): scripts match on the strings. Parse-time ids
//! (`yaml-syntax` ... `duplicate-key`) come first, then the rules of [`super`].

use std::fmt;

/// Declares [`Rule`] with its id and description, and the table [`RULES`].
macro_rules! rules {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal : $description:literal, )*) => {
        /// A validation rule (or parse-time check), by its stable id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $( $(#[$doc])* $variant, )*
        }

        impl Rule {
            /// Every rule, parse-time ids first.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The id as written in reports and JSON, e.g. `cidr-overlap`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $id,)* }
            }

            /// One line on what the rule checks.
            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => $description,)* }
            }
        }

        /// Every rule id with its description (for docs and JSON consumers).
        pub const RULES: &[(&str, &str)] = &[$(($id, $description)),*];
    };
}

rules! {
    /// The file is not valid YAML.
    YamlSyntax = "yaml-syntax": "the file is not valid YAML",
    /// A field the fleet schema does not have (with did-you-mean).
    UnknownField = "unknown-field": "a field the fleet schema does not have (with did-you-mean)",
    /// A value outside an enumeration (with did-you-mean).
    UnknownValue = "unknown-value": "a value outside an enumeration (with did-you-mean)",
    /// A required field is missing.
    MissingField = "missing-field": "a required field is missing",
    /// A value of the wrong type.
    InvalidType = "invalid-type": "a value of the wrong type",
    /// The same key twice in one mapping.
    DuplicateKey = "duplicate-key": "the same key twice in one mapping",
    /// `apiVersion`/`kind` are not meshfleet.io/v1alpha1 Fleet.
    ApiVersion = "api-version": "`apiVersion`/`kind` are not meshfleet.io/v1alpha1 Fleet",
    /// A name is not a DNS-1123 label or subdomain.
    InvalidName = "invalid-name": "a name is not a DNS-1123 label or subdomain",
    /// The Linkerd chart version is malformed.
    LinkerdVersion = "linkerd-version": "the Linkerd chart version is malformed",
    /// The Linkerd version has no declarative links (older than 2025.4.4).
    LinkerdVersionUnsupported = "linkerd-version-unsupported": "the Linkerd version has no declarative links (older than 2025.4.4)",
    /// The Linkerd version is newer than meshfleet knows.
    LinkerdVersionUntested = "linkerd-version-untested": "the Linkerd version is newer than meshfleet knows",
    /// The Gateway API version is malformed or outside Linkerd's range.
    GatewayApiVersion = "gateway-api-version": "the Gateway API version is malformed or outside Linkerd's range",
    /// The chart repository is not an http(s) or oci URL.
    ChartRepository = "chart-repository": "the chart repository is not an http(s) or oci URL",
    /// The GitOps repository URL or path is unusable.
    RepositoryUrl = "repository-url": "the GitOps repository URL or path is unusable",
    /// `installMethod: jobs` without `gitops.jobs.image`.
    JobsImageMissing = "jobs-image-missing": "`installMethod: jobs` without `gitops.jobs.image`",
    /// A setting that has no effect with the chosen options.
    SettingIgnored = "setting-ignored": "a setting that has no effect with the chosen options",
    /// `spec.secrets.vault` is needed but absent.
    VaultMissing = "vault-missing": "`spec.secrets.vault` is needed but absent",
    /// A Vault setting is malformed.
    VaultSettings = "vault-settings": "a Vault setting is malformed",
    /// Two clusters log in to one Vault through one Kubernetes auth mount.
    VaultAuthShared = "vault-auth-shared": "two clusters log in to one Vault through one Kubernetes auth mount, which trusts one API server",
    /// `spec.secrets` names both Vault and SOPS.
    SecretsBackend = "secrets-backend": "`spec.secrets` names both `vault` and `sops`",
    /// A SOPS recipient that is not an age public key.
    SopsRecipient = "sops-recipient": "a SOPS recipient is not an age public key (`age1…`)",
    /// No operator recipient, a cluster without its own, or one for an unknown cluster.
    SopsRecipientsMissing = "sops-recipients-missing": "no operator recipient, a cluster without its own recipient, or a recipient for a cluster the fleet does not have",
    /// Two clusters share one recipient (each could read the other's credentials).
    SopsRecipientShared = "sops-recipient-shared": "two clusters share one age recipient, so each can decrypt the other's link credentials",
    /// SOPS with an engine that cannot decrypt it.
    SopsEngine = "sops-engine": "SOPS secrets with Argo CD, which has no native SOPS decryption",
    /// Two clusters share a name.
    DuplicateCluster = "duplicate-cluster": "two clusters share a name",
    /// Two clusters share a `linkName`.
    DuplicateLinkName = "duplicate-link-name": "two clusters share a `linkName`",
    /// Two clusters share a kubeconfig context.
    DuplicateContext = "duplicate-context": "two clusters share a kubeconfig context",
    /// `apiServer` is missing, malformed or a loopback address.
    ApiServer = "api-server": "`apiServer` is missing, malformed or a loopback address",
    /// A gateway address is not an IP or DNS name.
    GatewayAddress = "gateway-address": "a gateway address is not an IP or DNS name",
    /// A port is outside 1-65535.
    PortRange = "port-range": "a port is outside 1-65535",
    /// A NodePort is outside 30000-32767.
    NodePortRange = "node-port-range": "a NodePort is outside 30000-32767",
    /// A NodePort on a gateway that is not of type NodePort.
    NodePortType = "node-port-type": "a NodePort on a gateway that is not of type NodePort",
    /// A NodePort gateway without its NodePorts.
    NodePortMissing = "node-port-missing": "a NodePort gateway without its NodePorts",
    /// Two ports of one gateway collide.
    PortConflict = "port-conflict": "two ports of one gateway collide",
    /// The probe period is not a Go duration in whole seconds.
    ProbePeriod = "probe-period": "the probe period is not a Go duration in whole seconds",
    /// The probe path does not start with `/`.
    ProbePath = "probe-path": "the probe path does not start with `/`",
    /// A gateway probe port other than the gateway proxy's admin port 4191.
    ProbePort = "probe-port": "a gateway probe port other than the gateway proxy's admin port 4191",
    /// A link names a cluster the fleet does not have.
    LinkUnknownCluster = "link-unknown-cluster": "a link names a cluster the fleet does not have",
    /// A link from a cluster to itself.
    SelfLink = "self-link": "a link from a cluster to itself",
    /// The same source and target twice.
    DuplicateLink = "duplicate-link": "the same source and target twice",
    /// The topology shorthand is inconsistent.
    Topology = "topology": "the topology shorthand is inconsistent",
    /// A gateway-mode link targets a cluster without an enabled gateway.
    GatewayMissing = "gateway-missing": "a gateway-mode link targets a cluster without an enabled gateway",
    /// A gateway-mode link targets a gateway without addresses.
    GatewayAddressesMissing = "gateway-addresses-missing": "a gateway-mode link targets a gateway without addresses",
    /// A selector is not a valid label query.
    Selector = "selector": "a selector is not a valid label query",
    /// A selector that matches nothing.
    SelectorEmpty = "selector-empty": "a selector that matches nothing",
    /// A selector that has no effect in the link's mode.
    SelectorIgnored = "selector-ignored": "a selector that has no effect in the link's mode",
    /// The target's link name leaves too little room for mirrored service names.
    MirrorNameBudget = "mirror-name-budget": "the target's link name leaves too little room for mirrored service names",
    /// A CIDR does not parse or has host bits set.
    CidrInvalid = "cidr-invalid": "a CIDR does not parse or has host bits set",
    /// CIDRs overlap within a cluster or across linked clusters.
    CidrOverlap = "cidr-overlap": "CIDRs overlap within a cluster or across linked clusters",
    /// A remote-discovery target without pod CIDRs.
    NetworkMissing = "network-missing": "a remote-discovery target without pod CIDRs",
    /// Remote-discovery target pods lie outside `clusterNetworks`.
    ClusterNetworks = "cluster-networks": "remote-discovery target pods lie outside `clusterNetworks`",
    /// A link credential generation that is not a whole number from 0, or that names no link.
    LinkCredentials = "link-credentials": "a link credential generation that is negative, too large, or names no link of the fleet",
    /// The trust anchor file does not exist.
    TrustAnchorMissing = "trust-anchor-missing": "the trust anchor file does not exist",
    /// The trust anchor file is not a bundle of CA certificates.
    TrustAnchorInvalid = "trust-anchor-invalid": "the trust anchor file is not a bundle of CA certificates",
    /// A trust anchor is expired or not yet valid.
    TrustAnchorExpired = "trust-anchor-expired": "a trust anchor is expired or not yet valid",
    /// A trust anchor has less than 60 days left.
    TrustAnchorExpiring = "trust-anchor-expiring": "a trust anchor has less than 60 days left",
    /// `spec.identity.rotation` does not fit the anchor bundle.
    AnchorRotation = "anchor-rotation": "`spec.identity.rotation` names anchors the bundle does not hold (or holds too many)",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_listed() {
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            let id = rule.as_str();
            assert!(seen.insert(id), "`{id}` twice");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{id}"
            );
            assert!(!rule.description().is_empty());
        }
        assert_eq!(RULES.len(), Rule::ALL.len());
    }
}

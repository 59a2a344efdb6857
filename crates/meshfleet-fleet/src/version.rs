//! Linkerd versions meshfleet knows: chart versions `YYYY.M.N` (edge releases), the
//! major release each one belongs to, and what changes between them.
//!
//! Since `edge-24.3.1` every Linkerd chart is published as `YYYY.M.N`, derived from the
//! edge tag `edge-YY.M.N`, and all charts of one release share it. Declarative Links and
//! the chart's `controllers` list arrived with 2.18 (`edge-25.4.4`, chart `2025.4.4`).

use std::fmt;

/// Why a text is not a Linkerd chart version; each message says what the user wrote
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// An edge tag (`edge-25.4.4`) where the chart version (`2025.4.4`) belongs.
    #[error("`{text}` is an edge tag; the chart version of that release is `{chart}`")]
    EdgeTag {
        /// The text as written.
        text: String,
        /// The chart version of the same release.
        chart: String,
    },
    /// A stable or major version (`stable-2.14.10`, `2.18`), which has no chart.
    #[error(
        "`{text}` is not an edge chart version; open-source Linkerd publishes charts as `YYYY.M.N` (2.18 is `2025.4.4`)"
    )]
    NotEdge {
        /// The text as written.
        text: String,
    },
    /// Anything else that is not `YYYY.M.N`.
    #[error("`{text}` is not a chart version `YYYY.M.N`")]
    Malformed {
        /// The text as written.
        text: String,
    },
}

impl crate::diagnostic::Hint for VersionError {
    fn hint(&self) -> Option<String> {
        // The `linkerd-version` finding that quotes it says which version to write.
        None
    }
}

/// A Linkerd edge chart version `YYYY.M.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkerdVersion {
    /// Year, e.g. 2025.
    pub year: u16,
    /// Month 1-12.
    pub month: u8,
    /// Release number within the month.
    pub number: u16,
}

impl LinkerdVersion {
    /// A version from its parts.
    pub const fn new(year: u16, month: u8, number: u16) -> Self {
        Self { year, month, number }
    }

    /// Parse `YYYY.M.N`; the error explains what the user wrote instead.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let malformed = || VersionError::Malformed {
            text: text.to_string(),
        };
        if let Some(edge) = text.strip_prefix("edge-") {
            let parts: Vec<&str> = edge.split('.').collect();
            if let [yy, m, n] = parts.as_slice() {
                return Err(VersionError::EdgeTag {
                    text: text.to_string(),
                    chart: format!("20{yy}.{m}.{n}"),
                });
            }
        }
        if text.starts_with("stable-") || text.starts_with("version-") || text.starts_with("2.") {
            return Err(VersionError::NotEdge {
                text: text.to_string(),
            });
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [y, m, n] = parts.as_slice() else {
            return Err(malformed());
        };
        let year: u16 = y.parse().map_err(|_| malformed())?;
        let month: u8 = m.parse().map_err(|_| malformed())?;
        let number: u16 = n.parse().map_err(|_| malformed())?;
        if !(2000..=2999).contains(&year) || !(1..=12).contains(&month) {
            return Err(malformed());
        }
        Ok(Self { year, month, number })
    }

    /// The edge tag of this release, e.g. `edge-25.4.4`.
    pub fn edge_tag(self) -> String {
        format!("edge-{:02}.{}.{}", self.year % 100, self.month, self.number)
    }

    /// The major release (`2.18`, `2.19`, ...) this edge belongs to, or the next one.
    pub fn major(self) -> &'static str {
        MAJORS
            .iter()
            .rev()
            .find(|(_, first)| self >= *first)
            .map_or("2.17 or older", |(name, _)| *name)
    }

    /// Linkerd's own `installGatewayAPI` default of `linkerd-crds` at this version: true
    /// up to 2.18, false from `edge-25.9.4` (2.19) on.
    pub fn crds_chart_installs_gateway_api(self) -> bool {
        self < Self::new(2025, 9, 4)
    }

    /// The Gateway API versions Linkerd documents as compatible (inclusive).
    pub fn gateway_api_range(self) -> (GatewayApiVersion, GatewayApiVersion) {
        if self >= LINKERD_2_20 {
            (GatewayApiVersion::new(1, 2, 1), GatewayApiVersion::new(1, 5, 1))
        } else {
            (GatewayApiVersion::new(1, 1, 1), GatewayApiVersion::new(1, 2, 1))
        }
    }
}

impl fmt::Display for LinkerdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.year, self.month, self.number)
    }
}

/// Linkerd 2.18: the first release with declarative Links (`edge-25.4.4`).
pub const LINKERD_2_18: LinkerdVersion = LinkerdVersion::new(2025, 4, 4);
/// Linkerd 2.19 (`edge-25.10.7`).
pub const LINKERD_2_19: LinkerdVersion = LinkerdVersion::new(2025, 10, 7);
/// Linkerd 2.20 (`edge-26.6.3`).
pub const LINKERD_2_20: LinkerdVersion = LinkerdVersion::new(2026, 6, 3);
/// The newest edge release whose charts meshfleet's output was checked against.
pub const NEWEST_KNOWN: LinkerdVersion = LinkerdVersion::new(2026, 8, 3);

/// Oldest version meshfleet supports.
pub const OLDEST_SUPPORTED: LinkerdVersion = LINKERD_2_18;

const MAJORS: [(&str, LinkerdVersion); 3] = [
    ("2.18", LINKERD_2_18),
    ("2.19", LINKERD_2_19),
    ("2.20", LINKERD_2_20),
];

/// A Gateway API release `vX.Y.Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GatewayApiVersion {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch.
    pub patch: u16,
}

impl GatewayApiVersion {
    /// A version from its parts.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self { major, minor, patch }
    }

    /// Parse `vX.Y.Z`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix('v')?;
        let mut it = rest.split('.').map(str::parse::<u16>);
        let v = Self::new(it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?);
        it.next().is_none().then_some(v)
    }
}

impl fmt::Display for GatewayApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v = LinkerdVersion::parse("2025.4.4").unwrap();
        assert_eq!(v, LINKERD_2_18);
        assert!(LinkerdVersion::parse("2025.10.7").unwrap() > v);
        assert_eq!(v.edge_tag(), "edge-25.4.4");
        assert_eq!(LINKERD_2_19.major(), "2.19");
        assert!(
            LinkerdVersion::parse("edge-25.4.4")
                .unwrap_err()
                .to_string()
                .contains("2025.4.4")
        );
        assert!(LinkerdVersion::parse("2.18").is_err());
    }
}

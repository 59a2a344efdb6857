//! Fleets for unit tests: a valid two-cluster fleet to change one line of, and the
//! pipeline stages run over text (parse, validate, plan) with a fresh trust anchor.

use std::sync::OnceLock;

use time::OffsetDateTime;

use crate::diagnostic::Finding;
use crate::plan::FleetPlan;
use crate::validate::{AnchorFile, CheckedFleet};

/// Two clusters linked both ways in gateway mode; `pro` has a NodePort gateway.
pub(crate) const BASE: &str = "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: test
spec:
  linkerd:
    version: 2025.4.4
  gitops:
    engine: flux
    repository:
      url: https://github.com/example/fleet.git
  identity:
    trustAnchor: anchor.crt
  secrets:
    vault:
      server: https://vault.example:8200
      mount: secret
      path: linkerd
  clusters:
    - name: studio
      apiServer: https://studio.example:6443
      network:
        pods: [10.1.0.0/16]
        services: [10.101.0.0/16]
      gateway:
        addresses: [studio.example]
    - name: pro
      apiServer: https://pro.example:6443
      network:
        pods: [10.2.0.0/16]
        services: [10.102.0.0/16]
      gateway:
        serviceType: NodePort
        addresses: [192.0.2.20]
        nodePort: 30143
        probe: {nodePort: 30191, period: 5s}
  links:
    - {source: studio, target: pro}
    - {source: pro, target: studio}
";

/// A valid anchor, made once per test binary.
pub(crate) fn anchor_pem() -> &'static str {
    static ANCHOR: OnceLock<String> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        crate::identity::generate_anchor(OffsetDateTime::now_utc())
            .expect("anchor")
            .cert_pem
    })
}

/// [`BASE`] with `from` replaced by `to` (which must be there).
pub(crate) fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no `{from}`");
    BASE.replacen(from, to, 1)
}

/// Parse and validate `text` with a valid anchor.
pub(crate) fn check(text: &str) -> CheckedFleet {
    let fleet = crate::fleet::parse(text).unwrap_or_else(|f| panic!("parses: {f:?}"));
    let source = crate::fleet::FleetSource {
        path: "fleet.yaml".into(),
        text: text.to_string(),
    };
    let anchor = AnchorFile::Text(anchor_pem().to_string());
    crate::validate::check(source, fleet, anchor, OffsetDateTime::now_utc())
}

/// The findings of `text`.
pub(crate) fn findings(text: &str) -> Vec<Finding> {
    check(text).findings
}

/// The rule ids of the findings of `text`.
pub(crate) fn rules(text: &str) -> Vec<&'static str> {
    findings(text).iter().map(|f| f.rule.as_str()).collect()
}

/// The plan of `text`, which must be valid.
pub(crate) fn plan(text: &str) -> FleetPlan {
    let checked = check(text);
    crate::plan::from_checked(&checked)
        .unwrap_or_else(|e| panic!("valid fleet: {e}: {:#?}", checked.findings))
}

//! What `check` found, per cluster and per link, for `graph --live`.
//!
//! Built from a [`CheckReport`], the same value `check` prints: no check is run or
//! repeated here. A cluster's health is the worst of its checks that concern no single
//! link (reachability, control plane, extension, services); a link's health is the worst
//! of the checks its source reported for it (the Link, credentials, controller, the
//! target's gateway and probe, mirrors). Clusters the report does not cover, and the links
//! of a cluster that could not be read, are "not checked".

use std::collections::BTreeMap;

use meshfleet_live::check::{CheckId, CheckReport, Status};
use meshfleet_plan::FleetPlan;

/// One check that did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its stable id.
    pub id: CheckId,
    /// Warning or error.
    pub status: Status,
    /// What was found.
    pub message: String,
}

/// The health of one cluster or one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The worst status of its checks; `None` when it was not checked.
    pub status: Option<Status>,
    /// Checks that passed.
    pub passed: usize,
    /// Checks that did not pass, errors first.
    pub problems: Vec<Problem>,
}

impl Health {
    fn add(&mut self, id: CheckId, status: Status, message: &str) {
        self.status = Some(self.status.map_or(status, |s| s.max(status)));
        if status == Status::Ok {
            self.passed += 1;
        } else {
            self.problems.push(Problem {
                id,
                status,
                message: message.to_string(),
            });
        }
    }

    /// The symbol that carries the status without colour: ✓, ‼, × or ?.
    pub fn symbol(&self) -> &'static str {
        match self.status {
            Some(Status::Ok) => "✓",
            Some(Status::Warning) => "‼",
            Some(Status::Error) => "×",
            None => "?",
        }
    }

    /// One short line: "19 checks pass", "2 failed, 1 warning", "not checked".
    pub fn summary(&self) -> String {
        let errors = self.count(Status::Error);
        let warnings = self.count(Status::Warning);
        match (self.status, errors, warnings) {
            (None, ..) => "not checked".to_string(),
            (Some(_), 0, 0) => format!("{} checks pass", self.passed),
            (Some(_), 0, w) => format!("{w} warning{}", if w == 1 { "" } else { "s" }),
            (Some(_), e, 0) => format!("{e} failed"),
            (Some(_), e, w) => format!("{e} failed, {w} warning{}", if w == 1 { "" } else { "s" }),
        }
    }

    /// One line for a box: the summary when all is well, else which checks failed
    /// ("failed: trust-anchors-match, issuer-valid") or warned.
    pub fn headline(&self) -> String {
        if self.problems.is_empty() {
            return self.summary();
        }
        let mut ids: Vec<&str> = Vec::new();
        for p in &self.problems {
            if !ids.contains(&p.id.as_str()) {
                ids.push(p.id.as_str());
            }
        }
        let verb = if self.count(Status::Error) > 0 {
            "failed"
        } else {
            "warning"
        };
        format!("{verb}: {}", ids.join(", "))
    }

    /// Tooltip lines: one per problem, `× id: message`.
    pub fn problem_lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|p| {
                let symbol = if p.status == Status::Error { "×" } else { "‼" };
                format!("{symbol} {}: {}", p.id, p.message)
            })
            .collect()
    }

    fn count(&self, status: Status) -> usize {
        self.problems.iter().filter(|p| p.status == status).count()
    }
}

/// Health of every cluster and link of a fleet.
#[derive(Debug, Clone, Default)]
pub struct FleetHealth {
    clusters: BTreeMap<String, Health>,
    /// Keyed by (source, target) cluster names.
    links: BTreeMap<(String, String), Health>,
}

impl FleetHealth {
    /// Sort the results of a `check` run by cluster and link.
    pub fn from_report(plan: &FleetPlan, report: &CheckReport) -> Self {
        let mut health = Self::default();
        for cluster_report in &report.clusters {
            let plan_cluster = plan.clusters.iter().find(|c| c.name == cluster_report.name);
            let cluster = health.clusters.entry(cluster_report.name.clone()).or_default();
            let mut links: Vec<((String, String), CheckId, Status, &str)> = Vec::new();
            for result in &cluster_report.checks {
                let link = result
                    .link
                    .as_deref()
                    .and_then(|link_name| plan_cluster?.outgoing.iter().find(|l| l.link_name() == link_name));
                match link {
                    Some(link) => links.push((
                        (link.source.clone(), link.target.clone()),
                        result.id,
                        result.status,
                        &result.message,
                    )),
                    None => cluster.add(result.id, result.status, &result.message),
                }
            }
            cluster.problems.sort_by_key(|p| std::cmp::Reverse(p.status));
            for (key, id, status, message) in links {
                health.links.entry(key).or_default().add(id, status, message);
            }
        }
        for link in health.links.values_mut() {
            link.problems.sort_by_key(|p| std::cmp::Reverse(p.status));
        }
        health
    }

    /// The health of cluster `name` (not checked when the report did not cover it).
    pub fn cluster(&self, name: &str) -> Health {
        self.clusters.get(name).cloned().unwrap_or_default()
    }

    /// The health of the link from `source` to `target` (cluster names).
    pub fn link(&self, source: &str, target: &str) -> Health {
        self.links
            .get(&(source.to_string(), target.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Clusters and links whose worst status is `status`.
    pub fn count(&self, status: Status) -> (usize, usize) {
        let count = |h: &Health| h.status == Some(status);
        (
            self.clusters.values().filter(|h| count(h)).count(),
            self.links.values().filter(|h| count(h)).count(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfleet_live::check::{CheckResult, ClusterReport};

    fn plan() -> FleetPlan {
        meshfleet_plan::fixtures::plan(include_str!("../../../examples/homelab/fleet.yaml"))
    }

    fn report(name: &str, checks: Vec<CheckResult>) -> ClusterReport {
        ClusterReport {
            name: name.to_string(),
            context: name.to_string(),
            server: None,
            reachable: true,
            version: None,
            checks,
        }
    }

    #[test]
    fn checks_are_sorted_by_cluster_and_link() {
        let plan = plan();
        let report = CheckReport {
            fleet: "homelab".to_string(),
            clusters: vec![report(
                "studio",
                vec![
                    CheckResult::ok(CheckId::ClusterReachable, "answers"),
                    CheckResult::warning(CheckId::IssuerValid, "ends in 20 days"),
                    CheckResult::ok(CheckId::LinkPresent, "present").for_link("pro"),
                    CheckResult::error(CheckId::LinkDrift, "differs").for_link("pro"),
                ],
            )],
        };
        let health = FleetHealth::from_report(&plan, &report);
        let studio = health.cluster("studio");
        assert_eq!(studio.status, Some(Status::Warning));
        assert_eq!(studio.passed, 1);
        assert_eq!(studio.summary(), "1 warning");
        assert_eq!(studio.headline(), "warning: issuer-valid");
        let link = health.link("studio", "pro");
        assert_eq!(link.status, Some(Status::Error));
        assert_eq!(link.problem_lines(), ["× link-drift: differs"]);
        assert_eq!(link.symbol(), "×");
        // Not in the report: not checked.
        assert_eq!(health.cluster("pro").status, None);
        assert_eq!(health.link("pro", "studio").summary(), "not checked");
        assert_eq!(health.count(Status::Error), (0, 1));
    }
}

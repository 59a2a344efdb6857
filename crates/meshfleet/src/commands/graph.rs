//! `meshfleet graph [PATH] --format svg|dot|mermaid [--live]`.
//!
//! Without `--live` the picture needs nothing but the fleet file. With `--live` the
//! checks of `meshfleet check` run first (the same library call, the same report) and
//! the picture is coloured by their results; the picture still goes to stdout when a
//! check failed, and the exit code is `check`'s: 1 when a check failed.
//!
//! `-o json` prints what the picture shows as data instead of a picture: the clusters,
//! the hub, and every link named `source -> target` as `validate` names it (with
//! `--live`, the health of each).

use std::time::Duration;

use meshfleet_core::graph::{self, FleetHealth, Health};
use meshfleet_core::live::check::{self, CheckOptions, Status};
use meshfleet_core::plan::FleetPlan;
use serde::Serialize;

use super::{CommandError, ExitStatus, hinted, kubeconfigs, load_plan, now, runtime};
use crate::cli::{GlobalArgs, GraphArgs, GraphFormat, OutputFormat};
use crate::printer::Printer;

/// `graph -o json`; field names are stable.
#[derive(Serialize)]
struct GraphJson<'a> {
    fleet: &'a str,
    hub: Option<&'a str>,
    clusters: Vec<ClusterJson<'a>>,
    links: Vec<LinkJson<'a>>,
}

#[derive(Serialize)]
struct ClusterJson<'a> {
    name: &'a str,
    /// `gateway HOST:PORT` or `no gateway`, as under the cluster's name in the picture.
    gateway: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkJson<'a> {
    /// `source -> target`, as every command names the link.
    name: String,
    /// `<source>-to-<target>`, as `secrets sync --link` and Vault name it.
    id: String,
    source: &'a str,
    target: &'a str,
    mode: &'static str,
    /// The Link object's name on the source (the target's `linkName`), the mirrors' suffix.
    link_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthJson>,
}

/// With `--live`: `ok`, `warning`, `error` or `unchecked`, and the failing checks.
#[derive(Serialize)]
struct HealthJson {
    status: &'static str,
    problems: Vec<String>,
}

fn health_json(health: &Health) -> HealthJson {
    HealthJson {
        status: match health.status {
            Some(Status::Ok) => "ok",
            Some(Status::Warning) => "warning",
            Some(Status::Error) => "error",
            None => "unchecked",
        },
        problems: health.problem_lines(),
    }
}

fn graph_json<'a>(plan: &'a FleetPlan, health: Option<&FleetHealth>) -> GraphJson<'a> {
    GraphJson {
        fleet: &plan.name,
        hub: graph::hub(plan).map(|c| c.name.as_str()),
        clusters: plan
            .clusters
            .iter()
            .map(|c| ClusterJson {
                name: &c.name,
                gateway: graph::cluster_caption(c),
                health: health.map(|h| health_json(&h.cluster(&c.name))),
            })
            .collect(),
        links: plan
            .clusters
            .iter()
            .flat_map(|c| &c.outgoing)
            .map(|l| LinkJson {
                name: l.label(),
                id: l.credentials_id(),
                source: &l.source,
                target: &l.target,
                mode: l.mode.as_str(),
                link_name: l.link_name(),
                health: health.map(|h| health_json(&h.link(&l.source, &l.target))),
            })
            .collect(),
    }
}

pub fn run(args: &GraphArgs, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    if args.live && args.timeout == 0 {
        return Err(hinted(
            "`--timeout 0` leaves no time for a cluster to answer",
            "give the seconds to wait for each cluster, e.g. `--timeout 10`",
        ));
    }
    let (_, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let (health, status) = if args.live {
        let kubeconfigs = kubeconfigs(global)?.with_timeout(Duration::from_secs(args.timeout));
        let options = CheckOptions {
            clusters: Vec::new(),
            now: now(),
        };
        let report = runtime()?
            .block_on(check::run(&plan, &kubeconfigs, &options, &()))
            .map_err(|e| hinted(e.to_string(), "run `meshfleet check` to see every check"))?;
        let status = if report.success() {
            ExitStatus::Success
        } else {
            printer.status(&format!(
                "some checks failed; `meshfleet check {}` explains each with a hint",
                args.path.display()
            ));
            ExitStatus::Failure
        };
        (Some(FleetHealth::from_report(&plan, &report)), status)
    } else {
        (None, ExitStatus::Success)
    };
    if global.output == OutputFormat::Json {
        printer.json(&graph_json(&plan, health.as_ref()))?;
        return Ok(status);
    }
    let text = match args.format {
        GraphFormat::Svg => graph::svg(&plan, health.as_ref()),
        GraphFormat::Dot => graph::dot(&plan, health.as_ref()),
        GraphFormat::Mermaid => graph::mermaid(&plan, health.as_ref()),
    };
    printer.data(&text);
    Ok(status)
}

//! `meshfleet check [PATH] [--cluster NAME]... [--timeout SECONDS]`: the live clusters
//! against the fleet (PRODUCT.md section 7).
//!
//! The library computes a [`CheckReport`]; this file only shows it, the way `linkerd
//! check` does: per cluster, per category, one line per check with ✓ / ‼ / ×, the
//! details indented, a `hint:` and the rendered file to change, then a summary. The
//! symbols carry the meaning; colour only repeats it. With `-o json` the same report is
//! printed with its stable check ids. A progress bar goes to stderr, only on a terminal.
//!
//! Exit codes: 0 every check passed (warnings allowed), 1 a check failed or the fleet is
//! invalid, 2 the command could not run (unreadable kubeconfig, unknown `--cluster`).

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshfleet_core::live::check::{self, CheckOptions, CheckReport, CheckResult, ClusterReport, Status};
use serde::Serialize;

use super::{CommandError, ExitStatus, hinted, kubeconfigs, load_plan, now, runtime};
use crate::cli::{CheckArgs, GlobalArgs, OutputFormat};
use crate::printer::{Printer, Style};

pub fn run(args: &CheckArgs, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    if args.timeout == 0 {
        return Err(hinted(
            "`--timeout 0` leaves no time for a cluster to answer",
            "give the seconds to wait for each cluster, e.g. `--timeout 10`",
        ));
    }
    let (_checked, plan) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    if let Some(unknown) = args
        .clusters
        .iter()
        .find(|name| !plan.clusters.iter().any(|c| &c.name == *name))
    {
        let known: Vec<String> = plan.clusters.iter().map(|c| format!("`{}`", c.name)).collect();
        return Err(hinted(
            format!("the fleet has no cluster `{unknown}`"),
            format!("`--cluster` takes one of {}", known.join(", ")),
        ));
    }
    let kubeconfigs = kubeconfigs(global)?.with_timeout(Duration::from_secs(args.timeout));
    let options = CheckOptions {
        clusters: args.clusters.clone(),
        now: now(),
    };
    let count = if args.clusters.is_empty() {
        plan.clusters.len()
    } else {
        args.clusters.len()
    };
    let progress = Progress::new(count);
    let report = runtime()?.block_on(check::run(&plan, &kubeconfigs, &options, &progress))?;
    progress.bar.finish_and_clear();
    match global.output {
        OutputFormat::Json => printer.json(&CheckJson::from(&report))?,
        OutputFormat::Text => printer.data(&text(&report, printer)),
    }
    Ok(if report.success() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(clusters: usize) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(clusters as u64), target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} reading clusters {pos}/{len} {wide_msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }
}

impl check::Progress for Progress {
    fn cluster_read(&self, cluster: &str) {
        self.bar.inc(1);
        self.bar.set_message(format!("({cluster} done)"));
    }
}

/// The `-o json` document: the report with a summary; field names and check ids are
/// stable.
#[derive(Serialize)]
struct CheckJson<'a> {
    fleet: &'a str,
    success: bool,
    summary: CheckSummary,
    clusters: &'a [ClusterReport],
}

#[derive(Serialize)]
struct CheckSummary {
    clusters: usize,
    unreachable: usize,
    ok: usize,
    warnings: usize,
    errors: usize,
}

impl<'a> From<&'a CheckReport> for CheckJson<'a> {
    fn from(report: &'a CheckReport) -> Self {
        Self {
            fleet: &report.fleet,
            success: report.success(),
            summary: CheckSummary {
                clusters: report.clusters.len(),
                unreachable: report.clusters.iter().filter(|c| !c.reachable).count(),
                ok: report.count(Status::Ok),
                warnings: report.count(Status::Warning),
                errors: report.count(Status::Error),
            },
            clusters: &report.clusters,
        }
    }
}

fn symbol(printer: Printer, status: Status) -> String {
    match status {
        Status::Ok => printer.out(Style::Success, "✓"),
        Status::Warning => printer.out(Style::Warning, "‼"),
        Status::Error => printer.out(Style::Error, "×"),
    }
}

/// The heading of a group of checks.
fn heading(result: &CheckResult) -> String {
    match &result.link {
        Some(target) => format!("link to `{target}`"),
        None => result.category.as_str().to_string(),
    }
}

fn text(report: &CheckReport, printer: Printer) -> String {
    let mut out = String::new();
    for cluster in &report.clusters {
        cluster_text(cluster, printer, &mut out);
    }
    out.push_str(&summary(report, printer));
    out
}

fn cluster_text(cluster: &ClusterReport, printer: Printer, out: &mut String) {
    let title = format!(
        "{} (context `{}`{})",
        cluster.name,
        cluster.context,
        cluster
            .server
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default()
    );
    out.push_str(&printer.out(Style::Heading, &title));
    out.push('\n');
    out.push_str(&"=".repeat(title.chars().count()));
    out.push('\n');
    // Stable: link groups keep the fleet's order inside their category.
    let mut checks: Vec<&CheckResult> = cluster.checks.iter().collect();
    checks.sort_by_key(|c| c.category);
    let mut current: Option<String> = None;
    for check in checks {
        let group = heading(check);
        if current.as_ref() != Some(&group) {
            out.push('\n');
            out.push_str(&group);
            out.push('\n');
            out.push_str(&"-".repeat(group.chars().count()));
            out.push('\n');
            current = Some(group);
        }
        out.push_str(&format!("{} {}", symbol(printer, check.status), check.message));
        if check.status != Status::Ok {
            out.push_str(&format!(" [{}]", check.id));
        }
        out.push('\n');
        for detail in &check.details {
            out.push_str(&format!("    {detail}\n"));
        }
        if let Some(hint) = &check.hint {
            out.push_str(&format!("    {}: {hint}\n", printer.out(Style::Hint, "hint")));
        }
        if let Some(file) = &check.file {
            out.push_str(&format!("    file: `{file}` in the rendered tree\n"));
        }
    }
    out.push('\n');
}

fn summary(report: &CheckReport, printer: Printer) -> String {
    let errors = report.count(Status::Error);
    let warnings = report.count(Status::Warning);
    let passed = report.count(Status::Ok);
    let clusters = report.clusters.len();
    let unreachable = report.clusters.iter().filter(|c| !c.reachable).count();
    let scope = format!(
        "{clusters} cluster{}{}",
        if clusters == 1 { "" } else { "s" },
        if unreachable > 0 {
            format!(", {unreachable} unreachable")
        } else {
            String::new()
        }
    );
    let (status, line) = if errors > 0 {
        (
            Status::Error,
            format!("{errors} failed, {warnings} warning(s), {passed} passed ({scope})"),
        )
    } else if warnings > 0 {
        (
            Status::Warning,
            format!("{passed} passed, {warnings} warning(s) ({scope})"),
        )
    } else {
        (Status::Ok, format!("all {passed} checks passed ({scope})"))
    };
    format!("Status check results are {}: {line}\n", symbol(printer, status))
}

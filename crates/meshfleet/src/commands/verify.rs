//! `meshfleet verify [PATH] [--link ID]... [--image IMG] [--timeout SECONDS]`: one
//! request across each link through the clusters' data plane (PRODUCT.md, data plane).
//!
//! The plan ([`meshfleet_core::plan::verify`]) says what to place; the live side
//! ([`meshfleet_core::live::verify`]) places it, waits, judges and removes it. This file
//! checks the arguments, handles Ctrl-C (the test objects are removed before exiting)
//! and shows the outcome: one line per link with ✓ / ×, the cause and a `hint:`.
//!
//! Exit codes as `check`: 0 every link passed, 1 a link failed or the fleet is invalid,
//! 2 the command could not run (unknown `--link`, unreadable kubeconfig, interrupted).

use std::time::Duration;

use meshfleet_core::live::verify::{self, LinkOutcome};
use meshfleet_core::plan::verify as plan;
use serde::Serialize;

use super::{CommandError, ExitStatus, hinted, kubeconfigs, load_plan, runtime};
use crate::cli::{GlobalArgs, OutputFormat, VerifyArgs};
use crate::printer::{Printer, Style};

pub fn run(args: &VerifyArgs, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    if args.timeout == 0 {
        return Err(hinted(
            "`--timeout 0` leaves the client no time to call",
            "give the seconds the client keeps calling, e.g. `--timeout 60`",
        ));
    }
    if args.image.trim().is_empty() {
        return Err(hinted(
            "`--image` is empty",
            "name an image with python3, e.g. `--image python:3.13-alpine`",
        ));
    }
    let (_checked, fleet) = match load_plan(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let ids = plan::link_ids(&fleet);
    if ids.is_empty() {
        return Err(hinted(
            "the fleet has no links to verify",
            "add a link under `spec.links`",
        ));
    }
    if let Some(unknown) = args.links.iter().find(|id| !ids.contains(id)) {
        let known: Vec<String> = ids.iter().map(|i| format!("`{i}`")).collect();
        return Err(hinted(
            format!("the fleet has no link `{unknown}`"),
            format!("`--link` takes `<source>-to-<target>`: {}", known.join(", ")),
        ));
    }
    let links = plan::plan(&fleet, &args.links, &args.image, args.timeout);
    let kubeconfigs = kubeconfigs(global)?;
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        printer.status(&format!(
            "verifying {} link(s), up to {} s each...",
            links.len(),
            args.timeout
        ));
    }
    let deadline = Duration::from_secs(args.timeout);
    let outcomes = runtime()?.block_on(async {
        tokio::select! {
            outcomes = verify::run(&fleet, &kubeconfigs, &links, deadline) => Ok(outcomes),
            _ = tokio::signal::ctrl_c() => {
                printer.status("interrupted: removing the test namespaces...");
                Err(verify::clean_up(&fleet, &kubeconfigs, &links).await)
            }
        }
    });
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(left) if left.is_empty() => {
            return Err(hinted(
                "interrupted",
                "the test namespaces were removed; rerun `meshfleet verify`",
            ));
        }
        Err(left) => {
            let which: Vec<String> = left.iter().map(|(l, e)| format!("{l} ({e})")).collect();
            return Err(hinted(
                format!(
                    "interrupted; could not remove the test namespaces of {}",
                    which.join(", ")
                ),
                "rerun `meshfleet verify`: it removes what an earlier run left before it starts",
            ));
        }
    };
    match global.output {
        OutputFormat::Json => printer.json(&VerifyJson {
            fleet: &fleet.name,
            success: outcomes.iter().all(|o| o.ok),
            links: &outcomes,
        })?,
        OutputFormat::Text => printer.data(&text(&outcomes, printer)),
    }
    Ok(if outcomes.iter().all(|o| o.ok) {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// The `-o json` document; field names and cause ids are stable.
#[derive(Serialize)]
struct VerifyJson<'a> {
    fleet: &'a str,
    success: bool,
    links: &'a [LinkOutcome],
}

fn text(outcomes: &[LinkOutcome], printer: Printer) -> String {
    let mut out = String::new();
    for o in outcomes {
        let symbol = if o.ok {
            printer.out(Style::Success, "✓")
        } else {
            printer.out(Style::Error, "×")
        };
        let latency = o.latency_ms.map(|ms| format!(", {ms:.1} ms")).unwrap_or_default();
        let reached = if o.reached { "reached" } else { "not reached" };
        out.push_str(&format!(
            "{symbol} {} via {}: {reached}{latency}\n",
            o.link, o.path
        ));
        match &o.peer_identity {
            Some(peer) => out.push_str(&format!("    server saw {peer} (the {}'s identity", o.peer_is)),
            None => out.push_str(&format!(
                "    server must see {} (the {}'s identity",
                o.expected_peer, o.peer_is
            )),
        }
        if o.peer_is == "gateway" {
            out.push_str(&format!(
                "; the gateway terminates the client {}'s connection)\n",
                o.client_identity
            ));
        } else {
            out.push_str(")\n");
        }
        if let Some(cause) = o.cause {
            let id = serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!("    {id}: {}\n", o.detail.as_deref().unwrap_or("")));
        }
        if let Some(hint) = &o.hint {
            out.push_str(&format!("    hint: {hint}\n"));
        }
        if !o.cleaned_up {
            out.push_str(&format!(
                "    {} the test namespace was not removed; a rerun removes it\n",
                printer.out(Style::Warning, "‼")
            ));
        }
    }
    let passed = outcomes.iter().filter(|o| o.ok).count();
    out.push_str(&format!("\n{passed}/{} links passed\n", outcomes.len()));
    out
}

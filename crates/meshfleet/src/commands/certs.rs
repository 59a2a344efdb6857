//! `meshfleet certs init [PATH]` and `meshfleet certs inspect FILE...`.

use std::path::{Path, PathBuf};

use meshfleet_core::diagnostic::{Hint as _, error_chain};
use meshfleet_core::fleet::{FLEET_FILE_NAMES, Fleet, FleetSource, LoadError};
use meshfleet_core::identity::{self, CertInfo};
use meshfleet_core::keys::{self, KeyFolder, KeysError};
use serde::Serialize;

use super::{CommandError, ExitStatus, hinted, now};
use crate::cli::{CertsInitArgs, CertsInspectArgs, OutputFormat};
use crate::printer::Printer;

pub fn init(args: &CertsInitArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (source, fleet) = match load_fleet(&args.path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let dir = source.dir();
    let folder = args
        .keys
        .clone()
        .map_or_else(|| KeyFolder::default_for(&dir), KeyFolder::new);
    let report = match keys::init(&fleet, &dir, &folder, now()) {
        Ok(report) => report,
        // Refusals, not failures: nothing was written, exit 1.
        Err(e @ (KeysError::Exists(_) | KeysError::AnchorKeyMissing { .. })) => {
            let consequence = if matches!(e, KeysError::Exists(_)) {
                " (nothing was written)"
            } else {
                ", so no issuer can be signed"
            };
            printer.error(&format!("{e}{consequence}"), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    if report.reused_anchor {
        printer.status("kept the existing trust anchor and signed the missing issuers with its key");
    }
    for path in &report.public {
        let text = fs_err::read_to_string(path).map_err(CommandError::unhinted)?;
        let summary = identity::parse_pem_bundle(&text)
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| {
                format!(
                    " ({}, valid until {}, sha256 {})",
                    c.key_type,
                    identity::format_time(c.not_after),
                    c.sha256
                )
            })
            .unwrap_or_default();
        printer.status(&format!("created `{}`{summary}", path.display()));
    }
    for path in &report.private {
        printer.status(&format!(
            "created private key `{}` (mode 0600, git-ignored)",
            path.display()
        ));
    }
    // Where `secrets sync` puts the keys: Vault, or with SOPS sealed into the tree.
    let sops = fleet.spec.secrets.as_ref().is_some_and(|s| s.sops.is_some());
    let sync = if sops {
        let tree = fleet
            .spec
            .gitops
            .repository
            .path
            .as_ref()
            .map_or("gitops", |p| p.value.as_str());
        format!("`meshfleet secrets sync --out {tree}` to seal them into the rendered tree (SOPS)")
    } else {
        "`meshfleet secrets sync` to store the keys in Vault".to_string()
    };
    printer.status(&format!(
        "next: commit the public anchor, keep `{}` out of git, and run {sync}",
        folder.dir.display()
    ));
    Ok(ExitStatus::Success)
}

pub fn inspect(
    args: &CertsInspectArgs,
    output: OutputFormat,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let anchors = match fleet_anchors(args.fleet.as_deref(), printer)? {
        Ok(anchors) => anchors,
        Err(status) => return Ok(status),
    };
    let at = now();
    let mut reports = Vec::new();
    let mut text = String::new();
    let mut failed = false;
    for file in &args.files {
        let content =
            fs_err::read_to_string(file).map_err(|e| hinted(e.to_string(), "pass PEM certificate files"))?;
        let certs = match identity::parse_pem_bundle(&content) {
            Ok(certs) => certs,
            Err(e) => {
                printer.error(
                    &format!("`{}`: {}", file.display(), error_chain(&e)),
                    Some("pass PEM certificate files (not keys)"),
                );
                failed = true;
                continue;
            }
        };
        text.push_str(&format!("{}\n", file.display()));
        for (i, cert) in certs.iter().enumerate() {
            let chain = chain_status(&certs[i..], anchors.as_ref());
            if certs.len() > 1 {
                text.push_str(&format!("  [{}/{}]\n", i + 1, certs.len()));
            }
            text.push_str(&describe(cert, &chain, at));
            reports.push(CertReport {
                file: file.display().to_string(),
                index: i,
                subject: cert.subject.clone(),
                issuer: cert.issuer.clone(),
                key_type: cert.key_type.to_string(),
                not_before: identity::format_time(cert.not_before),
                not_after: identity::format_time(cert.not_after),
                days_left: cert.days_left(at),
                valid_now: cert.valid_at(at),
                is_ca: cert.is_ca,
                path_length: cert.path_len,
                sha256: cert.sha256.clone(),
                chains_to_fleet_anchor: chain.chains(),
            });
        }
    }
    match output {
        OutputFormat::Json => printer.json(&reports)?,
        OutputFormat::Text => printer.data(&text),
    }
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

enum Chain {
    NoFleet,
    IsAnchor,
    Chains(String),
    DoesNot,
}

impl Chain {
    /// Whether it chains to the fleet's anchor; `None` without a fleet.
    fn chains(&self) -> Option<bool> {
        match self {
            Self::NoFleet => None,
            Self::IsAnchor | Self::Chains(_) => Some(true),
            Self::DoesNot => Some(false),
        }
    }
}

/// One certificate in `certs inspect -o json`; field names are stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertReport {
    file: String,
    index: usize,
    subject: String,
    issuer: String,
    key_type: String,
    not_before: String,
    not_after: String,
    days_left: i64,
    valid_now: bool,
    #[serde(rename = "isCA")]
    is_ca: bool,
    path_length: Option<u32>,
    sha256: String,
    chains_to_fleet_anchor: Option<bool>,
}

fn chain_status(chain: &[CertInfo], anchors: Option<&Vec<CertInfo>>) -> Chain {
    let Some(anchors) = anchors else {
        return Chain::NoFleet;
    };
    if anchors.iter().any(|a| a.der == chain[0].der) {
        return Chain::IsAnchor;
    }
    identity::chains_to(chain, anchors).map_or(Chain::DoesNot, |a| Chain::Chains(a.subject.clone()))
}

fn describe(cert: &CertInfo, chain: &Chain, now: time::OffsetDateTime) -> String {
    let days = cert.days_left(now);
    let validity = if cert.valid_at(now) {
        format!("{days} days left")
    } else if days < 0 {
        "EXPIRED".to_string()
    } else {
        "NOT YET VALID".to_string()
    };
    let ca = if cert.is_ca {
        match cert.path_len {
            Some(n) => format!("yes, path length {n}"),
            None => "yes, no path length limit".to_string(),
        }
    } else {
        "no".to_string()
    };
    let issuer = if cert.is_self_signed() {
        format!("{} (self-signed)", cert.issuer)
    } else {
        cert.issuer.clone()
    };
    let fleet = match chain {
        Chain::NoFleet => "unknown (no fleet file here; pass `--fleet PATH`)".to_string(),
        Chain::IsAnchor => "yes: this is the fleet's trust anchor".to_string(),
        Chain::Chains(subject) => format!("yes: chains to the fleet's anchor `{subject}`"),
        Chain::DoesNot => "NO: does not chain to the fleet's trust anchor".to_string(),
    };
    format!(
        "  subject:      {}\n  issuer:       {issuer}\n  key:          {}\n  valid:        {} to {} ({validity})\n  CA:           {ca}\n  sha256:       {}\n  fleet anchor: {fleet}\n",
        cert.subject,
        cert.key_type,
        identity::format_time(cert.not_before),
        identity::format_time(cert.not_after),
        cert.sha256,
    )
}

/// A parsed fleet; an invalid one has its finding printed and exits 1, as every
/// command that takes a fleet does.
fn load_fleet(
    path: &Path,
    printer: Printer,
) -> Result<Result<(FleetSource, Fleet), ExitStatus>, CommandError> {
    match meshfleet_core::fleet::load(path) {
        Ok(loaded) => Ok(Ok(loaded)),
        Err(LoadError::Invalid { file, findings }) => {
            printer.status(
                printer
                    .findings(&file.path.display().to_string(), &file.text, &findings, false)
                    .trim_end(),
            );
            Ok(Err(ExitStatus::Failure))
        }
        Err(e) => Err(e.into()),
    }
}

/// The fleet's anchors: from `--fleet`, else from `./fleet.yaml` or `./meshfleet.yaml`
/// when present. An invalid fleet is `Err(exit 1)` (its finding printed); an unreadable
/// one, or an unreadable anchor, cannot be used at all (exit 2).
fn fleet_anchors(
    fleet: Option<&Path>,
    printer: Printer,
) -> Result<Result<Option<Vec<CertInfo>>, ExitStatus>, CommandError> {
    let path: PathBuf = match fleet {
        Some(p) => p.to_path_buf(),
        None if FLEET_FILE_NAMES.iter().any(|name| Path::new(name).is_file()) => PathBuf::from("."),
        None => return Ok(Ok(None)),
    };
    let (source, fleet) = match load_fleet(&path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(Err(status)),
    };
    let anchor_path = meshfleet_core::validate::anchor_path(&source.dir(), &fleet);
    let text = fs_err::read_to_string(&anchor_path)
        .map_err(|e| hinted(e.to_string(), "run `meshfleet certs init` to create the anchor"))?;
    let certs = identity::parse_pem_bundle(&text).map_err(|e| {
        hinted(
            format!("`{}`: {}", anchor_path.display(), error_chain(&e)),
            "fix the fleet's trust anchor file",
        )
    })?;
    Ok(Ok(Some(certs)))
}

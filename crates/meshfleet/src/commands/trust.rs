//! `meshfleet trust extract --context CTX` and `meshfleet trust verify [PATH]`: the
//! seed's `manage-linkerd-trust-anchors.sh extract` and `verify-all`, reading what the
//! clusters really use instead of a copy kept elsewhere.
//!
//! `extract` prints the PEM bundle the proxies use on stdout (so `> anchor.crt` gives a
//! usable file) and what it holds on stderr; `verify` prints a table of every cluster's
//! two sources against the fleet's bundle.

use std::path::Path;

use comfy_table::{Table, presets};
use meshfleet_core::diagnostic::error_chain;
use meshfleet_core::identity::{self, CertInfo};
use meshfleet_core::live::cluster::ReadError;
use meshfleet_core::live::trust::{
    self, AnchorSource, ClusterAnchors, ClusterTrust, SourceBundle, TrustReport, Verdict,
};
use serde::Serialize;

use super::{CommandError, ExitStatus, hinted, kubeconfigs, load_plan, now, runtime};
use crate::cli::{GlobalArgs, OutputFormat, TrustExtractArgs};
use crate::printer::Printer;

pub fn extract(
    args: &TrustExtractArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<ExitStatus, CommandError> {
    let kubeconfigs = kubeconfigs(global)?;
    let (context, namespace) = (args.context.as_str(), args.linkerd_namespace.as_str());
    let anchors = runtime()?
        .block_on(trust::extract(&kubeconfigs, context, namespace))
        .map_err(|e| read_failure(&e, context))?;
    let in_use = anchors.in_use();
    match global.output {
        OutputFormat::Json => printer.json(&extract_json(context, &anchors))?,
        OutputFormat::Text => {
            if let Some((_, certs)) = in_use {
                printer.data(&trust::pem_bundle(certs));
            }
            printer.status(&describe_sources(context, &anchors));
        }
    }
    let Some((source, _)) = in_use else {
        let problems: Vec<String> = AnchorSource::ALL
            .into_iter()
            .filter_map(|s| anchors.source(s).problem(s, namespace))
            .collect();
        printer.error(
            &format!(
                "context `{context}` has no usable trust anchors in namespace `{namespace}`: {}",
                problems.join("; ")
            ),
            Some(&format!(
                "is Linkerd installed there? If its control plane runs in another namespace, pass `--linkerd-namespace NS`; check that `--context {context}` is the cluster you mean (`kubectl --context {context} -n {namespace} get configmaps`)"
            )),
        );
        return Ok(ExitStatus::Failure);
    };
    let mut status = ExitStatus::Success;
    if source == AnchorSource::LinkerdConfig {
        let problem = anchors
            .trust_roots
            .problem(AnchorSource::TrustRoots, namespace)
            .unwrap_or_default();
        printer.warning(&format!(
                "{problem}; printed the bundle of `{}` instead, which the proxies do not read",
                trust::LINKERD_CONFIG
            ),
            Some("the control plane is incomplete: sync its `linkerd-control-plane` stage (or reinstall Linkerd)"),
        );
        status = ExitStatus::Failure;
    } else if let Some(problem) = anchors
        .linkerd_config
        .problem(AnchorSource::LinkerdConfig, namespace)
    {
        printer.warning(
            &format!("{problem}; `linkerd check` and `linkerd multicluster check` read the anchors there"),
            Some("sync the cluster's `linkerd-control-plane` stage so that `identityTrustAnchorsPEM` is set"),
        );
        status = ExitStatus::Failure;
    }
    if anchors.sources_agree() == Some(false) {
        printer.warning(&sources_differ(&anchors), Some(&differ_hint()));
        status = ExitStatus::Failure;
    }
    Ok(status)
}

pub fn verify(path: &Path, global: &GlobalArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (checked, plan) = match load_plan(path, printer)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let anchor_file = meshfleet_core::validate::anchor_path(&checked.source.dir(), &checked.fleet);
    let kubeconfigs = kubeconfigs(global)?;
    // The fleet's anchors were parsed by validation; only the clusters are read here.
    let report = runtime()?.block_on(trust::verify_fleet(&kubeconfigs, &plan));
    let anchor_name = anchor_file.display().to_string();
    match global.output {
        OutputFormat::Json => printer.json(&verify_json(&report, &anchor_name, &plan.linkerd.namespace))?,
        OutputFormat::Text => printer.data(&format!("{}\n", verify_table(&report, &anchor_name))),
    }
    for cluster in &report.clusters {
        explain(printer, cluster, &report, &plan.linkerd.namespace, &anchor_name);
    }
    printer.status(&summary(&report));
    if let Some(rotation) = &plan.identity.rotation {
        printer.status(&format!(
            "a trust anchor rotation is in progress (phase `{}`): the fleet's bundle holds {}; `meshfleet trust rotate status` shows each cluster's progress",
            rotation.phase.as_str(),
            if rotation.phase.bundle_holds_both() { "the old and the new anchor" } else { "only the new anchor" }
        ));
    }
    Ok(if report.none_reachable() {
        ExitStatus::Error
    } else if report.all_match() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// A cluster that could not be read at all: exit 2 with a hint.
fn read_failure(error: &ReadError, context: &str) -> CommandError {
    let hint = error.hint_for(context, "read ConfigMaps in the Linkerd namespace");
    hinted(
        format!("cannot read context `{context}`: {}", error_chain(error)),
        hint,
    )
}

fn differ_hint() -> String {
    format!(
        "proxies use `{}`; `linkerd check` and `linkerd multicluster check` read `{}`. Sync the `linkerd-control-plane` stage so that both hold the fleet's bundle",
        trust::TRUST_ROOTS,
        trust::LINKERD_CONFIG
    )
}

fn sources_differ(anchors: &ClusterAnchors) -> String {
    let list = |source: AnchorSource| {
        anchors
            .source(source)
            .certs()
            .map(|c| trust::fingerprints(c).into_iter().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    format!(
        "`{}` and `{}` hold different anchors: {} has [{}], {} has [{}]",
        trust::TRUST_ROOTS,
        trust::LINKERD_CONFIG,
        AnchorSource::TrustRoots.name(),
        list(AnchorSource::TrustRoots),
        AnchorSource::LinkerdConfig.name(),
        list(AnchorSource::LinkerdConfig)
    )
}

fn describe_cert(out: &mut String, index: usize, cert: &CertInfo) {
    let at = now();
    let days = cert.days_left(at);
    let validity = if cert.valid_at(at) {
        format!("{days} days left")
    } else if days < 0 {
        "EXPIRED".to_string()
    } else {
        "NOT YET VALID".to_string()
    };
    out.push_str(&format!(
        "    [{index}] {}\n        valid {} to {} ({validity})\n        sha256 {}\n",
        cert.subject,
        identity::format_time(cert.not_before),
        identity::format_time(cert.not_after),
        cert.sha256
    ));
}

/// What each source holds, for stderr.
fn describe_sources(context: &str, anchors: &ClusterAnchors) -> String {
    let mut out = format!(
        "trust anchors of context `{context}` (namespace `{}`):\n",
        anchors.namespace
    );
    for source in AnchorSource::ALL {
        let bundle = anchors.source(source);
        let used = if source == AnchorSource::TrustRoots {
            "; the proxies use this one"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} (ConfigMap `{}`, {}{used}): ",
            source.name(),
            source.config_map(),
            source.location()
        ));
        match bundle.certs() {
            Some(_) if source == AnchorSource::LinkerdConfig && anchors.sources_agree() == Some(true) => {
                out.push_str("the same certificates\n");
            }
            Some(certs) => {
                out.push_str(&format!("{} certificate(s)\n", certs.len()));
                for (i, cert) in certs.iter().enumerate() {
                    describe_cert(&mut out, i + 1, cert);
                }
            }
            None => out.push_str(&format!(
                "{}\n",
                bundle.problem(source, &anchors.namespace).unwrap_or_default()
            )),
        }
    }
    out.trim_end().to_string()
}

/// One certificate of a bundle in `-o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertJson<'a> {
    subject: &'a str,
    issuer: &'a str,
    not_before: String,
    not_after: String,
    days_left: i64,
    sha256: &'a str,
}

fn cert_json(cert: &CertInfo) -> CertJson<'_> {
    CertJson {
        subject: &cert.subject,
        issuer: &cert.issuer,
        not_before: identity::format_time(cert.not_before),
        not_after: identity::format_time(cert.not_after),
        days_left: cert.days_left(now()),
        sha256: &cert.sha256,
    }
}

/// One source of a cluster's anchors in `-o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceJson<'a> {
    source: &'static str,
    config_map: &'static str,
    status: &'static str,
    problem: Option<String>,
    sha256: Vec<&'a str>,
    certificates: Vec<CertJson<'a>>,
}

fn source_json(anchors: &ClusterAnchors, source: AnchorSource, verdict: Option<Verdict>) -> SourceJson<'_> {
    let bundle = anchors.source(source);
    let certs = bundle.certs().unwrap_or_default();
    // `extract` has nothing to compare with: it says what it found.
    let status = match (verdict, bundle) {
        (Some(verdict), _) => verdict.name(),
        (None, SourceBundle::Found(_)) => "found",
        (None, SourceBundle::Missing(_)) => "missing",
        (None, SourceBundle::Invalid(_)) => "invalid",
    };
    SourceJson {
        source: source.name(),
        config_map: source.config_map(),
        status,
        problem: bundle.problem(source, &anchors.namespace),
        sha256: certs.iter().map(|c| c.sha256.as_str()).collect(),
        certificates: certs.iter().map(cert_json).collect(),
    }
}

/// `trust extract -o json`; field names are stable.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractJson<'a> {
    context: &'a str,
    namespace: &'a str,
    in_use: Option<&'static str>,
    pem: Option<String>,
    sources_agree: Option<bool>,
    sources: Vec<SourceJson<'a>>,
}

fn extract_json<'a>(context: &'a str, anchors: &'a ClusterAnchors) -> ExtractJson<'a> {
    let in_use = anchors.in_use();
    ExtractJson {
        context,
        namespace: &anchors.namespace,
        in_use: in_use.map(|(s, _)| s.name()),
        pem: in_use.map(|(_, certs)| trust::pem_bundle(certs)),
        sources_agree: anchors.sources_agree(),
        sources: AnchorSource::ALL
            .into_iter()
            .map(|s| source_json(anchors, s, None))
            .collect(),
    }
}

/// `trust verify -o json`; field names are stable.
#[derive(Serialize)]
struct VerifyJson<'a> {
    fleet: FleetAnchorsJson<'a>,
    ok: bool,
    clusters: Vec<ClusterTrustJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FleetAnchorsJson<'a> {
    anchor_file: &'a str,
    sha256: Vec<&'a str>,
    certificates: Vec<CertJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterTrustJson<'a> {
    cluster: &'a str,
    context: &'a str,
    namespace: &'a str,
    status: &'static str,
    error: Option<String>,
    sources_agree: Option<bool>,
    sources: Vec<SourceJson<'a>>,
}

fn verify_json<'a>(report: &'a TrustReport, anchor_file: &'a str, namespace: &'a str) -> VerifyJson<'a> {
    let clusters = report
        .clusters
        .iter()
        .map(|c| {
            let (sources, sources_agree, error) = match &c.anchors {
                Ok(a) => (
                    AnchorSource::ALL
                        .into_iter()
                        .map(|s| source_json(a, s, Some(c.verdict(s, &report.fleet))))
                        .collect(),
                    a.sources_agree(),
                    None,
                ),
                Err(e) => (Vec::new(), None, Some(error_chain(e))),
            };
            ClusterTrustJson {
                cluster: &c.cluster,
                context: &c.context,
                namespace,
                status: c.overall(&report.fleet).name(),
                error,
                sources_agree,
                sources,
            }
        })
        .collect();
    VerifyJson {
        fleet: FleetAnchorsJson {
            anchor_file,
            sha256: report.fleet.iter().map(|c| c.sha256.as_str()).collect(),
            certificates: report.fleet.iter().map(cert_json).collect(),
        },
        ok: report.all_match(),
        clusters,
    }
}

/// `aa:bb:cc:dd:ee:ff:00:11…`: enough to tell anchors apart in a table.
fn short(fingerprint: &str) -> String {
    let cut: String = fingerprint.chars().take(23).collect();
    if cut.len() < fingerprint.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn short_list(certs: &[CertInfo]) -> String {
    trust::fingerprints(certs)
        .into_iter()
        .map(short)
        .collect::<Vec<_>>()
        .join("\n")
}

fn verify_table(report: &TrustReport, anchor_file: &str) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["CLUSTER", "SOURCE", "SHA-256", "STATUS"]);
    table.add_row(vec![
        "(fleet)".to_string(),
        anchor_file.to_string(),
        short_list(&report.fleet),
        String::new(),
    ]);
    for cluster in &report.clusters {
        let Ok(anchors) = &cluster.anchors else {
            table.add_row(vec![
                cluster.cluster.clone(),
                "-".into(),
                "-".into(),
                "unreachable".into(),
            ]);
            continue;
        };
        for source in AnchorSource::ALL {
            let verdict = cluster.verdict(source, &report.fleet);
            let status = if verdict == Verdict::Mismatch {
                "MISMATCH"
            } else {
                verdict.name()
            };
            let prints = anchors
                .source(source)
                .certs()
                .map_or_else(|| "-".to_string(), short_list);
            table.add_row(vec![
                cluster.cluster.clone(),
                source.name().to_string(),
                prints,
                status.to_string(),
            ]);
        }
    }
    table.to_string()
}

/// What is wrong with one cluster and what to do, on stderr.
fn explain(
    printer: Printer,
    cluster: &ClusterTrust,
    report: &TrustReport,
    namespace: &str,
    anchor_file: &str,
) {
    let name = &cluster.cluster;
    let context = &cluster.context;
    let anchors = match &cluster.anchors {
        Ok(anchors) => anchors,
        Err(e) => {
            printer.error(
                &format!("cluster `{name}` (context `{context}`): {}", error_chain(e)),
                Some(&e.hint_for(context, "read ConfigMaps in the Linkerd namespace")),
            );
            return;
        }
    };
    let fleet = trust::fingerprints(&report.fleet);
    let mut absent = Vec::new();
    for source in AnchorSource::ALL {
        let bundle = anchors.source(source);
        match cluster.verdict(source, &report.fleet) {
            Verdict::Match | Verdict::Unreachable => {}
            Verdict::Pending => printer.warning(
                &format!(
                    "cluster `{name}`: ConfigMap `{namespace}/{}` still holds the bundle of the previous step of the trust anchor rotation",
                    source.config_map()
                ),
                Some("expected until the GitOps engine applies the rendered bundle; `meshfleet trust rotate status` shows what blocks the next step"),
            ),
            Verdict::Mismatch => {
                let have = bundle.certs().map(trust::fingerprints).unwrap_or_default();
                let extra: Vec<&str> = have.difference(&fleet).copied().collect();
                let lacking: Vec<&str> = fleet.difference(&have).copied().collect();
                printer.error(
                    &format!(
                        "cluster `{name}`: ConfigMap `{namespace}/{}` holds other anchors than the fleet: not in the fleet [{}], missing [{}]",
                        source.config_map(),
                        extra.join(", "),
                        lacking.join(", ")
                    ),
                    Some(&format!(
                        "commit and sync the rendered `linkerd-control-plane` stage of `{name}` (its `identityTrustAnchorsPEM` is `{anchor_file}`); if the cluster holds the anchor the fleet should use, write it to the fleet with `meshfleet trust extract --context {context} > {anchor_file}`"
                    )),
                );
            }
            Verdict::Missing | Verdict::Invalid => absent.extend(bundle.problem(source, namespace)),
        }
    }
    if !absent.is_empty() {
        printer.error(
            &format!("cluster `{name}`: {}", absent.join("; ")),
            Some(&format!(
                "is Linkerd installed on `{name}` in namespace `{namespace}`? Sync its `linkerd-control-plane` stage"
            )),
        );
    }
    if anchors.sources_agree() == Some(false) {
        printer.warning(
            &format!("cluster `{name}`: {}", sources_differ(anchors)),
            Some(&differ_hint()),
        );
    }
}

fn summary(report: &TrustReport) -> String {
    let mut counts = std::collections::BTreeMap::<Verdict, usize>::new();
    for cluster in &report.clusters {
        *counts.entry(cluster.overall(&report.fleet)).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(verdict, n)| {
            let word = if *verdict == Verdict::Mismatch {
                "MISMATCH"
            } else {
                verdict.name()
            };
            format!("{n} {word}")
        })
        .collect();
    let nothing = if report.none_reachable() {
        "; no cluster could be read, so nothing was compared"
    } else {
        ""
    };
    format!(
        "{} cluster(s): {}{nothing}",
        report.clusters.len(),
        parts.join(", ")
    )
}

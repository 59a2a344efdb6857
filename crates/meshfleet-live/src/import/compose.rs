//! The readings of `import` as a fleet file and a report, without clusters.
//!
//! The rule that matters (the contract of `import`): rendering the fleet must not
//! change any Link's name, spec or credentials Secret, so every value a Link's spec
//! is rendered from is taken from the Link itself (its name is the target's
//! `linkName`, its gateway address, ports and probe are the target's gateway, its
//! selectors are the link's), and where two readings disagree the report says which
//! cluster and object, instead of choosing silently.

use std::collections::{BTreeMap, BTreeSet};

use super::report::Report;
pub use super::report::{ImportFinding, Severity};
use super::{ClusterReading, IssuerReading, LinkReading, VaultReading};
use crate::cluster::ReadError;
use meshfleet_fleet::defaults;
use meshfleet_fleet::draft::{Entry, FleetDraft, Value, str};

/// What `import` writes.
#[derive(Debug, Clone)]
pub struct Adoption {
    /// The fleet file.
    pub draft: FleetDraft,
    /// The anchor bundle to write to [`Adoption::anchor_file`], when one was read.
    pub anchor_pem: Option<String>,
    /// The anchor file, relative to the fleet file.
    pub anchor_file: String,
    /// The report, problems first.
    pub findings: Vec<ImportFinding>,
    /// Fleet cluster name by context.
    pub clusters: BTreeMap<String, String>,
    /// Links found, as `(source, target, link name, legacy)` with fleet cluster names
    /// (`target` is `None` when it is not among the contexts).
    pub links: Vec<(String, Option<String>, String, bool)>,
}

impl Adoption {
    /// Whether a problem was found (exit 1).
    pub fn has_problems(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Problem)
    }
}

/// Where the anchor bundle goes, relative to the fleet file.
pub const ANCHOR_FILE: &str = "certs/trust-anchor.crt";

/// A fleet cluster name for a context: lowercase, other characters as `-`, at most 63.
pub fn cluster_name(context: &str) -> String {
    let mut name: String = context
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() { "cluster".into() } else { name }
}

/// Compose the fleet and the report from the readings of `contexts` (same order).
pub fn compose(
    name: Option<&str>,
    contexts: &[String],
    readings: &[Result<ClusterReading, ReadError>],
) -> Adoption {
    let mut report = Report(Vec::new());
    let names: BTreeMap<String, String> = contexts.iter().map(|c| (c.clone(), cluster_name(c))).collect();
    let read: Vec<&ClusterReading> = readings.iter().filter_map(|r| r.as_ref().ok()).collect();
    for (context, result) in contexts.iter().zip(readings) {
        if let Err(e) = result {
            report.add(
                Severity::Problem,
                Some(context),
                None,
                format!(
                    "could not be read: {}",
                    meshfleet_fleet::diagnostic::error_chain(e)
                ),
                &e.hint_for(
                    context,
                    "read Namespaces, ConfigMaps, Services, Links and ServiceAccounts",
                ),
            );
        }
    }
    let fleet_name = name
        .map(str::to_string)
        .or_else(|| read.iter().find_map(|r| r.fleet_label.clone()))
        .unwrap_or_else(|| "mesh".into());

    let linkerd = linkerd_section(&read, &mut report);
    let anchor_pem = anchors(&read, &mut report);
    let gitops = gitops_section(&read, &mut report);
    let identity = identity_section(&read, &mut report);
    let secrets = secrets_section(&read, &mut report);
    let (links, link_names, found) = links_section(&read, &names, &mut report);
    let clusters = clusters_section(&read, &names, &link_names, &mut report);
    let by_name: BTreeMap<&String, &String> = names.iter().map(|(c, n)| (n, c)).collect();
    let linked: BTreeSet<(String, String)> = found
        .iter()
        .filter_map(|(source, target, _, _)| {
            Some((
                (*by_name.get(source)?).clone(),
                (*by_name.get(target.as_ref()?)?).clone(),
            ))
        })
        .collect();
    super::networks::overlaps(&read, &linked, &mut report);
    let mut spec = vec![
        Entry::field("linkerd", Value::Map(linkerd)),
        Entry::field("gitops", Value::Map(gitops)),
        Entry::field("identity", Value::Map(identity)),
        Entry::field("secrets", Value::Map(secrets)),
        Entry::field("clusters", Value::Maps(clusters)),
    ];
    if !links.is_empty() {
        spec.push(Entry::field("links", Value::Maps(links)));
    }
    report
        .0
        .sort_by(|a, b| (a.severity, &a.context).cmp(&(b.severity, &b.context)));
    let mut header = vec![format!(
        "Written by `meshfleet import` from context(s) {}.",
        contexts
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    let problems: Vec<&ImportFinding> = report
        .0
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .collect();
    if problems.is_empty() {
        header.push("Comments on a value say where it was read or why it was guessed.".into());
    } else {
        header.push(String::new());
        header.push(format!(
            "NOT READY: the clusters disagree or could not be read ({} problem(s)); fix these before `render`:",
            problems.len()
        ));
        for p in problems {
            header.push(format!("  - {}", describe(p)));
        }
    }
    Adoption {
        draft: FleetDraft {
            header,
            name: fleet_name,
            spec,
        },
        anchor_pem,
        anchor_file: ANCHOR_FILE.into(),
        findings: report.0,
        clusters: names.into_iter().collect(),
        links: found,
    }
}

/// A finding on one line: `context: object: message`.
pub fn describe(f: &ImportFinding) -> String {
    let mut out = String::new();
    if let Some(c) = &f.context {
        out.push_str(&format!("`{c}`: "));
    }
    if let Some(o) = &f.object {
        out.push_str(&format!("{o}: "));
    }
    out.push_str(&f.message);
    out
}

/// One value every cluster should share: the first cluster's, with each other
/// cluster's different value reported.
fn agreed<'a>(
    read: &[&'a ClusterReading],
    what: &str,
    object: &str,
    value: impl Fn(&'a ClusterReading) -> Option<String>,
    report: &mut Report,
) -> Option<String> {
    let values: Vec<(&str, String)> = read
        .iter()
        .filter_map(|r| Some((r.context.as_str(), value(r)?)))
        .collect();
    let (first_context, first) = values.first()?.clone();
    for (context, v) in &values[1..] {
        if *v != first {
            report.add(
                Severity::Problem,
                Some(context),
                Some(object.to_string()),
                format!("{what} is `{v}`, but `{first}` on `{first_context}`"),
                "one fleet has one value: make the clusters agree, or import them as separate fleets",
            );
        }
    }
    Some(first)
}

fn linkerd_section(read: &[&ClusterReading], report: &mut Report) -> Vec<Entry> {
    for r in read.iter().filter(|r| r.control_plane.is_none()) {
        report.add(
            Severity::Problem,
            Some(&r.context),
            Some("Namespace".into()),
            "no namespace is labelled `linkerd.io/is-control-plane=true`: Linkerd is not installed".into(),
            "install Linkerd there first, or leave the context out (`meshfleet init` starts a new mesh)",
        );
    }
    let mut out = Vec::new();
    for r in read {
        if let Some(Err(why)) = r.control_plane.as_ref().map(|c| &c.version) {
            report.add(
                Severity::Guess,
                Some(&r.context),
                Some("Deployment linkerd-destination".into()),
                why.clone(),
                "set `spec.linkerd.version` to the chart version that runs",
            );
        }
    }
    let cp = |r: &ClusterReading| r.control_plane.clone();
    let version = agreed(
        read,
        "the Linkerd version",
        "Deployment linkerd-destination",
        |r| cp(r)?.version.ok(),
        report,
    );
    if let Some(v) = version {
        out.push(Entry::noted(
            "version",
            str(v),
            "read from the control plane's labels",
        ));
    } else {
        {
            report.add(
                Severity::Guess,
                None,
                None,
                "no cluster says its Linkerd version".into(),
                "set `spec.linkerd.version` to the chart version that runs",
            );
            out.push(Entry::noted(
                "version",
                str(meshfleet_fleet::version::NEWEST_KNOWN.to_string()),
                "GUESSED: no cluster said; set the chart version that runs",
            ));
        }
    }
    let ns = agreed(
        read,
        "the Linkerd namespace",
        "Namespace",
        |r| Some(cp(r)?.namespace),
        report,
    );
    if let Some(ns) = ns.filter(|n| n != defaults::LINKERD_NAMESPACE) {
        out.push(Entry::noted(
            "namespace",
            str(ns),
            "read: the namespace labelled as the control plane",
        ));
    }
    let config = "ConfigMap linkerd-config";
    for (key, what, value) in [
        (
            "trustDomain",
            "the trust domain",
            agreed(read, "the trust domain", config, |r| cp(r)?.trust_domain, report),
        ),
        (
            "clusterDomain",
            "the cluster domain",
            agreed(
                read,
                "the cluster domain",
                config,
                |r| cp(r)?.cluster_domain,
                report,
            ),
        ),
    ] {
        if let Some(v) = value.filter(|v| v != defaults::CLUSTER_DOMAIN) {
            out.push(Entry::noted(
                key,
                str(v),
                format!("read: {what} in `linkerd-config`"),
            ));
        }
    }
    let networks = agreed(
        read,
        "`clusterNetworks`",
        config,
        |r| Some(cp(r)?.cluster_networks?.join(",")),
        report,
    );
    if let Some(n) = networks.filter(|n| *n != defaults::CLUSTER_NETWORKS.join(",")) {
        out.push(Entry::noted(
            "clusterNetworks",
            Value::Strs(n.split(',').map(str::to_string).collect()),
            "read from `linkerd-config`",
        ));
    }
    let viz = agreed(
        read,
        "whether linkerd-viz runs",
        "Namespace linkerd-viz",
        |r| Some(cp(r)?.viz.to_string()),
        report,
    );
    if viz.as_deref() == Some("false") {
        out.push(Entry::noted(
            "viz",
            Value::Bool(false),
            "read: no `linkerd-viz` namespace",
        ));
    }
    let gateway_api = read.iter().find_map(|r| r.gateway_api.clone());
    out.push(Entry::Comment(format!(
        "gatewayAPI: external (default): meshfleet leaves the Gateway API CRDs as they are{}",
        gateway_api.map(|v| format!(" (found {v})")).unwrap_or_default()
    )));
    out
}

fn anchors(read: &[&ClusterReading], report: &mut Report) -> Option<String> {
    let mut first: Option<(&str, BTreeSet<String>, String)> = None;
    for r in read {
        let Some(cp) = &r.control_plane else { continue };
        let object = Some(format!(
            "ConfigMap {}/{}",
            cp.namespace,
            crate::trust::TRUST_ROOTS
        ));
        let Some(certs) = cp.anchors.trust_roots.certs() else {
            report.add(
                Severity::Problem,
                Some(&r.context),
                object,
                cp.anchors
                    .trust_roots
                    .problem(crate::trust::AnchorSource::TrustRoots, &cp.namespace)
                    .unwrap_or_default(),
                "the control plane is incomplete; `meshfleet trust extract` shows both sources",
            );
            continue;
        };
        let set: BTreeSet<String> = certs.iter().map(|c| c.sha256.clone()).collect();
        if cp.anchors.sources_agree() == Some(false) {
            report.add(
                Severity::Problem,
                Some(&r.context),
                Some(format!(
                    "ConfigMap {}/{}",
                    cp.namespace,
                    crate::trust::LINKERD_CONFIG
                )),
                "its `identityTrustAnchorsPEM` differs from the bundle the proxies use".into(),
                "`meshfleet trust extract` shows both; the imported anchor is the one the proxies use",
            );
        }
        match &first {
            None => first = Some((&r.context, set, cp.anchors_pem.clone().unwrap_or_default())),
            Some((context, want, _)) if *want != set => report.add(
                Severity::Problem,
                Some(&r.context),
                object,
                format!(
                    "its trust anchors ({}) differ from `{context}`'s ({}): mTLS between them fails",
                    set.iter().map(|s| short(s)).collect::<Vec<_>>().join(", "),
                    want.iter().map(|s| short(s)).collect::<Vec<_>>().join(", ")
                ),
                "one fleet shares one anchor bundle: put both anchors in every cluster's bundle (as `meshfleet trust rotate` does), then import again",
            ),
            Some(_) => {}
        }
    }
    first.map(|(_, _, pem)| pem).filter(|p| !p.trim().is_empty())
}

fn short(fingerprint: &str) -> String {
    fingerprint.chars().take(16).collect()
}

fn gitops_section(read: &[&ClusterReading], report: &mut Report) -> Vec<Entry> {
    let engine = super::engine::entry(read, report);
    report.add(
        Severity::Guess,
        None,
        None,
        "the GitOps repository is not read; `gitops.repository.url` is an example".into(),
        "set `spec.gitops.repository` to where the rendered tree will be committed",
    );
    vec![
        engine,
        Entry::field(
            "repository",
            Value::Map(vec![Entry::noted(
                "url",
                str("https://github.com/example/fleet.git"),
                "GUESSED: change to the repository the rendered tree is committed to",
            )]),
        ),
    ]
}

fn identity_section(read: &[&ClusterReading], report: &mut Report) -> Vec<Entry> {
    let kinds: BTreeMap<&str, IssuerReading> = read
        .iter()
        .filter_map(|r| Some((r.context.as_str(), r.control_plane.as_ref()?.issuer)))
        .collect();
    let mut out = vec![Entry::noted(
        "trustAnchor",
        str(ANCHOR_FILE),
        "written by import: the bundle the proxies use (`linkerd-identity-trust-roots`)",
    )];
    for (context, kind) in &kinds {
        if *kind == IssuerReading::Missing {
            report.add(
                Severity::Problem,
                Some(context),
                Some(format!("Secret {ISSUER}", ISSUER = super::ISSUER)),
                "no issuer: neither a cert-manager Certificate nor a Secret `linkerd-identity-issuer`".into(),
                "the control plane cannot issue certificates; install the issuer first",
            );
        }
    }
    let cert_manager: Vec<&&str> = kinds
        .iter()
        .filter(|(_, k)| **k == IssuerReading::CertManager)
        .map(|(c, _)| c)
        .collect();
    let statics: Vec<&&str> = kinds
        .iter()
        .filter(|(_, k)| **k == IssuerReading::StaticSecret)
        .map(|(c, _)| c)
        .collect();
    if !cert_manager.is_empty() && !statics.is_empty() {
        for context in &statics {
            report.add(
                Severity::Problem,
                Some(context),
                Some(format!("Secret {}", super::ISSUER)),
                "a static issuer, while other clusters' issuers are made by cert-manager".into(),
                "one fleet has one issuer mode (`identity.issuer`); choose one",
            );
        }
    }
    if cert_manager.is_empty() && !statics.is_empty() {
        out.push(Entry::noted(
            "issuer",
            str("vault"),
            "read: a static `linkerd-identity-issuer` Secret; meshfleet keeps static issuers in Vault",
        ));
        report.add(
            Severity::Guess,
            None,
            None,
            "the issuers are static Secrets; `identity.issuer: vault` keeps them in Vault, where `secrets sync` puts them from the key folder".into(),
            "import does not read private keys: copy each cluster's issuer into the key folder (or `certs init` new ones), then `secrets sync`",
        );
    } else {
        out.push(Entry::noted(
            "issuer",
            str("cert-manager"),
            "read: a cert-manager Certificate `linkerd-identity-issuer`",
        ));
    }
    out
}

fn secrets_section(read: &[&ClusterReading], report: &mut Report) -> Vec<Entry> {
    let stores: Vec<(&str, &VaultReading)> = read
        .iter()
        .filter_map(|r| Some((r.context.as_str(), r.vault.as_ref()?)))
        .collect();
    let Some((_, first)) = stores.first() else {
        report.add(
            Severity::Guess,
            None,
            None,
            "no Vault ClusterSecretStore runs; `secrets.vault` is an example".into(),
            "set `spec.secrets.vault` to the Vault External Secrets will read",
        );
        return vec![Entry::field(
            "vault",
            Value::Map(vec![
                Entry::noted(
                    "server",
                    str("https://vault.example.com:8200"),
                    "GUESSED: no Vault store found",
                ),
                Entry::noted("mount", str("secret"), "GUESSED"),
                Entry::noted("path", str("linkerd-multicluster"), "GUESSED"),
            ]),
        )];
    };
    for (context, store) in &stores[1..] {
        if store.server != first.server || store.mount != first.mount {
            report.add(
                Severity::Problem,
                Some(context),
                Some(format!("ClusterSecretStore {}", store.store)),
                format!(
                    "Vault `{}` mount `{}`, but `{}` mount `{}` elsewhere",
                    store.server, store.mount, first.server, first.mount
                ),
                "one fleet reads one Vault; make the stores agree",
            );
        }
    }
    let prefix = stores.iter().find_map(|(_, s)| s.prefix.clone());
    let path = if let Some(p) = prefix {
        Entry::noted("path", str(p), "read from a link's ExternalSecret")
    } else {
        {
            report.add(
                Severity::Guess,
                None,
                None,
                "no ExternalSecret of a link's credentials says the Vault path; `secrets.vault.path` is `linkerd-multicluster`".into(),
                "set `spec.secrets.vault.path` to the prefix of the credentials in Vault",
            );
            Entry::noted(
                "path",
                str("linkerd-multicluster"),
                "GUESSED: no ExternalSecret said",
            )
        }
    };
    let mut vault = vec![
        Entry::noted(
            "server",
            str(&first.server),
            format!("read from ClusterSecretStore `{}`", first.store),
        ),
        Entry::field("mount", str(&first.mount)),
        path,
    ];
    let role = first.role.clone().filter(|r| r != defaults::VAULT_AUTH_ROLE);
    if let Some(role) = role {
        vault.push(Entry::field(
            "auth",
            Value::Map(vec![Entry::field(
                "kubernetes",
                Value::Flow(vec![Entry::field("role", str(role))]),
            )]),
        ));
    }
    vec![Entry::field("vault", Value::Map(vault))]
}

/// The links, each target's link name and what the report lists.
#[allow(clippy::type_complexity)]
fn links_section(
    read: &[&ClusterReading],
    names: &BTreeMap<String, String>,
    report: &mut Report,
) -> (
    Vec<Vec<Entry>>,
    BTreeMap<String, (String, LinkReading)>,
    Vec<(String, Option<String>, String, bool)>,
) {
    let mut out = Vec::new();
    let mut link_names: BTreeMap<String, (String, LinkReading)> = BTreeMap::new();
    let mut found = Vec::new();
    for r in read {
        let source = &names[&r.context];
        for link in &r.links {
            let object = format!("Link {}/{}", defaults::MULTICLUSTER_NAMESPACE, link.name);
            if let Some(problem) = &link.credentials_problem {
                report.add(
                    Severity::Problem,
                    Some(&r.context),
                    Some(format!("Secret {}/{}", defaults::MULTICLUSTER_NAMESPACE, link.spec.cluster_credentials_secret)),
                    format!("the credentials of {object} cannot be read: {problem}"),
                    "import finds a Link's target from its credentials; fix the Secret (`meshfleet check` says more)",
                );
            }
            let target = read.iter().find(|t| {
                link.target_account
                    .as_ref()
                    .is_some_and(|uid| t.accounts.contains_key(uid))
                    || (link.target_server.is_some() && link.target_server == t.server)
            });
            let Some(target) = target else {
                report.add(
                    Severity::Problem,
                    Some(&r.context),
                    Some(object.clone()),
                    format!(
                        "its target (`{}`, API server `{}`) is not among the contexts",
                        link.spec.target_cluster_name,
                        link.target_server.as_deref().unwrap_or("unknown")
                    ),
                    "pass the target's context with another `--context`, or delete the Link if it is stale",
                );
                found.push((source.clone(), None, link.name.clone(), link.legacy));
                continue;
            };
            let target_name = names[&target.context].clone();
            if link.legacy {
                report.add(
                    Severity::Guess,
                    Some(&r.context),
                    Some(object.clone()),
                    format!("served by the deprecated `linkerd multicluster link` controller `linkerd-service-mirror-{}`", link.name),
                    "the rendered tree serves it declaratively; after syncing it, `meshfleet migrate --apply` removes the legacy controller",
                );
            }
            if link.name != link.spec.target_cluster_name
                || link.spec.cluster_credentials_secret != format!("cluster-credentials-{}", link.name)
            {
                report.add(
                    Severity::Problem,
                    Some(&r.context),
                    Some(object.clone()),
                    format!(
                        "its name, `targetClusterName` (`{}`) and credentials Secret (`{}`) do not follow one name, so the rendered Link would differ",
                        link.spec.target_cluster_name, link.spec.cluster_credentials_secret
                    ),
                    "meshfleet derives all three from the target's `linkName`",
                );
            }
            match link_names.get(&target_name) {
                Some((other_source, other)) if other.name != link.name => report.add(
                    Severity::Problem,
                    Some(&r.context),
                    Some(object.clone()),
                    format!(
                        "it names `{target_name}` `{}`, while `{other_source}` names it `{}`: one cluster has one link name",
                        link.name, other.name
                    ),
                    "rename one Link (its mirrors are renamed with it), or import the clusters as separate fleets",
                ),
                Some(_) => {}
                None => {
                    link_names.insert(target_name.clone(), (source.clone(), link.clone()));
                }
            }
            found.push((
                source.clone(),
                Some(target_name.clone()),
                link.name.clone(),
                link.legacy,
            ));
            out.push(link_entry(source, &target_name, link));
        }
    }
    (out, link_names, found)
}

fn link_entry(source: &str, target: &str, link: &LinkReading) -> Vec<Entry> {
    let mut entry = vec![
        Entry::field("source", str(source)),
        Entry::field("target", str(target)),
    ];
    let gateway = link
        .spec
        .gateway_address
        .as_deref()
        .is_some_and(|a| !a.is_empty());
    if !gateway {
        entry.push(Entry::noted(
            "mode",
            str("remote-discovery"),
            "read: the Link has no gateway address",
        ));
    }
    for (key, selector, default) in [
        ("selector", &link.spec.selector, defaults::SELECTOR),
        (
            "remoteDiscoverySelector",
            &link.spec.remote_discovery_selector,
            defaults::REMOTE_DISCOVERY_SELECTOR,
        ),
        (
            "federatedServiceSelector",
            &link.spec.federated_service_selector,
            defaults::FEDERATED_SERVICE_SELECTOR,
        ),
    ] {
        let query = selector
            .as_ref()
            .and_then(meshfleet_fleet::selector::to_label_query);
        if let Some(q) = query.filter(|q| q != default) {
            entry.push(Entry::noted(key, str(q), "read from the Link"));
        }
    }
    entry
}

fn clusters_section(
    read: &[&ClusterReading],
    names: &BTreeMap<String, String>,
    link_names: &BTreeMap<String, (String, LinkReading)>,
    report: &mut Report,
) -> Vec<Vec<Entry>> {
    let mut out = Vec::new();
    for r in read {
        let name = &names[&r.context];
        let mut entry = vec![Entry::field("name", str(name))];
        let incoming = link_names.get(name).map(|(_, l)| l);
        if let Some(link) = incoming.filter(|l| l.name != *name) {
            entry.push(Entry::noted(
                "linkName",
                str(&link.name),
                "read: the name the other clusters' Links give it (mirrors are `<svc>-<linkName>`)",
            ));
        }
        if *name != r.context {
            entry.push(Entry::field("context", str(&r.context)));
        }
        if let Some(server) = incoming.and_then(|l| l.target_server.clone()) {
            entry.push(Entry::noted(
                "apiServer",
                str(server),
                "read: the server in the Links' credentials",
            ));
        }
        entry.push(super::networks::entry(r, report));
        if let Some(store) = &r.vault
            && let Some(mount) = store
                .auth_mount
                .clone()
                .filter(|m| m != defaults::VAULT_AUTH_MOUNT)
        {
            entry.push(Entry::noted(
                "vaultAuthMountPath",
                str(mount),
                format!("read from ClusterSecretStore `{}`", store.store),
            ));
        }
        if let Some(g) = &r.gateway {
            entry.push(Entry::field(
                "gateway",
                Value::Map(gateway_entries(r, g, incoming, report)),
            ));
        }
        out.push(entry);
    }
    out
}

fn gateway_entries(
    r: &ClusterReading,
    g: &super::GatewayReading,
    incoming: Option<&LinkReading>,
    report: &mut Report,
) -> Vec<Entry> {
    let object = Some(format!(
        "Service {}/{}",
        defaults::MULTICLUSTER_NAMESPACE,
        defaults::GATEWAY_NAME
    ));
    let mut out = vec![Entry::noted(
        "serviceType",
        str(&g.service_type),
        "read from Service `linkerd-gateway`",
    )];
    let from_link: Vec<String> = incoming
        .and_then(|l| l.spec.gateway_address.clone())
        .map(|a| {
            a.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !from_link.is_empty() {
        out.push(Entry::noted(
            "addresses",
            Value::Strs(from_link),
            "read: the Links' gateway address",
        ));
    } else if !g.ingress.is_empty() {
        out.push(Entry::noted(
            "addresses",
            Value::Strs(g.ingress.clone()),
            "read: the load balancer's ingress",
        ));
    } else {
        report.add(
            Severity::Guess,
            Some(&r.context),
            object.clone(),
            "no Link targets this gateway and it has no load-balancer address: its addresses are unknown"
                .into(),
            "add `addresses` (the IPs or names other clusters dial) before a link targets it",
        );
        out.push(Entry::Comment(
            "addresses: [...]   unknown: no Link targets it and no load balancer publishes one".into(),
        ));
    }
    if let Some(port) = g.port.filter(|p| *p != i32::from(defaults::GATEWAY_PORT)) {
        out.push(Entry::field("port", Value::Int(port.into())));
    }
    let node_port = g.service_type == "NodePort";
    if node_port && let Some(n) = g.node_port {
        out.push(Entry::noted(
            "nodePort",
            Value::Int(n.into()),
            "read from Service `linkerd-gateway`",
        ));
    }
    let mut probe = Vec::new();
    if let Some(path) = g.probe_path.clone().filter(|p| p != defaults::PROBE_PATH) {
        probe.push(Entry::field("path", str(path)));
    }
    if let Some(port) = g.probe_port.filter(|p| *p != i32::from(defaults::PROBE_PORT)) {
        probe.push(Entry::field("port", Value::Int(port.into())));
    }
    if node_port && let Some(n) = g.probe_node_port {
        probe.push(Entry::field("nodePort", Value::Int(n.into())));
    }
    let period = incoming
        .and_then(|l| l.spec.probe_spec.as_ref().map(|p| p.period.clone()))
        .or_else(|| {
            g.probe_period.clone().map(|p| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    format!("{p}s")
                } else {
                    p
                }
            })
        });
    if let Some(period) = period.filter(|p| p != defaults::PROBE_PERIOD) {
        probe.push(Entry::field("period", str(period)));
    }
    if !probe.is_empty() {
        out.push(Entry::field("probe", Value::Flow(probe)));
    }
    // What a Link will be rendered with must be what the Links say.
    if let Some(link) = incoming {
        let dialled = if node_port { g.node_port } else { g.port };
        let probe_dialled = if node_port {
            g.probe_node_port
        } else {
            g.probe_port
        };
        let link_port = link
            .spec
            .gateway_port
            .as_deref()
            .and_then(|p| p.parse::<i32>().ok());
        let link_probe = link
            .spec
            .probe_spec
            .as_ref()
            .and_then(|p| p.port.parse::<i32>().ok());
        for (what, from_gateway, from_link) in [
            ("gateway port", dialled, link_port),
            ("probe port", probe_dialled, link_probe),
        ] {
            if from_link.is_some() && from_gateway != from_link {
                report.add(
                    Severity::Problem,
                    Some(&r.context),
                    object.clone(),
                    format!(
                        "Link `{}` dials {what} {}, but the gateway Service offers {}: the rendered Link would change",
                        link.name,
                        from_link.map(|p| p.to_string()).unwrap_or_default(),
                        from_gateway.map_or_else(|| "none".to_string(), |p| p.to_string())
                    ),
                    "make the Link and the gateway Service agree (the probe mismatch is linkerd/linkerd2#14451)",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ControlPlane, GatewayReading};
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use meshfleet_render::resources::{LinkSpec, ProbeSpec};

    fn anchor_pem() -> String {
        meshfleet_identity::generate_anchor(time::OffsetDateTime::now_utc())
            .expect("anchor")
            .cert_pem
    }

    /// A cluster as Linkerd's CLI leaves it, with `anchor` in both ConfigMaps.
    fn cluster(context: &str, anchor: &str) -> ClusterReading {
        let values = format!(
            "identityTrustAnchorsPEM: |\n{}",
            anchor.lines().flat_map(|l| ["  ", l, "\n"]).collect::<String>()
        );
        let cm = |key: &str, value: String| ConfigMap {
            data: Some([(key.to_string(), value)].into_iter().collect()),
            ..ConfigMap::default()
        };
        ClusterReading {
            context: context.into(),
            server: Some(format!("https://{context}.example:6443")),
            control_plane: Some(ControlPlane {
                namespace: "linkerd".into(),
                version: Ok("2025.4.4".into()),
                trust_domain: Some("cluster.local".into()),
                cluster_domain: Some("cluster.local".into()),
                cluster_networks: None,
                anchors: crate::trust::anchors_from_config_maps(
                    "linkerd",
                    Some(&cm("values", values)),
                    Some(&cm("ca-bundle.crt", anchor.into())),
                ),
                anchors_pem: Some(anchor.into()),
                issuer: IssuerReading::CertManager,
                viz: true,
            }),
            accounts: [(
                format!("uid-{context}"),
                "linkerd-service-mirror-remote-access-x".into(),
            )]
            .into_iter()
            .collect(),
            ..ClusterReading::default()
        }
    }

    fn link_to(target: &str, name: &str) -> LinkReading {
        LinkReading {
            name: name.into(),
            spec: LinkSpec {
                target_cluster_name: name.into(),
                target_cluster_domain: "cluster.local".into(),
                target_cluster_linkerd_namespace: "linkerd".into(),
                cluster_credentials_secret: format!("cluster-credentials-{name}"),
                gateway_address: Some("192.0.2.1".into()),
                gateway_port: Some("30143".into()),
                gateway_identity: None,
                probe_spec: Some(ProbeSpec {
                    path: "/ready".into(),
                    port: "30191".into(),
                    period: "3s".into(),
                    ..ProbeSpec::default()
                }),
                selector: None,
                remote_discovery_selector: None,
                federated_service_selector: None,
            },
            legacy: false,
            target_server: Some(format!("https://{target}.vpn:6443")),
            target_account: Some(format!("uid-{target}")),
            credentials_problem: None,
        }
    }

    fn node_port_gateway() -> GatewayReading {
        GatewayReading {
            service_type: "NodePort".into(),
            port: Some(4143),
            node_port: Some(30143),
            probe_port: Some(4191),
            probe_node_port: Some(30191),
            probe_path: Some("/ready".into()),
            probe_period: Some("3".into()),
            ingress: Vec::new(),
        }
    }

    fn problems(a: &Adoption) -> Vec<(Option<String>, Option<String>)> {
        a.findings
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .map(|f| (f.context.clone(), f.object.clone()))
            .collect()
    }

    #[test]
    fn a_hub_and_spoke_mesh_becomes_a_fleet_that_keeps_the_link_name() {
        let anchor = anchor_pem();
        let mut hub = cluster("hub", &anchor);
        hub.gateway = Some(node_port_gateway());
        let mut spoke = cluster("spoke", &anchor);
        spoke.links = vec![link_to("hub", "internal")];
        let contexts = vec!["hub".to_string(), "spoke".to_string()];
        let a = compose(Some("adopted"), &contexts, &[Ok(hub), Ok(spoke)]);
        assert!(problems(&a).is_empty(), "{:#?}", a.findings);
        let text = a.draft.text().expect("text");
        let fleet = meshfleet_fleet::parse(&text).expect("parses");
        let hub = &fleet.spec.clusters[0];
        assert_eq!(hub.link_name.as_ref().map(|l| l.value.as_str()), Some("internal"));
        assert_eq!(
            hub.api_server.as_ref().map(|l| l.value.as_str()),
            Some("https://hub.vpn:6443")
        );
        let gateway = hub.gateway.as_ref().expect("gateway");
        assert_eq!(gateway.value.node_port.as_ref().map(|n| n.value), Some(30143));
        assert_eq!(fleet.spec.links.len(), 1);
        assert_eq!(a.anchor_pem.as_deref(), Some(anchor.as_str()));
        assert!(
            text.contains("GUESSED"),
            "guesses are marked in the file:\n{text}"
        );
    }

    #[test]
    fn disagreements_name_the_cluster_and_the_object() {
        let mut hub = cluster("hub", &anchor_pem());
        hub.gateway = Some(GatewayReading {
            probe_node_port: Some(30192),
            ..node_port_gateway()
        });
        let mut spoke = cluster("spoke", &anchor_pem());
        spoke.links = vec![link_to("hub", "internal"), link_to("elsewhere", "far")];
        let contexts = vec!["hub".to_string(), "spoke".to_string()];
        let a = compose(None, &contexts, &[Ok(hub), Ok(spoke)]);
        let found = problems(&a);
        for want in [
            (
                Some("spoke".to_string()),
                Some("ConfigMap linkerd/linkerd-identity-trust-roots".to_string()),
            ),
            (
                Some("spoke".to_string()),
                Some("Link linkerd-multicluster/far".to_string()),
            ),
            (
                Some("hub".to_string()),
                Some("Service linkerd-multicluster/linkerd-gateway".to_string()),
            ),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:#?}");
        }
        let text = a.draft.text().expect("still written");
        assert!(text.contains("# NOT READY"), "{text}");
    }

    fn networks(pods: &[(&str, &str)], services: &[(&str, &str)]) -> super::super::networks::NetworkReading {
        let list = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(cidr, object)| super::super::networks::CidrReading {
                    cidr: (*cidr).into(),
                    object: (*object).into(),
                })
                .collect()
        };
        super::super::networks::NetworkReading {
            pods: list(pods),
            pods_from_nodes: true,
            services: list(services),
            api_service_ip: None,
        }
    }

    fn engine(engine: &'static str, evidence: &str) -> super::super::engine::EngineReading {
        super::super::engine::EngineReading {
            engine,
            evidence: evidence.into(),
        }
    }

    #[test]
    fn networks_are_read_and_overlaps_between_linked_clusters_are_problems() {
        let anchor = anchor_pem();
        let mut hub = cluster("hub", &anchor);
        hub.gateway = Some(node_port_gateway());
        hub.network = networks(
            &[("10.200.0.0/24", "Node hub-0"), ("10.200.1.0/24", "Node hub-1")],
            &[("10.96.0.0/24", "ServiceCIDR kubernetes")],
        );
        let mut spoke = cluster("spoke", &anchor);
        spoke.links = vec![link_to("hub", "internal")];
        spoke.network = networks(&[("10.201.0.0/24", "Node spoke-0")], &[]);
        let mut other = cluster("other", &anchor);
        other.network = networks(&[], &[("10.201.0.0/16", "ServiceCIDR kubernetes")]);
        let contexts = vec!["hub".to_string(), "spoke".to_string(), "other".to_string()];
        let a = compose(None, &contexts, &[Ok(hub.clone()), Ok(spoke.clone()), Ok(other)]);
        assert!(problems(&a).is_empty(), "{:#?}", a.findings);
        let text = a.draft.text().expect("text");
        let fleet = meshfleet_fleet::parse(&text).expect("parses");
        let network = fleet.spec.clusters[0].network.as_ref().expect("hub network");
        let values = |l: &[meshfleet_fleet::located::Located<String>]| {
            l.iter().map(|c| c.value.clone()).collect::<Vec<_>>()
        };
        assert_eq!(values(&network.pods), ["10.200.0.0/23"], "{text}");
        assert_eq!(values(&network.services), ["10.96.0.0/24"], "{text}");
        // What is not told is a guess; unlinked clusters may overlap (a guess line).
        let guesses: Vec<&ImportFinding> = a
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Guess)
            .collect();
        for (context, what) in [
            ("spoke", "service network is not told"),
            ("other", "pod network is not told"),
            ("other", "overlaps the pod CIDR `10.201.0.0/24`"),
        ] {
            assert!(
                guesses
                    .iter()
                    .any(|f| f.context.as_deref() == Some(context) && f.message.contains(what)),
                "{context}: {what} not in {guesses:#?}"
            );
        }
        // Linked clusters that overlap: a problem naming the cluster and the object.
        spoke.network = networks(&[("10.200.1.0/24", "Node spoke-0")], &[]);
        let a = compose(None, &contexts[..2], &[Ok(hub), Ok(spoke)]);
        assert_eq!(
            problems(&a),
            [(Some("spoke".to_string()), Some("Node spoke-0".to_string()))],
            "{:#?}",
            a.findings
        );
        assert!(a.draft.text().expect("text").contains("# NOT READY"));
    }

    #[test]
    fn the_engine_is_read_where_it_runs_and_different_engines_are_a_problem() {
        let anchor = anchor_pem();
        let mut hub = cluster("hub", &anchor);
        hub.engines = vec![engine(
            "argocd",
            "StatefulSet argocd/argocd-application-controller",
        )];
        let spoke = cluster("spoke", &anchor);
        let contexts = vec!["hub".to_string(), "spoke".to_string()];
        let a = compose(None, &contexts, &[Ok(hub.clone()), Ok(spoke.clone())]);
        let text = a.draft.text().expect("text");
        assert!(
            text.contains(
                "engine: argocd  # read: StatefulSet argocd/argocd-application-controller on `hub`"
            ),
            "{text}"
        );
        assert!(
            !a.findings.iter().any(|f| f.message.contains("Argo CD")),
            "{:#?}",
            a.findings
        );
        let mut flux = spoke;
        flux.engines = vec![engine("flux", "Deployment flux-system/kustomize-controller")];
        let a = compose(None, &contexts, &[Ok(hub), Ok(flux)]);
        assert_eq!(
            problems(&a),
            [(
                Some("spoke".to_string()),
                Some("Deployment flux-system/kustomize-controller".to_string())
            )],
            "{:#?}",
            a.findings
        );
        let none = compose(None, &contexts[..1], &[Ok(cluster("hub", &anchor))]);
        assert!(
            none.draft
                .text()
                .expect("text")
                .contains("engine: flux  # GUESSED"),
        );
    }

    #[test]
    fn context_names_become_cluster_names() {
        assert_eq!(cluster_name("kind-studio"), "kind-studio");
        assert_eq!(
            cluster_name("arn:aws:eks:eu-west-1:123:cluster/Prod"),
            "arn-aws-eks-eu-west-1-123-cluster-prod"
        );
        assert_eq!(cluster_name("--"), "cluster");
    }
}

//! Rules for the fleet-wide settings: `apiVersion`/`kind`, `metadata`, `spec.linkerd`,
//! `spec.gitops` and `spec.secrets`.

use meshfleet_fleet::defaults;
use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::diagnostic::Hint as _;
use meshfleet_fleet::located::Located;
use meshfleet_fleet::model::{API_VERSION, ClusterSpec, Engine, InstallMethod, KIND, SopsSpec};
use meshfleet_fleet::names;
use meshfleet_fleet::version::{GatewayApiVersion, LinkerdVersion, NEWEST_KNOWN, OLDEST_SUPPORTED};
use meshfleet_identity::sops::AgeRecipient;

use super::{Ctx, Parsed, Rule};

pub(super) fn check(ctx: &Ctx<'_>, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    let fleet = ctx.fleet;
    if fleet.api_version.value != API_VERSION {
        out.push(Finding::error(
            Rule::ApiVersion,
            fleet.api_version.at,
            format!("`apiVersion` is `{}`", fleet.api_version.value),
            format!("write `apiVersion: {API_VERSION}`"),
        ));
    }
    if fleet.kind.value != KIND {
        out.push(Finding::error(
            Rule::ApiVersion,
            fleet.kind.at,
            format!("`kind` is `{}`", fleet.kind.value),
            format!("write `kind: {KIND}`"),
        ));
    }
    label("fleet name", &fleet.metadata.name, out);
    linkerd(ctx, parsed, out);
    gitops(ctx, out);
    secrets(ctx, out);
}

/// A DNS-1123 label rule for any name.
pub(super) fn label(what: &str, name: &Located<String>, out: &mut Vec<Finding>) {
    if let Err(why) = names::dns1123_label(&name.value) {
        out.push(Finding::error(
            Rule::InvalidName,
            name.at,
            format!("{what} `{}` {why}", name.value),
            "use a DNS-1123 label: lowercase letters, digits and `-`, at most 63 characters",
        ));
    }
}

fn subdomain(what: &str, name: &Located<String>, out: &mut Vec<Finding>) {
    if let Err(why) = names::dns1123_subdomain(&name.value) {
        out.push(Finding::error(
            Rule::InvalidName,
            name.at,
            format!("{what} `{}` {why}", name.value),
            "use a DNS name such as `cluster.local`",
        ));
    }
}

fn linkerd(ctx: &Ctx<'_>, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    let spec = &ctx.fleet.spec.linkerd;
    let version = &spec.version;
    let linkerd_version = LinkerdVersion::parse(&version.value);
    parsed.version = linkerd_version.as_ref().ok().copied();
    match linkerd_version {
        Err(why) => out.push(Finding::error(Rule::LinkerdVersion,
            version.at,
            why.to_string(),
            format!("write the edge chart version, for example `{OLDEST_SUPPORTED}` for Linkerd 2.18"),
        )),
        Ok(v) if v < OLDEST_SUPPORTED => out.push(Finding::error(Rule::LinkerdVersionUnsupported,
            version.at,
            format!(
                "Linkerd `{v}` ({}) has no declarative Links or chart-managed link controllers",
                v.major()
            ),
            format!("use `{OLDEST_SUPPORTED}` (Linkerd 2.18) or newer; older releases need `linkerd multicluster link`"),
        )),
        Ok(v) if v > NEWEST_KNOWN => out.push(Finding::warning(Rule::LinkerdVersionUntested,
            version.at,
            format!("Linkerd `{v}` is newer than the newest release meshfleet was checked against (`{NEWEST_KNOWN}`)"),
            "render and review the diff; the Link schema has not changed since 2.18, so it likely works",
        )),
        Ok(_) => {}
    }
    if let Some(repo) = &spec.chart_repository
        && !(repo.value.starts_with("https://")
            || repo.value.starts_with("http://")
            || repo.value.starts_with("oci://"))
    {
        out.push(Finding::error(
            Rule::ChartRepository,
            repo.at,
            format!(
                "chart repository `{}` is not an http(s):// or oci:// URL",
                repo.value
            ),
            "use `https://helm.linkerd.io/edge`, or your mirror's URL",
        ));
    }
    if let Some(ns) = &spec.namespace {
        label("linkerd namespace", ns, out);
    }
    if let Some(d) = &spec.trust_domain {
        subdomain("trust domain", d, out);
    }
    if let Some(d) = &spec.cluster_domain {
        subdomain("cluster domain", d, out);
    }
    if let Some(gw) = &spec.gateway_api
        && gw.value != "external"
    {
        match GatewayApiVersion::parse(&gw.value) {
            None => out.push(Finding::error(Rule::GatewayApiVersion,
                gw.at,
                format!("`gatewayAPI: {}` is neither `external` nor a release like `v1.2.1`", gw.value),
                "write a Gateway API release such as `v1.2.1`, or `external` if you install the CRDs yourself",
            )),
            Some(g) => {
                if let Ok(v) = LinkerdVersion::parse(&spec.version.value) {
                    let (low, high) = v.gateway_api_range();
                    if g < low || g > high {
                        out.push(Finding::warning(Rule::GatewayApiVersion,
                            gw.at,
                            format!("Gateway API `{g}` is outside the range Linkerd {} supports ({low} to {high})", v.major()),
                            format!("use a release between {low} and {high}"),
                        ));
                    }
                }
            }
        }
    }
}

fn gitops(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let gitops = &ctx.fleet.spec.gitops;
    let method = gitops
        .install_method
        .as_ref()
        .map_or(InstallMethod::Helm, |m| m.value);
    let image = gitops.jobs.as_ref().and_then(|j| j.image.as_ref());
    match (method, image) {
        (InstallMethod::Jobs, None) => {
            let at = gitops
                .jobs
                .as_ref()
                .map(|j| j.at)
                .or_else(|| gitops.install_method.as_ref().map(|m| m.at))
                .unwrap_or(gitops.engine.at);
            // The image to build is named after the fleet's release, as the Jobs check it.
            let edge = LinkerdVersion::parse(&ctx.fleet.spec.linkerd.version.value)
                .map_or_else(|_| "edge-YY.M.N".to_string(), LinkerdVersion::edge_tag);
            out.push(Finding::error(Rule::JobsImageMissing,
                at,
                "`installMethod: jobs` needs `gitops.jobs.image`",
                format!(
                    "set `gitops.jobs: {{image: ...}}` to an image that has a shell, the `linkerd` CLI of {edge} and `kubectl` (Linkerd's own CLI image is built FROM scratch and has neither); build one from meshfleet's images/linkerd-jobs/Dockerfile: `docker build images/linkerd-jobs --build-arg LINKERD_VERSION={edge} -t <registry>/linkerd-jobs:{edge}`"
                ),
            ));
        }
        (InstallMethod::Jobs, Some(image))
            if image.value.trim().is_empty() || image.value.contains(char::is_whitespace) =>
        {
            out.push(Finding::error(
                Rule::JobsImageMissing,
                image.at,
                format!("`{}` is not an image reference", image.value),
                "write an image reference such as `registry.example/linkerd-kubectl:edge-25.4.4`",
            ));
        }
        (InstallMethod::Helm, Some(image)) => out.push(Finding::warning(
            Rule::SettingIgnored,
            image.at,
            "`gitops.jobs.image` is ignored with `installMethod: helm`",
            "remove it, or set `installMethod: jobs`",
        )),
        _ => {}
    }
    if gitops.engine.value == Engine::Flux
        && let Some(ns) = gitops
            .argocd
            .as_ref()
            .and_then(|a| a.namespace.as_ref().or(a.project.as_ref()))
    {
        out.push(Finding::warning(
            Rule::SettingIgnored,
            ns.at,
            "`gitops.argocd` is ignored with `engine: flux`",
            "remove it, or set `engine: argocd`",
        ));
    }
    if let Some(argocd) = &gitops.argocd {
        if let Some(ns) = &argocd.namespace {
            label("Argo CD namespace", ns, out);
        }
        if let Some(p) = &argocd.project {
            label("Argo CD project", p, out);
        }
    }
    let repo = &gitops.repository;
    let url = repo.url.value.as_str();
    let known_scheme = ["https://", "http://", "ssh://", "git@", "file://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !known_scheme || url.contains(char::is_whitespace) {
        out.push(Finding::error(Rule::RepositoryUrl,
            repo.url.at,
            format!("repository URL `{url}` is not a Git URL"),
            "write the URL your GitOps engine clones, e.g. `https://github.com/example/fleet.git` or `ssh://git@github.com/example/fleet.git`",
        ));
    }
    if let Some(path) = &repo.path {
        let p = path.value.as_str();
        if p.starts_with('/') || p.split('/').any(|seg| seg == "..") || p.contains(char::is_whitespace) {
            out.push(Finding::error(
                Rule::RepositoryUrl,
                path.at,
                format!("repository path `{p}` must be a relative folder inside the repository"),
                "write a folder such as `gitops` or `clusters/linkerd`, without `..` or a leading `/`",
            ));
        }
    }
    if let Some(branch) = &repo.branch
        && (branch.value.is_empty() || branch.value.contains(char::is_whitespace))
    {
        out.push(Finding::error(
            Rule::RepositoryUrl,
            branch.at,
            format!("branch `{}` is not a Git branch name", branch.value),
            "write a branch such as `main`",
        ));
    }
}

fn secrets(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let secrets = ctx.fleet.spec.secrets.as_ref();
    if let Some(sops) = secrets.and_then(|s| s.sops.as_ref()) {
        if secrets.and_then(|s| s.vault.as_ref()).is_some() {
            out.push(Finding::error(
                Rule::SecretsBackend,
                sops.at,
                "`spec.secrets` names both `vault` and `sops`; the fleet keeps its secrets in one place",
                "remove `sops` to keep Vault + External Secrets, or remove `vault` to keep SOPS-encrypted Secrets in git",
            ));
        }
        sops_settings(ctx, sops, out);
        return;
    }
    let Some(vault) = secrets.and_then(|s| s.vault.as_ref()) else {
        // No line holds the missing block; point at the identity whose keys need Vault.
        let at = ctx.fleet.spec.identity.trust_anchor.at;
        out.push(Finding::error(Rule::VaultMissing,
            at,
            "the fleet has no `spec.secrets.vault`, but the identity keys and link credentials are kept in Vault",
            "add `secrets: {vault: {server: https://vault.example:8200, mount: secret, path: linkerd-multicluster}}` under `spec`, or keep them in git, encrypted: `secrets: {sops: {age: {operators: [age1…], clusters: {NAME: age1…}}}}` (Flux only)",
        ));
        return;
    };
    let server = &vault.server;
    if !(server.value.starts_with("https://") || server.value.starts_with("http://")) {
        out.push(Finding::error(
            Rule::VaultSettings,
            server.at,
            format!("Vault server `{}` is not an http(s):// URL", server.value),
            "write the address External Secrets uses, e.g. `https://vault.example.com:8200`",
        ));
    }
    for (what, value) in [("mount", &vault.mount), ("path", &vault.path)] {
        let v = value.value.as_str();
        if v.is_empty()
            || v.starts_with('/')
            || v.ends_with('/')
            || v.contains(char::is_whitespace)
            || v.contains("//")
        {
            out.push(Finding::error(Rule::VaultSettings,
                value.at,
                format!("Vault {what} `{v}` is not a KV path"),
                format!("write the {what} without leading or trailing `/`, e.g. `secrets-k8` or `linkerd-multicluster`"),
            ));
        }
    }
    let per_cluster = ctx
        .fleet
        .spec
        .clusters
        .iter()
        .map(|c| &c.value.vault_auth_mount_path);
    let k8s = vault.auth.as_ref().and_then(|a| a.kubernetes.as_ref());
    shared_auth_mounts(ctx, k8s.and_then(|k| k.mount_path.as_ref()), out);
    let fleet_wide = k8s.into_iter().flat_map(|k| [&k.mount_path, &k.role]);
    {
        for value in fleet_wide.chain(per_cluster).flatten() {
            if value.value.trim().is_empty() {
                out.push(Finding::error(
                    Rule::VaultSettings,
                    value.at,
                    "an empty Vault Kubernetes auth setting",
                    "remove it to use the default, or write the value",
                ));
            }
        }
    }
}

/// Clusters that log in to Vault through the same Kubernetes auth mount: a mount checks
/// tokens with the one API server it is configured with (`kubernetes_host`), so every
/// other cluster's ClusterSecretStore fails to log in and no ExternalSecret syncs. One
/// finding per shared mount, at its second cluster.
fn shared_auth_mounts(ctx: &Ctx<'_>, fleet_wide: Option<&Located<String>>, out: &mut Vec<Finding>) {
    let default = fleet_wide.map_or(defaults::VAULT_AUTH_MOUNT, |m| m.value.as_str());
    let mut by_mount: Vec<(&str, Vec<&ClusterSpec>)> = Vec::new();
    for cluster in &ctx.fleet.spec.clusters {
        let mount = cluster
            .vault_auth_mount_path
            .as_ref()
            .map_or(default, |m| m.value.as_str());
        match by_mount.iter_mut().find(|(m, _)| *m == mount) {
            Some((_, clusters)) => clusters.push(&cluster.value),
            None => by_mount.push((mount, vec![&cluster.value])),
        }
    }
    for (mount, clusters) in by_mount {
        let [first, second, rest @ ..] = clusters.as_slice() else {
            continue;
        };
        let at = second
            .vault_auth_mount_path
            .as_ref()
            .map_or(second.name.at, |m| m.at);
        let more = if rest.is_empty() {
            String::new()
        } else {
            format!(" (and {} more)", rest.len())
        };
        let name = &second.name.value;
        let host = second
            .api_server
            .as_ref()
            .map_or("<its apiServer>", |a| a.value.as_str());
        out.push(Finding::error(
            Rule::VaultAuthShared,
            at,
            format!(
                "clusters `{}` and `{name}`{more} log in to Vault through the same Kubernetes auth mount `{mount}`, which checks tokens with one API server",
                first.name.value
            ),
            format!(
                "give each cluster its own mount, e.g. `vaultAuthMountPath: kubernetes-{name}` on `{name}`, configured with that cluster's API server (`vault auth enable -path=kubernetes-{name} kubernetes`, then `vault write auth/kubernetes-{name}/config kubernetes_host={host}`); else External Secrets logs in on one cluster only"
            ),
        ));
    }
}

/// `spec.secrets.sops`: every recipient an age public key, one per operator list and per
/// cluster (no more, none shared), and an engine that decrypts SOPS.
fn sops_settings(ctx: &Ctx<'_>, sops: &Located<SopsSpec>, out: &mut Vec<Finding>) {
    let gitops = &ctx.fleet.spec.gitops;
    if gitops.engine.value == Engine::Argocd {
        out.push(Finding::error(
            Rule::SopsEngine,
            sops.at,
            "Argo CD has no native SOPS decryption, so the clusters could not read these Secrets",
            "use `engine: flux` (its kustomize-controller decrypts SOPS), or keep the secrets in Vault with `secrets: {vault: …}` (External Secrets)",
        ));
    }
    let age = &sops.age;
    let recipient = |what: &str, value: &Located<String>, out: &mut Vec<Finding>| match value
        .value
        .parse::<AgeRecipient>(
    ) {
        Ok(r) => Some(r.to_string()),
        Err(e) => {
            out.push(Finding::error(
                Rule::SopsRecipient,
                value.at,
                format!("{what}: {e}"),
                e.hint().unwrap_or_default(),
            ));
            None
        }
    };
    if age.operators.is_empty() {
        out.push(Finding::error(
            Rule::SopsRecipientsMissing,
            age.at,
            "`sops.age.operators` is empty: nobody could read or update the encrypted files",
            "make a key with `meshfleet secrets age-key --out ~/.config/sops/age/keys.txt` (or `age-keygen`) and write its public key here",
        ));
    }
    for op in &age.operators {
        recipient("an operator recipient", op, out);
    }
    let names: Vec<&str> = ctx
        .fleet
        .spec
        .clusters
        .iter()
        .map(|c| c.value.name.value.as_str())
        .collect();
    let mut seen: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
    for (cluster, value) in &age.clusters {
        if !names.contains(&cluster.as_str()) {
            out.push(Finding::error(
                Rule::SopsRecipientsMissing,
                value.at,
                format!("`sops.age.clusters` names `{cluster}`, which is not a cluster of the fleet"),
                format!("use one of: {}", names.join(", ")),
            ));
        }
        if let Some(r) = recipient(&format!("the recipient of `{cluster}`"), value, out)
            && let Some(other) = seen.insert(r, cluster)
        {
            out.push(Finding::error(
                Rule::SopsRecipientShared,
                value.at,
                format!("`{cluster}` and `{other}` share one age recipient, so each could decrypt the other's link credentials"),
                format!("give `{cluster}` a key of its own: `meshfleet secrets age-key --out .meshfleet/keys/age/{cluster}.agekey` prints its recipient"),
            ));
        }
    }
    for cluster in &ctx.fleet.spec.clusters {
        let name = &cluster.value.name;
        if !age.clusters.contains_key(&name.value) {
            out.push(Finding::error(
                Rule::SopsRecipientsMissing,
                name.at,
                format!("cluster `{}` has no age recipient in `spec.secrets.sops.age.clusters`, so it could not decrypt its Secrets", name.value),
                format!("make its key with `meshfleet secrets age-key --out .meshfleet/keys/age/{}.agekey` and add the recipient it prints under `sops.age.clusters`", name.value),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{base_with, findings, rules};

    #[test]
    fn linkerd_versions_before_declarative_links_are_refused() {
        assert_eq!(
            rules(&base_with("version: 2025.4.4", "version: 2025.3.2")),
            ["linkerd-version-unsupported"]
        );
        assert_eq!(
            rules(&base_with("version: 2025.4.4", "version: stable-2.14")),
            ["linkerd-version"]
        );
    }

    #[test]
    fn jobs_need_an_image_and_helm_ignores_one() {
        let engine = "    engine: flux\n";
        assert_eq!(
            rules(&base_with(engine, "    engine: flux\n    installMethod: jobs\n")),
            ["jobs-image-missing"]
        );
        assert_eq!(
            rules(&base_with(
                engine,
                "    engine: flux\n    jobs: {image: registry.example/k:1}\n"
            )),
            ["setting-ignored"]
        );
    }

    #[test]
    fn vault_settings_are_checked() {
        assert_eq!(
            rules(&base_with("      mount: secret\n", "      mount: /secret/\n")),
            ["vault-settings"]
        );
        let without = base_with(
            "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd\n",
            "",
        );
        assert_eq!(rules(&without), ["vault-missing"]);
    }

    #[test]
    fn two_clusters_on_one_vault_auth_mount_are_an_error() {
        let shared = base_with("      vaultAuthMountPath: kubernetes-pro\n", "")
            .replace("      vaultAuthMountPath: kubernetes-studio\n", "");
        let found = crate::fixtures::findings(&shared);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.rule, "vault-auth-shared");
        assert_eq!(f.location.map(|l| (l.line, l.column)), Some((27, 13)));
        assert_eq!(
            f.message,
            "clusters `studio` and `pro` log in to Vault through the same Kubernetes auth mount `kubernetes`, which checks tokens with one API server"
        );
        assert_eq!(
            f.hint,
            "give each cluster its own mount, e.g. `vaultAuthMountPath: kubernetes-pro` on `pro`, configured with that cluster's API server (`vault auth enable -path=kubernetes-pro kubernetes`, then `vault write auth/kubernetes-pro/config kubernetes_host=https://pro.example:6443`); else External Secrets logs in on one cluster only"
        );
        // Written the same on both, it points at the second one's setting.
        let same = base_with("kubernetes-pro", "kubernetes-studio");
        let found = crate::fixtures::findings(&same);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].location.map(|l| (l.line, l.column)), Some((29, 27)));
        // A fleet-wide mount with one cluster naming its own is fine.
        let fleet_wide = base_with("      vaultAuthMountPath: kubernetes-pro\n", "").replace(
            "      path: linkerd\n",
            "      path: linkerd\n      auth: {kubernetes: {mountPath: kubernetes-pro}}\n",
        );
        assert_eq!(rules(&fleet_wide), Vec::<&str>::new());
    }

    #[test]
    fn sops_replaces_vault_and_its_recipients_are_checked() {
        use meshfleet_fleet::fixtures::{AGE_PRO, AGE_STUDIO, sops_base};
        assert_eq!(
            rules(&sops_base()),
            Vec::<&str>::new(),
            "no vault-missing with sops"
        );
        let both = sops_base().replace(
            "  secrets:\n",
            "  secrets:\n    vault: {server: https://vault.example:8200, mount: secret, path: linkerd}\n",
        );
        assert_eq!(rules(&both), ["secrets-backend"]);
        assert_eq!(
            rules(&sops_base().replace("engine: flux", "engine: argocd")),
            ["sops-engine"]
        );
        assert_eq!(
            rules(&sops_base().replace(AGE_PRO, "ssh-ed25519 AAAAC3Nza")),
            ["sops-recipient"]
        );
        let private = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let found = findings(&sops_base().replace(AGE_PRO, private));
        assert_eq!(
            found.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
            ["sops-recipient"]
        );
        assert!(
            !format!("{found:?}").contains("QQQQ"),
            "a private key is never repeated"
        );
        assert_eq!(
            rules(&sops_base().replace(AGE_PRO, AGE_STUDIO)),
            ["sops-recipient-shared"]
        );
        let unknown = sops_base().replace("          pro:", "          dev:");
        assert_eq!(
            rules(&unknown),
            ["sops-recipients-missing", "sops-recipients-missing"]
        );
        let no_operator = sops_base().replace(
            &format!("operators: [{}]", meshfleet_fleet::fixtures::AGE_OPERATOR),
            "operators: []",
        );
        assert_eq!(rules(&no_operator), ["sops-recipients-missing"]);
    }

    #[test]
    fn repository_urls_and_paths_are_checked() {
        assert_eq!(
            rules(&base_with(
                "url: https://github.com/example/fleet.git",
                "url: github.com/example/fleet"
            )),
            ["repository-url"]
        );
        assert_eq!(
            rules(&base_with(
                "      url: https://github.com/example/fleet.git\n",
                "      url: https://github.com/example/fleet.git\n      path: ../elsewhere\n"
            )),
            ["repository-url"]
        );
    }
}

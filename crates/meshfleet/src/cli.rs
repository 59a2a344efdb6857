//! Every flag and subcommand of `meshfleet`, and nothing else: the clap types. What the
//! man pages add to them (exit status, examples) is beside them, in [`manual`].

pub mod manual;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Turn one fleet.yaml into a GitOps-managed Linkerd multicluster mesh, and check that
/// the live clusters match it.
#[derive(Debug, Parser)]
#[command(name = "meshfleet", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts (and `--kubeconfig` before the command, which only
/// the commands that read clusters use; they also take it after their name).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// kubeconfig for the commands that read clusters [env: KUBECONFIG; default: ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Output format of commands that report
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// When to colour the output (`auto` honours NO_COLOR and CLICOLOR_FORCE)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Log what meshfleet does on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `--kubeconfig` after the name of a command that reads clusters.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeconfigArg {
    /// kubeconfig [env: KUBECONFIG; default: ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `--kubeconfig` after the name of a command that reads no cluster, where it was
/// accepted (and meant nothing) before it moved to the commands that read clusters: still
/// accepted so that scripts keep working, and no longer offered (help, man, completions).
#[derive(Debug, Clone, Default, Args)]
pub struct IgnoredKubeconfigArg {
    /// Accepted for scripts written before; this command reads no cluster
    #[arg(long, value_name = "FILE", hide = true)]
    pub kubeconfig: Option<PathBuf>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour a terminal, unless `NO_COLOR` is set; `CLICOLOR_FORCE` colours pipes too
    Auto,
    /// Always colour, whatever the environment says
    Always,
    /// Never colour
    Never,
}

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON with stable ids, for scripts.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter fleet for a new mesh, and its trust anchor
    ///
    /// Asks nothing: the engine, clusters and topology come from flags. Values to replace
    /// (addresses, the repository, Vault) are working examples marked `change:`, so the
    /// file validates as written. Never overwrites a file; the trust anchor is created as
    /// `certs init` creates it (key 0600 in the git-ignored key folder) unless it exists.
    Init(InitArgs),
    /// Write a fleet file that describes the Linkerd mesh running on the named contexts
    ///
    /// Reads every context at once, read-only: the Linkerd version, namespace and
    /// domains, the trust anchors in use (written to the anchor file), the issuer, the
    /// gateways, every Link (declarative or made by `linkerd multicluster link`), the pod
    /// and service networks the clusters tell (ServiceCIDRs, kubeadm's configuration, the
    /// nodes' podCIDRs) and the GitOps engine that runs (Flux's or Argo CD's controllers or
    /// objects). Every value it guessed or could not read is a comment in the file and a
    /// line of the report; clusters that disagree (anchors, domains, overlapping networks
    /// of linked clusters, different engines, ...) are reported with the cluster and
    /// object, and the file is still written, marked. Nothing secret is written or printed.
    Import(ImportArgs),
    /// Check the fleet file against every static rule and report all findings
    ///
    /// Every finding at once, each with `fleet.yaml:LINE:COLUMN`, a message, a `hint:` and a
    /// stable rule id (`-o json`). Warnings do not fail the run.
    Validate(ValidateArgs),
    /// Write the GitOps tree (one folder per cluster) for Flux or Argo CD
    ///
    /// Needs only the fleet file and public certificates: every Link field is computed
    /// offline. The tree is swapped in atomically, and rendering is deterministic: the same
    /// inputs give the same bytes. A private key or token is never written.
    Render(RenderArgs),
    /// Create or inspect the trust anchor and issuer certificates
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Draw the fleet: clusters, links and their modes, the hub
    ///
    /// An arrow is a link `source -> target`, as Linkerd names it: from the cluster that
    /// holds the Link and mirrors services to the cluster whose gateway it dials. Gateway
    /// links are solid, remote-discovery links dashed, and nothing is told by colour
    /// alone. `-o json` prints the same as data.
    Graph(GraphArgs),
    /// Write link credentials and identity keys to Vault (KV v2)
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Check that the live clusters match the fleet (all clusters in parallel)
    ///
    /// Per cluster: the API server, Linkerd, the trust anchors and issuer, every expected
    /// Link field by field, its credentials, controller, gateway, probe and mirrors, and
    /// what the fleet does not know (drift). Grouped with ✓/‼/×, a hint and the rendered
    /// file to change; `-o json` with stable check ids.
    Check(CheckArgs),
    /// Send one request across each link through the clusters' data plane
    ///
    /// Per link, a meshed test server on the target (exported by the Link's selector) and
    /// a meshed client Job on the source, in a labelled namespace of their own, removed
    /// afterwards (also on Ctrl-C; a rerun removes leftovers first). Reports reached or
    /// not, latency, the identity the server's proxy saw, the path (gateway or remote
    /// discovery) and, on failure, the likely cause with a hint. Exit codes as `check`.
    Verify(VerifyArgs),
    /// Read and compare the trust anchors the clusters really use
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Move links made by the deprecated `linkerd multicluster link` to declarative ones
    ///
    /// Without `--apply` it only reads and prints the ordered move per cluster and link.
    /// `--apply` removes a legacy controller only once `controller-<link>` of the same link
    /// is available; it never deletes a Link.
    Migrate(MigrateArgs),
    /// Print the JSON Schema of the fleet file
    Schema,
    /// Print shell completions
    #[command(visible_alias = "completion")]
    Completions(CompletionsArgs),
    /// Print the man page of meshfleet or of one command (roff), or write them all
    Man(ManArgs),
    /// Print meshfleet's version and the Linkerd releases it supports
    ///
    /// `-o json` for scripts. `meshfleet --version` prints the first line only.
    Version,
}

impl Command {
    /// `--kubeconfig` given after the command's name, for the commands that read clusters.
    pub fn kubeconfig(&self) -> Option<&std::path::Path> {
        let arg = match self {
            Self::Graph(a) => &a.kube.kubeconfig,
            Self::Check(a) => &a.kube.kubeconfig,
            Self::Verify(a) => &a.kube.kubeconfig,
            Self::Migrate(a) => &a.kube.kubeconfig,
            Self::Secrets(SecretsCommand::Sync(a)) => &a.kube.kubeconfig,
            Self::Secrets(SecretsCommand::Status(a)) => &a.kube.kubeconfig,
            Self::Trust(TrustCommand::Extract(a)) => &a.kube.kubeconfig,
            Self::Trust(TrustCommand::Verify(a)) => &a.kube.kubeconfig,
            Self::Trust(TrustCommand::Rotate(RotateCommand::Status(a))) => &a.kube.kubeconfig,
            Self::Trust(TrustCommand::Rotate(
                RotateCommand::Start(a) | RotateCommand::Next(a) | RotateCommand::Abort(a),
            )) => &a.kube.kubeconfig,
            // Accepted there before, and harmless: passed on like the others.
            Self::Validate(a) => &a.kube.kubeconfig,
            Self::Render(a) => &a.kube.kubeconfig,
            Self::Certs(CertsCommand::Init(a)) => &a.kube.kubeconfig,
            Self::Certs(CertsCommand::Inspect(a)) => &a.kube.kubeconfig,
            Self::Import(a) => &a.kube.kubeconfig,
            // `init` writes a new fleet and reads no cluster.
            Self::Secrets(SecretsCommand::AgeKey(_))
            | Self::Init(_)
            | Self::Schema
            | Self::Completions(_)
            | Self::Man(_)
            | Self::Version => return None,
        };
        arg.as_deref()
    }
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub kube: IgnoredKubeconfigArg,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Fleet file to write, or a folder to write `fleet.yaml` into
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// `metadata.name` [default: the folder's name when it is a DNS-1123 label, else `mesh`]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// GitOps engine
    #[arg(long, value_enum, default_value_t = EngineArg::Flux)]
    pub engine: EngineArg,
    /// A cluster, with its kubeconfig context when that is not its name (repeatable)
    /// [default: `east` and `west`]
    #[arg(long = "cluster", value_name = "NAME[=CONTEXT]")]
    pub clusters: Vec<String>,
    /// `pair` (two clusters, both ways), `hub:NAME` (hub and spoke) or `mesh` (every
    /// pair) [default: `pair` for two clusters, else `mesh`]
    #[arg(long, value_name = "pair|hub:NAME|mesh")]
    pub topology: Option<String>,
    /// Do not create the trust anchor (`validate` reports it missing until `certs init`)
    #[arg(long)]
    pub no_anchor: bool,
    /// Key folder for the anchor's private key [default: <fleet folder>/.meshfleet/keys]
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
}

/// `init --engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// Flux
    Flux,
    /// Argo CD
    Argocd,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// kubeconfig context of a cluster to import (repeatable, at least one)
    #[arg(long = "context", required = true, value_name = "CTX")]
    pub contexts: Vec<String>,
    /// Fleet file to write, or a folder to write `fleet.yaml` into (never overwritten);
    /// the anchor bundle goes to `certs/trust-anchor.crt` beside it
    #[arg(long, default_value = "fleet.yaml", value_name = "PATH")]
    pub out: PathBuf,
    /// `metadata.name` [default: the `meshfleet.io/fleet` label of a Link, else the
    /// folder's name when it is a DNS-1123 label, else `mesh`]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Seconds to wait for each cluster
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin with `--check`
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Folder of the rendered tree; replaced as a whole, atomically
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing; exit 1 with a summary of what differs from DIR (for CI)
    #[arg(long)]
    pub check: bool,
    /// Accept a DIR that is not `spec.gitops.repository.path` (inside DIR's Git
    /// repository, else beside the fleet file), e.g. a copy to look at
    #[arg(long)]
    pub any_dir: bool,
    #[command(flatten)]
    pub kube: IgnoredKubeconfigArg,
}

/// `certs ...`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the trust anchor (and per-cluster issuers with `identity.issuer: vault`)
    ///
    /// The public anchor goes to `identity.trustAnchor` (commit it); private keys, mode
    /// 0600, to the key folder, which is git-ignored. Never overwrites: with an anchor and
    /// its key present, it only adds missing issuers.
    Init(CertsInitArgs),
    /// Show subject, key, validity, CA constraints, fingerprint and chain of certificates
    Inspect(CertsInspectArgs),
}

/// `certs init`.
#[derive(Debug, Args)]
pub struct CertsInitArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them)
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Key folder for private keys [default: <fleet folder>/.meshfleet/keys]
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    #[command(flatten)]
    pub kube: IgnoredKubeconfigArg,
}

/// `certs inspect`.
#[derive(Debug, Args)]
pub struct CertsInspectArgs {
    /// PEM files (certificates or bundles)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Fleet whose trust anchor the certificates should chain to [default: ./fleet.yaml or ./meshfleet.yaml if present]
    #[arg(long, value_name = "PATH")]
    pub fleet: Option<PathBuf>,
    #[command(flatten)]
    pub kube: IgnoredKubeconfigArg,
}

/// `graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Picture format
    #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
    pub format: GraphFormat,
    /// Run the live checks first and colour every cluster and link by what they found
    /// (failing check ids in the tooltips); exit 1 when a check failed, as `check` does
    #[arg(long)]
    pub live: bool,
    /// With `--live`: seconds to wait for each cluster
    #[arg(long, default_value_t = 10, value_name = "SECONDS", requires = "live")]
    pub timeout: u64,
    /// With `--live`: the kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `graph --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A standalone SVG picture
    Svg,
    /// Graphviz DOT
    Dot,
    /// A Mermaid flowchart (renders in GitHub and GitLab Markdown)
    Mermaid,
}

/// `secrets ...`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Write each link's kubeconfig and the identity material to Vault; unchanged values are not rewritten
    ///
    /// Per link, the target's remote-access token becomes a one-cluster kubeconfig (the
    /// target's `apiServer`, CA inline) at `<mount>/<path>/credentials/<source>-to-<target>`;
    /// the anchor key or the static issuers come from the key folder. Vault access follows
    /// Vault's conventions: `VAULT_ADDR`, `VAULT_TOKEN` or `~/.vault-token`,
    /// `VAULT_NAMESPACE`, `VAULT_CACERT`. With `--rotate`, starts or continues a link
    /// credential rotation.
    Sync(SecretsSyncArgs),
    /// Where a link credential rotation stands and what blocks it (changes nothing)
    Status(SecretsStatusArgs),
    /// Make an age key for SOPS (an operator's or a cluster's); prints only its recipient
    ///
    /// The private key goes to `--out` with mode 0600 and is never printed. Put the
    /// recipient under `spec.secrets.sops.age`; give a cluster its key as the Secret
    /// Flux reads: `kubectl -n flux-system create secret generic sops-age
    /// --from-file=age.agekey=FILE` (see docs/secrets-sops.md).
    AgeKey(SecretsAgeKeyArgs),
}

/// `secrets status`.
#[derive(Debug, Args)]
pub struct SecretsStatusArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `secrets sync`.
#[derive(Debug, Args)]
pub struct SecretsSyncArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin (not with `--rotate`)
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Print what would change (values redacted) and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start or continue a link credential rotation: a new remote-access account per
    /// link, used by restarted controllers before the old one goes (see docs/rotating-link-credentials.md)
    #[arg(long)]
    pub rotate: bool,
    /// With `--rotate`, when starting: rotate only this link, `<source>-to-<target>` (repeatable)
    #[arg(long = "link", value_name = "SOURCE-to-TARGET", requires = "rotate")]
    pub links: Vec<String>,
    /// With `--rotate`: seconds to wait for External Secrets (with SOPS: Flux) to deliver the Secrets and for a restart to finish
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub wait: u64,
    /// Key folder made by `certs init` [default: <fleet folder>/.meshfleet/keys]
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
    /// With `spec.secrets.sops`: the rendered tree to write the encrypted Secrets into
    /// (rendered again with them, atomically, as `render --out` does); with `--rotate`,
    /// where the next link credentials are sealed [default: `spec.gitops.repository.path`
    /// beside the fleet file]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With `spec.secrets.sops`: an operator's age key file [default: `SOPS_AGE_KEY_FILE`,
    /// else `$XDG_CONFIG_HOME/sops/age/keys.txt` or `~/.config/sops/age/keys.txt`, as sops]
    #[arg(long, value_name = "FILE")]
    pub age_key: Option<PathBuf>,
}

/// `secrets age-key`.
#[derive(Debug, Args)]
pub struct SecretsAgeKeyArgs {
    /// Where to write the new key (mode 0600; an existing file is never overwritten)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Check only this cluster (repeatable)
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
    /// Seconds to wait for each cluster
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Verify only this link, `<source>-to-<target>` (repeatable)
    #[arg(long = "link", value_name = "ID")]
    pub links: Vec<String>,
    /// Image of the test server and client (it must have python3)
    #[arg(long, default_value = meshfleet_core::plan::verify::DEFAULT_IMAGE, value_name = "IMAGE")]
    pub image: String,
    /// Seconds the client keeps calling before the link counts as unreachable
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `trust ...`.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Print the anchor bundle a cluster really uses (PEM and fingerprints)
    Extract(TrustExtractArgs),
    /// Compare every cluster's anchor bundle with the fleet's
    ///
    /// A table of the fingerprints in `linkerd-config` and `linkerd-identity-trust-roots`
    /// (the bundle proxies use) per cluster; during a trust anchor rotation the previous
    /// step's bundle is `rotation-pending`, a warning.
    Verify(TrustVerifyArgs),
    /// Rotate the fleet's trust anchor, step by step, with no moment where mTLS fails
    #[command(subcommand)]
    Rotate(RotateCommand),
}

/// `trust rotate ...`.
#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Create the next anchor and put both in the bundle (phase `distribute`)
    Start(RotateArgs),
    /// Show, per cluster, what is done and what blocks the next step
    Status(RotateStatusArgs),
    /// Move to the next phase once every cluster is ready; print what to do then
    Next(RotateArgs),
    /// Return to the old anchor (possible until the old anchor leaves the bundle)
    Abort(RotateArgs),
}

/// `trust rotate start|next|abort`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them)
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Key folder made by `certs init` [default: <fleet folder>/.meshfleet/keys]
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Print what would be written, and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// `next`: seconds to wait for each cluster
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// `next` at the end of `retire`: keep the Vault (KV v2) versions that hold the
    /// retired anchor's private key (and its issuers') instead of destroying them
    #[arg(long)]
    pub keep_retired_key: bool,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `trust rotate status`.
#[derive(Debug, Args)]
pub struct RotateStatusArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Seconds to wait for each cluster
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `trust verify`.
#[derive(Debug, Args)]
pub struct TrustVerifyArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `trust extract`.
#[derive(Debug, Args)]
pub struct TrustExtractArgs {
    /// kubeconfig context of the cluster
    #[arg(long, value_name = "CTX")]
    pub context: String,
    /// Control-plane namespace
    #[arg(long, default_value = "linkerd", value_name = "NS")]
    pub linkerd_namespace: String,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Fleet file, a folder holding `fleet.yaml` or `meshfleet.yaml` (`.yml` too; one of them), or `-` for stdin
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Remove legacy controllers whose declarative replacement is available
    #[arg(long)]
    pub apply: bool,
    /// The kubeconfig
    #[command(flatten)]
    pub kube: KubeconfigArg,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `validate` or `trust rotate next` [default: meshfleet(1)]
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Write every page (`meshfleet.1`, `meshfleet-validate.1`, ...) into DIR instead of printing one
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub out: Option<PathBuf>,
}

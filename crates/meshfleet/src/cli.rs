//! Every flag and subcommand of `meshfleet`, and nothing else: the clap types.

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

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// kubeconfig for live commands [env: KUBECONFIG; default: ~/.kube/config]
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Output format of commands that report
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Log what meshfleet does on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
    /// Check the fleet file against every static rule and report all findings
    Validate(PathArg),
    /// Write the GitOps tree (one folder per cluster) for Flux or Argo CD
    Render(RenderArgs),
    /// Create or inspect the trust anchor and issuer certificates
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Draw the fleet: clusters, links and their modes, the hub
    Graph(GraphArgs),
    /// Print the JSON Schema of the fleet file
    Schema,
    /// Print shell completions
    Completions(CompletionsArgs),
    /// Print the man page (roff)
    Man,
}

/// A fleet file, or a folder holding `fleet.yaml`.
#[derive(Debug, Args)]
pub struct PathArg {
    /// Fleet file, or a folder holding `fleet.yaml`
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
}

/// `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Fleet file, or a folder holding `fleet.yaml`
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Folder of the rendered tree; replaced as a whole, atomically
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing; exit 1 with a summary of what differs from DIR (for CI)
    #[arg(long)]
    pub check: bool,
}

/// `certs ...`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the trust anchor (and per-cluster issuers with `identity.issuer: vault`)
    Init(CertsInitArgs),
    /// Show subject, key, validity, CA constraints, fingerprint and chain of certificates
    Inspect(CertsInspectArgs),
}

/// `certs init`.
#[derive(Debug, Args)]
pub struct CertsInitArgs {
    /// Fleet file, or a folder holding `fleet.yaml`
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Key folder for private keys [default: <fleet folder>/.meshfleet/keys]
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
}

/// `certs inspect`.
#[derive(Debug, Args)]
pub struct CertsInspectArgs {
    /// PEM files (certificates or bundles)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Fleet whose trust anchor the certificates should chain to [default: ./fleet.yaml if present]
    #[arg(long, value_name = "PATH")]
    pub fleet: Option<PathBuf>,
}

/// `graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Fleet file, or a folder holding `fleet.yaml`
    #[arg(default_value = ".", value_name = "PATH")]
    pub path: PathBuf,
    /// Picture format
    #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
    pub format: GraphFormat,
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

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

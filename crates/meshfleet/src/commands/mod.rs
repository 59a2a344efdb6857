//! One file per command; each returns an [`ExitStatus`]. Shared here: loading and
//! validating the fleet with findings printed the same way everywhere.

mod certs;
mod check;
mod credentials_rotation;
mod error;
mod graph;
mod import;
mod init;
mod migrate;
mod render;
mod rotate;
mod schema;
mod secrets;
mod secrets_sops;
mod trust;
mod validate;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use meshfleet_core::fleet::LoadError;
use meshfleet_core::plan::FleetPlan;
use meshfleet_core::validate::{CheckedFleet, check_file};

use crate::cli::{CertsCommand, Cli, Command, GlobalArgs, RotateCommand, SecretsCommand, TrustCommand};
use crate::printer::Printer;

pub use error::{CommandError, Context, hinted};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Success.
    Success,
    /// The fleet or the clusters have problems (invalid fleet, failed check, drift).
    Failure,
    /// The command could not do its job.
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
        }
    }
}

/// Commands that write beside the fleet file or edit it cannot take it from stdin
/// (`-`): what they write would have nowhere to go. The error says why.
fn writes_beside_the_fleet(command: &Command) -> Option<(&Path, &'static str)> {
    match command {
        Command::Render(args) if !args.check => Some((
            &args.path,
            "`render` writes a tree whose files name the fleet file they come from; save the fleet as a file and render that, or compare with `render - --out DIR --check`",
        )),
        Command::Certs(CertsCommand::Init(args)) => Some((
            &args.path,
            "`certs init` writes the trust anchor beside the fleet file (`identity.trustAnchor`); save the fleet as a file and pass its folder",
        )),
        Command::Secrets(SecretsCommand::Sync(args)) if args.rotate => Some((
            &args.path,
            "`secrets sync --rotate` records each phase in the fleet file; pass the file itself",
        )),
        Command::Trust(TrustCommand::Rotate(
            RotateCommand::Start(args) | RotateCommand::Next(args) | RotateCommand::Abort(args),
        )) => Some((
            &args.path,
            "`trust rotate` records each phase in the fleet file and writes the anchor bundle beside it; pass the file itself",
        )),
        _ => None,
    }
}

/// Run the chosen command.
pub fn run(cli: &Cli, printer: Printer) -> Result<ExitStatus, CommandError> {
    if let Some((path, why)) = writes_beside_the_fleet(&cli.command)
        && path == Path::new(meshfleet_core::fleet::STDIN_PATH)
    {
        return Err(hinted("the fleet cannot come from stdin (`-`) here", why));
    }
    // `--kubeconfig` after the command's name wins over the one before it.
    let global = &GlobalArgs {
        kubeconfig: cli
            .command
            .kubeconfig()
            .map(Path::to_path_buf)
            .or_else(|| cli.global.kubeconfig.clone()),
        ..cli.global.clone()
    };
    let output = global.output;
    match &cli.command {
        Command::Init(args) => init::run(args, printer),
        Command::Import(args) => import::run(args, global, printer),
        Command::Validate(args) => validate::run(&args.path, output, printer),
        Command::Render(args) => render::run(args, output, printer),
        Command::Certs(CertsCommand::Init(args)) => certs::init(args, printer),
        Command::Certs(CertsCommand::Inspect(args)) => certs::inspect(args, output, printer),
        Command::Graph(args) => graph::run(args, global, printer),
        Command::Secrets(SecretsCommand::Sync(args)) if args.rotate => {
            credentials_rotation::rotate(args, global, printer)
        }
        Command::Secrets(SecretsCommand::Sync(args)) if args.out.is_some() => {
            secrets_sops::sync(args, global, printer)
        }
        Command::Secrets(SecretsCommand::Sync(args)) => secrets::sync(args, global, printer),
        Command::Secrets(SecretsCommand::AgeKey(args)) => secrets_sops::age_key(args, printer),
        Command::Secrets(SecretsCommand::Status(args)) => {
            credentials_rotation::status(&args.path, global, printer)
        }
        Command::Check(args) => check::run(args, global, printer),
        Command::Verify(args) => verify::run(args, global, printer),
        Command::Trust(TrustCommand::Extract(args)) => trust::extract(args, global, printer),
        Command::Trust(TrustCommand::Verify(args)) => trust::verify(&args.path, global, printer),
        Command::Trust(TrustCommand::Rotate(RotateCommand::Status(args))) => {
            rotate::status(args, global, printer)
        }
        Command::Trust(TrustCommand::Rotate(command)) => rotate::step(command, global, printer),
        Command::Migrate(args) => migrate::run(args, global, printer),
        Command::Schema => schema::run(printer),
        Command::Completions(args) => schema::completions(args.shell, printer),
        Command::Man(args) => schema::man(args, printer),
        Command::Version => schema::version(output, printer),
    }
}

/// A tokio runtime for the live commands.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CommandError::unhinted)
}

/// The user's kubeconfig (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`).
pub fn kubeconfigs(
    global: &crate::cli::GlobalArgs,
) -> Result<meshfleet_core::live::cluster::Kubeconfigs, meshfleet_core::live::cluster::ClusterError> {
    meshfleet_core::live::cluster::Kubeconfigs::load(global.kubeconfig.as_deref())
}

/// Now, for certificate validity.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The outcome of loading a fleet for a command that needs a valid one.
pub enum Loaded {
    /// Valid (warnings were printed to stderr).
    Valid(Box<CheckedFleet>),
    /// Invalid: findings were printed; the command should exit with this status.
    Invalid(ExitStatus),
}

/// Load and validate a fleet; print findings (errors and warnings) to stderr.
pub fn load_checked(path: &Path, printer: Printer) -> Result<Loaded, CommandError> {
    match check_file(path, now()) {
        Err(e @ (LoadError::Unreadable { .. } | LoadError::Ambiguous { .. })) => Err(e.into()),
        Err(LoadError::Invalid { file, findings }) => {
            printer.status(
                printer
                    .findings(&file.path.display().to_string(), &file.text, &findings, false)
                    .trim_end(),
            );
            Ok(Loaded::Invalid(ExitStatus::Failure))
        }
        Ok(checked) => {
            if !checked.findings.is_empty() {
                let text = printer.findings(
                    &checked.source.path.display().to_string(),
                    &checked.source.text,
                    &checked.findings,
                    false,
                );
                printer.status(text.trim_end());
            }
            if checked.is_valid() {
                Ok(Loaded::Valid(Box::new(checked)))
            } else {
                let errors = checked.findings.iter().filter(|f| f.is_error()).count();
                printer.error(
                    &format!("the fleet has {errors} error(s); nothing was written"),
                    Some(&format!(
                        "fix them, then check with `meshfleet validate {}`",
                        path.display()
                    )),
                );
                Ok(Loaded::Invalid(ExitStatus::Failure))
            }
        }
    }
}

/// Load, validate and plan a fleet.
pub fn load_plan(
    path: &Path,
    printer: Printer,
) -> Result<Result<(Box<CheckedFleet>, FleetPlan), ExitStatus>, CommandError> {
    match load_checked(path, printer)? {
        Loaded::Invalid(status) => Ok(Err(status)),
        Loaded::Valid(checked) => {
            let plan = meshfleet_core::plan::from_checked(&checked).context("cannot plan the fleet")?;
            Ok(Ok((checked, plan)))
        }
    }
}

//! `meshfleet init [PATH]`: a commented starter fleet for a new mesh, and its trust
//! anchor. Asks nothing (the choices are flags), so it behaves the same on a terminal,
//! in a script and in CI; never overwrites a file.

use std::path::{Path, PathBuf};

use meshfleet_core::diagnostic::Hint as _;
use meshfleet_core::fleet::draft::DraftError;
use meshfleet_core::fleet::model::Engine;
use meshfleet_core::fleet::starter::{self, StarterChoices, StarterCluster, StarterTopology};
use meshfleet_core::fleet::{FLEET_FILE_NAME, MESHFLEET_FILE_NAME};
use meshfleet_core::keys::{self, KeyFolder, KeysError};

use super::{CommandError, ExitStatus, hinted, now};
use crate::cli::{EngineArg, InitArgs};
use crate::printer::Printer;

pub fn run(args: &InitArgs, printer: Printer) -> Result<ExitStatus, CommandError> {
    let path = fleet_file_target(&args.path);
    let clusters = clusters(&args.clusters);
    let choices = StarterChoices {
        name: args.name.clone().unwrap_or_else(|| default_name(&path)),
        engine: match args.engine {
            EngineArg::Flux => Engine::Flux,
            EngineArg::Argocd => Engine::Argocd,
        },
        topology: topology(args.topology.as_deref(), clusters.len())?,
        clusters,
    };
    if meshfleet_core::fleet::names::dns1123_label(&choices.name).is_err() {
        return Err(hinted(
            format!(
                "`{}` is not a DNS-1123 label, so it cannot name the fleet",
                choices.name
            ),
            "pass `--name` with lowercase letters, digits and `-`, e.g. `--name homelab`",
        ));
    }
    let draft = starter::starter(&choices)?;
    if let Some(refusal) = sibling_fleet(&path) {
        printer.error(
            &refusal,
            Some("pass another folder, or check the existing fleet with `meshfleet validate`"),
        );
        return Ok(ExitStatus::Failure);
    }
    match draft.write_new(&path) {
        Ok(()) => {}
        Err(e @ DraftError::Exists(_)) => {
            printer.error(&e.to_string(), e.hint().as_deref());
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    }
    printer.status(&format!(
        "wrote `{}`: {} cluster(s), engine `{}`",
        path.display(),
        choices.clusters.len(),
        args.engine.name()
    ));
    let status = if args.no_anchor {
        printer
            .status("no trust anchor created (`--no-anchor`): run `meshfleet certs init` before `validate`");
        ExitStatus::Success
    } else {
        create_anchor(&path, args.keys.as_deref(), printer)?
    };
    printer.status(&format!(
        "next: replace the values marked `change:`, then `meshfleet validate {}`",
        path.display()
    ));
    Ok(status)
}

/// The trust anchor the starter names, made as `certs init` makes it; an anchor that
/// exists already is kept.
fn create_anchor(path: &Path, keys_dir: Option<&Path>, printer: Printer) -> Result<ExitStatus, CommandError> {
    let (source, fleet) = meshfleet_core::fleet::load(path)?;
    let dir = source.dir();
    let anchor = meshfleet_core::fleet::anchor_path(&dir, &fleet);
    if anchor.exists() {
        printer.status(&format!("kept the existing trust anchor `{}`", anchor.display()));
        return Ok(ExitStatus::Success);
    }
    let folder = keys_dir.map_or_else(
        || KeyFolder::default_for(&dir),
        |k| KeyFolder::new(k.to_path_buf()),
    );
    match keys::init(&fleet, &dir, &folder, now()) {
        Ok(report) => {
            for file in &report.public {
                printer.status(&format!("created trust anchor `{}` (commit it)", file.display()));
            }
            for file in &report.private {
                printer.status(&format!(
                    "created private key `{}` (mode 0600, keep it out of git)",
                    file.display()
                ));
            }
            Ok(ExitStatus::Success)
        }
        Err(e @ KeysError::Exists(_)) => {
            printer.error(&format!("{e}: no trust anchor was created"), e.hint().as_deref());
            Ok(ExitStatus::Failure)
        }
        Err(e) => Err(e.into()),
    }
}

/// PATH as the file to write: an existing folder, or a path that does not end in
/// `.yaml`/`.yml`, is a folder to write `fleet.yaml` into.
pub fn fleet_file_target(path: &Path) -> PathBuf {
    let is_file_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if path.is_dir() || !is_file_name {
        path.join(FLEET_FILE_NAME)
    } else {
        path.to_path_buf()
    }
}

/// A refusal when the folder already holds the other fleet file name, which would make
/// the folder ambiguous to every other command.
pub fn sibling_fleet(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let other = match name {
        FLEET_FILE_NAME => MESHFLEET_FILE_NAME,
        MESHFLEET_FILE_NAME => FLEET_FILE_NAME,
        _ => return None,
    };
    let sibling = path.with_file_name(other);
    sibling.exists().then(|| {
        format!(
            "`{}` exists already, and a folder with both `{FLEET_FILE_NAME}` and `{MESHFLEET_FILE_NAME}` is ambiguous; nothing was written",
            sibling.display()
        )
    })
}

/// The fleet's name from the folder it is written into, when that is a DNS-1123 label.
pub fn default_name(file: &Path) -> String {
    let dir = meshfleet_core::fleet::atomic::parent_dir(file);
    std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| meshfleet_core::fleet::names::dns1123_label(n).is_ok())
        .unwrap_or_else(|| "mesh".into())
}

fn clusters(flags: &[String]) -> Vec<StarterCluster> {
    if flags.is_empty() {
        return StarterChoices::default_clusters();
    }
    flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((name, context)) => StarterCluster {
                name: name.into(),
                context: Some(context.into()).filter(|c: &String| !c.is_empty() && c != name),
            },
            None => StarterCluster {
                name: flag.clone(),
                context: None,
            },
        })
        .collect()
}

fn topology(flag: Option<&str>, clusters: usize) -> Result<StarterTopology, CommandError> {
    Ok(match flag {
        None if clusters == 2 => StarterTopology::Pair,
        None | Some("mesh") => StarterTopology::Mesh,
        Some("pair") => StarterTopology::Pair,
        Some(other) => match other.strip_prefix("hub:") {
            Some(hub) if !hub.is_empty() => StarterTopology::Hub(hub.into()),
            _ => {
                return Err(hinted(
                    format!("`--topology {other}` is not a topology"),
                    "pass `pair`, `mesh` or `hub:NAME` (NAME one of the `--cluster` names)",
                ));
            }
        },
    })
}

impl EngineArg {
    fn name(self) -> &'static str {
        match self {
            Self::Flux => "flux",
            Self::Argocd => "argocd",
        }
    }
}

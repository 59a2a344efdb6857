//! A rendered tree in memory, and the two things done with it: swap it into the output
//! folder atomically, or compare it with what the folder holds (`render --check`).
//!
//! The swap writes the whole tree into a fresh sibling folder first, then exchanges the
//! two folders with one `renameat2(RENAME_EXCHANGE)` (or a plain rename when DIR does not
//! exist yet), so a reader or a killed process sees the old tree or the new one, never a
//! mix. A folder that is not empty and was not rendered by meshfleet is never replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshfleet_fleet::atomic;

use super::{MARKER_FILE, RenderError};

/// Files of a rendered tree, by path relative to the output folder (`/` separated).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderedTree {
    /// Path → content.
    pub files: BTreeMap<String, String>,
}

/// Errors of writing or reading a rendered tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The output folder holds something meshfleet did not render.
    #[error("`{0}` is not empty and was not rendered by meshfleet (no `{MARKER_FILE}`)")]
    ForeignDirectory(PathBuf),
    /// The output path exists and is not a folder.
    #[error("`{0}` exists and is not a folder")]
    NotADirectory(PathBuf),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl meshfleet_fleet::diagnostic::Hint for TreeError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::ForeignDirectory(_) => {
                Some("render into a new or empty folder (it is replaced as a whole on every render)".into())
            }
            Self::NotADirectory(_) => Some("choose another `--out`".into()),
            Self::Io(_) => None,
        }
    }
}

/// One difference between the rendered tree and the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The file would be created.
    Added(String),
    /// The file would be removed.
    Removed(String),
    /// The file would change; the unified diff.
    Changed(String, String),
}

/// Substrings that mean secret material: PEM private keys, JWTs (service-account tokens),
/// Vault tokens, age private keys. Checked on every rendered file (SOPS files hold
/// only `ENC[…]` values and armored age files, none of these).
const SECRET_MARKERS: [(&str, &str); 6] = [
    ("PRIVATE KEY-----", "a private key"),
    ("eyJhbGciOi", "a JSON Web Token (a service-account token)"),
    ("hvs.", "a Vault token"),
    ("client-key-data", "a kubeconfig client key"),
    ("token: ey", "a bearer token"),
    ("AGE-SECRET-KEY-1", "an age private key"),
];

impl RenderedTree {
    /// Fail when any file would carry a private key or a token.
    pub fn refuse_secrets(&self) -> Result<(), RenderError> {
        for (file, text) in &self.files {
            for (marker, what) in SECRET_MARKERS {
                let hit = if marker == "hvs." {
                    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                        .any(|word| word.starts_with("hvs.") && word.len() > 20)
                } else {
                    text.contains(marker)
                };
                if hit {
                    return Err(RenderError::SecretInOutput {
                        file: file.clone(),
                        what: what.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.files.values().map(String::len).sum()
    }

    /// Replace `out` with this tree atomically.
    pub fn write_atomically(&self, out: &Path) -> Result<(), TreeError> {
        let existing = check_replaceable(out)?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs_err::create_dir_all(&parent)?;
        let base = out
            .file_name()
            .map_or_else(|| "tree".into(), |n| n.to_string_lossy().into_owned());
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{base}.meshfleet-"))
            .tempdir_in(&parent)?;
        for (path, text) in &self.files {
            let target = staging.path().join(path);
            if let Some(dir) = target.parent() {
                fs_err::create_dir_all(dir)?;
            }
            atomic::create_new(&target, text.as_bytes(), atomic::PUBLIC_MODE)?;
        }
        fs_err::File::open(staging.path())?.sync_all()?;
        if existing {
            atomic::exchange(staging.path(), out)?;
            // `staging` now holds the old tree and is removed when dropped.
        } else {
            let kept = staging.keep();
            fs_err::rename(&kept, out)?;
        }
        Ok(())
    }

    /// Compare with the files under `out`. Missing `out` means every file is added.
    pub fn differences(&self, out: &Path) -> Result<Vec<Difference>, TreeError> {
        let on_disk = read_tree(out)?;
        let mut diffs = Vec::new();
        let paths: BTreeSet<&String> = self.files.keys().chain(on_disk.keys()).collect();
        for path in paths {
            match (self.files.get(path), on_disk.get(path)) {
                (Some(_), None) => diffs.push(Difference::Added(path.clone())),
                (None, Some(_)) => diffs.push(Difference::Removed(path.clone())),
                (Some(new), Some(old)) if new != old => {
                    let diff = similar::TextDiff::from_lines(old.as_str(), new.as_str())
                        .unified_diff()
                        .context_radius(2)
                        .header(&format!("a/{path}"), &format!("b/{path}"))
                        .to_string();
                    diffs.push(Difference::Changed(path.clone(), diff));
                }
                _ => {}
            }
        }
        Ok(diffs)
    }
}

/// Whether `out` exists (and may be replaced).
fn check_replaceable(out: &Path) -> Result<bool, TreeError> {
    match fs_err::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
        Ok(meta) if !meta.is_dir() => Err(TreeError::NotADirectory(out.to_path_buf())),
        Ok(_) => {
            let empty = fs_err::read_dir(out)?.next().is_none();
            if empty || out.join(MARKER_FILE).is_file() {
                Ok(true)
            } else {
                Err(TreeError::ForeignDirectory(out.to_path_buf()))
            }
        }
    }
}

/// Read every file under `root` (relative `/` paths). Missing root → empty.
fn read_tree(root: &Path) -> Result<BTreeMap<String, String>, TreeError> {
    let mut files = BTreeMap::new();
    if !root.exists() {
        return Ok(files);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes = fs_err::read(&path)?;
                files.insert(rel, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> RenderedTree {
        RenderedTree {
            files: BTreeMap::from([("studio/x.yaml".to_string(), text.to_string())]),
        }
    }

    #[test]
    fn keys_and_tokens_are_refused_without_being_quoted() {
        for (text, what) in [
            ("-----BEGIN PRIVATE KEY-----\nMIGH\n", "a private key"),
            ("token: eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n", "a JSON Web Token"),
            ("t: hvs.CAESIJ0123456789abcdefghijklmnop\n", "a Vault token"),
            ("age.agekey: AGE-SECRET-KEY-1QQQQ\n", "an age private key"),
        ] {
            match tree(text).refuse_secrets() {
                Err(RenderError::SecretInOutput { file, what: found }) => {
                    assert_eq!(file, "studio/x.yaml");
                    assert!(found.starts_with(what), "{found}");
                    assert!(
                        !found.contains("MIGH") && !found.contains("eyJ") && !found.contains("QQQQ"),
                        "{found}"
                    );
                }
                other => panic!("not refused: {other:?}"),
            }
        }
        assert!(tree("kind: Link\n").refuse_secrets().is_ok());
    }
}

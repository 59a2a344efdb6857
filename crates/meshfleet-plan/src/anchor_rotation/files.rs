//! The files one rotation step writes, applied all or nothing.
//!
//! Every new content is made in memory first. Files are then written one by one, each
//! through a temporary file in the same folder and a rename, so a file is always old or
//! new, never cut short; the fleet file comes last, so the recorded phase never runs
//! ahead of the bundle and keys. When a write fails, what was already done is undone in
//! reverse order. Private keys are created 0600 and never printed: a change describes
//! itself by path and purpose only.

use std::path::PathBuf;

use secrecy::{ExposeSecret as _, SecretString};

use meshfleet_fleet::atomic;

/// One file operation.
#[derive(Debug)]
enum Op {
    /// Replace (or create) a public file.
    Write { path: PathBuf, text: String },
    /// Create a private key file, mode 0600; never overwrites.
    CreatePrivate { path: PathBuf, text: SecretString },
    /// Move a file to a path that must not exist.
    Rename { from: PathBuf, to: PathBuf },
    /// Exchange two files.
    Swap { a: PathBuf, b: PathBuf },
}

/// One file a step writes, with what it is for.
#[derive(Debug)]
pub struct FileChange {
    op: Op,
    /// What the file is, in words (no content).
    pub purpose: String,
}

impl FileChange {
    /// Replace or create a public file.
    pub fn write(path: impl Into<PathBuf>, text: String, purpose: impl Into<String>) -> Self {
        Self {
            op: Op::Write {
                path: path.into(),
                text,
            },
            purpose: purpose.into(),
        }
    }
    /// Create a private key file (0600); fails when it exists.
    pub fn create_private(path: impl Into<PathBuf>, text: SecretString, purpose: impl Into<String>) -> Self {
        Self {
            op: Op::CreatePrivate {
                path: path.into(),
                text,
            },
            purpose: purpose.into(),
        }
    }
    /// Move a file; fails when the destination exists.
    pub fn rename(from: impl Into<PathBuf>, to: impl Into<PathBuf>, purpose: impl Into<String>) -> Self {
        Self {
            op: Op::Rename {
                from: from.into(),
                to: to.into(),
            },
            purpose: purpose.into(),
        }
    }
    /// Exchange two files.
    pub fn swap(a: impl Into<PathBuf>, b: impl Into<PathBuf>, purpose: impl Into<String>) -> Self {
        Self {
            op: Op::Swap {
                a: a.into(),
                b: b.into(),
            },
            purpose: purpose.into(),
        }
    }

    /// `write path`, `create path (0600)`, `move a -> b`, `swap a <-> b`.
    pub fn action(&self) -> String {
        match &self.op {
            Op::Write { path, .. } => format!("write `{}`", path.display()),
            Op::CreatePrivate { path, .. } => format!("create `{}` (mode 0600)", path.display()),
            Op::Rename { from, to } => format!("move `{}` to `{}`", from.display(), to.display()),
            Op::Swap { a, b } => format!("swap `{}` and `{}`", a.display(), b.display()),
        }
    }

    /// The same, done: `wrote path`, `created path (0600)`, `moved a to b`, `swapped a and b`.
    pub fn done(&self) -> String {
        let action = self.action();
        for (from, to) in [
            ("write ", "wrote "),
            ("create ", "created "),
            ("move ", "moved "),
            ("swap ", "swapped "),
        ] {
            if let Some(rest) = action.strip_prefix(from) {
                return format!("{to}{rest}");
            }
        }
        action
    }

    /// Whether this change holds a private key.
    pub fn is_private(&self) -> bool {
        matches!(self.op, Op::CreatePrivate { .. })
    }
}

/// The changes of one step, in order.
#[derive(Debug, Default)]
pub struct FileChanges(pub Vec<FileChange>);

/// A write that failed; every earlier change of the step was undone.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action}: {source}; nothing was changed")]
pub struct ApplyError {
    /// What failed.
    pub action: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl meshfleet_fleet::diagnostic::Hint for ApplyError {
    fn hint(&self) -> Option<String> {
        // The message names the file and the I/O error; nothing was changed.
        None
    }
}

/// How to undo one done operation.
enum Undo {
    Restore { path: PathBuf, old: Option<Vec<u8>> },
    Remove(PathBuf),
    Rename { from: PathBuf, to: PathBuf },
    Swap { a: PathBuf, b: PathBuf },
}

impl FileChanges {
    /// Add a change.
    pub fn push(&mut self, change: FileChange) {
        self.0.push(change);
    }

    /// Apply every change, or none: on a failure the done ones are undone.
    pub fn apply(&self) -> Result<(), ApplyError> {
        let mut done: Vec<Undo> = Vec::new();
        for change in &self.0 {
            if let Err(source) = apply_one(&change.op, &mut done) {
                for undo in done.into_iter().rev() {
                    let _ = undo_one(undo);
                }
                return Err(ApplyError {
                    action: change.action(),
                    source,
                });
            }
        }
        Ok(())
    }
}

fn apply_one(op: &Op, done: &mut Vec<Undo>) -> std::io::Result<()> {
    match op {
        Op::Write { path, text } => {
            let old = match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            atomic::replace(path, text.as_bytes(), None)?;
            done.push(Undo::Restore {
                path: path.clone(),
                old,
            });
        }
        Op::CreatePrivate { path, text } => {
            atomic::create_new(path, text.expose_secret().as_bytes(), atomic::PRIVATE_MODE)?;
            done.push(Undo::Remove(path.clone()));
        }
        Op::Rename { from, to } => {
            if to.exists() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("`{}` exists", to.display()),
                ));
            }
            std::fs::rename(from, to)?;
            done.push(Undo::Rename {
                from: to.clone(),
                to: from.clone(),
            });
        }
        Op::Swap { a, b } => {
            atomic::exchange(a, b)?;
            done.push(Undo::Swap {
                a: a.clone(),
                b: b.clone(),
            });
        }
    }
    Ok(())
}

fn undo_one(undo: Undo) -> std::io::Result<()> {
    match undo {
        Undo::Restore {
            path,
            old: Some(bytes),
        } => atomic::replace(&path, &bytes, None),
        Undo::Restore { path, old: None } | Undo::Remove(path) => std::fs::remove_file(path),
        Undo::Rename { from, to } => std::fs::rename(from, to),
        Undo::Swap { a, b } => atomic::exchange(&a, &b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_undoes_every_earlier_change() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, key) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("k.key"),
        );
        std::fs::write(&a, "old a").unwrap();
        std::fs::write(&b, "old b").unwrap();
        let mut changes = FileChanges::default();
        changes.push(FileChange::create_private(
            &key,
            SecretString::from("secret"),
            "key",
        ));
        changes.push(FileChange::write(&a, "new a".into(), "a"));
        changes.push(FileChange::swap(&a, &b, "swap"));
        // Fails: the destination exists.
        changes.push(FileChange::rename(&a, &b, "clash"));
        let err = changes.apply().unwrap_err();
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old b");
        assert!(!key.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn private_keys_are_0600_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        let mut changes = FileChanges::default();
        changes.push(FileChange::create_private(
            &key,
            SecretString::from("secret"),
            "key",
        ));
        changes.apply().unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(changes.apply().is_err());
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "secret");
    }
}

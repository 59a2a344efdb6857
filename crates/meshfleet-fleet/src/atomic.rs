//! The one way meshfleet writes a user's files: trees, bundles, keys and the fleet file.
//!
//! A reader (a person, `git`, a GitOps engine polling the folder, a second meshfleet)
//! sees the old content or the new, never half of one, and a failed write leaves nothing
//! behind:
//!
//! - [`replace`]: new content through a temporary file in the same folder, `fsync`ed,
//!   then renamed over the old one (keeping its mode, or the mode given);
//! - [`create_new`]: a file that must not exist yet (a key), with its mode set when it is
//!   created, so a private key is never readable by others, not even for a moment;
//! - [`publish_new`]: a file that must not exist yet and that a user reads (a new fleet
//!   file): written as [`replace`] writes, linked into place only if nothing is there;
//! - [`exchange`]: two paths (files or folders) swapped in one `renameat2(RENAME_EXCHANGE)`,
//!   which is how a rendered tree replaces the old one.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of a new file that is not private.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of a private key or anything else only its owner may read.
pub const PRIVATE_MODE: u32 = 0o600;

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replace the file at `path` with `bytes`: a temporary file beside it, synced, renamed
/// over it. The mode is `mode`, else that of the file being replaced, else
/// [`PUBLIC_MODE`]. Missing folders are created.
pub fn replace(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let mode = mode
        .or_else(|| {
            std::fs::metadata(path)
                .ok()
                .map(|m| m.permissions().mode() & 0o777)
        })
        .unwrap_or(PUBLIC_MODE);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".meshfleet.tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // `permissions` above is subject to the umask; the file must have exactly `mode`.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Create the file at `path` with `bytes` and `mode`; refuses (`AlreadyExists`) when it
/// exists. Missing folders are created.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(parent_dir(path))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Create the file at `path` with `bytes` and `mode`, whole or not at all: a temporary
/// file beside it, synced, then linked into place only if `path` does not exist
/// (`AlreadyExists` otherwise, and the temporary file is removed). Missing folders are
/// created. For a file a user reads (a new fleet file), where [`create_new`] could
/// leave a half-written one behind a crash.
pub fn publish_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    if path.exists() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".meshfleet.tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    Ok(())
}

/// Swap what `a` and `b` name, atomically: both must exist (files or folders).
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replace_keeps_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"new", None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode_of(&path), 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("fleet.yaml")]);
    }

    #[test]
    fn replace_of_a_new_file_uses_the_mode_given_or_the_public_one() {
        let dir = tempfile::tempdir().unwrap();
        replace(&dir.path().join("a/key"), b"k", Some(PRIVATE_MODE)).unwrap();
        assert_eq!(mode_of(&dir.path().join("a/key")), PRIVATE_MODE);
        replace(&dir.path().join("b"), b"b", None).unwrap();
        assert_eq!(mode_of(&dir.path().join("b")), PUBLIC_MODE);
    }

    #[test]
    fn create_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/anchor.key");
        create_new(&path, b"secret", PRIVATE_MODE).unwrap();
        assert_eq!(mode_of(&path), PRIVATE_MODE);
        let err = create_new(&path, b"other", PRIVATE_MODE).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
    }

    #[test]
    fn exchange_swaps_files_and_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::create_dir(&b).unwrap();
        exchange(&a, &b).unwrap();
        assert!(a.is_dir());
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "a");
    }
}

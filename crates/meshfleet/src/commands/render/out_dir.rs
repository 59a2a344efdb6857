//! Whether `render --out DIR` is the folder the GitOps engine reads.
//!
//! Flux's Kustomizations and Argo CD's Applications point at
//! `<repository>/<spec.gitops.repository.path>/<cluster>`; a tree written anywhere else
//! is committed where nothing reads it. DIR must be `spec.gitops.repository.path`
//! beside the fleet file (the fleet at the repository's root, as both examples are
//! laid out), or inside the Git work tree DIR lies in (a fleet kept in a subfolder of
//! the repository, or a checkout of another repository). meshfleet cannot tell which
//! work tree is the one `spec.gitops.repository.url` names, so either is accepted.
//! `--any-dir` writes elsewhere on purpose (a copy to look at).

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Why DIR is not the tree's folder, and which folder is.
#[derive(Debug)]
pub struct Misplaced {
    /// DIR as given.
    out: PathBuf,
    /// The Git work tree DIR lies in, if any.
    repository: Option<PathBuf>,
    /// `spec.gitops.repository.path`.
    path: String,
    /// The folder the engine reads (relative to the working directory where possible).
    pub expected: PathBuf,
}

impl fmt::Display for Misplaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repository {
            Some(root) => write!(
                f,
                "`--out {}` is not `{}` beside the fleet file nor inside the Git repository at `{}`, where the fleet's `spec.gitops.repository.path` sends the GitOps engine",
                self.out.display(),
                self.path,
                root.display()
            ),
            None => write!(
                f,
                "`--out {}` is not `{}` beside the fleet file, where the fleet's `spec.gitops.repository.path` sends the GitOps engine",
                self.out.display(),
                self.path
            ),
        }
    }
}

/// `None` when `out` is where the engine reads the tree of the fleet in `fleet_dir`.
pub fn misplaced(out: &Path, fleet_dir: &Path, path: &str) -> Option<Misplaced> {
    let cwd = std::env::current_dir().ok()?;
    let out_abs = normalize(&cwd.join(out));
    let expected = normalize(&cwd.join(fleet_dir).join(path));
    let repository = work_tree(&out_abs);
    if expected == out_abs
        || repository
            .as_ref()
            .is_some_and(|r| normalize(&r.join(path)) == out_abs)
    {
        return None;
    }
    let shown = expected
        .strip_prefix(&cwd)
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| expected.clone(), Path::to_path_buf);
    Some(Misplaced {
        out: out.to_path_buf(),
        repository,
        path: path.to_string(),
        expected: shown,
    })
}

/// The Git work tree holding `dir` (a folder with `.git`, a directory or a worktree's
/// file), searched from `dir` up.
fn work_tree(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// `path` (absolute) without `.` and `..`, its longest existing ancestor resolved
/// through symlinks, so `/tmp/x` and `/private/tmp/x` compare equal and DIR need not
/// exist yet.
fn normalize(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_path_beside_the_fleet_outside_git() {
        let dir = tempfile::tempdir().unwrap();
        assert!(misplaced(&dir.path().join("gitops"), dir.path(), "gitops").is_none());
        assert!(misplaced(&dir.path().join("./x/../gitops"), dir.path(), "gitops").is_none());
        let wrong = misplaced(&dir.path().join("out"), dir.path(), "gitops").unwrap();
        assert_eq!(wrong.expected, normalize(&dir.path().join("gitops")));
        assert!(wrong.to_string().contains("beside the fleet file"), "{wrong}");
    }

    #[test]
    fn inside_git_the_path_counts_from_the_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let fleet = dir.path().join("fleets/prod");
        std::fs::create_dir_all(&fleet).unwrap();
        assert!(misplaced(&dir.path().join("clusters/mesh"), &fleet, "clusters/mesh").is_none());
        assert!(misplaced(&fleet.join("clusters/mesh"), &fleet, "clusters/mesh").is_none());
        let wrong = misplaced(&dir.path().join("mesh"), &fleet, "clusters/mesh").unwrap();
        assert_eq!(wrong.expected, normalize(&fleet.join("clusters/mesh")));
        assert!(
            wrong.to_string().contains("nor inside the Git repository"),
            "{wrong}"
        );
    }
}

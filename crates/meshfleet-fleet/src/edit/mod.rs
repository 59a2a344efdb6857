//! The one way meshfleet changes a fleet file: [`FleetFileMut`].
//!
//! The lifecycle commands keep their state in the fleet file so that every change to a
//! cluster's desired state is a reviewed commit: `secrets sync --rotate` writes
//! `spec.secrets.linkCredentials`, `trust rotate` writes `spec.identity.rotation`. Both go
//! through this type (as uv's `PyProjectTomlMut` is the one editor of a `pyproject.toml`):
//!
//! - the edit is made on the text, never by serializing the model again, so the user's
//!   comments, key order, quoting and blank lines stay as written and only the edited
//!   entry changes, in block style or flow style (the style of the mapping it is in);
//! - every edit parses the new text again and checks that the edited entry reads back
//!   as meant and that the rest of the fleet reads back as before; otherwise the edit is
//!   refused ([`EditError`]) and the text stays as it was;
//! - nothing reaches the disk but through [`FleetFileMut::write`], which uses the one
//!   atomic writer ([`crate::atomic`]).
//!
//! The editor writes the typed states of [`crate::lifecycle`]; it never reads one out
//! of the file for anyone to use (validation parses them, once).

mod locate;
mod node;

use std::path::{Path, PathBuf};

use crate::lifecycle::{AnchorRotation, LinkCredentialsState};
use node::{Entry, Node, Scalar};

/// Why the fleet file could not be edited; the text (and the file) are left as they were.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text to edit is not a fleet file.
    #[error("the fleet file does not parse: {0}")]
    Unparsable(String),
    /// A key on the way to the entry holds something other than a mapping.
    #[error("line {line}: `{key}` is not a mapping, so meshfleet cannot write the entry below it")]
    NotMapping {
        /// 1-based line of the value.
        line: usize,
        /// The key.
        key: String,
    },
    /// The edited text did not read back as intended: it did not parse, the entry holds
    /// something else, or another part of the fleet would change (a layout this editor
    /// does not handle; nothing was written).
    #[error("the edited fleet file would not read back as intended: {0}")]
    Mismatch(String),
    /// The edited text could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The fleet file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl crate::diagnostic::Hint for EditError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Unparsable(_) => "run `meshfleet validate`; the file changed since it was read".into(),
            Self::NotMapping { .. } => {
                "write the keys on the way as mappings (`key:` with its fields below, or `key: {...}`)".into()
            }
            Self::Mismatch(_) => {
                "nothing was written; write the fields on the way as block mappings (one field per line) and run the \
                 command again, and report this"
                    .into()
            }
            Self::Write { .. } => return None,
        })
    }
}

/// A fleet file's text, edited entry by entry; see the module header.
#[derive(Debug, Clone)]
pub struct FleetFileMut {
    text: String,
}

impl FleetFileMut {
    /// The editor of `text`, which must parse as a fleet file.
    pub fn new(text: &str) -> Result<Self, EditError> {
        crate::parse(text).map_err(|f| EditError::Unparsable(first_message(&f)))?;
        Ok(Self {
            text: text.to_string(),
        })
    }

    /// The text as edited so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text as edited so far.
    pub fn into_text(self) -> String {
        self.text
    }

    /// Set `spec.secrets.linkCredentials` to `state` (removed when it is empty).
    pub fn set_link_credentials(&mut self, state: &LinkCredentialsState) -> Result<&mut Self, EditError> {
        let entry = (!state.is_empty()).then(|| {
            let mut fields = Vec::new();
            if !state.generations.is_empty() {
                let generations = state
                    .generations
                    .iter()
                    .map(|(id, n)| Entry::new(id, Node::Scalar(Scalar::Int(*n))))
                    .collect();
                fields.push(Entry::new("generations", Node::Map(generations)));
            }
            if let Some((links, phase)) = &state.rotation {
                let rotation = vec![
                    Entry::new("phase", Node::Scalar(Scalar::Plain(phase.as_str().into()))),
                    Entry::new(
                        "links",
                        Node::Seq(links.iter().map(|l| Scalar::Plain(l.clone())).collect()),
                    ),
                ];
                fields.push(Entry::new("rotation", Node::Map(rotation)));
            }
            Entry {
                comment: Some("  # written by `meshfleet secrets sync --rotate`"),
                ..Entry::new("linkCredentials", Node::Map(fields))
            }
        });
        self.set(&["spec", "secrets"], "linkCredentials", entry.as_ref())
    }

    /// Set `spec.identity.rotation` to `rotation` (removed when `None`).
    pub fn set_anchor_rotation(&mut self, rotation: Option<&AnchorRotation>) -> Result<&mut Self, EditError> {
        let entry = rotation.map(|r| Entry {
            comment: Some("   # written by `meshfleet trust rotate`; see `meshfleet trust rotate status`"),
            ..Entry::new(
                "rotation",
                Node::Map(vec![
                    Entry::new("phase", Node::Scalar(Scalar::Plain(r.phase.as_str().into()))),
                    Entry::new("from", Node::Scalar(Scalar::Quoted(r.from.clone()))),
                    Entry::new("to", Node::Scalar(Scalar::Quoted(r.to.clone()))),
                ]),
            )
        });
        self.set(&["spec", "identity"], "rotation", entry.as_ref())
    }

    /// Replace the fleet file at `path` with the edited text, atomically, keeping its
    /// permissions; the file must exist.
    pub fn write(&self, path: &Path) -> Result<(), EditError> {
        std::fs::metadata(path)
            .and_then(|_| crate::atomic::replace(path, self.text.as_bytes(), None))
            .map_err(|source| EditError::Write {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Set `key` of the mapping at `path` to `entry` (removed when `None`), creating the
    /// mappings on the way when they are missing; verified before it is kept.
    fn set(&mut self, path: &[&str], key: &str, entry: Option<&Entry>) -> Result<&mut Self, EditError> {
        let text = locate::Text::new(&self.text);
        let mut parent = text.root();
        let mut edited = None;
        for (i, step) in path.iter().enumerate() {
            match text.child(&parent, step)? {
                Some(child) => parent = child,
                // Nothing to remove; or the missing mappings are written with the entry.
                None if entry.is_none() => return Ok(self),
                None => {
                    let nested = path[i + 1..]
                        .iter()
                        .rev()
                        .fold(entry.cloned(), |inner, k| {
                            inner.map(|e| Entry::new(*k, Node::Map(vec![e])))
                        })
                        .map(|inner| Entry::new(*step, Node::Map(vec![inner])));
                    edited = Some(text.set(&parent, step, nested.as_ref())?);
                    break;
                }
            }
        }
        let edited = match edited {
            Some(edited) => edited,
            None => text.set(&parent, key, entry)?,
        };
        let pointer = format!("/{}/{key}", path.join("/"));
        verify(&self.text, &edited, &pointer, entry.map(|e| &e.node))?;
        self.text = edited;
        Ok(self)
    }
}

/// `after` parses, holds `want` at `pointer`, and says everything else as `before` did.
fn verify(before: &str, after: &str, pointer: &str, want: Option<&Node>) -> Result<(), EditError> {
    let mismatch = |what: String| EditError::Mismatch(what);
    let json = |text: &str| -> Result<serde_json::Value, EditError> {
        let fleet =
            crate::parse(text).map_err(|f| mismatch(format!("it does not parse ({})", first_message(&f))))?;
        serde_json::to_value(&fleet).map_err(|e| mismatch(e.to_string()))
    };
    let (mut old, mut new) = (json(before)?, json(after)?);
    let got = take(&mut new, pointer);
    take(&mut old, pointer);
    let want = want.map_or(serde_json::Value::Null, Node::json);
    if node::normalise(got) != node::normalise(want) {
        return Err(mismatch(format!("`{pointer}` reads back differently")));
    }
    if node::normalise(old) != node::normalise(new) {
        return Err(mismatch(format!(
            "a part of the fleet other than `{pointer}` would change"
        )));
    }
    Ok(())
}

/// The value at `pointer`, taken out of `value` (`null` when there is none).
fn take(value: &mut serde_json::Value, pointer: &str) -> serde_json::Value {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return serde_json::Value::Null;
    };
    value
        .pointer_mut(parent)
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|o| o.remove(key))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

/// The first of a parse's findings, for an edit error's one line.
fn first_message(findings: &[crate::diagnostic::Finding]) -> String {
    findings.first().map(|f| f.message.clone()).unwrap_or_default()
}

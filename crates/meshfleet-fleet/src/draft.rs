//! A new fleet file, written from values with comments: what `meshfleet init` and
//! `meshfleet import` leave for the user.
//!
//! [`crate::edit::FleetFileMut`] changes a file the user wrote; a draft is a file no one
//! has written yet, so it is built from a small YAML tree ([`Entry`], [`Value`]) in which
//! any value may carry a note (a comment at the end of its line) and any mapping may hold
//! a commented-out line (a field meshfleet could not fill in). Like the editor, a draft
//! is read back before it is kept: the text must parse as a fleet file and hold exactly
//! the values of the tree ([`FleetDraft::text`]); and like every file meshfleet leaves, it
//! reaches the disk through [`crate::atomic`], here never over an existing file
//! ([`FleetDraft::write_new`]).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// Why a draft could not be written; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The file exists already; a draft never replaces one.
    #[error("`{}` exists already; it was left as it is", .0.display())]
    Exists(PathBuf),
    /// The text did not read back as the values it was written from (a bug).
    #[error("the new fleet file would not read back as intended: {0}")]
    Mismatch(String),
    /// The file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl crate::diagnostic::Hint for DraftError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Exists(path) => format!(
                "pass another path, or move `{}` away first; to check the existing file run `meshfleet validate {}`",
                path.display(),
                path.display()
            ),
            Self::Mismatch(_) => "nothing was written; report this".into(),
            Self::Write { .. } => return None,
        })
    }
}

/// A value of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string, written plain when YAML reads it back as the same string, else quoted.
    Str(String),
    /// A whole number.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// A list of strings, written in flow style (`[a, b]`).
    Strs(Vec<String>),
    /// A list of mappings, each written as a block `- key: ...`.
    Maps(Vec<Vec<Entry>>),
    /// A mapping in block style.
    Map(Vec<Entry>),
    /// A mapping in flow style (`{a: 1, b: x}`): only scalars, and no notes inside.
    Flow(Vec<Entry>),
}

/// One line (or block) of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `key: value  # note`.
    Field {
        /// The key.
        key: String,
        /// The value.
        value: Value,
        /// A comment at the end of the key's line.
        note: Option<String>,
    },
    /// A whole-line comment (`# text`), e.g. a field meshfleet could not fill in.
    Comment(String),
}

impl Entry {
    /// `key: value`.
    pub fn field(key: impl Into<String>, value: Value) -> Self {
        Self::Field {
            key: key.into(),
            value,
            note: None,
        }
    }

    /// `key: value  # note`.
    pub fn noted(key: impl Into<String>, value: Value, note: impl Into<String>) -> Self {
        Self::Field {
            key: key.into(),
            value,
            note: Some(note.into()),
        }
    }

    /// `key: value`, with `note` when there is one.
    pub fn maybe_noted(key: impl Into<String>, value: Value, note: Option<String>) -> Self {
        Self::Field {
            key: key.into(),
            value,
            note,
        }
    }
}

/// A string value.
pub fn str(s: impl Into<String>) -> Value {
    Value::Str(s.into())
}

/// A new fleet file: comment lines at the top, then `apiVersion`, `kind`,
/// `metadata.name` and the fields of `spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetDraft {
    /// Lines of the comment at the top of the file (without `# `).
    pub header: Vec<String>,
    /// `metadata.name`.
    pub name: String,
    /// The fields of `spec`, in the order they are written.
    pub spec: Vec<Entry>,
}

impl FleetDraft {
    /// The file's text, verified: it parses as a fleet file and holds exactly the
    /// draft's values.
    pub fn text(&self) -> Result<String, DraftError> {
        let mut out = String::new();
        for line in &self.header {
            push_comment(&mut out, 0, line);
        }
        out.push_str(&format!(
            "apiVersion: {}\nkind: {}\nmetadata:\n  name: {}\nspec:\n",
            crate::model::API_VERSION,
            crate::model::KIND,
            scalar(&self.name)
        ));
        for entry in &self.spec {
            write_entry(&mut out, 2, entry);
        }
        self.verify(&out)?;
        Ok(out)
    }

    /// Write the draft to `path`, which must not exist: a temporary file beside it,
    /// synced, then linked into place only if nothing is there (so a file that appears
    /// meanwhile is not replaced either).
    pub fn write_new(&self, path: &Path) -> Result<(), DraftError> {
        let text = self.text()?;
        match crate::atomic::publish_new(path, text.as_bytes(), crate::atomic::PUBLIC_MODE) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(DraftError::Exists(path.into())),
            Err(source) => Err(DraftError::Write {
                path: path.into(),
                source,
            }),
        }
    }

    fn verify(&self, text: &str) -> Result<(), DraftError> {
        let fleet = crate::parse(text).map_err(|findings| {
            let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
            DraftError::Mismatch(format!("it does not parse ({})", messages.join("; ")))
        })?;
        let got = serde_json::to_value(&fleet).map_err(|e| DraftError::Mismatch(e.to_string()))?;
        let want = serde_json::json!({
            "apiVersion": crate::model::API_VERSION,
            "kind": crate::model::KIND,
            "metadata": {"name": self.name},
            "spec": map_json(&self.spec),
        });
        match first_difference(&normalise(got), &normalise(want), String::new()) {
            None => Ok(()),
            Some(at) => Err(DraftError::Mismatch(format!("`{at}` reads back differently"))),
        }
    }
}

fn push_comment(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    if text.is_empty() {
        out.push_str(&format!("{pad}#\n"));
    }
    for line in text.lines() {
        if line.is_empty() {
            out.push_str(&format!("{pad}#\n"));
        } else {
            out.push_str(&format!("{pad}# {line}\n"));
        }
    }
}

fn note_text(note: Option<&String>) -> String {
    note.map(|n| format!("  # {}", n.replace('\n', " ")))
        .unwrap_or_default()
}

fn write_entry(out: &mut String, indent: usize, entry: &Entry) {
    let pad = " ".repeat(indent);
    match entry {
        Entry::Comment(text) => push_comment(out, indent, text),
        Entry::Field { key, value, note } => {
            let note = note_text(note.as_ref());
            match value {
                Value::Map(entries) => {
                    out.push_str(&format!("{pad}{key}:{note}\n"));
                    for e in entries {
                        write_entry(out, indent + 2, e);
                    }
                }
                Value::Maps(items) => {
                    out.push_str(&format!("{pad}{key}:{note}\n"));
                    for item in items {
                        write_list_item(out, indent + 2, item);
                    }
                }
                scalar_like => out.push_str(&format!("{pad}{key}: {}{note}\n", flow(scalar_like))),
            }
        }
    }
}

/// `- first: ...` then the other entries of `item` indented under it. Leading comments
/// of an item go above its dash.
fn write_list_item(out: &mut String, indent: usize, item: &[Entry]) {
    let first = item.iter().position(|e| matches!(e, Entry::Field { .. }));
    let Some(first) = first else {
        for e in item {
            write_entry(out, indent, e);
        }
        return;
    };
    for e in &item[..first] {
        write_entry(out, indent, e);
    }
    let mut block = String::new();
    for e in &item[first..] {
        write_entry(&mut block, indent + 2, e);
    }
    // The first field's indentation becomes the dash.
    let pad = " ".repeat(indent);
    out.push_str(&format!("{pad}- {}", &block[indent + 2..]));
}

fn flow(value: &Value) -> String {
    match value {
        Value::Str(s) => scalar(s),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Strs(items) => format!(
            "[{}]",
            items.iter().map(|s| scalar(s)).collect::<Vec<_>>().join(", ")
        ),
        Value::Flow(entries) | Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Field { key, value, .. } => Some(format!("{key}: {}", flow(value))),
                    Entry::Comment(_) => None,
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Maps(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|m| flow(&Value::Flow(m.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `s` plain when it reads back as the same string in block and flow context, else in
/// double quotes (JSON's escaping is valid YAML).
fn scalar(s: &str) -> String {
    let plain_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/=@+-:".contains(c));
    let starts_well = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/');
    let ambiguous = s.parse::<f64>().is_ok()
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
        || s.ends_with(':');
    if plain_chars && starts_well && !ambiguous {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Str(s) => Json::String(s.clone()),
        Value::Int(n) => Json::from(*n),
        Value::Bool(b) => Json::Bool(*b),
        Value::Strs(items) => Json::Array(items.iter().map(|s| Json::String(s.clone())).collect()),
        Value::Maps(items) => Json::Array(items.iter().map(|m| map_json(m)).collect()),
        Value::Map(entries) | Value::Flow(entries) => map_json(entries),
    }
}

fn map_json(entries: &[Entry]) -> Json {
    Json::Object(
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Field { key, value, .. } => Some((key.clone(), value_json(value))),
                Entry::Comment(_) => None,
            })
            .collect(),
    )
}

/// The JSON pointer of the first place where `a` and `b` differ.
fn first_difference(got: &Json, want: &Json, at: String) -> Option<String> {
    match (got, want) {
        (Json::Object(got), Json::Object(want)) => {
            got.keys()
                .chain(want.keys())
                .find_map(|key| match (got.get(key), want.get(key)) {
                    (Some(g), Some(w)) => first_difference(g, w, format!("{at}/{key}")),
                    _ => Some(format!("{at}/{key}")),
                })
        }
        (Json::Array(got), Json::Array(want)) if got.len() == want.len() => got
            .iter()
            .zip(want)
            .enumerate()
            .find_map(|(i, (g, w))| first_difference(g, w, format!("{at}/{i}"))),
        _ => (got != want).then_some(at),
    }
}

/// `value` without nulls, empty mappings and empty lists (an absent optional field
/// serializes as `null`, an absent map as `{}`, an absent list as `[]`).
fn normalise(value: Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalise(v)))
                .filter(|(_, v)| {
                    !v.is_null()
                        && v.as_object().is_none_or(|o| !o.is_empty())
                        && v.as_array().is_none_or(|a| !a.is_empty())
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.into_iter().map(normalise).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FleetDraft {
        FleetDraft {
            header: vec!["written by a test".into(), String::new(), "second: line".into()],
            name: "demo".into(),
            spec: vec![
                Entry::field(
                    "linkerd",
                    Value::Map(vec![
                        Entry::noted("version", str("2025.4.4"), "read from the chart label"),
                        Entry::field("trustDomain", str("cluster.local")),
                    ]),
                ),
                Entry::field(
                    "gitops",
                    Value::Map(vec![
                        Entry::field("engine", str("flux")),
                        Entry::field(
                            "repository",
                            Value::Map(vec![Entry::noted(
                                "url",
                                str("https://github.com/example/fleet.git"),
                                "change: where the rendered tree is committed",
                            )]),
                        ),
                    ]),
                ),
                Entry::field(
                    "identity",
                    Value::Map(vec![Entry::field("trustAnchor", str("certs/a b.crt"))]),
                ),
                Entry::field(
                    "clusters",
                    Value::Maps(vec![
                        vec![
                            Entry::Comment("the hub".into()),
                            Entry::field("name", str("east")),
                            Entry::field(
                                "gateway",
                                Value::Map(vec![
                                    Entry::field(
                                        "addresses",
                                        Value::Strs(vec!["192.0.2.1".into(), "true".into()]),
                                    ),
                                    Entry::noted("nodePort", Value::Int(30143), "read"),
                                    Entry::field(
                                        "probe",
                                        Value::Flow(vec![
                                            Entry::field("port", Value::Int(4191)),
                                            Entry::field("period", str("3s")),
                                        ]),
                                    ),
                                ]),
                            ),
                            Entry::Comment("network: {pods: [...]}   could not be read".into()),
                        ],
                        vec![Entry::field("name", str("west"))],
                    ]),
                ),
                Entry::field(
                    "topology",
                    Value::Map(vec![Entry::field("fullMesh", Value::Bool(true))]),
                ),
            ],
        }
    }

    #[test]
    fn a_draft_reads_back_as_its_values_with_its_notes_in_place() {
        let text = sample().text().unwrap();
        assert!(
            text.contains("    version: 2025.4.4  # read from the chart label\n"),
            "{text}"
        );
        assert!(text.contains("    trustAnchor: \"certs/a b.crt\"\n"), "{text}");
        assert!(
            text.contains("    # the hub\n    - name: east\n      gateway:\n"),
            "{text}"
        );
        assert!(text.contains("addresses: [192.0.2.1, \"true\"]"), "{text}");
        assert!(text.contains("probe: {port: 4191, period: 3s}"), "{text}");
        assert!(
            text.contains("      # network: {pods: [...]}   could not be read\n    - name: west\n"),
            "{text}"
        );
        assert!(
            text.starts_with("# written by a test\n#\n# second: line\napiVersion:"),
            "{text}"
        );
        let fleet = crate::parse(&text).unwrap();
        assert_eq!(
            fleet.spec.clusters[0].gateway.as_ref().unwrap().addresses[1].value,
            "true"
        );
    }

    #[test]
    fn strings_yaml_would_read_as_something_else_are_quoted() {
        for s in ["1.5", "123", "yes", "null", "a b", "#x", "-x", "a: b", "", "*x"] {
            let text = scalar(s);
            assert!(text.starts_with('"'), "`{s}` written as `{text}`");
        }
        for s in [
            "2025.4.4",
            "3s",
            "/ready",
            "mirror.linkerd.io/exported=true",
            "https://x.example:8200",
        ] {
            assert_eq!(scalar(s), s);
        }
    }

    #[test]
    fn write_new_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.yaml");
        std::fs::write(&path, "mine").unwrap();
        let err = sample().write_new(&path).unwrap_err();
        assert!(matches!(err, DraftError::Exists(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
        let fresh = dir.path().join("new/fleet.yaml");
        sample().write_new(&fresh).unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), sample().text().unwrap());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("new"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("fleet.yaml")]);
    }
}

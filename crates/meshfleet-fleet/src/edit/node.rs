//! The values the editor writes: a small YAML tree, rendered in the style of the mapping
//! it lands in (block or flow), and read back as JSON to verify the edit.

use serde_json::Value;

/// A scalar as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scalar {
    /// A plain string (`granting`, `studio-to-pro`).
    Plain(String),
    /// A string always written in double quotes (a fingerprint, whose `:` would read as
    /// a mapping in flow style).
    Quoted(String),
    /// A whole number.
    Int(u32),
}

/// A value: a scalar, a sequence of scalars, or a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Scalar(Scalar),
    Seq(Vec<Scalar>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping; `comment` goes at the end of the key's line in block
/// style (flow style has no room for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub key: String,
    pub node: Node,
    pub comment: Option<&'static str>,
}

impl Entry {
    pub fn new(key: impl Into<String>, node: Node) -> Self {
        Self {
            key: key.into(),
            node,
            comment: None,
        }
    }

    /// This entry as block-style lines at indentation `indent`.
    pub fn block(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        let comment = self.comment.unwrap_or_default();
        match &self.node {
            Node::Scalar(s) => format!("{pad}{}: {}{comment}\n", self.key, s.text()),
            Node::Seq(items) => {
                let mut out = format!("{pad}{}:{comment}\n", self.key);
                for item in items {
                    out.push_str(&format!("{pad}  - {}\n", item.text()));
                }
                out
            }
            Node::Map(entries) => {
                let mut out = format!("{pad}{}:{comment}\n", self.key);
                for entry in entries {
                    out.push_str(&entry.block(indent + 2));
                }
                out
            }
        }
    }

    /// This entry in flow style: `key: value`.
    pub fn flow(&self) -> String {
        format!("{}: {}", self.key, self.node.flow())
    }
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Plain(s) => s.clone(),
            Self::Quoted(s) => format!("\"{s}\""),
            Self::Int(n) => n.to_string(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Plain(s) | Self::Quoted(s) => Value::String(s.clone()),
            Self::Int(n) => Value::from(*n),
        }
    }
}

impl Node {
    fn flow(&self) -> String {
        match self {
            Self::Scalar(s) => s.text(),
            Self::Seq(items) => format!(
                "[{}]",
                items.iter().map(Scalar::text).collect::<Vec<_>>().join(", ")
            ),
            Self::Map(entries) => format!(
                "{{{}}}",
                entries.iter().map(Entry::flow).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// What the parsed fleet should hold here, as the model serializes it.
    pub fn json(&self) -> Value {
        match self {
            Self::Scalar(s) => s.json(),
            Self::Seq(items) => Value::Array(items.iter().map(Scalar::json).collect()),
            Self::Map(entries) => {
                Value::Object(entries.iter().map(|e| (e.key.clone(), e.node.json())).collect())
            }
        }
    }
}

/// `value` without nulls and empty mappings: the model serializes an absent optional
/// field as `null` and an absent map as `{}`, and neither is a difference a user wrote.
pub(super) fn normalise(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalise(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        other => other,
    }
}

//! Every shape mistake of a fleet file at once: wrong types, unknown fields and values,
//! missing fields and duplicate keys, each with its path, what belongs there and an
//! example.
//!
//! serde stops at the first value it cannot take, so strict parsing alone would hide
//! every mistake after the first. When it fails, the text is read a second time as a
//! plain YAML tree that keeps the position of every node (granit-parser, the parser under
//! serde-saphyr), and that tree is walked against the fleet's JSON Schema, the one
//! `meshfleet schema` prints, derived from the same model types serde fills. The walk
//! explains a failure; it never accepts a file: only serde does. It takes every scalar
//! serde-saphyr takes (quoted numbers and booleans, `yes`/`no`, `0x` numbers, a null
//! for a list), so that it does not report what serde would accept.
//!
//! A file that is not YAML at all (a syntax error) has no tree past its mistake, so
//! [`findings`] returns `None` and the caller reports serde's one syntax error.

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{Finding, did_you_mean};
use crate::located::SourceLocation;
use crate::model::Fleet;
use crate::rules::Rule;

/// The shape mistakes of `text`, sorted by position; `None` when `text` is not one
/// well-formed YAML document (then only the parser's own error can be reported).
pub(crate) fn findings(text: &str) -> Option<Vec<Finding>> {
    let root = tree(text)?;
    let schema = serde_json::to_value(schemars::schema_for!(Fleet)).ok()?;
    let empty = Map::new();
    let defs = schema.get("$defs").and_then(Value::as_object).unwrap_or(&empty);
    let mut walk = Walk {
        defs,
        out: Vec::new(),
    };
    walk.node(&root, &schema, &Place::root());
    let mut out = walk.out;
    out.sort_by_key(|f| f.location.map_or(usize::MAX, |l| l.offset));
    Some(out)
}

/// A node of the YAML tree with where it starts.
#[derive(Debug)]
struct Node {
    at: SourceLocation,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A scalar; `plain` when written without quotes (only plain scalars can be null).
    Scalar {
        text: String,
        plain: bool,
        tagged: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// `*name`: whatever the anchor holds, checked where the anchor is.
    Alias,
}

impl Node {
    fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true, tagged: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar's text, if it is one.
    fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What the node is, for "must be X, not Y": never more than a short value of the
    /// user's text, so a pasted key or token is not repeated.
    fn found(&self) -> String {
        match &self.kind {
            Kind::Map(_) => "a mapping".into(),
            Kind::Seq(_) => "a list".into(),
            Kind::Alias => "an alias".into(),
            Kind::Scalar { .. } if self.is_null() => "empty".into(),
            Kind::Scalar { text, .. } => match quotable(text) {
                Some(t) => format!("`{t}`"),
                None => format!("a text of {} characters", text.chars().count()),
            },
        }
    }
}

/// `text` if it is short, on one line and not the start of a PEM block; else `None`.
fn quotable(text: &str) -> Option<&str> {
    (text.chars().count() <= 40 && !text.contains(['\n', '`']) && !text.contains("-----")).then_some(text)
}

fn location(span: &Span, text: &str) -> SourceLocation {
    let start = span.start;
    let offset = start.byte_offset().unwrap_or_else(|| {
        text.char_indices()
            .nth(start.index())
            .map_or(text.len(), |(b, _)| b)
    });
    let end = span.end.byte_offset().unwrap_or(offset);
    SourceLocation {
        line: u32::try_from(start.line()).unwrap_or(u32::MAX),
        column: u32::try_from(start.col() + 1).unwrap_or(u32::MAX),
        offset,
        len: end.saturating_sub(offset).max(1),
    }
}

/// A collection being built: its start, its children, and a mapping's pending key.
enum Frame {
    Seq(SourceLocation, Vec<Node>),
    Map(SourceLocation, Vec<(Node, Node)>, Option<Node>),
}

/// The first document of `text` as a tree; `None` on a syntax error.
fn tree(text: &str) -> Option<Node> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let at = location(&span, text);
        let done = match event {
            Event::Scalar(value, style, _, tag) => Node {
                at,
                kind: Kind::Scalar {
                    text: value.into_owned(),
                    plain: style == ScalarStyle::Plain,
                    tagged: tag.is_some(),
                },
            },
            Event::Alias(_) => Node {
                at,
                kind: Kind::Alias,
            },
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(at, Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(at, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop()? {
                Frame::Seq(at, items) => Node {
                    at,
                    kind: Kind::Seq(items),
                },
                Frame::Map(at, entries, _) => Node {
                    at,
                    kind: Kind::Map(entries),
                },
            },
            Event::DocumentEnd if root.is_some() => break,
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(done),
            Some(Frame::Seq(_, items)) => items.push(done),
            Some(Frame::Map(_, entries, key)) => match key.take() {
                None => *key = Some(done),
                Some(k) => entries.push((k, done)),
            },
        }
    }
    root
}

/// Where a node is: its path (`spec.clusters[1].gateway.port`) and the key it was
/// written under (`None` for list entries and the file itself), for the examples.
struct Place {
    path: String,
    key: Option<String>,
}

impl Place {
    fn root() -> Self {
        Self {
            path: String::new(),
            key: None,
        }
    }

    fn field(&self, key: &str) -> Self {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Self {
            path,
            key: Some(key.to_string()),
        }
    }

    fn entry(&self, index: usize) -> Self {
        Self {
            path: format!("{}[{index}]", self.path),
            key: None,
        }
    }

    /// The path as a message starts with it.
    fn name(&self) -> String {
        if self.path.is_empty() {
            "the fleet file".into()
        } else {
            format!("`{}`", self.path)
        }
    }

    /// `key: EXAMPLE` (or `- EXAMPLE` for a list entry), as a user writes it.
    fn written(&self, example: &str) -> String {
        match &self.key {
            Some(key) => format!("`{key}: {example}`"),
            None if self.path.is_empty() => format!("`{example}`"),
            None => format!("`- {example}`"),
        }
    }
}

/// What the schema takes at a place.
enum Expect<'a> {
    Object(&'a Value),
    Array(&'a Value),
    String,
    Integer,
    Boolean,
    Enum(Vec<&'a str>),
    Any,
}

/// A schema resolved through `$ref`, `anyOf [X, null]` and `type: [X, "null"]`.
struct Resolved<'a> {
    expect: Expect<'a>,
    nullable: bool,
    /// The description of the field (the outermost one), for its `[default]`.
    description: Option<&'a str>,
}

struct Walk<'a> {
    defs: &'a Map<String, Value>,
    out: Vec<Finding>,
}

impl<'a> Walk<'a> {
    fn resolve(&self, schema: &'a Value) -> Resolved<'a> {
        let description = schema.get("description").and_then(Value::as_str);
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let name = target.rsplit('/').next().unwrap_or_default();
            return match self.defs.get(name) {
                Some(def) => Resolved {
                    description: description.or_else(|| self.resolve(def).description),
                    ..self.resolve(def)
                },
                None => any(description),
            };
        }
        if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
            let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
            let others: Vec<&Value> = alternatives.iter().filter(|s| !is_null(s)).collect();
            let nullable = others.len() < alternatives.len();
            return match others.as_slice() {
                [one] => {
                    let inner = self.resolve(one);
                    Resolved {
                        nullable: nullable || inner.nullable,
                        description: description.or(inner.description),
                        ..inner
                    }
                }
                _ => any(description),
            };
        }
        if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
            let words: Option<Vec<&str>> = variants
                .iter()
                .map(|v| v.get("const").and_then(Value::as_str))
                .collect();
            return match words {
                Some(words) => Resolved {
                    expect: Expect::Enum(words),
                    nullable: false,
                    description,
                },
                None => any(description),
            };
        }
        if let Some(words) = schema.get("enum").and_then(Value::as_array) {
            return Resolved {
                expect: Expect::Enum(words.iter().filter_map(Value::as_str).collect()),
                nullable: false,
                description,
            };
        }
        let (kind, nullable) = match schema.get("type") {
            Some(Value::String(t)) => (t.as_str(), false),
            Some(Value::Array(types)) => {
                let nullable = types.iter().any(|t| t == "null");
                let kind = types
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .unwrap_or("null");
                (kind, nullable)
            }
            _ => ("", false),
        };
        let expect = match kind {
            "object" => Expect::Object(schema),
            "array" => Expect::Array(schema.get("items").unwrap_or(&Value::Null)),
            "string" => Expect::String,
            "integer" => Expect::Integer,
            "boolean" => Expect::Boolean,
            _ => Expect::Any,
        };
        Resolved {
            expect,
            nullable,
            description,
        }
    }

    fn node(&mut self, node: &Node, schema: &'a Value, place: &Place) {
        let resolved = self.resolve(schema);
        if matches!(node.kind, Kind::Alias)
            || matches!(node.kind, Kind::Scalar { tagged: true, .. })
            || matches!(resolved.expect, Expect::Any)
        {
            return;
        }
        if node.is_null() {
            // serde-saphyr reads a null list as empty.
            if !resolved.nullable && !matches!(resolved.expect, Expect::Array(_)) {
                self.wrong_type(node, &resolved, place);
            }
            return;
        }
        match (&resolved.expect, &node.kind) {
            (Expect::Object(object), Kind::Map(entries)) => self.object(node, entries, object, place),
            (Expect::Array(items), Kind::Seq(nodes)) => {
                for (i, item) in nodes.iter().enumerate() {
                    self.node(item, items, &place.entry(i));
                }
            }
            (Expect::String, Kind::Scalar { .. }) => {}
            (Expect::Integer, Kind::Scalar { text, .. }) if is_integer(text) => {}
            (Expect::Boolean, Kind::Scalar { text, .. }) if is_boolean(text) => {}
            (Expect::Enum(words), Kind::Scalar { text, .. }) => {
                if !words.contains(&text.as_str()) {
                    self.unknown_value(node, text, words, place);
                }
            }
            _ => self.wrong_type(node, &resolved, place),
        }
    }

    fn object(&mut self, node: &Node, entries: &[(Node, Node)], schema: &'a Value, place: &Place) {
        let properties = properties_of(schema);
        let additional = schema.get("additionalProperties");
        let mut seen: Vec<(&str, SourceLocation)> = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.scalar() else {
                self.wrong_key(key, properties, place);
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == name) {
                self.duplicate(key, name, *first, place);
                continue;
            }
            seen.push((name, key.at));
            let field = properties
                .get(name)
                .or_else(|| additional.filter(|a| a.is_object()));
            match field {
                Some(field) => self.node(value, field, &place.field(name)),
                None if additional == Some(&Value::Bool(false)) => {
                    unknown.push(name);
                    self.unknown_field(key, name, properties, place);
                }
                None => {}
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            // A misspelt field is reported once, as unknown with its did-you-mean.
            let misspelt = unknown.iter().any(|u| did_you_mean(u, [name]).is_some());
            if !seen.iter().any(|(k, _)| *k == name) && !misspelt {
                let example = properties
                    .get(name)
                    .map(|s| self.examples(s, name, 0))
                    .and_then(|e| e.into_iter().next())
                    .unwrap_or_else(|| "...".into());
                self.out.push(Finding::error(
                    Rule::MissingField,
                    node.at,
                    format!("{} has no `{name}`", place.name()),
                    format!(
                        "add `{name}: {example}` here; `meshfleet schema` prints every field with its meaning"
                    ),
                ));
            }
        }
    }

    fn wrong_type(&mut self, node: &Node, resolved: &Resolved<'a>, place: &Place) {
        let expected = match &resolved.expect {
            Expect::Object(_) => "a mapping".to_string(),
            Expect::Array(_) => "a list".to_string(),
            Expect::String => "a string".to_string(),
            Expect::Integer => "a whole number".to_string(),
            Expect::Boolean => "`true` or `false`".to_string(),
            Expect::Enum(words) => format!("one of {}", ticked(words)),
            Expect::Any => "a value".to_string(),
        };
        let key = place.key.as_deref().unwrap_or("value");
        let examples: Vec<String> = self
            .examples_of(resolved, key, 0)
            .iter()
            .map(|e| place.written(e))
            .collect();
        let hint = if examples.is_empty() {
            match &resolved.expect {
                Expect::Object(object) => format!(
                    "write a mapping of some of the fields {}; `meshfleet schema` describes each",
                    ticked(&field_names(object))
                ),
                _ => format!("write {expected}"),
            }
        } else {
            format!("write {}", examples.join(" or "))
        };
        self.out.push(Finding::error(
            Rule::InvalidType,
            node.at,
            format!("{} must be {expected}, not {}", place.name(), node.found()),
            hint,
        ));
    }

    fn unknown_value(&mut self, node: &Node, text: &str, words: &[&str], place: &Place) {
        let allowed = words.join(", ");
        let hint = match did_you_mean(text, words.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? allowed values: {allowed}"),
            None => format!("allowed values: {allowed}"),
        };
        self.out.push(Finding::error(
            Rule::UnknownValue,
            node.at,
            format!("{} cannot be {}", place.name(), node.found()),
            hint,
        ));
    }

    fn unknown_field(&mut self, key: &Node, name: &str, properties: &Map<String, Value>, place: &Place) {
        let allowed: Vec<&str> = properties.keys().map(String::as_str).collect();
        let hint = match did_you_mean(name, allowed.iter().copied()) {
            Some(best) => format!(
                "did you mean `{best}`? fields allowed here: {}",
                allowed.join(", ")
            ),
            None => format!("fields allowed here: {}", allowed.join(", ")),
        };
        let inside = if place.path.is_empty() {
            "the top level of the fleet file".to_string()
        } else {
            format!("`{}`", place.path)
        };
        self.out.push(Finding::error(
            Rule::UnknownField,
            key.at,
            match quotable(name) {
                Some(n) => format!("{inside} has no field `{n}`"),
                None => format!(
                    "{inside} has no field of this name ({} characters)",
                    name.chars().count()
                ),
            },
            hint,
        ));
    }

    fn wrong_key(&mut self, key: &Node, properties: &Map<String, Value>, place: &Place) {
        let allowed: Vec<&str> = properties.keys().map(String::as_str).collect();
        self.out.push(Finding::error(
            Rule::InvalidType,
            key.at,
            format!("a key of {} is {}, not a name", place.name(), key.found()),
            format!("fields allowed here: {}", allowed.join(", ")),
        ));
    }

    fn duplicate(&mut self, key: &Node, name: &str, first: SourceLocation, place: &Place) {
        let shown = quotable(name).map_or_else(|| "a key".to_string(), |n| format!("the key `{n}`"));
        let field = quotable(name).unwrap_or("the key");
        self.out.push(Finding::error(
            Rule::DuplicateKey,
            key.at,
            format!(
                "{} has {shown} twice: at line {}, column {} and here",
                place.name(),
                first.line,
                first.column
            ),
            format!(
                "keep one `{field}:` and delete the other; a YAML mapping holds each key once, so meshfleet does not guess which value you meant"
            ),
        ));
    }

    fn examples_of(&self, resolved: &Resolved<'a>, key: &str, depth: usize) -> Vec<String> {
        let default = resolved.description.and_then(bracket_default);
        match &resolved.expect {
            Expect::Boolean => vec!["true".into()],
            Expect::Integer => vec![default.filter(|d| is_integer(d)).unwrap_or("1").to_string()],
            Expect::String => vec![
                default
                    .filter(|d| !d.contains(' '))
                    .map_or_else(|| format!("<{key}>"), str::to_string),
            ],
            Expect::Enum(words) => words.first().map(|w| (*w).to_string()).into_iter().collect(),
            Expect::Array(items) if depth < 3 => {
                let item = self.examples(items, key, depth + 1);
                item.first().map(|i| format!("[{i}]")).into_iter().collect()
            }
            Expect::Object(object) if depth < 3 => self.object_examples(object, depth),
            _ => Vec::new(),
        }
    }

    fn examples(&self, schema: &'a Value, key: &str, depth: usize) -> Vec<String> {
        let resolved = self.resolve(schema);
        self.examples_of(&resolved, key, depth)
    }

    /// Flow mappings that fill the required fields; an object without required fields
    /// and at most two fields gets one example per field (`topology`: `{hubAndSpoke:
    /// ...}` or `{fullMesh: true}`), a bigger one none (the hint lists its fields).
    fn object_examples(&self, object: &'a Value, depth: usize) -> Vec<String> {
        let properties = properties_of(object);
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let pair = |name: &str| {
            let value = properties.get(name)?;
            let example = self.examples(value, name, depth + 1).into_iter().next()?;
            Some(format!("{name}: {example}"))
        };
        if !required.is_empty() {
            let pairs: Option<Vec<String>> = required.iter().map(|n| pair(n)).collect();
            return pairs
                .map(|p| format!("{{{}}}", p.join(", ")))
                .into_iter()
                .collect();
        }
        if properties.len() <= 2 {
            return properties
                .keys()
                .filter_map(|n| pair(n))
                .map(|p| format!("{{{p}}}"))
                .collect();
        }
        Vec::new()
    }
}

fn any(description: Option<&str>) -> Resolved<'_> {
    Resolved {
        expect: Expect::Any,
        nullable: true,
        description,
    }
}

/// The `properties` of an object schema (none for a schema without them).
fn properties_of(schema: &Value) -> &Map<String, Value> {
    static NONE: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&NONE)
}

/// The fields of an object schema, in schema order.
fn field_names(object: &Value) -> Vec<&str> {
    object
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn ticked(words: &[&str]) -> String {
    let ticked: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match ticked.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The `[default]` a model field's doc comment ends with, e.g. `4143` in
/// "Gateway port [4143].".
fn bracket_default(description: &str) -> Option<&str> {
    let start = description.rfind('[')?;
    let end = start + description[start..].find(']')?;
    Some(&description[start + 1..end]).filter(|d| !d.is_empty())
}

/// An integer as serde-saphyr reads one (`4143`, `"4143"`, `1_000`, `0x10`, `-1`).
fn is_integer(text: &str) -> bool {
    let t = text.trim().replace('_', "");
    let t = t.strip_prefix(['-', '+']).unwrap_or(&t);
    let (digits, radix) = match t.get(..2) {
        Some("0x" | "0X") => (&t[2..], 16),
        Some("0o" | "0O") => (&t[2..], 8),
        Some("0b" | "0B") => (&t[2..], 2),
        _ => (t, 10),
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// A boolean as serde-saphyr reads one (`true`, `"true"`, `yes`, `on`, any case).
fn is_boolean(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{BASE, base_with};

    /// (rule, line, column, message, hint) of each finding.
    fn report(text: &str) -> Vec<(String, u32, u32, String, String)> {
        findings(text)
            .expect("well-formed YAML")
            .into_iter()
            .map(|f| {
                let at = f.location.unwrap_or_default();
                (f.rule.to_string(), at.line, at.column, f.message, f.hint)
            })
            .collect()
    }

    #[test]
    fn the_base_fleet_has_no_shape_mistakes() {
        assert_eq!(report(BASE), []);
    }

    #[test]
    fn topology_shapes_are_explained_with_the_accepted_ones() {
        let text = base_with("  links:\n", "  topology: {fullMesh: {}}\n  links:\n");
        assert_eq!(
            report(&text),
            [(
                "invalid-type".into(),
                39,
                24,
                "`spec.topology.fullMesh` must be `true` or `false`, not a mapping".into(),
                "write `fullMesh: true`".into()
            )]
        );
        let text = base_with("  links:\n", "  topology: full-mesh\n  links:\n");
        assert_eq!(
            report(&text),
            [(
                "invalid-type".into(),
                39,
                13,
                "`spec.topology` must be a mapping, not `full-mesh`".into(),
                "write `topology: {hubAndSpoke: {hub: <hub>}}` or `topology: {fullMesh: true}`".into()
            )]
        );
    }

    #[test]
    fn every_mistake_is_reported_not_only_the_first() {
        let text = base_with("    engine: flux\n", "    engine: fluxcd\n")
            .replace(
                "      gateway:\n        addresses: [studio.example]\n",
                "      gateway:\n        adresses: [studio.example]\n        port: many\n",
            )
            .replace(
                "    - {source: pro, target: studio}\n",
                "    - {source: pro, target: studio, source: pro}\n    - [pro, studio]\n",
            );
        let rules: Vec<(String, u32)> = report(&text).into_iter().map(|(r, l, ..)| (r, l)).collect();
        assert_eq!(
            rules,
            [
                ("unknown-value".into(), 9),
                ("unknown-field".into(), 27),
                ("invalid-type".into(), 28),
                ("duplicate-key".into(), 42),
                ("invalid-type".into(), 43),
            ]
        );
    }

    #[test]
    fn a_duplicate_key_names_both_places() {
        let text = base_with(
            "      apiServer: https://pro.example:6443\n",
            "      apiServer: https://pro.example:6443\n      apiServer: https://pro2.example:6443\n",
        );
        assert_eq!(
            report(&text),
            [(
                "duplicate-key".into(),
                31,
                7,
                "`spec.clusters[1]` has the key `apiServer` twice: at line 30, column 7 and here".into(),
                "keep one `apiServer:` and delete the other; a YAML mapping holds each key once, so meshfleet does not guess which value you meant".into()
            )]
        );
    }

    #[test]
    fn missing_fields_and_wrong_scalars() {
        let text = base_with("    - name: pro\n", "    - context: pro\n")
            .replace("      path: linkerd\n", "      path: [linkerd]\n");
        assert_eq!(
            report(&text),
            [
                (
                    "invalid-type".into(),
                    18,
                    13,
                    "`spec.secrets.vault.path` must be a string, not a list".into(),
                    "write `path: <path>`".into()
                ),
                (
                    "missing-field".into(),
                    28,
                    7,
                    "`spec.clusters[1]` has no `name`".into(),
                    "add `name: <name>` here; `meshfleet schema` prints every field with its meaning".into()
                ),
            ]
        );
    }

    #[test]
    fn what_serde_accepts_is_not_reported() {
        let text = base_with(
            "      gateway:\n        addresses: [studio.example]\n",
            "      gateway:\n        enabled: yes\n        port: \"4143\"\n        addresses:\n",
        );
        assert_eq!(report(&text), []);
        assert!(findings("a: [b\n").is_none());
    }

    #[test]
    fn long_values_are_not_quoted() {
        let key = "x".repeat(64);
        let text = base_with("  name: test\n", &format!("  name: test\n  {key}: 1\n"));
        let found = report(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].3, "`metadata` has no field of this name (64 characters)");
    }
}

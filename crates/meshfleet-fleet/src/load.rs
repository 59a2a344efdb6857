//! The fleet file: finding it, reading it and parsing it with source locations.
//!
//! Parsing is strict (unknown fields, wrong types and duplicate keys are errors) and a
//! parse error becomes a [`Finding`] with line, column and a did-you-mean hint, exactly
//! like the findings of `validate`, so users see one kind of report.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Finding, did_you_mean};
use crate::located::SourceLocation;
use crate::model::Fleet;
use crate::rules::Rule;
use crate::shape;

/// The name of the fleet file inside a fleet folder.
pub const FLEET_FILE_NAME: &str = "fleet.yaml";

/// The other name a fleet folder may use: Rancher Fleet treats any folder holding a
/// `fleet.yaml` as one of its bundles, so its users need a name of their own.
pub const MESHFLEET_FILE_NAME: &str = "meshfleet.yaml";

/// Every name a fleet folder's file may have, in the order the error for none names
/// them: both names with `.yml` too, as kustomize takes `kustomization.yml` and Docker
/// Compose `compose.yml`.
pub const FLEET_FILE_NAMES: [&str; 4] = [FLEET_FILE_NAME, "fleet.yml", MESHFLEET_FILE_NAME, "meshfleet.yml"];

/// The PATH that reads the fleet from stdin, as `kubectl apply -f -` does.
pub const STDIN_PATH: &str = "-";

/// How a fleet read from stdin is named in messages (`<stdin>:9:13`).
const STDIN_NAME: &str = "<stdin>";

/// A fleet file as read from disk.
#[derive(Debug, Clone)]
pub struct FleetSource {
    /// The path as the user gave it (or `<folder>/fleet.yaml` or `<folder>/meshfleet.yaml`),
    /// used in messages.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

impl FleetSource {
    /// The folder that holds the fleet file; relative paths in the file start here.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The file name (`fleet.yaml` or `meshfleet.yaml`), for generated-file headers that must not depend on
    /// where the command ran; `fleet.yaml` for a fleet read from stdin, so that
    /// `render - --check` compares with a tree rendered from the file.
    pub fn file_name(&self) -> String {
        if self.path == Path::new(STDIN_NAME) {
            return FLEET_FILE_NAME.to_string();
        }
        self.path.file_name().map_or_else(
            || FLEET_FILE_NAME.to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// The path of the trust anchor file, relative to the fleet file's folder.
pub fn anchor_path(fleet_dir: &Path, fleet: &Fleet) -> PathBuf {
    fleet_dir.join(&fleet.spec.identity.trust_anchor.value)
}

/// Why a fleet file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The path does not exist or could not be read.
    #[error("cannot read `{}`", path.display())]
    Unreadable {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A folder holds more than one of [`FLEET_FILE_NAMES`] (`fleet.yaml` and
    /// `meshfleet.yaml`, or `fleet.yaml` and `fleet.yml`), so which one is the fleet is
    /// not clear.
    #[error("`{}` holds {}; meshfleet cannot tell which one is the fleet", folder.display(), both(names))]
    Ambiguous {
        /// The folder given as PATH.
        folder: PathBuf,
        /// The fleet file names it holds (two or more).
        names: Vec<&'static str>,
    },
    /// The file is not a valid fleet file (syntax, unknown field, wrong type).
    #[error("`{}` is not a valid fleet file", file.path.display())]
    Invalid {
        /// The text, for snippets.
        file: Box<FleetSource>,
        /// The parse problems, sorted by position (at least one).
        findings: Vec<Finding>,
    },
}

impl crate::diagnostic::Hint for LoadError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Unreadable { .. } => Some(
                "pass a fleet file, or a folder that holds `fleet.yaml` (or `fleet.yml`, `meshfleet.yaml`, `meshfleet.yml`)"
                    .into(),
            ),
            Self::Ambiguous { folder, names } => {
                let rancher = names.iter().any(|n| n.starts_with("meshfleet."))
                    && names.iter().any(|n| n.starts_with("fleet."));
                let keep = names.iter().rev().find(|n| n.starts_with("meshfleet.")).unwrap_or(&names[0]);
                Some(if rancher {
                    format!(
                        "keep one: keep `{keep}` if Rancher Fleet also reads this folder (it takes any `{FLEET_FILE_NAME}` for its own bundle) and rename or remove the other, or pass the file itself as PATH, e.g. `{}`",
                        folder.join(keep).display()
                    )
                } else {
                    format!(
                        "keep one and remove the other, or pass the file itself as PATH, e.g. `{}`",
                        folder.join(names[0]).display()
                    )
                })
            }
            // The finding carries its own hint.
            Self::Invalid { .. } => None,
        }
    }
}

/// Resolve a PATH argument: a fleet file, or a folder holding `fleet.yaml` or
/// `meshfleet.yaml` (not both). A folder with neither resolves to its `fleet.yaml`, so
/// the error names the file users most likely meant.
pub fn resolve_path(path: &Path) -> Result<PathBuf, LoadError> {
    if path == Path::new(".") {
        // `./fleet.yaml` is printed as `fleet.yaml`, as users type it.
        resolve_in(path, |name| PathBuf::from(name))
    } else if path.is_dir() {
        resolve_in(path, |name| path.join(name))
    } else {
        Ok(path.to_path_buf())
    }
}

fn resolve_in(folder: &Path, join: impl Fn(&str) -> PathBuf) -> Result<PathBuf, LoadError> {
    let names: Vec<&'static str> = FLEET_FILE_NAMES
        .into_iter()
        .filter(|name| join(name).is_file())
        .collect();
    match names.as_slice() {
        [] => Ok(join(FLEET_FILE_NAME)),
        [one] => Ok(join(one)),
        _ => Err(LoadError::Ambiguous {
            folder: folder.to_path_buf(),
            names,
        }),
    }
}

/// "both `a` and `b`", or "`a`, `b` and `c`".
fn both(names: &[&str]) -> String {
    let ticked: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match ticked.as_slice() {
        [a, b] => format!("both {a} and {b}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        [] => String::new(),
    }
}

/// Read the fleet file at `path` (a file, a folder holding one of
/// [`FLEET_FILE_NAMES`], or `-` for stdin).
pub fn read(path: &Path) -> Result<FleetSource, LoadError> {
    if path == Path::new(STDIN_PATH) {
        // Relative paths in the fleet (the trust anchor) start in the working directory.
        let path = PathBuf::from(STDIN_NAME);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
            LoadError::Unreadable {
                path: path.clone(),
                source,
            }
        })?;
        return Ok(FleetSource { path, text });
    }
    let path = resolve_path(path)?;
    let text = fs_err::read_to_string(&path).map_err(|source| LoadError::Unreadable {
        path: path.clone(),
        source,
    })?;
    Ok(FleetSource { path, text })
}

/// Read and parse the fleet file at `path`.
pub fn load(path: &Path) -> Result<(FleetSource, Fleet), LoadError> {
    let source = read(path)?;
    match parse(&source.text) {
        Ok(fleet) => Ok((source, fleet)),
        Err(findings) => Err(LoadError::Invalid {
            file: Box::new(source),
            findings,
        }),
    }
}

/// Parse fleet-file text. The error is every located finding with a hint, sorted by
/// position (at least one): when serde stops at a mistake, [`shape`] walks the whole
/// file for the others.
pub fn parse(text: &str) -> Result<Fleet, Vec<Finding>> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(vec![Finding::error(
            Rule::YamlSyntax,
            SourceLocation {
                line: 1,
                column: 1,
                offset: 0,
                len: 1,
            },
            "the fleet file is empty",
            "start from an example such as `examples/homelab/fleet.yaml`; `meshfleet schema` prints every field",
        )]);
    }
    serde_saphyr::from_str::<Fleet>(text).map_err(|e| {
        let first = parse_finding(&e, text);
        let Some(mut found) = shape::findings(text).filter(|f| !f.is_empty()) else {
            return vec![first];
        };
        // The walk takes what serde takes; should serde refuse something the walk does
        // not see, its own finding still goes in.
        let line = |f: &Finding| f.location.map(|l| l.line);
        if !found
            .iter()
            .any(|f| f.rule == first.rule || line(f) == line(&first))
        {
            found.push(first);
            found.sort_by_key(|f| f.location.map_or(usize::MAX, |l| l.offset));
        }
        found
    })
}

fn parse_finding(err: &serde_saphyr::Error, text: &str) -> Finding {
    let at = err.location().map_or_else(SourceLocation::default, |loc| {
        let line = u32::try_from(loc.line()).unwrap_or(0);
        let column = u32::try_from(loc.column()).unwrap_or(0);
        SourceLocation {
            line,
            column,
            offset: offset_of(text, line, column),
            len: 1,
        }
    });
    let full = err.without_snippet().to_string();
    let message = strip_location_prefix(full.lines().next().unwrap_or_default()).to_string();
    if message.contains("tab")
        && let Some(tab) = tab_after(text, at)
    {
        return Finding::error(
            Rule::YamlSyntax,
            tab,
            "a tab character where YAML expects indentation or a value",
            "replace the tab with spaces: YAML indents with spaces only",
        );
    }
    let (rule, message, hint) = explain(message);
    let mut at = at;
    if let Some(len) = token_len(text, at) {
        at.len = len;
    }
    Finding::error(rule, at, message, hint)
}

/// The first tab from the start of `at`'s line on. The scanner reports a tab inside
/// a plain scalar's continuation at the scalar, one line or more above the tab.
fn tab_after(text: &str, at: SourceLocation) -> Option<SourceLocation> {
    let line_start = text[..at.offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let offset = line_start + text[line_start..].find('\t')?;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    Some(SourceLocation {
        line: u32::try_from(line).ok()?,
        column: u32::try_from(column).ok()?,
        offset,
        len: 1,
    })
}

/// serde-saphyr starts messages with `error: line L column C: `; the location is printed
/// separately, so drop it from the message.
fn strip_location_prefix(line: &str) -> &str {
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.rfind(" at line ") {
        Some(idx) if line[idx..].contains(", column ") => &line[..idx],
        _ => line,
    };
    if line.starts_with("line ")
        && let Some(idx) = line.find(": ")
    {
        return &line[idx + 2..];
    }
    line
}

/// A rule id, the message and a hint for a parser message; the parser's advice about
/// its own options ("set DuplicateKeyPolicy in Options") is not for meshfleet's users.
fn explain(message: String) -> (Rule, String, String) {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or_default().trim();
        return (
            Rule::DuplicateKey,
            format!("the key `{key}` is written twice in one mapping"),
            format!("keep one `{key}:` and delete the other; a YAML mapping holds each key once"),
        );
    }
    let (rule, hint) = explain_rule(&message);
    (rule, message, hint)
}

/// A rule id and a hint for a parser message.
fn explain_rule(message: &str) -> (Rule, String) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = split_expected(rest);
        let hint = match did_you_mean(field, expected.iter().map(String::as_str)) {
            Some(best) => format!(
                "did you mean `{best}`? fields allowed here: {}",
                expected.join(", ")
            ),
            None => format!("fields allowed here: {}", expected.join(", ")),
        };
        return (Rule::UnknownField, hint);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, expected) = split_expected(rest);
        let hint = match did_you_mean(value, expected.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`? allowed values: {}", expected.join(", ")),
            None => format!("allowed values: {}", expected.join(", ")),
        };
        return (Rule::UnknownValue, hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return (
            Rule::MissingField,
            format!("add `{field}:` here; `meshfleet schema` prints every field with its meaning"),
        );
    }
    if message.contains("duplicate") {
        return (Rule::DuplicateKey, "remove one of the two keys".to_string());
    }
    if message.starts_with("invalid")
        || message.contains("invalid type")
        || message.starts_with("expected ")
        || message.starts_with("cannot deserialize")
    {
        return (
            Rule::InvalidType,
            "check the value's type against `meshfleet schema` (numbers unquoted, lists in `[]` or `- `)"
                .to_string(),
        );
    }
    (
        Rule::YamlSyntax,
        "fix the YAML syntax at this place (indentation, brackets, quotes)".to_string(),
    )
}

/// Split "x`, expected one of a, b" into ("x", ["a", "b"]).
fn split_expected(rest: &str) -> (&str, Vec<String>) {
    let mut parts = rest.splitn(2, '`');
    let word = parts.next().unwrap_or_default();
    let tail = parts.next().unwrap_or_default();
    let expected = tail
        .split_once("expected one of ")
        .or_else(|| tail.split_once("expected "))
        .map(|(_, list)| {
            list.split(", ")
                .map(|s| s.trim_matches(|c| c == '`' || c == ' ').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    (word, expected)
}

/// Byte offset of a 1-based line/column (columns in characters).
pub fn offset_of(text: &str, line: u32, column: u32) -> usize {
    if line == 0 {
        return 0;
    }
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let col = column.saturating_sub(1) as usize;
            return offset + l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    text.len()
}

/// Length of the word (key or plain scalar) starting at `at`, to underline it whole.
fn token_len(text: &str, at: SourceLocation) -> Option<usize> {
    if !at.is_known() {
        return None;
    }
    let rest = text.get(at.offset..)?;
    let len = rest.find([':', ',', '}', ']', '\n', '#']).unwrap_or(rest.len());
    let len = rest[..len].trim_end().len();
    (len > 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_suggests_the_closest() {
        let text = "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata:\n  nam: x\n";
        let found = parse(text).unwrap_err();
        // `spec` is missing too; `name` is not reported missing beside its misspelling.
        assert_eq!(found.len(), 2, "{found:#?}");
        let finding = &found[1];
        assert_eq!(finding.rule, "unknown-field");
        assert_eq!(finding.location.unwrap().line, 4);
        assert!(finding.hint.contains("did you mean `name`"), "{}", finding.hint);
    }

    #[test]
    fn a_folder_may_hold_meshfleet_yaml_but_not_both_names() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_path(dir.path()).unwrap(), dir.path().join("fleet.yaml"));
        std::fs::write(dir.path().join("meshfleet.yaml"), "").unwrap();
        assert_eq!(
            resolve_path(dir.path()).unwrap(),
            dir.path().join("meshfleet.yaml")
        );
        std::fs::write(dir.path().join("fleet.yaml"), "").unwrap();
        let err = resolve_path(dir.path()).unwrap_err();
        assert!(matches!(err, LoadError::Ambiguous { .. }), "{err}");
        assert!(
            err.to_string().contains("both `fleet.yaml` and `meshfleet.yaml`"),
            "{err}"
        );
        // `.yml` counts too, alone or beside another name.
        let yml = tempfile::tempdir().unwrap();
        std::fs::write(yml.path().join("fleet.yml"), "").unwrap();
        assert_eq!(resolve_path(yml.path()).unwrap(), yml.path().join("fleet.yml"));
        std::fs::write(yml.path().join("fleet.yaml"), "").unwrap();
        let err = resolve_path(yml.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` holds both `fleet.yaml` and `fleet.yml`; meshfleet cannot tell which one is the fleet",
                yml.path().display()
            )
        );
        assert!(
            crate::diagnostic::Hint::hint(&err)
                .unwrap()
                .starts_with("keep one and remove the other")
        );
        // A file given by name is taken as it is.
        let file = dir.path().join("fleet.yaml");
        assert_eq!(resolve_path(&file).unwrap(), file);
    }

    /// (rule, line, column, message, hint) of the one finding of `text`.
    fn only_finding(text: &str) -> (String, u32, u32, String, String) {
        let found = parse(text).unwrap_err();
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        let at = f.location.unwrap_or_default();
        (
            f.rule.to_string(),
            at.line,
            at.column,
            f.message.clone(),
            f.hint.clone(),
        )
    }

    #[test]
    fn a_tab_is_reported_where_it_is() {
        let text = crate::fixtures::base_with(
            "      apiServer: https://pro.example:6443\n",
            "      apiServer: https://pro.example:6443\n\t  context: pro\n",
        );
        assert_eq!(
            only_finding(&text),
            (
                "yaml-syntax".into(),
                31,
                1,
                "a tab character where YAML expects indentation or a value".into(),
                "replace the tab with spaces: YAML indents with spaces only".into()
            )
        );
    }

    #[test]
    fn a_duplicate_key_is_said_in_meshfleet_words() {
        let text = crate::fixtures::base_with("    engine: flux\n", "    engine: flux\n    engine: argocd\n");
        let (rule, line, column, message, hint) = only_finding(&text);
        assert_eq!((rule.as_str(), line, column), ("duplicate-key", 10, 5));
        assert_eq!(
            message,
            "`spec.gitops` has the key `engine` twice: at line 9, column 5 and here"
        );
        assert!(
            !hint.contains("DuplicateKeyPolicy") && hint.starts_with("keep one `engine:`"),
            "{hint}"
        );
    }

    #[test]
    fn an_empty_file_says_so() {
        let (rule, line, _, message, _) = only_finding("# nothing yet\n\n");
        assert_eq!(
            (rule.as_str(), line, message.as_str()),
            ("yaml-syntax", 1, "the fleet file is empty")
        );
    }

    #[test]
    fn offsets_count_characters() {
        assert_eq!(offset_of("ab\ncd\n", 2, 2), 4);
    }
}

//! An edit meshfleet makes to a fleet file itself: the link credential state under
//! `spec.secrets.linkCredentials`, which `secrets sync --rotate` records so that every
//! change to a cluster's desired state stays a reviewed commit. (The trust anchor
//! rotation's `spec.identity.rotation` is written by `anchor_rotation::edit`, which
//! works from the parsed values' offsets and also handles flow style.)
//!
//! The edit is made on the text, not by serializing the model again: the user's
//! comments, key order, quoting and blank lines stay exactly as written, and only the
//! lines of the `linkCredentials` block change (it is added at the end of `secrets`,
//! or removed when nothing is left in it). Block-style YAML is required on the path
//! `spec` -> `secrets`; a flow-style mapping there is refused rather than rewritten.
//! The new text is parsed again and compared with the intended state (and the rest of
//! the fleet with the old one) before it is returned, so a wrong edit never reaches a
//! file.

use std::collections::BTreeMap;

use super::model::RotationPhase;

/// What `spec.secrets.linkCredentials` should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCredentialsState {
    /// Generation per link id (`<source>-to-<target>`); 0 is left out.
    pub generations: BTreeMap<String, u32>,
    /// The rotation in progress: its links and phase.
    pub rotation: Option<(Vec<String>, RotationPhase)>,
}

impl LinkCredentialsState {
    /// The state a parsed fleet records (generations that are not whole numbers are
    /// left out; validation reports them).
    pub fn of(fleet: &super::Fleet) -> Self {
        let Some(creds) = fleet
            .spec
            .secrets
            .as_ref()
            .and_then(|s| s.link_credentials.as_ref())
        else {
            return Self::default();
        };
        Self {
            generations: creds
                .value
                .generations
                .iter()
                .filter_map(|(id, n)| Some((id.clone(), u32::try_from(n.value).ok()?)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            rotation: creds.value.rotation.as_ref().map(|r| {
                (
                    r.value.links.iter().map(|l| l.value.clone()).collect(),
                    r.value.phase.value,
                )
            }),
        }
    }

    fn is_empty(&self) -> bool {
        self.generations.is_empty() && self.rotation.is_none()
    }

    /// The block's lines at indentation `indent`.
    fn block(&self, indent: usize) -> String {
        if self.is_empty() {
            return String::new();
        }
        let pad = |n: usize| " ".repeat(indent + n);
        let mut out = format!(
            "{}linkCredentials:  # written by `meshfleet secrets sync --rotate`\n",
            pad(0)
        );
        if !self.generations.is_empty() {
            out.push_str(&format!("{}generations:\n", pad(2)));
            for (id, n) in &self.generations {
                out.push_str(&format!("{}{id}: {n}\n", pad(4)));
            }
        }
        if let Some((links, phase)) = &self.rotation {
            out.push_str(&format!("{}rotation:\n", pad(2)));
            out.push_str(&format!("{}phase: {}\n", pad(4), phase.as_str()));
            out.push_str(&format!("{}links:\n", pad(4)));
            for link in links {
                out.push_str(&format!("{}- {link}\n", pad(6)));
            }
        }
        out
    }
}

/// Why the fleet file could not be edited; the file is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The path to the block is not block-style YAML.
    #[error("line {line}: `{key}` is not a block mapping, so meshfleet cannot record the rotation there")]
    NotBlock {
        /// 1-based line of the key.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// There is no `spec:`.
    #[error("the fleet file has no top-level `spec:`")]
    NoSpec,
    /// The edited text did not parse back to what was meant (a bug; nothing written).
    #[error("the edited fleet file would not read back as intended: {0}")]
    Mismatch(String),
}

impl crate::diagnostic::Hint for EditError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NotBlock { .. } => {
                "write `spec:` and `secrets:` as block mappings (`key:` on its own line, children indented below)".into()
            }
            Self::NoSpec => "run `meshfleet validate` first".into(),
            Self::Mismatch(_) => "record the state by hand as the message says, and report this".into(),
        })
    }
}

/// `text` with `spec.secrets.linkCredentials` set to `state`.
pub fn set_link_credentials(text: &str, state: &LinkCredentialsState) -> Result<String, EditError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let spec = find_key(&lines, 0..lines.len(), "spec").ok_or(EditError::NoSpec)?;
    let spec_body = block_body(&lines, spec, "spec")?;
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 8);
    let push_all = |out: &mut Vec<String>, range: std::ops::Range<usize>| {
        out.extend(lines[range].iter().map(|l| (*l).to_string()));
    };
    match find_key(&lines, spec_body.clone(), "secrets") {
        None => {
            // No `secrets:` yet: add one at the end of `spec`.
            let indent = child_indent(&lines, spec_body.clone()).unwrap_or(2);
            let at = trim_trailing_blank(&lines, spec_body);
            push_all(&mut out, 0..at);
            ensure_newline(&mut out);
            if !state.is_empty() {
                out.push(format!("{}secrets:\n", " ".repeat(indent)));
                out.push(state.block(indent + 2));
            }
            push_all(&mut out, at..lines.len());
        }
        Some(secrets) => {
            let body = block_body(&lines, secrets, "secrets")?;
            let indent = child_indent(&lines, body.clone()).unwrap_or(indent_of(lines[secrets]) + 2);
            // Replace the block where it is, or add it after the last line of `secrets`.
            let (from, to) = if let Some(existing) = find_key(&lines, body.clone(), "linkCredentials") {
                let end = block_end(&lines, existing);
                (existing, trim_trailing_blank(&lines, existing + 1..end))
            } else {
                let at = trim_trailing_blank(&lines, body);
                (at, at)
            };
            push_all(&mut out, 0..from);
            ensure_newline(&mut out);
            out.push(state.block(indent));
            push_all(&mut out, to..lines.len());
        }
    }
    let edited: String = out.concat();
    verify(text, &edited, state)?;
    Ok(edited)
}

/// The edited text parses, records `state`, and says everything else as before.
fn verify(before: &str, after: &str, state: &LinkCredentialsState) -> Result<(), EditError> {
    let mismatch = |what: &str| EditError::Mismatch(what.to_string());
    let old = super::parse(before).map_err(|_| mismatch("the fleet file did not parse before the edit"))?;
    let new = super::parse(after).map_err(|f| mismatch(&format!("it does not parse ({})", f.message)))?;
    if LinkCredentialsState::of(&new) != *state {
        return Err(mismatch("`linkCredentials` reads back differently"));
    }
    let without = |fleet: super::Fleet| {
        let mut value = serde_json::to_value(&fleet).unwrap_or_default();
        if let Some(secrets) = value.pointer_mut("/spec/secrets").and_then(|s| s.as_object_mut()) {
            secrets.remove("linkCredentials");
            secrets.retain(|_, v| !v.is_null());
            if secrets.is_empty() {
                value["spec"]["secrets"] = serde_json::Value::Null;
            }
        }
        value
    };
    if without(old) != without(new) {
        return Err(mismatch("another part of the fleet would change"));
    }
    Ok(())
}

/// Replace the fleet file at `path` with `text` atomically (a temporary file in the same
/// folder, renamed over it), keeping its permissions: a reader sees the old file or the
/// new one, never half of one.
pub fn write_fleet_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::metadata(path)?;
    crate::atomic::replace(path, text.as_bytes(), None)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Blank lines and comments carry no structure.
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The first line in `range` at the range's child indentation whose key is `key`.
fn find_key(lines: &[&str], range: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let indent = child_indent(lines, range.clone())?;
    range.into_iter().find(|&i| {
        let line = lines[i];
        is_content(line)
            && indent_of(line) == indent
            && line.trim_start().strip_prefix(key).is_some_and(|rest| {
                let rest = rest.trim_end();
                rest == ":" || rest.starts_with(": ") || rest.starts_with(":\t")
            })
    })
}

/// The indentation of the first content line of `range`.
fn child_indent(lines: &[&str], range: std::ops::Range<usize>) -> Option<usize> {
    range
        .into_iter()
        .map(|i| lines[i])
        .find(|l| is_content(l))
        .map(indent_of)
}

/// The lines of the block mapping under the key at `key_line`; the key must be block-style.
fn block_body(
    lines: &[&str],
    key_line: usize,
    key: &'static str,
) -> Result<std::ops::Range<usize>, EditError> {
    let line = lines[key_line];
    let after = line.trim_start()[key.len() + 1..].trim();
    if !(after.is_empty() || after.starts_with('#')) {
        return Err(EditError::NotBlock {
            line: key_line + 1,
            key,
        });
    }
    Ok(key_line + 1..block_end(lines, key_line))
}

/// The line after the block of the key at `key_line`: the next content line indented no
/// deeper than the key, or a document marker.
fn block_end(lines: &[&str], key_line: usize) -> usize {
    let indent = indent_of(lines[key_line]);
    (key_line + 1..lines.len())
        .find(|&i| {
            let l = lines[i];
            l.starts_with("---") || l.starts_with("...") || (is_content(l) && indent_of(l) <= indent)
        })
        .unwrap_or(lines.len())
}

/// `range.end`, moved back over blank lines and comments, so an insertion lands after
/// the block's last content line, before what separates it from the next.
fn trim_trailing_blank(lines: &[&str], range: std::ops::Range<usize>) -> usize {
    let mut end = range.end;
    while end > range.start && !is_content(lines[end - 1]) {
        end -= 1;
    }
    end
}

fn ensure_newline(out: &mut [String]) {
    if let Some(last) = out.last_mut()
        && !last.ends_with('\n')
    {
        last.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: &str = "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd   # keep\n";

    fn fleet() -> String {
        format!(
            "# my fleet\n{}",
            crate::fixtures::BASE.replace("      path: linkerd\n", "      path: linkerd   # keep\n")
        )
    }

    fn rotating(phase: RotationPhase, generation: u32) -> LinkCredentialsState {
        LinkCredentialsState {
            generations: [("studio-to-pro".to_string(), generation)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            rotation: Some((vec!["studio-to-pro".into()], phase)),
        }
    }

    #[test]
    fn the_block_is_added_replaced_and_removed_and_nothing_else_changes() {
        let fleet = fleet();
        let started = set_link_credentials(&fleet, &rotating(RotationPhase::Granting, 0)).unwrap();
        assert!(started.contains(
            "      path: linkerd   # keep\n    linkCredentials:  # written by `meshfleet secrets sync --rotate`\n      rotation:\n        phase: granting\n        links:\n          - studio-to-pro\n  clusters:\n"
        ));
        let retiring = set_link_credentials(&started, &rotating(RotationPhase::Retiring, 1)).unwrap();
        assert!(retiring.contains(
            "      generations:\n        studio-to-pro: 1\n      rotation:\n        phase: retiring\n"
        ));
        let done = LinkCredentialsState {
            generations: [("studio-to-pro".to_string(), 1)].into(),
            rotation: None,
        };
        let finished = set_link_credentials(&retiring, &done).unwrap();
        assert_eq!(LinkCredentialsState::of(&crate::parse(&finished).unwrap()), done);
        // Everything but the block is byte for byte as before.
        let cleared = set_link_credentials(&finished, &LinkCredentialsState::default()).unwrap();
        assert_eq!(cleared, fleet);
    }

    #[test]
    fn a_fleet_without_secrets_gets_them_and_flow_style_is_refused() {
        let no_secrets = fleet().replace(SECRETS, "");
        let edited = set_link_credentials(&no_secrets, &rotating(RotationPhase::Granting, 0)).unwrap();
        assert!(edited.ends_with("  secrets:\n    linkCredentials:  # written by `meshfleet secrets sync --rotate`\n      rotation:\n        phase: granting\n        links:\n          - studio-to-pro\n"));

        let flow = fleet().replace(
            SECRETS,
            "  secrets: {vault: {server: 'https://vault.example:8200', mount: secret, path: linkerd}}\n",
        );
        assert_eq!(
            set_link_credentials(&flow, &rotating(RotationPhase::Granting, 0)),
            Err(EditError::NotBlock {
                line: 15,
                key: "secrets"
            })
        );
    }
}

//! Writing `spec.identity.rotation` into the fleet file without touching anything else:
//! the user's comments, order and quoting stay as they are.
//!
//! The block is located through the parsed values' byte offsets. An existing block is
//! removed (whole lines in block style, `, rotation: {...}` in flow style) and the new
//! one inserted after the last field of `spec.identity`, in the style `identity` is
//! written in. The result is parsed again and must hold exactly the wanted state, or
//! nothing is written.

use super::AnchorRotation;
use meshfleet_fleet::Fleet;
use meshfleet_fleet::located::SourceLocation;

/// The fleet file could not be updated safely.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The fleet text does not parse (it was validated, so it changed meanwhile).
    #[error("the fleet file does not parse any more")]
    Unparsable,
    /// The edit did not give the wanted state (an unusual layout).
    #[error("cannot write `spec.identity.rotation` into this fleet file's layout")]
    Layout,
}

impl meshfleet_fleet::diagnostic::Hint for EditError {
    fn hint(&self) -> Option<String> {
        Some(
            "write `spec.identity` as a block mapping (one field per line) and run the command again; \
             nothing was written"
                .into(),
        )
    }
}

/// The fleet text with `spec.identity.rotation` set to `after` (removed when `None`).
pub fn set_rotation(text: &str, after: Option<&AnchorRotation>) -> Result<String, EditError> {
    let fleet = meshfleet_fleet::parse(text).map_err(|_| EditError::Unparsable)?;
    let mut out = match &fleet.spec.identity.rotation {
        Some(_) => remove(text, &fleet).ok_or(EditError::Layout)?,
        None => text.to_string(),
    };
    if let Some(rotation) = after {
        let fleet = meshfleet_fleet::parse(&out).map_err(|_| EditError::Layout)?;
        out = insert(&out, &fleet, rotation).ok_or(EditError::Layout)?;
    }
    // The result must parse and hold exactly `after`.
    let parsed = meshfleet_fleet::parse(&out).map_err(|_| EditError::Layout)?;
    let got = parsed.spec.identity.rotation.as_ref().map(|r| {
        (
            r.value.phase.value,
            super::normalise_fingerprint(&r.value.from.value),
            super::normalise_fingerprint(&r.value.to.value),
        )
    });
    let want = after.map(|r| (r.phase, Some(r.from.clone()), Some(r.to.clone())));
    if got != want {
        return Err(EditError::Layout);
    }
    Ok(out)
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

fn line_end(text: &str, offset: usize) -> usize {
    text[offset..].find('\n').map_or(text.len(), |i| offset + i + 1)
}

/// The last non-blank character before `offset`.
fn previous_char(text: &str, offset: usize) -> Option<(usize, char)> {
    text[..offset]
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_whitespace())
}

/// The offset of the key `key` written before the value at `value`.
fn key_before(text: &str, value: SourceLocation, key: &str) -> Option<usize> {
    text[..value.offset].rfind(key)
}

fn remove(text: &str, fleet: &Fleet) -> Option<String> {
    let r = &fleet.spec.identity.rotation.as_ref()?.value;
    let children = [r.phase.at, r.from.at, r.to.at];
    let first = children.iter().map(|a| a.offset).min()?;
    let last = children.iter().map(|a| a.offset + a.len).max()?;
    let key = text[..first].rfind("rotation")?;
    let flow = text[key..first].contains('{');
    if flow {
        let close = last + text[last..].find('}')? + 1;
        let (before, c) = previous_char(text, key)?;
        let (start, end) = match c {
            ',' => (before, close),
            '{' => {
                // `{rotation: {...}, other}`: also drop the comma after it.
                let rest = &text[close..];
                let skip = rest.len() - rest.trim_start().len();
                let end = if rest.trim_start().starts_with(',') {
                    close + skip + 1
                } else {
                    close
                };
                (key, end)
            }
            // Block identity, flow rotation: the whole line.
            _ => (line_start(text, key), line_end(text, close - 1)),
        };
        return Some(format!("{}{}", &text[..start], &text[end..]));
    }
    let start = line_start(text, key);
    let end = line_end(text, last.saturating_sub(1).max(first));
    Some(format!("{}{}", &text[..start], &text[end..]))
}

fn insert(text: &str, fleet: &Fleet, rotation: &AnchorRotation) -> Option<String> {
    let identity = &fleet.spec.identity;
    let anchor = identity.trust_anchor.at;
    let anchor_key = key_before(text, anchor, "trustAnchor")?;
    let mut last = anchor.offset + anchor.len;
    if let Some(issuer) = &identity.issuer {
        last = last.max(issuer.at.offset + issuer.at.len);
    }
    let (phase, from, to) = (rotation.phase.as_str(), &rotation.from, &rotation.to);
    match previous_char(text, anchor_key)?.1 {
        '{' | ',' => {
            let close = last + text[last..].find('}')?;
            let entry = format!(", rotation: {{phase: {phase}, from: \"{from}\", to: \"{to}\"}}");
            Some(format!("{}{entry}{}", &text[..close], &text[close..]))
        }
        _ => {
            let indent = " ".repeat(anchor_key - line_start(text, anchor_key));
            let at = line_end(text, last.saturating_sub(1).max(anchor.offset));
            let newline = if text[..at].ends_with('\n') { "" } else { "\n" };
            let block = format!(
                "{newline}{indent}rotation:   # written by `meshfleet trust rotate`; see `meshfleet trust rotate status`\n\
                 {indent}  phase: {phase}\n{indent}  from: \"{from}\"\n{indent}  to: \"{to}\"\n"
            );
            Some(format!("{}{block}{}", &text[..at], &text[at..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfleet_fleet::model::AnchorRotationPhase;

    fn rotation(phase: AnchorRotationPhase) -> AnchorRotation {
        let fp = |b: &str| std::iter::repeat_n(b, 32).collect::<Vec<_>>().join(":");
        AnchorRotation {
            phase,
            from: fp("aa"),
            to: fp("bb"),
        }
    }

    fn fleet_with(identity: &str) -> String {
        crate::fixtures::BASE.replace("  identity:\n    trustAnchor: anchor.crt\n", identity)
    }

    #[test]
    fn block_style_round_trips_and_keeps_comments() {
        let text = fleet_with(
            "  identity:\n    trustAnchor: anchor.crt   # the bundle\n    issuer: cert-manager\n  # after identity\n",
        );
        let started = set_rotation(&text, Some(&rotation(AnchorRotationPhase::Distribute))).unwrap();
        assert!(started.contains("# the bundle"), "{started}");
        assert!(started.contains("    rotation:"), "{started}");
        let moved = set_rotation(&started, Some(&rotation(AnchorRotationPhase::Issuers))).unwrap();
        assert!(moved.contains("phase: issuers"), "{moved}");
        assert_eq!(moved.matches("rotation:").count(), 1, "{moved}");
        assert_eq!(set_rotation(&moved, None).unwrap(), text);
    }

    #[test]
    fn flow_style_round_trips() {
        let text = fleet_with("  identity: {trustAnchor: anchor.crt, issuer: vault}\n");
        let started = set_rotation(&text, Some(&rotation(AnchorRotationPhase::Recertify))).unwrap();
        assert!(
            started.contains("issuer: vault, rotation: {phase: recertify"),
            "{started}"
        );
        assert_eq!(set_rotation(&started, None).unwrap(), text);
    }
}

//! Finding a mapping in the fleet text and replacing one of its entries, in block style
//! (lines and indentation) or flow style (`{a: 1, b: 2}`), without touching a byte
//! outside the entry.
//!
//! This reads just enough YAML structure to find keys: indentation, `key:`, brackets
//! and quotes. It does not need to be a YAML parser, because every edit is parsed again
//! and verified before it is accepted (see the parent module); what it must never do is
//! change text outside the entry it was asked to change.

use std::ops::Range;

use super::EditError;
use super::node::Entry;

/// A mapping of the document.
#[derive(Debug, Clone)]
pub(super) enum Mapping {
    /// Block style: the lines of its body, and the indentation of its own key (`None`
    /// for the document's top level).
    Block {
        body: Range<usize>,
        key_indent: Option<usize>,
    },
    /// Flow style: the byte offset of its `{`.
    Flow { open: usize },
}

/// The fleet text, split into lines (each with its `\n`).
pub(super) struct Text<'a> {
    text: &'a str,
    /// Byte offset of each line's start; one more entry for the end of the text.
    starts: Vec<usize>,
}

impl<'a> Text<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        if starts.last() != Some(&text.len()) {
            starts.push(text.len());
        }
        Self { text, starts }
    }

    fn lines(&self) -> usize {
        self.starts.len() - 1
    }

    fn line(&self, i: usize) -> &'a str {
        &self.text[self.starts[i]..self.starts[i + 1]]
    }

    /// The top level of the document.
    pub fn root(&self) -> Mapping {
        Mapping::Block {
            body: 0..self.lines(),
            key_indent: None,
        }
    }

    /// The mapping under `key` in `parent`: `Ok(None)` when `parent` has no such key.
    pub fn child(&self, parent: &Mapping, key: &str) -> Result<Option<Mapping>, EditError> {
        let not_mapping = |offset: usize| EditError::NotMapping {
            line: self.line_of(offset) + 1,
            key: key.to_string(),
        };
        match parent {
            Mapping::Block { body, .. } => {
                let Some(line) = self.find_block_key(body.clone(), key) else {
                    return Ok(None);
                };
                let text = self.line(line);
                let indent = indent_of(text);
                let value = strip_comment(&text[indent + key.len() + 1..]);
                let value_at = self.starts[line] + indent + key.len() + 1;
                match value.trim_start().chars().next() {
                    None => Ok(Some(Mapping::Block {
                        body: line + 1..self.block_end(line),
                        key_indent: Some(indent),
                    })),
                    Some('{') => Ok(Some(Mapping::Flow {
                        open: value_at + (value.len() - value.trim_start().len()),
                    })),
                    Some(_) => Err(not_mapping(value_at)),
                }
            }
            Mapping::Flow { open } => {
                let entries = self.flow_entries(*open)?.0;
                let Some(entry) = entries
                    .iter()
                    .find(|e| flow_key(&self.text[(*e).clone()]) == Some(key))
                else {
                    return Ok(None);
                };
                let value_at = entry.start + self.text[entry.clone()].find(':').unwrap_or(0) + 1;
                let rest = &self.text[value_at..entry.end];
                if rest.trim_start().starts_with('{') {
                    Ok(Some(Mapping::Flow {
                        open: value_at + (rest.len() - rest.trim_start().len()),
                    }))
                } else {
                    Err(not_mapping(value_at))
                }
            }
        }
    }

    /// The text with `key` in `parent` set to `entry` (added at the end of the mapping
    /// when new), or removed when `entry` is `None`.
    pub fn set(&self, parent: &Mapping, key: &str, entry: Option<&Entry>) -> Result<String, EditError> {
        let (range, new) = match parent {
            Mapping::Block { body, key_indent } => self.set_block(body.clone(), *key_indent, key, entry),
            Mapping::Flow { open } => self.set_flow(*open, key, entry)?,
        };
        Ok(format!(
            "{}{new}{}",
            &self.text[..range.start],
            &self.text[range.end..]
        ))
    }

    /// The byte range to replace and its replacement, in a block mapping.
    fn set_block(
        &self,
        body: Range<usize>,
        key_indent: Option<usize>,
        key: &str,
        entry: Option<&Entry>,
    ) -> (Range<usize>, String) {
        let (from, to, indent) = if let Some(line) = self.find_block_key(body.clone(), key) {
            let end = self.trim_trailing_blank(line + 1..self.block_end(line));
            (line, end, indent_of(self.line(line)))
        } else {
            let at = self.trim_trailing_blank(body.clone());
            let indent = self
                .child_indent(body)
                .unwrap_or_else(|| key_indent.map_or(0, |i| i + 2));
            (at, at, indent)
        };
        let mut new = entry.map(|e| e.block(indent)).unwrap_or_default();
        // A last line without its newline gets one before anything is added after it.
        if from > 0 && !new.is_empty() && !self.line(from - 1).ends_with('\n') {
            new.insert(0, '\n');
        }
        (self.starts[from]..self.starts[to], new)
    }

    /// The byte range to replace and its replacement, in a flow mapping.
    fn set_flow(
        &self,
        open: usize,
        key: &str,
        entry: Option<&Entry>,
    ) -> Result<(Range<usize>, String), EditError> {
        let (entries, _close) = self.flow_entries(open)?;
        let index = entries
            .iter()
            .position(|e| flow_key(&self.text[e.clone()]) == Some(key));
        let new = entry.map(Entry::flow);
        Ok(match (index, new) {
            (Some(i), Some(new)) => (entries[i].clone(), new),
            // Removed with the comma that separates it from its neighbour.
            (Some(i), None) if i > 0 => (entries[i - 1].end..entries[i].end, String::new()),
            (Some(i), None) => (
                entries[i].start..entries.get(i + 1).map_or(entries[i].end, |next| next.start),
                String::new(),
            ),
            (None, Some(new)) => match entries.last() {
                Some(last) => (last.end..last.end, format!(", {new}")),
                None => (open + 1..open + 1, new),
            },
            (None, None) => (open..open, String::new()),
        })
    }

    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }

    /// The first line in `range`, at the range's child indentation, whose key is `key`.
    fn find_block_key(&self, range: Range<usize>, key: &str) -> Option<usize> {
        let indent = self.child_indent(range.clone())?;
        range.into_iter().find(|&i| {
            let line = self.line(i);
            is_content(line)
                && indent_of(line) == indent
                && line.trim_start().strip_prefix(key).is_some_and(|rest| {
                    let rest = rest.trim_end();
                    rest == ":" || rest.starts_with(": ") || rest.starts_with(":\t")
                })
        })
    }

    /// The indentation of the first content line of `range`.
    fn child_indent(&self, range: Range<usize>) -> Option<usize> {
        range
            .into_iter()
            .map(|i| self.line(i))
            .find(|l| is_content(l))
            .map(indent_of)
    }

    /// The line after the block of the key at `key_line`: the next content line indented
    /// no deeper than the key, or a document marker.
    fn block_end(&self, key_line: usize) -> usize {
        let indent = indent_of(self.line(key_line));
        (key_line + 1..self.lines())
            .find(|&i| {
                let l = self.line(i);
                l.starts_with("---") || l.starts_with("...") || (is_content(l) && indent_of(l) <= indent)
            })
            .unwrap_or(self.lines())
    }

    /// `range.end`, moved back over blank lines and comments, so an insertion lands after
    /// the block's last content line, before what separates it from the next.
    fn trim_trailing_blank(&self, range: Range<usize>) -> usize {
        let mut end = range.end;
        while end > range.start && !is_content(self.line(end - 1)) {
            end -= 1;
        }
        end
    }

    /// The entries (byte ranges, trimmed) of the flow mapping or sequence opened at
    /// `open`, and the offset of its closing bracket.
    fn flow_entries(&self, open: usize) -> Result<(Vec<Range<usize>>, usize), EditError> {
        let bytes = self.text.as_bytes();
        let unbalanced = || EditError::NotMapping {
            line: self.line_of(open) + 1,
            key: "{".to_string(),
        };
        let mut entries = Vec::new();
        let mut depth = 0usize;
        let mut start = open + 1;
        let mut i = open + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => i = skip_quoted(bytes, i, b'"').ok_or_else(unbalanced)?,
                b'\'' => i = skip_quoted(bytes, i, b'\'').ok_or_else(unbalanced)?,
                b'#' if i > 0 && bytes[i - 1].is_ascii_whitespace() => {
                    i = self.text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b'}' | b']' => {
                    push_trimmed(self.text, start..i, &mut entries);
                    return Ok((entries, i));
                }
                b',' if depth == 0 => {
                    push_trimmed(self.text, start..i, &mut entries);
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        Err(unbalanced())
    }
}

/// The offset of the closing quote of the string opened at `open`.
fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 1,
            // `''` inside single quotes is an escaped quote.
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            b if b == quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn push_trimmed(text: &str, range: Range<usize>, out: &mut Vec<Range<usize>>) {
    let part = &text[range.clone()];
    let start = range.start + (part.len() - part.trim_start().len());
    let end = range.start + part.trim_end().len();
    if start < end {
        out.push(start..end);
    }
}

/// The key of a flow entry `key: value`, unquoted.
fn flow_key(entry: &str) -> Option<&str> {
    let (key, _) = entry.split_once(':')?;
    Some(key.trim().trim_matches(|c| c == '"' || c == '\''))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Blank lines and comments carry no structure.
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// A block line's value without its trailing comment.
fn strip_comment(value: &str) -> &str {
    let value = value.trim_end();
    if value.trim_start().starts_with('#') {
        return "";
    }
    match value.find(" #") {
        Some(i) if !value.trim_start().starts_with(['{', '"', '\'']) => &value[..i],
        _ => value,
    }
}

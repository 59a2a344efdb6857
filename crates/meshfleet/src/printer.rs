//! All user-facing output goes through here: data on stdout, messages on stderr,
//! lowercase messages with values in backticks, `hint:` lines, and colour only on a
//! terminal without `NO_COLOR` (never carrying meaning on its own).

use std::io::{IsTerminal as _, Write as _};

use meshfleet_core::diagnostic::{Finding, Severity};

/// Writes meshfleet's output.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    color_out: bool,
    color_err: bool,
}

// Every command takes the same printer; some methods do not read it yet.
#[allow(clippy::unused_self)]
impl Printer {
    /// A printer that colours only terminals, and never under `NO_COLOR`.
    pub fn new() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color_out: !no_color && std::io::stdout().is_terminal(),
            color_err: !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// Data to stdout (a newline is not added).
    pub fn data(self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// A status line to stderr.
    pub fn status(self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// An error with optional hint to stderr.
    pub fn error(self, message: &str, hint: Option<&str>) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}: {message}", self.paint_err("error", "1;31"));
        if let Some(hint) = hint {
            let _ = writeln!(err, "{}: {hint}", self.paint_err("hint", "1;36"));
        }
    }

    fn paint(on: bool, text: &str, code: &str) -> String {
        if on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// `text` in colour `code` if stderr is a colour terminal.
    pub fn paint_err(self, text: &str, code: &str) -> String {
        Self::paint(self.color_err, text, code)
    }

    /// `text` in colour `code` if stdout is a colour terminal.
    pub fn paint_out(self, text: &str, code: &str) -> String {
        Self::paint(self.color_out, text, code)
    }

    /// Format findings with source snippets, for stdout (`to_stdout`) or stderr.
    pub fn findings(self, path: &str, source: &str, findings: &[Finding], to_stdout: bool) -> String {
        let color = if to_stdout { self.color_out } else { self.color_err };
        let lines: Vec<&str> = source.lines().collect();
        let mut out = String::new();
        for f in findings {
            let (word, code) = match f.severity {
                Severity::Error => ("error", "1;31"),
                Severity::Warning => ("warning", "1;33"),
            };
            out.push_str(&format!(
                "{}[{}]: {}\n",
                Self::paint(color, word, code),
                f.rule,
                f.message
            ));
            if let Some(at) = f.location {
                let line_no = at.line as usize;
                let gutter = line_no.to_string().len();
                out.push_str(&format!("{:gutter$}--> {path}:{}:{}\n", "", at.line, at.column));
                if let Some(text) = lines.get(line_no.saturating_sub(1)) {
                    let col = (at.column as usize).saturating_sub(1);
                    let start = text.char_indices().nth(col).map_or(text.len(), |(b, _)| b);
                    let rest = &text[start..];
                    let mut end = at.len.min(rest.len());
                    while !rest.is_char_boundary(end) {
                        end -= 1;
                    }
                    let width = rest[..end].chars().count().max(1);
                    out.push_str(&format!("{:gutter$} |\n", ""));
                    out.push_str(&format!("{line_no} | {text}\n"));
                    out.push_str(&format!(
                        "{:gutter$} | {}{}\n",
                        "",
                        " ".repeat(col),
                        Self::paint(color, &"^".repeat(width), code)
                    ));
                }
            } else {
                out.push_str(&format!(" --> {path}\n"));
            }
            out.push_str(&format!("{}: {}\n\n", Self::paint(color, "hint", "1;36"), f.hint));
        }
        out
    }
}

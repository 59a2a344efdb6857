//! All user-facing output goes through here: data on stdout, messages on stderr,
//! lowercase messages with values in backticks, `Caused by:` and `hint:` lines, JSON
//! documents, and colour only on a terminal without `NO_COLOR` (never carrying meaning
//! on its own: every coloured word or mark is also there without colour).
//!
//! Command files say WHAT a piece of text is ([`Style`]); only this file knows how that
//! looks on a terminal. Errors reach [`Printer::report`] as values: the message, each
//! cause on its own `Caused by:` line, and the hint the error carries (see
//! [`crate::commands::CommandError`]).

use std::io::{IsTerminal as _, Write as _};

use meshfleet_core::diagnostic::{Finding, Severity};
use serde::Serialize;

use crate::cli::ColorChoice;
use crate::commands::CommandError;

/// Whether a stream gets colour: `--color always|never` decide alone; `auto` colours a
/// terminal, never under `NO_COLOR`, and any stream under `CLICOLOR_FORCE`.
fn colours(choice: ColorChoice, no_color: bool, force: bool, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && (force || terminal),
    }
}

/// What a piece of text is, for its colour on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A success mark or word (`✓`).
    Success,
    /// A warning mark or word (`‼`, `warning`).
    Warning,
    /// An error mark or word (`×`, `error`).
    Error,
    /// The word `hint`.
    Hint,
    /// A heading.
    Heading,
    /// Something that would change (a dry run's `+` and `~`).
    Pending,
}

impl Style {
    /// The SGR parameters of the style.
    fn sgr(self) -> &'static str {
        match self {
            Self::Success => "1;32",
            Self::Warning => "1;33",
            Self::Error => "1;31",
            Self::Hint => "1;36",
            Self::Heading => "1",
            Self::Pending => "33",
        }
    }
}

/// Writes meshfleet's output.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    color_out: bool,
    color_err: bool,
}

// Every command takes the same printer; some methods do not read it.
#[allow(clippy::unused_self)]
impl Printer {
    /// A printer that colours as `--color` says: with `auto`, a terminal unless
    /// `NO_COLOR` is set, and pipes too when `CLICOLOR_FORCE` is (as the tools that
    /// follow the `NO_COLOR` and `CLICOLOR` conventions do; `NO_COLOR` wins).
    pub fn new(choice: ColorChoice) -> Self {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let no_color = set("NO_COLOR").is_some();
        let force = set("CLICOLOR_FORCE").is_some_and(|v| v != "0");
        Self {
            color_out: colours(choice, no_color, force, std::io::stdout().is_terminal()),
            color_err: colours(choice, no_color, force, std::io::stderr().is_terminal()),
        }
    }

    /// Data to stdout (a newline is not added).
    pub fn data(self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// A JSON document to stdout, pretty, with a trailing newline.
    pub fn json<T: Serialize + ?Sized>(self, document: &T) -> Result<(), CommandError> {
        let mut text = serde_json::to_string_pretty(document).map_err(CommandError::unhinted)?;
        text.push('\n');
        self.data(&text);
        Ok(())
    }

    /// A status line to stderr.
    pub fn status(self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// An error with an optional hint, to stderr.
    pub fn error(self, message: &str, hint: Option<&str>) {
        self.labelled("error", Style::Error, message, &[], hint);
    }

    /// A warning with an optional hint, to stderr.
    pub fn warning(self, message: &str, hint: Option<&str>) {
        self.labelled("warning", Style::Warning, message, &[], hint);
    }

    /// An error that ended the command: its message, each cause on a `Caused by:`
    /// line, and the hint it carries.
    pub fn report(self, error: &CommandError) {
        let mut chain = error.chain();
        let message = chain.next().unwrap_or_default();
        let mut causes: Vec<String> = Vec::new();
        let mut previous = message.clone();
        for text in chain {
            // Some errors repeat their cause in their own message; say it once.
            if !previous.contains(&text) {
                causes.push(text.clone());
            }
            previous = text;
        }
        self.labelled("error", Style::Error, &message, &causes, error.hint().as_deref());
    }

    fn labelled(self, word: &str, style: Style, message: &str, causes: &[String], hint: Option<&str>) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}: {message}", self.err(style, word));
        for cause in causes {
            let _ = writeln!(err, "  Caused by: {cause}");
        }
        if let Some(hint) = hint {
            let _ = writeln!(err, "{}: {hint}", self.err(Style::Hint, "hint"));
        }
    }

    fn paint(on: bool, style: Style, text: &str) -> String {
        if on {
            format!("\x1b[{}m{text}\x1b[0m", style.sgr())
        } else {
            text.to_string()
        }
    }

    /// `text` in `style`, for stderr.
    pub fn err(self, style: Style, text: &str) -> String {
        Self::paint(self.color_err, style, text)
    }

    /// `text` in `style`, for stdout.
    pub fn out(self, style: Style, text: &str) -> String {
        Self::paint(self.color_out, style, text)
    }

    /// Format findings with source snippets, for stdout (`to_stdout`) or stderr.
    pub fn findings(self, path: &str, source: &str, findings: &[Finding], to_stdout: bool) -> String {
        let color = if to_stdout { self.color_out } else { self.color_err };
        let lines: Vec<&str> = source.lines().collect();
        let mut out = String::new();
        for f in findings {
            let (word, style) = match f.severity {
                Severity::Error => ("error", Style::Error),
                Severity::Warning => ("warning", Style::Warning),
            };
            out.push_str(&format!(
                "{}[{}]: {}\n",
                Self::paint(color, style, word),
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
                        Self::paint(color, style, &"^".repeat(width))
                    ));
                }
            } else {
                out.push_str(&format!(" --> {path}\n"));
            }
            out.push_str(&format!(
                "{}: {}\n\n",
                Self::paint(color, Style::Hint, "hint"),
                f.hint
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{ColorChoice, colours};

    #[test]
    fn color_flag_wins_then_no_color_then_clicolor_force_then_the_terminal() {
        // (choice, NO_COLOR, CLICOLOR_FORCE, terminal) -> colour
        let cases = [
            (ColorChoice::Always, true, false, false, true),
            (ColorChoice::Never, false, true, true, false),
            (ColorChoice::Auto, false, false, true, true),
            (ColorChoice::Auto, false, false, false, false),
            (ColorChoice::Auto, true, false, true, false),
            (ColorChoice::Auto, false, true, false, true),
            (ColorChoice::Auto, true, true, false, false),
        ];
        for (choice, no_color, force, terminal, want) in cases {
            assert_eq!(
                colours(choice, no_color, force, terminal),
                want,
                "{choice:?} NO_COLOR={no_color} CLICOLOR_FORCE={force} terminal={terminal}"
            );
        }
    }
}

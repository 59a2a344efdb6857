//! Findings: what `validate` (and the parser before it) says about a fleet file.
//!
//! A finding is data, not text: a stable rule id that scripts can match on, a severity,
//! the place in the file, a message and a hint with the fix. The binary decides how to
//! print it (text with a source snippet, or JSON).

use serde::Serialize;

use crate::located::SourceLocation;
use crate::rules::Rule;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The fleet cannot be rendered or would not work.
    Error,
    /// The fleet works but something needs attention soon.
    Warning,
}

/// One problem found in a fleet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule, by its stable id (`cidr-overlap`, `unknown-field`, ...).
    pub rule: Rule,
    /// Error or warning.
    pub severity: Severity,
    /// Where in the fleet file, when the problem is tied to a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceLocation>,
    /// What is wrong, lowercase, values in backticks.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Finding {
    /// An error at `at`.
    pub fn error(
        rule: Rule,
        at: SourceLocation,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            rule,
            severity: Severity::Error,
            location: at.is_known().then_some(at),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A warning at `at`.
    pub fn warning(
        rule: Rule,
        at: SourceLocation,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(rule, at, message, hint)
        }
    }

    /// Whether this finding blocks rendering.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// How to fix an error, carried by the error itself: the one way a hint travels from
/// the library to the `hint:` line the binary prints.
///
/// Every error type of the library implements it, and the binary takes an error that
/// ends a command only through it (`CommandError: From<E: Hint>`), so an error without
/// its impl does not compile where a command meets it. `None` when the message says it
/// all, or when whoever quotes the error (a finding, a check result) carries the fix. An
/// error that wraps another passes the inner one's hint on when it has none of its own.
pub trait Hint: std::error::Error {
    /// The fix, lowercase, commands and values in backticks.
    fn hint(&self) -> Option<String>;
}

/// An error and its causes in one line, `: `-separated, each cause once: for reports
/// that hold an error as text (a check's details, a sync entry, `-o json`). The top-level
/// messages of kube and reqwest ("client error (Connect)") do not say what failed; the
/// causes do ("connection refused").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

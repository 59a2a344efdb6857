//! The report of `import`: each finding a problem (the clusters disagree: exit 1, the
//! file marked) or a guess (a comment in the file), with the context and object it is about.

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The clusters disagree or could not be read: the file is marked, exit 1.
    Problem,
    /// A value import had to guess or leave out: a comment in the file.
    Guess,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportFinding {
    /// Problem or guess.
    pub severity: Severity,
    /// The context it is about, when one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The object it is about (`Link linkerd-multicluster/internal`), when one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What was found.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// The findings collected while composing.
pub(super) struct Report(pub(super) Vec<ImportFinding>);

impl Report {
    pub(super) fn add(
        &mut self,
        severity: Severity,
        context: Option<&str>,
        object: Option<String>,
        message: String,
        hint: &str,
    ) {
        self.0.push(ImportFinding {
            severity,
            context: context.map(str::to_string),
            object,
            message,
            hint: hint.to_string(),
        });
    }
}

//! The error that ends a command, and the hint that travels with it.
//!
//! Every error of the library implements [`Hint`], and a command's `?` turns an error
//! into a [`CommandError`] only through that trait: a new library error without its
//! `impl Hint` does not compile at the first command that meets it, instead of reaching
//! the user without a `hint:` line (the old way, a list of downcasts, forgot silently).
//! Errors of other crates (I/O, JSON) carry no hint and say so where they are met
//! ([`CommandError::unhinted`]); mistakes only a command can see are [`hinted`].

use std::fmt;

use meshfleet_core::diagnostic::Hint;

/// An error that ended a command: what the command was doing, the error with its
/// causes, and the hint the error carries.
///
/// Not an [`std::error::Error`] itself (like `anyhow::Error`), so that any error with a
/// [`Hint`] converts into it with `?`.
pub struct CommandError {
    /// What the command was doing, outermost first ("cannot plan the fleet").
    context: Vec<String>,
    /// The error, which knows its causes and its hint.
    error: Box<dyn Hint + Send + Sync>,
}

impl<E: Hint + Send + Sync + 'static> From<E> for CommandError {
    fn from(error: E) -> Self {
        Self {
            context: Vec::new(),
            error: Box::new(error),
        }
    }
}

impl CommandError {
    /// An error of another crate, which has no hint to give (an I/O error writing to a
    /// terminal, a runtime that cannot start).
    pub fn unhinted(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::from(Unhinted(Box::new(error)))
    }

    /// The message, then each cause, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = String> + '_ {
        let mut source = self.error.source();
        let causes = std::iter::from_fn(move || {
            let cause = source?;
            source = cause.source();
            Some(cause.to_string())
        });
        self.context
            .iter()
            .cloned()
            .chain(std::iter::once(self.error.to_string()))
            .chain(causes)
    }

    /// How to fix it: the error's own hint (an error that wraps another passes the inner
    /// one's on when it has none of its own).
    pub fn hint(&self) -> Option<String> {
        self.error.hint()
    }

    /// The same error, inside what the command was doing.
    #[must_use]
    pub fn context(mut self, what: impl Into<String>) -> Self {
        self.context.insert(0, what.into());
        self
    }
}

impl fmt::Debug for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.chain()).finish()
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain().next().unwrap_or_default())
    }
}

/// What the command was doing when a step failed, the way `anyhow::Context` says it.
pub trait Context<T> {
    /// Wrap the error in `what`.
    fn context(self, what: impl Into<String>) -> Result<T, CommandError>;
    /// Wrap the error in what `what` returns, built only on failure.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, CommandError>;
}

impl<T, E: Into<CommandError>> Context<T> for Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T, CommandError> {
        self.map_err(|e| e.into().context(what))
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, CommandError> {
        self.map_err(|e| e.into().context(what()))
    }
}

/// An error a command found itself, with its hint.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

impl Hint for Hinted {
    fn hint(&self) -> Option<String> {
        Some(self.hint.clone())
    }
}

/// Build a hinted error.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> CommandError {
    CommandError::from(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// An error of another crate, shown as it is, without a hint.
struct Unhinted(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Debug for Unhinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Unhinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Unhinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Hint for Unhinted {
    fn hint(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfleet_core::fleet::LoadError;

    #[test]
    fn context_comes_first_and_the_hint_travels() {
        let unreadable = LoadError::Unreadable {
            path: "fleet.yaml".into(),
            source: std::io::Error::other("permission denied"),
        };
        let hint = unreadable.hint();
        let error = CommandError::from(unreadable).context("cannot load the fleet");
        assert_eq!(
            error.chain().collect::<Vec<_>>(),
            [
                "cannot load the fleet",
                "cannot read `fleet.yaml`",
                "permission denied"
            ]
        );
        assert!(hint.is_some());
        assert_eq!(error.hint(), hint);
    }

    #[test]
    fn other_crates_errors_have_no_hint() {
        let error = CommandError::unhinted(std::io::Error::other("disk full"));
        assert_eq!(error.to_string(), "disk full");
        assert_eq!(error.hint(), None);
    }
}

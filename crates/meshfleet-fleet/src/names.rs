//! Kubernetes naming rules (DNS-1123 labels and subdomains, label keys and values),
//! checked offline so that `validate` catches a name the API server would refuse.

/// Why a name breaks a Kubernetes naming rule. The message is a predicate ("is empty",
/// "must start and end with a letter or digit"): callers put the name before it, as in
/// "cluster name `Studio` may only hold lowercase letters, digits and `-`".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing at all.
    #[error("is empty")]
    Empty,
    /// Longer than the rule allows.
    #[error("is {length} characters long; the limit is {limit}")]
    TooLong {
        /// The name's length in bytes.
        length: usize,
        /// The rule's limit (63 for a label, 253 for a subdomain).
        limit: usize,
    },
    /// A DNS-1123 label with a character other than `a-z0-9-`.
    #[error("may only hold lowercase letters, digits and `-`")]
    LabelCharacters,
    /// A qualified name (label key name or value) with a character other than
    /// `A-Za-z0-9-_.`.
    #[error("may only hold letters, digits, `-`, `_` and `.`")]
    QualifiedCharacters,
    /// A qualified name that is empty or longer than 63.
    #[error("must be 1-63 characters")]
    QualifiedLength,
    /// Starts or ends with something other than a letter or digit.
    #[error("must start and end with a letter or digit")]
    Edges,
    /// A label key whose `prefix/` is not a DNS-1123 subdomain.
    #[error("has a prefix that {0}")]
    Prefix(#[source] Box<NameError>),
}

impl crate::diagnostic::Hint for NameError {
    fn hint(&self) -> Option<String> {
        // The `invalid-name` finding that quotes the name says how to write it.
        None
    }
}

/// A DNS-1123 label: 1-63 of `a-z0-9-`, starting and ending alphanumeric.
pub fn dns1123_label(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 63 {
        return Err(NameError::TooLong {
            length: name.len(),
            limit: 63,
        });
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(NameError::LabelCharacters);
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::Edges);
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(name: &str) -> Result<(), NameError> {
    if name.len() > 253 {
        return Err(NameError::TooLong {
            length: name.len(),
            limit: 253,
        });
    }
    name.split('.').try_for_each(dns1123_label)
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name a qualified name.
pub fn label_key(key: &str) -> Result<(), NameError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|why| NameError::Prefix(Box::new(why)))?;
    }
    qualified_name(name)
}

/// A label value: empty, or up to 63 of `A-Za-z0-9-_.` starting and ending alphanumeric.
pub fn label_value(value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Ok(());
    }
    qualified_name(value)
}

fn qualified_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 63 {
        return Err(NameError::QualifiedLength);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(NameError::QualifiedCharacters);
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(NameError::Edges);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(dns1123_label("in-cluster-local").is_ok());
        assert!(dns1123_label("Studio").is_err());
        assert!(dns1123_label("-a").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("cluster.local").is_ok());
        assert!(label_key("mirror.linkerd.io/exported").is_ok());
        assert!(label_key("bad key").is_err());
        assert_eq!(
            label_key("Bad_Prefix/x").unwrap_err().to_string(),
            "has a prefix that may only hold lowercase letters, digits and `-`"
        );
    }
}

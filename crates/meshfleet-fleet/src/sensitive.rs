//! Parse errors of inputs that hold secrets: where and what kind, never the text.
//!
//! A kubeconfig, the kubeconfig inside a link's credentials Secret, a Vault value and a
//! private key file all carry tokens or keys. The parsers meshfleet uses are made for
//! configuration files, so their errors help by quoting the source: serde-saphyr prints
//! the lines around a YAML mistake, serde's "invalid type" messages repeat the value,
//! PEM parsers repeat a broken header line. Any of those can be the token itself.
//!
//! So an error about such an input is rebuilt here from the parser's error VARIANT,
//! never from its message: [`YamlError`] keeps the line, the column and a
//! [`YamlMistake`]; [`PemMistake`] names what is wrong with a PEM file. Names that come
//! from meshfleet's own types (a missing field, the fields allowed) are kept, because
//! they are not the user's text. The caller adds WHERE the text came from (the file,
//! or the cluster, namespace, Secret and key), so the message still points at the fix.
//!
//! These types hold no text of the input, so they are safe as `#[source]` of any
//! error and in every output: text, `-o json` and logs.

use std::fmt;

/// What kind of YAML mistake, without the text that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlMistake {
    /// Not YAML at all: indentation, quotes, brackets.
    Syntax,
    /// The text ends in the middle of a value.
    UnexpectedEnd,
    /// A value of another type than the field takes (a list where a string belongs).
    WrongType {
        /// What the field takes, as meshfleet's or kube's types describe it.
        expected: String,
    },
    /// A value of the right type that the field does not accept.
    InvalidValue {
        /// What the field takes.
        expected: String,
    },
    /// A field the format does not have (the field's name is not repeated: it is the
    /// user's text).
    UnknownField {
        /// The fields allowed there.
        allowed: Vec<&'static str>,
    },
    /// A value that is not one of the allowed words.
    UnknownVariant {
        /// The words allowed there.
        allowed: Vec<&'static str>,
    },
    /// A required field is missing.
    MissingField(&'static str),
    /// The same key twice in one mapping.
    DuplicateKey,
    /// Several YAML documents where one is expected.
    MultipleDocuments,
    /// The input is not UTF-8.
    NotUtf8,
    /// Anything else the parser refused (aliases, tags, limits).
    Other,
}

impl fmt::Display for YamlMistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Syntax => f.write_str("not valid YAML (check indentation, quotes and brackets)"),
            Self::UnexpectedEnd => f.write_str("the text ends in the middle of a value"),
            Self::WrongType { expected } => write!(f, "a value of the wrong type (expected {expected})"),
            Self::InvalidValue { expected } => write!(f, "a value that is not allowed (expected {expected})"),
            Self::UnknownField { allowed } if allowed.is_empty() => f.write_str("an unknown field"),
            Self::UnknownField { allowed } => {
                write!(f, "an unknown field (allowed: {})", list(allowed))
            }
            Self::UnknownVariant { allowed } => {
                write!(f, "a value that is not one of {}", list(allowed))
            }
            Self::MissingField(field) => write!(f, "the field `{field}` is missing"),
            Self::DuplicateKey => f.write_str("a key that appears twice in one mapping"),
            Self::MultipleDocuments => f.write_str("several YAML documents where one is expected"),
            Self::NotUtf8 => f.write_str("text that is not UTF-8"),
            Self::Other => f.write_str("YAML that cannot be read"),
        }
    }
}

/// A 1-based line and column in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
}

/// A YAML parse error of a sensitive input: where and what kind, never the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct YamlError {
    /// Where the mistake is, when the parser knew.
    pub position: Option<Position>,
    /// What kind of mistake.
    pub mistake: YamlMistake,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.position {
            write!(f, "line {}, column {}: ", at.line, at.column)?;
        }
        write!(f, "{}", self.mistake)
    }
}

impl crate::diagnostic::Hint for YamlError {
    fn hint(&self) -> Option<String> {
        // Whoever read the file names it and says what it should hold.
        None
    }
}

impl YamlError {
    /// Rebuild a serde-saphyr error from its variant, dropping every piece of text
    /// that came from the input (snippets, values, keys, free-form messages).
    pub fn from_saphyr(error: &serde_saphyr::Error) -> Self {
        use serde_saphyr::Error as E;
        let error = error.without_snippet();
        let position = error.location().filter(|l| l.line() > 0).map(|l| Position {
            line: l.line(),
            column: l.column(),
        });
        let mistake = match error {
            // An alias error keeps the original; its kind is what matters.
            #[allow(deprecated)]
            E::AliasError { error, .. } => return Self::from_saphyr(error).or_position(position),
            E::Eof { .. } => YamlMistake::UnexpectedEnd,
            E::ExternalMessage { .. }
            | E::UnexpectedSequenceEnd { .. }
            | E::UnexpectedMappingEnd { .. }
            | E::ContainerEndMismatch { .. }
            | E::UnexpectedContainerEndWhileReadingKeyNode { .. }
            | E::UnexpectedContainerEndWhileSkippingNode { .. }
            | E::FoldedBlockScalarMustIndentContent { .. }
            | E::IndentationError { .. } => YamlMistake::Syntax,
            E::Unexpected { expected, .. } => YamlMistake::WrongType {
                expected: (*expected).to_string(),
            },
            E::InvalidScalar { ty, .. } => YamlMistake::WrongType {
                expected: (*ty).to_string(),
            },
            // `expected` comes from the visitor of the target type; `unexpected` is the
            // user's value and is dropped.
            E::SerdeInvalidType { expected, .. } => YamlMistake::WrongType {
                expected: expected.clone(),
            },
            E::SerdeInvalidValue { expected, .. } | E::SerdeInvalidLength { expected, .. } => {
                YamlMistake::InvalidValue {
                    expected: expected.clone(),
                }
            }
            E::NullIntoString { .. } => YamlMistake::WrongType {
                expected: "a string".into(),
            },
            E::InvalidBooleanStrict { .. } => YamlMistake::WrongType {
                expected: "`true` or `false`".into(),
            },
            E::SerdeUnknownField { expected, .. } => YamlMistake::UnknownField {
                allowed: expected.clone(),
            },
            E::SerdeUnknownVariant { expected, .. } => YamlMistake::UnknownVariant {
                allowed: expected.clone(),
            },
            E::SerdeMissingField { field, .. } => YamlMistake::MissingField(field),
            E::DuplicateMappingKey { .. } => YamlMistake::DuplicateKey,
            E::MultipleDocuments { .. } => YamlMistake::MultipleDocuments,
            E::InvalidUtf8Input | E::BinaryNotUtf8 { .. } => YamlMistake::NotUtf8,
            // `Message` and the rest carry free-form text that may repeat the value.
            _ => YamlMistake::Other,
        };
        Self { position, mistake }
    }

    fn or_position(mut self, position: Option<Position>) -> Self {
        self.position = self.position.or(position);
        self
    }
}

/// What is wrong with a PEM file that holds (or should hold) a key or certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PemMistake {
    /// No `-----BEGIN ...-----` block at all.
    #[error("it holds no PEM block")]
    NoBlock,
    /// A block whose base64 body does not decode.
    #[error("the body of a PEM block is not valid base64")]
    Base64,
    /// A block without its END line, or with mismatched BEGIN and END lines.
    #[error("a PEM block is not closed by its matching `-----END ...-----` line")]
    Framing,
    /// A block with a malformed header line.
    #[error("a PEM block has a malformed header line")]
    Header,
    /// The PEM decodes, but not to a private key meshfleet can use.
    #[error("it is not a PKCS#8 private key of a type meshfleet can use (ECDSA P-256, RSA)")]
    NotAKey,
    /// The PEM decodes, but not to a certificate.
    #[error("it is not an X.509 certificate")]
    NotACertificate,
    /// The text is not UTF-8.
    #[error("it is not UTF-8 text")]
    NotUtf8,
}

impl crate::diagnostic::Hint for PemMistake {
    fn hint(&self) -> Option<String> {
        // Whoever read the file names it and says which file it should be.
        None
    }
}

impl PemMistake {
    /// The kind of an rcgen error met while reading a key or certificate PEM. rcgen's
    /// PEM errors repeat header lines of the input, so only the variant is kept.
    pub fn from_rcgen(error: &rcgen::Error) -> Self {
        match error {
            rcgen::Error::PemError(text) => {
                // The text is the `pem` crate's Display; only its fixed prefixes are read.
                if text.starts_with("invalid data") {
                    Self::Base64
                } else if text.starts_with("invalid header") {
                    Self::Header
                } else if text.starts_with("missing BEGIN") || text.starts_with("missing data") {
                    Self::NoBlock
                } else if text.starts_with("invalid utf-8") {
                    Self::NotUtf8
                } else {
                    Self::Framing
                }
            }
            rcgen::Error::CouldNotParseCertificate | rcgen::Error::CouldNotParseCertificationRequest => {
                Self::NotACertificate
            }
            _ => Self::NotAKey,
        }
    }

    /// The kind of an x509-parser PEM error.
    pub fn from_x509(error: &x509_parser::error::PEMError) -> Self {
        use x509_parser::error::PEMError;
        match error {
            PEMError::Base64DecodeError => Self::Base64,
            PEMError::IncompletePEM => Self::Framing,
            PEMError::InvalidHeader => Self::Header,
            PEMError::MissingHeader | PEMError::IOError(_) => Self::NoBlock,
        }
    }
}

/// `url` with any `user:password@` part replaced by `***@`: a server address from a
/// kubeconfig may carry credentials.
pub fn url_without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "sentinel-c2VjcmV0";

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct User {
        name: String,
        port: u16,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Token,
    }

    fn parse(text: &str) -> YamlError {
        let error = serde_saphyr::from_str::<User>(text).unwrap_err();
        assert!(
            error.to_string().contains(SENTINEL),
            "the test input must make the parser quote it: {error}"
        );
        YamlError::from_saphyr(&error)
    }

    #[test]
    fn yaml_errors_keep_position_and_kind_but_not_the_text() {
        let cases = [
            (format!("name: \"{SENTINEL}\nport: 1\n"), YamlMistake::Syntax),
            (
                format!("name: a\nport: {SENTINEL}\n"),
                YamlMistake::WrongType {
                    expected: String::new(),
                },
            ),
            (
                format!("name: a\nport: 1\n{SENTINEL}: x\n"),
                YamlMistake::UnknownField {
                    allowed: vec!["name", "port", "mode"],
                },
            ),
            (
                format!("name: a\nport: 1\nmode: {SENTINEL}\n"),
                YamlMistake::UnknownVariant {
                    allowed: vec!["token"],
                },
            ),
        ];
        for (text, want) in cases {
            let error = parse(&text);
            let shown = error.to_string();
            assert!(!shown.contains(SENTINEL), "{shown}");
            assert!(error.position.is_some(), "{shown}");
            assert_eq!(
                std::mem::discriminant(&error.mistake),
                std::mem::discriminant(&want),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = YamlError::from_saphyr(&serde_saphyr::from_str::<User>("name: a\n").unwrap_err());
        assert_eq!(error.mistake, YamlMistake::MissingField("port"));
    }

    #[test]
    fn key_pem_errors_do_not_repeat_header_lines() {
        let text = format!(
            "-----BEGIN PRIVATE KEY-----\nProc-Type: {SENTINEL}\n\nMIGH\n-----END PRIVATE KEY-----\n"
        );
        let error = rcgen::KeyPair::from_pem(&text).unwrap_err();
        let mistake = PemMistake::from_rcgen(&error);
        assert!(!mistake.to_string().contains(SENTINEL));
        let junk = rcgen::KeyPair::from_pem(SENTINEL).unwrap_err();
        assert!(
            !PemMistake::from_rcgen(&junk).to_string().contains(SENTINEL),
            "{junk}"
        );
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            url_without_credentials(&format!("https://admin:{SENTINEL}@pro.example:6443/x")),
            "https://***@pro.example:6443/x"
        );
        assert_eq!(
            url_without_credentials("https://pro.example:6443"),
            "https://pro.example:6443"
        );
    }
}

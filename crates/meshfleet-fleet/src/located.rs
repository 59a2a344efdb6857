//! `Located<T>`: a value from the fleet file together with where it was written.
//!
//! serde-saphyr's `Spanned<T>` carries the location while parsing; this wrapper keeps
//! the part meshfleet needs (line, column and byte range) in a plain `Copy` struct and
//! implements `JsonSchema` by delegating to `T`, so the fleet model can derive its JSON
//! Schema without a `#[schemars(with = ...)]` on every field.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a value stands in the fleet file: 1-based line and column, plus the byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SourceLocation {
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column in characters; 0 when unknown.
    pub column: u32,
    /// Byte offset of the value's first character.
    pub offset: usize,
    /// Length of the value in bytes (at least 1 when known).
    pub len: usize,
}

impl SourceLocation {
    /// Whether the parser knew where the value came from.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }

    /// This location if known, else `other`.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        if self.is_known() { self } else { other }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value of the fleet file with its [`SourceLocation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The parsed value.
    pub value: T,
    /// Where it was written.
    pub at: SourceLocation,
}

impl<T> Located<T> {
    /// A value that did not come from a file (defaults, generated links).
    pub fn synthetic(value: T, at: SourceLocation) -> Self {
        Self { value, at }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        let loc = spanned.referenced;
        let span = loc.span();
        let at = SourceLocation {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            offset: span
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or(0),
            len: span
                .byte_len()
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(1)
                .max(1),
        };
        Ok(Self {
            value: spanned.value,
            at,
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

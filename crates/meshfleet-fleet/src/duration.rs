//! Go durations (`3s`, `1m30s`, `250ms`), the format Linkerd's Link CRD and controller
//! parse. Written here because the fleet's probe period must be checked with Go's rules
//! exactly: a bare `3` is rejected by the v1alpha2/3 schema and stops the probe worker.

/// A probe period: a Go duration of whole seconds, at least one. Parsed once, by
/// validation; the text is kept as written because the Link's `probeSpec.period` repeats
/// it, and the seconds are what the chart's `gateway.probe.seconds` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePeriod {
    written: String,
    seconds: u32,
}

/// Why a text is not a [`ProbePeriod`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbePeriodError {
    /// Not a Go duration; the reason names the text.
    #[error(transparent)]
    NotADuration(#[from] DurationError),
    /// A Go duration, but not a whole number of seconds of at least one.
    #[error("`{text}` is not a whole number of seconds (at least 1s)")]
    NotWholeSeconds {
        /// The text as written.
        text: String,
    },
}

impl crate::diagnostic::Hint for ProbePeriodError {
    fn hint(&self) -> Option<String> {
        // The `probe-period` finding that quotes it says how to write a period.
        None
    }
}

/// Why a text is not a Go duration. Each message names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing after the sign.
    #[error("`{text}` is empty")]
    Empty {
        /// The text as written.
        text: String,
    },
    /// A number that does not parse, or a unit without a number.
    #[error("`{text}` is not a Go duration")]
    Malformed {
        /// The text as written.
        text: String,
    },
    /// A number without a unit (`3`), which Go refuses.
    #[error("`{text}` has a number without a unit (write `{text}s` for seconds)")]
    NoUnit {
        /// The text as written.
        text: String,
    },
    /// A unit Go does not know (`3d`).
    #[error("`{text}` has an unknown unit `{unit}` (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The text as written.
        text: String,
        /// The unit.
        unit: String,
    },
    /// More than Go's `time.Duration` holds (about 292 years).
    #[error("`{text}` is longer than Go's largest duration")]
    TooLong {
        /// The text as written.
        text: String,
    },
}

impl crate::diagnostic::Hint for DurationError {
    fn hint(&self) -> Option<String> {
        // The finding that quotes it says how to write the field.
        None
    }
}

impl ProbePeriod {
    /// Parse `text` with Go's rules and require whole seconds (at least 1s).
    pub fn parse(text: &str) -> Result<Self, ProbePeriodError> {
        let not_whole = || ProbePeriodError::NotWholeSeconds {
            text: text.to_string(),
        };
        let nanos = parse_go_duration(text)?;
        if nanos < 1_000_000_000 || nanos % 1_000_000_000 != 0 {
            return Err(not_whole());
        }
        let seconds = u32::try_from(nanos / 1_000_000_000).map_err(|_| not_whole())?;
        Ok(Self {
            written: text.to_string(),
            seconds,
        })
    }

    /// As written in the fleet file (`3s`, `1m`).
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// In whole seconds.
    pub fn seconds(&self) -> u32 {
        self.seconds
    }
}

impl std::fmt::Display for ProbePeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written)
    }
}

/// Parse a Go duration into nanoseconds (Go's `time.ParseDuration` rules).
pub fn parse_go_duration(text: &str) -> Result<i128, DurationError> {
    let text_of = || text.to_string();
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty { text: text_of() });
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Malformed { text: text_of() });
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(DurationError::NoUnit { text: text_of() }),
            other => {
                return Err(DurationError::UnknownUnit {
                    text: text_of(),
                    unit: other.to_string(),
                });
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| DurationError::Malformed { text: text_of() })?;
        total += value * scale;
    }
    if total > 9.2e18 {
        return Err(DurationError::TooLong { text: text_of() });
    }
    #[allow(clippy::cast_possible_truncation)]
    let nanos = total.round() as i128;
    Ok(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn go_rules() {
        assert_eq!(parse_go_duration("3s"), Ok(3_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(
            parse_go_duration("3").unwrap_err().to_string(),
            "`3` has a number without a unit (write `3s` for seconds)"
        );
        assert!(parse_go_duration("3 s").is_err());
        assert!(parse_go_duration("3d").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
    }

    #[test]
    fn probe_periods_are_whole_seconds() {
        use super::{ProbePeriod, ProbePeriodError};
        let period = ProbePeriod::parse("1m").unwrap();
        assert_eq!((period.as_str(), period.seconds()), ("1m", 60));
        assert_eq!(
            ProbePeriod::parse("1500ms"),
            Err(ProbePeriodError::NotWholeSeconds {
                text: "1500ms".into()
            })
        );
        assert!(matches!(
            ProbePeriod::parse("0s"),
            Err(ProbePeriodError::NotWholeSeconds { .. })
        ));
        assert!(matches!(
            ProbePeriod::parse("3"),
            Err(ProbePeriodError::NotADuration(_))
        ));
    }
}

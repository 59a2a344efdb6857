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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePeriodError {
    /// Not a Go duration; the reason names the text.
    NotADuration(String),
    /// A Go duration, but not a whole number of seconds of at least one.
    NotWholeSeconds,
}

impl ProbePeriod {
    /// Parse `text` with Go's rules and require whole seconds (at least 1s).
    pub fn parse(text: &str) -> Result<Self, ProbePeriodError> {
        let nanos = parse_go_duration(text).map_err(ProbePeriodError::NotADuration)?;
        if nanos < 1_000_000_000 || nanos % 1_000_000_000 != 0 {
            return Err(ProbePeriodError::NotWholeSeconds);
        }
        let seconds = u32::try_from(nanos / 1_000_000_000).map_err(|_| ProbePeriodError::NotWholeSeconds)?;
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
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("`{text}` is empty"));
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(format!("`{text}` is not a Go duration"));
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
            "" => {
                return Err(format!(
                    "`{text}` has a number without a unit (write `{text}s` for seconds)"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}` (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a Go duration"))?;
        total += value * scale;
    }
    if total > 9.2e18 {
        return Err(format!("`{text}` is longer than Go's largest duration"));
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
        assert!(parse_go_duration("3").is_err());
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
            Err(ProbePeriodError::NotWholeSeconds)
        );
        assert_eq!(ProbePeriod::parse("0s"), Err(ProbePeriodError::NotWholeSeconds));
        assert!(matches!(
            ProbePeriod::parse("3"),
            Err(ProbePeriodError::NotADuration(_))
        ));
    }
}

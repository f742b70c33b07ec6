//! Go-style duration strings (`30s`, `1m30s`, `500ms`, `1.5h`) as Flagger and Kubernetes users write
//! them. Pure parsing; no clock.

use std::time::Duration;

/// Why a duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("is empty; write a duration such as 30s, 1m or 1m30s")]
    Empty,
    /// A number had no unit after it.
    #[error("'{0}' has a number without a unit; units are ns, us, ms, s, m, h")]
    MissingUnit(String),
    /// A unit is not one of Go's.
    #[error("'{0}' has unknown unit '{1}'; units are ns, us, ms, s, m, h")]
    UnknownUnit(String, String),
    /// A character that is neither a digit, a dot nor a unit.
    #[error("'{0}' is not a duration; write one such as 30s, 1m or 1m30s")]
    Malformed(String),
    /// The value does not fit.
    #[error("'{0}' is too long")]
    Overflow(String),
}

/// Parses a Go duration string. Negative durations are rejected: no Serin field means "in the past".
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(DurationError::Malformed(s.to_string()));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| DurationError::Malformed(s.to_string()))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(s.to_string()));
        }
        let unit = &rest[..unit_len];
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(DurationError::UnknownUnit(s.to_string(), unit.to_string())),
        };
        rest = &rest[unit_len..];
        let nanos = number * nanos_per_unit;
        if !nanos.is_finite() || nanos > u64::MAX as f64 {
            return Err(DurationError::Overflow(s.to_string()));
        }
        total_nanos += nanos.round() as u128;
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| DurationError::Overflow(s.to_string()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way Prometheus range selectors want it (whole seconds, at least 1s).
pub fn to_prometheus_range(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::MissingUnit("10".into()))
        );
        assert_eq!(
            parse_duration("10d"),
            Err(DurationError::UnknownUnit("10d".into(), "d".into()))
        );
        assert_eq!(
            parse_duration("-1s"),
            Err(DurationError::Malformed("-1s".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::Malformed("s".into()))
        );
    }

    #[test]
    fn prometheus_range_uses_the_largest_whole_unit() {
        assert_eq!(to_prometheus_range(Duration::from_secs(60)), "1m");
        assert_eq!(to_prometheus_range(Duration::from_secs(90)), "90s");
        assert_eq!(to_prometheus_range(Duration::from_secs(7200)), "2h");
        assert_eq!(to_prometheus_range(Duration::from_millis(10)), "1s");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn round_trips_whole_seconds(secs in 0u64..1_000_000) {
            prop_assert_eq!(parse_duration(&format!("{secs}s")), Ok(Duration::from_secs(secs)));
        }
    }
}

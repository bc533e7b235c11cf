//! RFC 3339 times for Corridor's own records (API answers, the audit trail, the
//! command line): microseconds since the Unix epoch in UTC, and `--since`-style
//! input that takes a full time or a date.

/// Microseconds since the Unix epoch as RFC 3339 in UTC
/// (`2026-01-31T08:00:00.123456Z`; the fraction only as long as needed).
pub fn format_micros(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| micros.to_string())
}

/// An RFC 3339 time (`2026-01-31T08:00:00Z`) or a date (`2026-01-31`, midnight
/// UTC) as microseconds since the Unix epoch.
pub fn parse_time_or_date(text: &str) -> Result<i64, String> {
    if let Ok(time) = text.parse::<jiff::Timestamp>() {
        return Ok(time.as_microsecond());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        if let Ok(time) = date.to_zoned(jiff::tz::TimeZone::UTC) {
            return Ok(time.timestamp().as_microsecond());
        }
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2026-01-31T08:00:00Z) or a date (2026-01-31)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates_read_and_write() {
        assert_eq!(parse_time_or_date("1970-01-02"), Ok(86_400_000_000));
        assert_eq!(parse_time_or_date("1970-01-01T00:00:01Z"), Ok(1_000_000));
        assert!(parse_time_or_date("yesterday").is_err());
        assert_eq!(format_micros(1_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(format_micros(1_500_000), "1970-01-01T00:00:01.5Z");
    }
}

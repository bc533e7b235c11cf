//! FHIR (ISO 8601 / RFC 3339) date, dateTime and instant text: as ranges of UTC
//! seconds for date search, and Unix microseconds as an instant.
//!
//! A value stands for the whole span its precision covers: `2024` is the year,
//! `2024-03-05` the day, `2024-03-05T10:00:00+01:00` that second. A time with an offset
//! is moved to UTC; a date without a time (which carries no offset) is taken as UTC.

use crate::civil;

/// Inclusive range of UTC seconds since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub lo: i64,
    pub hi: i64,
}

fn number(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses a FHIR date, dateTime or instant (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mm[:ss[.fff]](Z|±hh:mm)`); `None` when it is not one, or is a
/// leap second (`23:59:60`), which Unix time does not count.
pub fn parse(text: &str) -> Option<Range> {
    let text = text.trim();
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let y = number(parts.next()?, 4)?;
    let m = parts.next().map(|s| number(s, 2)).unwrap_or(Some(0))?;
    let d = parts.next().map(|s| number(s, 2)).unwrap_or(Some(0))?;
    if parts.next().is_some() || m > 12 || (m == 0 && d != 0) {
        return None;
    }
    if m == 0 {
        let lo = civil::unix_seconds(y, 1, 1, 0, 0, 0)?;
        return Some(Range {
            lo,
            hi: lo + civil::days_in_year(y)? * 86400 - 1,
        });
    }
    if d == 0 {
        let lo = civil::unix_seconds(y, m, 1, 0, 0, 0)?;
        return Some(Range {
            lo,
            hi: lo + civil::days_in_month(y, m)? * 86400 - 1,
        });
    }
    let day = civil::unix_seconds(y, m, d, 0, 0, 0)?;
    let Some(time) = time else {
        return Some(Range {
            lo: day,
            hi: day + 86399,
        });
    };
    // Split the offset off the time.
    let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, mi) = off[1..].split_once(':')?;
        let (h, mi) = (number(h, 2)?, number(mi, 2)?);
        if h > 14 || mi > 59 {
            return None;
        }
        (clock, sign * (h * 3600 + mi * 60))
    } else {
        // A search value may leave the offset out: read it as UTC.
        (time, 0)
    };
    let mut fields = clock.split(':');
    let h = number(fields.next()?, 2)?;
    let mi = number(fields.next()?, 2)?;
    let (s, precise) = match fields.next() {
        Some(sec) => {
            let whole = sec.split('.').next()?;
            (number(whole, 2)?, true)
        }
        None => (0, false),
    };
    if fields.next().is_some() {
        return None;
    }
    let lo = civil::unix_seconds(y, m, d, h, mi, s)? - offset;
    let hi = if precise { lo } else { lo + 59 };
    Some(Range { lo, hi })
}

/// Microseconds since the epoch as a FHIR instant in UTC, to the millisecond.
pub fn instant(micros: i64) -> String {
    let t = civil::utc(micros.div_euclid(1_000_000));
    let millis = micros.rem_euclid(1_000_000) / 1000;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_gives_the_span() {
        let day = parse("2024-03-05").unwrap();
        assert_eq!(day.hi - day.lo, 86399);
        assert_eq!(parse("2024").unwrap().lo, parse("2024-01-01").unwrap().lo);
        assert_eq!(
            parse("2024-02").unwrap().hi,
            parse("2024-02-29").unwrap().hi
        );
        assert_eq!(
            parse("2024-03-05T10:00").unwrap().hi,
            parse("2024-03-05T10:00:59Z").unwrap().lo
        );
        assert!(parse("2024-13").is_none());
        assert!(parse("2024-02-30").is_none());
        assert!(parse("hello").is_none());
        assert!(parse("2024-03-05T25:00:00Z").is_none());
    }

    #[test]
    fn offsets_move_a_time_to_utc() {
        let t = parse("2024-03-05T10:00:00+01:00").unwrap();
        assert_eq!(t, parse("2024-03-05T09:00:00Z").unwrap());
        assert_eq!(t.lo, t.hi);
        assert_eq!(
            parse("2024-03-04T23:30:00-09:30").unwrap(),
            parse("2024-03-05T09:00:00Z").unwrap()
        );
        assert!(parse("2024-03-05T10:00:00+15:00").is_none());
        assert!(parse("2024-03-05T10:00:00+01").is_none());
    }

    #[test]
    fn leap_seconds_and_years_beyond_the_calendar_are_refused() {
        assert!(parse("2016-12-31T23:59:60Z").is_none());
        assert!(parse("2016-12-31T23:59:59Z").is_some());
        assert!(parse("12024-01-01").is_none());
        let last = parse("9999").unwrap();
        assert_eq!(last.hi - last.lo, 365 * 86400 - 1);
        // jiff's instants end a day short of the calendar's last year (room for offsets).
        assert!(parse("9999-12-31T23:59:59Z").is_none());
    }

    #[test]
    fn instants_round_trip() {
        let text = instant(1_709_632_800_123_456);
        assert_eq!(text, "2024-03-05T10:00:00.123Z");
        assert_eq!(parse(&text).unwrap().lo, 1_709_632_800);
        assert_eq!(instant(-1), "1969-12-31T23:59:59.999Z");
    }
}

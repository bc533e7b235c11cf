//! FHIR date, dateTime and instant values as ranges of UTC seconds, for date search.
//!
//! A value stands for the whole span its precision covers: `2024` is the year,
//! `2024-03-05` the day, `2024-03-05T10:00:00+01:00` that second. A time with an offset
//! is moved to UTC; a date without a time (which carries no offset) is taken as UTC.

/// Inclusive range of UTC seconds since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub lo: i64,
    pub hi: i64,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    days_from_civil(
        if m == 12 { y + 1 } else { y },
        if m == 12 { 1 } else { m + 1 },
        1,
    ) - days_from_civil(y, m, 1)
}

fn number(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses a FHIR date, dateTime or instant (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mm[:ss[.fff]](Z|±hh:mm)`); `None` when it is not one.
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
        let lo = days_from_civil(y, 1, 1) * 86400;
        return Some(Range {
            lo,
            hi: days_from_civil(y + 1, 1, 1) * 86400 - 1,
        });
    }
    if d == 0 {
        let lo = days_from_civil(y, m, 1) * 86400;
        return Some(Range {
            lo,
            hi: lo + days_in_month(y, m) * 86400 - 1,
        });
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day = days_from_civil(y, m, d) * 86400;
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
    if fields.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let lo = day + h * 3600 + mi * 60 + s - offset;
    let hi = if precise { lo } else { lo + 59 };
    Some(Range { lo, hi })
}

/// Microseconds since the epoch as a FHIR instant in UTC, to the millisecond.
pub fn instant(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let millis = micros.rem_euclid(1_000_000) / 1000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let rem = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), for
/// `Last-Modified`.
pub fn http_date(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let rem = secs.rem_euclid(86400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An HTTP date in the preferred format (`If-Modified-Since`) as seconds since the
/// epoch; `None` when it is not one.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let d = number(parts.next()?, 2)?;
    let month = parts.next()?;
    let m = MONTHS.iter().position(|n| *n == month)? as i64 + 1;
    let y = number(parts.next()?, 4)?;
    let clock = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let range = parse(&format!("{y:04}-{m:02}-{d:02}T{clock}Z"))?;
    Some(range.lo)
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
        let t = parse("2024-03-05T10:00:00+01:00").unwrap();
        assert_eq!(t, parse("2024-03-05T09:00:00Z").unwrap());
        assert_eq!(t.lo, t.hi);
        assert!(parse("2024-13").is_none());
        assert!(parse("2024-02-30").is_none());
        assert!(parse("hello").is_none());
        assert!(parse("2024-03-05T25:00:00Z").is_none());
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
    }

    #[test]
    fn instants_round_trip() {
        let text = instant(1_709_632_800_123_456);
        assert_eq!(text, "2024-03-05T10:00:00.123Z");
        assert_eq!(parse(&text).unwrap().lo, 1_709_632_800);
    }
}

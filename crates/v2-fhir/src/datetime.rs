//! HL7 v2 DTM/TS values to FHIR date, dateTime and instant.
//!
//! The sender's precision and offset are kept, and a time is never dropped.
//! FHIR requires an offset on a dateTime that has a time, so where the value
//! has none the converter supplies one (see [`crate::Options::timezone`]: the
//! message's own MSH-7 offset, else the configured [`Zone`], else UTC, which
//! the Provenance then says was assumed). FHIR also requires seconds once
//! there is a time: `HHMM` becomes `HH:MM:00`.

use std::fmt;
use std::str::FromStr;

/// A fixed offset from UTC, such as `+01:00`, used for times sent without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcOffset {
    minutes: i16,
}

impl UtcOffset {
    pub const UTC: UtcOffset = UtcOffset { minutes: 0 };

    /// An offset of `minutes` east of UTC (-14:00 to +14:00).
    pub fn from_minutes(minutes: i16) -> Option<UtcOffset> {
        (-14 * 60..=14 * 60)
            .contains(&minutes)
            .then_some(UtcOffset { minutes })
    }

    pub fn minutes(self) -> i16 {
        self.minutes
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minutes < 0 { '-' } else { '+' };
        let m = self.minutes.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

/// Where times sent without an offset were taken: a fixed offset (`-05:00`)
/// or an IANA time zone (`America/Chicago`), whose offset is the one in
/// force at that local time, daylight saving included.
#[derive(Clone, Debug, PartialEq)]
pub enum Zone {
    Fixed(UtcOffset),
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// The offset of this zone at the local time `local`. A local time
    /// that occurs twice (the hour clocks go back) is read as the first; one
    /// that does not occur (the hour clocks skip) keeps its digits with the
    /// offset before the change, which names the same instant as jiff's
    /// "compatible" reading.
    pub fn offset_at(&self, local: &V2DateTime<'_>) -> UtcOffset {
        let tz = match self {
            Zone::Fixed(offset) => return *offset,
            Zone::Named(tz) => tz,
        };
        let number = |part: Option<&str>, default: i8| {
            part.and_then(|p| p.parse::<i8>().ok()).unwrap_or(default)
        };
        let year = local.year.parse::<i16>().unwrap_or(2000);
        let civil = jiff::civil::DateTime::new(
            year,
            number(local.month, 1),
            number(local.day, 1),
            number(local.hour, 0),
            number(local.minute, 0),
            // A leap second reads as the second before it.
            number(local.second, 0).min(59),
            0,
        );
        let Ok(civil) = civil else {
            return UtcOffset::UTC;
        };
        let offset = match tz.to_ambiguous_zoned(civil).offset() {
            jiff::tz::AmbiguousOffset::Unambiguous { offset } => offset,
            jiff::tz::AmbiguousOffset::Gap { before, .. } => before,
            jiff::tz::AmbiguousOffset::Fold { before, .. } => before,
        };
        let minutes = i16::try_from(offset.seconds() / 60).unwrap_or(0);
        UtcOffset::from_minutes(minutes).unwrap_or(UtcOffset::UTC)
    }
}

/// The error of [`Zone::from_str`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is neither a UTC offset (+HH:MM, -HHMM or Z) nor an IANA time zone name \
     (such as America/New_York)"
)]
pub struct BadZone(String);

impl FromStr for Zone {
    type Err = BadZone;

    fn from_str(s: &str) -> Result<Zone, BadZone> {
        if let Ok(offset) = s.parse::<UtcOffset>() {
            return Ok(Zone::Fixed(offset));
        }
        let name = s.trim();
        if name.is_empty() || name.starts_with(['+', '-']) {
            return Err(BadZone(s.to_string()));
        }
        jiff::tz::TimeZone::get(name)
            .map(Zone::Named)
            .map_err(|_| BadZone(s.to_string()))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Fixed(offset) => offset.fmt(f),
            Zone::Named(tz) => f.write_str(tz.iana_name().unwrap_or("?")),
        }
    }
}

/// The error of [`UtcOffset::from_str`].
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a UTC offset (expected +HH:MM, -HHMM or Z, between -14:00 and +14:00)")]
pub struct BadOffset(String);

impl FromStr for UtcOffset {
    type Err = BadOffset;

    fn from_str(s: &str) -> Result<UtcOffset, BadOffset> {
        let bad = || BadOffset(s.to_string());
        let t = s.trim();
        if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
            return Ok(UtcOffset::UTC);
        }
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let h: i16 = digits[..2].parse().map_err(|_| bad())?;
        let m: i16 = digits[2..].parse().map_err(|_| bad())?;
        if m >= 60 {
            return Err(bad());
        }
        UtcOffset::from_minutes(sign * (h * 60 + m)).ok_or_else(bad)
    }
}

/// A v2 date/time split into its parts, at the precision it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2DateTime<'a> {
    pub year: &'a str,
    pub month: Option<&'a str>,
    pub day: Option<&'a str>,
    pub hour: Option<&'a str>,
    pub minute: Option<&'a str>,
    pub second: Option<&'a str>,
    pub fraction: Option<&'a str>,
    pub offset: Option<UtcOffset>,
}

fn in_range(s: &str, low: u32, high: u32) -> bool {
    s.parse::<u32>().is_ok_and(|n| (low..=high).contains(&n))
}

/// Reads `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`; `None` when the
/// value is not one.
pub fn parse(value: &str) -> Option<V2DateTime<'_>> {
    let value = value.trim();
    // TS carries a degree of precision in a second component; callers pass
    // only the first component, but a stray `^` must not pass as digits.
    let (main, offset) = match value.find(['+', '-']) {
        Some(at) => (&value[..at], Some(&value[at..])),
        None => (value, None),
    };
    let offset = match offset {
        Some(o) if o.len() == 5 => Some(o.parse::<UtcOffset>().ok()?),
        Some(_) => return None,
        None => None,
    };
    let (digits, fraction) = match main.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (main, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14)
    {
        return None;
    }
    if let Some(f) = fraction {
        if f.is_empty()
            || f.len() > 4
            || !f.bytes().all(|b| b.is_ascii_digit())
            || digits.len() != 14
        {
            return None;
        }
    }
    let part = |from: usize| digits.get(from..from + 2);
    let dt = V2DateTime {
        year: &digits[..4],
        month: part(4),
        day: part(6),
        hour: part(8),
        minute: part(10),
        second: part(12),
        fraction,
        offset,
    };
    // FHIR has no year zero (placeholder dates such as `0000` are not dates).
    let ok = dt.year != "0000"
        && dt.month.is_none_or(|m| in_range(m, 1, 12))
        && dt
            .day
            .is_none_or(|d| in_range(d, 1, days_in_month(dt.year, dt.month)))
        && dt.hour.is_none_or(|h| in_range(h, 0, 23))
        && dt.minute.is_none_or(|m| in_range(m, 0, 59))
        && dt.second.is_none_or(|s| in_range(s, 0, 60));
    ok.then_some(dt)
}

fn days_in_month(year: &str, month: Option<&str>) -> u32 {
    let y: u32 = year.parse().unwrap_or(2000);
    match month.and_then(|m| m.parse::<u32>().ok()) {
        Some(4 | 6 | 9 | 11) => 30,
        Some(2) if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        Some(2) => 28,
        _ => 31,
    }
}

impl V2DateTime<'_> {
    /// The FHIR `date`: year, year-month or full date.
    pub fn date(&self) -> String {
        let mut out = self.year.to_string();
        if let Some(m) = self.month {
            out.push('-');
            out.push_str(m);
            if let Some(d) = self.day {
                out.push('-');
                out.push_str(d);
            }
        }
        out
    }

    fn time_with(&self, offset: UtcOffset) -> Option<String> {
        let hour = self.hour?;
        let mut out = self.date();
        out.push('T');
        out.push_str(hour);
        out.push(':');
        out.push_str(self.minute.unwrap_or("00"));
        out.push(':');
        out.push_str(self.second.unwrap_or("00"));
        if let Some(f) = self.fraction {
            out.push('.');
            out.push_str(f);
        }
        out.push_str(&offset.to_string());
        Some(out)
    }

    /// The offset of this value: its own, else `zone`'s at this local
    /// time, else UTC.
    pub fn offset_in(&self, zone: Option<&Zone>) -> UtcOffset {
        self.offset
            .or_else(|| zone.map(|z| z.offset_at(self)))
            .unwrap_or(UtcOffset::UTC)
    }

    /// The FHIR `dateTime`, see the module docs for the rule on offsets.
    pub fn date_time(&self, zone: Option<&Zone>) -> String {
        if self.hour.is_none() {
            return self.date();
        }
        self.time_with(self.offset_in(zone))
            .unwrap_or_else(|| self.date())
    }

    /// The FHIR `instant` (full precision and an offset), when the value has
    /// a time.
    pub fn instant(&self, zone: Option<&Zone>) -> Option<String> {
        self.day?;
        self.time_with(self.offset_in(zone))
    }
}

/// A v2 value as a FHIR `date`, `None` when it is not a date.
pub fn to_date(value: &str) -> Option<String> {
    parse(value).map(|d| d.date())
}

/// A v2 value as a FHIR `dateTime`.
pub fn to_date_time(value: &str, zone: Option<&Zone>) -> Option<String> {
    parse(value).map(|d| d.date_time(zone))
}

/// A v2 value as a FHIR `instant`.
pub fn to_instant(value: &str, zone: Option<&Zone>) -> Option<String> {
    parse(value)?.instant(zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_senders_offset_and_precision() {
        assert_eq!(
            to_date_time("202401021304-0500", None).unwrap(),
            "2024-01-02T13:04:00-05:00"
        );
        assert_eq!(
            to_date_time("20240102130405.1234+0100", None).unwrap(),
            "2024-01-02T13:04:05.1234+01:00"
        );
        assert_eq!(to_date_time("202401", None).unwrap(), "2024-01");
        assert_eq!(to_date_time("2024", None).unwrap(), "2024");
    }

    #[test]
    fn configured_offset_is_used_only_when_the_value_has_none() {
        let tz: Zone = "+02:00".parse().unwrap();
        assert_eq!(
            to_date_time("20240102130405", Some(&tz)).unwrap(),
            "2024-01-02T13:04:05+02:00"
        );
        assert_eq!(
            to_date_time("20240102130405-0500", Some(&tz)).unwrap(),
            "2024-01-02T13:04:05-05:00"
        );
    }

    #[test]
    fn a_named_zone_gives_the_offset_in_force_at_that_time() {
        let chicago: Zone = "America/Chicago".parse().unwrap();
        assert_eq!(
            to_date_time("20240115083000", Some(&chicago)).unwrap(),
            "2024-01-15T08:30:00-06:00"
        );
        assert_eq!(
            to_date_time("20240715083000", Some(&chicago)).unwrap(),
            "2024-07-15T08:30:00-05:00"
        );
        // 2024-03-10 02:30 never happened in Chicago; 2024-11-03 01:30 twice.
        assert_eq!(
            to_date_time("20240310023000", Some(&chicago)).unwrap(),
            "2024-03-10T02:30:00-06:00"
        );
        assert_eq!(
            to_date_time("20241103013000", Some(&chicago)).unwrap(),
            "2024-11-03T01:30:00-05:00"
        );
        assert!("Mars/Olympus".parse::<Zone>().is_err());
        assert!("+25:00".parse::<Zone>().is_err());
    }

    #[test]
    fn without_any_zone_a_time_is_kept_as_utc() {
        assert_eq!(
            to_date_time("20240102130405", None).unwrap(),
            "2024-01-02T13:04:05+00:00"
        );
        assert_eq!(
            to_instant("20240102130405", None).unwrap(),
            "2024-01-02T13:04:05+00:00"
        );
    }

    #[test]
    fn impossible_values_are_not_dates() {
        for bad in [
            "2024130",
            "20241301",
            "20240230",
            "2024010225",
            "abc",
            "",
            "20240102+05",
            "0000",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn offsets_parse_in_the_usual_spellings() {
        assert_eq!("Z".parse::<UtcOffset>().unwrap(), UtcOffset::UTC);
        assert_eq!("-0530".parse::<UtcOffset>().unwrap().minutes(), -330);
        assert!("+15:00".parse::<UtcOffset>().is_err());
    }
}

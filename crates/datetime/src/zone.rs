//! UTC offsets and time zones: where a time sent without an offset is taken.

use std::fmt;
use std::str::FromStr;

use crate::hl7::Dtm;

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
    /// The local time of day of the instant `unix_seconds` in this zone, in minutes
    /// since midnight (0 to 1439).
    pub fn minute_of_day(&self, unix_seconds: i64) -> u32 {
        let offset_seconds = match self {
            Zone::Fixed(offset) => i64::from(offset.minutes()) * 60,
            Zone::Named(tz) => jiff::Timestamp::from_second(unix_seconds)
                .map(|t| i64::from(tz.to_offset(t).seconds()))
                .unwrap_or(0),
        };
        let seconds = (unix_seconds + offset_seconds).rem_euclid(86_400);
        u32::try_from(seconds / 60).unwrap_or(0)
    }

    /// The offset of this zone at the local time `local`. A local time
    /// that occurs twice (the hour clocks go back) is read as the first; one
    /// that does not occur (the hour clocks skip) keeps its digits with the
    /// offset before the change, which names the same instant as jiff's
    /// "compatible" reading.
    pub fn offset_at(&self, local: &Dtm<'_>) -> UtcOffset {
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

//! Calendar arithmetic, by `jiff`: civil date-times in UTC to and from Unix seconds.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::Offset;

/// Unix seconds of a civil date-time read in UTC; `None` when it is not a real
/// one (a 30 February, an hour 24, a leap second) or out of jiff's range (years
/// -9999 to 9999).
pub fn unix_seconds(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    let part = |n: i64| i8::try_from(n).ok();
    let dt = DateTime::new(
        i16::try_from(year).ok()?,
        part(month)?,
        part(day)?,
        part(hour)?,
        part(minute)?,
        part(second)?,
        0,
    )
    .ok()?;
    Offset::UTC.to_timestamp(dt).ok().map(|t| t.as_second())
}

/// The days of `month` in `year`; `None` when the month is not 1 to 12.
pub fn days_in_month(year: i64, month: i64) -> Option<i64> {
    let date = Date::new(i16::try_from(year).ok()?, i8::try_from(month).ok()?, 1).ok()?;
    Some(i64::from(date.days_in_month()))
}

/// The days of `year` (365 or 366).
pub fn days_in_year(year: i64) -> Option<i64> {
    let date = Date::new(i16::try_from(year).ok()?, 1, 1).ok()?;
    Some(i64::from(date.days_in_year()))
}

/// The civil date-time in UTC of Unix seconds, clamped to jiff's range (years
/// -9999 to 9999) so a corrupt stored time still formats.
pub fn utc(seconds: i64) -> DateTime {
    let seconds = seconds.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    let timestamp = Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH);
    Offset::UTC.to_datetime(timestamp)
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn now_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calendar_counts_from_the_epoch_both_ways() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(unix_seconds(2000, 2, 29, 0, 0, 0), Some(951_782_400));
        assert_eq!(unix_seconds(1969, 12, 31, 23, 59, 59), Some(-1));
        let dt = utc(951_782_400);
        assert_eq!((dt.year(), dt.month(), dt.day()), (2000, 2, 29));
        assert_eq!(utc(-1).year(), 1969);
    }

    #[test]
    fn impossible_and_out_of_range_dates_are_refused() {
        assert_eq!(unix_seconds(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(unix_seconds(2024, 1, 1, 24, 0, 0), None);
        // No leap seconds: 23:59:60 is not a time jiff (or Unix time) counts.
        assert_eq!(unix_seconds(2016, 12, 31, 23, 59, 60), None);
        assert_eq!(unix_seconds(10_000, 1, 1, 0, 0, 0), None);
        assert_eq!(days_in_month(2024, 2), Some(29));
        assert_eq!(days_in_month(2100, 2), Some(28));
        assert_eq!(days_in_month(2024, 13), None);
        // A time far beyond the calendar still formats, at its end.
        assert_eq!(utc(i64::MAX).year(), 9999);
    }
}

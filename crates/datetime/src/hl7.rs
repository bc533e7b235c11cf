//! HL7 v2 `DTM`/`TS` text: read at the precision it was sent, written as FHIR
//! (ISO 8601) text or as Unix seconds, and written from Unix seconds.
//!
//! The sender's precision and offset are kept, and a time is never dropped.
//! FHIR requires an offset on a dateTime that has a time, so where the value
//! has none the caller supplies a [`Zone`] (else UTC). FHIR also requires
//! seconds once there is a time: `HHMM` becomes `HH:MM:00`.

use crate::civil;
use crate::zone::{UtcOffset, Zone};

/// A v2 date/time split into its parts, at the precision it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtm<'a> {
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
pub fn parse(value: &str) -> Option<Dtm<'_>> {
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
    let dt = Dtm {
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

impl Dtm<'_> {
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

impl Dtm<'_> {
    /// The instant this value names, in Unix seconds: the start of the span its
    /// precision covers (`2024` is 2024-01-01T00:00:00), moved to UTC by its own
    /// offset, else `zone`'s at that local time, else UTC. `None` for a leap
    /// second (`...235960`), which Unix time does not count.
    pub fn unix_seconds(&self, zone: Option<&Zone>) -> Option<i64> {
        let number = |part: Option<&str>, default: i64| {
            part.map_or(Some(default), |p| p.parse::<i64>().ok())
        };
        let local = civil::unix_seconds(
            self.year.parse().ok()?,
            number(self.month, 1)?,
            number(self.day, 1)?,
            number(self.hour, 0)?,
            number(self.minute, 0)?,
            number(self.second, 0)?,
        )?;
        Some(local - i64::from(self.offset_in(zone).minutes()) * 60)
    }
}

/// Unix seconds as an HL7 v2 `DTM` in UTC to the second, without an offset
/// (`YYYYMMDDHHMMSS`).
pub fn format_dtm(unix_seconds: i64) -> String {
    let t = civil::utc(unix_seconds);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Unix seconds as an HL7 v2 `DTM` in UTC with its offset (`YYYYMMDDHHMMSS+0000`).
pub fn format_dtm_utc(unix_seconds: i64) -> String {
    let mut text = format_dtm(unix_seconds);
    text.push_str("+0000");
    text
}

/// The current time as an HL7 v2 `DTM` in UTC with its offset.
pub fn now_dtm_utc() -> String {
    format_dtm_utc(civil::now_unix_seconds())
}

/// The current time as an HL7 v2 `DTM` in this machine's time zone, with its
/// offset (`YYYYMMDDHHMMSS+HHMM`).
pub fn now_dtm_local() -> String {
    jiff::Zoned::now().strftime("%Y%m%d%H%M%S%z").to_string()
}

/// Unix microseconds as the UTC calendar day, `YYYYMMDD`.
pub fn format_date(unix_micros: i64) -> String {
    let mut text = format_dtm(unix_micros.div_euclid(1_000_000));
    text.truncate(8);
    text
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

    #[test]
    fn unix_seconds_take_the_values_offset_else_the_zones_else_utc() {
        let utc = parse("20240102110000").unwrap().unix_seconds(None).unwrap();
        assert_eq!(utc, 1_704_193_200);
        let east = parse("202401021200+0100").unwrap();
        assert_eq!(east.unix_seconds(None), Some(utc));
        let chicago: Zone = "America/Chicago".parse().unwrap();
        let local = parse("20240102050000").unwrap();
        assert_eq!(local.unix_seconds(Some(&chicago)), Some(utc));
        // Partial precision names the start of its span.
        assert_eq!(
            parse("2024").unwrap().unix_seconds(None),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse("20240102110000.1234").unwrap().unix_seconds(None),
            Some(utc)
        );
    }

    #[test]
    fn a_leap_second_is_text_but_not_an_instant() {
        let leap = parse("20161231235960+0000").unwrap();
        assert_eq!(leap.date_time(None), "2016-12-31T23:59:60+00:00");
        assert_eq!(leap.unix_seconds(None), None);
    }

    #[test]
    fn dtm_text_from_unix_seconds() {
        assert_eq!(format_dtm(0), "19700101000000");
        assert_eq!(format_dtm_utc(1_704_193_200), "20240102110000+0000");
        assert_eq!(format_dtm(-1), "19691231235959");
        assert_eq!(format_date(1_709_208_000_000_000), "20240229");
        assert_eq!(format_date(-1), "19691231");
        let now = now_dtm_utc();
        assert_eq!(now.len(), 19, "{now}");
        assert!(parse(&now).is_some(), "{now}");
    }
}

//! Instants and windows. HL7 v2 times (`DTM`) are read here once so every
//! rule compares the same thing: seconds since the Unix epoch, in UTC.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// An instant, in seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix_seconds(seconds: i64) -> Timestamp {
        Timestamp(seconds)
    }

    pub const fn unix_seconds(self) -> i64 {
        self.0
    }

    /// Reads an HL7 v2 `DTM`/`TS`: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`,
    /// through `datetime::hl7`.
    ///
    /// A time without an offset is taken as UTC here; the engine reads a
    /// message's times with [`Timestamp::parse_hl7_in`] in the zone of MSH-7's
    /// offset or the channel's `fhir.timezone` (`crate::extract_in`). Fewer
    /// than eight digits (a year or a month alone) is too coarse for a
    /// window and reads as `None`, as does anything that is not a date
    /// (30 February included) and a leap second.
    pub fn parse_hl7(text: &str) -> Option<Timestamp> {
        Timestamp::parse_hl7_in(text, None)
    }

    /// [`Timestamp::parse_hl7`], a time without an offset read in `zone` (its
    /// offset at that local time), else UTC: the rule the FHIR conversion
    /// follows, so the rules and the repository name the same instant.
    pub fn parse_hl7_in(text: &str, zone: Option<&datetime::Zone>) -> Option<Timestamp> {
        let dtm = datetime::hl7::parse(text)?;
        dtm.day?;
        dtm.unix_seconds(zone).map(Timestamp)
    }

    /// This instant moved back by `window` (the start of a window ending here).
    pub fn minus(self, window: Window) -> Timestamp {
        Timestamp(self.0.saturating_sub(window.seconds()))
    }

    pub fn plus(self, window: Window) -> Timestamp {
        Timestamp(self.0.saturating_add(window.seconds()))
    }

    /// Formats as an HL7 v2 `DTM` in UTC (`YYYYMMDDHHMMSS+0000`).
    pub fn to_hl7(self) -> String {
        datetime::hl7::format_dtm_utc(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hl7())
    }
}

/// A length of time: how far back a rule looks, or how long an alert stays
/// quiet. Written in configuration as a number and a unit: `90s`, `30m`,
/// `6h`, `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(i64);

impl Window {
    pub const fn seconds_of(seconds: i64) -> Window {
        Window(seconds)
    }
    pub const fn minutes(n: i64) -> Window {
        Window(n * 60)
    }
    pub const fn hours(n: i64) -> Window {
        Window(n * 3600)
    }
    pub const fn days(n: i64) -> Window {
        Window(n * 86_400)
    }
    pub const fn seconds(self) -> i64 {
        self.0
    }

    /// True when `earlier` is at most this window before `later` (and not
    /// after it): the window includes both of its ends.
    pub fn contains(self, earlier: Timestamp, later: Timestamp) -> bool {
        earlier <= later && later.0 - earlier.0 <= self.0
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Window, String> {
        let text = text.trim();
        let problem = || {
            format!(
                "`{text}` is not a window: use a positive whole number and s, m, h or d, such as `6h`"
            )
        };
        let split = text.len().checked_sub(1).ok_or_else(problem)?;
        let (number, unit) = text.split_at(split);
        let n: i64 = number.parse().map_err(|_| problem())?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(problem()),
        };
        if n <= 0 {
            return Err(problem());
        }
        n.checked_mul(scale).map(Window).ok_or_else(problem)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Window, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_time_with_offset_reads_as_utc() {
        let local = Timestamp::parse_hl7("202401021200+0100").unwrap();
        let utc = Timestamp::parse_hl7("20240102110000").unwrap();
        assert_eq!(local, utc);
        assert_eq!(utc.to_hl7(), "20240102110000+0000");
    }

    #[test]
    fn hl7_time_round_trips_through_the_calendar() {
        for text in ["19700101", "20000229", "20241231235959", "18991231"] {
            let t = Timestamp::parse_hl7(text).unwrap();
            assert!(t.to_hl7().starts_with(text), "{text} -> {t}");
        }
    }

    #[test]
    fn malformed_times_are_none_not_panics() {
        for text in [
            "",
            "2024",
            "202401",
            "20241301",
            "2024010",
            "2024O102",
            "20240102+01",
            "ünïcode!",
            "20240230",
            "20161231235960",
        ] {
            assert_eq!(Timestamp::parse_hl7(text), None, "{text}");
        }
    }

    #[test]
    fn window_includes_its_ends() {
        let t = Timestamp::from_unix_seconds(10_000);
        let w = Window::hours(1);
        assert!(w.contains(t.minus(w), t));
        assert!(!w.contains(Timestamp::from_unix_seconds(10_000 - 3601), t));
        assert!(!w.contains(t.plus(Window::seconds_of(1)), t));
    }

    #[test]
    fn windows_read_from_text_and_reject_nonsense() {
        assert_eq!("6h".parse::<Window>(), Ok(Window::hours(6)));
        assert_eq!("40d".parse::<Window>(), Ok(Window::days(40)));
        for bad in ["", "h", "0h", "-1h", "6", "6 hours", "6H"] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }
}

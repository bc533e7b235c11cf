//! Durations: one grammar for every key that takes one.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses `"250ms"`, `"30s"`, `"10m"` (or `"10min"`), `"1h"`, `"1d"` or a bare number of
/// seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = crate::number_and_unit(text)?;
    let millis: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(number.checked_mul(millis)?))
}

/// A duration written `"250ms"`, `"30s"`, `"10m"`, `"1h"`, `"1d"` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        duration::deserialize(deserializer).map(ConfigDuration)
    }
}

/// A duration that can also be turned off: `"off"`, `false` or `0` give `None`.
///
/// The duplicate detection window of a source is one: `duplicate_window = "off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateWindow(pub Option<Duration>);

impl Default for DuplicateWindow {
    /// Ten minutes.
    fn default() -> Self {
        DuplicateWindow(Some(Duration::from_secs(600)))
    }
}

impl<'de> Deserialize<'de> for DuplicateWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(DurationVisitor { allow_off: true })
            .map(|d| DuplicateWindow(d.filter(|d| !d.is_zero())))
    }
}

/// Serde helpers for `std::time::Duration` fields: `#[serde(with = "conf::duration")]`.
pub mod duration {
    use std::time::Duration;

    use serde::Deserializer;

    /// Reads a duration in the grammar of [`parse_duration`](crate::parse_duration), or a
    /// whole number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer
            .deserialize_any(super::DurationVisitor { allow_off: false })
            .map(Option::unwrap_or_default)
    }
}

struct DurationVisitor {
    allow_off: bool,
}

impl DurationVisitor {
    fn or_off(&self) -> &'static str {
        if self.allow_off { " or \"off\"" } else { "" }
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a duration such as \"250ms\", \"30s\", \"10m\", \"1h\" or \"1d\"{}",
            self.or_off()
        )
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Self::Value, E> {
        u64::try_from(seconds)
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| E::custom(format!("{seconds} is not a duration (it is negative)")))
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Self::Value, E> {
        Ok(Some(Duration::from_secs(seconds)))
    }

    fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
        match (self.allow_off, on) {
            (true, false) => Ok(None),
            _ => Err(E::custom(format!(
                "{on} is not a duration (expected e.g. \"30s\", \"10m\"{})",
                self.or_off()
            ))),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.allow_off && text.trim() == "off" {
            return Ok(None);
        }
        parse_duration(text).map(Some).ok_or_else(|| {
            E::custom(format!(
                "{text:?} is not a duration (expected e.g. \"250ms\", \"30s\", \"10m\", \"1h\", \"1d\"{})",
                self.or_off()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_unit_and_bare_seconds() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("10min"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("12 parsecs"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("99999999999999999d"), None);
    }

    #[derive(serde::Deserialize, Debug)]
    struct Timings {
        #[serde(with = "duration", default)]
        timeout: Duration,
        #[serde(default)]
        window: Option<DuplicateWindow>,
        #[serde(default)]
        age: Option<ConfigDuration>,
    }

    #[test]
    fn every_form_reads_the_same_from_toml() {
        let read = |text: &str| toml::from_str::<Timings>(text).unwrap();
        assert_eq!(
            read("timeout = \"1d\"").timeout,
            Duration::from_secs(86_400)
        );
        assert_eq!(read("timeout = 90").timeout, Duration::from_secs(90));
        assert_eq!(
            read("age = \"2h\"").age,
            Some(ConfigDuration(Duration::from_secs(7200)))
        );
        for off in ["\"off\"", "0", "false"] {
            assert_eq!(
                read(&format!("window = {off}")).window,
                Some(DuplicateWindow(None))
            );
        }
        assert_eq!(
            read("window = \"5m\"").window,
            Some(DuplicateWindow(Some(Duration::from_secs(300))))
        );
    }

    #[test]
    fn bad_durations_are_refused_in_words() {
        let error = |text: &str| toml::from_str::<Timings>(text).unwrap_err().to_string();
        assert!(error("timeout = \"soon\"").contains("\"soon\" is not a duration"));
        assert!(error("timeout = -5").contains("-5 is not a duration (it is negative)"));
        assert!(error("timeout = \"off\"").contains("is not a duration"));
        assert!(error("timeout = false").contains("false is not a duration"));
    }
}

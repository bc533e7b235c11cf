//! Format checks for HL7 v2 primitive values: DT, TM, DTM (and TS's first
//! component), NM, SI. Each returns what is wrong, in words, or `Ok`.
//!
//! Values are checked as sent (escape sequences are not decoded: they do
//! not occur in well-formed numbers and dates).

use std::fmt;

/// Why a primitive value does not fit its data type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// The data type checked, e.g. `DTM`.
    pub data_type: &'static str,
    /// What is wrong, without repeating the value (which may be PHI).
    pub problem: &'static str,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid {}: {}", self.data_type, self.problem)
    }
}

fn err(data_type: &'static str, problem: &'static str) -> Result<(), FormatError> {
    Err(FormatError { data_type, problem })
}

/// Checks `value` against primitive type `data_type`; types without a
/// format rule (ST, TX, FT, ID, IS, ...) always pass here.
pub fn check_primitive(data_type: &str, value: &str) -> Result<(), FormatError> {
    match data_type {
        "DT" => check_date(value),
        "TM" => check_time(value),
        "DTM" | "TS" => check_date_time(value),
        "NM" => check_number(value),
        "SI" => check_sequence_id(value),
        _ => Ok(()),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn two(s: &str, at: usize) -> u32 {
    s[at..at + 2].parse().unwrap_or(u32::MAX)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// DT: `YYYY[MM[DD]]`.
pub fn check_date(value: &str) -> Result<(), FormatError> {
    const T: &str = "DT";
    if !all_digits(value) {
        return err(T, "a date has only digits (YYYY[MM[DD]])");
    }
    check_date_digits(T, value)
}

fn check_date_digits(t: &'static str, d: &str) -> Result<(), FormatError> {
    if !matches!(d.len(), 4 | 6 | 8) {
        return err(t, "a date has 4, 6 or 8 digits (YYYY[MM[DD]])");
    }
    let year: u32 = d[..4].parse().unwrap_or(0);
    if d.len() >= 6 {
        let month = two(d, 4);
        if !(1..=12).contains(&month) {
            return err(t, "month is not 01 to 12");
        }
        if d.len() == 8 {
            let day = two(d, 6);
            if day == 0 || day > days_in_month(year, month) {
                return err(t, "day does not exist in that month");
            }
        }
    }
    Ok(())
}

/// Splits a trailing `+ZZZZ`/`-ZZZZ` offset off and checks it.
fn split_offset<'v>(t: &'static str, value: &'v str) -> Result<(&'v str, bool), FormatError> {
    match value.find(['+', '-']) {
        None => Ok((value, false)),
        Some(i) => {
            let offset = &value[i + 1..];
            if offset.len() != 4 || !all_digits(offset) {
                return Err(FormatError {
                    data_type: t,
                    problem: "time zone offset is not +HHMM or -HHMM",
                });
            }
            if two(offset, 0) > 14 || two(offset, 2) > 59 {
                return Err(FormatError {
                    data_type: t,
                    problem: "time zone offset is out of range",
                });
            }
            Ok((&value[..i], true))
        }
    }
}

/// The `HH[MM[SS[.S[S[S[S]]]]]]` part of TM and DTM.
fn check_clock(t: &'static str, clock: &str) -> Result<(), FormatError> {
    let (whole, fraction) = match clock.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (clock, None),
    };
    if !all_digits(whole) || !matches!(whole.len(), 2 | 4 | 6) {
        return err(t, "time is not HH[MM[SS[.S[S[S[S]]]]]]");
    }
    if two(whole, 0) > 23 {
        return err(t, "hour is not 00 to 23");
    }
    if whole.len() >= 4 && two(whole, 2) > 59 {
        return err(t, "minute is not 00 to 59");
    }
    // 60 allows a leap second.
    if whole.len() == 6 && two(whole, 4) > 60 {
        return err(t, "second is not 00 to 59");
    }
    if let Some(fraction) = fraction {
        if whole.len() != 6 {
            return err(t, "fractions of a second need the seconds");
        }
        if !all_digits(fraction) || fraction.len() > 4 {
            return err(t, "fraction of a second is not 1 to 4 digits");
        }
    }
    Ok(())
}

/// TM: `HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]`.
pub fn check_time(value: &str) -> Result<(), FormatError> {
    let (clock, _) = split_offset("TM", value)?;
    check_clock("TM", clock)
}

/// DTM (and TS.1): `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
pub fn check_date_time(value: &str) -> Result<(), FormatError> {
    const T: &str = "DTM";
    let (stamp, _) = split_offset(T, value)?;
    let digits_end = stamp.find('.').unwrap_or(stamp.len());
    if !all_digits(&stamp[..digits_end]) {
        return err(
            T,
            "a date/time has only digits before any fraction (YYYYMMDDHHMMSS.SSSS)",
        );
    }
    let date_len = digits_end.min(8);
    if date_len < 4 {
        return err(T, "a date/time starts with a 4-digit year");
    }
    check_date_digits(T, &stamp[..date_len])?;
    if date_len < 8 {
        return if digits_end == date_len && digits_end == stamp.len() {
            Ok(())
        } else {
            err(T, "a time needs the full date before it")
        };
    }
    let clock = &stamp[8..];
    if clock.is_empty() {
        Ok(())
    } else {
        check_clock(T, clock)
    }
}

/// NM: an optional sign, digits, an optional decimal point (`-12.5`, `.5`, `007`).
pub fn check_number(value: &str) -> Result<(), FormatError> {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int)
        && frac.is_none_or(digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    if ok {
        Ok(())
    } else {
        err(
            "NM",
            "a number is an optional sign, digits and an optional decimal point",
        )
    }
}

/// SI: a non-negative integer.
pub fn check_sequence_id(value: &str) -> Result<(), FormatError> {
    if all_digits(value) {
        Ok(())
    } else {
        err("SI", "a sequence id is a non-negative whole number")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_need_real_months_and_days() {
        for ok in ["2024", "202402", "20240229", "20000229"] {
            assert_eq!(check_date(ok), Ok(()), "{ok}");
        }
        for bad in [
            "24",
            "2024021",
            "20241301",
            "20230229",
            "19000229",
            "2024-02-01",
            "20240431",
            "",
        ] {
            assert!(check_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_times_allow_any_precision_and_an_offset() {
        for ok in [
            "2024",
            "20240315",
            "2024031514",
            "202403151430",
            "20240315143005",
            "20240315143005.1234",
            "20240315143005-0500",
            "202403151430+0100",
            "20240315143005.12+1400",
        ] {
            assert_eq!(check_date_time(ok), Ok(()), "{ok}");
        }
        for bad in [
            "2024031514300",
            "20240315250000",
            "20240315146000",
            "20240315143005.12345",
            "202403151430.5",
            "20240315143005-05",
            "20240315143005+1500",
            "2024-03-15T14:30",
            "202403-0500x",
        ] {
            assert!(check_date_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_and_numbers_and_sequence_ids() {
        assert_eq!(check_time("1430"), Ok(()));
        assert_eq!(check_time("143005.5-0300"), Ok(()));
        assert!(check_time("2460").is_err());
        for ok in ["0", "-12.5", "+3", ".5", "7.", "007"] {
            assert_eq!(check_number(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-", ".", "1e5", "1,5", "12a", "--1"] {
            assert!(check_number(bad).is_err(), "{bad}");
        }
        assert_eq!(check_sequence_id("12"), Ok(()));
        assert!(check_sequence_id("-1").is_err());
        assert_eq!(check_primitive("ST", "anything"), Ok(()));
        assert_eq!(check_primitive("NM", "x").unwrap_err().data_type, "NM");
    }
}

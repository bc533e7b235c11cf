//! HTTP dates (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred format), for
//! `Last-Modified` and `If-Modified-Since`.

use crate::civil;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch as an HTTP date.
pub fn http_date(secs: i64) -> String {
    let t = civil::utc(secs);
    let weekday = match t.weekday() {
        jiff::civil::Weekday::Monday => "Mon",
        jiff::civil::Weekday::Tuesday => "Tue",
        jiff::civil::Weekday::Wednesday => "Wed",
        jiff::civil::Weekday::Thursday => "Thu",
        jiff::civil::Weekday::Friday => "Fri",
        jiff::civil::Weekday::Saturday => "Sat",
        jiff::civil::Weekday::Sunday => "Sun",
    };
    let month = MONTHS[usize::try_from(t.month() - 1).unwrap_or(0)];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An HTTP date in the preferred format as seconds since the epoch; `None` when it
/// is not one.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day = parts.next()?;
    let month = parts.next()?;
    let m = MONTHS.iter().position(|n| *n == month)? + 1;
    let year = parts.next()?;
    let clock = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let range = crate::fhir::parse(&format!("{year}-{m:02}-{day}T{clock}Z"))?;
    Some(range.lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"), None);
    }
}

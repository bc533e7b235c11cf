//! FHIR date, dateTime and instant values as ranges of UTC seconds, for date search,
//! and HTTP dates for `Last-Modified`: the `datetime` crate's conversions, Corridor's
//! one home for date-times, named here as the repository uses them.

pub use datetime::fhir::{Range, instant, parse};
pub use datetime::http::{http_date, parse_http_date};

//! Corridor's one home for date-times. Every conversion between HL7 v2 `DTM`/`TS`
//! text, Unix seconds or microseconds, FHIR (ISO 8601 / RFC 3339) text and HTTP
//! dates is here, so a message's times mean the same thing wherever they are read.
//! Calendar arithmetic is `jiff`'s; IANA time zones too.
//!
//! - [`hl7`]: [`hl7::parse`] reads a `DTM` at the precision it was sent
//!   ([`hl7::Dtm`]), which writes itself as a FHIR date, dateTime or instant or
//!   names its instant ([`hl7::Dtm::unix_seconds`]); [`hl7::format_dtm_utc`] and
//!   [`hl7::now_dtm_utc`] write one.
//! - [`fhir`]: FHIR date search ranges ([`fhir::parse`]) and instants from Unix
//!   microseconds ([`fhir::instant`]).
//! - [`http`]: `Last-Modified` / `If-Modified-Since` dates.
//! - [`rfc3339`]: Corridor's own record times (API answers, the audit trail) and
//!   `--since` input.
//! - [`UtcOffset`] and [`Zone`]: where a time sent without an offset is taken.
//!
//! Unix time counts no leap seconds: a `...235960` value is kept as text (FHIR
//! allows it) but names no instant. Years are those jiff counts, -9999 to 9999.
//!
//! ```
//! use datetime::{Zone, hl7};
//!
//! let sent = hl7::parse("202401021304-0500").unwrap();
//! assert_eq!(sent.date_time(None), "2024-01-02T13:04:00-05:00");
//! assert_eq!(sent.unix_seconds(None), Some(1_704_218_640));
//! assert_eq!(hl7::format_dtm_utc(1_704_218_640), "20240102180400+0000");
//!
//! // A time without an offset takes the zone's offset in force at that moment.
//! let chicago: Zone = "America/Chicago".parse().unwrap();
//! assert_eq!(
//!     hl7::to_date_time("20240715083000", Some(&chicago)).unwrap(),
//!     "2024-07-15T08:30:00-05:00"
//! );
//! ```

mod civil;
pub mod fhir;
pub mod hl7;
pub mod http;
pub mod rfc3339;
mod zone;

pub use zone::{BadOffset, BadZone, UtcOffset, Zone};

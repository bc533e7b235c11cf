//! HL7 v2 DTM/TS values to FHIR date, dateTime and instant.
//!
//! The conversions are the `datetime` crate's (`datetime::hl7`), Corridor's one
//! home for date-times; they are named here as the converter uses them. The
//! sender's precision and offset are kept, and a time is never dropped. FHIR
//! requires an offset on a dateTime that has a time, so where the value has none
//! the converter supplies one (see [`crate::Options::timezone`]: the message's own
//! MSH-7 offset, else the configured [`Zone`], else UTC, which the Provenance then
//! says was assumed). FHIR also requires seconds once there is a time: `HHMM`
//! becomes `HH:MM:00`.

pub use datetime::hl7::{Dtm as V2DateTime, parse, to_date, to_date_time, to_instant};
pub use datetime::{BadOffset, BadZone, UtcOffset, Zone};

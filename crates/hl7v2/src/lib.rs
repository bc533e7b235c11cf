//! HL7 v2 messages: zero-copy parsing, paths, escaping, character sets,
//! editing, acknowledgements and batches.
//!
//! This crate does no I/O. It reads bytes and writes bytes.
//!
//! ```
//! use hl7v2::Message;
//!
//! let bytes = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|MSG1|P|2.5.1\r\
//!               PID|1||123^^^HOSP^MR~999^^^SSA^SS||DOE^JANE\r\
//!               OBX|1|NM|WBC^White cells^LN||7.5|10*3/uL\r";
//! let msg = Message::parse(bytes)?;
//! assert_eq!(msg.get_str("PID-3[2].1")?.as_deref(), Some("999"));
//! assert_eq!(msg.get_str("OBX-5")?.as_deref(), Some("7.5"));
//!
//! // `[*]` selects every repetition (or every occurrence of a segment).
//! let every_id: hl7v2::Path = "PID-3[*].1".parse()?;
//! let ids: Vec<_> = every_id.values_in(&msg).iter().map(|e| e.text()).collect();
//! assert_eq!(ids, ["123", "999"]);
//!
//! // An editable copy, and the acknowledgement a receiver sends back.
//! let mut owned = hl7v2::OwnedMessage::from(&msg);
//! owned.set_text(&"PID-5.2".parse()?, "JOAN")?;
//! assert_eq!(owned.get_text(&"PID-5".parse()?).as_deref(), Some("DOE^JOAN"));
//! let ack = hl7v2::AckBuilder::new(&msg, hl7v2::AckCode::AA).build();
//! assert!(ack.starts_with(b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|"));
//! # Ok::<(), hl7v2::Error>(())
//! ```

mod ack;
mod batch;
mod charset;
mod delimiters;
mod error;
pub mod escape;
mod header;
mod message;
mod owned;
mod path;

pub use ack::{AckBuilder, AckCode, AckCondition, AckError, AckMode, ErrorCode, Outcome, Severity};
pub use batch::{Batch, StreamItem, StreamSplitter, split_stream};
pub use charset::Charset;
pub use delimiters::Delimiters;
pub use error::{Error, ErrorKind, Location, Result};
pub use escape::Formatting;
pub use header::RawHeader;
pub use message::{Context, Element, Level, Message, Segment};
pub use owned::OwnedMessage;
pub use path::{Path, SegmentName};

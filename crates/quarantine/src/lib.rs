//! Quarantine and data quality: where messages that fail validation wait for an analyst,
//! and counts of every finding by sender, message type and path.
//!
//! A channel that validates after the ACK runs every message through its
//! [`ChannelValidation`]; the engine then writes, in the transaction that processes the
//! message, [`count_findings_in`] (every validated message) and, when a finding is an
//! error, [`quarantine_in`] (the journal state becomes `quarantined`). A source that
//! validates before the ACK does the same in the transaction that stores the rejected
//! message ([`record_failure_in`]). Everything is prepared outside the writer
//! ([`Validated::new`]), so the write only runs statements.
//!
//! ```
//! use std::sync::Arc;
//! use quarantine::{ChannelValidation, Header, Quarantine, Validated};
//! use store::{Journal, MessageState, NewMessage, Store, UnixMicros};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! Quarantine::migrate(&store).await?;
//!
//! // A source validating before the ACK: validate outside the writer...
//! let raw = b"MSH|^~\\&|LAB|F|EHR|F|20240315||ORU^R01^ORU_R01|7|P|2.5.1\r\
//!             PID|1||42^^^H^MR||Doe^Jane\rOBR|1||F1|1234-5^Test^LN\r\
//!             OBX|1|NM|1234-5^Test^LN||high||||||F\r";
//! let message = hl7v2::Message::parse(raw)?;
//! let header = Header::of(&message);
//! let findings = ChannelValidation::default().validate(&message);
//! let validated = Validated::new("lab", header.clone(), &findings);
//! assert!(validated.has_errors()); // OBX-5 is not a number: the sender gets AE
//!
//! // ...then store the rejected message, count and quarantine it in one write.
//! let rejected = NewMessage {
//!     channel: Arc::from("lab"),
//!     raw: raw.to_vec().into(),
//!     received_at: UnixMicros::now(),
//!     peer: Arc::from("10.0.0.7:50122"),
//!     tls_identity: None,
//!     sending_application: header.sending_application.clone(),
//!     sending_facility: header.sending_facility.clone(),
//!     message_type: "ORU^R01^ORU_R01".into(),
//!     control_id: header.control_id.clone(),
//!     version: header.version.clone(),
//!     state: MessageState::Rejected,
//!     state_reason: Some(validated.reason()),
//! };
//! let entry = store
//!     .write(move |conn| {
//!         let id = Journal::append_in(conn, &rejected, None)?.id();
//!         quarantine::record_failure_in(conn, id, &validated, UnixMicros::now())
//!     })
//!     .await?;
//!
//! let q = Quarantine::new(store.clone(), quarantine::Validators::new());
//! let detail = q.get(entry).await?;
//! assert_eq!(detail.findings[0].path, "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX-5");
//! assert_eq!(detail.original.entry.state, MessageState::Rejected);
//! # Ok(()) }
//! ```
//!
//! An analyst then works through [`Quarantine`] (served over HTTP by the `api` crate,
//! under `/api/quarantine`):
//!
//! - **edit**: new content, who and why; the content is validated at once and its findings
//!   stored. Every edit is kept with the content before and after it; the journal's
//!   original is never changed.
//! - **revalidate**: validates the current content again (after a profile changed).
//! - **reprocess** one or many: the current content (edited or original) is appended to
//!   the journal as a new `received` message on the same channel, the entry becomes
//!   `reprocessed` and names the new message (`reprocessed_as`); the channel's pipeline is
//!   woken through the caller's notifier. An entry whose current findings hold an error is
//!   refused unless forced. A channel validating after the ACK validates it again, so a
//!   message still wrong comes back to quarantine as a new entry naming its predecessor.
//! - **discard** with a reason.
//!
//! [`prometheus_text`] gives the `/metrics` lines: `corridor_findings_total{channel,
//! sender,message_type,path,code,severity}`, `corridor_validated_messages_total` and
//! `corridor_quarantine_entries`.
//!
//! # SCHEMA
//!
//! The component `quarantine` (see `component_schema`) keeps four tables in `corridor.db`.
//! Times are microseconds since the Unix epoch.
//!
//! `quarantine`, one row per quarantined journal message:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | INTEGER PK | Entry id, never reused. |
//! | `message_id` | INTEGER UNIQUE | The journal id of the quarantined message (its row is never changed). |
//! | `channel` | TEXT | The channel that received it. |
//! | `sending_application` | TEXT | MSH-3 as received. |
//! | `sending_facility` | TEXT | MSH-4 as received. |
//! | `sender` | TEXT | MSH-3's first component, as data quality counts it (`(none)` if empty). |
//! | `message_type` | TEXT | MSH-9.1^MSH-9.2, e.g. `ORU^R01`. |
//! | `control_id` | TEXT | MSH-10. |
//! | `findings` | TEXT | The current content's findings, a JSON array (path, code, severity, kind, segment, field position, sentence). |
//! | `errors`, `warnings` | INTEGER | How many of them are errors and warnings. |
//! | `quarantined_at` | INTEGER | When it was quarantined. |
//! | `reason` | TEXT | The validation summary it was quarantined with. |
//! | `content` | BLOB NULL | The current content after edits; NULL = the journal's original. |
//! | `revision` | INTEGER | Number of edits; guards against two analysts editing at once. |
//! | `validated_at` | INTEGER | When `findings` were computed. |
//! | `status` | TEXT | `open`, `reprocessed` or `discarded`. |
//! | `status_by`, `status_reason` | TEXT NULL | Who reprocessed or discarded it, and why. |
//! | `status_changed_at` | INTEGER | When `status` last changed. |
//! | `reprocessed_as` | INTEGER NULL | The journal id of the message its reprocessing appended. |
//!
//! Indexes: `quarantine_by_message (message_id)`, `quarantine_by_status (status, channel,
//! id)`, `quarantine_by_reprocessed_as (reprocessed_as)`.
//!
//! `quarantine_edits`, every edit, oldest first: `id`, `quarantine_id`, `edited_at`,
//! `edited_by`, `reason`, `previous` (BLOB, the content before), `content` (BLOB, the
//! content after), `findings` (JSON, of `content` when written). Index
//! `quarantine_edits_by_entry (quarantine_id, id)`.
//!
//! `data_quality`, one counter per channel, `sender`, `message_type`, `path` (the group
//! path without repetition numbers, e.g. `ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.
//! OBSERVATION.OBX-5`), `code` (table 0357) and `severity` (`error`, `warning`): `kind`,
//! `description` (the validator's sentence, without message values), `count`
//! (occurrences), `messages` (messages with at least one), `first_seen`, `last_seen`.
//!
//! `data_quality_messages`, one row per channel, sender and message type: `validated`,
//! `with_errors`, `with_warnings` (warnings and no errors), `first_seen`, `last_seen`.
//!
//! `data_quality_hourly` and `data_quality_messages_hourly`: the same counts per hour
//! (`hour`, microseconds at the hour's start, UTC), written in the same transaction,
//! keyed by `hour` first, so data quality over time (per day or hour,
//! [`data_quality_over_time_in`]) reads only the hours asked for. Neither is pruned
//! with the quarantine.
//!
//! ```sql
//! -- Which feed breaks which rule most, this week.
//! SELECT sender, message_type, path, code, count, messages FROM data_quality
//!  WHERE severity = 'error' AND last_seen > (strftime('%s','now') - 7*86400) * 1000000
//!  ORDER BY count DESC LIMIT 20;
//! -- Open entries with the number of edits.
//! SELECT q.id, q.channel, q.sender, q.message_type, q.errors,
//!        (SELECT count(*) FROM quarantine_edits e WHERE e.quarantine_id = q.id) AS edits
//!   FROM quarantine q WHERE q.status = 'open' ORDER BY q.id;
//! ```

mod analyst;
mod data_quality;
mod entry;
mod error;
mod filter;
mod metrics;
mod record;
mod schema;
mod validator;

pub use analyst::{Quarantine, normalize_content};
pub use data_quality::{
    Bucket, FieldOverTime, FindingCount, MessageCount, SenderOverTime, data_quality_in,
    data_quality_over_time_in,
};
pub use entry::{Detail, Edit, Edited, Reprocessed, Status, Summary};
pub use error::Error;
pub use filter::{DataQualityFilter, QuarantineFilter};
pub use metrics::{MAX_FINDING_SERIES, prometheus_text, prometheus_text_in};
pub use record::{
    FieldLocation, FindingRecord, QuarantineId, Validated, count_findings_in, normalize_path,
    quarantine_in, record_failure_in,
};
pub use schema::{COMPONENT, MIGRATIONS};
pub use validator::{ChannelValidation, Header, ProfileCache, Validators, has_errors};

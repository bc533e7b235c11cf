//! The receive pipeline of an MLLP source: frame -> journal (durable) -> ACK.
//!
//! Each batch of frames a connection delivers goes to the journal in ONE write
//! request, which the store's writer commits together with the requests of
//! other connections (group commit). Only after that commit returned are the
//! acknowledgements built and handed back, in frame order (invariant 1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hl7v2::{
    AckBuilder, AckCode, AckCondition, AckError, AckMode, ErrorCode, ErrorKind, Message, Outcome,
};
use mllp::{CommitAck, ConnectionInfo, FrameHandler};
use store::rusqlite::{self, params};
use store::{Appended, Journal, MessageId, MessageState, NewMessage, Store, UnixMicros};
use tracing::{debug, error, info, warn};

use crate::config::AckModeSetting;
use crate::metrics::ChannelMetrics;

/// The engine's own table, beside the journal, of application acknowledgements
/// owed to enhanced-mode senders (MSH-16); `application_ack` sends them.
pub const APPLICATION_ACKS_COMPONENT: &str = "engine_application_acks";

static APPLICATION_ACKS_MIGRATIONS: &[store::Migration] = &[store::Migration {
    version: 1,
    description: "application acknowledgements owed to enhanced-mode senders",
    sql: "CREATE TABLE application_acks_owed (
              message_id INTEGER PRIMARY KEY REFERENCES journal(id),
              condition  TEXT NOT NULL,   -- MSH-16: 'AL', 'SU' or 'ER'
              owed_since INTEGER NOT NULL  -- µs since the epoch
          );",
}];

const INSERT_OWED: &str = "INSERT OR IGNORE INTO application_acks_owed (message_id, condition, owed_since) VALUES (?1, ?2, ?3)";

/// Creates the engine's tables in `store` if they are missing.
pub async fn migrate(store: &Store) -> store::Result<()> {
    store
        .migrate_component(APPLICATION_ACKS_COMPONENT, APPLICATION_ACKS_MIGRATIONS)
        .await
        .map(|_| ())
}

/// How one listener stores and acknowledges.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    /// The channel name stored with each message.
    pub channel: Arc<str>,
    /// Original or enhanced acknowledgements.
    pub ack_mode: AckModeSetting,
    /// Duplicate detection window; `None` stores every message.
    pub duplicate_window: Option<Duration>,
    /// Woken after each commit that stored a new message: the channel's pipeline
    /// waits on it.
    pub stored: Arc<tokio::sync::Notify>,
}

/// The [`FrameHandler`] of an MLLP source: stores every frame in the journal,
/// then acknowledges it.
///
/// ```no_run
/// # async fn example(store: store::Store) -> Result<(), mllp::MllpError> {
/// use std::sync::Arc;
/// use engine::{AckModeSetting, ChannelMetrics, MllpReceiver, ReceiverSettings};
///
/// let receiver = MllpReceiver::new(
///     ReceiverSettings { channel: Arc::from("lab"), ack_mode: AckModeSetting::Original, duplicate_window: None, stored: Default::default() },
///     store,
///     Arc::new(ChannelMetrics::default()),
/// );
/// let server = mllp::MllpServer::bind("lab", mllp::MllpServerConfig::new("127.0.0.1:0")).await?;
/// let handle = server.spawn(receiver);
/// # handle.shutdown().await; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MllpReceiver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ReceiverSettings,
    store: Store,
    metrics: Arc<ChannelMetrics>,
}

/// What the receiver learned from a frame before storing it.
struct Inspected {
    header: HeaderFields,
    verdict: Verdict,
}

enum Verdict {
    /// Parsed; stored as received.
    Accept,
    /// Cannot be used; stored as rejected and answered with a NAK.
    Reject {
        outcome: Outcome,
        error: AckError,
        reason: String,
        /// A short, PHI-free word for the log (`not_hl7`, `bad_segment`, ...).
        kind: &'static str,
    },
}

/// The result of storing one frame.
enum Stored {
    New(MessageId),
    Duplicate(MessageId),
    Failed,
}

impl MllpReceiver {
    /// A receiver storing into `store` and counting into `metrics`.
    pub fn new(settings: ReceiverSettings, store: Store, metrics: Arc<ChannelMetrics>) -> Self {
        MllpReceiver {
            inner: Arc::new(Inner {
                settings,
                store,
                metrics,
            }),
        }
    }

    async fn receive(&self, frames: Vec<Bytes>, conn: &ConnectionInfo) -> Vec<Vec<Bytes>> {
        let started = Instant::now();
        let inner = &*self.inner;
        let received_at = UnixMicros::now();
        let peer: Arc<str> = Arc::from(conn.peer_addr.to_string());
        let tls_identity: Option<Arc<str>> = conn.client_subject.as_deref().map(Arc::from);
        let enhanced = inner.settings.ack_mode == AckModeSetting::Enhanced;

        let inspected: Vec<Inspected> = frames.iter().map(|f| inspect(f)).collect();
        let mut records = Vec::with_capacity(frames.len());
        for (frame, item) in frames.iter().zip(&inspected) {
            let (state, state_reason) = match &item.verdict {
                Verdict::Accept => (MessageState::Received, None),
                Verdict::Reject { reason, .. } => (MessageState::Rejected, Some(reason.clone())),
            };
            let owed = match (&item.verdict, enhanced) {
                (Verdict::Accept, true) => {
                    application_ack_owed(&item.header.application_ack).map(str::to_owned)
                }
                _ => None,
            };
            let message = NewMessage {
                channel: inner.settings.channel.clone(),
                raw: frame.clone(),
                received_at,
                peer: peer.clone(),
                tls_identity: tls_identity.clone(),
                sending_application: item.header.sending_application.clone(),
                sending_facility: item.header.sending_facility.clone(),
                message_type: item.header.message_type.clone(),
                control_id: item.header.control_id.clone(),
                version: item.header.version.clone(),
                state,
                state_reason,
            };
            records.push((message, owed));
        }

        let window = inner.settings.duplicate_window;
        let stored: Vec<Stored> = match inner
            .store
            .write(move |conn| store_batch(conn, &records, window))
            .await
        {
            Ok(results) => {
                if results.iter().any(|s| matches!(s, Stored::New(_))) {
                    inner.settings.stored.notify_one();
                }
                results
            }
            Err(err) => {
                error!(
                    channel = %inner.settings.channel,
                    peer = %conn.peer_addr,
                    messages = frames.len(),
                    error = %err,
                    "could not store messages; answering with negative acknowledgements"
                );
                frames.iter().map(|_| Stored::Failed).collect()
            }
        };

        // Everything below runs after the commit returned: the ACKs may go out.
        let mut responses = Vec::with_capacity(frames.len());
        let mut failures = 0;
        for ((frame, item), stored) in frames.iter().zip(&inspected).zip(&stored) {
            let mut out = Vec::with_capacity(2);
            if conn.commit_acks {
                out.push(match stored {
                    Stored::Failed => CommitAck::Reject.payload(),
                    _ => CommitAck::Accept.payload(),
                });
            }
            let ack = match stored {
                Stored::Failed => {
                    failures += 1;
                    self.store_failure_ack(frame, item)
                }
                Stored::Duplicate(id) => {
                    inner.metrics.count_duplicate();
                    debug!(channel = %inner.settings.channel, peer = %conn.peer_addr, id = %id, size = frame.len(), "duplicate acknowledged again, not stored");
                    self.positive_ack(frame, item)
                }
                Stored::New(id) => match &item.verdict {
                    Verdict::Accept => {
                        inner.metrics.count_received(frame.len());
                        debug!(channel = %inner.settings.channel, peer = %conn.peer_addr, id = %id, size = frame.len(), "stored");
                        self.positive_ack(frame, item)
                    }
                    Verdict::Reject {
                        outcome,
                        error,
                        kind,
                        ..
                    } => {
                        inner.metrics.count_rejected(frame.len());
                        warn!(channel = %inner.settings.channel, peer = %conn.peer_addr, id = %id, size = frame.len(), problem = kind, "message rejected and stored for review");
                        self.negative_ack(frame, item, *outcome, error.clone())
                    }
                },
            };
            out.extend(ack.map(Bytes::from));
            responses.push(out);
        }
        if failures > 0 {
            inner.metrics.count_store_failures(failures);
        }
        inner
            .metrics
            .observe_ack_latency(started.elapsed(), frames.len() as u64);
        responses
    }

    fn mode(&self) -> AckMode {
        match self.inner.settings.ack_mode {
            AckModeSetting::Original => AckMode::Original,
            AckModeSetting::Enhanced => AckMode::Enhanced,
        }
    }

    /// Whether the sender wants an acknowledgement with `code` now: always in
    /// original mode; as MSH-15 asks in enhanced mode (empty MSH-15 means AL).
    fn wanted(&self, item: &Inspected, code: AckCode) -> bool {
        match self.inner.settings.ack_mode {
            AckModeSetting::Original => true,
            AckModeSetting::Enhanced => {
                AckCondition::parse(&item.header.accept_ack, AckCondition::Always).wants(code)
            }
        }
    }

    fn positive_ack(&self, frame: &[u8], item: &Inspected) -> Option<Vec<u8>> {
        let code = self.mode().code(Outcome::Accept);
        self.wanted(item, code)
            .then(|| AckBuilder::for_bytes(frame, code).build())
    }

    fn negative_ack(
        &self,
        frame: &[u8],
        item: &Inspected,
        outcome: Outcome,
        error: AckError,
    ) -> Option<Vec<u8>> {
        let code = self.mode().code(outcome);
        // Input without a readable header asked for nothing: it always gets its NAK.
        let wanted = item.header.control_id.is_empty() && item.header.accept_ack.is_empty()
            || self.wanted(item, code);
        wanted.then(|| AckBuilder::for_bytes(frame, code).error(error).build())
    }

    fn store_failure_ack(&self, frame: &[u8], item: &Inspected) -> Option<Vec<u8>> {
        let code = self.mode().code(Outcome::Error);
        let error = AckError::new(
            ErrorCode::ApplicationInternalError,
            "the message could not be stored; send it again",
        );
        self.wanted(item, code)
            .then(|| AckBuilder::for_bytes(frame, code).error(error).build())
    }
}

impl FrameHandler for MllpReceiver {
    async fn on_frame(&self, frame: Bytes, conn: &ConnectionInfo) -> Vec<Bytes> {
        self.receive(vec![frame], conn)
            .await
            .pop()
            .unwrap_or_default()
    }

    async fn on_frames(&self, frames: Vec<Bytes>, conn: &ConnectionInfo) -> Vec<Vec<Bytes>> {
        self.receive(frames, conn).await
    }

    fn on_connection_opened(&self, conn: &ConnectionInfo) {
        info!(channel = %self.inner.settings.channel, peer = %conn.peer_addr, conn = %conn.id, tls = conn.tls, "sender connected");
    }

    fn on_connection_closed(&self, conn: &ConnectionInfo) {
        info!(channel = %self.inner.settings.channel, peer = %conn.peer_addr, conn = %conn.id, "sender disconnected");
    }
}

/// Runs on the store's writer thread: appends every message of a batch, and
/// notes the application ACKs owed, in the shared transaction.
fn store_batch(
    conn: &rusqlite::Connection,
    records: &[(NewMessage, Option<String>)],
    window: Option<Duration>,
) -> store::Result<Vec<Stored>> {
    let mut results = Vec::with_capacity(records.len());
    for (message, owed) in records {
        let window = if message.state == MessageState::Received {
            window
        } else {
            None
        };
        let result = Journal::append_in(conn, message, window).and_then(|appended| {
            if let (Appended::New(id), Some(condition)) = (appended, owed) {
                conn.prepare_cached(INSERT_OWED)?.execute(params![
                    id.0,
                    condition,
                    UnixMicros::now().0
                ])?;
            }
            Ok(appended)
        });
        results.push(match result {
            Ok(Appended::New(id)) => Stored::New(id),
            Ok(Appended::Duplicate(id)) => Stored::Duplicate(id),
            Err(err) => {
                error!(error = %err, "could not append a message to the journal");
                Stored::Failed
            }
        });
    }
    Ok(results)
}

/// MSH-16 as the condition an application ACK is owed under, or `None` when
/// none is owed (empty or NE).
fn application_ack_owed(msh16: &str) -> Option<&'static str> {
    match AckCondition::parse(msh16, AckCondition::Never) {
        AckCondition::Always => Some("AL"),
        AckCondition::OnSuccessOnly => Some("SU"),
        AckCondition::OnErrorOnly => Some("ER"),
        AckCondition::Never => None,
    }
}

/// The MSH fields the journal keeps, read without parsing the body, so even a
/// message that does not parse is stored with what can be read of its header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HeaderFields {
    sending_application: String,
    sending_facility: String,
    message_type: String,
    control_id: String,
    version: String,
    accept_ack: String,
    application_ack: String,
}

impl HeaderFields {
    fn scan(frame: &[u8]) -> HeaderFields {
        let bytes = skip_leading_blanks(frame);
        if bytes.len() < 4 || !bytes.starts_with(b"MSH") {
            return HeaderFields::default();
        }
        let separator = bytes[3];
        let line_end = memchr_line_end(bytes);
        // Split after "MSH": part 0 is empty (before MSH-1), part k is MSH-(k+1).
        let mut fields: [&[u8]; 17] = [&[]; 17];
        for (i, part) in bytes[3..line_end].split(|&b| b == separator).enumerate() {
            if i >= fields.len() {
                break;
            }
            fields[i] = part;
        }
        let text = |n: usize| String::from_utf8_lossy(fields[n - 1]).trim().to_owned();
        HeaderFields {
            sending_application: text(3),
            sending_facility: text(4),
            message_type: text(9),
            control_id: text(10),
            version: text(12),
            accept_ack: text(15),
            application_ack: text(16),
        }
    }
}

fn skip_leading_blanks(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn memchr_line_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len())
}

/// Decides whether a frame is a usable HL7 message, and if not, what the NAK says.
fn inspect(frame: &[u8]) -> Inspected {
    let header = HeaderFields::scan(frame);
    let verdict = match Message::parse(frame) {
        Ok(_) => Verdict::Accept,
        Err(err) => {
            let reason = err.to_string();
            let (outcome, code, kind) = match &err.kind {
                ErrorKind::Empty | ErrorKind::NotHl7 => {
                    (Outcome::Reject, ErrorCode::SegmentSequenceError, "not_hl7")
                }
                ErrorKind::MissingFieldSeparator | ErrorKind::BadEncodingCharacters(_) => (
                    Outcome::Reject,
                    ErrorCode::SegmentSequenceError,
                    "bad_header",
                ),
                ErrorKind::UnsupportedCharset(_) => (
                    Outcome::Reject,
                    ErrorCode::TableValueNotFound,
                    "unsupported_charset",
                ),
                ErrorKind::TooLarge(_) => (Outcome::Reject, ErrorCode::ValueTooLong, "too_large"),
                ErrorKind::BadSegmentName(_) => (
                    Outcome::Error,
                    ErrorCode::SegmentSequenceError,
                    "bad_segment",
                ),
                ErrorKind::MultipleMessages => (
                    Outcome::Error,
                    ErrorCode::SegmentSequenceError,
                    "several_messages",
                ),
                _ => (
                    Outcome::Error,
                    ErrorCode::SegmentSequenceError,
                    "unparseable",
                ),
            };
            let mut error = AckError::new(code, reason.clone());
            let location = &err.location;
            if let Some(segment) = &location.segment {
                error = error.at(segment, 1, location.field.unwrap_or(0));
            } else if matches!(err.kind, ErrorKind::UnsupportedCharset(_)) {
                error = error.at("MSH", 1, 18);
            } else if kind == "bad_header" {
                error = error.at("MSH", 1, 2);
            }
            Verdict::Reject {
                outcome,
                error,
                reason,
                kind,
            }
        }
    };
    Inspected { header, verdict }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_read_without_parsing_the_body() {
        let header = HeaderFields::scan(
            b"\r\nMSH|^~\\&|LAB|NORTH|EHR|SOUTH|20260101||ORU^R01^ORU_R01|C42|P|2.5.1|||ER|AL\rP@D|x",
        );
        assert_eq!(header.sending_application, "LAB");
        assert_eq!(header.sending_facility, "NORTH");
        assert_eq!(header.message_type, "ORU^R01^ORU_R01");
        assert_eq!(header.control_id, "C42");
        assert_eq!(header.version, "2.5.1");
        assert_eq!(header.accept_ack, "ER");
        assert_eq!(header.application_ack, "AL");
        assert_eq!(HeaderFields::scan(b"hello"), HeaderFields::default());
    }

    #[test]
    fn bad_segment_is_an_application_error_located_at_the_segment() {
        let inspected = inspect(b"MSH|^~\\&|LAB|N|||20260101||ORU^R01|1|P|2.5\rP@D|1\r");
        match inspected.verdict {
            Verdict::Reject {
                outcome,
                error,
                kind,
                ..
            } => {
                assert_eq!(outcome, Outcome::Error);
                assert_eq!(kind, "bad_segment");
                assert_eq!(error.segment.as_deref(), Some("P@D"));
            }
            Verdict::Accept => panic!("a bad segment name must be rejected"),
        }
    }

    #[test]
    fn input_without_msh_is_rejected_as_not_hl7() {
        match inspect(b"GET / HTTP/1.1\r\n").verdict {
            Verdict::Reject { outcome, kind, .. } => {
                assert_eq!(outcome, Outcome::Reject);
                assert_eq!(kind, "not_hl7");
            }
            Verdict::Accept => panic!("non-HL7 input must be rejected"),
        }
    }
}

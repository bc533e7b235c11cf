//! The intake every source shares: message -> journal (durable) -> ACK.
//!
//! Each batch of messages a source hands over (the frames a connection delivered,
//! an HTTP body, a file) goes to the journal in ONE write request, which the
//! store's writer commits together with the requests of other sources (group
//! commit). Only after that commit returned are the acknowledgements built and
//! handed back, in order (invariant 1), and the channel's pipeline woken.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hl7v2::{
    AckBuilder, AckCode, AckCondition, AckError, AckMode, ErrorCode, ErrorKind, Message, Outcome,
    Severity,
};
use hl7v2_spec::validate::{Finding, Severity as FindingSeverity};
use quarantine::{ChannelValidation, Header, Validated};
use store::rusqlite::{self, params};
use store::{Appended, Journal, MessageId, MessageState, NewMessage, Store, UnixMicros};
use tracing::{debug, error, warn};

use crate::metrics::ChannelMetrics;
use serde::Deserialize;

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

/// The engine's table of the positions of the sources that keep one (the database
/// source): the last row whose message is in the journal, written in the transaction
/// that appends that message.
pub const SOURCE_POSITIONS_COMPONENT: &str = "engine_source_positions";

static SOURCE_POSITIONS_MIGRATIONS: &[store::Migration] = &[store::Migration {
    version: 1,
    description: "the last position each polling source stored",
    sql: "CREATE TABLE source_positions (
              channel    TEXT PRIMARY KEY,
              position   TEXT NOT NULL,
              updated_at INTEGER NOT NULL  -- µs since the epoch
          );",
}];

const UPSERT_POSITION: &str = "INSERT INTO source_positions (channel, position, updated_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (channel) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";

/// The position `channel`'s source stored last, if any.
pub fn stored_position(store: &Store, channel: &str) -> store::Result<Option<String>> {
    store.read(|conn| {
        use store::rusqlite::OptionalExtension;
        Ok(conn
            .prepare_cached("SELECT position FROM source_positions WHERE channel = ?1")?
            .query_row([channel], |row| row.get(0))
            .optional()?)
    })
}

const INSERT_OWED: &str = "INSERT OR IGNORE INTO application_acks_owed (message_id, condition, owed_since) VALUES (?1, ?2, ?3)";

/// Creates the engine's tables in `store` if they are missing (its own, and the
/// message search index the pipelines write).
pub async fn migrate(store: &Store) -> store::Result<()> {
    store
        .migrate_component(store::search::COMPONENT, store::search::MIGRATIONS)
        .await?;
    store
        .migrate_component(APPLICATION_ACKS_COMPONENT, APPLICATION_ACKS_MIGRATIONS)
        .await?;
    store
        .migrate_component(SOURCE_POSITIONS_COMPONENT, SOURCE_POSITIONS_MIGRATIONS)
        .await
        .map(|_| ())
}

/// How a listener acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckModeSetting {
    /// One application ACK per message: AA once stored, AE/AR when it cannot be parsed.
    #[default]
    Original,
    /// HL7 enhanced mode: a commit ACK (CA/CE/CR) as MSH-15 asks, and an
    /// application ACK later as MSH-16 asks.
    Enhanced,
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

/// What a source tells the intake about where messages came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Stored in the journal's `peer` column: the sender's socket address, or
    /// `file:NAME` for a directory source.
    pub peer: Arc<str>,
    /// The client certificate's identity under mutual TLS.
    pub tls_identity: Option<Arc<str>>,
}

impl Origin {
    /// Messages from `peer` without a TLS identity.
    pub fn new(peer: impl Into<Arc<str>>) -> Origin {
        Origin {
            peer: peer.into(),
            tls_identity: None,
        }
    }
}

/// What became of one message the intake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeStatus {
    /// Stored as `received`: the pipeline takes it from here.
    Stored(MessageId),
    /// A repeat of a message stored within the duplicate window: acknowledged again,
    /// not stored.
    Duplicate(MessageId),
    /// Stored as `rejected` (it does not parse, or failed validation before the ACK);
    /// the reason is PHI-free words for people.
    Rejected {
        /// Its journal id.
        id: MessageId,
        /// Why, as stored in `state_reason`.
        reason: String,
    },
    /// The store could not take it: the sender should send it again.
    Failed,
}

/// The answer to one message: its status and the acknowledgement to send.
#[derive(Debug, Clone)]
pub struct Received {
    /// What became of it.
    pub status: IntakeStatus,
    /// The code the acknowledgement carries (also when none is sent).
    pub code: AckCode,
    /// The ACK or NAK, when the sender wants one (in enhanced mode MSH-15 decides).
    pub ack: Option<Vec<u8>>,
}

impl Received {
    /// True when the sender may forget the message: stored, or a duplicate of a stored one.
    pub fn accepted(&self) -> bool {
        matches!(
            self.status,
            IntakeStatus::Stored(_) | IntakeStatus::Duplicate(_)
        )
    }
}

/// Most ERR segments one NAK carries (one per finding); the journal keeps them all in
/// the quarantine entry.
const MAX_ERR_SEGMENTS: usize = 100;

/// The store-then-acknowledge path every source shares: parse, validate (when the
/// channel validates before the ACK), append to the journal through the store's group
/// commit (duplicate window; rejected messages are stored too), and only after that
/// commit build each ACK or NAK and wake the channel's pipeline.
///
/// ```no_run
/// # async fn example(store: store::Store) {
/// use std::sync::Arc;
/// use engine::{AckModeSetting, ChannelMetrics, Intake, Origin, ReceiverSettings};
///
/// let intake = Intake::new(
///     ReceiverSettings { channel: Arc::from("lab"), ack_mode: AckModeSetting::Original, duplicate_window: None, stored: Default::default() },
///     store,
///     Arc::new(ChannelMetrics::default()),
/// );
/// let answers = intake
///     .receive(vec![bytes::Bytes::from_static(b"MSH|^~\\&|LAB|N|||20260101||ADT^A01|1|P|2.5\rPID|1\r")], &Origin::new("10.0.0.7:50122"))
///     .await;
/// assert!(answers[0].accepted());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Intake {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ReceiverSettings,
    store: Store,
    metrics: Arc<ChannelMetrics>,
    /// Set when the channel validates before the ACK.
    validation: Option<Arc<ChannelValidation>>,
    /// Accepted messages are stored `processed` (see [`Intake::processed_on_receipt`]).
    processed_on_receipt: bool,
    /// Where an MSH-7 without an offset is read, for the clock lag (`None`: UTC).
    clock_zone: Option<Arc<datetime::Zone>>,
}

/// What the intake learned from a message before storing it.
struct Inspected {
    header: HeaderFields,
    verdict: Verdict,
    /// The data-quality write of a validated message: counts (accepted) or counts
    /// and quarantine entry (rejected by validation).
    validated: Option<Validated>,
}

enum Verdict {
    /// Parsed (and valid, when validated); stored as received.
    Accept,
    /// Cannot be used; stored as rejected and answered with a NAK.
    Reject {
        outcome: Outcome,
        errors: Vec<AckError>,
        reason: String,
        /// A short, PHI-free word for the log (`not_hl7`, `bad_segment`, `invalid`, ...).
        kind: &'static str,
    },
}

/// The result of storing one message.
enum Stored {
    New(MessageId),
    Duplicate(MessageId),
    Failed,
}

/// One message ready for the writer.
struct Record {
    message: NewMessage,
    owed: Option<String>,
    validated: Option<Validated>,
    /// The source position stored with the message.
    position: Option<String>,
    /// The message's search keys, for a message `processed` on receipt (an archive
    /// channel's): no pipeline will index it later.
    search: Vec<(store::search::SearchKind, String)>,
}

/// One row's message from a source that keeps a position (the database source).
#[derive(Debug, Clone)]
pub struct Positioned {
    /// The message.
    pub raw: Bytes,
    /// Why the message cannot be used, if so: it is stored as `rejected` with this
    /// reason (and the position advances past it).
    pub problem: Option<String>,
    /// The source's position once this message is stored.
    pub position: String,
}

impl Intake {
    /// An intake storing into `store` and counting into `metrics`.
    pub fn new(settings: ReceiverSettings, store: Store, metrics: Arc<ChannelMetrics>) -> Self {
        Intake {
            inner: Arc::new(Inner {
                settings,
                store,
                metrics,
                validation: None,
                processed_on_receipt: false,
                clock_zone: None,
            }),
        }
    }

    /// The same intake validating every message before its ACK: a message with an
    /// error finding is stored as `rejected` (with a quarantine entry and the
    /// data-quality counts, in the same write) and answered AE, or AR when its type,
    /// event, version or processing id is not supported, with one ERR segment per
    /// finding. Valid messages are counted in the data-quality counters.
    pub fn validating(self, validation: Arc<ChannelValidation>) -> Self {
        self.with(|inner| inner.validation = Some(validation))
    }

    /// The same intake storing accepted messages as `processed` in the commit that
    /// stores them, for a channel with nothing to process (no stage, no destination:
    /// an archive). Its pipeline is not woken; it would only flip the state.
    pub fn processed_on_receipt(self) -> Self {
        self.with(|inner| inner.processed_on_receipt = true)
    }

    /// The same intake reading an MSH-7 without an offset in `zone` for the sender's
    /// clock lag (the channel's `sender_timezone`; UTC without it).
    pub fn clock_zone(self, zone: datetime::Zone) -> Self {
        self.with(|inner| inner.clock_zone = Some(Arc::new(zone)))
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            settings: shared.settings.clone(),
            store: shared.store.clone(),
            metrics: shared.metrics.clone(),
            validation: shared.validation.clone(),
            processed_on_receipt: shared.processed_on_receipt,
            clock_zone: shared.clock_zone.clone(),
        });
        change(&mut inner);
        Intake {
            inner: Arc::new(inner),
        }
    }

    /// The channel this intake stores for.
    pub fn channel(&self) -> &Arc<str> {
        &self.inner.settings.channel
    }

    /// The store messages are appended to.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Stores `messages` (in one write request, committed with other sources' requests)
    /// and answers each, in order. Returns only after the commit.
    pub async fn receive(&self, messages: Vec<Bytes>, origin: &Origin) -> Vec<Received> {
        let count = messages.len();
        self.receive_with(messages, origin, vec![None; count], vec![None; count])
            .await
    }

    /// Stores the messages of a polling source like [`Intake::receive`], each with its
    /// position: a message's journal row and its position (in `source_positions`, by
    /// channel) are committed in one transaction, so a crash neither loses nor repeats a
    /// row. A message that cannot be stored holds the ones after it (answered
    /// [`IntakeStatus::Failed`], not stored), so the stored position never passes a row
    /// that is not in the journal. A duplicate advances the position too.
    pub async fn receive_positioned(
        &self,
        rows: Vec<Positioned>,
        origin: &Origin,
    ) -> Vec<Received> {
        let mut messages = Vec::with_capacity(rows.len());
        let mut problems = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        for row in rows {
            messages.push(row.raw);
            problems.push(row.problem);
            positions.push(Some(row.position));
        }
        self.receive_with(messages, origin, problems, positions)
            .await
    }

    async fn receive_with(
        &self,
        messages: Vec<Bytes>,
        origin: &Origin,
        problems: Vec<Option<String>>,
        mut positions: Vec<Option<String>>,
    ) -> Vec<Received> {
        let started = Instant::now();
        let inner = &*self.inner;
        let received_at = UnixMicros::now();
        let enhanced = inner.settings.ack_mode == AckModeSetting::Enhanced;
        let accepted_state = if inner.processed_on_receipt {
            MessageState::Processed
        } else {
            MessageState::Received
        };

        let mut inspected: Vec<Inspected> = messages
            .iter()
            .map(|m| inspect(m, &inner.settings.channel, inner.validation.as_deref()))
            .collect();
        for (item, problem) in inspected.iter_mut().zip(problems) {
            if let Some(problem) = problem {
                item.validated = None;
                item.verdict = Verdict::Reject {
                    outcome: Outcome::Error,
                    errors: vec![AckError::new(
                        ErrorCode::ApplicationInternalError,
                        problem.clone(),
                    )],
                    reason: problem,
                    kind: "source_template",
                };
            }
        }
        let mut records = Vec::with_capacity(messages.len());
        for ((raw, item), position) in messages
            .iter()
            .zip(&mut inspected)
            .zip(positions.iter_mut())
        {
            let (state, state_reason) = match &item.verdict {
                Verdict::Accept => (accepted_state, None),
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
                raw: raw.clone(),
                received_at,
                peer: origin.peer.clone(),
                tls_identity: origin.tls_identity.clone(),
                sending_application: item.header.sending_application.clone(),
                sending_facility: item.header.sending_facility.clone(),
                message_type: item.header.message_type.clone(),
                control_id: item.header.control_id.clone(),
                version: item.header.version.clone(),
                state,
                state_reason,
            };
            let search = if message.state == MessageState::Processed {
                crate::search_keys::search_keys(raw)
            } else {
                Vec::new()
            };
            records.push(Record {
                message,
                owed,
                validated: item.validated.take(),
                position: position.take(),
                search,
            });
        }

        let window = inner.settings.duplicate_window;
        let stored: Vec<Stored> = match inner
            .store
            .write(move |conn| store_batch(conn, records, window))
            .await
        {
            Ok(results) => {
                if !inner.processed_on_receipt
                    && results.iter().any(|s| matches!(s, Stored::New(_)))
                {
                    inner.settings.stored.notify_one();
                }
                results
            }
            Err(err) => {
                error!(
                    channel = %inner.settings.channel,
                    peer = %origin.peer,
                    messages = messages.len(),
                    error = %err,
                    "could not store messages; answering with negative acknowledgements"
                );
                messages.iter().map(|_| Stored::Failed).collect()
            }
        };

        // Everything below runs after the commit returned: the ACKs may go out.
        let mut answers = Vec::with_capacity(messages.len());
        let mut failures = 0;
        for ((raw, item), stored) in messages.iter().zip(inspected).zip(stored) {
            let answer = match stored {
                Stored::Failed => {
                    failures += 1;
                    let (code, ack) = self.store_failure_ack(raw, &item);
                    Received {
                        status: IntakeStatus::Failed,
                        code,
                        ack,
                    }
                }
                Stored::Duplicate(id) => {
                    inner.metrics.count_duplicate();
                    debug!(channel = %inner.settings.channel, peer = %origin.peer, id = %id, size = raw.len(), "duplicate acknowledged again, not stored");
                    let (code, ack) = self.positive_ack(raw, &item);
                    Received {
                        status: IntakeStatus::Duplicate(id),
                        code,
                        ack,
                    }
                }
                Stored::New(id) => {
                    inner.store.note_clock_lag(
                        &inner.settings.channel,
                        clock_lag_micros(
                            &item.header.message_time,
                            received_at,
                            inner.clock_zone.as_deref(),
                        ),
                    );
                    match item.verdict {
                        Verdict::Accept => {
                            inner.metrics.count_received(raw.len());
                            if inner.processed_on_receipt {
                                inner.metrics.observe_processed(
                                    accepted_state,
                                    UnixMicros::now(),
                                    received_at,
                                );
                            }
                            debug!(channel = %inner.settings.channel, peer = %origin.peer, id = %id, size = raw.len(), "stored");
                            let (code, ack) = self.positive_ack(raw, &item);
                            Received {
                                status: IntakeStatus::Stored(id),
                                code,
                                ack,
                            }
                        }
                        Verdict::Reject {
                            outcome,
                            ref errors,
                            kind,
                            ref reason,
                        } => {
                            inner.metrics.count_rejected(raw.len());
                            warn!(channel = %inner.settings.channel, peer = %origin.peer, id = %id, size = raw.len(), problem = kind, "message rejected and stored for review");
                            let (code, ack) = self.negative_ack(raw, &item, outcome, errors);
                            Received {
                                status: IntakeStatus::Rejected {
                                    id,
                                    reason: reason.clone(),
                                },
                                code,
                                ack,
                            }
                        }
                    }
                }
            };
            answers.push(answer);
        }
        if failures > 0 {
            inner.metrics.count_store_failures(failures);
        }
        inner
            .metrics
            .observe_ack_latency(started.elapsed(), messages.len() as u64);
        answers
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

    fn positive_ack(&self, raw: &[u8], item: &Inspected) -> (AckCode, Option<Vec<u8>>) {
        let code = self.mode().code(Outcome::Accept);
        let ack = self
            .wanted(item, code)
            .then(|| AckBuilder::for_bytes(raw, code).build());
        (code, ack)
    }

    fn negative_ack(
        &self,
        raw: &[u8],
        item: &Inspected,
        outcome: Outcome,
        errors: &[AckError],
    ) -> (AckCode, Option<Vec<u8>>) {
        let code = self.mode().code(outcome);
        // Input without a readable header asked for nothing: it always gets its NAK.
        let wanted = item.header.control_id.is_empty() && item.header.accept_ack.is_empty()
            || self.wanted(item, code);
        let ack = wanted.then(|| {
            let mut builder = AckBuilder::for_bytes(raw, code);
            for error in errors.iter().take(MAX_ERR_SEGMENTS) {
                builder = builder.error(error.clone());
            }
            builder.build()
        });
        (code, ack)
    }

    fn store_failure_ack(&self, raw: &[u8], item: &Inspected) -> (AckCode, Option<Vec<u8>>) {
        let code = self.mode().code(Outcome::Error);
        let error = AckError::new(
            ErrorCode::ApplicationInternalError,
            "the message could not be stored; send it again",
        );
        let ack = self
            .wanted(item, code)
            .then(|| AckBuilder::for_bytes(raw, code).error(error).build());
        (code, ack)
    }
}

/// Runs on the store's writer thread: appends every message of a batch, and
/// notes the application ACKs owed and the data-quality writes of validated
/// messages, in the shared transaction. A message whose extra writes fail is
/// rolled back alone (savepoint) and answered as not stored.
fn store_batch(
    conn: &rusqlite::Connection,
    records: Vec<Record>,
    window: Option<Duration>,
) -> store::Result<Vec<Stored>> {
    let mut results = Vec::with_capacity(records.len());
    // Set once a message with a position could not be stored: the positioned messages
    // after it wait, so the position never passes a row that is not stored.
    let mut held = false;
    for record in records {
        let Record {
            message,
            owed,
            validated,
            position,
            search,
        } = record;
        if held && position.is_some() {
            results.push(Stored::Failed);
            continue;
        }
        let window = if message.state != MessageState::Rejected {
            window
        } else {
            None
        };
        let extra =
            owed.is_some() || validated.is_some() || position.is_some() || !search.is_empty();
        let append = |conn: &rusqlite::Connection| {
            let appended = Journal::append_in(conn, &message, window)?;
            if let Appended::New(id) = appended {
                store::search::index_in(conn, id.0, &search)?;
                if let Some(condition) = &owed {
                    conn.prepare_cached(INSERT_OWED)?.execute(params![
                        id.0,
                        condition,
                        UnixMicros::now().0
                    ])?;
                }
                if let Some(validated) = &validated {
                    if message.state == MessageState::Rejected {
                        quarantine::record_failure_in(conn, id, validated, UnixMicros::now())?;
                    } else {
                        quarantine::count_findings_in(conn, validated, UnixMicros::now())?;
                    }
                }
            }
            if let Some(position) = &position {
                conn.prepare_cached(UPSERT_POSITION)?.execute(params![
                    &*message.channel,
                    position,
                    UnixMicros::now().0
                ])?;
            }
            Ok::<_, store::Error>(appended)
        };
        // A message with rows beside its journal row: all of them or none.
        let result = if extra {
            store::in_savepoint(conn, append)?
        } else {
            append(conn)
        };
        results.push(match result {
            Ok(Appended::New(id)) => Stored::New(id),
            Ok(Appended::Duplicate(id)) => Stored::Duplicate(id),
            Err(err) => {
                error!(error = %err, "could not append a message to the journal");
                held |= position.is_some();
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
    /// MSH-7, the time the sender says it made the message.
    message_time: String,
}

/// The sender's clock lag of a message: its receipt time less the time in `msh7`, in
/// microseconds. An MSH-7 without an offset is read in `zone` (UTC without one). `None`
/// when MSH-7 is missing, unreadable or has no time of day (a date alone says nothing
/// of a clock).
pub fn clock_lag_micros(
    msh7: &str,
    received_at: UnixMicros,
    zone: Option<&datetime::Zone>,
) -> Option<i64> {
    // Before v2.6 a TS may carry its precision in a second component.
    let value = msh7.split('^').next().unwrap_or("").trim();
    let dtm = datetime::hl7::parse(value)?;
    dtm.minute?;
    let seconds = dtm.unix_seconds(zone)?;
    let fraction = match dtm.fraction {
        Some(digits) => {
            let digits: String = digits.chars().take(6).collect();
            let scale = 10_i64.pow(6 - digits.len() as u32);
            digits.parse::<i64>().ok()? * scale
        }
        None => 0,
    };
    Some(received_at.0 - seconds.checked_mul(1_000_000)? - fraction)
}

impl HeaderFields {
    fn scan(frame: &[u8]) -> HeaderFields {
        let Some(header) = hl7v2::RawHeader::scan(frame) else {
            return HeaderFields::default();
        };
        HeaderFields {
            sending_application: header.text(3),
            sending_facility: header.text(4),
            message_type: header.text(9),
            control_id: header.text(10),
            version: header.text(12),
            accept_ack: header.text(15),
            application_ack: header.text(16),
            message_time: header.text(7),
        }
    }
}

/// Decides whether a message is usable (parses, and is valid when `validation` is
/// set), and if not, what the NAK says.
fn inspect(raw: &[u8], channel: &str, validation: Option<&ChannelValidation>) -> Inspected {
    let header = HeaderFields::scan(raw);
    let (verdict, validated) = match Message::parse(raw) {
        Ok(message) => match validation {
            None => (Verdict::Accept, None),
            Some(validation) => validate_before_ack(&message, channel, validation),
        },
        Err(err) => (parse_failure(&err), None),
    };
    Inspected {
        header,
        verdict,
        validated,
    }
}

/// The verdict on a message that does not parse.
fn parse_failure(err: &hl7v2::Error) -> Verdict {
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
        errors: vec![error],
        reason,
        kind,
    }
}

/// Most findings the journal's state reason lists (all are in the quarantine entry).
const MAX_REASON_FINDINGS: usize = 10;

/// Validates a parsed message for a channel that validates before the ACK.
fn validate_before_ack(
    message: &Message<'_>,
    channel: &str,
    validation: &ChannelValidation,
) -> (Verdict, Option<Validated>) {
    let findings = validation.validate(message);
    let validated = Validated::new(channel, Header::of(message), &findings);
    if !validated.has_errors() {
        return (Verdict::Accept, Some(validated));
    }
    // Reject (AR) when the message's kind is not supported at all; its content is in
    // error (AE) otherwise.
    let unsupported = findings
        .iter()
        .any(|f| f.severity == FindingSeverity::Error && matches!(f.code.code(), 200..=203));
    let outcome = if unsupported {
        Outcome::Reject
    } else {
        Outcome::Error
    };
    let errors: Vec<AckError> = findings.iter().map(finding_error).collect();
    let listed: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == FindingSeverity::Error)
        .take(MAX_REASON_FINDINGS)
        .map(ToString::to_string)
        .collect();
    let more = validated.errors().saturating_sub(listed.len());
    let mut reason = format!(
        "validation before the ACK: {} error{}: {}",
        validated.errors(),
        if validated.errors() == 1 { "" } else { "s" },
        listed.join("; ")
    );
    if more > 0 {
        reason.push_str(&format!("; and {more} more"));
    }
    (
        Verdict::Reject {
            outcome,
            errors,
            reason,
            kind: "invalid",
        },
        Some(validated),
    )
}

/// The ERR segment of a validation finding: its location (segment, occurrence, field,
/// repetition, component, subcomponent), its table 0357 code and severity.
fn finding_error(finding: &Finding) -> AckError {
    let code = match finding.code.code() {
        100 => ErrorCode::SegmentSequenceError,
        101 => ErrorCode::RequiredFieldMissing,
        102 => ErrorCode::DataTypeError,
        103 => ErrorCode::TableValueNotFound,
        104 => ErrorCode::ValueTooLong,
        200 => ErrorCode::UnsupportedMessageType,
        201 => ErrorCode::UnsupportedEventCode,
        202 => ErrorCode::UnsupportedProcessingId,
        203 => ErrorCode::UnsupportedVersionId,
        204 => ErrorCode::UnknownKeyIdentifier,
        205 => ErrorCode::DuplicateKeyIdentifier,
        206 => ErrorCode::ApplicationRecordLocked,
        _ => ErrorCode::ApplicationInternalError,
    };
    let mut error = AckError::new(code, format!("{}: {}", finding.path, finding.message))
        .severity(match finding.severity {
            FindingSeverity::Error => Severity::Error,
            FindingSeverity::Warning => Severity::Warning,
        })
        .at(
            &finding.segment_id,
            finding.segment_sequence.unwrap_or(1),
            0,
        );
    if let Some(position) = finding.field {
        error.field = usize::from(position.field);
        error.repetition = position.repetition;
        error.component = position.component;
        error.subcomponent = position.subcomponent;
    }
    error
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
        assert_eq!(header.message_time, "20260101");
    }

    /// 2024-03-01T11:00:05.250Z, in microseconds.
    const RECEIVED: UnixMicros = UnixMicros(1_709_290_805_250_000);

    #[test]
    fn the_clock_lag_reads_msh7_with_its_own_offset() {
        // 12:00 at +01:00 is 11:00Z: received 5.25 s later.
        assert_eq!(
            clock_lag_micros("20240301120000+0100", RECEIVED, None),
            Some(5_250_000)
        );
        // Its own offset comes before the configured zone.
        let chicago: datetime::Zone = "America/Chicago".parse().unwrap();
        assert_eq!(
            clock_lag_micros("20240301110000+0000", RECEIVED, Some(&chicago)),
            Some(5_250_000)
        );
        // Fractions of a second count; a sender ahead of the receiver lags below zero.
        assert_eq!(
            clock_lag_micros("20240301110005.2+0000", RECEIVED, None),
            Some(50_000)
        );
        assert_eq!(
            clock_lag_micros("20240301110105-0000", RECEIVED, None),
            Some(-59_750_000)
        );
        // A precision component (TS before v2.6) is not part of the time.
        assert_eq!(
            clock_lag_micros("20240301110000+0000^S", RECEIVED, None),
            Some(5_250_000)
        );
    }

    #[test]
    fn the_clock_lag_reads_msh7_without_offset_in_the_configured_zone() {
        // Without a zone: UTC.
        assert_eq!(
            clock_lag_micros("20240301110000", RECEIVED, None),
            Some(5_250_000)
        );
        let fixed: datetime::Zone = "-05:00".parse().unwrap();
        assert_eq!(
            clock_lag_micros("20240301060000", RECEIVED, Some(&fixed)),
            Some(5_250_000)
        );
        // Chicago keeps standard time (-06:00) on 1 March, daylight time (-05:00) in July.
        let chicago: datetime::Zone = "America/Chicago".parse().unwrap();
        assert_eq!(
            clock_lag_micros("20240301050000", RECEIVED, Some(&chicago)),
            Some(5_250_000)
        );
        let july = UnixMicros(RECEIVED.0 + 122 * 86_400 * 1_000_000);
        assert_eq!(
            clock_lag_micros("20240701060000", july, Some(&chicago)),
            Some(5_250_000)
        );
    }

    #[test]
    fn a_missing_or_unreadable_msh7_has_no_clock_lag() {
        for msh7 in [
            "",
            "yesterday",
            "2024030111",
            "20240301",
            "2024-03-01T11:00:00Z",
        ] {
            assert_eq!(clock_lag_micros(msh7, RECEIVED, None), None, "{msh7:?}");
        }
    }

    #[test]
    fn bad_segment_is_an_application_error_located_at_the_segment() {
        let inspected = inspect(
            b"MSH|^~\\&|LAB|N|||20260101||ORU^R01|1|P|2.5\rP@D|1\r",
            "lab",
            None,
        );
        match inspected.verdict {
            Verdict::Reject {
                outcome,
                errors,
                kind,
                ..
            } => {
                assert_eq!(outcome, Outcome::Error);
                assert_eq!(kind, "bad_segment");
                assert_eq!(errors[0].segment.as_deref(), Some("P@D"));
            }
            Verdict::Accept => panic!("a bad segment name must be rejected"),
        }
    }

    #[test]
    fn input_without_msh_is_rejected_as_not_hl7() {
        match inspect(b"GET / HTTP/1.1\r\n", "lab", None).verdict {
            Verdict::Reject { outcome, kind, .. } => {
                assert_eq!(outcome, Outcome::Reject);
                assert_eq!(kind, "not_hl7");
            }
            Verdict::Accept => panic!("non-HL7 input must be rejected"),
        }
    }
}

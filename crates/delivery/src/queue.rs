//! The durable queues: one table, `delivery_queue`, holding every destination's FIFO.
//!
//! Every function here runs on a connection the caller has: inside [`store::Store::write`]
//! for changes (so they share the group commit and the caller's transaction), inside
//! [`store::Store::read`] for reads.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use store::rusqlite::{Connection, OptionalExtension, params};
use store::{Journal, MessageId, MessageState, Migration, UnixMicros};

use crate::destinations::Outgoing;
use crate::router::{RouteOutcome, Routed};

/// The name of the queue tables in `component_schema`.
pub const COMPONENT: &str = "delivery";

/// The queue tables' migration steps, applied by [`store::Store::migrate_component`].
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "destination queues",
        sql: r#"
        CREATE TABLE delivery_queue (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id       INTEGER NOT NULL,
            channel          TEXT    NOT NULL,
            destination      TEXT    NOT NULL,
            ordering_key     TEXT    NOT NULL DEFAULT '',
            state            TEXT    NOT NULL,
            state_reason     TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  INTEGER NOT NULL,
            last_error       TEXT,
            answer           TEXT,
            queued_at        INTEGER NOT NULL,
            sent_at          INTEGER,
            acked_at         INTEGER,
            state_changed_at INTEGER NOT NULL,
            payload          BLOB    NOT NULL
        );
        CREATE INDEX delivery_queue_pending
            ON delivery_queue (channel, destination, id) WHERE state IN ('queued', 'sending');
        CREATE INDEX delivery_queue_by_state ON delivery_queue (channel, destination, state);
        CREATE INDEX delivery_queue_by_message ON delivery_queue (message_id);
    "#,
    },
    Migration {
        version: 2,
        description: "payloads apart from the queue rows",
        // An entry's row changes with every attempt and SQLite rewrites a whole row on
        // update: the payload is written once, in its own table. Filtered and errored
        // entries have none.
        sql: r#"
        CREATE TABLE delivery_payload (
            entry_id INTEGER PRIMARY KEY REFERENCES delivery_queue (id) ON DELETE CASCADE,
            payload  BLOB    NOT NULL
        );
        INSERT INTO delivery_payload (entry_id, payload)
            SELECT id, payload FROM delivery_queue WHERE length(payload) > 0;
        ALTER TABLE delivery_queue DROP COLUMN payload;
    "#,
    },
    Migration {
        version: 3,
        description: "paused destinations",
        // An operator's pause (`Delivery::pause`): kept so it survives a restart.
        sql: r#"
        CREATE TABLE delivery_paused (
            channel     TEXT    NOT NULL,
            destination TEXT    NOT NULL,
            paused_at   INTEGER NOT NULL,
            paused_by   TEXT    NOT NULL,
            PRIMARY KEY (channel, destination)
        );
    "#,
    },
    Migration {
        version: 4,
        description: "when an entry was first sent",
        // `sent_at` is the last attempt's; the message's detail shows the first too.
        // Rows from before stay NULL (their single attempt's time is `sent_at`).
        sql: r#"
        ALTER TABLE delivery_queue ADD COLUMN first_sent_at INTEGER;
    "#,
    },
    Migration {
        version: 5,
        description: "stopped destinations",
        // An operator's stop (`Delivery::stop`): a pause that also closes the
        // destination's connection to its receiver.
        sql: "ALTER TABLE delivery_paused ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;",
    },
];

/// A queue entry's id: grows with enqueue order, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub i64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a queue entry stands. Stored as the lower-case text of [`EntryState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryState {
    /// Waiting for its turn (or for its next attempt after a failure).
    Queued,
    /// Handed to the receiver, which has not answered within 100 ms (a batch answered
    /// sooner goes from `queued` to its outcome in one write). Entries found in this
    /// state at start were interrupted and are sent again.
    Sending,
    /// The receiver acknowledged it.
    Delivered,
    /// The receiver refused it and the destination's `on_nak` is `error`, or its own
    /// transformers failed on it; `state_reason` says which.
    Errored,
    /// Its retries are spent; `state_reason` holds the last error.
    DeadLettered,
    /// The destination's filters did not want it; `state_reason` names the filter.
    Filtered,
    /// An operator gave up on a dead letter by hand ([`discard_in`]); `state_reason`
    /// says who and why. It leaves the dead letters and is never sent again by itself.
    Discarded,
}

impl EntryState {
    /// Every state, in the order of a message's life.
    pub const ALL: [EntryState; 7] = [
        EntryState::Queued,
        EntryState::Sending,
        EntryState::Delivered,
        EntryState::Errored,
        EntryState::DeadLettered,
        EntryState::Filtered,
        EntryState::Discarded,
    ];

    /// The text stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Queued => "queued",
            EntryState::Sending => "sending",
            EntryState::Delivered => "delivered",
            EntryState::Errored => "errored",
            EntryState::DeadLettered => "dead_lettered",
            EntryState::Filtered => "filtered",
            EntryState::Discarded => "discarded",
        }
    }

    /// True once nothing more will happen to the entry by itself.
    pub fn is_final(self) -> bool {
        !matches!(self, EntryState::Queued | EntryState::Sending)
    }
}

impl fmt::Display for EntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryState {
    type Err = store::Error;

    fn from_str(text: &str) -> Result<EntryState, store::Error> {
        EntryState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| store::Error::Refused(format!("unknown queue entry state {text:?}")))
    }
}

/// Puts a routed message on the queue of each of its destinations, inside the caller's
/// write transaction.
///
/// Call it inside the same [`store::Store::write`] request that records the processed
/// message: either the message is processed and queued for every destination, or neither.
/// Destinations whose filters dropped the message, or whose transformers failed, get an
/// entry too (`filtered` / `errored`, with the reason), so every message has a visible
/// state per destination. `ordering_key` keeps order per key (e.g. the patient id);
/// `None` keeps one strict FIFO per destination.
pub fn enqueue_in(
    conn: &Connection,
    message_id: MessageId,
    ordering_key: Option<&str>,
    routed: &Routed,
) -> store::Result<Vec<EntryId>> {
    let now = UnixMicros::now().0;
    let mut insert = conn.prepare_cached(
        "INSERT INTO delivery_queue (message_id, channel, destination, ordering_key, state, \
         state_reason, next_attempt_at, queued_at, state_changed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
    )?;
    let mut insert_payload = conn.prepare_cached(INSERT_PAYLOAD)?;
    let mut ids = Vec::with_capacity(routed.entries.len());
    for entry in &routed.entries {
        if let (Some(to), RouteOutcome::Payload(bytes)) = (&entry.hand_to, &entry.outcome) {
            // A channel destination: handed over in this transaction, delivered at once.
            let handed =
                crate::destinations::channel::hand_over_in(conn, &routed.channel, to, bytes)?;
            conn.prepare_cached(
                "INSERT INTO delivery_queue (message_id, channel, destination, ordering_key, state, \
                 answer, next_attempt_at, queued_at, sent_at, acked_at, state_changed_at) \
                 VALUES (?1, ?2, ?3, ?4, 'delivered', ?5, ?6, ?6, ?6, ?6, ?6)",
            )?
            .execute(params![
                message_id.0,
                &*routed.channel,
                &*entry.destination,
                ordering_key.unwrap_or(""),
                format!("{HANDED_OVER}{to} as message {}", handed.0),
                now,
            ])?;
            ids.push(EntryId(conn.last_insert_rowid()));
            continue;
        }
        let (state, reason, payload): (EntryState, Option<String>, Option<&[u8]>) =
            match &entry.outcome {
                RouteOutcome::Payload(bytes) => (EntryState::Queued, None, Some(bytes)),
                RouteOutcome::Filtered { filter } => (
                    EntryState::Filtered,
                    Some(format!("filtered by {filter}")),
                    None,
                ),
                RouteOutcome::Errored { step, error } => {
                    (EntryState::Errored, Some(format!("{step}: {error}")), None)
                }
            };
        insert.execute(params![
            message_id.0,
            &*routed.channel,
            &*entry.destination,
            ordering_key.unwrap_or(""),
            state.as_str(),
            reason,
            now,
        ])?;
        let id = conn.last_insert_rowid();
        if let Some(payload) = payload {
            insert_payload.execute(params![id, payload])?;
        }
        ids.push(EntryId(id));
    }
    let nothing_to_send = routed
        .entries
        .iter()
        .all(|e| e.hand_to.is_some() || !matches!(e.outcome, RouteOutcome::Payload(_)));
    if nothing_to_send && !routed.entries.is_empty() {
        settle_message(conn, &routed.channel, message_id)?;
    }
    Ok(ids)
}

/// How the answer of a channel destination's entry starts.
const HANDED_OVER: &str = "handed to channel ";

const INSERT_PAYLOAD: &str = "INSERT INTO delivery_payload (entry_id, payload) VALUES (?1, ?2)";

/// One row of a queue's pending part, without its payload.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub entry: EntryId,
    pub message_id: MessageId,
    pub ordering_key: Arc<str>,
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// When the message was received (the journal's `received_at`), for an entry never
    /// tried yet: its first attempt is the "sent" hop.
    pub received_at: Option<i64>,
}

/// Up to `limit` pending entries of a destination after entry `after`, oldest first.
pub(crate) fn pending_page(
    conn: &Connection,
    channel: &str,
    destination: &str,
    after: i64,
    limit: usize,
) -> store::Result<Vec<Pending>> {
    let mut select = conn.prepare_cached(
        "SELECT id, message_id, ordering_key, attempts, next_attempt_at, \
         CASE WHEN attempts = 0 THEN (SELECT j.received_at FROM journal j WHERE j.id = delivery_queue.message_id) END \
         FROM delivery_queue WHERE channel = ?1 AND destination = ?2 AND state IN ('queued', 'sending') AND id > ?3 \
         ORDER BY id LIMIT ?4",
    )?;
    let rows = select.query_map(params![channel, destination, after, limit as i64], |row| {
        Ok(Pending {
            entry: EntryId(row.get(0)?),
            message_id: MessageId(row.get(1)?),
            ordering_key: Arc::from(row.get_ref(2)?.as_str()?),
            attempts: row.get(3)?,
            next_attempt_at: row.get(4)?,
            received_at: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The payloads of chosen pending entries, as messages ready to send.
pub(crate) fn load_outgoing(
    conn: &Connection,
    chosen: Vec<Pending>,
) -> store::Result<Vec<Outgoing>> {
    let mut select =
        conn.prepare_cached("SELECT payload FROM delivery_payload WHERE entry_id = ?1")?;
    let mut out = Vec::with_capacity(chosen.len());
    for pending in chosen {
        // Only queued entries are pending, and every queued entry has its payload.
        let payload: Vec<u8> = select.query_row([pending.entry.0], |row| row.get(0))?;
        out.push(Outgoing {
            entry: pending.entry,
            message_id: pending.message_id,
            payload: Bytes::from(payload),
            ordering_key: pending.ordering_key,
            attempts: pending.attempts,
        });
    }
    Ok(out)
}

/// Marks entries as handed to the receiver and not yet answered (a slow receiver).
pub(crate) fn mark_sending(
    conn: &Connection,
    entries: &[EntryId],
    sent_at: UnixMicros,
) -> store::Result<()> {
    let mut update = conn.prepare_cached(
        "UPDATE delivery_queue SET state = 'sending', sent_at = ?2, state_changed_at = ?2, \
         first_sent_at = coalesce(first_sent_at, ?2) \
         WHERE id = ?1 AND state IN ('queued', 'sending')",
    )?;
    for entry in entries {
        update.execute(params![entry.0, sent_at.0])?;
    }
    Ok(())
}

/// Entries left `sending` by an interrupted run go back to `queued`: they are sent again.
pub(crate) fn requeue_interrupted(
    conn: &Connection,
    channel: &str,
    destination: &str,
) -> store::Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE delivery_queue SET state = 'queued', state_changed_at = ?3 \
             WHERE channel = ?1 AND destination = ?2 AND state = 'sending'",
        )?
        .execute(params![channel, destination, UnixMicros::now().0])?)
}

/// What became of one entry after a delivery attempt (or after it was not tried).
#[derive(Debug, Clone)]
pub(crate) struct Attempted {
    pub entry: EntryId,
    pub message_id: MessageId,
    pub state: EntryState,
    pub state_reason: Option<String>,
    /// 1 if the entry was tried, 0 if it went back untried.
    pub tried: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub answer: Option<String>,
    pub acked_at: Option<UnixMicros>,
}

/// Records the outcomes of a batch handed to the receiver at `sent_at` (the `sent_at` of
/// each entry tried), and moves each message whose entries are now all final to
/// `delivered` (or `dead_lettered` when a destination gave up) in the journal.
pub(crate) fn record_attempts(
    conn: &Connection,
    channel: &str,
    sent_at: UnixMicros,
    attempted: &[Attempted],
) -> store::Result<()> {
    let now = UnixMicros::now().0;
    let mut update = conn.prepare_cached(
        "UPDATE delivery_queue SET state = ?2, state_reason = ?3, attempts = attempts + ?4, \
         next_attempt_at = ?5, last_error = coalesce(?6, last_error), \
         answer = coalesce(?7, answer), acked_at = coalesce(?8, acked_at), \
         state_changed_at = ?9, sent_at = CASE WHEN ?4 > 0 THEN ?10 ELSE sent_at END, \
         first_sent_at = CASE WHEN ?4 > 0 THEN coalesce(first_sent_at, ?10) ELSE first_sent_at END \
         WHERE id = ?1",
    )?;
    for a in attempted {
        update.execute(params![
            a.entry.0,
            a.state.as_str(),
            a.state_reason,
            a.tried,
            a.next_attempt_at,
            a.last_error,
            a.answer,
            a.acked_at.map(|t| t.0),
            now,
            sent_at.0,
        ])?;
    }
    let mut finished: Vec<MessageId> = attempted
        .iter()
        .filter(|a| a.state.is_final())
        .map(|a| a.message_id)
        .collect();
    finished.sort_unstable();
    finished.dedup();
    for message in finished {
        settle_message(conn, channel, message)?;
    }
    Ok(())
}

/// Moves the journal entry of `message` to its final state once no queue holds it.
fn settle_message(conn: &Connection, channel: &str, message: MessageId) -> store::Result<()> {
    let (pending, gave_up, filtered, all): (i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state IN ('queued', 'sending')), \
                    count(*) FILTER (WHERE state IN ('dead_lettered', 'errored', 'discarded')), \
                    count(*) FILTER (WHERE state = 'filtered'), count(*) \
             FROM delivery_queue WHERE message_id = ?1",
        )?
        .query_row([message.0], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
    if pending > 0 {
        return Ok(());
    }
    let (state, reason) = if gave_up > 0 {
        (
            MessageState::DeadLettered,
            Some(format!("a destination of channel {channel} gave up on it")),
        )
    } else if filtered == all {
        (
            MessageState::Filtered,
            Some("every destination's filters dropped it".to_owned()),
        )
    } else {
        (MessageState::Delivered, None)
    };
    match Journal::set_state_in(conn, message, state, reason.as_deref()) {
        // Queue entries may outlive a pruned journal row.
        Ok(()) | Err(store::Error::NotFound(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

/// One queue entry as stored, for the message browser and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The entry's id.
    pub id: EntryId,
    /// The journal id of the message.
    pub message_id: MessageId,
    /// The channel.
    pub channel: String,
    /// The destination's name.
    pub destination: String,
    /// The ordering key ('' when the destination keeps one FIFO).
    pub ordering_key: String,
    /// Where it stands.
    pub state: EntryState,
    /// Why it is in that state (filter, error, dead-letter reason).
    pub state_reason: Option<String>,
    /// Deliveries tried.
    pub attempts: u32,
    /// When it may be tried next.
    pub next_attempt_at: UnixMicros,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The receiver's last answer (ACK text, HTTP status line), if any.
    pub answer: Option<String>,
    /// When it was queued (with the processed message, same transaction).
    pub queued_at: UnixMicros,
    /// When it was last handed to the receiver.
    pub sent_at: Option<UnixMicros>,
    /// When it was first handed to the receiver (`sent_at` after a single attempt;
    /// unknown for an entry last tried before schema version 4 with more attempts).
    pub first_sent_at: Option<UnixMicros>,
    /// When the receiver's positive answer arrived.
    pub acked_at: Option<UnixMicros>,
    /// When `state` last changed.
    pub state_changed_at: UnixMicros,
    /// The bytes sent (after the destination's transformers).
    pub payload: Vec<u8>,
}

const ENTRY_COLUMNS: &str = "id, message_id, channel, destination, ordering_key, state, state_reason, \
     attempts, next_attempt_at, last_error, answer, queued_at, sent_at, acked_at, \
     state_changed_at, coalesce(payload, x''), \
     coalesce(first_sent_at, CASE WHEN attempts = 1 THEN sent_at END)";

/// The rows [`ENTRY_COLUMNS`] are read from: each entry with its payload, if it has one.
const ENTRIES: &str = "delivery_queue LEFT JOIN delivery_payload ON entry_id = id";

fn entry_from_row(row: &store::rusqlite::Row<'_>) -> store::rusqlite::Result<(QueueEntry, String)> {
    let state: String = row.get(5)?;
    Ok((
        QueueEntry {
            id: EntryId(row.get(0)?),
            message_id: MessageId(row.get(1)?),
            channel: row.get(2)?,
            destination: row.get(3)?,
            ordering_key: row.get(4)?,
            state: EntryState::Queued,
            state_reason: row.get(6)?,
            attempts: row.get(7)?,
            next_attempt_at: UnixMicros(row.get(8)?),
            last_error: row.get(9)?,
            answer: row.get(10)?,
            queued_at: UnixMicros(row.get(11)?),
            sent_at: row.get::<_, Option<i64>>(12)?.map(UnixMicros),
            acked_at: row.get::<_, Option<i64>>(13)?.map(UnixMicros),
            state_changed_at: UnixMicros(row.get(14)?),
            payload: row.get(15)?,
            first_sent_at: row.get::<_, Option<i64>>(16)?.map(UnixMicros),
        },
        state,
    ))
}

fn with_state((mut entry, state): (QueueEntry, String)) -> store::Result<QueueEntry> {
    entry.state = state.parse()?;
    Ok(entry)
}

/// Every queue entry of one message, one per destination (more after a resend).
pub fn entries_of_message(conn: &Connection, message: MessageId) -> store::Result<Vec<QueueEntry>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRIES} WHERE message_id = ?1 ORDER BY id"
    ))?;
    let rows = select.query_map([message.0], entry_from_row)?;
    rows.map(|row| with_state(row?)).collect()
}

/// The bytes queued for an entry (the destination's message after its own steps); none
/// for an entry its destination filtered or failed on.
pub fn payload_of(conn: &Connection, entry: EntryId) -> store::Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT payload FROM delivery_payload WHERE entry_id = ?1")?
        .query_row([entry.0], |row| row.get(0))
        .optional()?)
}

/// One queue entry.
pub fn entry(conn: &Connection, id: EntryId) -> store::Result<Option<QueueEntry>> {
    conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRIES} WHERE id = ?1"
    ))?
    .query_row([id.0], entry_from_row)
    .optional()?
    .map(with_state)
    .transpose()
}

/// Entries of a destination in one state, oldest first, after entry `after` (paging).
pub fn entries_in_state(
    conn: &Connection,
    channel: &str,
    destination: &str,
    state: EntryState,
    after: Option<EntryId>,
    limit: usize,
) -> store::Result<Vec<QueueEntry>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRIES} WHERE channel = ?1 AND destination = ?2 \
         AND state = ?3 AND id > ?4 ORDER BY id LIMIT ?5"
    ))?;
    let rows = select.query_map(
        params![
            channel,
            destination,
            state.as_str(),
            after.map_or(0, |a| a.0),
            limit as i64
        ],
        entry_from_row,
    )?;
    rows.map(|row| with_state(row?)).collect()
}

/// Puts a copy of a delivered, errored or dead-lettered entry at the end of its queue;
/// returns the new entry. The old entry keeps its history.
pub fn resend_in(conn: &Connection, id: EntryId) -> store::Result<EntryId> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT state, answer FROM delivery_queue WHERE id = ?1")?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let state: EntryState = match row {
        Some((state, answer)) => {
            if answer
                .as_deref()
                .is_some_and(|a| a.starts_with(HANDED_OVER))
            {
                return Err(store::Error::Refused(format!(
                    "queue entry {id} belongs to a channel destination, which hands messages \
                     over as its channel processes them; a handed-over message is not resent \
                     (reprocess it on its channel instead)"
                )));
            }
            state.parse()?
        }
        None => {
            return Err(store::Error::Refused(format!(
                "queue entry {id} does not exist"
            )));
        }
    };
    if !matches!(
        state,
        EntryState::Delivered | EntryState::Errored | EntryState::DeadLettered
    ) {
        return Err(store::Error::Refused(format!(
            "queue entry {id} is {state}; only delivered, errored or dead-lettered entries can be resent"
        )));
    }
    let now = UnixMicros::now().0;
    conn.prepare_cached(
        "INSERT INTO delivery_queue (message_id, channel, destination, ordering_key, state, \
         state_reason, next_attempt_at, queued_at, state_changed_at) \
         SELECT message_id, channel, destination, ordering_key, 'queued', \
                'resend of entry ' || id, ?2, ?2, ?2 \
         FROM delivery_queue WHERE id = ?1",
    )?
    .execute(params![id.0, now])?;
    let resent = conn.last_insert_rowid();
    let copied = conn
        .prepare_cached(
            "INSERT INTO delivery_payload (entry_id, payload) \
             SELECT ?2, payload FROM delivery_payload WHERE entry_id = ?1",
        )?
        .execute(params![id.0, resent])?;
    if copied == 0 {
        // The caller's savepoint drops the new row with this error.
        return Err(store::Error::Refused(format!(
            "queue entry {id} has nothing to send (its transformers failed); reprocess the \
             message instead"
        )));
    }
    Ok(EntryId(resent))
}

/// Discards a dead-lettered entry: it leaves the destination's dead letters for good
/// (state `discarded`, `state_reason` saying `who` and `why`), keeps its history and
/// payload, and is never sent again by itself (a resend may still copy it). Refused
/// for an entry in any other state.
pub fn discard_in(conn: &Connection, id: EntryId, who: &str, why: &str) -> store::Result<()> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM delivery_queue WHERE id = ?1")?
        .query_row([id.0], |row| row.get(0))
        .optional()?;
    let Some(state) = state else {
        return Err(store::Error::Refused(format!(
            "queue entry {id} does not exist"
        )));
    };
    let state: EntryState = state.parse()?;
    if state != EntryState::DeadLettered {
        return Err(store::Error::Refused(format!(
            "queue entry {id} is {state}; only dead-lettered entries can be discarded"
        )));
    }
    let now = UnixMicros::now().0;
    conn.prepare_cached(
        "UPDATE delivery_queue SET state = 'discarded', state_reason = ?2, \
         state_changed_at = ?3 WHERE id = ?1 AND state = 'dead_lettered'",
    )?
    .execute(params![id.0, format!("discarded by {who}: {why}"), now])?;
    Ok(())
}

/// Gives every dead-lettered entry of a destination a new round of attempts, now, in
/// their original place in the queue; returns how many.
pub fn retry_dead_lettered_in(
    conn: &Connection,
    channel: &str,
    destination: &str,
) -> store::Result<usize> {
    let now = UnixMicros::now().0;
    Ok(conn
        .prepare_cached(
            "UPDATE delivery_queue SET state = 'queued', state_reason = 'retried by hand', \
             attempts = 0, next_attempt_at = ?3, state_changed_at = ?3 \
             WHERE channel = ?1 AND destination = ?2 AND state = 'dead_lettered'",
        )?
        .execute(params![channel, destination, now])?)
}

/// Counts of a destination's queue, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Entries waiting (`queued`).
    pub queued: u64,
    /// Entries handed to the receiver, answer not recorded yet.
    pub sending: u64,
    /// Entries the receiver acknowledged.
    pub delivered: u64,
    /// Entries refused (on_nak = error) or broken by the destination's transformers.
    pub errored: u64,
    /// Entries whose retries are spent.
    pub dead_lettered: u64,
    /// Entries the destination's filters dropped.
    pub filtered: u64,
    /// Dead letters an operator discarded.
    pub discarded: u64,
    /// `queued + sending`: what is still to deliver.
    pub depth: u64,
    /// When the oldest entry still to deliver was queued.
    pub oldest_queued_at: Option<UnixMicros>,
}

impl QueueCounts {
    /// How long the oldest entry still to deliver has waited, at `now`.
    pub fn oldest_queued_age(&self, now: UnixMicros) -> Option<Duration> {
        self.oldest_queued_at
            .map(|t| Duration::from_micros(u64::try_from(now.0 - t.0).unwrap_or(0)))
    }
}

/// Counts per state, depth and oldest waiting entry of one destination's queue.
pub fn counts(conn: &Connection, channel: &str, destination: &str) -> store::Result<QueueCounts> {
    let mut counts = QueueCounts::default();
    let mut select = conn.prepare_cached(
        "SELECT state, count(*) FROM delivery_queue WHERE channel = ?1 AND destination = ?2 \
         GROUP BY state",
    )?;
    let mut rows = select.query(params![channel, destination])?;
    while let Some(row) = rows.next()? {
        let state: String = row.get(0)?;
        let n: i64 = row.get(1)?;
        let n = u64::try_from(n).unwrap_or(0);
        match state.parse()? {
            EntryState::Queued => counts.queued = n,
            EntryState::Sending => counts.sending = n,
            EntryState::Delivered => counts.delivered = n,
            EntryState::Errored => counts.errored = n,
            EntryState::DeadLettered => counts.dead_lettered = n,
            EntryState::Filtered => counts.filtered = n,
            EntryState::Discarded => counts.discarded = n,
        }
    }
    counts.depth = counts.queued + counts.sending;
    counts.oldest_queued_at = conn
        .prepare_cached(
            "SELECT queued_at FROM delivery_queue WHERE channel = ?1 AND destination = ?2 \
             AND state IN ('queued', 'sending') ORDER BY id LIMIT 1",
        )?
        .query_row(params![channel, destination], |row| row.get(0))
        .optional()?
        .map(UnixMicros);
    Ok(counts)
}

//! The message journal: every message Corridor receives, exactly as received, with its state.
//!
//! A message is appended before it is acknowledged; the [`WriteFuture`] of
//! [`Journal::append`] resolves only once the row is committed and synced, so a positive ACK
//! sent after it can never refer to a lost message. Later stages move the message through
//! [`MessageState`]s with [`Journal::set_state`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use crate::counts::{self, Flow};
use crate::database::Store;
use crate::error::{Error, Result};
use crate::writer::WriteFuture;

/// The journal's id for a stored message: increases with arrival, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point in time as microseconds since the Unix epoch (UTC), as stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    /// The current wall-clock time.
    pub fn now() -> UnixMicros {
        UnixMicros::from(SystemTime::now())
    }
}

impl From<SystemTime> for UnixMicros {
    fn from(time: SystemTime) -> UnixMicros {
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        };
        UnixMicros(micros)
    }
}

/// Where a message stands. Stored as the lower-case text of [`MessageState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageState {
    /// Stored and acknowledged; not yet processed.
    Received,
    /// Refused on arrival (NAK sent); kept for review.
    Rejected,
    /// Went through the pipeline and was queued for its destinations.
    Processed,
    /// Dropped on purpose by a channel filter (the reason says which).
    Filtered,
    /// Held for a person to review (the reason says why).
    Quarantined,
    /// Processing failed (the reason says how); can be reprocessed.
    Errored,
    /// Every destination acknowledged it.
    Delivered,
    /// A destination gave up on it after its retries.
    DeadLettered,
}

impl MessageState {
    /// Every state, in the order of a message's usual life.
    pub const ALL: [MessageState; 8] = [
        MessageState::Received,
        MessageState::Rejected,
        MessageState::Processed,
        MessageState::Filtered,
        MessageState::Quarantined,
        MessageState::Errored,
        MessageState::Delivered,
        MessageState::DeadLettered,
    ];

    /// The text stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Received => "received",
            MessageState::Rejected => "rejected",
            MessageState::Processed => "processed",
            MessageState::Filtered => "filtered",
            MessageState::Quarantined => "quarantined",
            MessageState::Errored => "errored",
            MessageState::Delivered => "delivered",
            MessageState::DeadLettered => "dead_lettered",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageState {
    type Err = Error;

    fn from_str(text: &str) -> Result<MessageState> {
        MessageState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| Error::UnknownState(text.to_owned()))
    }
}

impl ToSql for MessageState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A message to append, with what the receiving side knows about it.
///
/// The per-connection values (`channel`, `peer`, `tls_identity`) are shared `Arc<str>` so a
/// source builds them once per connection, not once per message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The channel that received it.
    pub channel: Arc<str>,
    /// The bytes exactly as received (inside the MLLP frame).
    pub raw: Bytes,
    /// When the last byte arrived.
    pub received_at: UnixMicros,
    /// The sender's socket address, e.g. `10.1.2.3:50122`.
    pub peer: Arc<str>,
    /// The client certificate's identity when the connection used mutual TLS.
    pub tls_identity: Option<Arc<str>>,
    /// MSH-3 as text (empty when absent or unparsable).
    pub sending_application: String,
    /// MSH-4 as text.
    pub sending_facility: String,
    /// MSH-9 as text, e.g. `ORU^R01^ORU_R01`.
    pub message_type: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12, e.g. `2.5.1`.
    pub version: String,
    /// The state it is stored in: usually `Received`, or `Rejected` when it was refused.
    pub state: MessageState,
    /// Why it is in that state (e.g. the reason for a rejection).
    pub state_reason: Option<String>,
}

/// What [`Journal::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The message was stored under this new id.
    New(MessageId),
    /// The same message was stored within the duplicate window under this id; nothing was
    /// added.
    Duplicate(MessageId),
}

impl Appended {
    /// The id of the stored message, new or earlier.
    pub fn id(self) -> MessageId {
        match self {
            Appended::New(id) | Appended::Duplicate(id) => id,
        }
    }
}

/// Everything the journal knows about a message except its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The journal id.
    pub id: MessageId,
    /// The channel that received it.
    pub channel: String,
    /// When the last byte arrived.
    pub received_at: UnixMicros,
    /// When the writer stored it (inside the committing transaction).
    pub stored_at: UnixMicros,
    /// The sender's socket address.
    pub peer: String,
    /// The client certificate's identity, with mutual TLS.
    pub tls_identity: Option<String>,
    /// MSH-3.
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-9.
    pub message_type: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12.
    pub version: String,
    /// The current state.
    pub state: MessageState,
    /// Why it is in its current state, when anyone said.
    pub state_reason: Option<String>,
    /// When the state last changed (the stored-at time for a new message).
    pub state_changed_at: UnixMicros,
    /// Length of the raw message in bytes.
    pub size: u64,
}

/// A journal entry with the message bytes exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// What the journal knows about the message.
    pub entry: JournalEntry,
    /// The bytes exactly as received.
    pub raw: Vec<u8>,
}

/// Which entries [`Journal::list`] and [`Journal::count`] consider; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFilter {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// Only messages received at or after this time.
    pub received_since: Option<UnixMicros>,
    /// Only messages received before this time.
    pub received_before: Option<UnixMicros>,
    /// Only ids below this one: the next page after a newest-first listing that ended at
    /// this id.
    pub before_id: Option<MessageId>,
    /// Only ids above this one: the next page after an oldest-first listing that ended at
    /// this id.
    pub after_id: Option<MessageId>,
}

/// The message journal of a [`Store`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Store,
}

/// The columns `entry_from_row` reads, in its order; a macro so queries are built at compile time.
macro_rules! entry_columns {
    () => {
        "id, channel, received_at, stored_at, peer, tls_identity, sending_application, \
         sending_facility, message_type, control_id, version, state, state_reason, \
         state_changed_at, size"
    };
}

const GET: &str = concat!("SELECT ", entry_columns!(), " FROM journal WHERE id = ?1");

const GET_RAW: &str = "SELECT raw FROM journal_raw WHERE id = ?1";

const INSERT: &str = "INSERT INTO journal (channel, received_at, stored_at, peer, tls_identity, \
     sending_application, sending_facility, message_type, control_id, version, state, \
     state_reason, state_changed_at, size) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?3, ?13)";

const INSERT_RAW: &str = "INSERT INTO journal_raw (id, raw) VALUES (?1, ?2)";

// Served by the journal_duplicates index: four equalities and a range on stored_at.
// Rejected messages never make a later one a duplicate: a sender that fixes a refused
// message and resends it under the same control id must be heard.
const FIND_DUPLICATE: &str = "SELECT id FROM journal \
     WHERE channel = ?1 AND control_id = ?2 AND sending_application = ?3 \
       AND sending_facility = ?4 AND stored_at >= ?5 AND state <> 'rejected' \
     ORDER BY stored_at LIMIT 1";

const CHANNEL_AND_STATE: &str = "SELECT channel, state, received_at FROM journal WHERE id = ?1";

const DELETE: &str = "DELETE FROM journal WHERE id = ?1 RETURNING channel, state";

const SET_STATE: &str =
    "UPDATE journal SET state = ?2, state_reason = ?3, state_changed_at = ?4 WHERE id = ?1";

impl Journal {
    /// The journal kept in `store` (same as [`Store::journal`]).
    pub fn new(store: Store) -> Journal {
        Journal { store }
    }

    /// The store this journal lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores `message`; the future resolves once it is durable.
    ///
    /// With a `duplicate_window`, a message of the same channel, sending application,
    /// sending facility and control id stored within that window (and not rejected) makes
    /// this one a duplicate: nothing is stored and [`Appended::Duplicate`] names the
    /// earlier id. The check runs in the writer's transaction, so two copies arriving at
    /// the same moment on different connections still store only one. Messages with an
    /// empty control id are never duplicates.
    pub fn append(
        &self,
        message: NewMessage,
        duplicate_window: Option<Duration>,
    ) -> WriteFuture<Appended> {
        // Two INSERTs (the row, then its bytes), the first taken back if the second fails;
        // the savepoint covers what a failure of that cleanup would leave.
        self.store
            .write(move |conn| Journal::append_in(conn, &message, duplicate_window))
    }

    /// [`Journal::append`] inside a write request of one's own, so the append shares a
    /// transaction with other changes (e.g. queue entries).
    pub fn append_in(
        conn: &Connection,
        message: &NewMessage,
        duplicate_window: Option<Duration>,
    ) -> Result<Appended> {
        let stored_at = UnixMicros::now();
        if let Some(window) = duplicate_window.filter(|_| !message.control_id.is_empty()) {
            let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
            let since = stored_at.0.saturating_sub(window);
            let earlier = conn
                .prepare_cached(FIND_DUPLICATE)?
                .query_row(
                    params![
                        &*message.channel,
                        message.control_id,
                        message.sending_application,
                        message.sending_facility,
                        since,
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = earlier {
                return Ok(Appended::Duplicate(MessageId(id)));
            }
        }
        conn.prepare_cached(INSERT)?.execute(params![
            &*message.channel,
            message.received_at.0,
            stored_at.0,
            &*message.peer,
            message.tls_identity.as_deref(),
            message.sending_application,
            message.sending_facility,
            message.message_type,
            message.control_id,
            message.version,
            message.state,
            message.state_reason,
            i64::try_from(message.raw.len()).unwrap_or(i64::MAX),
        ])?;
        let id = conn.last_insert_rowid();
        if let Err(err) = conn
            .prepare_cached(INSERT_RAW)
            .and_then(|mut insert| insert.execute(params![id, &message.raw[..]]))
        {
            // Callers batch appends without a savepoint each: take the row back so no
            // journal row is ever left without its bytes.
            conn.prepare_cached("DELETE FROM journal WHERE id = ?1")?
                .execute([id])?;
            return Err(err.into());
        }
        counts::note(
            &message.channel,
            message.state,
            1,
            Flow::Stored,
            // A receipt after the commit (a clock set back) counts as no time.
            Some(u64::try_from(stored_at.0.saturating_sub(message.received_at.0)).unwrap_or(0)),
        );
        Ok(Appended::New(MessageId(id)))
    }

    /// Moves a message to `state`, with an optional reason; durable when the future resolves.
    pub fn set_state(
        &self,
        id: MessageId,
        state: MessageState,
        reason: Option<String>,
    ) -> WriteFuture<()> {
        // One UPDATE is the only write.
        self.store.write_single_statement(move |conn| {
            Journal::set_state_in(conn, id, state, reason.as_deref())
        })
    }

    /// [`Journal::set_state`] inside a write request of one's own.
    pub fn set_state_in(
        conn: &Connection,
        id: MessageId,
        state: MessageState,
        reason: Option<&str>,
    ) -> Result<()> {
        let Some((channel, before, received_at)) = conn
            .prepare_cached(CHANNEL_AND_STATE)?
            .query_row([id.0], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?
        else {
            return Err(Error::NotFound(id));
        };
        let before: MessageState = before.parse()?;
        let now = UnixMicros::now();
        let changed = conn
            .prepare_cached(SET_STATE)?
            .execute(params![id.0, state, reason, now.0])?;
        if changed == 0 {
            return Err(Error::NotFound(id));
        }
        if before != state {
            let flow = if before == MessageState::Received {
                Flow::Processed
            } else {
                Flow::None
            };
            let took = Some(u64::try_from(now.0.saturating_sub(received_at)).unwrap_or(0));
            counts::note(&channel, before, -1, Flow::None, None);
            counts::note(&channel, state, 1, flow, took);
        }
        Ok(())
    }

    /// Deletes a message's journal row (its bytes, queue entries and other rows that
    /// refer to it are the caller's to delete first); false if there was none.
    pub fn delete_in(conn: &Connection, id: MessageId) -> Result<bool> {
        let deleted = conn
            .prepare_cached(DELETE)?
            .query_row([id.0], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .optional()?;
        match deleted {
            Some((channel, state)) => {
                counts::note(&channel, state.parse()?, -1, Flow::None, None);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The message with this id and its bytes, if it exists.
    pub fn get(&self, id: MessageId) -> Result<Option<StoredMessage>> {
        self.store.read(|conn| Journal::get_in(conn, id))
    }

    /// [`Journal::get`] on a connection one already has, e.g. inside a write request that
    /// reprocesses the message.
    pub fn get_in(conn: &Connection, id: MessageId) -> Result<Option<StoredMessage>> {
        let Some(entry) = conn
            .prepare_cached(GET)?
            .query_row([id.0], |row| Ok(entry_from_row(row)))
            .optional()?
            .transpose()?
        else {
            return Ok(None);
        };
        // Every journal row has its bytes (written in the same savepoint).
        let raw = conn
            .prepare_cached(GET_RAW)?
            .query_row([id.0], |row| row.get(0))?;
        Ok(Some(StoredMessage { entry, raw }))
    }

    /// Up to `limit` entries matching `filter`, newest first.
    ///
    /// Channel and state use indexes; time bounds are checked on the rows the walk meets,
    /// so pair a far-back `received_before` with a channel or state, or page with
    /// `before_id`.
    pub fn list(&self, filter: &JournalFilter, limit: usize) -> Result<Vec<JournalEntry>> {
        self.list_ordered(filter, limit, "DESC")
    }

    /// Up to `limit` entries matching `filter`, oldest first: how a restarted pipeline finds
    /// the messages still `Received`, paging on with [`JournalFilter::after_id`].
    pub fn list_oldest_first(
        &self,
        filter: &JournalFilter,
        limit: usize,
    ) -> Result<Vec<JournalEntry>> {
        self.list_ordered(filter, limit, "ASC")
    }

    fn list_ordered(
        &self,
        filter: &JournalFilter,
        limit: usize,
        order: &str,
    ) -> Result<Vec<JournalEntry>> {
        let (conditions, values) = filter.to_sql();
        let sql = format!(
            "SELECT {} FROM journal{conditions} ORDER BY id {order} LIMIT {}",
            entry_columns!(),
            i64::try_from(limit).unwrap_or(i64::MAX)
        );
        self.store.read(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                entries.push(entry_from_row(row)?);
            }
            Ok(entries)
        })
    }

    /// How many entries match `filter`.
    pub fn count(&self, filter: &JournalFilter) -> Result<u64> {
        let (conditions, values) = filter.to_sql();
        let sql = format!("SELECT count(*) FROM journal{conditions}");
        self.store.read(|conn| {
            let count: i64 = conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(values.iter()), |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    /// How many messages are in each state (states with none are left out), optionally
    /// for one channel only. From the counts the store keeps in memory
    /// ([`Store::message_counts`]): no read of the journal.
    pub fn count_by_state(&self, channel: Option<&str>) -> Result<Vec<(MessageState, u64)>> {
        let mut totals = [0u64; MessageState::ALL.len()];
        for (name, counts) in self.store.message_counts() {
            if channel.is_none_or(|c| c == name) {
                for (total, n) in totals.iter_mut().zip(counts) {
                    *total += n;
                }
            }
        }
        Ok(MessageState::ALL
            .into_iter()
            .zip(totals)
            .filter(|(_, n)| *n > 0)
            .collect())
    }
}

/// A bound SQL value of a filter condition.
#[derive(Debug)]
enum FilterValue<'a> {
    Text(&'a str),
    Integer(i64),
}

impl ToSql for FilterValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            FilterValue::Text(text) => text.to_sql(),
            FilterValue::Integer(number) => number.to_sql(),
        }
    }
}

impl JournalFilter {
    /// The WHERE clause (empty, or starting with a space) and its bound values.
    fn to_sql<'a>(&'a self) -> (String, Vec<FilterValue<'a>>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let mut condition = |sql: &str, value: FilterValue<'a>| {
            values.push(value);
            conditions.push(format!("{sql} ?{}", values.len()));
        };
        if let Some(channel) = &self.channel {
            condition("channel =", FilterValue::Text(channel));
        }
        if let Some(state) = self.state {
            condition("state =", FilterValue::Text(state.as_str()));
        }
        if let Some(since) = self.received_since {
            condition("received_at >=", FilterValue::Integer(since.0));
        }
        if let Some(before) = self.received_before {
            condition("received_at <", FilterValue::Integer(before.0));
        }
        if let Some(before) = self.before_id {
            condition("id <", FilterValue::Integer(before.0));
        }
        if let Some(after) = self.after_id {
            condition("id >", FilterValue::Integer(after.0));
        }
        if conditions.is_empty() {
            (String::new(), values)
        } else {
            (format!(" WHERE {}", conditions.join(" AND ")), values)
        }
    }
}

/// The entry columns, each prefixed with `alias` (`j.`), for queries that join.
pub(crate) fn entry_columns_sql(alias: &str) -> String {
    entry_columns!()
        .split(", ")
        .map(|c| format!("{alias}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn entry_from_row(row: &Row<'_>) -> Result<JournalEntry> {
    let state: String = row.get(11)?;
    Ok(JournalEntry {
        id: MessageId(row.get(0)?),
        channel: row.get(1)?,
        received_at: UnixMicros(row.get(2)?),
        stored_at: UnixMicros(row.get(3)?),
        peer: row.get(4)?,
        tls_identity: row.get(5)?,
        sending_application: row.get(6)?,
        sending_facility: row.get(7)?,
        message_type: row.get(8)?,
        control_id: row.get(9)?,
        version: row.get(10)?,
        state: state.parse()?,
        state_reason: row.get(12)?,
        state_changed_at: UnixMicros(row.get(13)?),
        size: u64::try_from(row.get::<_, i64>(14)?).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_stored_text() {
        for state in MessageState::ALL {
            assert_eq!(state.as_str().parse::<MessageState>().unwrap(), state);
        }
        assert!(matches!(
            "lost".parse::<MessageState>(),
            Err(Error::UnknownState(text)) if text == "lost"
        ));
    }

    #[test]
    fn empty_filter_has_no_where_clause_and_full_filter_binds_in_order() {
        assert_eq!(JournalFilter::default().to_sql().0, "");
        let filter = JournalFilter {
            channel: Some("lab".into()),
            state: Some(MessageState::Errored),
            received_since: Some(UnixMicros(5)),
            received_before: Some(UnixMicros(9)),
            before_id: Some(MessageId(100)),
            after_id: Some(MessageId(50)),
        };
        let (sql, values) = filter.to_sql();
        assert_eq!(
            sql,
            " WHERE channel = ?1 AND state = ?2 AND received_at >= ?3 AND received_at < ?4 \
             AND id < ?5 AND id > ?6"
        );
        assert_eq!(values.len(), 6);
    }

    fn plan(store: &Store, sql: &str) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        store
            .read(|conn| {
                let mut statement = conn.prepare(&sql)?;
                let steps = statement
                    .query_map([], |row| row.get::<_, String>(3))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(steps.join(" / "))
            })
            .unwrap()
    }

    #[test]
    fn hot_lookups_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let duplicate = plan(
            &store,
            &FIND_DUPLICATE
                .replace("?1", "'lab'")
                .replace("?2", "'42'")
                .replace("?3", "'LAB'")
                .replace("?4", "'N'")
                .replace("?5", "0"),
        );
        assert!(duplicate.contains("journal_duplicates"), "{duplicate}");
        assert!(!duplicate.contains("TEMP B-TREE"), "{duplicate}");
        let by_channel = plan(
            &store,
            "SELECT id FROM journal WHERE channel = 'lab' ORDER BY id DESC LIMIT 50",
        );
        assert!(by_channel.contains("journal_by_channel"), "{by_channel}");
        assert!(!by_channel.contains("TEMP B-TREE"), "{by_channel}");
        let by_state = plan(
            &store,
            "SELECT id FROM journal WHERE state = 'errored' ORDER BY id DESC LIMIT 50",
        );
        assert!(by_state.contains("journal_by_state"), "{by_state}");
    }

    #[test]
    fn unix_micros_counts_from_the_epoch_both_ways() {
        let later = UNIX_EPOCH + Duration::from_micros(1_500);
        let earlier = UNIX_EPOCH - Duration::from_micros(2_000);
        assert_eq!(UnixMicros::from(later), UnixMicros(1_500));
        assert_eq!(UnixMicros::from(earlier), UnixMicros(-2_000));
    }
}

//! The analyst's operations on quarantined messages: list, read, edit, revalidate,
//! reprocess, discard. The journal row of a message is never changed; edits live in
//! the quarantine's own table.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use hl7v2_spec::validate::MessageFields;
use store::rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use store::{Journal, MessageId, MessageState, NewMessage, Store, UnixMicros};

use crate::data_quality::{
    Bucket, FieldOverTime, FindingCount, MessageCount, SenderOverTime, data_quality_in,
    data_quality_over_time_in,
};
use crate::entry::{Detail, Edit, Edited, Reprocessed, Status, Summary};
use crate::error::Error;
use crate::filter::{DataQualityFilter, QuarantineFilter};
use crate::record::{FindingRecord, QuarantineId, findings_json, parse_findings};
use crate::schema::{COMPONENT, MIGRATIONS};
use crate::validator::Validators;

/// The quarantine of a store: listing, reading, and the analyst's operations.
/// Cheap to clone.
#[derive(Clone)]
pub struct Quarantine {
    store: Store,
    validators: Arc<Validators>,
}

/// Segment ends become CR (as MLLP carries them), surrounding blank lines go, and the
/// message ends with one CR: an analyst's `curl --data-binary @fixed.hl7` with LF line
/// ends is a usable message.
pub fn normalize_content(content: &[u8]) -> Vec<u8> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let start = content
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(content.len());
    let end = content
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    let mut out = Vec::with_capacity(end.saturating_sub(start) + 1);
    let mut i = start;
    while i < end {
        match content[i] {
            b'\r' if content.get(i + 1) == Some(&b'\n') => {
                out.push(b'\r');
                i += 1;
            }
            b'\n' => out.push(b'\r'),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() {
        out.push(b'\r');
    }
    out
}

const SUMMARY_COLUMNS: &str = "q.id, q.message_id, q.channel, q.sending_application, \
     q.sending_facility, q.sender, q.message_type, q.control_id, q.errors, q.warnings, \
     q.quarantined_at, q.reason, q.status, q.status_by, q.status_reason, q.status_changed_at, \
     (SELECT count(*) FROM quarantine_edits e WHERE e.quarantine_id = q.id), q.reprocessed_as, \
     q.findings, q.validated_at, q.content, q.revision";

fn summary_from_row(row: &Row<'_>) -> store::Result<(Summary, Vec<FindingRecord>)> {
    let status: String = row.get(12)?;
    let findings = parse_findings(&row.get::<_, String>(18)?);
    let summary = Summary {
        id: QuarantineId(row.get(0)?),
        message_id: row.get(1)?,
        channel: row.get(2)?,
        sending_application: row.get(3)?,
        sending_facility: row.get(4)?,
        sender: row.get(5)?,
        message_type: row.get(6)?,
        control_id: row.get(7)?,
        errors: row.get(8)?,
        warnings: row.get(9)?,
        quarantined_at: row.get(10)?,
        reason: row.get(11)?,
        status: status
            .parse()
            .map_err(|_| store::Error::Refused(format!("unknown quarantine status {status:?}")))?,
        status_by: row.get(13)?,
        status_reason: row.get(14)?,
        status_changed_at: row.get(15)?,
        edits: row.get(16)?,
        reprocessed_as: row.get(17)?,
        first_errors: findings
            .iter()
            .filter(|f| f.is_error())
            .take(3)
            .cloned()
            .collect(),
    };
    Ok((summary, findings))
}

/// The row of one entry with what the operations need.
struct Current {
    summary: Summary,
    findings: Vec<FindingRecord>,
    validated_at: i64,
    content: Option<Vec<u8>>,
    revision: i64,
}

fn current_in(conn: &Connection, id: QuarantineId) -> store::Result<Option<Current>> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM quarantine q WHERE q.id = ?1");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([id.0])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let (summary, findings) = summary_from_row(row)?;
    Ok(Some(Current {
        summary,
        findings,
        validated_at: row.get(19)?,
        content: row.get(20)?,
        revision: row.get(21)?,
    }))
}

/// The current content: the last edit, or the journal's original bytes.
fn content_in(conn: &Connection, current: &Current) -> store::Result<Vec<u8>> {
    if let Some(content) = &current.content {
        return Ok(content.clone());
    }
    let id = MessageId(current.summary.message_id);
    Ok(Journal::get_in(conn, id)?
        .ok_or(store::Error::NotFound(id))?
        .raw)
}

/// A content's validation, ready to store.
struct Checked {
    json: String,
    errors: i64,
    warnings: i64,
    records: Vec<FindingRecord>,
}

impl Quarantine {
    /// The quarantine kept in `store`, validating edits with `validators`. Call
    /// [`Quarantine::migrate`] once before use.
    pub fn new(store: Store, validators: Validators) -> Quarantine {
        Quarantine {
            store,
            validators: Arc::new(validators),
        }
    }

    /// Creates or upgrades the component's tables; returns its schema version.
    pub async fn migrate(store: &Store) -> store::Result<u32> {
        store.migrate_component(COMPONENT, MIGRATIONS).await
    }

    /// The store it lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The validation settings used for edits and revalidation.
    pub fn validators(&self) -> &Validators {
        &self.validators
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = None;
            let stored = store.read(|conn| {
                out = Some(read(conn));
                Ok(())
            });
            match (stored, out) {
                (Err(e), _) => Err(Error::Store(e)),
                (Ok(()), Some(result)) => result,
                (Ok(()), None) => Err(Error::Store(store::Error::ReadPanicked(
                    "the read returned nothing".into(),
                ))),
            }
        })
        .await
        .map_err(|e| Error::Store(store::Error::ReadPanicked(e.to_string())))?
    }

    /// Up to `limit` entries matching `filter`, newest first.
    pub async fn list(
        &self,
        filter: QuarantineFilter,
        limit: usize,
    ) -> Result<Vec<Summary>, Error> {
        self.read(move |conn| {
            let (conditions, values) = filter.to_sql();
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS} FROM quarantine q{} ORDER BY q.id DESC LIMIT {}",
                conditions,
                i64::try_from(limit).unwrap_or(i64::MAX)
            );
            let mut statement = conn.prepare_cached(&sql).map_err(store::Error::from)?;
            let mut rows = statement
                .query(params_from_iter(values.iter()))
                .map_err(store::Error::from)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(store::Error::from)? {
                out.push(summary_from_row(row)?.0);
            }
            Ok(out)
        })
        .await
    }

    /// How many entries match `filter` (its `before` is ignored).
    pub async fn count(&self, mut filter: QuarantineFilter) -> Result<u64, Error> {
        filter.before = None;
        self.read(move |conn| {
            let (conditions, values) = filter.to_sql();
            let sql = format!("SELECT count(*) FROM quarantine{conditions}");
            let n: i64 = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params_from_iter(values.iter()), |r| r.get(0)))
                .map_err(store::Error::from)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// The entry of a journal message, if it was quarantined.
    pub async fn entry_of_message(
        &self,
        message_id: MessageId,
    ) -> Result<Option<QuarantineId>, Error> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id FROM quarantine WHERE message_id = ?1",
                    [message_id.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(store::Error::from)?
                .map(QuarantineId))
        })
        .await
    }

    /// Everything about one entry: findings, original, current content, edit history.
    pub async fn get(&self, id: QuarantineId) -> Result<Detail, Error> {
        self.read(move |conn| {
            let current = current_in(conn, id)?.ok_or(Error::NotFound(id))?;
            let message_id = MessageId(current.summary.message_id);
            let original = Journal::get_in(conn, message_id)?
                .ok_or(Error::Store(store::Error::NotFound(message_id)))?;
            let content = current
                .content
                .clone()
                .unwrap_or_else(|| original.raw.clone());
            let mut history = Vec::new();
            let mut statement = conn
                .prepare_cached(
                    "SELECT id, edited_at, edited_by, reason, previous, content, findings \
                     FROM quarantine_edits WHERE quarantine_id = ?1 ORDER BY id",
                )
                .map_err(store::Error::from)?;
            let mut rows = statement.query([id.0]).map_err(store::Error::from)?;
            while let Some(row) = rows.next().map_err(store::Error::from)? {
                history.push(
                    (|| -> store::rusqlite::Result<Edit> {
                        Ok(Edit {
                            id: row.get(0)?,
                            edited_at: row.get(1)?,
                            edited_by: row.get(2)?,
                            reason: row.get(3)?,
                            previous: row.get(4)?,
                            content: row.get(5)?,
                            findings: parse_findings(&row.get::<_, String>(6)?),
                        })
                    })()
                    .map_err(store::Error::from)?,
                );
            }
            let reprocessed_from = conn
                .query_row(
                    "SELECT id FROM quarantine WHERE reprocessed_as = ?1",
                    [message_id.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(store::Error::from)?
                .map(QuarantineId);
            Ok(Detail {
                summary: current.summary,
                findings: current.findings,
                validated_at: current.validated_at,
                original,
                content,
                revision: current.revision,
                history,
                reprocessed_from,
            })
        })
        .await
    }

    /// Validates `content` with `channel`'s settings on the blocking pool: the findings
    /// as stored (JSON), their error and warning counts, and as records.
    async fn check(&self, channel: String, content: Vec<u8>) -> Result<Checked, Error> {
        let validators = Arc::clone(&self.validators);
        let findings = tokio::task::spawn_blocking(move || {
            validators.channel(&channel).validate_bytes(&content)
        })
        .await
        .map_err(|e| Error::Store(store::Error::ReadPanicked(e.to_string())))?
        .map_err(|e| Error::NotHl7(e.to_string()))?;
        let json = findings_json(&findings);
        let errors = findings.iter().filter(|f| f.severity.code() == 'E').count() as i64;
        Ok(Checked {
            records: parse_findings(&json),
            warnings: findings.len() as i64 - errors,
            errors,
            json,
        })
    }

    /// Replaces the content of an open entry with `content`, keeping the previous content,
    /// `who` and `reason` in the history, and validates the new content at once with the
    /// channel's settings. The journal's original is never changed.
    pub async fn edit(
        &self,
        id: QuarantineId,
        content: &[u8],
        who: &str,
        reason: &str,
    ) -> Result<Edited, Error> {
        let who = required("the editor (X-Corridor-User)", who)?;
        let reason = required("the reason for the edit", reason)?;
        let content = normalize_content(content);
        if content.is_empty() {
            return Err(Error::BadRequest(
                "the corrected message is empty: send the whole message as the body".into(),
            ));
        }
        let (channel, revision) = self
            .read(move |conn| {
                let current = current_in(conn, id)?.ok_or(Error::NotFound(id))?;
                open(&current)?;
                Ok((current.summary.channel, current.revision))
            })
            .await?;
        let Checked {
            json,
            errors,
            warnings,
            records,
        } = self.check(channel, content.clone()).await?;
        self.store
            .write(move |conn| {
                let Some(current) = current_in(conn, id)? else {
                    return Ok(Err(Error::NotFound(id)));
                };
                if let Err(e) = open(&current) {
                    return Ok(Err(e));
                }
                if current.revision != revision {
                    return Ok(Err(Error::EditedMeanwhile(id)));
                }
                let previous = content_in(conn, &current)?;
                let now = UnixMicros::now().0;
                conn.prepare_cached(
                    "INSERT INTO quarantine_edits (quarantine_id, edited_at, edited_by, reason, \
                     previous, content, findings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![id.0, now, who, reason, previous, content, json])?;
                let edit_id = conn.last_insert_rowid();
                conn.prepare_cached(
                    "UPDATE quarantine SET content = ?2, findings = ?3, errors = ?4, \
                     warnings = ?5, validated_at = ?6, revision = revision + 1 WHERE id = ?1",
                )?
                .execute(params![id.0, content, json, errors, warnings, now])?;
                Ok(Ok(Edited {
                    id,
                    edit_id,
                    revision: current.revision + 1,
                    findings: records,
                }))
            })
            .await?
    }

    /// Validates the current content again (after a profile changed, or to check an edit)
    /// and stores the new findings.
    pub async fn revalidate(&self, id: QuarantineId) -> Result<Vec<FindingRecord>, Error> {
        let (channel, revision, content) = self
            .read(move |conn| {
                let current = current_in(conn, id)?.ok_or(Error::NotFound(id))?;
                let content = content_in(conn, &current)?;
                Ok((current.summary.channel, current.revision, content))
            })
            .await?;
        let Checked {
            json,
            errors,
            warnings,
            records,
        } = self.check(channel, content).await?;
        self.store
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE quarantine SET findings = ?3, errors = ?4, warnings = ?5, \
                         validated_at = ?6 WHERE id = ?1 AND revision = ?2",
                    )?
                    .execute(params![
                        id.0,
                        revision,
                        json,
                        errors,
                        warnings,
                        UnixMicros::now().0
                    ])?;
                Ok(if changed == 1 {
                    Ok(records)
                } else {
                    Err(Error::EditedMeanwhile(id))
                })
            })
            .await?
    }

    /// Sends open entries back through their channels: each one's current content (edited
    /// or original) is appended to the journal as a new `received` message on the same
    /// channel, and the entry becomes `reprocessed` with a reference to it, in one write.
    /// Entries whose current findings still hold an error are refused unless `force`
    /// (a channel validating before the ACK does not validate again in its pipeline).
    /// Entries that are missing, not open or refused are reported and the others go on.
    /// After the commit, `notify` is called once per channel so its pipeline looks at the
    /// journal.
    pub async fn reprocess(
        &self,
        ids: &[QuarantineId],
        who: &str,
        reason: Option<&str>,
        force: bool,
        notify: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Vec<Reprocessed>, Error> {
        let who = required("who reprocesses (X-Corridor-User)", who)?;
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(String::from);
        let wanted = ids.to_vec();
        let by = who.clone();
        // Read and build the new journal rows outside the writer.
        let prepared = self
            .read(move |conn| {
                let mut out = Vec::with_capacity(wanted.len());
                for id in wanted {
                    out.push((id, prepare_reprocess(conn, id, &by, force)));
                }
                Ok(out)
            })
            .await?;
        let done = self
            .store
            .write(move |conn| {
                let mut results = Vec::with_capacity(prepared.len());
                for (id, prepared) in prepared {
                    let (result, channel) = match prepared {
                        Err(e) => (Err(e), None),
                        Ok(p) => {
                            let channel = p.message.channel.clone();
                            let result = reprocess_in(conn, id, p, &who, reason.as_deref())?;
                            (result, Some(channel))
                        }
                    };
                    let channel = channel.filter(|_| result.is_ok());
                    results.push((Reprocessed { id, result }, channel));
                }
                Ok(results)
            })
            .await?;
        let channels: BTreeSet<Arc<str>> = done.iter().filter_map(|(_, c)| c.clone()).collect();
        for channel in &channels {
            notify(channel);
        }
        Ok(done.into_iter().map(|(r, _)| r).collect())
    }

    /// Sets an open entry aside for good, with who and why.
    pub async fn discard(&self, id: QuarantineId, who: &str, reason: &str) -> Result<(), Error> {
        let who = required("who discards (X-Corridor-User)", who)?;
        let reason = required("the reason for discarding", reason)?;
        self.store
            .write(move |conn| {
                let Some(current) = current_in(conn, id)? else {
                    return Ok(Err(Error::NotFound(id)));
                };
                if let Err(e) = open(&current) {
                    return Ok(Err(e));
                }
                conn.prepare_cached(
                    "UPDATE quarantine SET status = 'discarded', status_by = ?2, \
                     status_reason = ?3, status_changed_at = ?4 WHERE id = ?1",
                )?
                .execute(params![id.0, who, reason, UnixMicros::now().0])?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Open entries matching `filter` (channel, sender, type), oldest first, at most `limit`:
    /// what a bulk reprocess by filter takes.
    pub async fn open_ids(
        &self,
        mut filter: QuarantineFilter,
        limit: usize,
    ) -> Result<Vec<QuarantineId>, Error> {
        filter.status = Some(Status::Open);
        filter.before = None;
        self.read(move |conn| {
            let (conditions, values) = filter.to_sql();
            let sql = format!(
                "SELECT id FROM quarantine{conditions} ORDER BY id LIMIT {}",
                i64::try_from(limit).unwrap_or(i64::MAX)
            );
            let mut statement = conn.prepare_cached(&sql).map_err(store::Error::from)?;
            let ids = statement
                .query_map(params_from_iter(values.iter()), |r| r.get(0))
                .map_err(store::Error::from)?
                .collect::<store::rusqlite::Result<Vec<i64>>>()
                .map_err(store::Error::from)?;
            Ok(ids.into_iter().map(QuarantineId).collect())
        })
        .await
    }

    /// Data quality over time since `since` (microseconds), per sender and `bucket`:
    /// messages validated, and findings per field.
    pub async fn data_quality_over_time(
        &self,
        filter: DataQualityFilter,
        since: i64,
        bucket: Bucket,
    ) -> Result<(Vec<SenderOverTime>, Vec<FieldOverTime>), Error> {
        self.read(move |conn| Ok(data_quality_over_time_in(conn, &filter, since, bucket)?))
            .await
    }

    /// The data-quality counters matching `filter`, most frequent first.
    pub async fn data_quality(
        &self,
        filter: DataQualityFilter,
    ) -> Result<(Vec<MessageCount>, Vec<FindingCount>), Error> {
        self.read(move |conn| Ok(data_quality_in(conn, &filter)?))
            .await
    }
}

fn required(what: &str, value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        Err(Error::BadRequest(format!("{what} is required")))
    } else {
        Ok(value.to_string())
    }
}

fn open(current: &Current) -> Result<(), Error> {
    match current.summary.status {
        Status::Open => Ok(()),
        status => Err(Error::NotOpen {
            id: current.summary.id,
            status,
        }),
    }
}

/// A new journal row for a reprocessed entry, built outside the writer.
struct Prepared {
    revision: i64,
    message: NewMessage,
}

fn prepare_reprocess(
    conn: &Connection,
    id: QuarantineId,
    who: &str,
    force: bool,
) -> Result<Prepared, Error> {
    let current = current_in(conn, id)?.ok_or(Error::NotFound(id))?;
    open(&current)?;
    if current.summary.errors > 0 && !force {
        return Err(Error::StillInvalid {
            id,
            errors: current.summary.errors,
        });
    }
    let message_id = MessageId(current.summary.message_id);
    let original = Journal::get_in(conn, message_id)?.ok_or(store::Error::NotFound(message_id))?;
    let content = current.content.clone().unwrap_or(original.raw);
    let parsed = hl7v2::Message::parse(&content).map_err(|e| Error::NotHl7(e.to_string()))?;
    let text = |n: usize| parsed.field(0, n).unwrap_or("").trim().to_string();
    let message = NewMessage {
        channel: Arc::from(current.summary.channel.as_str()),
        received_at: UnixMicros::now(),
        peer: Arc::from(format!("quarantine:{id}").as_str()),
        tls_identity: original.entry.tls_identity.as_deref().map(Arc::from),
        sending_application: text(3),
        sending_facility: text(4),
        message_type: text(9),
        control_id: text(10),
        version: text(12),
        state: MessageState::Received,
        state_reason: Some(format!(
            "reprocessed from quarantine entry {id} (message {message_id}) by {who}"
        )),
        raw: Bytes::from(content),
    };
    Ok(Prepared {
        revision: current.revision,
        message,
    })
}

fn reprocess_in(
    conn: &Connection,
    id: QuarantineId,
    prepared: Prepared,
    who: &str,
    reason: Option<&str>,
) -> store::Result<Result<MessageId, Error>> {
    let Some(current) = current_in(conn, id)? else {
        return Ok(Err(Error::NotFound(id)));
    };
    if let Err(e) = open(&current) {
        return Ok(Err(e));
    }
    if current.revision != prepared.revision {
        return Ok(Err(Error::EditedMeanwhile(id)));
    }
    // No duplicate window: the original with the same control id is in the journal.
    let new_id = Journal::append_in(conn, &prepared.message, None)?.id();
    conn.prepare_cached(
        "UPDATE quarantine SET status = 'reprocessed', status_by = ?2, status_reason = ?3, \
         status_changed_at = ?4, reprocessed_as = ?5 WHERE id = ?1",
    )?
    .execute(params![id.0, who, reason, UnixMicros::now().0, new_id.0])?;
    Ok(Ok(new_id))
}

#[cfg(test)]
mod tests {
    use super::normalize_content;

    #[test]
    fn content_gets_cr_segment_ends_and_no_surrounding_blanks() {
        assert_eq!(
            normalize_content(b"\n\nMSH|^~\\&|A\r\nPID|1\nPV1|1\n\n"),
            b"MSH|^~\\&|A\rPID|1\rPV1|1\r"
        );
        assert_eq!(normalize_content(b"MSH|^~\\&|A\r"), b"MSH|^~\\&|A\r");
        assert_eq!(
            normalize_content(b"\xEF\xBB\xBFMSH|^~\\&|A"),
            b"MSH|^~\\&|A\r"
        );
        assert_eq!(normalize_content(b" \r\n\t"), b"");
    }
}

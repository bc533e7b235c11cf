//! Retention: `[channels.NAME.retention] max_age = "30d"`, `max_messages = N`.
//!
//! A background task prunes each channel every `interval`. It deletes only messages in a
//! final state (`delivered`, `filtered`, `rejected`, `dead_lettered`), never one that is
//! still `received`, `processed`, `quarantined` or `errored`, nor one with a destination
//! queue row still `queued` or `sending`, nor one whose quarantine entry is still open.
//! A message goes with everything that names it: its destination queue rows, its
//! quarantine entry and that entry's edits, and rows of any table that references the
//! journal (the application acknowledgements owed).
//!
//! The candidates are found on a read connection (reads never wait for the writer), and
//! deleted `batch_size` at a time, each batch one small store write that checks every
//! message's state again, so traffic goes on between the batches.

use std::sync::Arc;
use std::time::Duration;

use store::rusqlite::{self, OptionalExtension, params};
use store::{Store, UnixMicros};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::RetentionConfig;

/// The final states, as stored, that retention may delete.
pub const FINAL_STATES: [&str; 4] = ["delivered", "filtered", "rejected", "dead_lettered"];

const FINAL_SQL: &str = "('delivered', 'filtered', 'rejected', 'dead_lettered')";

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Journal messages deleted.
    pub messages: u64,
    /// Destination queue rows deleted with them.
    pub queue_rows: u64,
}

/// The running retention task.
pub struct Retention {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Retention {
    /// Prunes every channel in `policies` now and then every its `interval`.
    pub fn spawn(store: Store, policies: Vec<(String, RetentionConfig)>) -> Retention {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tasks = Vec::new();
            for (channel, policy) in policies {
                tasks.push(tokio::spawn(run_channel(
                    store.clone(),
                    Arc::from(channel.as_str()),
                    policy,
                    stopped.clone(),
                )));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
        Retention { stop, task }
    }

    /// Stops after the batch being deleted (if any).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run_channel(
    store: Store,
    channel: Arc<str>,
    policy: RetentionConfig,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        match prune(&store, &channel, &policy, UnixMicros::now(), &stopped).await {
            Ok(pruned) if pruned.messages > 0 => info!(
                channel = %channel,
                messages = pruned.messages,
                queue_rows = pruned.queue_rows,
                "retention deleted finished messages"
            ),
            Ok(_) => debug!(channel = %channel, "retention: nothing to delete"),
            Err(err) => {
                warn!(channel = %channel, error = %err, "retention pass failed; trying again at the next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(policy.interval.0) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// One pass over `channel` as of `now`: deletes, batch by batch, every finished message
/// the policy no longer keeps. Stops early when `stopped` turns true.
pub async fn prune(
    store: &Store,
    channel: &str,
    policy: &RetentionConfig,
    now: UnixMicros,
    stopped: &watch::Receiver<bool>,
) -> store::Result<Pruned> {
    let mut total = Pruned::default();
    let batch = policy.batch_size.max(1);
    let cutoff = policy
        .max_age
        .map(|age| now.0.saturating_sub(micros(age.0)));
    let keep = policy.max_messages;
    // The newest ids that are too old, and beyond the newest `keep` finished messages,
    // found once: the batches go no higher.
    let channel_owned = channel.to_owned();
    let (by_age, by_count) = store
        .read_async(move |conn| highest_prunable(conn, &channel_owned, cutoff, keep))
        .await?;
    let Some(limit_id) = by_age.max(by_count) else {
        return Ok(total);
    };
    // A message goes when it is older than the cutoff, or beyond the count.
    let cutoff = cutoff.unwrap_or(i64::MIN);
    let by_count = by_count.unwrap_or(0);
    let mut after = 0i64;
    loop {
        if *stopped.borrow() {
            break;
        }
        let channel_owned = channel.to_owned();
        let candidates: Vec<i64> = store
            .read_async(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT id FROM journal WHERE channel = ?1 AND id > ?2 AND id <= ?3 \
                     AND state IN {FINAL_SQL} AND (received_at < ?5 OR id <= ?6) \
                     ORDER BY id LIMIT ?4"
                ))?;
                let ids = stmt
                    .query_map(
                        params![
                            channel_owned,
                            after,
                            limit_id,
                            batch as i64,
                            cutoff,
                            by_count
                        ],
                        |r| r.get(0),
                    )?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
                Ok(ids)
            })
            .await?;
        let Some(&last) = candidates.last() else {
            break;
        };
        after = last;
        let full = candidates.len() >= batch;
        let (messages, queue_rows) = store
            .write(move |conn| delete_batch(conn, &candidates))
            .await?;
        total.messages += messages;
        total.queue_rows += queue_rows;
        if !full {
            break;
        }
        // Leave room for the traffic's writes between two batches.
        tokio::task::yield_now().await;
    }
    Ok(total)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The highest journal ids of `channel` that the policy lets go: the newest finished
/// message received before `cutoff`, and the newest beyond the `keep` newest finished
/// messages (`None` where nothing may go).
fn highest_prunable(
    conn: &rusqlite::Connection,
    channel: &str,
    cutoff: Option<i64>,
    keep: Option<u64>,
) -> store::Result<(Option<i64>, Option<i64>)> {
    let (mut by_age, mut by_count) = (None, None);
    if let Some(cutoff) = cutoff {
        // Ids grow with arrival: walk from the newest down to the first that is too old.
        let id: Option<i64> = conn
            .query_row(
                &format!(
                    "SELECT id FROM journal WHERE channel = ?1 AND received_at < ?2 \
                     AND state IN {FINAL_SQL} ORDER BY id DESC LIMIT 1"
                ),
                params![channel, cutoff],
                |r| r.get(0),
            )
            .optional()?;
        by_age = id;
    }
    if let Some(keep) = keep {
        let offset = i64::try_from(keep).unwrap_or(i64::MAX);
        let id: Option<i64> = conn
            .query_row(
                &format!(
                    "SELECT id FROM journal WHERE channel = ?1 AND state IN {FINAL_SQL} \
                     ORDER BY id DESC LIMIT 1 OFFSET ?2"
                ),
                params![channel, offset],
                |r| r.get(0),
            )
            .optional()?;
        by_count = id;
    }
    Ok((by_age, by_count))
}

/// Runs on the writer: deletes the candidates still final and free, with the rows that
/// name them. Returns (messages, queue rows) deleted.
fn delete_batch(conn: &rusqlite::Connection, candidates: &[i64]) -> store::Result<(u64, u64)> {
    let has_queue = table_exists(conn, "delivery_queue")?;
    let has_quarantine = table_exists(conn, "quarantine")?;
    // Tables whose rows reference the journal (foreign keys are enforced).
    let referencing: Vec<(String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT m.name, f.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' AND f.\"table\" = 'journal'",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut guards = String::new();
    if has_queue {
        guards.push_str(
            " AND NOT EXISTS (SELECT 1 FROM delivery_queue d WHERE d.message_id = journal.id \
             AND d.state IN ('queued', 'sending'))",
        );
    }
    if has_quarantine {
        guards.push_str(
            " AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.message_id = journal.id \
             AND q.status = 'open')",
        );
    }
    let check = format!("SELECT 1 FROM journal WHERE id = ?1 AND state IN {FINAL_SQL}{guards}");
    let (mut messages, mut queue_rows) = (0u64, 0u64);
    for &id in candidates {
        let free = conn
            .prepare_cached(&check)?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some();
        if !free {
            continue;
        }
        if has_queue {
            queue_rows += conn
                .prepare_cached("DELETE FROM delivery_queue WHERE message_id = ?1")?
                .execute([id])? as u64;
        }
        if has_quarantine {
            conn.prepare_cached(
                "DELETE FROM quarantine_edits WHERE quarantine_id IN \
                 (SELECT id FROM quarantine WHERE message_id = ?1)",
            )?
            .execute([id])?;
            conn.prepare_cached("DELETE FROM quarantine WHERE message_id = ?1")?
                .execute([id])?;
        }
        for (table, column) in &referencing {
            conn.prepare_cached(&format!(
                "DELETE FROM \"{}\" WHERE \"{}\" = ?1",
                table.replace('"', "\"\""),
                column.replace('"', "\"\"")
            ))?
            .execute([id])?;
        }
        messages += u64::from(store::Journal::delete_in(conn, store::MessageId(id))?);
    }
    Ok((messages, queue_rows))
}

fn table_exists(conn: &rusqlite::Connection, name: &str) -> store::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
}

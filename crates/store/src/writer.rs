//! The single writer thread and its group commit.
//!
//! Every write in Corridor goes through one thread that owns the only write connection.
//! Requests arrive over a channel; the thread takes the first one, drains whatever else is
//! already waiting (up to a cap), runs them all inside ONE transaction, each in its own
//! savepoint, and commits. A request that asked for durability ([`Durability::Synced`])
//! is then handed to the sync thread, which fsyncs the WAL and only then answers it; the
//! writer goes on with the next batch meanwhile. Syncing the WAL syncs every commit
//! written before it, so under load one fsync answers the synced requests of every commit
//! made while the previous fsync ran: the cost of durability is shared by every
//! connection instead of paid by each message, and the writer never waits for the disk.
//!
//! A failed fsync stops the store for good ([`SyncHalt`]): every later write is refused
//! with [`Error::DiskSyncFailed`] until the process is restarted.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use tokio::sync::{oneshot, watch};

use crate::counts::{self, StateCounts};
use crate::error::{Error, Result};

/// How a request's changes are undone if it fails while others share its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Any closure: it runs inside a savepoint of its own (when there is earlier work in
    /// the transaction to protect), rolled back if it fails.
    Savepoint,
    /// The request writes with at most one statement, and fails only by that statement
    /// failing (or before it): SQLite's statement rollback already leaves nothing behind,
    /// so it needs no savepoint.
    SingleStatement,
}

/// Whether a request's answer waits for its commit to be synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Answered once the commit is synced: it survives a power loss. (Readers may see it
    /// a moment earlier, between its commit and the fsync.)
    Synced,
    /// Answered once committed (it survives a crash of the process, and readers see it);
    /// it reaches the disk with the next fsync of the WAL or checkpoint. For changes that
    /// can be redone from what is already synced.
    Unsynced,
    /// Answered once committed, like [`Durability::Unsynced`], but never left waiting
    /// for company: its batch commits at once, and an fsync of the WAL is started right
    /// after the commit (the sync thread's next one), so it reaches the disk within one
    /// or two fsyncs of being answered. For records whose loss in a power cut must be
    /// bounded in time but that are not worth an fsync of their own each (the audit
    /// trail).
    Committed,
}

/// One queued write, type-erased so requests of every result type share one queue.
pub(crate) trait Job: Send {
    /// How the request's changes are undone on failure.
    fn isolation(&self) -> Isolation;
    /// Whether its commit must be synced before it is answered.
    fn durability(&self) -> Durability;
    /// Runs the request inside the open transaction; true if it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the requester once the batch's fate is known (`commit` is the commit or
    /// sync error).
    fn finish(self: Box<Self>, commit: Option<&Error>);
}

pub(crate) type BoxedJob = Box<dyn Job>;

/// A write request: the closure, then its outcome held until the commit is known.
pub(crate) struct Request<T, F> {
    isolation: Isolation,
    durability: Durability,
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Request<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    pub(crate) fn boxed(
        isolation: Isolation,
        durability: Durability,
        work: F,
    ) -> (BoxedJob, WriteFuture<T>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Request {
            isolation,
            durability,
            work: Some(work),
            outcome: None,
            reply,
        });
        (job, WriteFuture { answer })
    }
}

impl<T, F> Job for Request<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|panic| Err(Error::WritePanicked(panic_words(panic.as_ref()))));
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, commit: Option<&Error>) {
        let answer = match (self.outcome, commit) {
            // A request that failed keeps its own error: its savepoint was rolled back.
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(Error::SyncFailed(why))) => Err(Error::SyncFailed(why.clone())),
            (_, Some(Error::DiskSyncFailed(why))) => Err(Error::DiskSyncFailed(why.clone())),
            (_, Some(Error::CommitFailed(why))) => Err(Error::CommitFailed(why.clone())),
            (_, Some(commit)) => Err(Error::CommitFailed(commit.to_string())),
            (None, None) => Err(Error::WriterStopped),
        };
        // The requester may have stopped waiting; the write stands either way.
        let _ = self.reply.send(answer);
    }
}

fn panic_words(panic: &(dyn Any + Send)) -> String {
    if let Some(words) = panic.downcast_ref::<&str>() {
        (*words).to_owned()
    } else if let Some(words) = panic.downcast_ref::<String>() {
        words.clone()
    } else {
        "panic without a message".to_owned()
    }
}

/// The answer to a write: resolves once the write is committed (durable) or has failed.
///
/// The write was queued when this future was created, and dropping the future does not
/// cancel it. Non-async callers use [`WriteFuture::wait`].
#[must_use = "the write is queued already; await the future to learn whether it is durable"]
pub struct WriteFuture<T> {
    answer: oneshot::Receiver<Result<T>>,
}

impl<T> WriteFuture<T> {
    /// Blocks the current thread until the write is committed or has failed.
    ///
    /// # Panics
    ///
    /// Panics when called from inside an async runtime; await the future there instead.
    pub fn wait(self) -> Result<T> {
        self.answer
            .blocking_recv()
            .unwrap_or(Err(Error::WriterStopped))
    }
}

impl<T> Future for WriteFuture<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.answer)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(Error::WriterStopped)))
    }
}

/// Counts of the writer's work since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions the writer committed.
    pub commits: u64,
    /// Of those, the ones holding a request that waited for its fsync.
    pub synced_commits: u64,
    /// Fsyncs of the WAL that answered those requests (one covers every commit before it).
    pub syncs: u64,
    /// Write requests carried by those commits (including requests that failed on their own).
    pub requests: u64,
    /// Batches whose commit failed.
    pub failed_commits: u64,
}

/// The writer's counters, shared with [`crate::Store::writer_stats`], and the journal's
/// counts it keeps ([`crate::Store::message_counts`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) journal: StateCounts,
    commits: AtomicU64,
    synced_commits: AtomicU64,
    syncs: AtomicU64,
    requests: AtomicU64,
    failed_commits: AtomicU64,
}

impl Counters {
    /// Zero counters, and the journal's counts as counted when the store opened.
    pub(crate) fn with_journal(journal: StateCounts) -> Counters {
        Counters {
            journal,
            ..Counters::default()
        }
    }

    pub(crate) fn snapshot(&self) -> WriterStats {
        WriterStats {
            commits: self.commits.load(Ordering::Relaxed),
            synced_commits: self.synced_commits.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
        }
    }
}

/// Set once an fsync of the database failed; from then on the store takes no write.
///
/// On Linux a failed fsync may drop the dirty pages it could not write while marking
/// them clean (PostgreSQL met this in 2018), and a later fsync, above all through a
/// newly opened descriptor, then succeeds without them ever reaching the disk. SQLite
/// chains its WAL frames by checksum, so recovery after a power loss stops at a lost
/// frame and drops every commit after it, including commits acknowledged once the disk
/// seemed to recover. So a failed fsync is fatal, as under PostgreSQL's
/// `data_sync_retry = off`: every write answered before it was synced, none is answered
/// after it, and a restart lets SQLite recover from what is on disk. A failed write is
/// not: SQLite rolls its transaction back and its cache still holds every page.
#[derive(Debug)]
pub(crate) struct SyncHalt {
    cause: watch::Sender<Option<String>>,
}

impl SyncHalt {
    pub(crate) fn new() -> SyncHalt {
        SyncHalt {
            cause: watch::channel(None).0,
        }
    }

    /// Stops the store for `cause` (which names the fsync and what the system said, never
    /// data); the first call logs it, later ones change nothing.
    pub(crate) fn stop(&self, cause: String) {
        self.cause.send_if_modified(|held| {
            if held.is_some() {
                return false;
            }
            // Logged before anyone waiting is woken: the process may exit at once.
            tracing::error!(
                %cause,
                "an fsync of the database failed, so the store takes no more writes (a later \
                 fsync could succeed without the pages this one dropped): every message \
                 acknowledged before it is on disk and none is acknowledged after it; \
                 restart once the disk is healthy"
            );
            *held = Some(cause);
            true
        });
    }

    /// The error every write gets once the store stopped; None while it takes writes.
    pub(crate) fn error(&self) -> Option<Error> {
        self.cause.borrow().clone().map(Error::DiskSyncFailed)
    }

    /// Resolves once the store stopped.
    pub(crate) async fn stopped(&self) -> Error {
        let mut cause = self.cause.subscribe();
        let held = cause
            .wait_for(Option::is_some)
            .await
            .map(|held| held.clone());
        match held {
            Ok(Some(cause)) => Error::DiskSyncFailed(cause),
            // `self` holds the sender, so the watch cannot close while this waits.
            _ => std::future::pending().await,
        }
    }
}

/// Whether SQLite failed on an fsync (of the WAL, the database file or its directory).
pub(crate) fn is_fsync_failure(err: &rusqlite::Error) -> bool {
    err.sqlite_error().is_some_and(|e| {
        matches!(
            e.extended_code,
            rusqlite::ffi::SQLITE_IOERR_FSYNC | rusqlite::ffi::SQLITE_IOERR_DIR_FSYNC
        )
    })
}

/// Keeps SQLite from checkpointing when `conn` closes after the store stopped: the WAL
/// may hold frames whose pages a failed fsync dropped, and a checkpoint would copy
/// whatever the disk now returns for them into the database file. The next open
/// recovers from the WAL instead.
pub(crate) fn no_checkpoint_on_close(conn: &Connection) {
    if let Err(err) = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true) {
        tracing::warn!(error = %err, "could not turn off the checkpoint on close");
    }
}

/// Runs the writer loop until every sender of `queue` is gone, with the sync thread
/// beside it (syncing `wal`, the connection's WAL file). Once `halt` is set it refuses
/// every request without running it.
pub(crate) fn run(
    conn: Connection,
    queue: Receiver<BoxedJob>,
    wal: PathBuf,
    max_batch: usize,
    unsynced_delay: Duration,
    counters: Arc<Counters>,
    halt: Arc<SyncHalt>,
) {
    counts::writer_thread();
    let (to_sync, synced) = mpsc::channel::<Vec<BoxedJob>>();
    let sync_counters = Arc::clone(&counters);
    let sync_halt = Arc::clone(&halt);
    let syncer = thread::Builder::new()
        .name("corridor-store-sync".into())
        .spawn(move || sync_until_stopped(&wal, &synced, &sync_counters, &sync_halt));
    let syncer = match syncer {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::error!(error = %err, "could not start the sync thread; synced writes fail");
            None
        }
    };
    let mut writer = Writer {
        conn,
        queue,
        max_batch,
        unsynced_delay,
        batch: Vec::with_capacity(max_batch),
    };
    while let Ok(first) = writer.queue.recv() {
        writer.batch.push(first);
        if let Some(stopped) = halt.error() {
            writer.take_waiting();
            for job in writer.batch.drain(..) {
                job.finish(Some(&stopped));
            }
            continue;
        }
        let committed = writer.run_batch();
        let mut waiting_for_sync = Vec::new();
        match &committed {
            Ok(()) => {
                counters.journal.commit();
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .requests
                    .fetch_add(writer.batch.len() as u64, Ordering::Relaxed);
            }
            Err(err) => {
                StateCounts::discard();
                counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(requests = writer.batch.len(), error = %err, "write batch was not committed");
                // SQLite syncs the WAL's header when it starts the WAL over.
                if matches!(err, Error::Sqlite(cause) if is_fsync_failure(cause)) {
                    halt.stop(format!("fsync while committing: {err}"));
                }
            }
        }
        let mut sync_soon = false;
        for job in writer.batch.drain(..) {
            match job.durability() {
                Durability::Synced if committed.is_ok() => waiting_for_sync.push(job),
                Durability::Committed if committed.is_ok() => {
                    sync_soon = true;
                    job.finish(None);
                }
                _ => job.finish(committed.as_ref().err()),
            }
        }
        if waiting_for_sync.is_empty() && sync_soon {
            // Nobody waits for this fsync; it bounds how long the commit stays in the
            // page cache only. A sync thread that is gone leaves it to the checkpoints.
            let _ = to_sync.send(Vec::new());
        }
        if !waiting_for_sync.is_empty() {
            counters.synced_commits.fetch_add(1, Ordering::Relaxed);
            if let Err(mpsc::SendError(jobs)) = to_sync.send(waiting_for_sync) {
                let stopped = Error::SyncFailed("the sync thread is not running".to_owned());
                for job in jobs {
                    job.finish(Some(&stopped));
                }
            }
        }
    }
    if halt.error().is_some() {
        no_checkpoint_on_close(&writer.conn);
    }
    drop(to_sync);
    if let Some(syncer) = syncer {
        let _ = syncer.join();
    }
    tracing::debug!("database writer stopped");
}

/// The sync thread: waits for committed requests, fsyncs the WAL once for all that are
/// waiting (their commits were written before the fsync started, so it covers them), and
/// answers them. A failed fsync answers them with the error (the sender is told the
/// message is not safe, and sends it again) and stops the store ([`SyncHalt`]); from then
/// on it answers without syncing.
fn sync_until_stopped(
    wal: &Path,
    committed: &Receiver<Vec<BoxedJob>>,
    counters: &Counters,
    halt: &SyncHalt,
) {
    let mut file: Option<File> = None;
    while let Ok(mut jobs) = committed.recv() {
        while let Ok(more) = committed.try_recv() {
            jobs.extend(more);
        }
        let failed = match halt.error() {
            Some(stopped) => Some(stopped),
            None => match sync_wal(&mut file, wal) {
                // A failed fsync elsewhere (a checkpoint) meanwhile is as fatal for them.
                Ok(()) => {
                    counters.syncs.fetch_add(1, Ordering::Relaxed);
                    halt.error()
                }
                Err(WalSync::Open(err)) => {
                    tracing::error!(error = %err, "could not open the write-ahead log to sync it");
                    Some(Error::SyncFailed(err.to_string()))
                }
                Err(WalSync::Sync(err)) => {
                    halt.stop(format!("fdatasync of the write-ahead log: {err}"));
                    Some(Error::SyncFailed(err.to_string()))
                }
            },
        };
        for job in jobs {
            job.finish(failed.as_ref());
        }
    }
}

/// Why the WAL could not be synced.
enum WalSync {
    /// It could not be opened: nothing was written through it, nothing lost.
    Open(std::io::Error),
    /// The fsync failed: fatal.
    Sync(std::io::Error),
}

/// fdatasync of the WAL, through one descriptor opened on first use (the WAL exists once
/// a commit wrote to it, and SQLite keeps the same file while any connection is open)
/// and kept. Since Linux 4.13 a writeback error of the file is reported once to every
/// descriptor open on it, so this one also hears of a failure that only SQLite's own
/// fsync (the writer's automatic checkpoint, whose errors SQLite ignores) met.
fn sync_wal(file: &mut Option<File>, path: &Path) -> Result<(), WalSync> {
    let open = match file {
        Some(open) => open,
        None => file.insert(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(WalSync::Open)?,
        ),
    };
    open.sync_data().map_err(WalSync::Sync)
}

/// The writer thread's state between batches.
struct Writer {
    conn: Connection,
    queue: Receiver<BoxedJob>,
    max_batch: usize,
    /// How long a batch of unsynced requests waits for company.
    unsynced_delay: Duration,
    batch: Vec<BoxedJob>,
}

impl Writer {
    /// Runs the batch in one transaction, one savepoint per job, and commits (without an
    /// fsync: `synchronous = NORMAL`; the sync thread syncs for the requests that asked).
    ///
    /// Requests that arrive while the batch runs join it before the commit: they cost no
    /// extra commit, and nobody already in the batch waits for more than their execution.
    fn run_batch(&mut self) -> Result<()> {
        self.gather();
        execute(&self.conn, "BEGIN IMMEDIATE")?;
        let ran = self.run_jobs().and_then(|()| execute(&self.conn, "COMMIT"));
        if ran.is_err() && !self.conn.is_autocommit() {
            if let Err(err) = execute(&self.conn, "ROLLBACK") {
                tracing::error!(error = %err, "rolling back a failed write batch failed");
            }
        }
        ran
    }

    /// Collects the batch before its transaction starts.
    ///
    /// A batch of unsynced requests only waits up to `unsynced_delay` for company: the
    /// next synced request (a received message) or more unsynced ones. Each commit
    /// rewrites the pages it touched, and the busiest pages (index leaves, the newest
    /// journal and queue rows) are touched by every commit, so fewer, larger commits
    /// write less. Nobody waits on an unsynced write for its durability, only for its
    /// visibility, which this delays by at most the wait.
    fn gather(&mut self) {
        // Someone waits for a synced or committed request: no waiting for company.
        let synced = |batch: &[BoxedJob]| {
            batch
                .iter()
                .any(|job| job.durability() != Durability::Unsynced)
        };
        self.take_waiting();
        let deadline = Instant::now() + self.unsynced_delay;
        while !synced(&self.batch) && self.batch.len() < self.max_batch {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.queue.recv_timeout(left) {
                Ok(job) => {
                    self.batch.push(job);
                    self.take_waiting();
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Adds the requests already waiting to the batch, up to its cap.
    fn take_waiting(&mut self) {
        while self.batch.len() < self.max_batch {
            match self.queue.try_recv() {
                Ok(job) => self.batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    fn run_jobs(&mut self) -> Result<()> {
        // Whether the transaction holds changes of an earlier request that a failure must
        // not take down with it.
        let mut holds_work = false;
        let mut done = 0;
        loop {
            if done == self.batch.len() {
                return Ok(());
            }
            let conn = &self.conn;
            for job in &mut self.batch[done..] {
                // The journal changes the job notes are taken back with its own.
                let mark = counts::mark();
                let succeeded = match (job.isolation(), holds_work) {
                    (Isolation::SingleStatement, _) => job.run(conn),
                    (Isolation::Savepoint, true) => {
                        in_savepoint(conn, |conn| job.run(conn).then_some(()).ok_or(()))?.is_ok()
                    }
                    // Nothing earlier to protect: on failure, drop the whole transaction.
                    (Isolation::Savepoint, false) => {
                        let succeeded = job.run(conn);
                        if !succeeded && !conn.is_autocommit() {
                            execute(conn, "ROLLBACK")?;
                            execute(conn, "BEGIN IMMEDIATE")?;
                        }
                        succeeded
                    }
                };
                if !succeeded {
                    counts::undo_to(mark);
                }
                if conn.is_autocommit() {
                    // SQLite rolls the whole transaction back on some errors (disk full,
                    // I/O); everything this batch did so far is gone.
                    return Err(Error::CommitFailed(
                        "SQLite rolled the transaction back after an error".to_owned(),
                    ));
                }
                holds_work |= succeeded;
            }
            done = self.batch.len();
            self.take_waiting();
        }
    }
}

fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `work` in a savepoint of the caller's transaction: its changes stay when it
/// returns `Ok` and are rolled back when it returns `Err`, leaving everything done before
/// it in the transaction as it was. The outer `Result` is the savepoint's own statements
/// failing (the transaction is then in doubt); the inner one is `work`'s. The statements
/// are cached on the connection, not parsed again per call.
pub fn in_savepoint<T, E>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> std::result::Result<T, E>,
) -> Result<std::result::Result<T, E>> {
    execute(conn, "SAVEPOINT part")?;
    let mark = counts::mark();
    let outcome = work(conn);
    if outcome.is_err() {
        counts::undo_to(mark);
        execute(conn, "ROLLBACK TO part")?;
    }
    execute(conn, "RELEASE part")?;
    Ok(outcome)
}

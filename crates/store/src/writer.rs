//! The single writer thread and its group commit.
//!
//! Every write in Corridor goes through one thread that owns the only write connection.
//! Requests arrive over a channel; the thread takes the first one, drains whatever else is
//! already waiting (up to a cap), runs them all inside ONE transaction, each in its own
//! savepoint, commits (one fsync of the WAL), and only then answers each requester. Under
//! load the requests that pile up during one fsync ride together on the next, so the cost
//! of durability is shared by every connection instead of paid by each message.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::task::{Context, Poll};

use rusqlite::Connection;
use tokio::sync::oneshot;

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

/// One queued write, type-erased so requests of every result type share one queue.
pub(crate) trait Job: Send {
    /// How the request's changes are undone on failure.
    fn isolation(&self) -> Isolation;
    /// Runs the request inside the open transaction; true if it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the requester once the batch's fate is known (`commit` is the commit error).
    fn finish(self: Box<Self>, commit: Option<&Error>);
}

pub(crate) type BoxedJob = Box<dyn Job>;

/// A write request: the closure, then its outcome held until the commit is known.
pub(crate) struct Request<T, F> {
    isolation: Isolation,
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Request<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    pub(crate) fn boxed(isolation: Isolation, work: F) -> (BoxedJob, WriteFuture<T>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Request {
            isolation,
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
    /// Transactions the writer committed (each one fsync).
    pub commits: u64,
    /// Write requests carried by those commits (including requests that failed on their own).
    pub requests: u64,
    /// Batches whose commit failed.
    pub failed_commits: u64,
}

/// The writer's counters, shared with [`crate::Store::writer_stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    requests: AtomicU64,
    failed_commits: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> WriterStats {
        WriterStats {
            commits: self.commits.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
        }
    }
}

/// Runs the writer loop until every sender of `queue` is gone.
pub(crate) fn run(
    conn: Connection,
    queue: Receiver<BoxedJob>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<BoxedJob> = Vec::with_capacity(max_batch);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        let committed = run_batch(&conn, &queue, &mut batch, max_batch);
        match &committed {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .requests
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(err) => {
                counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(requests = batch.len(), error = %err, "write batch was not committed");
            }
        }
        for job in batch.drain(..) {
            job.finish(committed.as_ref().err());
        }
    }
    tracing::debug!("database writer stopped");
}

/// Runs the batch in one transaction, one savepoint per job, and commits.
///
/// Requests that arrive while the batch runs join it before the commit: they cost no
/// extra fsync, and nobody already in the batch waits for more than their execution.
fn run_batch(
    conn: &Connection,
    queue: &Receiver<BoxedJob>,
    batch: &mut Vec<BoxedJob>,
    max_batch: usize,
) -> Result<()> {
    execute(conn, "BEGIN IMMEDIATE")?;
    let ran = run_jobs(conn, queue, batch, max_batch).and_then(|()| execute(conn, "COMMIT"));
    if ran.is_err() && !conn.is_autocommit() {
        if let Err(err) = execute(conn, "ROLLBACK") {
            tracing::error!(error = %err, "rolling back a failed write batch failed");
        }
    }
    ran
}

fn run_jobs(
    conn: &Connection,
    queue: &Receiver<BoxedJob>,
    batch: &mut Vec<BoxedJob>,
    max_batch: usize,
) -> Result<()> {
    // Whether the transaction holds changes of an earlier request that a failure must
    // not take down with it.
    let mut holds_work = false;
    let mut done = 0;
    loop {
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if done == batch.len() {
            return Ok(());
        }
        for job in &mut batch[done..] {
            let succeeded = match (job.isolation(), holds_work) {
                (Isolation::SingleStatement, _) => job.run(conn),
                (Isolation::Savepoint, true) => {
                    execute(conn, "SAVEPOINT request")?;
                    let succeeded = job.run(conn);
                    if !succeeded {
                        execute(conn, "ROLLBACK TO request")?;
                    }
                    execute(conn, "RELEASE request")?;
                    succeeded
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
            if conn.is_autocommit() {
                // SQLite rolls the whole transaction back on some errors (disk full, I/O);
                // everything this batch did so far is gone.
                return Err(Error::CommitFailed(
                    "SQLite rolled the transaction back after an error".to_owned(),
                ));
            }
            holds_work |= succeeded;
        }
        done = batch.len();
    }
}

fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

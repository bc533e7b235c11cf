//! Opening the database, the writer handle and the pool of read connections.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::counts::{HopLatencies, Rates, StateCounts};
use crate::error::{Error, Result};
use crate::journal::{Journal, MessageState};
use crate::schema::{self, Migration};
use crate::writer::{
    self, BoxedJob, Counters, Durability, Isolation, Request, SyncHalt, WriteFuture, WriterStats,
};

/// Tuning of a [`Store`]; [`StoreOptions::default`] suits Corridor's own use.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Most write requests committed together in one transaction (one fsync).
    pub max_batch: usize,
    /// Read connections kept open between reads.
    pub idle_readers: usize,
    /// How long a connection waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// How often the background checkpointer copies the WAL into the database file.
    pub checkpoint_interval: Duration,
    /// WAL size in pages at which the writer finishes a checkpoint itself, which lets the
    /// WAL start over from its beginning (SQLite's `wal_autocheckpoint`).
    pub wal_restart_pages: u32,
    /// How long a batch holding only unsynced writes ([`Store::write_unsynced`]) waits
    /// for more writes to commit with; zero commits it at once.
    pub unsynced_delay: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 1024,
            idle_readers: 4,
            busy_timeout: Duration::from_secs(5),
            checkpoint_interval: Duration::from_millis(100),
            wal_restart_pages: 4000,
            unsynced_delay: Duration::from_millis(1),
        }
    }
}

/// Corridor's database: one SQLite file in the data directory, written by one thread.
///
/// Cloning is cheap and every clone shares the same writer. Writes go through
/// [`Store::write`] (group commit), reads through [`Store::read`] on read-only
/// connections that never wait for the writer (WAL). The writer stops when the last
/// clone is dropped, after finishing the requests it already has.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    queue: Option<Sender<BoxedJob>>,
    writer: Option<JoinHandle<()>>,
    writer_id: ThreadId,
    checkpointer: Option<Checkpointer>,
    readers: ReadPool,
    counters: Arc<Counters>,
    halt: Arc<SyncHalt>,
}

impl Store {
    /// The database file's name inside the data directory.
    pub const DATABASE_FILE: &'static str = "corridor.db";

    /// Opens (creating it if needed) the database in `dir` and starts its writer thread.
    ///
    /// An older database is migrated to the current schema; a newer one is refused with
    /// [`Error::SchemaTooNew`].
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Like [`Store::open`], with explicit tuning.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Store> {
        let data_dir_error = |source| Error::DataDir {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir_error)?;
        let path = dir.join(Store::DATABASE_FILE);

        let mut conn = open_writer(&path, &options)?;
        schema::migrate(&mut conn, &path, schema::MIGRATIONS)?;
        let journal_counts = StateCounts::seed(&conn)?;
        // The file's directory entry must survive a power loss as much as its contents.
        sync_dir(dir).map_err(data_dir_error)?;

        let readers = ReadPool {
            path: path.clone(),
            idle: Mutex::new(Vec::new()),
            max_idle: options.idle_readers,
            busy_timeout: options.busy_timeout,
        };
        let halt = Arc::new(SyncHalt::new());
        let checkpointer = Checkpointer::start(&path, &options, Arc::clone(&halt))?;

        let (queue, requests) = mpsc::channel();
        let max_batch = options.max_batch.max(1);
        let unsynced_delay = options.unsynced_delay;
        let counters = Arc::new(Counters::with_journal(journal_counts));
        let writer_counters = Arc::clone(&counters);
        let writer_halt = Arc::clone(&halt);
        // SQLite names the WAL after the database file.
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let writer = thread::Builder::new()
            .name("corridor-store-writer".into())
            .spawn(move || {
                writer::run(
                    conn,
                    requests,
                    wal,
                    max_batch,
                    unsynced_delay,
                    writer_counters,
                    writer_halt,
                )
            })
            .map_err(|source| Error::Spawn {
                thread: "database writer",
                source,
            })?;
        let writer_id = writer.thread().id();

        Ok(Store {
            shared: Arc::new(Shared {
                path,
                queue: Some(queue),
                writer: Some(writer),
                writer_id,
                checkpointer: Some(checkpointer),
                readers,
                counters,
                halt,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How many commits, fsyncs and requests the writer has done: `requests / commits` is
    /// the average group-commit batch.
    pub fn writer_stats(&self) -> WriterStats {
        self.shared.counters.snapshot()
    }

    /// How many messages each channel has in each state, from memory (no read of the
    /// journal): channels by name, counts in [`MessageState::ALL`] order. Counted once
    /// when the store opened and kept exact by the writer at each commit since (a
    /// channel whose messages are all gone stays, with zeros).
    pub fn message_counts(&self) -> Vec<(String, [u64; MessageState::ALL.len()])> {
        self.shared.counters.journal.snapshot()
    }

    /// Each channel's messages stored and processed per second over the last minute,
    /// from memory, channels by name.
    pub fn message_rates(&self) -> Vec<(String, Rates)> {
        self.shared.counters.journal.rates()
    }

    /// Each channel's latency from receipt to stored and to processed, over the last one
    /// to two minutes (observed at each commit, in memory), channels by name.
    pub fn hop_latencies(&self) -> Vec<(String, HopLatencies)> {
        self.shared.counters.journal.latencies()
    }

    /// The last complete minute (minutes since the Unix epoch) and, for each channel with
    /// messages then, its hop latencies in that minute (their counts: the messages stored
    /// and processed that minute). For the per-minute history the engine writes.
    pub fn last_minute(&self) -> (u64, Vec<(String, HopLatencies)>) {
        self.shared.counters.journal.last_minute()
    }

    /// Notes the sender's clock lag of a message stored on `channel`: its receipt time
    /// less its MSH-7, in microseconds (`None`: MSH-7 missing or unreadable, counted
    /// apart). Kept in memory over the last five minutes.
    pub fn note_clock_lag(&self, channel: &str, lag_micros: Option<i64>) {
        self.shared.counters.journal.note_lag(channel, lag_micros);
    }

    /// Each channel's sender clock lag over the last five minutes (median, maximum,
    /// messages without a readable MSH-7), channels by name.
    pub fn clock_lags(&self) -> Vec<(String, crate::counts::ClockLag)> {
        self.shared.counters.journal.clock_lags()
    }

    /// The current minute (minutes since the Unix epoch) and, for each channel with
    /// messages in it so far, its hop latencies (counts: messages stored and processed
    /// this minute): what the per-minute history does not hold yet.
    pub fn current_minute(&self) -> (u64, Vec<(String, HopLatencies)>) {
        self.shared.counters.journal.current_minute()
    }

    /// [`Store::hop_latencies`] since the store opened (cumulative, for `/metrics`).
    pub fn hop_latencies_since_open(&self) -> Vec<(String, HopLatencies)> {
        self.shared.counters.journal.latencies_since_open()
    }

    /// Once an fsync of the database failed, the [`Error::DiskSyncFailed`] that every
    /// write gets from then on (the store takes no more writes until it is opened again
    /// by a new process); None while the store takes writes.
    pub fn sync_failure(&self) -> Option<Error> {
        self.shared.halt.error()
    }

    /// Resolves when an fsync of the database fails and the store stops taking writes
    /// (see [`Error::DiskSyncFailed`]); never while it works. The process should then
    /// exit without a clean shutdown and be restarted, once the disk is healthy: SQLite
    /// recovers from what is on disk, which holds every write answered `Ok`.
    pub fn sync_failed(&self) -> impl Future<Output = Error> + Send + 'static {
        let halt = Arc::clone(&self.shared.halt);
        async move { halt.stopped().await }
    }

    /// The message journal kept in this store.
    pub fn journal(&self) -> Journal {
        Journal::new(self.clone())
    }

    /// Queues `work` for the writer thread and returns a future of its result.
    ///
    /// `work` runs on the writer thread inside a transaction shared with other requests,
    /// within a savepoint of its own: if it returns an error (or panics) only its own
    /// changes are rolled back. The future resolves after the transaction is committed
    /// and the WAL synced to disk, so `Ok` means durable. (Readers may see the changes
    /// between the commit and the fsync, a moment before `Ok`.) Requests run in the order
    /// `write` was called. `work` must not issue `BEGIN`, `COMMIT`, `ROLLBACK` or `RELEASE` of its
    /// own, must not wait for another write (the writer would wait for itself), and should
    /// be short: every other writer waits for it.
    pub fn write<T, F>(&self, work: F) -> WriteFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(Isolation::Savepoint, Durability::Synced, work)
    }

    /// [`Store::write`] for changes that can be redone from what is already durable: the
    /// future resolves once the transaction is committed (readers see it, and a crash of
    /// the process cannot lose it) without waiting for its own fsync. It reaches the disk
    /// with the next fsync of the WAL or checkpoint; a power loss before that can lose it,
    /// and always loses the newest such writes first.
    ///
    /// Corridor uses it for processing results and delivery outcomes: the message they
    /// concern is synced already (it was acknowledged), and losing them means the message
    /// is processed or sent again (at-least-once), never lost. Under load they share the
    /// fsync of the next batch of received messages instead of paying one of their own:
    /// a batch of unsynced writes waits up to [`StoreOptions::unsynced_delay`] for a
    /// synced write (or more unsynced ones) to commit with.
    pub fn write_unsynced<T, F>(&self, work: F) -> WriteFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(Isolation::Savepoint, Durability::Unsynced, work)
    }

    /// [`Store::write`] for records that must be committed before their requester goes
    /// on, and on disk soon after, but whose requester should not wait for an fsync: the
    /// future resolves once the transaction is committed (readers see it, and a crash of
    /// the process cannot lose it), and an fsync of the WAL starts right after that
    /// commit, so a power loss can lose only what was answered during the last fsync or
    /// two (milliseconds). Unlike [`Store::write_unsynced`] its batch never waits for
    /// company. An error means the change was not committed.
    ///
    /// Corridor uses it for the audit trail: a read is answered once its record is
    /// committed, not once it is synced.
    pub fn write_committed<T, F>(&self, work: F) -> WriteFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(Isolation::Savepoint, Durability::Committed, work)
    }

    /// [`Store::write`] for requests that write with at most one statement and fail only by
    /// that statement failing: they skip the savepoint (see [`Isolation::SingleStatement`]).
    pub(crate) fn write_single_statement<T, F>(&self, work: F) -> WriteFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(Isolation::SingleStatement, Durability::Synced, work)
    }

    fn queue<T, F>(&self, isolation: Isolation, durability: Durability, work: F) -> WriteFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = Request::boxed(isolation, durability, work);
        if let Some(queue) = &self.shared.queue {
            // If the writer is gone, the job is dropped with its reply sender and the
            // future resolves to `Error::WriterStopped`.
            let _ = queue.send(job);
        }
        answer
    }

    /// Creates or upgrades the tables of a component (e.g. `"mpi"`, `"queues"`) that keeps
    /// its data in this database, and returns the component's schema version.
    ///
    /// Each component has its own ordered `steps`, versioned in the `component_schema`
    /// table, so crates evolve their tables independently of the core schema. The pending
    /// steps run in one write request: all of them apply, or none. A database holding a
    /// newer version of the component is refused with [`Error::ComponentSchemaTooNew`].
    pub fn migrate_component(
        &self,
        component: &'static str,
        steps: &'static [Migration],
    ) -> WriteFuture<u32> {
        let path = self.shared.path.clone();
        self.write(move |conn| schema::migrate_component(conn, &path, component, steps))
    }

    /// [`Store::write`] for callers outside an async runtime: blocks until durable.
    ///
    /// # Panics
    ///
    /// Panics when called from inside an async runtime.
    pub fn write_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write(work).wait()
    }

    /// Runs `read` on a read-only connection; it sees every write committed before the call.
    ///
    /// Reads never wait for the writer. They run on the calling thread and are usually
    /// microseconds; long scans belong in `tokio::task::spawn_blocking`.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.shared.readers.with(read)
    }

    /// [`Store::read`] on tokio's blocking pool, for scans long enough to stall an async
    /// worker (a message browser page, an export).
    pub async fn read_async<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(read))
            .await
            .unwrap_or_else(|joined| Err(Error::ReadPanicked(joined.to_string())))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it has and return.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            // A write closure may own the last clone of the store and be dropped on the
            // writer thread itself; that thread cannot wait for itself.
            if thread::current().id() != self.writer_id && writer.join().is_err() {
                tracing::error!("the database writer thread panicked");
            }
        }
        drop(self.checkpointer.take());
    }
}

fn open_writer(path: &Path, options: &StoreOptions) -> Result<Connection> {
    let open_error = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_error)?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(open_error)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode stayed {mode} instead of becoming WAL"
        ))));
    }
    // NORMAL: a commit writes the WAL without syncing it. The writer's sync thread
    // fsyncs the WAL before answering a write that asked for durability (the journal
    // append behind every ACK); checkpoints sync as under FULL.
    for (pragma, value) in [
        ("synchronous", "NORMAL"),
        ("foreign_keys", "ON"),
        ("temp_store", "MEMORY"),
        // 32 MiB of page cache for the writer: indexes stay hot.
        ("cache_size", "-32768"),
        // Truncate a WAL that grew under a burst back to 64 MiB once it is restarted.
        ("journal_size_limit", "67108864"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(open_error)?;
    }
    // The background checkpointer does most of the copying; the writer's own checkpoint
    // is the backstop, and the point where the WAL is restarted from its beginning.
    conn.pragma_update(None, "wal_autocheckpoint", options.wal_restart_pages)
        .map_err(open_error)?;
    // Every component's statements run on this one connection: room for all of them,
    // so none is parsed again after being pushed out.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let open_error = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_error)?;
    conn.busy_timeout(busy_timeout).map_err(open_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Read-only connections reused between reads.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    busy_timeout: Duration,
}

impl ReadPool {
    fn with<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(conn) => conn,
            None => open_reader(&self.path, self.busy_timeout)?,
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }
}

/// Copies WAL frames into the database file off the writer thread, so the writer's own
/// checkpoint (which stalls every write while it runs) has little left to do.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path, options: &StoreOptions, halt: Arc<SyncHalt>) -> Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        // A checkpoint must sync the database file before the WAL may be reused.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let interval = options.checkpoint_interval;
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("corridor-store-checkpoint".into())
                .spawn(move || checkpoint_until_stopped(&conn, &stop, interval, &halt))
                .map_err(|source| Error::Spawn {
                    thread: "checkpoint",
                    source,
                })?
        };
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

fn checkpoint_until_stopped(
    conn: &Connection,
    stop: &(Mutex<bool>, Condvar),
    every: Duration,
    halt: &SyncHalt,
) {
    let (stopped, wake) = stop;
    let Ok(mut guard) = stopped.lock() else {
        return;
    };
    loop {
        match wake.wait_timeout(guard, every) {
            Ok((next, _)) => guard = next,
            Err(_) => break,
        }
        if *guard {
            break;
        }
        // After a failed fsync nothing more is copied into the database file.
        if halt.error().is_some() {
            continue;
        }
        // PASSIVE never waits for the writer or readers; it copies what it can. It syncs
        // the WAL first, then the database file (`synchronous = FULL`).
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {}
            Err(err) if writer::is_fsync_failure(&err) => {
                halt.stop(format!("fsync in a background checkpoint: {err}"));
            }
            // SQLite's words name the operation, never data.
            Err(err) => {
                tracing::warn!(error = %err, "background checkpoint failed; the write-ahead log grows until one succeeds: check the disk")
            }
        }
    }
    if halt.error().is_some() {
        writer::no_checkpoint_on_close(conn);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        if let Ok(mut stopped) = stopped.lock() {
            *stopped = true;
        }
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! The audit file: where a PHI read's record is written before the read is answered.
//!
//! `<database>.audit` (`corridor.db.audit`) beside the database, opened `O_APPEND` by one
//! process at a time (an exclusive `flock` held while it is open). Each record is one
//! line, written with a single `write` under a mutex on the request's own thread:
//!
//! ```text
//! {"n":7,"prev":"<hex>","hash":"<hex>","record":{"seq":7,"at":...}}
//! ```
//!
//! `n` numbers the file's lines from 1, `hash` is the SHA-256 of `prev` followed by the
//! record's canonical JSON (with `n` as its sequence number): the same chain as the
//! database's, over the file's own lines, so an edited, deleted or reordered line that is
//! not folded yet is found by its link. A background thread fsyncs the file
//! [`FOLD_DELAY`] after a new line, and folds the new lines into `audit_log` once
//! [`FOLD_LINES`] of them wait or [`FOLD_INTERVAL`] passed (where each gets its sequence
//! number in `audit_log` and keeps its line number, link and hash from the file:
//! [`crate::audit::append_lines_in`] only inserts) and records in
//! `audit_folded`, in the same transaction, how far it has folded (byte offset, line and
//! that line's hash). The thread runs at a lower priority than the requests (nice
//! [`FOLD_NICE`]): on a busy machine its work waits for theirs, not theirs for its. Folding
//! reads that position inside its write transaction, so two processes (the server and
//! `corridor audit verify`) never fold a line twice, and a crash between the write and
//! the fold only leaves lines that the next fold (at the latest the next start) folds.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use store::Store;
use store::rusqlite::{Connection, OptionalExtension, params};

use crate::Error;
use crate::audit::{
    ActionKind, AuditRecord, BrokenChain, FileLine, GENESIS, Outcome, append_lines_in, chain_hash,
    chain_hash_of,
};

/// How long the background thread waits after the first new line before it fsyncs the
/// file, gathering the lines written meanwhile into one fsync.
pub const FOLD_DELAY: Duration = Duration::from_millis(2);

/// The background thread folds into the store once this many lines wait...
pub const FOLD_LINES: i64 = 512;

/// ...or once the oldest waiting line is this old. Readers of the trail (search, export,
/// verify) fold first, so they never wait for it.
pub const FOLD_INTERVAL: Duration = Duration::from_millis(500);

/// The background thread's nice value (the requests run at 0).
pub const FOLD_NICE: i32 = 10;

/// The most bytes of the file one fold transaction reads.
const FOLD_BATCH: u64 = 1 << 20;

/// The audit file of the database at `database`.
pub fn path_of(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".audit");
    PathBuf::from(name)
}

/// How far the file has been folded into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    offset: u64,
    line: i64,
    hash: Vec<u8>,
}

/// The newest line written: the next one links to it.
#[derive(Debug)]
struct Head {
    file: File,
    line: i64,
    hash: [u8; 32],
    /// The line being written, its allocation kept from one record to the next.
    buffer: Vec<u8>,
}

/// This process's writer of one audit file.
#[derive(Debug)]
pub(crate) struct Appender {
    path: PathBuf,
    head: Mutex<Head>,
    /// Set once a write or an fsync of the file failed: records then go to the store
    /// directly (the old, slower path) until the process restarts.
    failed: Arc<AtomicBool>,
    /// What the background thread reads of the head: the newest line's number, and
    /// whether a line was written since it last fsynced (only the line that sets it
    /// wakes the thread, so a burst of reads costs one wake-up).
    shared: Arc<Shared>,
    wake: SyncSender<()>,
}

/// The appender's state the background thread reads without taking the head's lock.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    written: AtomicI64,
    unsynced: AtomicBool,
    /// The lines written and not folded yet, in order: a fold takes them from here
    /// rather than reading, parsing and re-hashing what this process wrote itself.
    /// A fold that finds them out of step with the store's position (another process
    /// folded, a fold's transaction failed) reads the file instead.
    lines: Mutex<VecDeque<Written>>,
}

/// A line of the file as this process wrote it.
#[derive(Debug)]
struct Written {
    n: i64,
    length: u64,
    /// The hash of the line before it, which it links to.
    prev: [u8; 32],
    hash: [u8; 32],
    record: AuditRecord,
}

/// The most lines kept in memory for the fold (a few MB); past it, the fold reads the
/// file.
const MEMORY_LINES: usize = 1 << 14;

/// The most lines one fold transaction takes.
const FOLD_BATCH_LINES: usize = 4096;

/// One appender per audit file in a process: every [`crate::audit::Audit`] of the same
/// database shares it (and its chain head).
fn appenders() -> &'static Mutex<HashMap<PathBuf, Weak<Appender>>> {
    static APPENDERS: OnceLock<Mutex<HashMap<PathBuf, Weak<Appender>>>> = OnceLock::new();
    APPENDERS.get_or_init(Default::default)
}

impl Appender {
    /// Folds what the file holds beyond the store's position, then opens the file for
    /// appending with the chain head recovered from it. None when another process holds
    /// the file (its records then go to the store directly) or the file cannot be used
    /// (logged).
    pub(crate) fn open(
        store: &Store,
        fold_delay: Duration,
    ) -> Result<Option<Arc<Appender>>, Error> {
        let path = path_of(store.path());
        let mut registry = appenders().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = registry.get(&path).and_then(Weak::upgrade) {
            return Ok(Some(shared));
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                tracing::info!(
                    file = %path.display(),
                    "another process writes the audit file; this one records to the database directly"
                );
                return Ok(None);
            }
            Err(errno) => {
                return Err(Error::File {
                    path,
                    source: errno.into(),
                });
            }
        }
        drop_torn_tail(&file, &path)?;
        let folded = fold_blocking(store, None)?;
        let (line, hash) = match folded.broken {
            None => (folded.position.line, folded.position.hash),
            Some(broken) => {
                // The chain in the file is broken: `corridor audit verify` names the line.
                // New records go on after the file's last line, so nothing is lost.
                tracing::error!(%broken, "the audit file's chain is broken; it is not folded past that line");
                match last_line(&path)? {
                    Some(last) => (last.n, last.hash),
                    None => return Ok(None),
                }
            }
        };
        let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
            return Ok(None);
        };
        let (wake, woken) = sync_channel(1);
        let failed = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            written: AtomicI64::new(line),
            unsynced: AtomicBool::new(false),
            lines: Mutex::default(),
        });
        let appender = Arc::new(Appender {
            path: path.clone(),
            head: Mutex::new(Head {
                file,
                line,
                hash,
                buffer: Vec::with_capacity(1024),
            }),
            failed: Arc::clone(&failed),
            shared: Arc::clone(&shared),
            wake,
        });
        let background = Background {
            store: store.clone(),
            path: path.clone(),
            woken,
            delay: fold_delay,
            failed,
            shared,
            folded: line,
        };
        thread::Builder::new()
            .name("corridor-audit-fold".into())
            .spawn(move || background.run())
            .map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
        registry.insert(path, Arc::downgrade(&appender));
        Ok(Some(appender))
    }

    /// What the fold takes from memory.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Writes `record` as the file's next line; its line number once the `write`
    /// returned. The record back when the file cannot take it (the caller records it
    /// to the store).
    pub(crate) fn append(&self, record: AuditRecord) -> Result<i64, Box<AuditRecord>> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Box::new(record));
        }
        let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        if self.failed.load(Ordering::Acquire) {
            return Err(Box::new(record));
        }
        let n = head.line + 1;
        let prev = head.hash;
        // The line is built in place in the head's buffer: the canonical JSON is
        // serialized straight after the prefix and hashed where it lies, and the hash's
        // hex digits go into the room left for them.
        let mut line = std::mem::take(&mut head.buffer);
        line.clear();
        line.extend_from_slice(b"{\"n\":");
        let _ = write!(line, "{n}");
        line.extend_from_slice(b",\"prev\":\"");
        push_hex(&mut line, &prev);
        line.extend_from_slice(b"\",\"hash\":\"");
        let hex_at = line.len();
        line.extend_from_slice(&[b'0'; 64]);
        line.extend_from_slice(b"\",\"record\":");
        let canonical_at = line.len();
        record.canonical_into(n, &mut line);
        let hash = chain_hash_of(&prev, &line[canonical_at..]);
        write_hex(&mut line[hex_at..hex_at + 64], &hash);
        line.extend_from_slice(b"}\n");
        let outcome = (&head.file).write(&line);
        let length = line.len();
        if line.capacity() <= 1 << 16 {
            head.buffer = line;
        }
        match outcome {
            Ok(written) if written == length => {}
            outcome => {
                // A short or failed write leaves at most a line without its newline,
                // which no fold reads and the next start cuts off.
                self.failed.store(true, Ordering::Release);
                let why = match outcome {
                    Err(e) => e.to_string(),
                    Ok(written) => format!("wrote {written} of {length} bytes"),
                };
                tracing::error!(file = %self.path.display(), error = %why,
                    "writing the audit file failed; audit records go to the database directly from now on");
                return Err(Box::new(record));
            }
        }
        head.line = n;
        head.hash = hash;
        {
            let mut lines = self
                .shared
                .lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if lines.len() < MEMORY_LINES {
                lines.push_back(Written {
                    n,
                    length: length as u64,
                    prev,
                    hash,
                    record,
                });
            }
        }
        self.shared.written.store(n, Ordering::Release);
        drop(head);
        if self.shared.unsynced.swap(true, Ordering::AcqRel) {
            return Ok(n);
        }
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::error!(
                    "the audit fold thread has stopped; records are folded at the next start"
                );
            }
        }
        Ok(n)
    }
}

/// The background thread's side of an [`Appender`].
struct Background {
    store: Store,
    path: PathBuf,
    woken: Receiver<()>,
    delay: Duration,
    failed: Arc<AtomicBool>,
    shared: Arc<Shared>,
    /// The last line folded into the store (by this thread; readers fold too, which
    /// only makes this thread's next fold smaller).
    folded: i64,
}

impl Background {
    /// On each new line: waits `delay` for more, fsyncs the file, and folds when
    /// [`FOLD_LINES`] lines wait or the oldest has waited [`FOLD_INTERVAL`]; once every
    /// appender handle is gone, fsyncs and folds a last time and stops.
    fn run(mut self) {
        // Best effort: a thread that keeps its priority only competes more.
        if let Err(e) =
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), FOLD_NICE)
        {
            tracing::debug!(error = %e, "the audit fold thread keeps its priority");
        }
        let mut open = true;
        let mut waiting_since: Option<Instant> = None;
        while open {
            let woken = match waiting_since {
                None => self
                    .woken
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => self
                    .woken
                    .recv_timeout(FOLD_INTERVAL.saturating_sub(since.elapsed())),
            };
            match woken {
                Ok(()) => {
                    open = self.gather();
                    self.sync();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    self.sync();
                }
            }
            let waiting = self.shared.written.load(Ordering::Acquire) - self.folded;
            if waiting <= 0 {
                waiting_since = None;
                continue;
            }
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if !open || waiting >= FOLD_LINES || since.elapsed() >= FOLD_INTERVAL {
                self.fold();
                waiting_since = None;
            }
        }
    }

    /// Waits `delay` for the lines written right after the first; false when the last
    /// appender handle went meanwhile.
    fn gather(&self) -> bool {
        let deadline = Instant::now() + self.delay;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            match self.woken.recv_timeout(deadline - now) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn sync(&self) {
        // Cleared first: a line written during the fsync wakes the thread again.
        if !self.shared.unsynced.swap(false, Ordering::AcqRel) {
            return;
        }
        let synced = File::open(&self.path).and_then(|file| file.sync_data());
        if let Err(e) = synced {
            // As for the database (see `store`'s SyncHalt): after a failed fsync the
            // file's pages may be gone while marked clean; write no more to it.
            self.failed.store(true, Ordering::Release);
            tracing::error!(file = %self.path.display(), error = %e,
                "an fsync of the audit file failed; audit records go to the database directly from now on");
        }
    }

    fn fold(&mut self) {
        match fold_blocking(&self.store, Some(&self.shared)) {
            Ok(Folded {
                broken: Some(broken),
                ..
            }) => {
                tracing::error!(%broken, "the audit file's chain is broken; it is not folded past that line");
                // Nothing past the break folds: those lines do not count as waiting.
                self.folded = self.shared.written.load(Ordering::Acquire);
            }
            Ok(folded) => self.folded = self.folded.max(folded.position.line),
            Err(e) => {
                tracing::error!(error = %e, "folding the audit file into the database failed");
                // Tried again after the next line or interval, not in a loop.
                self.folded = self.shared.written.load(Ordering::Acquire);
            }
        }
    }
}

/// What one fold did.
#[derive(Debug)]
pub(crate) struct Folded {
    /// Lines folded.
    pub(crate) lines: u64,
    /// How far the file is folded now.
    position: Position,
    /// The first line found wrong (not folded, nor anything after it).
    pub(crate) broken: Option<BrokenChain>,
}

/// Folds every complete, intact line the file holds beyond the store's position into
/// `audit_log` (several transactions when it holds more than one batch).
pub(crate) async fn fold(store: Store, memory: Option<Arc<Shared>>) -> Result<Folded, Error> {
    let mut lines = 0;
    loop {
        let path = path_of(store.path());
        let memory = memory.clone();
        let batch = store
            .write_unsynced(move |conn| fold_batch(conn, &path, memory.as_deref()))
            .await??;
        lines += batch.lines;
        if !batch.more || batch.broken.is_some() {
            return Ok(Folded {
                lines,
                position: batch.position,
                broken: batch.broken,
            });
        }
    }
}

/// [`fold`] from any thread, async workers included: it needs no tokio blocking
/// context, only the store's writer thread.
pub(crate) fn fold_blocking(store: &Store, memory: Option<&Arc<Shared>>) -> Result<Folded, Error> {
    block_on(fold(store.clone(), memory.cloned()))
}

struct Batch {
    lines: u64,
    position: Position,
    more: bool,
    broken: Option<BrokenChain>,
}

fn read_position(conn: &Connection) -> store::Result<Position> {
    let found: Option<(i64, i64, Vec<u8>)> = conn
        .prepare_cached("SELECT offset, line, hash FROM audit_folded WHERE id = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    Ok(match found {
        Some((offset, line, hash)) => Position {
            offset: u64::try_from(offset).unwrap_or(0),
            line,
            hash,
        },
        None => Position {
            offset: 0,
            line: 0,
            hash: GENESIS.to_vec(),
        },
    })
}

/// The file's bytes from `offset` (at most [`FOLD_BATCH`]) and its length; None when
/// there is no file.
fn read_from(path: &Path, offset: u64) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let length = file.metadata()?.len();
    let mut bytes = Vec::new();
    if length > offset {
        file.seek(SeekFrom::Start(offset))?;
        file.take(FOLD_BATCH).read_to_end(&mut bytes)?;
    }
    Ok(Some((bytes, length)))
}

/// One transaction's worth of folding, on the writer thread. A failed statement fails
/// the whole write (rolled back: nothing folded, the position unchanged); the file's
/// errors come before any statement.
fn fold_batch(
    conn: &Connection,
    path: &Path,
    memory: Option<&Shared>,
) -> store::Result<Result<Batch, Error>> {
    let mut position = read_position(conn)?;
    if let Some(memory) = memory {
        if let Some(batch) = fold_from_memory(conn, memory, &mut position)? {
            return Ok(Ok(batch));
        }
    }
    let (bytes, length) = match read_from(path, position.offset) {
        Ok(Some(read)) => read,
        Ok(None) => {
            return Ok(Ok(Batch {
                lines: 0,
                position,
                more: false,
                broken: None,
            }));
        }
        Err(source) => {
            return Ok(Err(Error::File {
                path: path.to_owned(),
                source,
            }));
        }
    };
    if length < position.offset {
        return Ok(Ok(Batch {
            lines: 0,
            broken: Some(BrokenChain {
                seq: position.line,
                problem: format!(
                    "the audit file {} is shorter than what was folded from it ({} < {} bytes): \
                     lines were deleted",
                    path.display(),
                    length,
                    position.offset
                ),
            }),
            position,
            more: false,
        }));
    }
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    // Each line's record, number, link and hash, as checked.
    let mut checked: Vec<(AuditRecord, i64, Vec<u8>, [u8; 32])> = Vec::new();
    let mut broken = None;
    for text in bytes[..complete].split_inclusive(|&b| b == b'\n') {
        let expected = position.line + 1;
        match check_line(text, expected, &position.hash) {
            Ok((record, hash)) => {
                let prev = std::mem::replace(&mut position.hash, hash.to_vec());
                checked.push((record, expected, prev, hash));
                position.offset += text.len() as u64;
                position.line = expected;
            }
            Err(problem) => {
                broken = Some(BrokenChain {
                    seq: expected,
                    problem: format!(
                        "not yet folded into the database (line {expected} of {}): {problem}",
                        path.display()
                    ),
                });
                break;
            }
        }
    }
    let lines = checked.len() as u64;
    if lines > 0 {
        append_lines_in(
            conn,
            checked.iter().map(|(record, line, prev, hash)| FileLine {
                line: *line,
                prev,
                hash,
                record,
            }),
        )?;
        write_position(conn, &position)?;
    }
    let more = broken.is_none() && lines > 0 && position.offset < length;
    Ok(Ok(Batch {
        lines,
        position,
        more,
        broken,
    }))
}

/// Folds the lines this process wrote, from memory, when the first of them is the one
/// after `position`; None when there are none or they are out of step (the file is
/// read then). Lines at or before `position` (folded by another process or a reader
/// with the file) are dropped.
fn fold_from_memory(
    conn: &Connection,
    memory: &Shared,
    position: &mut Position,
) -> store::Result<Option<Batch>> {
    let (taken, more) = {
        let mut lines = memory.lines.lock().unwrap_or_else(PoisonError::into_inner);
        while lines.front().is_some_and(|w| w.n <= position.line) {
            lines.pop_front();
        }
        if lines
            .front()
            .is_none_or(|w| w.n != position.line + 1 || w.prev.as_slice() != position.hash)
        {
            return Ok(None);
        }
        let count = lines.len().min(FOLD_BATCH_LINES);
        let taken: Vec<Written> = lines.drain(..count).collect();
        (taken, !lines.is_empty())
    };
    // Taken out of memory: if this transaction rolls back, the next fold finds the
    // store's position before them and reads them from the file.
    // Each line keeps the link and hash it was written with: nothing is serialized or
    // hashed again here.
    append_lines_in(
        conn,
        taken.iter().map(|w| FileLine {
            line: w.n,
            prev: &w.prev,
            hash: &w.hash,
            record: &w.record,
        }),
    )?;
    for written in &taken {
        position.offset += written.length;
        position.line = written.n;
    }
    if let Some(last) = taken.last() {
        position.hash = last.hash.to_vec();
    }
    write_position(conn, position)?;
    Ok(Some(Batch {
        lines: taken.len() as u64,
        position: position.clone(),
        more,
        broken: None,
    }))
}

fn write_position(conn: &Connection, position: &Position) -> store::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_folded (id, offset, line, hash) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET offset = excluded.offset, line = excluded.line,
             hash = excluded.hash",
    )?
    .execute(params![
        i64::try_from(position.offset).unwrap_or(i64::MAX),
        position.line,
        position.hash
    ])?;
    Ok(())
}

/// A line as written.
#[derive(Deserialize)]
struct Line {
    n: i64,
    prev: String,
    hash: String,
    record: LineRecord,
}

/// [`AuditRecord::canonical`]'s fields, read back.
#[derive(Deserialize)]
struct LineRecord {
    seq: i64,
    at: i64,
    actor: String,
    owner: Option<String>,
    method: String,
    address: Option<String>,
    tls_identity: Option<String>,
    action: String,
    kind: String,
    resource: Option<String>,
    patients: Vec<String>,
    outcome: String,
    detail: Option<String>,
}

struct Parsed {
    n: i64,
    prev: Vec<u8>,
    hash: Vec<u8>,
    record: AuditRecord,
}

fn parse_line(text: &[u8]) -> Option<Parsed> {
    let line: Line = serde_json::from_slice(text).ok()?;
    let r = line.record;
    if r.seq != line.n {
        return None;
    }
    Some(Parsed {
        n: line.n,
        prev: unhex(&line.prev)?,
        hash: unhex(&line.hash)?,
        record: AuditRecord {
            at: r.at,
            actor: r.actor,
            owner: r.owner,
            method: r.method,
            address: r.address,
            tls_identity: r.tls_identity,
            action: r.action,
            kind: ActionKind::from_code(&r.kind),
            resource: r.resource,
            patients: r.patients,
            outcome: Outcome::parse(&r.outcome),
            detail: r.detail,
        },
    })
}

/// The line's record and hash if it is line `n` and links to `prev`; else what is wrong.
fn check_line(text: &[u8], n: i64, prev: &[u8]) -> Result<(AuditRecord, [u8; 32]), &'static str> {
    let parsed = parse_line(text).ok_or("it cannot be read (edited)")?;
    if parsed.n != n {
        return Err("it is out of place: lines before it were deleted or reordered");
    }
    if parsed.prev != prev {
        return Err(
            "its link to the line before does not match (a line before it was edited, \
             deleted or reordered)",
        );
    }
    let hash = chain_hash(&parsed.prev, &parsed.record, n);
    if parsed.hash != hash {
        return Err("its content does not match its hash (edited)");
    }
    Ok((parsed.record, hash))
}

/// The file's last complete line, if it has one that reads.
fn last_line(path: &Path) -> Result<Option<Parsed>, Error> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| {
            let length = f.metadata()?.len();
            f.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)))?;
            f.read_to_end(&mut bytes)
        })
        .map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        })?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .and_then(parse_line))
}

/// Cuts a last line without its newline: a `write` cut short by a power loss, or by a
/// failing disk, whose read was never answered (the answer waits for the whole `write`).
fn drop_torn_tail(file: &File, path: &Path) -> Result<(), Error> {
    let file_error = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    let length = file.metadata().map_err(file_error)?.len();
    if length == 0 {
        return Ok(());
    }
    let mut reader = file;
    let from = length.saturating_sub(64 * 1024);
    reader.seek(SeekFrom::Start(from)).map_err(file_error)?;
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).map_err(file_error)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        // A line longer than 64 KiB is not one Corridor wrote: leave it for verify.
        None => return Ok(()),
    };
    tracing::warn!(file = %path.display(), bytes = length - keep,
        "the audit file ends in a line cut short (a write interrupted by a power loss or a disk error); it is dropped");
    file.set_len(keep).map_err(file_error)
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// Writes `bytes` in hex into `out` (twice as long).
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Runs `future` to completion on this thread, parking between polls. The store's
/// writer answers from its own thread, so this needs no async runtime and does not
/// panic inside one (as tokio's `blocking_recv` does).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

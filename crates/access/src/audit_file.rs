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
//! not folded yet is found by its link. A background thread fsyncs the file, then folds
//! the new lines into `audit_log` (where each gets its sequence number in the store's
//! chain through [`crate::audit::append_in`]) and records in `audit_folded`, in the same
//! transaction, how far it has folded (byte offset, line and that line's hash). Folding
//! reads that position inside its write transaction, so two processes (the server and
//! `corridor audit verify`) never fold a line twice, and a crash between the write and
//! the fold only leaves lines that the next fold (at the latest the next start) folds.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
    ActionKind, AuditRecord, BrokenChain, GENESIS, Outcome, append_in, chain_hash, chain_hash_of,
};

/// How long the background thread waits after the first new line before it fsyncs and
/// folds, gathering the lines written meanwhile into one fsync and one transaction.
pub const FOLD_DELAY: Duration = Duration::from_millis(2);

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
}

/// This process's writer of one audit file.
#[derive(Debug)]
pub(crate) struct Appender {
    path: PathBuf,
    head: Mutex<Head>,
    /// Set once a write or an fsync of the file failed: records then go to the store
    /// directly (the old, slower path) until the process restarts.
    failed: Arc<AtomicBool>,
    wake: SyncSender<()>,
}

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
        let folded = fold_blocking(store)?;
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
        let appender = Arc::new(Appender {
            path: path.clone(),
            head: Mutex::new(Head { file, line, hash }),
            failed: Arc::clone(&failed),
            wake,
        });
        let folder_store = store.clone();
        let folder_path = path.clone();
        thread::Builder::new()
            .name("corridor-audit-fold".into())
            .spawn(move || {
                fold_until_closed(&folder_store, &folder_path, &woken, fold_delay, &failed)
            })
            .map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
        registry.insert(path, Arc::downgrade(&appender));
        Ok(Some(appender))
    }

    /// Writes `record` as the file's next line; its line number once the `write`
    /// returned. None when the file cannot take it (the caller records to the store).
    pub(crate) fn append(&self, record: &AuditRecord) -> Option<i64> {
        if self.failed.load(Ordering::Acquire) {
            return None;
        }
        let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        if self.failed.load(Ordering::Acquire) {
            return None;
        }
        let n = head.line + 1;
        let canonical = record.canonical(n);
        let hash = chain_hash_of(&head.hash, &canonical);
        let mut line = Vec::with_capacity(canonical.len() + 180);
        line.extend_from_slice(b"{\"n\":");
        line.extend_from_slice(n.to_string().as_bytes());
        line.extend_from_slice(b",\"prev\":\"");
        push_hex(&mut line, &head.hash);
        line.extend_from_slice(b"\",\"hash\":\"");
        push_hex(&mut line, &hash);
        line.extend_from_slice(b"\",\"record\":");
        line.extend_from_slice(&canonical);
        line.extend_from_slice(b"}\n");
        match (&head.file).write(&line) {
            Ok(written) if written == line.len() => {}
            outcome => {
                // A short or failed write leaves at most a line without its newline,
                // which no fold reads and the next start cuts off.
                self.failed.store(true, Ordering::Release);
                let why = match outcome {
                    Err(e) => e.to_string(),
                    Ok(written) => format!("wrote {written} of {} bytes", line.len()),
                };
                tracing::error!(file = %self.path.display(), error = %why,
                    "writing the audit file failed; audit records go to the database directly from now on");
                return None;
            }
        }
        head.line = n;
        head.hash = hash;
        drop(head);
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::error!(
                    "the audit fold thread has stopped; records are folded at the next start"
                );
            }
        }
        Some(n)
    }
}

/// The background thread: on each new line, waits `delay` for more, fsyncs the file,
/// then folds it; once every appender handle is gone, does so a last time and stops.
fn fold_until_closed(
    store: &Store,
    path: &Path,
    woken: &Receiver<()>,
    delay: Duration,
    failed: &AtomicBool,
) {
    let mut open = true;
    while open {
        if woken.recv().is_err() {
            open = false;
        }
        let deadline = Instant::now() + delay;
        while open {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match woken.recv_timeout(deadline - now) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        let synced = File::open(path).and_then(|file| file.sync_data());
        if let Err(e) = synced {
            // As for the database (see `store`'s SyncHalt): after a failed fsync the
            // file's pages may be gone while marked clean; write no more to it.
            failed.store(true, Ordering::Release);
            tracing::error!(file = %path.display(), error = %e,
                "an fsync of the audit file failed; audit records go to the database directly from now on");
        }
        match fold_blocking(store) {
            Ok(Folded {
                broken: Some(broken),
                ..
            }) => {
                tracing::error!(%broken, "the audit file's chain is broken; it is not folded past that line");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "folding the audit file into the database failed")
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
pub(crate) async fn fold(store: Store) -> Result<Folded, Error> {
    let mut lines = 0;
    loop {
        let path = path_of(store.path());
        let batch = store
            .write_unsynced(move |conn| fold_batch(conn, &path))
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
pub(crate) fn fold_blocking(store: &Store) -> Result<Folded, Error> {
    block_on(fold(store.clone()))
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
fn fold_batch(conn: &Connection, path: &Path) -> store::Result<Result<Batch, Error>> {
    let mut position = read_position(conn)?;
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
    let mut lines = 0;
    let mut broken = None;
    for text in bytes[..complete].split_inclusive(|&b| b == b'\n') {
        let expected = position.line + 1;
        match check_line(text, expected, &position.hash) {
            Ok((record, hash)) => {
                append_in(conn, &record)?;
                position.offset += text.len() as u64;
                position.line = expected;
                position.hash = hash.to_vec();
                lines += 1;
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
    if lines > 0 {
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
    }
    let more = broken.is_none() && lines > 0 && position.offset < length;
    Ok(Ok(Batch {
        lines,
        position,
        more,
        broken,
    }))
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

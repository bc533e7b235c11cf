//! The directory source: `source = { type = "directory", path = "/var/spool/lab",
//! pattern = "*.hl7", poll_interval = "1s", done = "...", error = "..." }`.
//!
//! Every `poll_interval` the folder is listed. A file whose name matches `pattern` is
//! read once its size, modification time and inode were the same at two polls in a row
//! (a file still being written waits for the next poll). Its content may be one message,
//! many (one after another) or an FHS/BHS batch; its messages go to the channel's
//! [`Intake`] in writes of up to [`MESSAGES_PER_WRITE`]. Only AFTER they committed is
//! the file moved:
//!
//! - to `done` when every message was stored (or was a duplicate of a stored one);
//! - to `error` when a message was rejected (it does not parse, or failed validation
//!   before the ACK; it is stored as `rejected` all the same, the others as `received`),
//!   or when the file is not a well-formed batch, holds a message larger than
//!   `max_frame_size`, or is larger than `max_file_size` (then nothing is stored).
//!   Beside it, `NAME.error.txt` names each problem: the message's number, the line it
//!   starts on, its control id (MSH-10), and what is wrong.
//!
//! Nothing outside the folders is ever read or written, whatever a writer to them
//! plants: a file is opened without following links (`O_NOFOLLOW`) relative to the
//! folder, and read only when what was opened is the regular file the listing saw (same
//! device and inode) with one link (a hard link may be another file's contents; a key
//! allows them). Symbolic links and other entries that are not regular files are never
//! read: they are moved, as they are, to `error` with a report, as are files with hard
//! links. Moves are `renameat2(RENAME_NOREPLACE)` between folder descriptors opened
//! without following links, and reports are created with `O_CREAT | O_EXCL |
//! O_NOFOLLOW`, so a link planted in `done` or `error` is never written through and no
//! file there is replaced.
//!
//! A file is read in bounded pieces, twice: once to check its shape (a malformed batch
//! stores nothing), then to store its messages as they are split. Memory holds one write
//! of messages, never the file.
//!
//! When the store cannot take the messages the file stays where it is and is read again
//! at the next poll. A crash (or a failed move) after the commit and before the move
//! leaves the file in place too: it is read again after the restart and the channel's
//! duplicate window (default 10 minutes) keeps its messages from being stored twice.
//! A name already taken in `done` or `error` gets a numbered suffix (`a.hl7.1`).
//! Files are taken in order of modification time, then name. Logs at the default level
//! name the folder, never a file (its name may say whom it is about).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::Listener;
use super::RunningSource;
use crate::intake::{Intake, IntakeStatus, Origin};
use conf::{ByteSize, ConfigDuration};

/// Most messages handed to the intake in one write; a larger file is stored in several
/// writes, all committed before it moves.
pub const MESSAGES_PER_WRITE: usize = 1000;

/// Most message bytes held for one write (a write holds at least one message).
const BYTES_PER_WRITE: usize = 8 << 20;

/// How much of a file is read at a time.
const READ_CHUNK: usize = 64 << 10;

/// Numbered names tried in `done` or `error` before a move gives up.
pub(crate) const MOST_NAME_TRIES: usize = 10_000;

/// Where and how a directory source reads.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// The folder read.
    pub path: PathBuf,
    /// File names read: a glob with `*` and `?`.
    pub pattern: String,
    /// How often the folder is listed.
    pub poll_interval: Duration,
    /// Where files go once their messages are stored.
    pub done: PathBuf,
    /// Where files go that hold a problem, with `NAME.error.txt` beside each.
    pub error: PathBuf,
    /// The largest file read; larger ones go to `error` unread.
    pub max_file_size: u64,
    /// The largest message in a file; a file holding a larger one goes to `error`.
    pub max_message_size: usize,
    /// Whether a file with more than one hard link is read (by default it goes to
    /// `error`: its contents may be those of a file outside the folder).
    pub allow_hard_links: bool,
}

impl DirectorySettings {
    /// Settings for `path` with the defaults: every file, 1 s, `path/done`, `path/error`,
    /// 256 MiB files, 16 MiB messages, no hard links.
    pub fn new(path: impl Into<PathBuf>) -> DirectorySettings {
        let path = path.into();
        DirectorySettings {
            done: path.join("done"),
            error: path.join("error"),
            path,
            pattern: "*".to_owned(),
            poll_interval: Duration::from_secs(1),
            max_file_size: 256 << 20,
            max_message_size: mllp::DEFAULT_MAX_FRAME_SIZE,
            allow_hard_links: false,
        }
    }

    /// The settings of a configured source; relative folders start at `base_dir`.
    pub fn from_config(
        directory: &DirectorySourceConfig,
        max_frame_size: ByteSize,
        base_dir: &Path,
    ) -> DirectorySettings {
        let path = base_dir.join(directory.path.clone().unwrap_or_default());
        DirectorySettings {
            done: directory
                .done
                .as_ref()
                .map_or_else(|| path.join("done"), |d| base_dir.join(d)),
            error: directory
                .error
                .as_ref()
                .map_or_else(|| path.join("error"), |d| base_dir.join(d)),
            pattern: directory.pattern.clone().unwrap_or_else(|| "*".to_owned()),
            poll_interval: directory.poll_interval.0,
            max_file_size: directory.max_file_size.0,
            max_message_size: usize::try_from(max_frame_size.0).unwrap_or(usize::MAX),
            allow_hard_links: directory.allow_hard_links,
            path,
        }
    }
}

/// `source = { type = "directory", path = "...", ... }`: a directory source's own keys
/// (the keys every source takes are in [`SourceConfig`](crate::SourceConfig);
/// `max_frame_size` is the largest message in a file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySourceConfig {
    /// The folder to read (required; missing, it is reported with the file's other
    /// problems).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Which file names to read, a glob with `*` and `?` (default `"*"`, every file;
    /// hidden files and names ending in `.error.txt` never).
    #[serde(default)]
    pub pattern: Option<String>,
    /// How often the folder is read (default `"1s"`).
    #[serde(default = "default_poll_interval")]
    pub poll_interval: ConfigDuration,
    /// Where files go once their messages are stored (default `PATH/done`; created if
    /// missing).
    #[serde(default)]
    pub done: Option<PathBuf>,
    /// Where files go that hold a message that could not be used, with a
    /// `NAME.error.txt` beside each (default `PATH/error`; created if missing).
    #[serde(default)]
    pub error: Option<PathBuf>,
    /// The largest file read (default `"256MiB"`); a larger one goes to `error`.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Read files with more than one hard link (default false: such a file goes to
    /// `error` unread, since its contents may be a file's outside the folder).
    #[serde(default)]
    pub allow_hard_links: bool,
}

/// The checks the folder-polling sources (directory and sftp) share: `pattern` names
/// files in one folder, `poll_interval` and `max_file_size` are above zero.
pub(crate) fn check_polling(
    at: &str,
    pattern: Option<&str>,
    poll_interval: ConfigDuration,
    max_file_size: ByteSize,
) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if let Some(pattern) = pattern.filter(|p| p.is_empty() || p.contains(['/', '\\'])) {
        errors.push((
            format!("{at}.source.pattern"),
            format!("{pattern:?} is not a file name pattern (e.g. \"*.hl7\")"),
        ));
    }
    if poll_interval.0.is_zero() {
        errors.push((
            format!("{at}.source.poll_interval"),
            "must be longer than 0".to_owned(),
        ));
    }
    if max_file_size.0 == 0 {
        errors.push((
            format!("{at}.source.max_file_size"),
            "must be at least 1 byte".to_owned(),
        ));
    }
    errors
}

fn default_poll_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}
fn default_max_file_size() -> ByteSize {
    ByteSize(256 << 20)
}

impl DirectorySourceConfig {
    /// A directory source reading `path` with every default.
    pub fn new(path: PathBuf) -> DirectorySourceConfig {
        DirectorySourceConfig {
            path: Some(path),
            pattern: None,
            poll_interval: default_poll_interval(),
            done: None,
            error: None,
            max_file_size: default_max_file_size(),
            allow_hard_links: false,
        }
    }

    /// Problems with these keys, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str, base_dir: &Path) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        match &self.path {
            None => errors.push((
                format!("{at}.source.path"),
                "a directory source needs path = \"FOLDER\"".to_owned(),
            )),
            Some(path) if !base_dir.join(path).is_dir() => errors.push((
                format!("{at}.source.path"),
                format!(
                    "folder {:?} does not exist",
                    base_dir.join(path).display().to_string()
                ),
            )),
            Some(_) => {}
        }
        errors.extend(check_polling(
            at,
            self.pattern.as_deref(),
            self.poll_interval,
            self.max_file_size,
        ));
        let path = self.path.as_ref();
        let same = |a: Option<&PathBuf>, b: Option<&PathBuf>| a.is_some() && a == b;
        if same(self.done.as_ref(), self.error.as_ref())
            || same(self.done.as_ref(), path)
            || same(self.error.as_ref(), path)
        {
            errors.push((
                format!("{at}.source.done"),
                "path, done and error must be three different folders".to_owned(),
            ));
        }
        errors
    }
}

/// A running directory source.
pub struct DirectorySource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DirectorySource {
    /// Creates `done` and `error` if missing and starts polling. Refuses a `done` or
    /// `error` that is a symbolic link (name the folder it points to instead).
    pub fn start(
        mut settings: DirectorySettings,
        intake: Intake,
    ) -> std::io::Result<DirectorySource> {
        if !settings.path.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("folder {} does not exist", settings.path.display()),
            ));
        }
        settings.done = resolve_folder(&settings.done, "done")?;
        settings.error = resolve_folder(&settings.error, "error")?;
        let (stop, stopped) = watch::channel(false);
        info!(channel = %intake.channel(), folder = %settings.path.display(), pattern = %settings.pattern, "directory source reading");
        let task = tokio::spawn(poll(settings, intake, stopped));
        Ok(DirectorySource { stop, task })
    }

    /// Stops after the file being read (if any) is stored and moved.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Creates `folder` if missing and returns it with the links of the folders above it
/// resolved (an administrator's choice, trusted at start); the folder itself must not be
/// a link, then or later, since writers to the source folder could replace it with one.
fn resolve_folder(folder: &Path, key: &str) -> io::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let resolved = match (folder.parent(), folder.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            parent.canonicalize()?.join(name)
        }
        _ => folder.to_owned(),
    };
    open_folder(&resolved).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!(
                "{key} = {:?} is a symbolic link or not a folder ({err}); name the folder itself",
                folder.display().to_string()
            ),
        )
    })?;
    Ok(resolved)
}

/// `done` or `error`, opened without following a link in its last step.
fn open_folder(folder: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        folder,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The folder read, as configured (links in its path are the administrator's).
fn open_inbox(folder: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        folder,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// What a listing found under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    /// A regular file: read.
    File,
    /// A symbolic link: never followed.
    Link,
    /// A named pipe, socket or device: never opened.
    Special,
}

/// An entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    name: OsString,
    kind: EntryKind,
    size: u64,
    modified: Option<SystemTime>,
    /// Device and inode: what is opened later must be this very file.
    identity: (u64, u64),
}

/// What each entry looked like at the last poll.
type Seen = HashMap<OsString, Listed>;

async fn poll(settings: DirectorySettings, intake: Intake, mut stopped: watch::Receiver<bool>) {
    let mut seen: Seen = HashMap::new();
    loop {
        let listed = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || list(&settings)).await
        };
        let entries = match listed {
            Ok(Ok(entries)) => entries,
            Ok(Err(err)) => {
                warn!(channel = %intake.channel(), folder = %settings.path.display(), error = %err, "cannot list the folder; trying again at the next poll");
                Vec::new()
            }
            Err(err) => {
                error!(error = %err, "listing the folder failed");
                Vec::new()
            }
        };
        let (ready, mut next) = sort_out(&seen, entries);
        for entry in ready {
            if *stopped.borrow() {
                return;
            }
            if !take_entry(&settings, &intake, &entry).await {
                // Not stored: read again at the next poll.
                next.insert(entry.name.clone(), entry);
            }
        }
        seen = next;
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Splits a listing into the entries to take now (the same as at the last poll) and
/// what to remember for the next poll (entries new or still changing, which wait).
fn sort_out(seen: &Seen, entries: Vec<Listed>) -> (Vec<Listed>, Seen) {
    let mut ready = Vec::new();
    let mut next = Seen::new();
    for entry in entries {
        if seen.get(&entry.name) == Some(&entry) {
            ready.push(entry);
        } else {
            debug!(file = ?entry.name, "new or still being written; read at the next poll");
            next.insert(entry.name.clone(), entry);
        }
    }
    (ready, next)
}

/// The matching entries (not folders), oldest modification first. Links are not
/// followed: a link is listed as a link.
fn list(settings: &DirectorySettings) -> std::io::Result<Vec<Listed>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&settings.path)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        if text.starts_with('.')
            || text.ends_with(".error.txt")
            || !glob_match(&settings.pattern, text)
        {
            continue;
        }
        // `DirEntry::metadata` is the entry's own (lstat), not its target's.
        let Ok(meta) = entry.metadata() else { continue };
        let file_type = meta.file_type();
        let kind = if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Link
        } else if file_type.is_dir() {
            continue;
        } else {
            EntryKind::Special
        };
        entries.push(Listed {
            name,
            kind,
            size: meta.len(),
            modified: meta.modified().ok(),
            identity: (meta.dev(), meta.ino()),
        });
    }
    entries.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(entries)
}

/// What opening a listed file found.
enum Opened {
    /// The regular file the listing saw, open, with its size.
    Ready(File, u64),
    /// Not read, for the reason given (a report line); it goes to `error`.
    Refused(File, String),
    /// Something else is under the name now (another file, a link, nothing): the next
    /// listing sees what.
    Changed,
}

/// Opens `entry` in the folder without following links, and checks that it is the
/// regular file listed, with one link (unless allowed) and not too large.
fn open_listed(settings: &DirectorySettings, entry: &Listed) -> io::Result<Opened> {
    let inbox = open_inbox(&settings.path)?;
    let flags = OFlags::RDONLY
        | OFlags::NOFOLLOW
        // A pipe put there since the listing must not block the open.
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(&inbox, &entry.name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOENT | Errno::NXIO) => return Ok(Opened::Changed),
        Err(err) => return Err(err.into()),
    };
    let stat = rustix::fs::fstat(&fd)?;
    let identity = (stat.st_dev as u64, stat.st_ino as u64);
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || identity != entry.identity
    {
        return Ok(Opened::Changed);
    }
    let file = File::from(fd);
    let name = entry.name.to_string_lossy();
    let links = stat.st_nlink as u64;
    if links > 1 && !settings.allow_hard_links {
        return Ok(Opened::Refused(
            file,
            format!(
                "{name}: the file has {links} hard links, so its contents may be those of a file outside the folder; it was not read (allow_hard_links = true reads such files)\n"
            ),
        ));
    }
    let size = stat.st_size as u64;
    if size > settings.max_file_size {
        return Ok(Opened::Refused(
            file,
            format!(
                "{name}: the file is {size} bytes, larger than max_file_size ({} bytes); nothing was stored\n",
                settings.max_file_size
            ),
        ));
    }
    Ok(Opened::Ready(file, size))
}

/// Takes one listed entry: reads, stores and moves a file, or moves what must not be
/// read to `error`. False when it must be looked at again at the next poll.
async fn take_entry(settings: &DirectorySettings, intake: &Intake, entry: &Listed) -> bool {
    let name = entry.name.to_string_lossy().into_owned();
    let what = match entry.kind {
        EntryKind::File => None,
        EntryKind::Link => Some("a symbolic link"),
        EntryKind::Special => Some("not a regular file (a named pipe, socket or device)"),
    };
    if let Some(what) = what {
        let report = format!(
            "{name}: {what}; Corridor reads only regular files in the folder and never follows links, so nothing was read\n"
        );
        move_to(settings, intake, entry, &settings.error, Some(report), None).await;
        return true;
    }
    let opened = {
        let (settings, entry) = (settings.clone(), entry.clone());
        tokio::task::spawn_blocking(move || open_listed(&settings, &entry)).await
    };
    let (file, size) = match opened {
        Ok(Ok(Opened::Ready(file, size))) => (file, size),
        Ok(Ok(Opened::Refused(file, report))) => {
            move_to(
                settings,
                intake,
                entry,
                &settings.error,
                Some(report),
                Some(file),
            )
            .await;
            return true;
        }
        Ok(Ok(Opened::Changed)) => {
            debug!(file = %name, "changed since it was listed; looked at again at the next poll");
            return false;
        }
        Ok(Err(err)) => {
            // File names may say whom a file is about: the folder at warn, the name at debug.
            warn!(channel = %intake.channel(), folder = %settings.path.display(), error = %err, "cannot read a file; trying again at the next poll");
            debug!(file = %name, "the file that could not be read");
            return false;
        }
        Err(err) => {
            error!(error = %err, "opening a file failed");
            return false;
        }
    };
    let folder = settings.path.display().to_string();
    let max_message = settings.max_message_size;
    let (file, stored) = store_file(intake, &folder, max_message, &name, file, size).await;
    match stored {
        Stored::Done => {
            move_to(settings, intake, entry, &settings.done, None, file).await;
            true
        }
        Stored::Problems(report) => {
            move_to(settings, intake, entry, &settings.error, Some(report), file).await;
            true
        }
        Stored::Again => false,
    }
}

/// What storing a file's messages came to.
pub(crate) enum Stored {
    /// Every message stored (or a duplicate): the file goes to `done`.
    Done,
    /// The file goes to `error` with this report.
    Problems(String),
    /// Not stored (the store failed, or the file could not be read): read it again later.
    Again,
}

/// Checks the file's shape, then stores its messages write by write, at most
/// `max_message` bytes each. Hands the file back (for a move across file systems)
/// unless a task reading it failed. `folder` names where the file was found, in logs;
/// `name` only in reports, origins and debug logs. The SFTP source stores its files
/// through here too (a local copy of the remote file).
pub(crate) async fn store_file(
    intake: &Intake,
    folder: &str,
    max_message: usize,
    name: &str,
    file: File,
    size: u64,
) -> (Option<File>, Stored) {
    let scanned = tokio::task::spawn_blocking(move || {
        // No further than the size checked: a file that keeps growing is not followed.
        let shape = scan(Splitter::new((&file).take(size), max_message));
        (file, shape)
    })
    .await;
    let Ok((mut file, shape)) = scanned else {
        error!("checking a file failed");
        return (None, Stored::Again);
    };
    let cannot_read = |err: &io::Error| {
        warn!(channel = %intake.channel(), folder = %folder, error = %err, "cannot read a file; trying again at the next poll");
    };
    let shape = match shape {
        Ok(shape) => shape,
        Err(Problem::Read(err)) => {
            cannot_read(&err);
            return (Some(file), Stored::Again);
        }
        Err(problem) => {
            let report = format!(
                "{name}: {}; nothing was stored\n",
                problem.words(max_message)
            );
            return (Some(file), Stored::Problems(report));
        }
    };
    if let Err(err) = file.rewind() {
        cannot_read(&err);
        return (Some(file), Stored::Again);
    }
    // One message without an envelope is stored as the whole file, byte for byte.
    let whole = shape.messages == 1 && !shape.enveloped && size <= max_message as u64;
    let mut reader = Reader {
        splitter: Splitter::new(file.take(size), max_message),
        whole: whole.then_some(shape.first_line),
    };
    let origin = Origin::new(format!("file:{name}"));
    let mut report = String::new();
    let mut number = 0;
    loop {
        let next = tokio::task::spawn_blocking(move || {
            let messages = reader.next_write();
            (reader, messages)
        })
        .await;
        let Ok((back, messages)) = next else {
            error!("reading a file failed");
            return (None, Stored::Again);
        };
        reader = back;
        let messages = match messages {
            Ok(messages) if messages.is_empty() => break,
            Ok(messages) => messages,
            Err(Problem::Read(err)) => {
                cannot_read(&err);
                return (Some(reader.into_file()), Stored::Again);
            }
            Err(problem) => {
                let _ = writeln!(
                    report,
                    "{name}: the file changed while it was read: {}; the {number} messages before it were stored",
                    problem.words(max_message)
                );
                return (Some(reader.into_file()), Stored::Problems(report));
            }
        };
        let answers = intake
            .receive(messages.iter().map(|(m, _)| m.clone()).collect(), &origin)
            .await;
        for ((message, line), answer) in messages.iter().zip(answers) {
            number += 1;
            match answer.status {
                IntakeStatus::Stored(_) | IntakeStatus::Duplicate(_) => {}
                IntakeStatus::Rejected { id, reason } => {
                    let _ = writeln!(
                        report,
                        "{name}: message {number} (line {line}, MSH-10 {:?}, journal id {id}): {reason}",
                        control_id(message)
                    );
                }
                IntakeStatus::Failed => {
                    warn!(channel = %intake.channel(), folder = %folder, "the store could not take a file's messages; reading it again at the next poll");
                    debug!(file = %name, "the file whose messages were not stored");
                    return (Some(reader.into_file()), Stored::Again);
                }
            }
        }
    }
    debug!(channel = %intake.channel(), file = %name, messages = number, "file stored");
    let stored = if report.is_empty() {
        Stored::Done
    } else {
        Stored::Problems(report)
    };
    (Some(reader.into_file()), stored)
}

/// The second pass over a file: its messages, a write at a time.
struct Reader {
    splitter: Splitter<io::Take<File>>,
    /// The line of the one message, when the whole file is that message.
    whole: Option<usize>,
}

impl Reader {
    /// The messages of the next write (empty at the end), each with the line it starts on.
    fn next_write(&mut self) -> Result<Vec<(Bytes, usize)>, Problem> {
        if let Some(line) = self.whole.take() {
            let mut bytes = Vec::new();
            self.splitter
                .reader
                .read_to_end(&mut bytes)
                .map_err(Problem::Read)?;
            return Ok(vec![(Bytes::from(bytes), line)]);
        }
        let mut messages = Vec::new();
        let mut bytes = 0;
        while messages.len() < MESSAGES_PER_WRITE && bytes < BYTES_PER_WRITE {
            match self.splitter.next_piece()? {
                None => break,
                Some(Piece::Message {
                    bytes: message,
                    line,
                }) => {
                    bytes += message.len();
                    messages.push((Bytes::from(message), line));
                }
                Some(Piece::Envelope { .. }) => {}
                Some(Piece::Stray { name, line }) => {
                    return Err(Problem::Malformed(stray_words(&name, line)));
                }
            }
        }
        Ok(messages)
    }

    fn into_file(self) -> File {
        self.splitter.reader.into_inner().into_inner()
    }
}

/// Why a file's messages cannot be stored.
#[derive(Debug)]
enum Problem {
    /// Reading failed: try again later.
    Read(io::Error),
    /// Not a well-formed stream or batch (the words start with the line).
    Malformed(String),
    /// A message longer than `max_frame_size`.
    MessageTooLarge { number: usize, line: usize },
    /// A batch envelope segment longer than `max_frame_size`.
    SegmentTooLarge { line: usize },
    /// Nothing that starts a message.
    Empty,
}

impl From<io::Error> for Problem {
    fn from(err: io::Error) -> Problem {
        Problem::Read(err)
    }
}

impl Problem {
    /// The words of a report line, after the file's name.
    fn words(&self, max_message: usize) -> String {
        match self {
            Problem::Read(err) => format!("the file could not be read: {err}"),
            Problem::Malformed(why) => format!("the file is not a well-formed batch: {why}"),
            Problem::MessageTooLarge { number, line } => format!(
                "message {number} (line {line}) is larger than max_frame_size ({max_message} bytes)"
            ),
            Problem::SegmentTooLarge { line } => format!(
                "the segment on line {line} is longer than max_frame_size ({max_message} bytes)"
            ),
            Problem::Empty => "the file holds no HL7 v2 message".to_owned(),
        }
    }
}

fn stray_words(name: &str, line: usize) -> String {
    format!("line {line}: segment {name:?} is outside any message (no MSH before it)")
}

/// One piece of a file, as `hl7v2::split_stream` splits a whole input.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// A message: from its MSH line to its last non-blank line.
    Message { bytes: Vec<u8>, line: usize },
    /// A batch envelope segment: FHS, BHS, BTS or FTS.
    Envelope {
        name: [u8; 3],
        bytes: Vec<u8>,
        line: usize,
    },
    /// A line outside any message (its first three bytes).
    Stray { name: String, line: usize },
}

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// A message being read, with the blank lines and line ends after its last line (kept
/// only while they fit, since more message lines may follow them).
struct OpenMessage {
    bytes: Vec<u8>,
    line: usize,
    gap: Vec<u8>,
    gap_len: usize,
}

/// Splits what a reader gives into [`Piece`]s line by line, holding one message at a
/// time: segments end in CR, LF or CRLF; byte order marks and blank lines are skipped.
struct Splitter<R> {
    reader: BufReader<R>,
    max_message: usize,
    line: Vec<u8>,
    line_no: usize,
    messages: usize,
    open: Option<OpenMessage>,
    /// A piece read while closing the message before it.
    ahead: Option<Piece>,
}

/// How a line read ended.
struct LineEnd {
    /// Its length, of which at most the cap is kept.
    length: usize,
    /// CR, LF, CRLF, or nothing at the end of the file.
    terminator: &'static [u8],
    /// Only ASCII white space (after a byte order mark).
    blank: bool,
}

impl<R: Read> Splitter<R> {
    fn new(reader: R, max_message: usize) -> Splitter<R> {
        Splitter {
            reader: BufReader::with_capacity(READ_CHUNK, reader),
            max_message,
            line: Vec::new(),
            line_no: 0,
            messages: 0,
            open: None,
            ahead: None,
        }
    }

    /// Most bytes of a line kept: a message's worth and a byte order mark.
    fn cap(&self) -> usize {
        self.max_message.saturating_add(BYTE_ORDER_MARK.len())
    }

    /// Reads the next line into `self.line` (at most the cap of it).
    fn read_line(&mut self) -> io::Result<Option<LineEnd>> {
        self.line.clear();
        let cap = self.cap();
        let mut length = 0usize;
        let mut white_beyond_cap = true;
        let mut any = false;
        let mut terminator: &'static [u8] = b"";
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            any = true;
            let (content, end) = match memchr::memchr2(b'\r', b'\n', buffer) {
                Some(at) => (&buffer[..at], Some(buffer[at])),
                None => (buffer, None),
            };
            let room = cap.saturating_sub(self.line.len()).min(content.len());
            self.line.extend_from_slice(&content[..room]);
            white_beyond_cap &= content[room..].iter().all(u8::is_ascii_whitespace);
            length = length.saturating_add(content.len());
            let used = content.len() + usize::from(end.is_some());
            self.reader.consume(used);
            match end {
                None => continue,
                Some(b'\n') => terminator = b"\n",
                Some(_) => {
                    terminator = b"\r";
                    if self.reader.fill_buf()?.first() == Some(&b'\n') {
                        self.reader.consume(1);
                        terminator = b"\r\n";
                    }
                }
            }
            break;
        }
        if !any {
            return Ok(None);
        }
        let content = self
            .line
            .strip_prefix(BYTE_ORDER_MARK)
            .unwrap_or(&self.line);
        let blank = white_beyond_cap && content.iter().all(u8::is_ascii_whitespace);
        Ok(Some(LineEnd {
            length,
            terminator,
            blank,
        }))
    }

    /// The next piece, or `None` at the end of the input.
    fn next_piece(&mut self) -> Result<Option<Piece>, Problem> {
        if let Some(piece) = self.ahead.take() {
            return Ok(Some(piece));
        }
        loop {
            let Some(end) = self.read_line()? else {
                return Ok(self.open.take().map(OpenMessage::close));
            };
            self.line_no += 1;
            let line = self.line_no;
            let truncated = end.length > self.line.len();
            let raw = &self.line[..];
            let content = raw.strip_prefix(BYTE_ORDER_MARK).unwrap_or(raw);
            if end.blank {
                if let Some(open) = &mut self.open {
                    open.gap_len = open
                        .gap_len
                        .saturating_add(end.length + end.terminator.len());
                    if open.bytes.len().saturating_add(open.gap_len) <= self.max_message {
                        open.gap.extend_from_slice(raw);
                        open.gap.extend_from_slice(end.terminator);
                    }
                }
                continue;
            }
            if let Some(name) = envelope_name(content) {
                if truncated {
                    return Err(Problem::SegmentTooLarge { line });
                }
                let piece = Piece::Envelope {
                    name,
                    bytes: content.to_vec(),
                    line,
                };
                return Ok(Some(match self.open.take() {
                    Some(open) => {
                        self.ahead = Some(piece);
                        open.close()
                    }
                    None => piece,
                }));
            }
            if content.starts_with(b"MSH") {
                self.messages += 1;
                if truncated || content.len() > self.max_message {
                    return Err(Problem::MessageTooLarge {
                        number: self.messages,
                        line,
                    });
                }
                let opened = OpenMessage {
                    bytes: content.to_vec(),
                    line,
                    gap: end.terminator.to_vec(),
                    gap_len: end.terminator.len(),
                };
                match self.open.replace(opened) {
                    Some(previous) => return Ok(Some(previous.close())),
                    None => continue,
                }
            }
            let Some(open) = &mut self.open else {
                let name = String::from_utf8_lossy(&content[..content.len().min(3)]).into_owned();
                return Ok(Some(Piece::Stray { name, line }));
            };
            let grown = open
                .bytes
                .len()
                .saturating_add(open.gap_len)
                .saturating_add(end.length);
            if truncated || grown > self.max_message {
                return Err(Problem::MessageTooLarge {
                    number: self.messages,
                    line: open.line,
                });
            }
            open.bytes.extend_from_slice(&open.gap);
            open.bytes.extend_from_slice(raw);
            open.gap.clear();
            open.gap.extend_from_slice(end.terminator);
            open.gap_len = end.terminator.len();
        }
    }
}

impl OpenMessage {
    fn close(self) -> Piece {
        Piece::Message {
            bytes: self.bytes,
            line: self.line,
        }
    }
}

fn envelope_name(line: &[u8]) -> Option<[u8; 3]> {
    match line.get(..3) {
        Some(b"FHS") | Some(b"BHS") | Some(b"BTS") | Some(b"FTS") => {
            Some([line[0], line[1], line[2]])
        }
        _ => None,
    }
}

/// What the first pass learnt of a well-formed file.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    messages: usize,
    /// Any FHS, BHS, BTS or FTS.
    enveloped: bool,
    /// The line the first message starts on.
    first_line: usize,
}

/// Whether a batch is open, and how it was opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Explicit,
    Implicit,
}

/// Reads a whole file once and checks it against the rules `hl7v2::Batch::parse`
/// applies to a whole input (an optional FHS first and FTS last, BHS/BTS groups that do
/// not nest, no segment outside a message, BTS-1 and FTS-1 counts that match), holding
/// one message at a time.
fn scan<R: Read>(mut splitter: Splitter<R>) -> Result<Shape, Problem> {
    let mut shape = Shape {
        messages: 0,
        enveloped: false,
        first_line: 0,
    };
    let mut open = Open::None;
    let mut batches = 0usize;
    let mut in_batch = 0usize;
    let mut pieces = 0usize;
    let mut file_trailer: Option<(Vec<u8>, usize)> = None;
    let malformed = |line: usize, why: &str| Problem::Malformed(format!("line {line}: {why}"));
    while let Some(piece) = splitter.next_piece()? {
        if let Some((_, fts_line)) = &file_trailer {
            return Err(malformed(
                *fts_line,
                "FTS is not the last segment of the file",
            ));
        }
        pieces += 1;
        match piece {
            Piece::Message { line, .. } => {
                if open == Open::None {
                    open = Open::Implicit;
                    batches += 1;
                    in_batch = 0;
                }
                if shape.messages == 0 {
                    shape.first_line = line;
                }
                shape.messages += 1;
                in_batch += 1;
            }
            Piece::Stray { name, line } => {
                return Err(Problem::Malformed(stray_words(&name, line)));
            }
            Piece::Envelope { name, bytes, line } => {
                shape.enveloped = true;
                match &name {
                    b"FHS" if pieces != 1 => {
                        return Err(malformed(line, "FHS is not the first segment of the file"));
                    }
                    b"FHS" => {}
                    b"BHS" => {
                        if open == Open::Explicit {
                            return Err(malformed(line, "BHS inside a batch that has no BTS yet"));
                        }
                        open = Open::Explicit;
                        batches += 1;
                        in_batch = 0;
                    }
                    b"BTS" => {
                        if open == Open::None {
                            batches += 1;
                            in_batch = 0;
                        }
                        check_count(&bytes, in_batch, "BTS-1 batch message count")
                            .map_err(|why| malformed(line, &why))?;
                        open = Open::None;
                    }
                    _ => file_trailer = Some((bytes, line)),
                }
            }
        }
    }
    if let Some((bytes, line)) = file_trailer {
        check_count(&bytes, batches, "FTS-1 file batch count")
            .map_err(|why| malformed(line, &why))?;
    }
    if shape.messages == 0 {
        return Err(Problem::Empty);
    }
    Ok(shape)
}

/// Checks a trailer's count field (field 1) against what was read.
fn check_count(trailer: &[u8], actual: usize, what: &str) -> Result<(), String> {
    let Some(&separator) = trailer.get(3) else {
        return Ok(());
    };
    let count = trailer[4..]
        .split(|&b| b == separator)
        .next()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(count);
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    match text.parse::<usize>() {
        Ok(n) if n == actual => Ok(()),
        Ok(n) => Err(format!("{what} says {n}, but {actual} were read")),
        Err(_) => Err(format!("{what} {text:?} is not a number")),
    }
}

/// MSH-10 of a message, read without parsing the rest.
fn control_id(message: &[u8]) -> String {
    let line = message
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let Some(&separator) = line.get(3) else {
        return String::new();
    };
    line.split(|&b| b == separator)
        .nth(9)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default()
}

/// Moves `entry` into `folder` (with `report` written beside it as `NAME.error.txt`);
/// a failure is logged and the entry stays where it is, to be looked at again.
async fn move_to(
    settings: &DirectorySettings,
    intake: &Intake,
    entry: &Listed,
    folder: &Path,
    report: Option<String>,
    file: Option<File>,
) {
    let (inbox, name, folder) = (settings.path.clone(), entry.name.clone(), folder.to_owned());
    let moved = tokio::task::spawn_blocking(move || {
        move_entry(&inbox, &name, &folder, report.as_deref(), file.as_ref())
    })
    .await;
    match moved {
        Ok(Ok(target)) => {
            debug!(channel = %intake.channel(), to = ?target, "file moved");
        }
        Ok(Err(err)) => {
            error!(channel = %intake.channel(), folder = %settings.path.display(), error = %err, "cannot move a file whose messages are stored; it is read again at the next poll (the duplicate window keeps its messages from being stored twice)");
        }
        Err(err) => error!(error = %err, "moving a file failed"),
    }
}

/// Moves the entry `name` of the folder `inbox` into `folder` under its own name, or the
/// first numbered one (`a.hl7.1`) free for it and its report, never following a link or
/// replacing anything there. `file` is the entry opened, copied when `folder` is on
/// another file system. Returns the name it got.
fn move_entry(
    inbox: &Path,
    name: &OsStr,
    folder: &Path,
    report: Option<&str>,
    file: Option<&File>,
) -> io::Result<OsString> {
    let inbox = open_inbox(inbox)?;
    let target_folder = open_folder(folder)?;
    for n in 0..MOST_NAME_TRIES {
        let mut target = name.to_owned();
        if n > 0 {
            target.push(format!(".{n}"));
        }
        let mut report_name = target.clone();
        report_name.push(".error.txt");
        if let Some(report) = report {
            match create_new(&target_folder, &report_name, 0o666) {
                Ok(mut written) => {
                    written.write_all(report.as_bytes())?;
                    written.sync_all()?;
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        let remove_report = || {
            if report.is_some() {
                let _ = rustix::fs::unlinkat(&target_folder, &report_name, AtFlags::empty());
            }
        };
        match rename_no_replace(&inbox, name, &target_folder, &target) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                remove_report();
                continue;
            }
            Err(Errno::XDEV) if file.is_some() => {
                if let Err(err) = copy_then_remove(file, &inbox, name, &target_folder, &target) {
                    remove_report();
                    if err.kind() == io::ErrorKind::AlreadyExists {
                        continue;
                    }
                    return Err(err);
                }
            }
            Err(err) => {
                remove_report();
                return Err(err.into());
            }
        }
        // Make the move itself durable.
        let _ = rustix::fs::fsync(&target_folder);
        let _ = rustix::fs::fsync(&inbox);
        return Ok(target);
    }
    Err(io::Error::other(format!(
        "no free name in {} after {MOST_NAME_TRIES} tries",
        folder.display()
    )))
}

/// A new file `name` in `folder`: never an existing one, never through a link.
fn create_new(folder: impl AsFd, name: &OsStr, mode: u32) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(folder, name, flags, Mode::from_raw_mode(mode as _))?;
    Ok(File::from(fd))
}

/// `renameat2(RENAME_NOREPLACE)`; where the file system lacks it, a rename after checking
/// that the name is free.
fn rename_no_replace(
    from: impl AsFd,
    name: &OsStr,
    to: impl AsFd,
    target: &OsStr,
) -> Result<(), Errno> {
    match rustix::fs::renameat_with(&from, name, &to, target, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => {
            match rustix::fs::statat(&to, target, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Err(Errno::EXIST),
                Err(Errno::NOENT) => rustix::fs::renameat(&from, name, &to, target),
                Err(err) => Err(err),
            }
        }
        other => other,
    }
}

/// Another file system: copies the opened file to a new `target`, syncs it, then
/// removes the entry from the folder read.
fn copy_then_remove(
    file: Option<&File>,
    inbox: impl AsFd,
    name: &OsStr,
    folder: impl AsFd,
    target: &OsStr,
) -> io::Result<()> {
    let Some(mut source) = file else {
        return Err(io::Error::other("nothing to copy"));
    };
    let mode = source.metadata()?.permissions().mode() & 0o777;
    let mut copy = create_new(&folder, target, mode)?;
    source.rewind()?;
    io::copy(&mut source, &mut copy)?;
    copy.sync_all()?;
    rustix::fs::unlinkat(inbox, name, AtFlags::empty())?;
    Ok(())
}

/// Matches a file name against a glob with `*` (any run of characters) and `?` (one).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl RunningSource for DirectorySource {
    fn listener(&self) -> Option<Listener> {
        None
    }

    /// Stops after the file being read is stored and moved; a folder has no
    /// connections to cut off.
    async fn shutdown(self, _grace: Duration) -> bool {
        DirectorySource::shutdown(self).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        assert!(glob_match("*.hl7", "a.hl7"));
        assert!(glob_match("*.hl7", ".hl7"));
        assert!(!glob_match("*.hl7", "a.hl7.tmp"));
        assert!(glob_match("lab_??.txt", "lab_01.txt"));
        assert!(!glob_match("lab_??.txt", "lab_1.txt"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    fn listed(name: &str, size: u64, modified: SystemTime, inode: u64) -> Listed {
        Listed {
            name: OsString::from(name),
            kind: EntryKind::File,
            size,
            modified: Some(modified),
            identity: (1, inode),
        }
    }

    #[test]
    fn a_file_is_read_once_it_stopped_changing_between_two_polls() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t + Duration::from_secs(1);
        // First sight: nothing is read yet.
        let (ready, seen) = sort_out(&Seen::new(), vec![listed("a", 10, t, 1)]);
        assert!(ready.is_empty());
        // It grew: still waiting; b is new.
        let (ready, seen) = sort_out(&seen, vec![listed("a", 20, later, 1), listed("b", 5, t, 2)]);
        assert!(ready.is_empty());
        // a is unchanged now and is read; b was rewritten with the same size but a new
        // time, so it waits.
        let (ready, seen) = sort_out(
            &seen,
            vec![listed("a", 20, later, 1), listed("b", 5, later, 2)],
        );
        assert_eq!(ready, [listed("a", 20, later, 1)]);
        assert!(!seen.contains_key(OsStr::new("a")));
        // b was replaced by another file (renamed over it) with the same size and time:
        // it waits again.
        let (ready, seen) = sort_out(&seen, vec![listed("b", 5, later, 3)]);
        assert!(ready.is_empty());
        let (ready, _) = sort_out(&seen, vec![listed("b", 5, later, 3)]);
        assert_eq!(ready, [listed("b", 5, later, 3)]);
    }

    /// Inputs of every shape a file may have, well-formed and not.
    fn inputs() -> Vec<Vec<u8>> {
        let texts: &[&[u8]] = &[
            b"MSH|^~\\&|A|1\rPID|1\r",
            b"\xEF\xBB\xBFMSH|^~\\&|A\nPID|1\n\nMSH|^~\\&|B\r\nPID|2\r\n",
            b"\n\n  \r\nMSH|^~\\&|A\r\r\n \nPID|1\r\n\r\nOBX|1\n\n\n",
            b"FHS|^~\\&|A\rBHS|^~\\&|A\rMSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\rBTS|2\rFTS|1\r",
            b"BHS|^~\\&|A\rEVN|A04\rPID|1\rBTS|1\r",
            b"BHS|^~\\&\rMSH|^~\\&|1\rBHS|^~\\&\rBTS|1\r",
            b"FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|1\rFHS|^~\\&\rBTS|1\rFTS|1\r",
            b"BHS|^~\\&\rMSH|^~\\&|1\rBTS|3\r",
            b"FHS|^~\\&\rMSH|^~\\&|1\rBTS|1\rFTS|2\r",
            b"FHS|^~\\&\rMSH|^~\\&|1\rFTS|1\rMSH|^~\\&|2\r",
            b"MSH|^~\\&|1\rBTS|x\r",
            b"BHS|^~\\&\rMSH|^~\\&|1\r",
            b"FHS|^~\\&\rMSH|^~\\&|1\rMSH|^~\\&|2\rFTS|1\r",
            b"PID|1||P1\rMSH|^~\\&|X\r",
            b"MSH|^~\\&|1\r\xEF\xBB\xBFPID|1\rMSH|^~\\&|2",
            b"hello\nworld",
            b"",
            b"\r\n\r\n",
        ];
        texts.iter().map(|t| t.to_vec()).collect()
    }

    #[test]
    fn split_as_the_file_streams_finds_what_the_whole_input_parser_finds() {
        for input in inputs() {
            let expected = hl7v2::Batch::parse(&input)
                .map(|batch| {
                    batch
                        .messages
                        .iter()
                        .map(|&(bytes, _, line)| (bytes.to_vec(), line))
                        .collect::<Vec<_>>()
                })
                .map_err(|e| e.kind.to_string());
            // Pieces of one byte and more: line ends split between two reads too.
            for chunk in [1, 2, 3, 7, 64] {
                let reader = BufReader::with_capacity(chunk, &input[..]);
                let shape = scan(Splitter::new(reader, 1 << 20));
                let mut splitter =
                    Splitter::new(BufReader::with_capacity(chunk, &input[..]), 1 << 20);
                let mut found = Vec::new();
                while let Ok(Some(piece)) = splitter.next_piece() {
                    if let Piece::Message { bytes, line } = piece {
                        found.push((bytes, line));
                    }
                }
                let text = String::from_utf8_lossy(&input);
                match (&expected, shape) {
                    (Ok(messages), Ok(shape)) => {
                        assert_eq!(&found, messages, "{text:?} in pieces of {chunk}");
                        assert_eq!(shape.messages, messages.len(), "{text:?}");
                        assert_eq!(shape.first_line, messages[0].1, "{text:?}");
                    }
                    (Ok(messages), Err(Problem::Empty)) => {
                        assert!(messages.is_empty(), "{text:?}")
                    }
                    (Err(why), Err(Problem::Malformed(found))) => {
                        assert_eq!(why, &found, "{text:?} in pieces of {chunk}")
                    }
                    (expected, found) => {
                        panic!("{text:?} in pieces of {chunk}: {expected:?} but {found:?}")
                    }
                }
            }
        }
    }

    #[test]
    fn a_message_larger_than_the_limit_is_refused_without_reading_it_whole() {
        let mut input = b"MSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\r".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\rMSH|^~\\&|3\r");
        let problem = scan(Splitter::new(&input[..], 1000)).unwrap_err();
        assert!(
            matches!(problem, Problem::MessageTooLarge { number: 2, line: 3 }),
            "{problem:?}"
        );
        // A line longer than the limit is not kept whole: the splitter holds at most the
        // limit of it.
        let mut splitter = Splitter::new(&input[..], 1000);
        while let Ok(Some(_)) = splitter.next_piece() {}
        assert!(splitter.line.capacity() < 2 * 1000 + READ_CHUNK);
    }

    #[test]
    fn control_id_is_msh_10() {
        assert_eq!(
            control_id(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X42|P|2.5\rPID|1"),
            "X42"
        );
        assert_eq!(control_id(b"MS"), "");
    }
}

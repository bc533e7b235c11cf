//! The directory source: `source = { type = "directory", path = "/var/spool/lab",
//! pattern = "*.hl7", poll_interval = "1s", done = "...", error = "..." }`.
//!
//! Every `poll_interval` the folder is listed. A file whose name matches `pattern` is
//! read once its size and modification time were the same at two polls in a row (a file
//! still being written waits for the next poll). Its content may be one message, many
//! (one after another) or an FHS/BHS batch; all its messages go to the channel's
//! [`Intake`] as one write. Only AFTER that write committed is the file moved:
//!
//! - to `done` when every message was stored (or was a duplicate of a stored one);
//! - to `error` when a message was rejected (it does not parse, or failed validation
//!   before the ACK; it is stored as `rejected` all the same, the others as `received`),
//!   or when the file is not a well-formed batch (then nothing is stored), or is larger
//!   than `max_file_size`. Beside it, `NAME.error.txt` names each problem: the message's
//!   number, the line it starts on, its control id (MSH-10), and what is wrong.
//!
//! When the store cannot take the messages the file stays where it is and is read again
//! at the next poll. A crash (or a failed move) after the commit and before the move
//! leaves the file in place too: it is read again after the restart and the channel's
//! duplicate window (default 10 minutes) keeps its messages from being stored twice.
//! A name already taken in `done` or `error` gets a numbered suffix (`a.hl7.1`).
//! Files are taken in order of modification time, then name. Logs at the default level
//! name the folder, never a file (its name may say whom it is about).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::receive::{Intake, IntakeStatus, Origin, split_batch};

/// Most messages handed to the intake in one write; a larger file is stored in several
/// writes, all committed before it moves.
const MESSAGES_PER_WRITE: usize = 1000;

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
    /// The largest file read; larger ones go to `error`.
    pub max_file_size: u64,
}

impl DirectorySettings {
    /// Settings for `path` with the defaults: every file, 1 s, `path/done`, `path/error`,
    /// 256 MiB.
    pub fn new(path: impl Into<PathBuf>) -> DirectorySettings {
        let path = path.into();
        DirectorySettings {
            done: path.join("done"),
            error: path.join("error"),
            path,
            pattern: "*".to_owned(),
            poll_interval: Duration::from_secs(1),
            max_file_size: 256 << 20,
        }
    }

    /// The settings of a configured source; relative folders start at `base_dir`.
    pub fn from_config(source: &crate::SourceConfig, base_dir: &Path) -> DirectorySettings {
        let path = base_dir.join(source.path.clone().unwrap_or_default());
        DirectorySettings {
            done: source
                .done
                .as_ref()
                .map_or_else(|| path.join("done"), |d| base_dir.join(d)),
            error: source
                .error
                .as_ref()
                .map_or_else(|| path.join("error"), |d| base_dir.join(d)),
            pattern: source.pattern.clone().unwrap_or_else(|| "*".to_owned()),
            poll_interval: source.poll_interval.0,
            max_file_size: source.max_file_size.0,
            path,
        }
    }
}

/// A running directory source.
pub struct DirectorySource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DirectorySource {
    /// Creates `done` and `error` if missing and starts polling.
    pub fn start(settings: DirectorySettings, intake: Intake) -> std::io::Result<DirectorySource> {
        if !settings.path.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("folder {} does not exist", settings.path.display()),
            ));
        }
        std::fs::create_dir_all(&settings.done)?;
        std::fs::create_dir_all(&settings.error)?;
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

/// What a file looked like at the last poll.
type Seen = HashMap<PathBuf, (u64, Option<SystemTime>)>;

async fn poll(settings: DirectorySettings, intake: Intake, mut stopped: watch::Receiver<bool>) {
    let mut seen: Seen = HashMap::new();
    loop {
        let listed = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || list(&settings)).await
        };
        let files = match listed {
            Ok(Ok(files)) => files,
            Ok(Err(err)) => {
                warn!(channel = %intake.channel(), folder = %settings.path.display(), error = %err, "cannot list the folder; trying again at the next poll");
                Vec::new()
            }
            Err(err) => {
                error!(error = %err, "listing the folder failed");
                Vec::new()
            }
        };
        let (ready, mut next) = sort_out(&seen, files);
        for (path, size, modified) in ready {
            if *stopped.borrow() {
                return;
            }
            if !take_file(&settings, &intake, &path, size).await {
                // Not stored: read again at the next poll.
                next.insert(path, (size, modified));
            }
        }
        seen = next;
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A file as listed: path, size, modification time.
type Listed = (PathBuf, u64, Option<SystemTime>);

/// Splits a listing into the files to read now (the same size and modification time as
/// at the last poll) and what to remember for the next poll (files new or still
/// changing, which wait).
fn sort_out(seen: &Seen, files: Vec<Listed>) -> (Vec<Listed>, Seen) {
    let mut ready = Vec::new();
    let mut next = Seen::new();
    for (path, size, modified) in files {
        if seen.get(&path) == Some(&(size, modified)) {
            ready.push((path, size, modified));
        } else {
            debug!(file = %path.display(), "new or still being written; read at the next poll");
            next.insert(path, (size, modified));
        }
    }
    (ready, next)
}

/// The matching files, oldest modification first.
fn list(settings: &DirectorySettings) -> std::io::Result<Vec<Listed>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&settings.path)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.')
            || name.ends_with(".error.txt")
            || !glob_match(&settings.pattern, name)
        {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) if meta.is_file() => meta,
            _ => continue,
        };
        files.push((entry.path(), meta.len(), meta.modified().ok()));
    }
    files.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    Ok(files)
}

/// Reads, stores and moves one file. False when it must be read again later (the store
/// failed or the file could not be read).
async fn take_file(settings: &DirectorySettings, intake: &Intake, path: &Path, size: u64) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if size > settings.max_file_size {
        let report = format!(
            "{name}: the file is {size} bytes, larger than max_file_size ({} bytes); nothing was stored\n",
            settings.max_file_size
        );
        move_to(settings, intake, path, &settings.error, Some(report)).await;
        return true;
    }
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => Bytes::from(bytes),
        Err(err) => {
            // File names may say whom a file is about: the folder at warn, the name at debug.
            warn!(channel = %intake.channel(), folder = %settings.path.display(), error = %err, "cannot read a file; trying again at the next poll");
            debug!(file = %path.display(), "the file that could not be read");
            return false;
        }
    };
    let messages = match split_batch(&bytes) {
        Ok((messages, _)) if !messages.is_empty() => messages,
        Ok(_) => {
            let report = format!("{name}: the file holds no HL7 v2 message; nothing was stored\n");
            move_to(settings, intake, path, &settings.error, Some(report)).await;
            return true;
        }
        Err(err) => {
            let report =
                format!("{name}: the file is not a well-formed batch: {err}; nothing was stored\n");
            move_to(settings, intake, path, &settings.error, Some(report)).await;
            return true;
        }
    };
    let origin = Origin::new(format!("file:{name}"));
    let mut report = String::new();
    let mut number = 0;
    for chunk in messages.chunks(MESSAGES_PER_WRITE) {
        let answers = intake
            .receive(chunk.iter().map(|(m, _)| m.clone()).collect(), &origin)
            .await;
        for ((message, line), answer) in chunk.iter().zip(answers) {
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
                    warn!(channel = %intake.channel(), folder = %settings.path.display(), "the store could not take a file's messages; reading it again at the next poll");
                    debug!(file = %path.display(), "the file whose messages were not stored");
                    return false;
                }
            }
        }
    }
    let (folder, report) = if report.is_empty() {
        (&settings.done, None)
    } else {
        (&settings.error, Some(report))
    };
    debug!(channel = %intake.channel(), file = %path.display(), messages = number, "file stored");
    move_to(settings, intake, path, folder, report).await;
    true
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

/// Moves `path` into `folder` (with `report` written beside it as `NAME.error.txt`);
/// a failure is logged and the file stays where it is, to be read again.
async fn move_to(
    settings: &DirectorySettings,
    intake: &Intake,
    path: &Path,
    folder: &Path,
    report: Option<String>,
) {
    let (path, folder) = (path.to_owned(), folder.to_owned());
    let moved = tokio::task::spawn_blocking(move || move_blocking(&path, &folder, report)).await;
    match moved {
        Ok(Ok(target)) => {
            debug!(channel = %intake.channel(), to = %target.display(), "file moved");
        }
        Ok(Err(err)) => {
            error!(channel = %intake.channel(), folder = %settings.path.display(), error = %err, "cannot move a file whose messages are stored; it is read again at the next poll (the duplicate window keeps its messages from being stored twice)");
        }
        Err(err) => error!(error = %err, "moving a file failed"),
    }
}

fn move_blocking(path: &Path, folder: &Path, report: Option<String>) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a file without a name"))?
        .to_string_lossy()
        .into_owned();
    let mut target = folder.join(&name);
    let mut n = 0;
    while target.exists() || (report.is_some() && error_file(&target).exists()) {
        n += 1;
        target = folder.join(format!("{name}.{n}"));
    }
    if let Some(report) = &report {
        let text_path = error_file(&target);
        std::fs::write(&text_path, report)?;
        std::fs::File::open(&text_path)?.sync_all()?;
    }
    if std::fs::rename(path, &target).is_err() {
        // Another file system: copy, sync, then remove the original.
        std::fs::copy(path, &target)?;
        std::fs::File::open(&target)?.sync_all()?;
        std::fs::remove_file(path)?;
    }
    // Make the move itself durable.
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    if let Some(Ok(dir)) = path.parent().map(std::fs::File::open) {
        let _ = dir.sync_all();
    }
    Ok(target)
}

/// `NAME.error.txt` beside `target`.
fn error_file(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".error.txt");
    PathBuf::from(name)
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

    #[test]
    fn a_file_is_read_once_it_stopped_changing_between_two_polls() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t + Duration::from_secs(1);
        let a = PathBuf::from("in/a.hl7");
        let b = PathBuf::from("in/b.hl7");
        // First sight: nothing is read yet.
        let (ready, seen) = sort_out(&Seen::new(), vec![(a.clone(), 10, Some(t))]);
        assert!(ready.is_empty());
        // It grew: still waiting; b is new.
        let (ready, seen) = sort_out(
            &seen,
            vec![(a.clone(), 20, Some(later)), (b.clone(), 5, Some(t))],
        );
        assert!(ready.is_empty());
        // a is unchanged now and is read; b was rewritten with the same size but a new
        // time, so it waits.
        let (ready, seen) = sort_out(
            &seen,
            vec![(a.clone(), 20, Some(later)), (b.clone(), 5, Some(later))],
        );
        assert_eq!(ready, [(a.clone(), 20, Some(later))]);
        assert!(!seen.contains_key(&a));
        let (ready, _) = sort_out(&seen, vec![(b.clone(), 5, Some(later))]);
        assert_eq!(ready, [(b, 5, Some(later))]);
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

//! The SFTP source: `source = { type = "sftp", server = { host = "sftp.lab.example.org",
//! username = "corridor", private_key = "keys/id_ed25519", known_hosts = "keys/known_hosts" },
//! path = "/outbox", pattern = "*.hl7", poll_interval = "5s" }`.
//!
//! The directory source's guarantees over SFTP ([`delivery::sftp`] connects, pins the
//! host key and logs in). Every `poll_interval` the remote folder is listed. A file whose
//! name matches `pattern` is taken once its size and modification time were the same at
//! two polls in a row (a file still being written waits). It is copied into an unnamed
//! local temporary file (never more than the size listed), checked to be still the file
//! listed, and its messages (one, many, or an FHS/BHS batch) are split and stored by the
//! directory source's own code ([`super::directory`]). Only AFTER they committed is the
//! remote file renamed:
//!
//! - into `done` when every message was stored (or was a duplicate of a stored one);
//! - into `error` when a message was rejected, the file is not a well-formed batch, holds
//!   a message larger than `max_frame_size`, or is larger than `max_file_size` (then it
//!   is not read). Beside it, `NAME.error.txt` names each problem: the message's number,
//!   the line it starts on, its control id (MSH-10), and what is wrong.
//!
//! Links are never followed: what the listing (the server's `lstat`) says is a symbolic
//! link or not a regular file is never opened; it is renamed, as it is, into `error` with
//! a report. A file is opened only when the listing says it is a regular file, and its
//! contents are used only when the open handle's attributes (size, time, owner, mode) are
//! the listing's and the name still lists as that regular file after it was read.
//! Reports are created exclusively (never over an existing file), and SFTP's rename
//! does not replace: a name taken in `done` or `error` gets a numbered suffix
//! (`a.hl7.1`).
//!
//! A server that is down, refuses the login or fails a listing is logged (the server
//! and folder, never a file name: it may say whom a file is about) and tried again at the
//! next poll; the source never stops for it. A crash (or a failed rename) after the
//! commit and before the rename leaves the file in place: it is read again after the
//! restart and the channel's duplicate window (default 10 minutes) keeps its messages
//! from being stored twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use conf::{ByteSize, ConfigDuration};
use delivery::sftp::russh_sftp::client::error::Error as SftpError;
use delivery::sftp::russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use delivery::sftp::{SftpConnection, SftpServer, SftpServerConfig};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::directory::{MOST_NAME_TRIES, Stored, check_polling, glob_match, store_file};
use super::{Listener, RunningSource};
use crate::intake::Intake;

/// `source = { type = "sftp", server = { ... }, path = "...", ... }`: an SFTP source's own
/// keys (the keys every source takes are in [`SourceConfig`](crate::SourceConfig);
/// `max_frame_size` is the largest message in a file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpSourceConfig {
    /// The server and how to log in (required).
    #[serde(default)]
    pub server: Option<SftpServerConfig>,
    /// The folder on the server to read (required).
    #[serde(default)]
    pub path: Option<String>,
    /// Which file names to read, a glob with `*` and `?` (default `"*"`; hidden files and
    /// names ending in `.error.txt` never).
    #[serde(default)]
    pub pattern: Option<String>,
    /// How often the folder is listed (default `"5s"`).
    #[serde(default = "default_poll_interval")]
    pub poll_interval: ConfigDuration,
    /// The folder on the server files go to once their messages are stored (default
    /// `PATH/done`; created if missing).
    #[serde(default)]
    pub done: Option<String>,
    /// The folder on the server for files holding a problem, with a `NAME.error.txt`
    /// beside each (default `PATH/error`; created if missing).
    #[serde(default)]
    pub error: Option<String>,
    /// The largest file read (default `"256MiB"`); a larger one goes to `error` unread.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
}

fn default_poll_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}
fn default_max_file_size() -> ByteSize {
    ByteSize(256 << 20)
}

impl SftpSourceConfig {
    /// Problems with these keys, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        match &self.server {
            None => errors.push((
                format!("{at}.source.server"),
                "an sftp source needs server = { host = ..., username = ..., ... }".to_owned(),
            )),
            Some(server) => {
                if let Err((key, words)) = server.check() {
                    errors.push((format!("{at}.source.server.{key}"), words));
                }
            }
        }
        match &self.path {
            Some(path) if !path.trim().is_empty() => {}
            _ => errors.push((
                format!("{at}.source.path"),
                "an sftp source needs path = \"FOLDER\" (the folder on the server)".to_owned(),
            )),
        }
        errors.extend(check_polling(
            at,
            self.pattern.as_deref(),
            self.poll_interval,
            self.max_file_size,
        ));
        let settings = SftpSettings::folders(self);
        if settings.0 == settings.1 || settings.0 == settings.2 || settings.1 == settings.2 {
            errors.push((
                format!("{at}.source.done"),
                "path, done and error must be three different folders".to_owned(),
            ));
        }
        errors
    }
}

/// Where and how an SFTP source reads.
#[derive(Debug, Clone)]
pub struct SftpSettings {
    /// The folder on the server.
    pub path: String,
    /// File names read: a glob with `*` and `?`.
    pub pattern: String,
    /// How often the folder is listed.
    pub poll_interval: Duration,
    /// Where files go once their messages are stored.
    pub done: String,
    /// Where files go that hold a problem.
    pub error: String,
    /// The largest file read.
    pub max_file_size: u64,
    /// The largest message in a file.
    pub max_message_size: usize,
}

impl SftpSettings {
    /// (path, done, error) without trailing slashes, the defaults under `path`.
    fn folders(config: &SftpSourceConfig) -> (String, String, String) {
        let trim = |p: &str| match p.trim_end_matches('/') {
            "" if p.starts_with('/') => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        };
        let path = trim(config.path.as_deref().unwrap_or_default());
        let done = config
            .done
            .as_deref()
            .map_or_else(|| join(&path, "done"), trim);
        let error = config
            .error
            .as_deref()
            .map_or_else(|| join(&path, "error"), trim);
        (path, done, error)
    }

    /// The settings of a configured source.
    pub fn from_config(config: &SftpSourceConfig, max_frame_size: ByteSize) -> SftpSettings {
        let (path, done, error) = SftpSettings::folders(config);
        SftpSettings {
            path,
            done,
            error,
            pattern: config.pattern.clone().unwrap_or_else(|| "*".to_owned()),
            poll_interval: config.poll_interval.0,
            max_file_size: config.max_file_size.0,
            max_message_size: usize::try_from(max_frame_size.0).unwrap_or(usize::MAX),
        }
    }
}

/// `folder/name` on the server.
fn join(folder: &str, name: &str) -> String {
    if folder.ends_with('/') {
        format!("{folder}{name}")
    } else {
        format!("{folder}/{name}")
    }
}

/// A running SFTP source.
pub struct SftpSource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SftpSource {
    /// Reads the credentials and the host key pin now and starts polling; the server is
    /// first reached at the first poll (one that is down does not stop the start). An
    /// error is (key under `source`, words).
    pub fn start(
        config: &SftpSourceConfig,
        max_frame_size: ByteSize,
        base_dir: &Path,
        intake: Intake,
    ) -> Result<SftpSource, (String, String)> {
        let server = config.server.as_ref().ok_or_else(|| {
            (
                "server".to_owned(),
                "an sftp source needs `server`".to_owned(),
            )
        })?;
        let server = SftpServer::new(server, base_dir).map_err(|message| {
            // `server.KEY`: words
            match message
                .strip_prefix('`')
                .and_then(|rest| rest.split_once("`: "))
            {
                Some((key, words)) => (key.to_owned(), words.to_owned()),
                None => ("server".to_owned(), message),
            }
        })?;
        let settings = SftpSettings::from_config(config, max_frame_size);
        info!(channel = %intake.channel(), server = %server.address(), folder = %settings.path, pattern = %settings.pattern, "sftp source reading");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(poll(server, settings, intake, stopped));
        Ok(SftpSource { stop, task })
    }

    /// Stops after the file being read (if any) is stored and renamed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl RunningSource for SftpSource {
    fn listener(&self) -> Option<Listener> {
        None
    }

    async fn shutdown(self, _grace: Duration) -> bool {
        SftpSource::shutdown(self).await;
        true
    }
}

/// What a listing found under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    Link,
    Special,
}

/// An entry as listed (the server's `lstat`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    name: String,
    kind: EntryKind,
    size: u64,
    modified: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    permissions: Option<u32>,
}

impl Listed {
    fn from_attributes(name: String, attributes: &FileAttributes) -> Option<Listed> {
        let file_type = attributes.file_type();
        let kind = if file_type.is_dir() {
            return None;
        } else if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Link
        } else {
            EntryKind::Special
        };
        Some(Listed {
            name,
            kind,
            size: attributes.size.unwrap_or(0),
            modified: attributes.mtime,
            uid: attributes.uid,
            gid: attributes.gid,
            permissions: attributes.permissions,
        })
    }

    /// Whether `attributes` (of an open handle or a new `lstat`) are this listed file's.
    fn is(&self, attributes: &FileAttributes) -> bool {
        Listed::from_attributes(self.name.clone(), attributes).as_ref() == Some(self)
    }
}

/// A live session, made again after a failure.
struct Session {
    server: SftpServer,
    connection: Option<SftpConnection>,
    /// Whether `done` and `error` were made on this server.
    folders_made: bool,
}

async fn poll(
    server: SftpServer,
    settings: SftpSettings,
    intake: Intake,
    mut stopped: watch::Receiver<bool>,
) {
    let mut session = Session {
        server,
        connection: None,
        folders_made: false,
    };
    let mut seen: HashMap<String, Listed> = HashMap::new();
    loop {
        match list(&mut session, &settings).await {
            Ok(entries) => {
                let mut next = HashMap::new();
                let mut ready = Vec::new();
                for entry in entries {
                    if seen.get(&entry.name) == Some(&entry) {
                        ready.push(entry);
                    } else {
                        debug!(file = %entry.name, "new or still being written; read at the next poll");
                        next.insert(entry.name.clone(), entry);
                    }
                }
                for entry in ready {
                    if *stopped.borrow() {
                        return;
                    }
                    if !take_entry(&mut session, &settings, &intake, &entry).await {
                        next.insert(entry.name.clone(), entry);
                    }
                }
                seen = next;
            }
            Err(err) => {
                warn!(channel = %intake.channel(), server = %session.server.address(), folder = %settings.path, error = %err, "cannot list the folder on the SFTP server; trying again at the next poll");
                session.connection = None;
                seen.clear();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The session, connected (and `done` and `error` made) if it was not.
async fn connected<'a>(
    session: &'a mut Session,
    settings: &SftpSettings,
) -> Result<&'a SftpConnection, String> {
    if session.connection.is_none() {
        let connection = session.server.connect().await?;
        if !session.folders_made {
            for folder in [&settings.done, &settings.error] {
                make_folder(&connection, folder)
                    .await
                    .map_err(|e| format!("cannot make the folder {folder} on the server: {e}"))?;
            }
            session.folders_made = true;
        }
        session.connection = Some(connection);
    }
    session
        .connection
        .as_ref()
        .ok_or_else(|| "no SFTP session".to_owned())
}

/// Makes `folder` unless it is there; it must be a folder, not a link to one.
async fn make_folder(connection: &SftpConnection, folder: &str) -> Result<(), SftpError> {
    match connection.sftp.symlink_metadata(folder.to_owned()).await {
        Ok(attributes) if attributes.file_type().is_dir() => Ok(()),
        Ok(_) => Err(SftpError::UnexpectedBehavior(
            "it is a symbolic link or not a folder; name the folder itself".to_owned(),
        )),
        Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
            connection.sftp.create_dir(folder.to_owned()).await
        }
        Err(err) => Err(err),
    }
}

/// The matching entries (not folders), oldest modification first.
async fn list(session: &mut Session, settings: &SftpSettings) -> Result<Vec<Listed>, String> {
    let connection = connected(session, settings).await?;
    let listing = connection
        .sftp
        .read_dir(settings.path.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut entries: Vec<Listed> = listing
        .filter_map(|entry| {
            let name = entry.file_name();
            if name.starts_with('.')
                || name.ends_with(".error.txt")
                || name.contains('/')
                || !glob_match(&settings.pattern, &name)
            {
                return None;
            }
            Listed::from_attributes(name, &entry.metadata())
        })
        .collect();
    entries.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(entries)
}

/// What fetching a listed file found.
enum Fetched {
    /// A local copy of the listed file, with its size.
    Ready(std::fs::File, u64),
    /// Not read, for the reason given (a report line); it goes to `error`.
    Refused(String),
    /// Something else is under the name now: the next listing sees what.
    Changed,
}

/// Copies the listed regular file into an unnamed local file, checking that what was
/// opened and read is the file listed.
async fn fetch(
    connection: &SftpConnection,
    settings: &SftpSettings,
    entry: &Listed,
) -> Result<Fetched, String> {
    let path = join(&settings.path, &entry.name);
    if entry.size > settings.max_file_size {
        return Ok(Fetched::Refused(format!(
            "{}: the file is {} bytes, larger than max_file_size ({} bytes); nothing was read or stored\n",
            entry.name, entry.size, settings.max_file_size
        )));
    }
    let mut remote = match connection
        .sftp
        .open_with_flags(path.clone(), OpenFlags::READ)
        .await
    {
        Ok(remote) => remote,
        Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
            return Ok(Fetched::Changed);
        }
        Err(err) => return Err(format!("cannot open a file: {err}")),
    };
    // The handle's attributes: a link swapped in since the listing shows its target's.
    match remote.metadata().await {
        Ok(attributes) if entry.is(&attributes) => {}
        Ok(_) => return Ok(Fetched::Changed),
        Err(err) => return Err(format!("cannot read a file's attributes: {err}")),
    }
    let local = tempfile::tempfile().map_err(|e| format!("cannot make a local copy: {e}"))?;
    let mut local = tokio::fs::File::from_std(local);
    let mut limited = (&mut remote).take(entry.size);
    let copied = tokio::io::copy(&mut limited, &mut local)
        .await
        .map_err(|e| format!("cannot read a file: {e}"))?;
    let _ = remote.shutdown().await;
    local
        .flush()
        .await
        .map_err(|e| format!("cannot make a local copy: {e}"))?;
    if copied != entry.size {
        return Ok(Fetched::Changed);
    }
    // Still the file listed, under its name, as a regular file.
    match connection.sftp.symlink_metadata(path).await {
        Ok(attributes) if entry.is(&attributes) => {}
        Ok(_) => return Ok(Fetched::Changed),
        Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
            return Ok(Fetched::Changed);
        }
        Err(err) => return Err(format!("cannot read a file's attributes: {err}")),
    }
    let mut local = local.into_std().await;
    std::io::Seek::rewind(&mut local).map_err(|e| format!("cannot read the local copy: {e}"))?;
    Ok(Fetched::Ready(local, copied))
}

/// Takes one listed entry: reads, stores and renames a file, or renames what must not be
/// read into `error`. False when it must be looked at again at the next poll.
async fn take_entry(
    session: &mut Session,
    settings: &SftpSettings,
    intake: &Intake,
    entry: &Listed,
) -> bool {
    let name = entry.name.clone();
    let what = match entry.kind {
        EntryKind::File => None,
        EntryKind::Link => Some("a symbolic link"),
        EntryKind::Special => Some("not a regular file (a named pipe, socket or device)"),
    };
    if let Some(what) = what {
        let report = format!(
            "{name}: {what}; Corridor reads only regular files in the folder and never follows links, so nothing was read\n"
        );
        return move_to(
            session,
            settings,
            intake,
            &name,
            &settings.error,
            Some(&report),
        )
        .await;
    }
    let fetched = match connected(session, settings).await {
        Ok(connection) => fetch(connection, settings, entry).await,
        Err(err) => Err(err),
    };
    let (file, size) = match fetched {
        Ok(Fetched::Ready(file, size)) => (file, size),
        Ok(Fetched::Refused(report)) => {
            return move_to(
                session,
                settings,
                intake,
                &name,
                &settings.error,
                Some(&report),
            )
            .await;
        }
        Ok(Fetched::Changed) => {
            debug!(file = %name, "changed since it was listed; looked at again at the next poll");
            return false;
        }
        Err(err) => {
            warn!(channel = %intake.channel(), server = %session.server.address(), folder = %settings.path, error = %err, "cannot read a file on the SFTP server; trying again at the next poll");
            debug!(file = %name, "the file that could not be read");
            session.connection = None;
            return false;
        }
    };
    let folder = format!("{}:{}", session.server.address(), settings.path);
    let (_, stored) = store_file(
        intake,
        &folder,
        settings.max_message_size,
        &name,
        file,
        size,
    )
    .await;
    match stored {
        Stored::Done => move_to(session, settings, intake, &name, &settings.done, None).await,
        Stored::Problems(report) => {
            move_to(
                session,
                settings,
                intake,
                &name,
                &settings.error,
                Some(&report),
            )
            .await
        }
        Stored::Again => false,
    }
}

/// Renames `name` into `folder` (with `report` beside it as `NAME.error.txt`). False when
/// it failed (logged): the file stays and is looked at again.
async fn move_to(
    session: &mut Session,
    settings: &SftpSettings,
    intake: &Intake,
    name: &str,
    folder: &str,
    report: Option<&str>,
) -> bool {
    let moved = match connected(session, settings).await {
        Ok(connection) => rename_into(connection, settings, name, folder, report).await,
        Err(err) => Err(err),
    };
    match moved {
        Ok(target) => {
            debug!(channel = %intake.channel(), to = %target, "file moved");
            true
        }
        Err(err) => {
            error!(channel = %intake.channel(), server = %session.server.address(), folder = %settings.path, error = %err, "cannot move a file on the SFTP server; it is read again at the next poll (the duplicate window keeps its messages from being stored twice)");
            session.connection = None;
            false
        }
    }
}

/// Whether `path` names anything on the server (a link too).
async fn exists(connection: &SftpConnection, path: &str) -> Result<bool, String> {
    match connection.sftp.symlink_metadata(path.to_owned()).await {
        Ok(_) => Ok(true),
        Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => Ok(false),
        Err(err) => Err(err.to_string()),
    }
}

/// Renames `name` of the folder read into `folder` under its own name or the first
/// numbered one free for it and its report; never replaces anything. Returns the name.
async fn rename_into(
    connection: &SftpConnection,
    settings: &SftpSettings,
    name: &str,
    folder: &str,
    report: Option<&str>,
) -> Result<String, String> {
    let sftp = &connection.sftp;
    let from = join(&settings.path, name);
    for n in 0..MOST_NAME_TRIES {
        let target = match n {
            0 => name.to_owned(),
            n => format!("{name}.{n}"),
        };
        let to = join(folder, &target);
        let report_path = join(folder, &format!("{target}.error.txt"));
        if exists(connection, &to).await?
            || (report.is_some() && exists(connection, &report_path).await?)
        {
            continue;
        }
        if let Some(report) = report {
            let written = async {
                let mut file = sftp
                    .open_with_flags(
                        report_path.clone(),
                        OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                file.write_all(report.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = file.sync_all().await;
                file.shutdown().await.map_err(|e| e.to_string())
            }
            .await;
            if let Err(err) = written {
                if exists(connection, &report_path).await? {
                    // Taken since it was looked at: the next name.
                    continue;
                }
                return Err(format!("cannot write a report into {folder}: {err}"));
            }
        }
        if let Err(err) = sftp.rename(from.clone(), to.clone()).await {
            if report.is_some() {
                let _ = sftp.remove_file(report_path).await;
            }
            if exists(connection, &to).await? {
                continue;
            }
            return Err(format!("cannot rename a file into {folder}: {err}"));
        }
        return Ok(target);
    }
    Err(format!(
        "no free name in {folder} after {MOST_NAME_TRIES} tries"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SftpSourceConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn folders_default_under_path_and_must_differ() {
        let c = config("path = \"/in/\"");
        assert_eq!(
            SftpSettings::folders(&c),
            ("/in".into(), "/in/done".into(), "/in/error".into())
        );
        let c = config("path = \"/\"");
        assert_eq!(
            SftpSettings::folders(&c),
            ("/".into(), "/done".into(), "/error".into())
        );
        let c = config("path = \"in\"\ndone = \"in/\"");
        let keys: Vec<String> = c.check("channels.lab").into_iter().map(|e| e.0).collect();
        assert!(
            keys.contains(&"channels.lab.source.done".to_owned()),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"channels.lab.source.server".to_owned()),
            "{keys:?}"
        );
    }

    #[test]
    fn server_problems_name_the_key_under_server() {
        let c = config(
            "path = \"in\"\nserver = { host = \"h\", username = \"u\", password_env = \"X\" }",
        );
        let errors = c.check("channels.lab");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "channels.lab.source.server.known_hosts");
    }
}

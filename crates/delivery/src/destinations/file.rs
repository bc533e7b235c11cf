//! File destinations: one file per message, or messages appended to a file.
//!
//! A message counts as delivered only once its bytes are synced to disk: per-message files
//! are written under a temporary name, synced and renamed into place (a reader never sees
//! half a file), and the directory is synced once per batch. Redelivery after a crash
//! rewrites the same name when the template holds `{message_id}` or `{entry_id}`, so the
//! directory holds each message once; an appended file may hold it twice.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use store::UnixMicros;

use super::DestinationConfig;
use super::{Delivered, DeliveryMeta, Destination, Outgoing};
use crate::config::FileMode;

/// `type = "file"`: a file destination's own keys (the keys every destination takes are
/// in [`DestinationConfig`]).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileDestinationConfig {
    /// The directory files are written to, relative to the configuration file
    /// (required; missing, it is reported with the file's other problems).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// One file per message (`per_message`, default) or every message appended to one
    /// file (`append`).
    #[serde(default)]
    pub mode: FileMode,
    /// The file name template; `{channel}`, `{destination}`, `{message_id}`,
    /// `{entry_id}`, `{control_id}` and `{date}` (UTC, `YYYYMMDD`) are replaced. Default
    /// `{channel}-{message_id}-{control_id}.hl7` per message, `{channel}-{date}.hl7`
    /// appended.
    #[serde(default)]
    pub file_name: Option<String>,
}

impl FileDestinationConfig {
    /// A file destination writing into `path`, every other key at its default.
    pub fn new(path: impl Into<PathBuf>) -> FileDestinationConfig {
        FileDestinationConfig {
            path: Some(path.into()),
            mode: FileMode::default(),
            file_name: None,
        }
    }

    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.path.is_none() {
            return Err("file destinations need `path`".into());
        }
        if let Some(template) = &self.file_name {
            NameTemplate::parse(template)?;
        }
        Ok(())
    }
}
use crate::error::{ConfigError, DeliveryError};

/// Writes messages into a directory.
#[derive(Debug, Clone)]
pub struct FileDestination {
    dir: PathBuf,
    mode: FileMode,
    template: NameTemplate,
}

impl FileDestination {
    /// From a validated `type = "file"` configuration; the directory is created now.
    pub fn new(
        config: &DestinationConfig,
        file: &FileDestinationConfig,
        base: &Path,
    ) -> Result<FileDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        let dir = base.join(
            file.path
                .as_ref()
                .ok_or_else(|| fail("file destinations need `path`".into()))?,
        );
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("`path` {}: cannot create it: {e}", dir.display())))?;
        let mode = file.mode;
        let template = match (&file.file_name, mode) {
            (Some(text), _) => NameTemplate::parse(text).map_err(fail)?,
            (None, FileMode::PerMessage) => {
                NameTemplate::parse("{channel}-{message_id}-{control_id}.hl7").map_err(fail)?
            }
            (None, FileMode::Append) => {
                NameTemplate::parse("{channel}-{date}.hl7").map_err(fail)?
            }
        };
        Ok(FileDestination {
            dir,
            mode,
            template,
        })
    }

    /// Writes one message without syncing; returns the file written.
    fn write(&self, message: &Outgoing, meta: &DeliveryMeta) -> std::io::Result<PathBuf> {
        let name = self.template.render(message, meta);
        let path = self.dir.join(&name);
        match self.mode {
            FileMode::PerMessage => {
                let temporary = self.dir.join(format!(".{name}.partial"));
                let mut file = File::create(&temporary)?;
                file.write_all(&message.payload)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &path)?;
            }
            FileMode::Append => {
                let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
                let mut record = Vec::with_capacity(message.payload.len() + 2);
                record.extend_from_slice(&message.payload);
                if !record.ends_with(b"\r") && !record.ends_with(b"\n") {
                    record.push(b'\r');
                }
                // A line break after the last segment: the next message starts a line.
                record.push(b'\n');
                file.write_all(&record)?;
            }
        }
        Ok(path)
    }

    fn sync(&self, appended: &HashSet<PathBuf>) -> std::io::Result<()> {
        for path in appended {
            File::open(path)?.sync_all()?;
        }
        File::open(&self.dir)?.sync_all()
    }
}

impl Destination for FileDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        self.deliver_batch(std::slice::from_ref(message), meta)
            .await
            .pop()
            .unwrap_or_else(|| Err(DeliveryError::transient("the message was not written")))
    }

    async fn deliver_batch(
        &mut self,
        batch: &[Outgoing],
        meta: &DeliveryMeta,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        // File system calls block; a batch runs on the blocking pool in one go.
        let self_ = self.clone();
        let batch = batch.to_vec();
        let meta = meta.clone();
        let written = tokio::task::spawn_blocking(move || {
            let this = self_;
            let (batch, meta) = (&batch, &meta);
            let mut results = Vec::with_capacity(batch.len());
            let mut appended = HashSet::new();
            for message in batch {
                match this.write(message, meta) {
                    Ok(path) => {
                        if this.mode == FileMode::Append {
                            appended.insert(path.clone());
                        }
                        results.push(Ok(path));
                    }
                    Err(err) => {
                        results.push(Err(DeliveryError::transient(format!(
                            "cannot write into {}: {err}",
                            this.dir.display()
                        ))));
                        break;
                    }
                }
            }
            if let Err(err) = this.sync(&appended) {
                let reason = format!("cannot sync {}: {err}", this.dir.display());
                return results
                    .into_iter()
                    .map(|_| Err(DeliveryError::transient(reason.clone())))
                    .collect();
            }
            results
        })
        .await
        .unwrap_or_else(|joined| {
            vec![Err(DeliveryError::transient(format!(
                "the file writer failed: {joined}"
            )))]
        });
        let answered_at = UnixMicros::now();
        written
            .into_iter()
            .map(|r| {
                r.map(|path| Delivered {
                    answer: format!("written to {}", path.display()),
                    answered_at,
                })
            })
            .collect()
    }
}

/// A file name with `{placeholders}`, checked when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Channel,
    Destination,
    MessageId,
    EntryId,
    ControlId,
    Date,
}

impl NameTemplate {
    /// Parses a template; unknown placeholders and path separators are refused.
    pub fn parse(text: &str) -> Result<NameTemplate, String> {
        if text.contains('/') || text.contains('\\') || text.is_empty() || text.starts_with('.') {
            return Err(format!(
                "`file_name` {text:?} must be a plain file name (no path separators, not hidden, not empty)"
            ));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`file_name` {text:?} has an unclosed `{{`"))?
                + open;
            parts.push(match &rest[open + 1..close] {
                "channel" => Part::Channel,
                "destination" => Part::Destination,
                "message_id" => Part::MessageId,
                "entry_id" => Part::EntryId,
                "control_id" => Part::ControlId,
                "date" => Part::Date,
                other => {
                    return Err(format!(
                        "`file_name` {text:?}: unknown placeholder {{{other}}} (known: channel, \
                         destination, message_id, entry_id, control_id, date)"
                    ));
                }
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(NameTemplate { parts })
    }

    /// The file name for `message`; values from the message are made safe for a file name.
    pub fn render(&self, message: &Outgoing, meta: &DeliveryMeta) -> String {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => name.push_str(text),
                Part::Channel => name.push_str(&safe(&meta.channel)),
                Part::Destination => name.push_str(&safe(&meta.destination)),
                Part::MessageId => name.push_str(&message.message_id.0.to_string()),
                Part::EntryId => name.push_str(&message.entry.0.to_string()),
                Part::ControlId => {
                    let id = hl7v2::Message::parse(&message.payload)
                        .map(|m| m.control_id().into_owned())
                        .unwrap_or_default();
                    name.push_str(&safe(&id));
                }
                Part::Date => name.push_str(&date_of(UnixMicros::now())),
            }
        }
        name
    }
}

/// Keeps letters, digits, `-`, `_` and `.`; anything else becomes `_`.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `YYYYMMDD` of a UTC time.
fn date_of(time: UnixMicros) -> String {
    datetime::hl7::format_date(time.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date_of(UnixMicros(0)), "19700101");
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(date_of(UnixMicros(1_709_208_000_000_000)), "20240229");
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let err = NameTemplate::parse("{channel}-{patient}.hl7").unwrap_err();
        assert!(err.contains("{patient}"), "{err}");
    }

    #[test]
    fn path_separators_are_refused() {
        assert!(NameTemplate::parse("../{message_id}.hl7").is_err());
    }
}

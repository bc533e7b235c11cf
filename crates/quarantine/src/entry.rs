//! A quarantine entry as the analyst sees it: its status, its summary and detail, and
//! what an edit or a reprocess hands back.

use std::str::FromStr;

use serde::Serialize;
use store::{MessageId, StoredMessage};

use crate::error::Error;
use crate::record::{FindingRecord, QuarantineId};

/// Where a quarantine entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for an analyst.
    Open,
    /// Sent back through its channel as a new journal message.
    Reprocessed,
    /// Set aside for good, with a reason.
    Discarded,
}

impl Status {
    /// The text stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Reprocessed => "reprocessed",
            Status::Discarded => "discarded",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(text: &str) -> Result<Status, Error> {
        match text {
            "open" => Ok(Status::Open),
            "reprocessed" => Ok(Status::Reprocessed),
            "discarded" => Ok(Status::Discarded),
            other => Err(Error::BadRequest(format!(
                "status {other:?}: expected \"open\", \"reprocessed\" or \"discarded\""
            ))),
        }
    }
}

/// A quarantine entry as listed: without the message, with its first errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub id: QuarantineId,
    /// The journal id of the quarantined message.
    pub message_id: i64,
    pub channel: String,
    /// MSH-3 as received.
    pub sending_application: String,
    /// MSH-4 as received.
    pub sending_facility: String,
    /// The first component of MSH-3, as data quality counts it.
    pub sender: String,
    /// MSH-9.1^MSH-9.2.
    pub message_type: String,
    /// MSH-10.
    pub control_id: String,
    /// Errors among the current findings.
    pub errors: i64,
    /// Warnings among the current findings.
    pub warnings: i64,
    /// When it was quarantined (µs since the epoch).
    pub quarantined_at: i64,
    /// Why it was quarantined (the validation summary).
    pub reason: String,
    pub status: Status,
    /// Who reprocessed or discarded it.
    pub status_by: Option<String>,
    /// Why it was discarded or reprocessed, as its analyst said.
    pub status_reason: Option<String>,
    pub status_changed_at: i64,
    /// How many times it was edited.
    pub edits: i64,
    /// The journal id of the message its reprocessing created.
    pub reprocessed_as: Option<i64>,
    /// The first few error findings of the current content.
    pub first_errors: Vec<FindingRecord>,
}

/// One edit of a quarantined message: both contents, who, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub id: i64,
    /// µs since the epoch.
    pub edited_at: i64,
    pub edited_by: String,
    pub reason: String,
    /// The content before this edit (the original message for the first edit).
    #[serde(serialize_with = "as_text")]
    pub previous: Vec<u8>,
    /// The content this edit wrote.
    #[serde(serialize_with = "as_text")]
    pub content: Vec<u8>,
    /// The findings of `content` when it was written.
    pub findings: Vec<FindingRecord>,
}

fn as_text<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(bytes))
}

/// Everything about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub summary: Summary,
    /// The findings of the current content, with their locations.
    pub findings: Vec<FindingRecord>,
    /// When they were found (µs).
    pub validated_at: i64,
    /// The journal's message, exactly as received (never changed by edits).
    pub original: StoredMessage,
    /// The current content: the last edit, or the original.
    pub content: Vec<u8>,
    /// Increases with every edit.
    pub revision: i64,
    /// Every edit, oldest first.
    pub history: Vec<Edit>,
    /// The quarantine entry whose reprocessing created this message, if any.
    pub reprocessed_from: Option<QuarantineId>,
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edited {
    pub id: QuarantineId,
    /// The id of the edit in the history.
    pub edit_id: i64,
    pub revision: i64,
    /// The findings of the new content.
    pub findings: Vec<FindingRecord>,
}

/// The result of reprocessing one entry.
#[derive(Debug)]
pub struct Reprocessed {
    pub id: QuarantineId,
    /// The new journal message, or why this entry was not reprocessed.
    pub result: Result<MessageId, Error>,
}

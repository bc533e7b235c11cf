//! What can go wrong with an analyst's operation.

use crate::entry::Status;
use crate::record::QuarantineId;

/// What went wrong with an analyst's operation, in words the analyst can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No quarantine entry has this id.
    #[error("quarantine entry {0} does not exist")]
    NotFound(QuarantineId),
    /// The entry was already reprocessed or discarded.
    #[error("quarantine entry {id} is {status}; only open entries can be changed")]
    NotOpen {
        /// The entry.
        id: QuarantineId,
        /// Its status.
        status: Status,
    },
    /// Someone edited the entry between reading and writing it.
    #[error("quarantine entry {0} was edited by someone else meanwhile; read it again")]
    EditedMeanwhile(QuarantineId),
    /// The entry's current content still has error findings.
    #[error(
        "quarantine entry {id} still has {errors} validation error(s); edit it, or revalidate \
         it if the profile changed, or reprocess with force"
    )]
    StillInvalid {
        /// The entry.
        id: QuarantineId,
        /// Its error findings.
        errors: i64,
    },
    /// The request lacks something or holds something unusable.
    #[error("{0}")]
    BadRequest(String),
    /// The new content is not an HL7 v2 message.
    #[error("the corrected message is not an HL7 v2 message: {0}")]
    NotHl7(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

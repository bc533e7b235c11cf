//! The master patient index: links the identities each sending system uses for a
//! patient to one enterprise patient, in real time, one record at a time.
//!
//! Each incoming [`PatientRecord`] is placed by [`Mpi::ingest`]:
//!
//! 1. **Deterministic**: another source record carrying the same identifier, qualified
//!    by assigning authority and type (never a bare number), links at once; so does the
//!    same SSN when birth date or family name corroborate it.
//! 2. **Probabilistic** (Fellegi-Sunter): blocking keys (name sounds with birth year or
//!    postcode, birth date with a name, initial or region, postcode with initials or
//!    street, SSN and its halves, phone) pick a few candidates; each
//!    field is compared at graded levels (exact, Jaro-Winkler, NYSIIS phonetic, transposed
//!    dates, one-digit errors, ...) whose weights `log2(m/u)` come from a [`MatchModel`]
//!    estimated on the data itself by EM, with exact name, city and postcode agreement
//!    weighted by how rare the value is.
//! 3. Two thresholds give the [`Outcome`]: link, possible match (queued for review) or a
//!    new enterprise patient. Each [`Decision`] carries its per-field weights.
//! 4. **Safety guards** ([`Guard`]): a pair that reached the link threshold (by score or
//!    SSN) still goes to review when its fields are the look-alikes Fellegi-Sunter
//!    cannot see, being not independent: a possible twin, birth dates decades apart, a
//!    different generational suffix, sex or identifier of one authority, or fewer than
//!    two identity fields besides the birth date agreeing. The guard is named in the
//!    decision, the event log and the review queue.
//!
//! People and messages can link, unlink, merge (ADT^A40/A34/A39) and unmerge; those
//! records are never moved by the matcher again. Every change is an [`MpiEvent`];
//! [`Mpi::replay`] rebuilds the index from them, which is how a store persists it.
//! [`Mpi::golden_record`] assembles one view per enterprise patient by
//! [`SurvivorshipRules`].
//!
//! ```
//! use mpi::{Identifier, MatchModel, MatcherConfig, Mpi, Outcome, PatientRecord};
//!
//! let mut index = Mpi::new(MatcherConfig::default(), MatchModel::default()).unwrap();
//! let mut lab = PatientRecord::new("LAB", "L-1001");
//! lab.given = Some("William".into());
//! lab.family = Some("Thompson".into());
//! lab.birth_date = Some("19800312".into());
//! lab.postcode = Some("2000".into());
//! lab.ssn = Some("123456789".into());
//! assert_eq!(index.ingest(lab).unwrap().outcome, Outcome::New);
//!
//! // The EHR spells the name differently and swaps day and month.
//! let mut ehr = PatientRecord::new("EHR", "E-77")
//!     .with_identifier(Identifier::new("E-77", "EHR", "MR"));
//! ehr.given = Some("Bill".into());
//! ehr.family = Some("Thomson".into());
//! ehr.birth_date = Some("19801203".into());
//! ehr.postcode = Some("2000".into());
//! ehr.ssn = Some("123456789".into());
//! let decision = index.ingest(ehr).unwrap();
//! assert_eq!(decision.outcome, Outcome::Link);
//! assert_eq!(index.members(decision.enterprise).len(), 2);
//! ```

mod compare;
mod events;
mod golden;
mod guard;
pub mod hl7;
mod index;
mod intern;
pub mod lookalike;
mod model;
mod patient_index;
pub mod patient_list;
pub mod persist;
mod record;
pub mod rng;
pub mod service;
pub mod synthetic;
pub mod text;

/// How authorities become FHIR identifier systems, shared with the FHIR conversion.
pub use v2_fhir::identity;

pub use compare::{FIELDS, Field};
pub use events::{
    Actor, Change, Decision, DecisionReason, EnterpriseId, EventSink, FieldWeight, LinkStatus,
    MatchExplanation, MpiEvent, Outcome,
};
pub use golden::{GOLDEN_FIELDS, GoldenRecord, Survivorship, SurvivorshipRules};
pub use guard::{CORROBORATING_FIELDS, GENERATION_YEARS, Guard, names_the_person};
pub use model::{FieldModel, MatchModel, TrainingOptions, TrainingReport};
pub use patient_index::{IndexStats, MatcherConfig, Mpi, ReviewItem, SsnRule};
pub use record::{Generation, Identifier, PatientRecord, Sex, SourceKey};
pub use service::{Applied, MpiConfig, MpiService, ServiceError};

/// What can go wrong when using the index; each names what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MpiError {
    #[error("a patient record needs a source system and a record id")]
    MissingKey,
    #[error("no source record {0} in the index")]
    UnknownRecord(SourceKey),
    #[error("no enterprise patient {0}")]
    UnknownEnterprise(EnterpriseId),
    #[error("no open review {0}")]
    UnknownReview(u64),
    #[error("event {0} is not a merge")]
    UnknownMerge(u64),
    #[error("the merge in event {0} was already undone")]
    AlreadyUndone(u64),
    #[error("cannot undo merge {merge_seq}: {record} has moved since; unlink or link it first")]
    UnmergeConflict { merge_seq: u64, record: SourceKey },
    #[error("enterprise patient {0} cannot be merged into itself")]
    SameEnterprise(EnterpriseId),
    #[error("source record {0} cannot be merged into itself")]
    SameRecord(SourceKey),
    #[error("source record {0} was already merged away")]
    AlreadyMerged(SourceKey),
    #[error("{0} is already linked to {1}")]
    AlreadyLinked(SourceKey, EnterpriseId),
    #[error("{0} is the only record of its enterprise patient: nothing to unlink")]
    NothingToUnlink(SourceKey),
    #[error("invalid match model: {0}")]
    InvalidModel(String),
    #[error("invalid matcher configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot replay the event log: {0}")]
    Replay(String),
}

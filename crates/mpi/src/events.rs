//! Decisions and the event log. Every change to the index is one [`MpiEvent`]; applying
//! the events in order rebuilds the index exactly ([`crate::Mpi::replay`]), so a store
//! only has to persist events to make the index durable.

use crate::compare::Field;
use crate::guard::Guard;
use crate::record::{Identifier, PatientRecord, SourceKey};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// An enterprise patient: the one person all linked source records belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnterpriseId(pub u64);

impl fmt::Display for EnterpriseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{}", self.0)
    }
}

/// What the matcher did with an incoming record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Linked to an existing enterprise patient.
    Link,
    /// Given its own enterprise patient for now and queued for a person's review.
    PossibleMatch,
    /// A new enterprise patient.
    New,
}

/// Where a source record stands now (the `status` column of an export).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkStatus {
    Linked,
    Review,
    New,
}

impl LinkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Linked => "linked",
            LinkStatus::Review => "review",
            LinkStatus::New => "new",
        }
    }
}

/// Who made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The automatic matcher.
    Matcher,
    /// A message, e.g. an ADT^A40, named by its control id.
    Message { control_id: String },
    /// A person, e.g. a reviewer in the web console.
    Person { user: String },
}

/// How one field weighed in a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldWeight {
    pub field: Field,
    /// The comparison level's name, e.g. `"day and month transposed"`.
    pub level: Cow<'static, str>,
    /// log2(m/u) of the level, term-frequency adjusted where it applies.
    pub weight: f64,
}

/// Why an incoming record scored what it did against one enterprise patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchExplanation {
    pub enterprise: EnterpriseId,
    /// The enterprise patient's source record that scored best.
    pub candidate: SourceKey,
    /// Sum of field weights (bits of evidence).
    pub score: f64,
    /// Posterior match probability, using the model's prior.
    pub match_probability: f64,
    pub fields: Vec<FieldWeight>,
    /// The guard that keeps this candidate from an automatic link although its score
    /// reached the link threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

/// What settled a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DecisionReason {
    /// Another source record carries the same qualified identifier.
    Identifier { identifier: Identifier },
    /// Qualified identifiers point at more than one enterprise patient.
    IdentifierConflict { identifier: Identifier },
    /// Same SSN, corroborated by birth date or family name.
    Ssn,
    /// The probabilistic score against the best candidate.
    Score {
        best: f64,
        link_threshold: f64,
        review_threshold: f64,
    },
    /// The best candidate reached the link threshold (by score or by SSN) but a safety
    /// guard holds, so a person decides.
    Guarded {
        guard: Guard,
        best: f64,
        link_threshold: f64,
        /// The guard holds between two candidates that both reached the threshold
        /// (twins a record without a given name matches alike), not between the
        /// record and its best candidate.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        between_candidates: bool,
    },
    /// No record shared a blocking key.
    NoCandidates,
}

/// The matcher's decision on one incoming record, kept in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub record: SourceKey,
    pub outcome: Outcome,
    pub enterprise: EnterpriseId,
    pub reason: DecisionReason,
    /// Best-scoring candidates, one per enterprise patient, best first (a few at most).
    pub candidates: Vec<MatchExplanation>,
    /// How many source records blocking put in front of the matcher.
    pub compared: usize,
    /// Other enterprise patients that also reached the link threshold: the record
    /// bridges them, so they are one patient (merged when
    /// `MatcherConfig::merge_bridged` is on and no person has decided on either).
    #[serde(default)]
    pub bridged: Vec<EnterpriseId>,
}

/// One change to the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A source record seen for the first time. A possible match opens review `seq`.
    RecordAdded {
        record: PatientRecord,
        decision: Decision,
    },
    /// A known source record sent again with new data; `decision` is present when the
    /// matcher re-examined it (only a record alone in its enterprise and never decided
    /// by a person is re-examined).
    RecordUpdated {
        record: PatientRecord,
        enterprise: EnterpriseId,
        decision: Option<Decision>,
    },
    /// All source records of `merged` moved into `survivor`; `retired` is the source
    /// record an A40 merged away, no longer matched against.
    EnterprisesMerged {
        survivor: EnterpriseId,
        merged: EnterpriseId,
        moved: Vec<SourceKey>,
        retired: Option<SourceKey>,
        /// Made by the matcher because one incoming record linked to both; such a merge
        /// does not pin the moved records, one by a person or message does.
        #[serde(default)]
        automatic: bool,
    },
    /// The merge recorded in event `merge_seq` undone.
    Unmerged {
        merge_seq: u64,
        survivor: EnterpriseId,
        merged: EnterpriseId,
        moved: Vec<SourceKey>,
        restored: Option<SourceKey>,
    },
    /// A person linked a source record to an enterprise patient.
    RecordLinked {
        record: SourceKey,
        from: EnterpriseId,
        to: EnterpriseId,
    },
    /// A person took a source record out of its enterprise patient into a new one.
    RecordUnlinked {
        record: SourceKey,
        from: EnterpriseId,
        to: EnterpriseId,
    },
    /// A reviewer accepted review `review` and linked its record to `to`.
    ReviewAccepted {
        review: u64,
        record: SourceKey,
        from: EnterpriseId,
        to: EnterpriseId,
    },
    /// A reviewer decided review `review`'s record is a patient of its own.
    ReviewRejected { review: u64, record: SourceKey },
}

/// One entry of the decision history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpiEvent {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    pub actor: Actor,
    /// Why, in words: a reviewer's note, the message's event type, or the rule that fired.
    pub why: String,
    pub change: Change,
}

impl MpiEvent {
    /// The enterprise patients this event touched.
    pub fn enterprises(&self) -> Vec<EnterpriseId> {
        match &self.change {
            Change::RecordAdded { decision, .. } => {
                let mut v = vec![decision.enterprise];
                v.extend(decision.candidates.iter().map(|c| c.enterprise));
                v
            }
            Change::RecordUpdated { enterprise, .. } => vec![*enterprise],
            Change::EnterprisesMerged {
                survivor, merged, ..
            }
            | Change::Unmerged {
                survivor, merged, ..
            } => vec![*survivor, *merged],
            Change::RecordLinked { from, to, .. }
            | Change::RecordUnlinked { from, to, .. }
            | Change::ReviewAccepted { from, to, .. } => vec![*from, *to],
            Change::ReviewRejected { .. } => vec![],
        }
    }
}

/// Receives every event as it happens, e.g. to persist it before the caller proceeds.
pub trait EventSink: Send {
    fn append(&mut self, event: &MpiEvent);
}

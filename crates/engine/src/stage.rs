//! The pipeline's extension point: one step of a channel's processing.
//!
//! After a source stores a message (journal state `received`) and acknowledges it, the
//! channel's pipeline runs its stages in order on a [`Work`], then routes what is left to
//! the destinations. A stage does its work outside any transaction and hands back what it
//! wants written as a [`Commit`]; every commit of a message, its new journal state and its
//! destination queue rows are written in ONE store write, so a crash leaves either all of
//! a message's processing or none of it.
//!
//! The order in a channel: `validate` (when it validates after the ACK), `mpi` (when the
//! patient index is on), `map` (`[channels.NAME.map]`), the channel's filters and
//! transformers, `fhir` (when the repository is on), `rules` (when the repository is on
//! and the rules are not turned off), then routing.

use std::sync::Arc;

use hl7v2::OwnedMessage;
use hl7v2_spec::validate::Finding;
use store::{MessageId, MessageState, UnixMicros};

/// One message as it moves through a channel's pipeline.
pub struct Work {
    /// Its journal id.
    pub id: MessageId,
    /// The channel (`[channels.NAME]`).
    pub channel: Arc<str>,
    /// When the source received it.
    pub received_at: UnixMicros,
    /// The current message; stages may change it.
    pub message: OwnedMessage,
    /// The enterprise patient id, set by the patient-index stage.
    pub enterprise_id: Option<String>,
    /// The FHIR transaction Bundle, set by the FHIR stage.
    pub fhir: Option<Arc<v2_fhir::Bundle>>,
    /// What validation found (warnings, when the message went on).
    pub findings: Vec<Finding>,
}

impl Work {
    /// A message about to enter the pipeline.
    pub fn new(
        id: MessageId,
        channel: Arc<str>,
        received_at: UnixMicros,
        message: OwnedMessage,
    ) -> Work {
        Work {
            id,
            channel,
            received_at,
            message,
            enterprise_id: None,
            fhir: None,
            findings: Vec::new(),
        }
    }

    /// The enterprise identifier to give the FHIR Patient: the patient index's id under
    /// its identifier `system`, when the index is on and linked the message.
    pub fn enterprise_identifier(&self, system: Option<&str>) -> Option<v2_fhir::Identifier> {
        Some(v2_fhir::Identifier {
            system: system?.to_owned(),
            value: self.enterprise_id.clone()?,
        })
    }
}

/// A write to run inside the one transaction that records the message as processed
/// (with its destination queue rows). Runs on the store's writer thread, in order.
pub type Commit = Box<dyn FnOnce(&rusqlite::Connection) -> store::Result<()> + Send>;

/// What a stage decided.
pub enum StageOutcome {
    /// Go on to the next stage; `commit`, if any, joins the processing transaction.
    Continue { commit: Option<Commit> },
    /// Stop here: the message ends in `state` (filtered, quarantined, errored) with
    /// `reason`; `commit`, if any, joins the same transaction.
    Stop {
        state: MessageState,
        reason: String,
        commit: Option<Commit>,
    },
}

impl StageOutcome {
    /// Go on, with nothing to write.
    pub fn proceed() -> StageOutcome {
        StageOutcome::Continue { commit: None }
    }

    /// The borrowed view of `bytes` (a stage's copy of [`Work::message`]); a message
    /// that no longer parses stops as `errored`, in `stage`'s words. The pipeline parsed
    /// it already, so this is a transformer's breakage, not the sender's.
    pub fn parse<'b>(bytes: &'b [u8], stage: &str) -> Result<hl7v2::Message<'b>, StageOutcome> {
        hl7v2::Message::parse(bytes).map_err(|error| StageOutcome::Stop {
            state: MessageState::Errored,
            reason: format!("{stage}: the message no longer parses: {error}"),
            commit: None,
        })
    }
}

/// One step of a channel's processing.
pub trait Stage: Send + Sync + 'static {
    /// Short name for reasons, metrics and logs (`"validate"`, `"mpi"`, `"fhir"`).
    fn name(&self) -> &str;

    /// Runs outside any transaction, one message at a time per ordering lane, in
    /// receive order within the lane. CPU work only: no blocking I/O beyond reads.
    fn run(&self, work: &mut Work) -> StageOutcome;
}

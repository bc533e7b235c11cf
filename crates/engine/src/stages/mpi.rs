//! The patient index stage (`[mpi] enabled = true`): every message with a PID feeds the
//! master patient index, in receive order within its lane.
//!
//! The PID becomes a source record (see `mpi::hl7`): A01, A04, A05, A08, A28, A31 and any
//! other message with a PID add or update it; A40, A34 and A39 merge the record MRG-1
//! names into it; A37 undoes that merge (or unlinks). The enterprise id lands in
//! `Work::enterprise_id` for transformers and the FHIR conversion, and the index's new
//! events are written in the transaction that records the message processed (with any
//! earlier events of the index not yet stored, so the log never has a hole).
//!
//! A message the index cannot use (no PID-3 identifier, or a merge that cannot be
//! undone any more) goes on without an enterprise id; the log says so without PHI.

use mpi::MpiService;

use crate::stage::{Stage, StageOutcome, Work};

/// Feeds one engine's patient index (shared by all channels).
pub struct MpiStage {
    service: MpiService,
}

impl MpiStage {
    pub fn new(service: MpiService) -> MpiStage {
        MpiStage { service }
    }
}

impl Stage for MpiStage {
    fn name(&self) -> &str {
        "mpi"
    }

    fn run(&self, work: &mut Work) -> StageOutcome {
        let bytes = work.message.to_bytes();
        let message = match StageOutcome::parse(&bytes, self.name()) {
            Ok(message) => message,
            Err(stop) => return stop,
        };
        let action = match mpi::hl7::action_of(&message) {
            Ok(Some(action)) => action,
            Ok(None) => return StageOutcome::proceed(),
            Err(error) => {
                tracing::warn!(message = ?work.id, channel = %work.channel, %error, "patient index skipped the message");
                return StageOutcome::proceed();
            }
        };
        let control_id = message.control_id().into_owned();
        let event = mpi::hl7::trigger_event(&message);
        let applied = self.service.apply_message(action, &control_id, &event);
        match applied.result {
            Ok(enterprise) => work.enterprise_id = Some(enterprise.to_string()),
            Err(_) => {
                // The error names source records (identifiers): not for the log.
                tracing::warn!(message = ?work.id, channel = %work.channel, trigger = %event, "patient index refused the message's merge or unmerge");
            }
        }
        // The commit writes every event the store lacks, not only this message's: another
        // channel's batch (or one rolled back) may hold earlier ones, and the stored log
        // must never have a hole (see `mpi::service`).
        let commit: Option<crate::stage::Commit> = (!applied.events.is_empty()).then(|| {
            let service = self.service.clone();
            Box::new(move |conn: &rusqlite::Connection| service.persist_in(conn))
                as crate::stage::Commit
        });
        StageOutcome::Continue { commit }
    }
}

//! The validate stage: for channels that validate after the ACK
//! (`[channels.NAME.validation] mode = "after_ack"`).
//!
//! Every message is validated against its HL7 version and the channel's profile (or its
//! sender's, by MSH-3) and counted in the data-quality counters, in the transaction that
//! processes it. A message with an error finding stops here in state `quarantined`, with
//! its findings in the quarantine where an analyst can edit and reprocess it; warnings
//! travel on in `Work::findings`.

use std::sync::Arc;

use quarantine::{ChannelValidation, Header, Validated};
use store::{MessageState, UnixMicros};

use crate::stage::{Stage, StageOutcome, Work};

/// Validates each message of one channel.
pub struct ValidateStage {
    validation: Arc<ChannelValidation>,
}

impl ValidateStage {
    /// The stage for a channel with these settings.
    pub fn new(validation: Arc<ChannelValidation>) -> ValidateStage {
        ValidateStage { validation }
    }
}

impl Stage for ValidateStage {
    fn name(&self) -> &str {
        "validate"
    }

    fn run(&self, work: &mut Work) -> StageOutcome {
        let bytes = work.message.to_bytes();
        let (header, findings) = match StageOutcome::parse(&bytes, self.name()) {
            Ok(message) => (Header::of(&message), self.validation.validate(&message)),
            Err(stop) => return stop,
        };
        let validated = Validated::new(&work.channel, header, &findings);
        work.findings = findings;
        let id = work.id;
        if validated.has_errors() {
            let reason = validated.reason();
            StageOutcome::Stop {
                state: MessageState::Quarantined,
                reason,
                commit: Some(Box::new(move |conn| {
                    quarantine::record_failure_in(conn, id, &validated, UnixMicros::now())
                        .map(|_| ())
                })),
            }
        } else {
            StageOutcome::Continue {
                commit: Some(Box::new(move |conn| {
                    quarantine::count_findings_in(conn, &validated, UnixMicros::now())
                })),
            }
        }
    }
}

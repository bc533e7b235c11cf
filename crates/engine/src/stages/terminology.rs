//! The map stage (`[channels.NAME.map]`): maps the channel's coded fields through the
//! terminology in force (see the `terminology` crate), normalises OBX-6 to UCUM and
//! converts values where the configuration asks.
//!
//! It runs after the patient index and before the channel's filters and transformers,
//! so they (and the FHIR conversion and the destinations) see the mapped codes, with the
//! original code kept as the alternate triplet (components 4 to 6).
//!
//! Each message reads the snapshot in force when it starts (`SharedTerminology`), so a
//! reload reaches the channel from its next message on, without a restart.
//!
//! Every code left unmapped is counted in `terminology_unmapped` (per sender, field and
//! code, with first and last seen and an example message id) in the transaction that
//! records the message processed. The policy decides what else happens:
//! `pass` goes on; `flag` goes on and counts the message's unmapped codes as warnings in
//! the data-quality counters; `quarantine` stops the message in the quarantine with one
//! error finding per code, where an analyst can reprocess it once a map covers the code.

use std::sync::Arc;

use hl7v2_spec::validate::{ErrorCode, Finding, FindingKind, Severity};
use quarantine::{Header, Validated};
use store::{MessageState, UnixMicros};
use terminology::{Decision, MapStep, MapStepConfig, SharedTerminology, UnmappedCode};

use crate::stage::{Commit, Stage, StageOutcome, Work};

/// Maps one channel's coded fields.
pub struct MapStage {
    step: MapStep,
    terminology: Arc<SharedTerminology>,
}

impl MapStage {
    /// The stage for `config` over the engine's shared terminology; an invalid value is
    /// an error naming its key (below `map.`).
    pub fn new(
        config: &MapStepConfig,
        terminology: Arc<SharedTerminology>,
    ) -> Result<MapStage, terminology::Error> {
        Ok(MapStage {
            step: MapStep::new(config)?,
            terminology,
        })
    }
}

/// One finding per unmapped code, without the code itself (no values in findings).
fn findings(codes: &[UnmappedCode], severity: Severity) -> Vec<Finding> {
    codes
        .iter()
        .map(|code| {
            let (segment, field) = code.field.split_once('-').unwrap_or((&code.field, "0"));
            Finding {
                kind: FindingKind::NotInTable,
                code: ErrorCode::TableValueNotFound,
                severity,
                path: code.field.clone(),
                segment_index: None,
                segment_id: segment.to_owned(),
                segment_sequence: None,
                field: Some(hl7v2_spec::validate::FieldPosition {
                    field: field.parse().unwrap_or(0),
                    repetition: 1,
                    component: 0,
                    subcomponent: 0,
                }),
                message: match code.reason {
                    terminology::UnmappedReason::UnknownUnit => {
                        format!(
                            "{}: a unit that is neither UCUM nor a known spelling",
                            code.field
                        )
                    }
                    _ => format!(
                        "{}: a code of system {} that no loaded map translates",
                        code.field, code.system
                    ),
                },
            }
        })
        .collect()
}

impl Stage for MapStage {
    fn name(&self) -> &str {
        "map"
    }

    fn run(&self, work: &mut Work) -> StageOutcome {
        let terminology = self.terminology.current();
        let outcome = self
            .step
            .apply_without_changes(&terminology, &mut work.message);
        if outcome.unmapped.is_empty() {
            return StageOutcome::proceed();
        }
        let id = work.id;
        let channel = work.channel.clone();
        let codes = outcome.unmapped;
        let severity = match outcome.decision {
            Decision::Continue => None,
            Decision::Flag => Some(Severity::Warning),
            Decision::Quarantine => Some(Severity::Error),
        };
        let validated = match severity {
            None => None,
            Some(severity) => {
                let bytes = work.message.to_bytes();
                let message = match StageOutcome::parse(&bytes, self.name()) {
                    Ok(message) => message,
                    Err(stop) => return stop,
                };
                Some(Validated::new(
                    &channel,
                    Header::of(&message),
                    &findings(&codes, severity),
                ))
            }
        };
        let quarantined = outcome.decision == Decision::Quarantine;
        let reason = format!(
            "map: {} code(s) without a mapping, the first in {}",
            codes.len(),
            codes[0].field
        );
        let commit: Commit = Box::new(move |conn| {
            let now = UnixMicros::now();
            terminology::stored::record_unmapped_in(conn, &channel, id.0, now.0, &codes)?;
            match validated {
                Some(v) if quarantined => {
                    quarantine::record_failure_in(conn, id, &v, now).map(|_| ())
                }
                Some(v) => quarantine::count_findings_in(conn, &v, now),
                None => Ok(()),
            }
        });
        if quarantined {
            StageOutcome::Stop {
                state: MessageState::Quarantined,
                reason,
                commit: Some(commit),
            }
        } else {
            StageOutcome::Continue {
                commit: Some(commit),
            }
        }
    }
}

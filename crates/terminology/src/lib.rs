//! Code systems, concept maps and units for Corridor.
//!
//! This crate loads FHIR `CodeSystem` and `ConceptMap` resources (JSON) and
//! CSV maps, translates codes through them (`$translate`, with FHIR's
//! equivalence), looks codes up and validates them, and maps the coded
//! fields of an HL7 v2 message in place ([`MapStep`]): the target code takes
//! components 1-3 and the original moves to 4-6, so nothing is lost. Codes
//! no map translates are reported, for the channel's policy (pass, flag,
//! quarantine) and for the [`UnmappedTally`] an analyst exports, fills in
//! and loads back. OBX-6 units are checked against UCUM and common
//! spellings normalised ([`units`]); values convert with exact decimals, the
//! original value and unit kept in an NTE after the OBX.
//!
//! Content is held in an immutable [`Terminology`] snapshot;
//! [`SharedTerminology::load`] swaps a new one in atomically, numbered, so a
//! reload reaches running channels from their next message on.
//!
//! [`stored`] keeps loads in the store, versioned, and the unmapped codes
//! channels met; [`TerminologyService`] puts the newest loads in force. It
//! knows nothing of HTTP or the engine.
//!
//! ```
//! use terminology::{Content, MapStep, MapStepConfig, SharedTerminology, concept_maps_from_csv};
//!
//! let csv = "source_system,source_code,target_system,target_code,target_display,equivalence\n\
//!            L,GLU,http://loinc.org,2345-7,Glucose SerPl-mCnc,equivalent\n";
//! let shared = SharedTerminology::new();
//! let version = shared.load(Content {
//!     concept_maps: concept_maps_from_csv("lab.csv", csv)?,
//!     ..Content::default()
//! });
//! assert_eq!(version, 1);
//!
//! let config: MapStepConfig = serde_json::from_str(r#"{"fields": ["OBX-3"], "unmapped": "flag"}"#).unwrap();
//! let step = MapStep::new(&config)?;
//! let mut message = hl7v2::OwnedMessage::parse(
//!     b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|1|P|2.5.1\rOBX|1|NM|GLU^Glucose^L||95|mg/dL\r",
//! ).unwrap();
//! let outcome = step.apply(&shared.current(), &mut message);
//! assert_eq!(
//!     message.get_text(&"OBX-3".parse().unwrap()).as_deref(),
//!     Some("2345-7^Glucose SerPl-mCnc^LN^GLU^Glucose^L"),
//! );
//! assert_eq!(outcome.decision, terminology::Decision::Continue);
//! # Ok::<(), terminology::Error>(())
//! ```

mod csv_map;
mod error;
mod fhir;
pub mod fhir_out;
mod model;
mod starter;
mod step;
pub mod stored;
mod systems;
mod terminology;
pub mod units;
mod unmapped;

pub use crate::terminology::{Content, Match, SharedTerminology, Terminology, Validity};
pub use csv_map::{HEADER, TALLY_COLUMNS, concept_maps_from_csv};
pub use error::{Error, Result};
pub use fhir::{code_system_from_json, concept_map_from_json};
pub use model::{
    CodeSystem, Coding, Concept, ConceptMap, Equivalence, Group, MapElement, MapScope, Scope,
    Target, UnmappedRule,
};
pub use starter::{LOINC_NOTICE, LOINC_STARTER_URL, loinc_starter_map};
pub use step::{
    Change, ConversionConfig, Decision, FieldPath, MapOutcome, MapStep, MapStepConfig,
    UnmappedCode, UnmappedPolicy, UnmappedReason,
};
pub use stored::{LoadFile, LoadRecord, StoredError, TerminologyService, UnmappedRow};
pub use systems::{canonical as canonical_system, v2_name as v2_system_name};
pub use unmapped::{TallyEntry, TallyKey, UnmappedTally};

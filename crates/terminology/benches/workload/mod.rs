//! The map step's workload, shared by the Criterion bench (`benches/map_step.rs`)
//! and the callgrind loop (`examples/map_step_loop.rs`), so both measure the same:
//! an ORU with ten coded OBX-3 fields (local codes mapped to LOINC through the
//! starter map) and their OBX-6 units normalised.

use std::sync::Arc;

use hl7v2::OwnedMessage;
use terminology::{
    Content, MapStep, MapStepConfig, SharedTerminology, Terminology, loinc_starter_map,
};

const CODES: [&str; 10] = [
    "GLU", "NA", "K", "CL", "CO2", "BUN", "CREAT", "CA", "WBC", "HGB",
];

fn message() -> Vec<u8> {
    let mut m = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102120000||ORU^R01|B1|P|2.5.1\r\
PID|1||123^^^HOSP^MR||DOE^JANE\r\
OBR|1||9999|CHEM^Chemistry^L\r"
        .to_vec();
    for (i, code) in CODES.iter().enumerate() {
        m.extend_from_slice(
            format!(
                "OBX|{}|NM|{code}^{code} test^L||{}|mg/dl|||||F\r",
                i + 1,
                90 + i
            )
            .as_bytes(),
        );
    }
    m
}

/// The step, the loaded terminology and the parsed message it runs on.
pub fn workload() -> (MapStep, Arc<Terminology>, OwnedMessage) {
    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: loinc_starter_map(),
        ..Content::default()
    });
    let config: MapStepConfig =
        serde_json::from_str(r#"{"fields": ["OBX-3"], "units": true, "unmapped": "flag"}"#)
            .expect("a valid configuration");
    let step = MapStep::new(&config).expect("a valid step");
    let original = OwnedMessage::parse(&message()).expect("a valid message");
    (step, shared.current(), original)
}

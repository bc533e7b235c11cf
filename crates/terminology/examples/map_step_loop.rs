//! The bench's message through the map step in a plain loop, for counting
//! instructions with callgrind (repeatable on a busy machine):
//!
//! cargo build --release -p terminology --example map_step_loop
//! valgrind --tool=callgrind target/release/examples/map_step_loop 1000

use std::hint::black_box;

use terminology::{Content, MapStep, MapStepConfig, SharedTerminology, loinc_starter_map};

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

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: loinc_starter_map(),
        ..Content::default()
    });
    let config: MapStepConfig =
        serde_json::from_str(r#"{"fields": ["OBX-3"], "units": true, "unmapped": "flag"}"#)
            .expect("a valid configuration");
    let step = MapStep::new(&config).expect("a valid step");
    let original = hl7v2::OwnedMessage::parse(&message()).expect("a valid message");
    let terminology = shared.current();
    for _ in 0..n {
        let mut m = original.clone();
        black_box(step.apply(&terminology, &mut m));
        black_box(m);
    }
}

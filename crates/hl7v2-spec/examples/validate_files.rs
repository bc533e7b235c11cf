//! Validates HL7 v2 files (one message per file) and prints one line per finding.
//! Usage: `cargo run -p hl7v2-spec --example validate_files -- FILE...`

use hl7v2_spec::Spec;
use hl7v2_spec::validate::{SplitMessage, ValidationOptions, validate_message};

fn main() {
    let options = ValidationOptions::default();
    let mut errors = 0;
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: cannot read: {e}");
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let Some(message) = SplitMessage::parse(&text) else {
            println!("{path}: not an HL7 v2 message (no MSH segment)");
            continue;
        };
        use hl7v2_spec::validate::MessageFields;
        let version = message
            .field(0, 12)
            .unwrap_or("")
            .split(message.separators().component)
            .next()
            .unwrap_or("");
        let Some(found) = Spec::nearest(version).or_else(|| Spec::nearest("2.5.1")) else {
            continue;
        };
        if let Some(note) = found.note() {
            println!("{path}: note: {note}");
        }
        let findings = validate_message(found.spec, &message, &options);
        for f in findings {
            if f.severity == hl7v2_spec::validate::Severity::Error {
                errors += 1;
            }
            println!("{path}: {:?}: {f}", f.severity);
        }
    }
    std::process::exit(if errors > 0 { 1 } else { 0 });
}

//! Prints the FHIR Bundle of every message in the files given, one JSON per
//! line: `cargo run -p v2-fhir --example to_fhir -- FILE...`.

use v2_fhir::{Converter, Options};

fn main() {
    let converter = Converter::new(Options::default());
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        for (n, item) in hl7v2::split_stream(&bytes).into_iter().enumerate() {
            if let hl7v2::StreamItem::Message { bytes, .. } = item {
                match hl7v2::Message::parse(bytes) {
                    Ok(m) => match converter.convert(&m) {
                        Ok(b) => println!("{path}#{}\t{}", n + 1, b.to_json_string()),
                        Err(e) => eprintln!("{path} message {}: {e}", n + 1),
                    },
                    Err(e) => eprintln!("{path} message {}: {e}", n + 1),
                }
            }
        }
    }
}

//! `corridor v2 [--application NAME] [--facility NAME] FILE.json...`: FHIR
//! R4 resources or Bundles to HL7 v2 messages.

use std::io::{Read, Write};
use std::process::ExitCode;

use v2_fhir::to_v2::{ToV2Options, now, to_v2};

/// What `corridor v2 --help` says after the options.
const OUTPUT_HELP: &str = "\
Makes HL7 v2.5.1 messages from FHIR R4 JSON, by the v2-to-FHIR guide's
mappings read backwards: a Patient is an ADT^A28 (created alone) or A31, an
Encounter an ADT^A01/A03/A08 (by its status), a DiagnosticReport and its
Observations an ORU^R01, a ServiceRequest an ORM^O01, a MedicationRequest
an RDE^O11, an Immunization a VXU^V04; each message carries its patient's
PID and its encounter's PV1. A Bundle made by `corridor fhir` gives its
message back.

A FILE holds one resource or Bundle, several (NDJSON, as `corridor fhir
--ndjson` writes) or a JSON array of them (as `corridor fhir` writes for
several messages).

Output: the messages, one segment per line. What has no place in v2 (a
resource no message carries, an element no field holds) is named on standard
error, one line each.

Exit status: 0 when every file was read; 1 when a file is not FHIR JSON
(named with the element at fault; the other files are still read); 2 on bad
usage.";

#[derive(clap::Args)]
#[command(after_help = OUTPUT_HELP)]
pub struct Args {
    /// MSH-3, the sending application.
    #[arg(long, value_name = "NAME", default_value = "CORRIDOR")]
    application: String,
    /// MSH-4, the sending facility.
    #[arg(long, value_name = "NAME", default_value = "")]
    facility: String,
    /// The base URI `corridor fhir` used for local identifier and code
    /// systems (their names come back as v2 authorities and systems).
    #[arg(long, value_name = "URI", default_value = "urn:corridor:id")]
    identifier_base: String,
    /// Files of FHIR JSON (a resource or a Bundle each; `-` for standard
    /// input).
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = ToV2Options {
        sending_application: args.application,
        sending_facility: args.facility,
        timestamp: now(),
        identifier_base: args.identifier_base.trim_end_matches('/').to_string(),
        control_id_start: None,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    // MSH-10 is `F`, MSH-7's digits without the century, the document's number
    // in this run and the message's in its document: unique across every file
    // of one run, and across runs a second apart.
    let stamp: String = options
        .timestamp
        .chars()
        .filter(char::is_ascii_digit)
        .skip(2)
        .take(12)
        .collect();
    let mut document_number = 0usize;
    for file in &args.files {
        let mut bytes = Vec::new();
        let read = if file == "-" {
            std::io::stdin().read_to_end(&mut bytes).map(|_| ())
        } else {
            std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
        };
        if let Err(error) = read {
            eprintln!("corridor: {file}: {error}");
            failed = true;
            continue;
        }
        // A file may hold one resource, several (NDJSON, as `corridor fhir
        // --ndjson` writes), or a JSON array of them (as `corridor fhir`
        // writes for several messages).
        let mut documents = Vec::new();
        for value in serde_json::Deserializer::from_slice(&bytes).into_iter::<serde_json::Value>() {
            match value {
                Ok(serde_json::Value::Array(items)) => documents.extend(items),
                Ok(value) => documents.push(value),
                Err(error) => {
                    eprintln!("corridor: {file}: not JSON: {error}");
                    failed = true;
                    break;
                }
            }
        }
        for (n, document) in documents.iter().enumerate() {
            let at = if documents.len() > 1 {
                format!("{file}#{}", n + 1)
            } else {
                file.clone()
            };
            document_number += 1;
            options.control_id_start = Some(format!("F{stamp}{document_number:03}"));
            let translation = match to_v2(document.to_string().as_bytes(), &options) {
                Ok(t) => t,
                Err(error) => {
                    eprintln!("corridor: {at}: not FHIR R4 this can read: {error}");
                    failed = true;
                    continue;
                }
            };
            for message in &translation.messages {
                for segment in message.split('\r').filter(|s| !s.is_empty()) {
                    out.write_all(segment.as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
            for issue in translation.outcome["issue"]
                .as_array()
                .into_iter()
                .flatten()
            {
                eprintln!(
                    "corridor: {at}: {}: {}",
                    issue["expression"][0].as_str().unwrap_or(""),
                    issue["diagnostics"].as_str().unwrap_or("")
                );
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

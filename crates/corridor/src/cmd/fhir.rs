//! `corridor fhir [--ndjson] [--zone ZONE] [--identifier-base URI] FILE|-`

use std::io::Write;
use std::process::ExitCode;

use hl7v2::Message;
use v2_fhir::{Converter, Options, Zone};

use crate::input::{Input, Piece, message_error, stray_error};

/// What `corridor fhir --help` says after the options.
const OUTPUT_HELP: &str = "\
Converts every message in FILE to a FHIR R4 transaction Bundle, following the
HL7 v2-to-FHIR implementation guide.

Output: a file with one message prints its Bundle as a JSON object; several
messages print a JSON array of Bundles, in file order; with --ndjson, one
Bundle per line (compact JSON), in file order. Every entry is a PUT Type/id
with a stable id derived from business identifiers, so loading the same
message twice (or an A08 after its A01) updates the same resources.

Supported: ADT (all events, A40 merges, A60 allergies), ORM^O01, OML, ORU^R01,
OUL, RDE^O11, RAS^O17, VXU^V04, SIU^S12-S26, MDM^T01-T11, DFT^P03, BAR, ACK.

Exit status: 0 when every message converted; 1 when a message cannot be read
or converted (reported on standard error with file, message number, line and
segment; the other messages are still printed); 2 on bad usage.";

#[derive(clap::Args)]
#[command(after_help = OUTPUT_HELP)]
pub struct Args {
    /// Print one Bundle per line (NDJSON) instead of JSON.
    #[arg(long)]
    ndjson: bool,
    /// Zone of times sent without an offset when MSH-7 has none either: an
    /// IANA name (America/Chicago, daylight saving applied) or a fixed offset
    /// (-05:00). Without it, such times are read as UTC and each Bundle's
    /// Provenance says so.
    #[arg(long, alias = "timezone", value_name = "ZONE", value_parser = parse_zone)]
    zone: Option<Zone>,
    /// Base URI for identifier systems of assigning authorities that are not
    /// OIDs or URIs, and for local code systems.
    #[arg(long, value_name = "URI", default_value = "urn:corridor:id")]
    identifier_base: String,
    /// The file to read, or `-` for standard input.
    file: String,
}

fn parse_zone(s: &str) -> Result<Zone, String> {
    s.parse::<Zone>().map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = Input::read(&args.file)?;
    let converter = Converter::new(Options {
        timezone: args.zone,
        identifier_base: args.identifier_base.trim_end_matches('/').to_string(),
        enterprise_identifier: None,
    });
    let mut bundles = Vec::new();
    let mut failed = false;
    let mut messages = 0;
    for piece in input.pieces() {
        let (number, bytes, line) = match piece {
            Piece::Message {
                number,
                bytes,
                line,
            } => (number, bytes, line),
            Piece::Stray { bytes, line } => {
                eprintln!("corridor: {}", stray_error(&input.name, line, bytes));
                failed = true;
                continue;
            }
        };
        messages += 1;
        let message = match Message::parse(bytes) {
            Ok(message) => message,
            Err(error) => {
                eprintln!(
                    "corridor: {}",
                    message_error(&input.name, number, line, &error)
                );
                failed = true;
                continue;
            }
        };
        match converter.convert(&message) {
            Ok(bundle) => bundles.push(bundle),
            Err(error) => {
                let at = error
                    .segment
                    .as_ref()
                    .map(|(index, name)| format!(", segment {index} ({name})"))
                    .unwrap_or_default();
                eprintln!(
                    "corridor: {}: message {number} (line {line}{at}): cannot convert to FHIR: {}",
                    input.name, error.kind
                );
                failed = true;
            }
        }
    }
    if messages == 0 {
        eprintln!(
            "corridor: {}: no HL7 v2 message in it (no line starts with MSH)",
            input.name
        );
        return Ok(ExitCode::from(1));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.ndjson {
        for bundle in &bundles {
            serde_json::to_writer(&mut out, bundle)?;
            out.write_all(b"\n")?;
        }
    } else if messages == 1 {
        if let Some(bundle) = bundles.first() {
            serde_json::to_writer_pretty(&mut out, bundle)?;
            out.write_all(b"\n")?;
        }
    } else {
        serde_json::to_writer_pretty(&mut out, &bundles)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

//! `corridor fhir [--ndjson|--resources|--coverage] [--progress] [--zone ZONE]
//! [--identifier-base URI] FILE...`

use std::io::Write;
use std::process::ExitCode;

use hl7v2::Message;
use v2_fhir::{Bundle, Converter, Options, Zone};

use crate::input::{Incoming, Progress, ReadSummary, for_each_message, message_error};
use crate::output::PrettyArray;

/// What `corridor fhir --help` says after the options.
const OUTPUT_HELP: &str = r#"Converts every message in the FILEs to a FHIR R4 transaction Bundle, following
the HL7 v2-to-FHIR implementation guide. Input is read and output written as
it goes, one message at a time, so memory stays the same whatever the size of
the input.

Output: one message prints its Bundle as a JSON object; several messages print
a JSON array of Bundles, in file order; with --ndjson, one Bundle per line
(compact JSON, the bulk-data convention); with --resources, one resource per
line (each entry's resource, compact JSON). Every entry is a PUT Type/id
with a stable id derived from business identifiers, so loading the same
message twice (or an A08 after its A01) updates the same resources.

Mapped message types: ADT (all events, A40 merges, A60 allergies), ORM^O01,
OML, OMG^O19, ORU^R01, OUL, RDE^O11/O25, RDS^O13, RAS^O17, VXU^V04,
SIU^S12-S26, MDM^T01-T11, DFT^P03, BAR, REF/RRI^I12-I15, PPR^PC1-PC3, ACK.
Any other type converts from the segments that have a map, with an
OperationOutcome entry naming the segments it left out.

With --coverage, instead of Bundles: one JSON line per message saying what
became of each segment and field: `mapped` (its value reaches the Bundle),
`skipped` (no map reads it, or it changes nothing in this message) or
`unknown` (a Z-segment), e.g.
  {"file":"a.hl7","message":1,"line":1,"type":"ADT^A01","converted":true,
   "mapped_fields":41,"skipped_fields":3,"segments":[{"position":2,
   "segment":"PID","status":"mapped","mapped":["PID-3",...],"skipped":[...]}]}
It converts each message once per field present, so it is slower than a
conversion.

Exit status: 0 when every message converted; 1 when a message cannot be read
or converted (reported on standard error with file, message number, line and
segment; the other messages are still printed); 2 on bad usage."#;

#[derive(clap::Args)]
#[command(after_help = OUTPUT_HELP)]
pub struct Args {
    /// Print one Bundle per line (NDJSON) instead of JSON.
    #[arg(long, conflicts_with = "resources")]
    ndjson: bool,
    /// Print one resource per line (NDJSON): every entry of every Bundle.
    #[arg(long, conflicts_with = "coverage")]
    resources: bool,
    /// Print, per message, which segments and fields were mapped, skipped
    /// or unknown (one JSON line per message) instead of the Bundles.
    #[arg(long, conflicts_with = "ndjson")]
    coverage: bool,
    /// Show progress on standard error (shown anyway when it is a terminal).
    #[arg(long)]
    progress: bool,
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
    /// Files to read (`-` for standard input); each may hold many messages
    /// and FHS/BHS batches.
    #[arg(required = true)]
    files: Vec<String>,
}

fn parse_zone(s: &str) -> Result<Zone, String> {
    s.parse::<Zone>().map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let converter = Converter::new(Options {
        timezone: args.zone.clone(),
        identifier_base: args.identifier_base.trim_end_matches('/').to_string(),
        enterprise_identifier: None,
    });
    if args.coverage {
        return coverage(&converter, &args);
    }
    let layout = if args.ndjson {
        Layout::BundlePerLine
    } else if args.resources {
        Layout::ResourcePerLine
    } else {
        Layout::Json
    };
    let stdout = std::io::stdout();
    let mut out = BundleWriter::new(layout, std::io::BufWriter::new(stdout.lock()));
    let mut progress = Progress::new(args.progress);
    let mut failed = false;
    let summary = for_each_message(&args.files, |incoming| {
        out.message_seen()?;
        match convert(&converter, &incoming) {
            Ok(bundle) => out.write(&bundle)?,
            Err(words) => {
                eprintln!("corridor: {words}");
                failed = true;
            }
        }
        progress.message_done();
        Ok(())
    })?;
    progress.finish();
    out.finish()?;
    Ok(exit_status(failed, &summary))
}

/// Names the files without messages; 1 when anything failed.
fn exit_status(failed: bool, summary: &ReadSummary) -> ExitCode {
    for file in &summary.without_messages {
        eprintln!("corridor: {file}: no HL7 v2 message in it (no line starts with MSH)");
    }
    if failed || summary.failed || !summary.without_messages.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--coverage`: one JSON line per message.
fn coverage(converter: &Converter, args: &Args) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut progress = Progress::new(args.progress);
    let mut failed = false;
    let summary = for_each_message(&args.files, |incoming| {
        let Incoming {
            file, number, line, ..
        } = incoming;
        match Message::parse(incoming.bytes) {
            Ok(message) => {
                let coverage = converter.coverage(&message);
                let (mapped, skipped) = coverage.field_counts();
                let report = serde_json::json!({
                    "file": file,
                    "message": number,
                    "line": line,
                    "type": coverage.message_type,
                    "converted": coverage.converted,
                    "mapped_fields": mapped,
                    "skipped_fields": skipped,
                    "segments": coverage.segments,
                });
                serde_json::to_writer(&mut out, &report)?;
                out.write_all(b"\n")?;
            }
            Err(error) => {
                eprintln!("corridor: {}", message_error(file, number, line, &error));
                failed = true;
            }
        }
        progress.message_done();
        Ok(())
    })?;
    progress.finish();
    out.flush()?;
    Ok(exit_status(failed, &summary))
}

/// The Bundle of one message, or the words that say why there is none.
fn convert(converter: &Converter, incoming: &Incoming<'_>) -> Result<Bundle, String> {
    let Incoming {
        file, number, line, ..
    } = *incoming;
    let message = Message::parse(incoming.bytes)
        .map_err(|error| message_error(file, number, line, &error))?;
    converter.convert(&message).map_err(|error| {
        let at = error
            .segment
            .as_ref()
            .map(|(index, name)| format!(", segment {index} ({name})"))
            .unwrap_or_default();
        format!(
            "{file}: message {number} (line {line}{at}): cannot convert to FHIR: {}",
            error.kind
        )
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One message: its Bundle as an object; several: an array of Bundles.
    Json,
    BundlePerLine,
    ResourcePerLine,
}

/// Writes Bundles as they come. For [`Layout::Json`], whether the output is
/// an object or an array is known only at the second message, so the first
/// Bundle waits until then.
struct BundleWriter<W: Write> {
    layout: Layout,
    out: W,
    messages: usize,
    waiting: Option<Vec<u8>>,
    array: PrettyArray,
}

impl<W: Write> BundleWriter<W> {
    fn new(layout: Layout, out: W) -> BundleWriter<W> {
        BundleWriter {
            layout,
            out,
            messages: 0,
            waiting: None,
            array: PrettyArray::default(),
        }
    }

    /// Counts a message, converted or not (several messages make an array
    /// even when only one converted, as they always have).
    fn message_seen(&mut self) -> std::io::Result<()> {
        self.messages += 1;
        if self.layout == Layout::Json && self.messages == 2 {
            self.array.open(&mut self.out)?;
            if let Some(first) = self.waiting.take() {
                self.array.push_pretty(&mut self.out, &first)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, bundle: &Bundle) -> anyhow::Result<()> {
        match self.layout {
            Layout::BundlePerLine => {
                serde_json::to_writer(&mut self.out, bundle)?;
                self.out.write_all(b"\n")?;
            }
            Layout::ResourcePerLine => {
                for entry in bundle.entries() {
                    serde_json::to_writer(&mut self.out, &entry.resource)?;
                    self.out.write_all(b"\n")?;
                }
            }
            Layout::Json if self.messages == 1 => {
                self.waiting = Some(serde_json::to_vec_pretty(bundle)?);
            }
            Layout::Json => self.array.push(&mut self.out, bundle)?,
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        match (self.layout, self.messages) {
            (Layout::Json, 1) => {
                if let Some(only) = self.waiting.take() {
                    self.out.write_all(&only)?;
                    self.out.write_all(b"\n")?;
                }
            }
            (Layout::Json, 2..) => self.array.close(&mut self.out)?,
            _ => {}
        }
        self.out.flush()
    }
}

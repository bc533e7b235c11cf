//! `corridor validate [--version V] [--profile FILE] [--strict] [--json] FILE...`

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use hl7v2_spec::validate::{self, Profile, Severity, ValidationOptions};
use serde_json::json;

use crate::input::{for_each_message, message_error};
use crate::output::PrettyArray;

/// Validates every message of the files against its HL7 version's message
/// structure, segment and data type definitions, and optionally a profile:
/// an HL7 v2 XML conformance profile (the format NIST and IGAMT publish) or
/// a TOML profile (required paths, allowed values, value sets, patterns,
/// Z-segments, severities). Prints one line per finding:
/// `FILE: message N: PATH: error|warning: WORDS (CODE)`, where PATH is the
/// group path (`ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBX[3]-5`) and
/// CODE the HL7 table 0357 code. Exits 1 when any message has an error or
/// cannot be parsed, 0 otherwise (warnings alone do not fail).
#[derive(clap::Args)]
pub struct Args {
    /// Validate as this HL7 version instead of the one in MSH-12.
    #[arg(long)]
    version: Option<String>,
    /// A profile that tightens or relaxes the standard.
    #[arg(long)]
    profile: Option<String>,
    /// Report empty required fields and values outside HL7 tables as errors
    /// (by default they are warnings, as real senders often omit them).
    #[arg(long)]
    strict: bool,
    /// Print a JSON array, one object per message with its findings.
    #[arg(long)]
    json: bool,
    /// Files to read (`-` for standard input); each may hold many messages.
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = match &args.profile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the profile {path}"))?;
            // An HL7 v2 XML conformance profile (NIST, IGAMT) or our TOML form.
            let loaded = if text.trim_start().starts_with('<') {
                Profile::from_conformance_xml(&text)
            } else {
                Profile::from_toml(&text)
            };
            Some(loaded.map_err(|e| anyhow::anyhow!("{path}: {}", e.0))?)
        }
        None => None,
    };
    let options = if args.strict {
        ValidationOptions::strict()
    } else {
        ValidationOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let mut json_out = PrettyArray::default();
    let summary = for_each_message(&args.files, |incoming| {
        let (file, number, line) = (incoming.file, incoming.number, incoming.line);
        let message = match hl7v2::Message::parse(incoming.bytes) {
            Ok(m) => m,
            Err(error) => {
                failed = true;
                if args.json {
                    json_out.push(
                        &mut out,
                        &json!({"file": file, "message": number, "line": line, "error": error.to_string()}),
                    )?;
                } else {
                    writeln!(out, "{}", message_error(file, number, line, &error))?;
                }
                return Ok(());
            }
        };
        let found = validate::spec_for(&message, args.version.as_deref());
        let findings = match &profile {
            Some(p) => p.validate(found.spec, &message, &options),
            None => validate::validate_message(found.spec, &message, &options),
        };
        failed |= findings.iter().any(|f| f.severity == Severity::Error);
        if args.json {
            return json_out.push(
                &mut out,
                &json!({
                    "file": file,
                    "message": number,
                    "line": line,
                    "version": found.spec.version(),
                    "note": found.note(),
                    "findings": findings,
                }),
            );
        }
        if let Some(note) = found.note() {
            eprintln!("corridor: {file}: message {number}: {note}");
        }
        for f in &findings {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(
                out,
                "{file}: message {number}: {}: {severity}: {} ({})",
                f.path,
                f.message,
                f.code.code()
            )?;
        }
        Ok(())
    })?;
    if args.json {
        json_out.close(&mut out)?;
    }
    out.flush()?;
    Ok(if failed || summary.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

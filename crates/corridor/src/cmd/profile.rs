//! `corridor profile [--json] [--html FILE] [--suggest-profile FILE] FILE...`: what a
//! feed contains (see the `profile` crate), for onboarding a sender.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::input::for_each_message;

#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the report as an HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write a TOML conformance profile (for `corridor validate --profile` and a
    /// channel's validation) describing what the feed sends.
    #[arg(long, value_name = "FILE")]
    suggest_profile: Option<PathBuf>,
    /// Leave out validation against the standard (faster).
    #[arg(long)]
    no_validate: bool,
    /// Check coded fields against the starter LOINC map and these code maps or code
    /// systems (FHIR JSON, CSV maps, the LOINC table); without it, no unmapped codes.
    #[arg(long, value_name = "FILE")]
    terminology: Vec<PathBuf>,
    /// Files of messages (`-` for standard input).
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let terminology = if args.terminology.is_empty() {
        None
    } else {
        let mut content = terminology::Content {
            concept_maps: terminology::loinc_starter_map(),
            ..terminology::Content::default()
        };
        for path in &args.terminology {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let (_, more) = terminology::stored::parse_file(
                &path.display().to_string(),
                &text,
                &terminology::MapScope::everywhere(),
            )?;
            content.code_systems.extend(more.code_systems);
            content.concept_maps.extend(more.concept_maps);
        }
        Some(std::sync::Arc::new(terminology::Terminology::new(
            1,
            content.code_systems,
            content.concept_maps,
        )))
    };
    let mut profiler = profile::Profiler::new(
        profile::Options {
            validate: !args.no_validate,
            ..profile::Options::default()
        },
        terminology,
    );
    for_each_message(&args.files, |incoming| {
        profiler.add(incoming.bytes);
        Ok(())
    })?;
    let report = profiler.report();
    if let Some(path) = &args.html {
        std::fs::write(path, report.to_html())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.suggest_profile {
        let name = args.files.join(", ");
        std::fs::write(
            path,
            profiler.suggest_profile(&format!("profile of {name}")),
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_text(out: &mut impl Write, r: &profile::Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{} messages ({} did not parse)",
        r.messages, r.unparsed
    )?;
    let line = |out: &mut dyn Write, title: &str, map: &std::collections::BTreeMap<String, u64>| {
        let items: Vec<String> = map.iter().map(|(k, v)| format!("{k} ({v})")).collect();
        writeln!(out, "{title}: {}", items.join(", "))
    };
    line(out, "message types", &r.message_types)?;
    line(out, "versions", &r.versions)?;
    line(out, "delimiters", &r.delimiters)?;
    line(out, "character sets", &r.character_sets)?;
    if !r.z_segments.is_empty() {
        writeln!(out, "Z-segments: {}", r.z_segments.join(", "))?;
    }
    for s in &r.segments {
        writeln!(
            out,
            "\n{}: {} occurrences in {} messages",
            s.id, s.occurrences, s.messages
        )?;
        for f in &s.fields {
            let top: Vec<String> = f
                .top_values
                .iter()
                .map(|(v, c)| format!("{v} ({c})"))
                .collect();
            let formats: Vec<String> = f.formats.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(
                out,
                "  {:<8} {:<6} {:>5.1}%  distinct {}{}  length {}-{}  {}{}",
                f.path,
                f.data_type.as_deref().unwrap_or("-"),
                f.populated_percent,
                f.distinct,
                if f.distinct_capped { "+" } else { "" },
                f.min_length,
                f.max_length,
                formats.join(", "),
                if top.is_empty() {
                    String::new()
                } else {
                    format!("  top: {}", top.join(", "))
                }
            )?;
        }
    }
    if !r.unmapped.is_empty() {
        writeln!(out, "\ncodes without a mapping:")?;
        for u in &r.unmapped {
            writeln!(
                out,
                "  {} {} {}^{} ({})",
                u.sender, u.field, u.code, u.system, u.count
            )?;
        }
    }
    if !r.deviations.is_empty() {
        writeln!(out, "\ndeviations from the standard:")?;
        for d in &r.deviations {
            writeln!(out, "  {} {} {} ({})", d.severity, d.kind, d.path, d.count)?;
        }
    }
    Ok(())
}

//! `corridor audit verify|export`: checks the audit trail's hash chain, and writes its
//! records as JSON or CSV.

use std::io::Write;
use std::process::ExitCode;

use access::audit::{Audit, ExportFormat, parse_since};

use super::data_dir::DataDirArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 naming the first record edited, deleted or moved.
    Verify {
        #[command(flatten)]
        data: DataDirArgs,
    },
    /// Write the records since a time to standard output.
    Export {
        #[command(flatten)]
        data: DataDirArgs,
        /// RFC 3339 time (2026-01-31T08:00:00Z) or date (2026-01-31, midnight UTC).
        #[arg(long, value_name = "T", value_parser = parse_since)]
        since: i64,
        /// json (an array) or csv (with a header row).
        #[arg(long, default_value = "json", value_parser = parse_format)]
        format: ExportFormat,
    },
}

fn parse_format(text: &str) -> Result<ExportFormat, String> {
    match text {
        "json" => Ok(ExportFormat::Json),
        "csv" => Ok(ExportFormat::Csv),
        _ => Err(format!("unknown format {text:?}: use json or csv")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { data } => {
            let audit = Audit::open_blocking(data.open_store()?)?;
            let verification = audit.verify()?;
            match verification.broken {
                None => {
                    println!("{} audit records, chain intact", verification.records);
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("{broken}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Export {
            data,
            since,
            format,
        } => {
            let audit = Audit::open_blocking(data.open_store()?)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let count = audit.export(since, format, &mut out)?;
            out.flush()?;
            eprintln!("{count} audit records written");
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! `corridor get FILE|- PATH...`

use std::io::Write;
use std::process::ExitCode;

use crate::input::{Input, Piece, message_error, stray_error};

/// Prints the value at each PATH for every message in FILE: one line per
/// message and path, in that order. Values are unescaped; a path without a
/// repetition means the first (`PID-3` is PID-3's first repetition, with its
/// component separators); a path without a field prints the whole segment.
/// Absent values print an empty line, and so does every path of a message
/// that cannot be parsed (its error goes to standard error and the exit
/// status is 1). Line breaks inside a value are printed as `\n`.
#[derive(clap::Args)]
pub struct Args {
    /// The file to read, or `-` for standard input. It may hold many
    /// messages and FHS/BHS batches.
    file: String,
    /// Paths such as `PID-5.1`, `PID-3[2].1`, `OBX[3]-5`, `MSH-9.2`.
    #[arg(required = true, value_parser = parse_path)]
    paths: Vec<hl7v2::Path>,
}

fn parse_path(text: &str) -> Result<hl7v2::Path, String> {
    text.parse().map_err(|e: hl7v2::Error| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = Input::read(&args.file)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut failed = false;
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
        match hl7v2::Message::parse(bytes) {
            Ok(message) => {
                for path in &args.paths {
                    write_value(&mut out, &message, path)?;
                }
            }
            Err(error) => {
                eprintln!(
                    "corridor: {}",
                    message_error(&input.name, number, line, &error)
                );
                failed = true;
                for _ in &args.paths {
                    out.write_all(b"\n")?;
                }
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

fn write_value(
    out: &mut impl Write,
    message: &hl7v2::Message<'_>,
    path: &hl7v2::Path,
) -> std::io::Result<()> {
    if path.field.is_none() {
        if let Some(segment) = message.find_segment(path.segment.as_bytes(), path.occurrence) {
            out.write_all(segment.as_bytes())?;
        }
        return out.write_all(b"\n");
    }
    if let Some(value) = message.get(path) {
        let text = value.text();
        if text.contains(['\r', '\n']) {
            out.write_all(
                text.replace("\r\n", "\\n")
                    .replace(['\r', '\n'], "\\n")
                    .as_bytes(),
            )?;
        } else {
            out.write_all(text.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

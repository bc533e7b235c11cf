//! `corridor get FILE... PATH...`

use std::io::Write;
use std::process::ExitCode;

use crate::input::{for_each_message, message_error};

/// What `corridor get --help` says after the arguments.
const OUTPUT_HELP: &str = "\
Prints the value at each PATH for every message in the FILEs: one line per
message and path, in that order. Values are unescaped; a path without a
repetition means the first (PID-3 is PID-3's first repetition, with its
component separators); a path without a field prints the whole segment.
Absent values print an empty line, and so does every path of a message that
cannot be parsed (its error goes to standard error and the exit status is 1).
Line breaks inside a value are printed as \\n.

[*] selects every occurrence or repetition: OBX[*]-5 is OBX-5 of every OBX,
PID-3[*].1 the first component of every PID-3 repetition. Such a path prints
one line per value it selects, in message order, and no line when it selects
none.

The PATHs are the arguments at the end that read as paths; every argument
before them is a FILE (- for standard input), so `corridor get nist/*.hl7
MSH-10 PID-3.1` reads every file. A file whose name reads as a path is given
as ./PID-3. Each file may hold many messages and FHS/BHS batches; it is read
in chunks, each message printed as it is read.

Exit status: 0 when every message was read; 1 when a file cannot be read or
holds something that is not a message; 2 on bad usage.";

#[derive(clap::Args)]
#[command(override_usage = "corridor get FILE... PATH...", after_help = OUTPUT_HELP)]
pub struct Args {
    /// Files to read (each may hold many messages and FHS/BHS batches), then
    /// paths such as `PID-5.1`, `PID-3[2].1`, `OBX[3]-5`, `MSH-9.2`, `OBX[*]-5`.
    #[arg(required = true, num_args = 2.., value_name = "FILE|PATH")]
    arguments: Vec<String>,
}

/// Splits the arguments into files and the paths at the end, or says why
/// they are not a valid command.
fn files_and_paths(arguments: &[String]) -> Result<(&[String], Vec<hl7v2::Path>), String> {
    let files = arguments
        .iter()
        .rposition(|argument| argument.parse::<hl7v2::Path>().is_err())
        .map_or(0, |last_file| last_file + 1);
    let Some(last) = arguments.last() else {
        return Err("a FILE and a PATH are needed".into());
    };
    if files == arguments.len() {
        let why = last
            .parse::<hl7v2::Path>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(format!("the last argument must be a PATH: {why}"));
    }
    if files == 0 {
        return Err(format!(
            "no FILE before the paths (use `-` for standard input, `./{}` for a file named like a path)",
            arguments[0]
        ));
    }
    let paths = arguments[files..]
        .iter()
        .filter_map(|argument| argument.parse().ok())
        .collect();
    Ok((&arguments[..files], paths))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (files, paths) = match files_and_paths(&args.arguments) {
        Ok(split) => split,
        Err(why) => {
            eprintln!("corridor get: {why}");
            return Ok(ExitCode::from(2));
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut failed = false;
    let summary = for_each_message(files, |incoming| {
        match hl7v2::Message::parse(incoming.bytes) {
            Ok(message) => {
                for path in &paths {
                    write_value(&mut out, &message, path)?;
                }
            }
            Err(error) => {
                let words = message_error(incoming.file, incoming.number, incoming.line, &error);
                eprintln!("corridor: {words}");
                failed = true;
                for _ in &paths {
                    out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(if failed || summary.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the lines of one path in one message: for a plain path exactly
/// one (empty when absent), for a `[*]` path one per value it selects.
fn write_value(
    out: &mut impl Write,
    message: &hl7v2::Message<'_>,
    path: &hl7v2::Path,
) -> std::io::Result<()> {
    if path.field.is_none() {
        let mut segments = path.segments_in(message).peekable();
        if segments.peek().is_none() && !path.selects_many() {
            return out.write_all(b"\n");
        }
        for segment in segments {
            out.write_all(segment.as_bytes())?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    let values = path.values_in(message);
    if values.is_empty() && !path.selects_many() {
        return out.write_all(b"\n");
    }
    for value in values {
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
        out.write_all(b"\n")?;
    }
    Ok(())
}

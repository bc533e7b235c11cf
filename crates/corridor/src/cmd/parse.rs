//! `corridor parse [--json] FILE...`

use std::io::Write;
use std::process::ExitCode;

use hl7v2::{Element, Message, Segment};
use hl7v2_spec::{Spec, VersionSpec};
use serde_json::{Value, json};

use crate::input::{for_each_message, message_error};
use crate::output::PrettyArray;

/// Prints every message in the FILEs as a tree: each segment with its name, and
/// each non-empty field with its number, its name in the message's HL7
/// version and its value, then its repetitions and components when it has
/// more than one.
///
/// With --json, prints a JSON array with one object per message:
/// `{"message": 1, "line": 1, "segments": [{"name": "PID", "fields": [...]}]}`
/// where `fields[i]` is field i+1 (for MSH, `fields[0]` is MSH-1), each field
/// is a list of repetitions, each repetition a list of components and each
/// component a list of subcomponents, all as unescaped strings. A message
/// that cannot be parsed appears as `{"message": n, "line": l, "error": "..."}`.
/// Objects carry `"file"` too when several files are read, and so does the
/// first line of each message's tree. Messages are
/// printed as they are read, so a large file is never held whole.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of a tree.
    #[arg(long)]
    json: bool,
    /// Files to read (`-` for standard input); each may hold many messages.
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let several_files = args.files.len() > 1;
    let mut array = PrettyArray::default();
    let summary = for_each_message(&args.files, |incoming| {
        let (number, line) = (incoming.number, incoming.line);
        let mut json = match Message::parse(incoming.bytes) {
            Ok(message) if args.json => message_json(number, line, &message),
            Ok(message) => {
                let file = several_files.then_some(incoming.file);
                return Ok(write_tree(&mut out, file, number, &message)?);
            }
            Err(error) => {
                let words = message_error(incoming.file, number, line, &error);
                eprintln!("corridor: {words}");
                failed = true;
                if !args.json {
                    return Ok(());
                }
                json!({"message": number, "line": line, "error": error.to_string()})
            }
        };
        if several_files {
            json["file"] = incoming.file.into();
        }
        array.push(&mut out, &json)
    })?;
    if args.json {
        array.close(&mut out)?;
    }
    out.flush()?;
    Ok(if failed || summary.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes one message's tree, its first line naming the file when several
/// are read (message numbers count within each file).
fn write_tree(
    out: &mut impl Write,
    file: Option<&str>,
    number: usize,
    message: &Message<'_>,
) -> std::io::Result<()> {
    if let Some(file) = file {
        write!(out, "{file}: ")?;
    }
    let version = message.version();
    let spec = Spec::nearest(&version).map(|m| m.spec);
    let message_type = message.get_str("MSH-9").ok().flatten().unwrap_or_default();
    writeln!(
        out,
        "message {number}: {message_type}, version {}, control id {}, {} segments",
        if version.is_empty() { "?" } else { &version },
        message.control_id(),
        message.len()
    )?;
    for segment in message.segments() {
        write_segment(out, &segment, spec)?;
    }
    writeln!(out)
}

fn write_segment(
    out: &mut impl Write,
    segment: &Segment<'_>,
    spec: Option<&VersionSpec>,
) -> std::io::Result<()> {
    let name = segment.name_str();
    let definition = spec.and_then(|s| s.segment(name));
    match definition.map(|d| d.name).filter(|n| !n.is_empty()) {
        Some(long) => writeln!(out, "{name}  {long}")?,
        None => writeln!(out, "{name}")?,
    }
    for (n, field) in (1..).zip(segment.fields()) {
        if field.is_empty() {
            continue;
        }
        let field_def = definition.and_then(|d| d.field(n));
        let label = format!("{name}-{n}");
        let field_name = field_def.map_or("", |f| f.name);
        writeln!(out, "  {label:<9} {field_name:<40} {}", field.text())?;
        let repetitions: Vec<Element<'_>> = field.children().collect();
        let components = |rep: &Element<'_>| rep.children().count();
        if repetitions.len() == 1 && components(&repetitions[0]) == 1 {
            continue;
        }
        let datatype = field_def.and_then(|f| spec?.datatype(f.data_type));
        for (r, repetition) in (1..).zip(&repetitions) {
            if repetitions.len() > 1 {
                writeln!(out, "    {label}[{r}]  {}", repetition.text())?;
            }
            if components(repetition) == 1 {
                continue;
            }
            for (c, component) in (1..).zip(repetition.children()) {
                if component.is_empty() {
                    continue;
                }
                let component_name = datatype.and_then(|d| d.component(c)).map_or("", |d| d.name);
                writeln!(
                    out,
                    "      .{c:<3} {component_name:<38} {}",
                    component.text()
                )?;
            }
        }
    }
    Ok(())
}

fn message_json(number: usize, line: usize, message: &Message<'_>) -> Value {
    let segments: Vec<Value> = message
        .segments()
        .map(|segment| {
            let fields: Vec<Value> = segment
                .fields()
                .map(|field| {
                    Value::Array(
                        field
                            .children()
                            .map(|rep| {
                                Value::Array(
                                    rep.children()
                                        .map(|comp| {
                                            Value::Array(
                                                comp.children()
                                                    .map(|sub| {
                                                        Value::String(sub.text().into_owned())
                                                    })
                                                    .collect(),
                                            )
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    )
                })
                .collect();
            json!({"name": segment.name_str(), "fields": fields})
        })
        .collect();
    json!({"message": number, "line": line, "segments": segments})
}

//! Reading the messages of files (or standard input) for the commands that
//! take `FILE...`.
//!
//! [`for_each_message`] reads in bounded chunks and hands each message on as
//! soon as it is complete, so a command holds one message at a time however
//! large its input. [`Input`] reads a whole file, for `corridor send`, which
//! keeps every message to send them in turn.

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use anyhow::Context;
use hl7v2::{StreamItem, StreamSplitter};

/// How much is read at a time.
const CHUNK: usize = 64 * 1024;

/// The longest message read: a file with no line break, or lines that never
/// reach an MSH, is refused here rather than held until memory runs out.
const LONGEST_MESSAGE: usize = 256 << 20;

/// The name a file is reported by.
pub fn display_name(path: &str) -> &str {
    if path == "-" { "<stdin>" } else { path }
}

/// One message of an input, with where it came from.
pub struct Incoming<'a> {
    /// The file, as [`display_name`] names it.
    pub file: &'a str,
    /// 1-based, counted within its file.
    pub number: usize,
    /// The line its MSH is on.
    pub line: usize,
    pub bytes: &'a [u8],
}

/// What reading the inputs came to.
#[derive(Default)]
pub struct ReadSummary {
    /// A file could not be read, or had lines outside any message (both
    /// already reported on standard error).
    pub failed: bool,
    /// The files (display names) in which no message was found.
    pub without_messages: Vec<String>,
}

/// Reads each of `files` in turn (`-` is standard input) and hands every
/// message to `each`, in order. Lines that belong to no message and files
/// that cannot be read are reported on standard error, naming the file and
/// line, and the rest is still read. An error from `each` (output that
/// cannot be written) stops reading and is returned.
pub fn for_each_message(
    files: &[String],
    mut each: impl FnMut(Incoming<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<ReadSummary> {
    let mut summary = ReadSummary::default();
    for path in files {
        let name = display_name(path);
        let mut messages = 0;
        let read = if path == "-" {
            read_messages(
                std::io::stdin().lock(),
                name,
                LONGEST_MESSAGE,
                &mut messages,
                &mut summary,
                &mut each,
            )
        } else {
            match std::fs::File::open(path) {
                Ok(file) => read_messages(
                    file,
                    name,
                    LONGEST_MESSAGE,
                    &mut messages,
                    &mut summary,
                    &mut each,
                ),
                Err(error) => Err(ReadError::Input(error)),
            }
        };
        match read {
            Ok(()) => {}
            Err(ReadError::Input(error)) => {
                eprintln!("corridor: cannot read {name}: {error}");
                summary.failed = true;
                continue;
            }
            Err(ReadError::TooLong { line }) => {
                eprintln!(
                    "corridor: {name}: line {line}: a message longer than {} MB (or lines \
                     with no MSH for as long); the rest of the file is not read",
                    LONGEST_MESSAGE >> 20
                );
                summary.failed = true;
                continue;
            }
            Err(ReadError::Output(error)) => return Err(error),
        }
        if messages == 0 {
            summary.without_messages.push(name.to_string());
        }
    }
    Ok(summary)
}

enum ReadError {
    Input(std::io::Error),
    TooLong { line: usize },
    Output(anyhow::Error),
}

fn read_messages(
    mut reader: impl Read,
    name: &str,
    longest: usize,
    messages: &mut usize,
    summary: &mut ReadSummary,
    each: &mut impl FnMut(Incoming<'_>) -> anyhow::Result<()>,
) -> Result<(), ReadError> {
    let mut splitter = StreamSplitter::new();
    let mut chunk = vec![0; CHUNK];
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(ReadError::Input(error)),
        };
        if read == 0 {
            splitter.finish();
        } else {
            splitter.push(&chunk[..read]);
        }
        while let Some(item) = splitter.next_item() {
            match item {
                StreamItem::Message { bytes, line, .. } => {
                    *messages += 1;
                    each(Incoming {
                        file: name,
                        number: *messages,
                        line,
                        bytes,
                    })
                    .map_err(ReadError::Output)?;
                }
                StreamItem::Envelope { .. } => {}
                StreamItem::Stray { bytes, line, .. } => {
                    eprintln!("corridor: {}", stray_error(name, line, bytes));
                    summary.failed = true;
                }
            }
        }
        if read == 0 {
            return Ok(());
        }
        if splitter.buffered() > longest {
            return Err(ReadError::TooLong {
                line: splitter.pending_line(),
            });
        }
    }
}

/// A line on standard error, about once a second, saying how many messages
/// are done and how fast: shown when standard error is a terminal, or when
/// asked for (then the final count is shown even for a short input).
pub struct Progress {
    asked: bool,
    enabled: bool,
    on_terminal: bool,
    started: Instant,
    last_shown: Instant,
    messages: u64,
    shown: bool,
}

impl Progress {
    pub fn new(asked: bool) -> Progress {
        let on_terminal = std::io::stderr().is_terminal();
        let now = Instant::now();
        Progress {
            asked,
            enabled: asked || on_terminal,
            on_terminal,
            started: now,
            last_shown: now,
            messages: 0,
            shown: false,
        }
    }

    /// Counts one message done.
    pub fn message_done(&mut self) {
        self.messages += 1;
        if self.enabled && self.last_shown.elapsed() >= Duration::from_secs(1) {
            self.last_shown = Instant::now();
            self.show();
        }
    }

    /// Shows the final count, when progress was shown or asked for.
    pub fn finish(&mut self) {
        if self.shown || self.asked {
            self.show();
            if self.on_terminal {
                eprintln!();
            }
        }
    }

    fn show(&mut self) {
        self.shown = true;
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.messages as f64 / seconds;
        let words = format!(
            "corridor: {} messages in {seconds:.0} s, {rate:.0} messages/s",
            self.messages
        );
        if self.on_terminal {
            // Rewrites the same line; the padding covers a longer one before.
            eprint!("\r{words:<70}");
        } else {
            eprintln!("{words}");
        }
    }
}

/// A file's bytes and the name to report it by.
pub struct Input {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Input {
    /// Reads `path`, or standard input for `-`.
    pub fn read(path: &str) -> anyhow::Result<Input> {
        if path == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            return Ok(Input {
                name: "<stdin>".to_string(),
                bytes,
            });
        }
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
        Ok(Input {
            name: path.to_string(),
            bytes,
        })
    }

    /// The pieces of the file, in order: each message with its 1-based
    /// number, and what is not a message, as an error that names the line.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        let mut number = 0;
        hl7v2::split_stream(&self.bytes)
            .into_iter()
            .filter_map(move |item| match item {
                StreamItem::Message { bytes, line, .. } => {
                    number += 1;
                    Some(Piece::Message {
                        number,
                        bytes,
                        line,
                    })
                }
                StreamItem::Envelope { .. } => None,
                StreamItem::Stray { bytes, line, .. } => Some(Piece::Stray { bytes, line }),
            })
    }
}

/// One piece of an input file.
pub enum Piece<'a> {
    Message {
        number: usize,
        bytes: &'a [u8],
        line: usize,
    },
    Stray {
        bytes: &'a [u8],
        line: usize,
    },
}

/// The words for lines that belong to no message.
pub fn stray_error(file: &str, line: usize, bytes: &[u8]) -> String {
    let head: String = String::from_utf8_lossy(&bytes[..bytes.len().min(3)]).into_owned();
    format!(
        "{file}: line {line}: {head:?}... is not part of any message (no MSH segment before it)"
    )
}

/// The words for a message that does not parse.
pub fn message_error(file: &str, number: usize, line: usize, error: &hl7v2::Error) -> String {
    format!("{file}: message {number} (line {line}): {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `input` as a file with a given longest message; gives the
    /// control ids handed on and the line of a message found too long.
    fn read(input: &[u8], longest: usize) -> (Vec<String>, Option<usize>) {
        let (mut messages, mut summary, mut ids) = (0, ReadSummary::default(), Vec::new());
        let result = read_messages(input, "f", longest, &mut messages, &mut summary, &mut |m| {
            ids.push(String::from_utf8_lossy(&m.bytes[9..]).into_owned());
            Ok(())
        });
        let too_long = match result {
            Err(ReadError::TooLong { line }) => Some(line),
            _ => None,
        };
        (ids, too_long)
    }

    #[test]
    fn a_message_longer_than_the_limit_stops_the_file_at_its_line() {
        let mut input = b"MSH|^~\\&|1\nMSH|^~\\&|2\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * CHUNK));
        let (ids, too_long) = read(&input, 2 * CHUNK);
        assert_eq!(ids, ["1"]);
        assert_eq!(too_long, Some(2));
    }

    #[test]
    fn messages_within_the_limit_are_all_read() {
        let input = b"MSH|^~\\&|1\nPID|1\nMSH|^~\\&|2\n".repeat(20_000);
        let (ids, too_long) = read(&input, 2 * CHUNK);
        assert_eq!((ids.len(), too_long), (40_000, None));
    }
}

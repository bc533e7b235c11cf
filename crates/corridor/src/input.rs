//! Reading the messages of a file (or standard input) for the commands that
//! take `FILE|-`.

use std::io::Read;

use anyhow::Context;
use hl7v2::StreamItem;

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

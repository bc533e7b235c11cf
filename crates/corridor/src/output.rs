//! Writing a JSON array element by element, so a command prints each item as
//! soon as it has it instead of collecting them all first.

use std::io::Write;

/// A JSON array written as `serde_json::to_writer_pretty` writes a whole
/// one: `[`, each element on its own lines indented by two spaces, `]`.
#[derive(Default)]
pub struct PrettyArray {
    opened: bool,
    elements: usize,
}

impl PrettyArray {
    pub fn push(
        &mut self,
        out: &mut impl Write,
        element: &impl serde::Serialize,
    ) -> anyhow::Result<()> {
        let pretty = serde_json::to_vec_pretty(element)?;
        self.push_pretty(out, &pretty)?;
        Ok(())
    }

    /// Adds an element already pretty-printed.
    pub fn push_pretty(&mut self, out: &mut impl Write, pretty: &[u8]) -> std::io::Result<()> {
        self.open(out)?;
        out.write_all(if self.elements == 0 { b"\n" } else { b",\n" })?;
        self.elements += 1;
        // JSON text has no line break inside a string: every one is layout.
        for (i, line) in pretty.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                out.write_all(b"\n")?;
            }
            out.write_all(b"  ")?;
            out.write_all(line)?;
        }
        Ok(())
    }

    /// Writes `[` if nothing has been written yet.
    pub fn open(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.opened {
            self.opened = true;
            out.write_all(b"[")?;
        }
        Ok(())
    }

    /// Closes the array (an empty one if nothing was written).
    pub fn close(mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.open(out)?;
        out.write_all(if self.elements == 0 { b"]\n" } else { b"\n]\n" })
    }
}

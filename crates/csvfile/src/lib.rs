//! Corridor's CSV files, read and written in one place, by the `csv` crate (RFC 4180
//! quoting: `"Brown, Jr"`, `"say ""hi"""`).
//!
//! Two ways to read, for two kinds of file:
//!
//! - [`rows`]: one row per line, each with its line number. The patient lists of
//!   `corridor mpi load` and the lookup tables of a `map` step are read this way: a
//!   quoted value never spans lines there, so a broken row (an unbalanced quote)
//!   costs that row only, never the rows after it, and every problem is named by
//!   its line.
//! - [`reader`]: a whole file with a header row, trimmed, every row as long as the
//!   header, for files Corridor itself writes and reads back (the terminology
//!   maps, whose displays may hold line breaks).
//!
//! [`writer`] writes what both read, quoting only the values that need it.
//!
//! ```
//! let text = "\u{feff}id,family\nA1,\"Brown, Jr\"\n\n# a comment\nA2,\"Lee\n";
//! let rows: Vec<_> = csvfile::rows(text, true).collect();
//! assert_eq!(rows[0].line, 1);
//! assert_eq!(rows[1].fields, Ok(vec!["A1".to_string(), "Brown, Jr".to_string()]));
//! assert_eq!(rows[2].line, 5);
//! assert_eq!(rows[2].fields, Err(csvfile::UnbalancedQuotes));
//!
//! let mut out = csvfile::writer(Vec::new());
//! out.write_record(["A1", "Brown, Jr"]).unwrap();
//! assert_eq!(out.into_inner().unwrap(), b"A1,\"Brown, Jr\"\n");
//! ```

use std::io;

pub use csv::{Error, Reader, StringRecord, Writer};

/// One line's row: its fields as written (unquoted, not trimmed), or why it is not
/// one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    pub fields: Result<Vec<String>, UnbalancedQuotes>,
}

/// A line whose quotes do not pair up: a quoted value left open, or a stray quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnbalancedQuotes;

impl std::fmt::Display for UnbalancedQuotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unclosed quote")
    }
}

impl std::error::Error for UnbalancedQuotes {}

/// The rows of `text`, one per line that is not blank (nor, with `comments`, a line
/// starting with `#`). A UTF-8 byte order mark before the first line is ignored;
/// lines may end in LF or CRLF.
pub fn rows(text: &str, comments: bool) -> impl Iterator<Item = Row> + '_ {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().filter_map(move |(n, line)| {
        if line.trim().is_empty() || (comments && line.starts_with('#')) {
            return None;
        }
        Some(Row {
            line: n + 1,
            fields: split_line(line),
        })
    })
}

/// The fields of one line of CSV.
pub fn split_line(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
    // Within one line, RFC 4180 quotes always pair up (a quoted value opens and
    // closes, and a quote inside one is doubled); an odd count is a value left open,
    // which the csv crate would otherwise read to the end of its input.
    if line.bytes().filter(|&b| b == b'"').count() % 2 != 0 {
        return Err(UnbalancedQuotes);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(str::to_string).collect()),
        Ok(false) => Ok(vec![String::new()]),
        Err(_) => Err(UnbalancedQuotes),
    }
}

/// A reader of a whole file with a header row: values trimmed, every row as long as
/// the header (a row that is not is an error naming its line), quoted values may
/// span lines. Each record's `position()` gives its line.
pub fn reader<R: io::Read>(input: R) -> Reader<R> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input)
}

/// A writer of rows, quoting only the values that need it (a comma, a quote or a
/// line break), lines ending in LF.
pub fn writer<W: io::Write>(output: W) -> Writer<W> {
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_hold_commas_and_doubled_quotes() {
        assert_eq!(
            split_line(r#"a,"b, c","say ""hi""",,d"#),
            Ok(vec![
                "a".to_string(),
                "b, c".to_string(),
                "say \"hi\"".to_string(),
                String::new(),
                "d".to_string()
            ])
        );
        assert_eq!(split_line(" a , b "), Ok(vec![" a ".into(), " b ".into()]));
    }

    #[test]
    fn an_open_quote_costs_its_line_only() {
        let text = "id,name\nA6,\"Unclosed,Ann\nA7,Wu\r\n";
        let rows: Vec<Row> = rows(text, false).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].line, 2);
        assert_eq!(rows[1].fields, Err(UnbalancedQuotes));
        assert_eq!(rows[2].line, 3);
        assert_eq!(rows[2].fields, Ok(vec!["A7".into(), "Wu".into()]));
    }

    #[test]
    fn comments_are_skipped_only_when_asked() {
        let text = "# note\nfrom,to\n";
        assert_eq!(rows(text, true).count(), 1);
        assert_eq!(rows(text, false).count(), 2);
    }

    #[test]
    fn what_the_writer_writes_the_readers_read_back() {
        let values = ["plain", "a, b", "say \"hi\"", "two\nlines", ""];
        let mut out = writer(Vec::new());
        out.write_record(["h1", "h2", "h3", "h4", "h5"]).unwrap();
        out.write_record(values).unwrap();
        let bytes = out.into_inner().unwrap();
        let mut back = reader(bytes.as_slice());
        let record = back.records().next().unwrap().unwrap();
        assert_eq!(record.iter().collect::<Vec<_>>(), values);
        assert_eq!(record.position().unwrap().line(), 2);
        let one_line = "plain,\"a, b\",\"say \"\"hi\"\"\"";
        assert_eq!(
            split_line(one_line).unwrap(),
            ["plain", "a, b", "say \"hi\""]
        );
    }

    #[test]
    fn a_row_of_the_wrong_length_is_an_error_with_its_line() {
        let mut read = reader("a,b\n1,2\n3\n".as_bytes());
        let results: Vec<_> = read.records().collect();
        assert!(results[0].is_ok());
        let error = results[1].as_ref().unwrap_err();
        assert_eq!(error.position().map(|p| p.line()), Some(3));
    }
}

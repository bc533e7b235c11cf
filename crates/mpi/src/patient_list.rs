//! The CSV patient lists of `corridor mpi load` and `corridor mpi export`.
//!
//! A list to load names its columns in a header row: `id, family, given, middle,
//! suffix` (Jr, Sr, III), `birth_date` (YYYYMMDD), `sex, street, street2, city,
//! state, postcode, country, phone, ssn`, any of them missing or empty but `id`. A
//! bad row is named by its line and skipped; the others load. Problems name lines,
//! never values: the values are patient data.
//!
//! ```
//! use mpi::patient_list::{read_patient_list, write_export};
//!
//! let text = "id,family,birth_date\nA1,Smith,19800312\nA2,Jones,1980-03-12\n";
//! let (mut records, mut bad) = (Vec::new(), Vec::new());
//! read_patient_list(text, "CLINIC", &mut records, |line, why| bad.push((line, why)))
//!     .unwrap();
//! assert_eq!(records.len(), 1);
//! assert_eq!(bad, vec![(3, "birth_date is not YYYYMMDD".to_string())]);
//!
//! let mut out = Vec::new();
//! assert_eq!(write_export(&mut out, None).unwrap(), 0);
//! assert_eq!(out, b"source,id,enterprise_id,status\n");
//! ```

use std::io::Write;

use crate::{Mpi, PatientRecord};

/// The columns a list may have.
pub const COLUMNS: [&str; 15] = [
    "id",
    "family",
    "given",
    "middle",
    "suffix",
    "birth_date",
    "sex",
    "street",
    "street2",
    "city",
    "state",
    "postcode",
    "country",
    "phone",
    "ssn",
];

/// Why a whole list cannot be read: its header is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("empty file (a header row is needed)")]
    Empty,
    #[error("line {line}: {why}")]
    Header { line: usize, why: String },
}

/// Reads one patient list into `out`, each record from `source`. A bad row is
/// handed to `bad_row` (its line and why, without its values) and skipped.
pub fn read_patient_list(
    text: &str,
    source: &str,
    out: &mut Vec<PatientRecord>,
    mut bad_row: impl FnMut(usize, String),
) -> Result<(), ListError> {
    let mut rows = csvfile::rows(text, false);
    let header = rows.next().ok_or(ListError::Empty)?;
    let header_line = header.line;
    let header_error = |why: String| ListError::Header {
        line: header_line,
        why,
    };
    let header: Vec<String> = header
        .fields
        .map_err(|_| header_error("unclosed quote in the header".into()))?
        .into_iter()
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    for column in &header {
        if !COLUMNS.contains(&column.as_str()) {
            return Err(header_error(format!(
                "unknown column {column:?} (columns: {})",
                COLUMNS.join(", ")
            )));
        }
    }
    let Some(id_col) = header.iter().position(|c| c == "id") else {
        return Err(header_error("no `id` column".into()));
    };
    'rows: for row in rows {
        let fields = match row.fields {
            Ok(fields) => fields,
            Err(e) => {
                bad_row(row.line, e.to_string());
                continue;
            }
        };
        if fields.len() != header.len() {
            bad_row(
                row.line,
                format!(
                    "{} fields where the header has {}",
                    fields.len(),
                    header.len()
                ),
            );
            continue;
        }
        let id = fields[id_col].trim();
        if id.is_empty() {
            bad_row(row.line, "no id".into());
            continue;
        }
        let mut record = PatientRecord::new(source, id);
        for (column, value) in header.iter().zip(&fields) {
            if column == "id" {
                continue;
            }
            let v = value.trim();
            if column == "birth_date"
                && !v.is_empty()
                && (v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()))
            {
                // The value itself is patient data: the line number finds it.
                bad_row(row.line, "birth_date is not YYYYMMDD".into());
                continue 'rows;
            }
            record.set_field(column, v);
        }
        out.push(record);
    }
    Ok(())
}

/// Writes `source,id,enterprise_id,status` for every source record of `index` (the
/// header alone without one), each with its current enterprise patient; gives the
/// number of rows.
pub fn write_export(out: &mut dyn Write, index: Option<&Mpi>) -> std::io::Result<usize> {
    let mut csv = csvfile::writer(out);
    csv.write_record(["source", "id", "enterprise_id", "status"])?;
    let mut rows = 0;
    if let Some(index) = index {
        for (key, enterprise, status) in index.source_records() {
            let e = index.current_enterprise(enterprise).unwrap_or(enterprise);
            csv.write_record([
                key.source.as_str(),
                key.id.as_str(),
                &e.to_string(),
                status.as_str(),
            ])?;
            rows += 1;
        }
    }
    csv.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = (
        Result<(), ListError>,
        Vec<PatientRecord>,
        Vec<(usize, String)>,
    );

    fn read(text: &str) -> Read {
        let (mut records, mut bad) = (Vec::new(), Vec::new());
        let result = read_patient_list(text, "CLINIC", &mut records, |l, w| bad.push((l, w)));
        (result, records, bad)
    }

    #[test]
    fn a_bad_row_is_named_by_line_and_the_rest_load() {
        let (result, records, bad) = read(
            "\u{feff}id,family,given,birth_date\n\
             A1,Smith,John,19800312\n\
             A3,\"Brown, Jr\",Tom,19700101\n\
             A4,Lee\n\
             ,Nobody,No,19700101\n\
             A6,\"Unclosed,Ann,19700101\n\
             \n\
             A7,Wu,Li,19900909\n",
        );
        assert_eq!(result, Ok(()));
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["A1", "A3", "A7"]);
        let lines: Vec<usize> = bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert_eq!(bad[2].1, "unclosed quote");
    }

    #[test]
    fn a_wrong_header_refuses_the_list_naming_its_line() {
        assert_eq!(read("").0, Err(ListError::Empty));
        let (result, ..) = read("\nid,surname\n");
        let error = result.unwrap_err();
        assert_eq!(
            error,
            ListError::Header {
                line: 2,
                why: format!(
                    "unknown column \"surname\" (columns: {})",
                    COLUMNS.join(", ")
                )
            }
        );
        assert!(matches!(
            read("family\nSmith\n").0,
            Err(ListError::Header { line: 1, .. })
        ));
    }
}

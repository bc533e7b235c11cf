//! Data quality and quarantine in the Prometheus text format, for `/metrics`.

use std::fmt::Write as _;

use store::Store;
use store::rusqlite::Connection;

/// Most `corridor_findings_total` series written; the least frequent beyond this are
/// summed into one series per channel and severity with `path="(other)"`.
pub const MAX_FINDING_SERIES: usize = 2000;

/// The exposition lines the engine's `/metrics` appends:
///
/// - `corridor_findings_total{channel,sender,message_type,path,code,severity}`: findings
///   of validated messages (paths without repetition numbers);
/// - `corridor_validated_messages_total{channel,sender,message_type,outcome}`: messages
///   validated, by outcome `valid`, `warnings` or `errors`;
/// - `corridor_quarantine_entries{channel,status}`: quarantine entries by status.
///
/// Label cardinality stays bounded: message types are MSH-9.1^MSH-9.2, paths carry no
/// repetition numbers, and at most [`MAX_FINDING_SERIES`] finding series are written.
pub fn prometheus_text(store: &Store) -> store::Result<String> {
    store.read(|conn| prometheus_text_in(conn, MAX_FINDING_SERIES))
}

/// [`prometheus_text`] on a connection one has, with an explicit series limit.
pub fn prometheus_text_in(conn: &Connection, max_series: usize) -> store::Result<String> {
    let mut out = String::new();
    out.push_str(
        "# HELP corridor_findings_total Validation findings by channel, sender (MSH-3.1), \
         message type, path, HL7 table 0357 code and severity.\n\
         # TYPE corridor_findings_total counter\n",
    );
    let mut statement = conn.prepare_cached(
        "SELECT channel, sender, message_type, path, code, severity, count FROM data_quality \
         ORDER BY count DESC, channel, sender, message_type, path, code, severity",
    )?;
    let mut rows = statement.query([])?;
    let mut other: std::collections::BTreeMap<(String, String), i64> = Default::default();
    let mut written = 0usize;
    while let Some(row) = rows.next()? {
        let channel: String = row.get(0)?;
        let severity: String = row.get(5)?;
        let count: i64 = row.get(6)?;
        if written >= max_series {
            *other.entry((channel, severity)).or_default() += count;
            continue;
        }
        let sender: String = row.get(1)?;
        let message_type: String = row.get(2)?;
        let path: String = row.get(3)?;
        let code: i64 = row.get(4)?;
        let _ = writeln!(
            out,
            "corridor_findings_total{{channel=\"{}\",sender=\"{}\",message_type=\"{}\",\
             path=\"{}\",code=\"{code}\",severity=\"{}\"}} {count}",
            label(&channel),
            label(&sender),
            label(&message_type),
            label(&path),
            label(&severity),
        );
        written += 1;
    }
    for ((channel, severity), count) in other {
        let _ = writeln!(
            out,
            "corridor_findings_total{{channel=\"{}\",sender=\"(other)\",message_type=\"(other)\",\
             path=\"(other)\",code=\"(other)\",severity=\"{}\"}} {count}",
            label(&channel),
            label(&severity),
        );
    }

    out.push_str(
        "# HELP corridor_validated_messages_total Messages validated, by outcome (valid, \
         warnings, errors).\n\
         # TYPE corridor_validated_messages_total counter\n",
    );
    let mut statement = conn.prepare_cached(
        "SELECT channel, sender, message_type, validated, with_errors, with_warnings \
         FROM data_quality_messages ORDER BY channel, sender, message_type",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (channel, sender, message_type): (String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let (validated, errors, warnings): (i64, i64, i64) =
            (row.get(3)?, row.get(4)?, row.get(5)?);
        for (outcome, n) in [
            ("valid", validated - errors - warnings),
            ("warnings", warnings),
            ("errors", errors),
        ] {
            let _ = writeln!(
                out,
                "corridor_validated_messages_total{{channel=\"{}\",sender=\"{}\",\
                 message_type=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(&channel),
                label(&sender),
                label(&message_type),
            );
        }
    }

    out.push_str(
        "# HELP corridor_quarantine_entries Quarantine entries by channel and status.\n\
         # TYPE corridor_quarantine_entries gauge\n",
    );
    let mut statement = conn.prepare_cached(
        "SELECT channel, status, count(*) FROM quarantine GROUP BY channel, status \
         ORDER BY channel, status",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (channel, status, n): (String, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let _ = writeln!(
            out,
            "corridor_quarantine_entries{{channel=\"{}\",status=\"{}\"}} {n}",
            label(&channel),
            label(&status),
        );
    }
    Ok(out)
}

/// A label value escaped for the text format (backslash, quote, newline), at most 128
/// characters.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars().take(128) {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

//! The report: what [`crate::Profiler`] counted, as serde data (JSON) or an HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::{Format, Profiler};

/// What a feed contains.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub messages: u64,
    /// Inputs that did not parse as HL7 v2.
    pub unparsed: u64,
    /// `ORU^R01` -> count.
    pub message_types: BTreeMap<String, u64>,
    pub versions: BTreeMap<String, u64>,
    /// MSH-1 and MSH-2 -> count.
    pub delimiters: BTreeMap<String, u64>,
    /// MSH-18 -> count.
    pub character_sets: BTreeMap<String, u64>,
    pub segments: Vec<SegmentReport>,
    /// Segment ids starting with Z.
    pub z_segments: Vec<String>,
    /// Codes no loaded map translates: sender, field, system, code, count.
    pub unmapped: Vec<UnmappedReport>,
    /// Deviations from the standard as the validator reports them.
    pub deviations: Vec<DeviationReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    pub id: String,
    pub occurrences: u64,
    /// Messages holding it at least once.
    pub messages: u64,
    pub fields: Vec<FieldReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldReport {
    /// `PID-3`.
    pub path: String,
    /// The standard's data type, when the standard defines the segment.
    pub data_type: Option<String>,
    pub populated: u64,
    /// Of the segment's occurrences, in percent.
    pub populated_percent: f64,
    /// Distinct values of component 1 of the first repetition (a lower bound when
    /// `distinct_capped`).
    pub distinct: usize,
    pub distinct_capped: bool,
    /// The most frequent values, for coded fields (CE, CWE, CNE, ID, IS, HD...).
    pub top_values: Vec<(String, u64)>,
    pub min_length: usize,
    pub max_length: usize,
    /// `date`, `number`, `text` -> count.
    pub formats: BTreeMap<String, u64>,
    /// Occurrences with more than one repetition.
    pub repeated: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnmappedReport {
    pub sender: String,
    pub field: String,
    pub system: String,
    pub code: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviationReport {
    pub kind: String,
    pub path: String,
    pub severity: String,
    pub count: u64,
}

/// Data types whose values are codes: their top values are listed.
pub(crate) fn is_coded(data_type: Option<&str>) -> bool {
    matches!(
        data_type,
        Some("CE" | "CWE" | "CNE" | "CF" | "ID" | "IS" | "HD" | "MSG" | "CM_MSG" | "VID" | "PT")
    )
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Date => "date",
        Format::Number => "number",
        Format::Text => "text",
    }
}

pub(crate) fn build(p: &Profiler, top: usize) -> Report {
    let segments = p
        .segments
        .iter()
        .map(|(id, s)| SegmentReport {
            id: id.clone(),
            occurrences: s.occurrences,
            messages: s.messages,
            fields: s
                .fields
                .iter()
                .map(|(n, f)| {
                    let data_type = s.types.get(&n).copied();
                    let coded = is_coded(data_type) || id.starts_with('Z') && f.values.len() <= 20;
                    let mut values: Vec<(String, u64)> =
                        f.values.iter().map(|(v, c)| (v.clone(), *c)).collect();
                    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    values.truncate(if coded { top } else { 0 });
                    FieldReport {
                        path: format!("{id}-{n}"),
                        data_type: data_type.map(str::to_owned),
                        populated: f.populated,
                        populated_percent: (f.populated as f64 * 1000.0
                            / s.occurrences.max(1) as f64)
                            .round()
                            / 10.0,
                        distinct: f.values.len(),
                        distinct_capped: f.overflow > 0,
                        top_values: values,
                        min_length: f.min_length,
                        max_length: f.max_length,
                        formats: Format::ALL
                            .iter()
                            .zip(f.formats)
                            .filter(|(_, v)| *v > 0)
                            .map(|(k, v)| (format_name(*k).to_owned(), v))
                            .collect(),
                        repeated: f.repeated,
                    }
                })
                .collect(),
        })
        .collect();
    let mut unmapped: Vec<UnmappedReport> = p
        .unmapped
        .iter()
        .map(|((sender, field, system, code), count)| UnmappedReport {
            sender: sender.clone(),
            field: field.clone(),
            system: system.clone(),
            code: code.clone(),
            count: *count,
        })
        .collect();
    unmapped.sort_by_key(|u| std::cmp::Reverse(u.count));
    let mut deviations: Vec<DeviationReport> = p
        .deviations
        .iter()
        .flat_map(|((kind, severity), paths)| {
            paths.iter().map(move |(path, count)| DeviationReport {
                kind: (*kind).to_owned(),
                path: path.clone(),
                severity: (*severity).to_owned(),
                count: *count,
            })
        })
        .collect();
    // Ordered as (kind, path, severity), then by count (a stable sort).
    deviations
        .sort_by(|a, b| (&a.kind, &a.path, &a.severity).cmp(&(&b.kind, &b.path, &b.severity)));
    deviations.sort_by_key(|d| std::cmp::Reverse(d.count));
    Report {
        messages: p.messages,
        unparsed: p.unparsed,
        message_types: p.types.clone(),
        versions: p.versions.clone(),
        delimiters: p.delimiters.clone(),
        character_sets: p.charsets.clone(),
        z_segments: p
            .segments
            .keys()
            .filter(|k| k.starts_with('Z'))
            .cloned()
            .collect(),
        segments,
        unmapped,
        deviations,
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Report {
    /// The report as one HTML page (no scripts, no outside resources).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Feed profile</title>\
             <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style>\
             </head><body><h1>Feed profile</h1><p>{} messages ({} did not parse)</p>",
            self.messages, self.unparsed
        );
        let counts = |h: &mut String, title: &str, map: &BTreeMap<String, u64>| {
            let _ = write!(
                h,
                "<h2>{}</h2><table><tr><th>value</th><th>messages</th></tr>",
                esc(title)
            );
            for (k, v) in map {
                let _ = write!(h, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
            }
            h.push_str("</table>");
        };
        counts(&mut h, "Message types", &self.message_types);
        counts(&mut h, "Versions", &self.versions);
        counts(&mut h, "Delimiters", &self.delimiters);
        counts(&mut h, "Character sets", &self.character_sets);
        for s in &self.segments {
            let _ = write!(
                h,
                "<h2 id=\"{0}\">{0}</h2><p>{1} occurrences in {2} messages</p><table><tr><th>field</th><th>type</th><th>populated</th><th>distinct</th><th>lengths</th><th>formats</th><th>top values</th></tr>",
                esc(&s.id),
                s.occurrences,
                s.messages
            );
            for f in &s.fields {
                let formats: Vec<String> =
                    f.formats.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let top: Vec<String> = f
                    .top_values
                    .iter()
                    .map(|(v, c)| format!("{} ({c})", esc(v)))
                    .collect();
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{} ({}%)</td><td>{}{}</td><td>{}-{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.path),
                    esc(f.data_type.as_deref().unwrap_or("")),
                    f.populated,
                    f.populated_percent,
                    f.distinct,
                    if f.distinct_capped { "+" } else { "" },
                    f.min_length,
                    f.max_length,
                    formats.join(", "),
                    top.join(", ")
                );
            }
            h.push_str("</table>");
        }
        h.push_str("<h2>Codes without a mapping</h2><table><tr><th>sender</th><th>field</th><th>system</th><th>code</th><th>count</th></tr>");
        for u in &self.unmapped {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.sender),
                esc(&u.field),
                esc(&u.system),
                esc(&u.code),
                u.count
            );
        }
        h.push_str("</table><h2>Deviations from the standard</h2><table><tr><th>kind</th><th>path</th><th>severity</th><th>count</th></tr>");
        for d in &self.deviations {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.kind),
                esc(&d.path),
                esc(&d.severity),
                d.count
            );
        }
        h.push_str("</table></body></html>\n");
        h
    }
}

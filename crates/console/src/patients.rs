//! The patient index: the review queue (the waiting record and each candidate side by
//! side, field by field, with the match weights), and a patient's golden record, its
//! source records and history, with merge and unmerge for stewards.

use std::fmt::Write as _;

use crate::{Viewer, escape, outcome_html, page};

/// The fields shown side by side, by the patient index's field names, with labels.
pub const PATIENT_FIELDS: &[(&str, &str)] = &[
    ("identifiers", "Identifiers"),
    ("family", "Family name"),
    ("given", "Given name"),
    ("middle", "Middle name"),
    ("suffix", "Suffix"),
    ("birth_date", "Birth date"),
    ("sex", "Sex"),
    ("street", "Street"),
    ("street2", "Street (2)"),
    ("city", "City"),
    ("state", "State"),
    ("postcode", "Postcode"),
    ("country", "Country"),
    ("phone", "Phone"),
    ("ssn", "SSN"),
];

/// A patient record's values by [`PATIENT_FIELDS`] name (absent fields left out).
#[derive(Debug, Clone, Default)]
pub struct RecordView {
    /// `source/id`.
    pub key: String,
    pub values: Vec<(String, String)>,
}

impl RecordView {
    fn value(&self, field: &str) -> &str {
        self.values
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A compared field's outcome: its comparison level and weight (bits of evidence).
#[derive(Debug, Clone, Default)]
pub struct WeightView {
    pub field: String,
    pub level: String,
    pub weight: f64,
}

/// One candidate enterprise patient for a waiting record.
#[derive(Debug, Clone, Default)]
pub struct CandidateView {
    pub enterprise: String,
    /// The candidate's best-scoring source record.
    pub record: RecordView,
    pub score: f64,
    pub match_probability: f64,
    pub weights: Vec<WeightView>,
    /// The safety guard that held it back from an automatic link.
    pub guard: Option<String>,
}

/// One open review.
#[derive(Debug, Clone, Default)]
pub struct ReviewView {
    pub id: u64,
    pub record: RecordView,
    /// The enterprise patient the record was given meanwhile.
    pub provisional: String,
    /// The guard that sent it to review, described.
    pub guard: Option<String>,
    /// Best first.
    pub candidates: Vec<CandidateView>,
}

fn signed(weight: f64) -> String {
    format!("{weight:+.2}")
}

/// The review queue: each waiting record beside each candidate, field by field, with
/// the comparison level and weight of every compared field and the total; accept (link
/// to that candidate) or reject (a patient of its own) for stewards.
pub fn reviews_page(
    viewer: &Viewer,
    reviews: &[ReviewView],
    notice: Option<&str>,
    error: Option<&str>,
) -> String {
    let mut body = outcome_html(notice, error);
    body.push_str(
        "<form class=\"search\" method=\"get\" action=\"/console/patients\">\
         <label for=\"patient-id\">Enterprise patient (E12)<input id=\"patient-id\" name=\"id\"></label>\
         <div><button type=\"submit\">Open</button></div></form>",
    );
    let _ = write!(body, "<h2>Review queue ({})</h2>", reviews.len());
    if reviews.is_empty() {
        body.push_str("<p>No record waits for review.</p>");
    }
    let decide = viewer.stewards && viewer.csrf.is_some();
    for r in reviews {
        let _ = write!(
            body,
            "<section class=\"review\" id=\"review-{id}\" aria-labelledby=\"review-{id}-h\"><h3 id=\"review-{id}-h\">Review {id}: record {} (for now <a href=\"/console/patients/{p}\">{p}</a>)</h3>",
            escape(&r.record.key),
            id = r.id,
            p = escape(&r.provisional),
        );
        if let Some(g) = &r.guard {
            let _ = write!(body, "<p class=\"warn\">Held back: {}</p>", escape(g));
        }
        for (i, c) in r.candidates.iter().enumerate() {
            let _ = write!(
                body,
                "<table class=\"compare\"><caption>Candidate {} <a href=\"/console/patients/{e}\">{e}</a>: score {} bits, match probability {:.1} %</caption>\
                 <thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Waiting record {}</th><th scope=\"col\">Candidate record {}</th><th scope=\"col\">Comparison</th><th scope=\"col\">Weight</th></tr></thead><tbody>",
                i + 1,
                signed(c.score),
                100.0 * c.match_probability,
                escape(&r.record.key),
                escape(&c.record.key),
                e = escape(&c.enterprise),
            );
            for (field, label) in PATIENT_FIELDS {
                let (left, right) = (r.record.value(field), c.record.value(field));
                let weight = c.weights.iter().find(|w| w.field == *field);
                if left.is_empty() && right.is_empty() && weight.is_none() {
                    continue;
                }
                let (level, w, class) = match weight {
                    Some(w) => (
                        escape(&w.level),
                        signed(w.weight),
                        if w.weight > 0.0 {
                            "agree"
                        } else if w.weight < 0.0 {
                            "disagree"
                        } else {
                            ""
                        },
                    ),
                    None => (String::new(), String::new(), ""),
                };
                let _ = write!(
                    body,
                    "<tr class=\"{class}\"><th scope=\"row\">{label}</th><td>{}</td><td>{}</td><td>{level}</td><td class=\"n\">{w}</td></tr>",
                    escape(left),
                    escape(right),
                );
            }
            let _ = write!(
                body,
                "</tbody><tfoot><tr><th scope=\"row\" colspan=\"4\">Total</th><td class=\"n\">{}</td></tr></tfoot></table>",
                signed(c.score)
            );
            if let Some(g) = &c.guard {
                let _ = write!(body, "<p class=\"warn\">Guard: {}</p>", escape(g));
            }
            if decide {
                let _ = write!(
                    body,
                    "<form class=\"decide\" method=\"post\" action=\"/console/reviews/{id}/accept\">{}\
                     <input type=\"hidden\" name=\"enterprise_id\" value=\"{e}\">\
                     <label for=\"accept-{id}-{i}\">Note<input id=\"accept-{id}-{i}\" name=\"note\"></label>\
                     <button type=\"submit\" class=\"accept\">Accept: link to {e}</button></form>",
                    viewer.csrf_field(),
                    id = r.id,
                    e = escape(&c.enterprise),
                );
            }
        }
        if decide {
            let _ = write!(
                body,
                "<form class=\"decide\" method=\"post\" action=\"/console/reviews/{id}/reject\">{}\
                 <label for=\"reject-{id}\">Note<input id=\"reject-{id}\" name=\"note\"></label>\
                 <button type=\"submit\" class=\"reject\">Reject: a patient of its own</button></form>",
                viewer.csrf_field(),
                id = r.id,
            );
        }
        body.push_str("</section>");
    }
    page("Patient index", Some(viewer), &body)
}

/// A source record linked to the patient.
#[derive(Debug, Clone, Default)]
pub struct SourceView {
    pub record: RecordView,
    /// `new`, `auto`, `reviewed`, ...
    pub status: String,
    pub active: bool,
    pub manual: bool,
}

/// One event of the patient's history.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub why: String,
    /// For a merge still in force: it can be undone.
    pub unmergeable: bool,
}

/// A patient's page.
#[derive(Debug, Clone, Default)]
pub struct PatientView {
    pub enterprise: String,
    /// The patient asked for when it was merged into `enterprise`.
    pub asked: Option<String>,
    pub golden: Option<RecordView>,
    pub sources: Vec<SourceView>,
    pub history: Vec<HistoryView>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// A patient: the golden record, the source records it is built from, the history of
/// decisions; for stewards a form to merge another patient into this one and an
/// unmerge button on each merge.
pub fn patient_page(viewer: &Viewer, p: &PatientView) -> String {
    let mut body = outcome_html(p.notice.as_deref(), p.error.as_deref());
    if let Some(asked) = &p.asked {
        let _ = write!(
            body,
            "<p>{} was merged into {}.</p>",
            escape(asked),
            escape(&p.enterprise)
        );
    }
    body.push_str("<h2>Golden record</h2>");
    match &p.golden {
        Some(g) => {
            body.push_str("<table class=\"golden\"><tbody>");
            for (field, label) in PATIENT_FIELDS {
                let v = g.value(field);
                if !v.is_empty() {
                    let _ = write!(
                        body,
                        "<tr><th scope=\"row\">{label}</th><td>{}</td></tr>",
                        escape(v)
                    );
                }
            }
            body.push_str("</tbody></table>");
        }
        None => body.push_str("<p>No active source record.</p>"),
    }
    body.push_str("<h2>Source records</h2><table><thead><tr><th scope=\"col\">Record</th><th scope=\"col\">Link</th><th scope=\"col\">Family name</th><th scope=\"col\">Given name</th><th scope=\"col\">Birth date</th><th scope=\"col\">Identifiers</th></tr></thead><tbody>");
    for s in &p.sources {
        let mut link = escape(&s.status);
        if s.manual {
            link.push_str(", by hand");
        }
        if !s.active {
            link.push_str(", inactive");
        }
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.record.key),
            escape(s.record.value("family")),
            escape(s.record.value("given")),
            escape(s.record.value("birth_date")),
            escape(s.record.value("identifiers")),
        );
    }
    if p.sources.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No source records.</td></tr>");
    }
    body.push_str("</tbody></table>");
    let steward = viewer.stewards && viewer.csrf.is_some();
    body.push_str("<h2>History</h2><table><thead><tr><th scope=\"col\">Event</th><th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">What</th><th scope=\"col\">Why</th>");
    if steward {
        body.push_str("<th scope=\"col\">Undo</th>");
    }
    body.push_str("</tr></thead><tbody>");
    for h in &p.history {
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            h.seq,
            escape(&h.at),
            escape(&h.actor),
            escape(&h.kind),
            escape(&h.why)
        );
        if steward {
            body.push_str("<td>");
            if h.unmergeable {
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"/console/patients/unmerge\">{}\
                     <input type=\"hidden\" name=\"merge_event\" value=\"{seq}\">\
                     <input type=\"hidden\" name=\"back\" value=\"{}\">\
                     <button type=\"submit\">Unmerge event {seq}</button></form>",
                    viewer.csrf_field(),
                    escape(&p.enterprise),
                    seq = h.seq,
                );
            }
            body.push_str("</td>");
        }
        body.push_str("</tr>");
    }
    if p.history.is_empty() {
        body.push_str("<tr><td colspan=\"5\">No events.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if steward {
        let _ = write!(
            body,
            "<h2>Merge</h2><form class=\"merge\" method=\"post\" action=\"/console/patients/merge\">{}\
             <input type=\"hidden\" name=\"survivor\" value=\"{e}\">\
             <label for=\"merged\">Merge this patient into {e}<input id=\"merged\" name=\"merged\" placeholder=\"E12\" required></label>\
             <label for=\"merge-note\">Note<input id=\"merge-note\" name=\"note\"></label>\
             <div><button type=\"submit\">Merge</button></div></form>",
            viewer.csrf_field(),
            e = escape(&p.enterprise),
        );
    }
    page(&format!("Patient {}", p.enterprise), Some(viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, family: &str) -> RecordView {
        RecordView {
            key: key.into(),
            values: vec![
                ("family".into(), family.into()),
                ("birth_date".into(), "19800312".into()),
            ],
        }
    }

    #[test]
    fn a_review_shows_both_records_side_by_side_with_the_weights() {
        let review = ReviewView {
            id: 4,
            record: record("CLINIC/R-1", "Smith"),
            provisional: "E2".into(),
            guard: None,
            candidates: vec![CandidateView {
                enterprise: "E1".into(),
                record: record("NORTH/4711", "Smyth<"),
                score: 9.5,
                match_probability: 0.8,
                weights: vec![WeightView {
                    field: "family".into(),
                    level: "phonetic".into(),
                    weight: 3.25,
                }],
                guard: None,
            }],
        };
        let steward = Viewer {
            user: "sam".into(),
            role: "steward".into(),
            csrf: Some("t".into()),
            reads_phi: true,
            operates: false,
            stewards: true,
            administers: false,
        };
        let html = reviews_page(&steward, std::slice::from_ref(&review), None, None);
        assert!(
            html.contains("<th scope=\"row\">Family name</th><td>Smith</td><td>Smyth&lt;</td><td>phonetic</td><td class=\"n\">+3.25</td>"),
            "{html}"
        );
        assert!(html.contains("action=\"/console/reviews/4/accept\""));
        assert!(html.contains("name=\"enterprise_id\" value=\"E1\""));
        let analyst = Viewer {
            stewards: false,
            administers: false,
            ..steward
        };
        let html = reviews_page(&analyst, &[review], None, None);
        assert!(!html.contains("/accept"));
        assert!(html.contains("Smyth&lt;"));
    }
}

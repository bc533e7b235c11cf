//! The audit trail, for administrators: its records newest first, filtered (time range,
//! who, action, kind, outcome, patient, resource) and paged by sequence number, with
//! links exporting the filtered trail as CSV or JSON (`GET /api/audit`), and the state
//! of the hash chain's last check.

use std::fmt::Write as _;

use crate::{Viewer, escape, page, url_encode};

/// The page's filters: query parameter, label, and a hint shown as placeholder.
pub const AUDIT_FILTERS: &[(&str, &str, &str)] = &[
    ("from", "From", "2026-01-31 or RFC 3339"),
    ("to", "To", "through that date, or before that time"),
    ("who", "Who", "alice, user:alice or token:7"),
    ("action", "Action", "GET /api/messages/{id}"),
    ("patient", "Patient", "Patient/7 or E12"),
    ("resource", "Resource", "/api/messages/42"),
];

/// The kinds of action (FHIR `AuditEvent.action`), code and words.
pub const AUDIT_KINDS: &[(&str, &str)] = &[
    ("C", "create"),
    ("R", "read"),
    ("U", "update"),
    ("D", "delete"),
    ("E", "execute"),
];

/// The outcomes.
pub const AUDIT_OUTCOMES: &[&str] = &["success", "denied", "failed"];

/// One record as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub owner: Option<String>,
    pub method: String,
    pub address: Option<String>,
    pub action: String,
    pub kind: String,
    pub resource: Option<String>,
    pub patients: Vec<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// The last check of the hash chain (`corridor audit verify`, `GET /api/audit/verify`).
#[derive(Debug, Clone, Default)]
pub struct ChainState {
    /// When it was made.
    pub checked_at: String,
    /// Records read.
    pub records: u64,
    /// The first bad record and what is wrong with it, or None when intact.
    pub broken: Option<String>,
}

/// What the audit page shows.
#[derive(Debug, Clone, Default)]
pub struct AuditView {
    /// The filters as asked (`from`, `to`, `who`, `action`, `kind`, `outcome`,
    /// `patient`, `resource`) and `before`, the page's start.
    pub query: Vec<(String, String)>,
    pub rows: Vec<AuditRow>,
    /// The `before` of the next (older) page.
    pub next_before: Option<i64>,
    pub chain: Option<ChainState>,
    /// Why the filters were refused (a 400's message).
    pub error: Option<String>,
}

fn value_of<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The filters as a query string (without `before`), each `k=v&`.
fn filter_query(query: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in query.iter().filter(|(k, v)| k != "before" && !v.is_empty()) {
        let _ = write!(out, "{}={}&", url_encode(k), url_encode(v));
    }
    out
}

/// A link to the page with `name` set to `value` on top of the current filters.
fn filter_link(query: &[(String, String)], name: &str, value: &str, text: &str) -> String {
    let mut link = String::from("/console/audit?");
    for (k, v) in query
        .iter()
        .filter(|(k, v)| k != "before" && k != name && !v.is_empty())
    {
        let _ = write!(link, "{}={}&", url_encode(k), url_encode(v));
    }
    let _ = write!(link, "{}={}", url_encode(name), url_encode(value));
    format!(
        "<a href=\"{}\" title=\"Only these\">{}</a>",
        escape(&link),
        escape(text)
    )
}

fn select(out: &mut String, name: &str, label: &str, current: &str, options: &[(&str, &str)]) {
    let _ = write!(
        out,
        "<label for=\"a-{name}\">{label}<select id=\"a-{name}\" name=\"{name}\"><option value=\"\">any</option>"
    );
    for (value, words) in options {
        let selected = if *value == current { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{value}\"{selected}>{}</option>",
            escape(words)
        );
    }
    out.push_str("</select></label>");
}

/// The audit page: the chain's state, the filters, the export links, the records.
pub fn audit_page(viewer: &Viewer, a: &AuditView) -> String {
    let mut body = String::new();
    match &a.chain {
        Some(ChainState {
            checked_at,
            records,
            broken: None,
        }) => {
            let _ = write!(
                body,
                "<p class=\"notice chain\" role=\"status\">Hash chain intact: {records} records checked at {}. <a href=\"/console/audit?check=now\">Check again</a></p>",
                escape(checked_at)
            );
        }
        Some(ChainState {
            checked_at,
            broken: Some(problem),
            ..
        }) => {
            let _ = write!(
                body,
                "<p class=\"error chain\" role=\"alert\">Hash chain broken (checked at {}): {}. <a href=\"/console/audit?check=now\">Check again</a></p>",
                escape(checked_at),
                escape(problem)
            );
        }
        None => body.push_str("<p class=\"chain\">The hash chain could not be checked.</p>"),
    }
    body.push_str(&crate::outcome_html(None, a.error.as_deref()));
    body.push_str("<form class=\"search\" method=\"get\" action=\"/console/audit\">");
    for (name, label, hint) in AUDIT_FILTERS {
        let _ = write!(
            body,
            "<label for=\"a-{name}\">{label}<input id=\"a-{name}\" name=\"{name}\" placeholder=\"{}\" value=\"{}\"></label>",
            escape(hint),
            escape(value_of(&a.query, name))
        );
    }
    select(
        &mut body,
        "kind",
        "Kind",
        value_of(&a.query, "kind"),
        AUDIT_KINDS,
    );
    let outcomes: Vec<(&str, &str)> = AUDIT_OUTCOMES.iter().map(|o| (*o, *o)).collect();
    select(
        &mut body,
        "outcome",
        "Outcome",
        value_of(&a.query, "outcome"),
        &outcomes,
    );
    body.push_str("<div><button type=\"submit\">Filter</button></div></form>");
    let filters = filter_query(&a.query);
    let _ = write!(
        body,
        "<p>Export these records, oldest first: <a href=\"/api/audit?{f}format=csv\" download=\"audit.csv\">CSV</a> · <a href=\"/api/audit?{f}format=json\" download=\"audit.json\">JSON</a></p>",
        f = escape(&filters)
    );
    body.push_str("<table><caption>Audit records, newest first</caption><thead><tr><th scope=\"col\">Seq</th><th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">How</th><th scope=\"col\">From</th><th scope=\"col\">Action</th><th scope=\"col\">Kind</th><th scope=\"col\">Resource</th><th scope=\"col\">Patients</th><th scope=\"col\">Outcome</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
    for r in &a.rows {
        let who = match &r.owner {
            Some(owner) => format!(
                "{} (of {})",
                filter_link(&a.query, "who", &r.actor, &r.actor),
                escape(owner)
            ),
            None => filter_link(&a.query, "who", &r.actor, &r.actor),
        };
        let patients: Vec<String> = r
            .patients
            .iter()
            .map(|p| filter_link(&a.query, "patient", p, p))
            .collect();
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{who}</td><td>{}</td><td>{}</td><td class=\"action\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            r.seq,
            escape(&r.at),
            escape(&r.method),
            escape(r.address.as_deref().unwrap_or("")),
            filter_link(&a.query, "action", &r.action, &r.action),
            escape(&r.kind),
            r.resource
                .as_deref()
                .map(|res| filter_link(&a.query, "resource", res, res))
                .unwrap_or_default(),
            patients.join(" "),
            escape(&r.outcome),
            escape(&r.outcome),
            escape(r.detail.as_deref().unwrap_or("")),
        );
    }
    if a.rows.is_empty() {
        body.push_str("<tr><td colspan=\"11\">No audit record matches.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if let Some(next) = a.next_before {
        let link = format!("/console/audit?{}before={next}", filter_query(&a.query));
        let _ = write!(
            body,
            "<p><a href=\"{}\">Older records</a></p>",
            escape(&link)
        );
    }
    page("Audit trail", Some(viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_keeps_its_filters_in_the_export_and_next_links_escaped() {
        let view = AuditView {
            query: vec![
                ("action".into(), "GET /api/messages/{id}".into()),
                ("who".into(), "<ana>".into()),
                ("before".into(), "90".into()),
            ],
            rows: vec![AuditRow {
                seq: 80,
                at: "2026-12-07T10:00:00Z".into(),
                actor: "user:<ana>".into(),
                action: "GET /api/messages/{id}".into(),
                kind: "R".into(),
                patients: vec!["Patient/7".into()],
                outcome: "success".into(),
                ..AuditRow::default()
            }],
            next_before: Some(80),
            chain: Some(ChainState {
                checked_at: "2026-12-07T10:00:01Z".into(),
                records: 80,
                broken: None,
            }),
            error: None,
        };
        let html = audit_page(&Viewer::default(), &view);
        assert!(html.contains("Hash chain intact: 80 records"), "{html}");
        assert!(
            html.contains("href=\"/api/audit?action=GET%20%2Fapi%2Fmessages%2F%7Bid%7D&amp;who=%3Cana%3E&amp;format=csv\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"/console/audit?action=GET%20%2Fapi%2Fmessages%2F%7Bid%7D&amp;who=%3Cana%3E&amp;before=80\""),
            "{html}"
        );
        assert!(html.contains("user:&lt;ana&gt;"));
        assert!(!html.contains("<ana>"));
    }

    #[test]
    fn a_broken_chain_is_an_alert() {
        let view = AuditView {
            chain: Some(ChainState {
                checked_at: "now".into(),
                records: 3,
                broken: Some("audit record 2: its content does not match its hash (edited)".into()),
            }),
            ..AuditView::default()
        };
        let html = audit_page(&Viewer::default(), &view);
        assert!(html.contains("role=\"alert\">Hash chain broken"), "{html}");
        assert!(html.contains("No audit record matches."));
    }
}

//! The quarantine and dead letters (lists with bulk selection; an entry's edit,
//! revalidate, reprocess and discard) and the per-sender data quality.
//!
//! Every action is a POST form carrying the session's CSRF token, shown only to a
//! viewer who operates; the pages themselves are only rendered for callers who read
//! message content, except data quality, which holds counts and the validator's
//! sentences (never values from a message).

use std::fmt::Write as _;

use crate::{Viewer, escape, labelled_message, outcome_html, page, url_encode};

/// A quarantine entry as listed.
#[derive(Debug, Clone, Default)]
pub struct QuarantineRow {
    pub id: i64,
    pub message_id: i64,
    pub quarantined: String,
    pub channel: String,
    pub sender: String,
    pub message_type: String,
    pub control_id: String,
    pub errors: i64,
    pub warnings: i64,
    /// Why it was quarantined (the validation summary).
    pub reason: String,
    /// `open`, `reprocessed` or `discarded`.
    pub status: String,
    pub edits: i64,
}

/// A destination's dead-lettered entry.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterRow {
    pub entry_id: i64,
    pub message_id: i64,
    pub channel: String,
    pub destination: String,
    pub attempts: u64,
    pub since: String,
    pub error: String,
}

/// The list's filter, by query parameter.
pub const QUARANTINE_FILTERS: &[(&str, &str)] = &[
    ("channel", "Channel"),
    ("sender", "Sender (MSH-3)"),
    ("type", "Message type"),
];

/// The statuses a list can show.
pub const QUARANTINE_STATUSES: &[&str] = &["open", "reprocessed", "discarded"];

fn value_of<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// What the quarantine list shows.
#[derive(Debug, Clone, Default)]
pub struct QuarantineList {
    /// The filter asked for (`channel`, `sender`, `type`, `status`).
    pub query: Vec<(String, String)>,
    pub rows: Vec<QuarantineRow>,
    /// Entries matching the filter in all.
    pub total: u64,
    pub next_before: Option<i64>,
    pub dead_letters: Vec<DeadLetterRow>,
    /// The dead-letter page shown starts after this entry (none: the first page).
    pub dead_after: Option<i64>,
    /// The entry the next page of dead letters starts after, when there may be more.
    pub dead_next_after: Option<i64>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// The quarantine and dead letters: a filter, the entries with a checkbox each and the
/// bulk actions (reprocess, revalidate, discard with a reason) for operators, then the
/// destinations' dead letters with resend.
pub fn quarantine_page(viewer: &Viewer, list: &QuarantineList) -> String {
    let mut body = outcome_html(list.notice.as_deref(), list.error.as_deref());
    body.push_str("<form class=\"search\" method=\"get\" action=\"/console/quarantine\">");
    for (name, label) in QUARANTINE_FILTERS {
        let _ = write!(
            body,
            "<label for=\"q-{name}\">{label}<input id=\"q-{name}\" name=\"{name}\" value=\"{}\"></label>",
            escape(value_of(&list.query, name))
        );
    }
    let status = value_of(&list.query, "status");
    body.push_str("<label for=\"q-status\">Status<select id=\"q-status\" name=\"status\">");
    for s in QUARANTINE_STATUSES {
        let selected = if *s == status { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{s}\"{selected}>{s}</option>");
    }
    let any = if status.is_empty() { " selected" } else { "" };
    let _ = write!(body, "<option value=\"\"{any}>any</option>");
    body.push_str("</select></label><div><button type=\"submit\">Filter</button></div></form>");

    let operate = viewer.operates && viewer.csrf.is_some();
    if operate {
        let _ = write!(
            body,
            "<form id=\"bulk\" class=\"bulk\" method=\"post\" action=\"/console/quarantine/reprocess\">{}",
            viewer.csrf_field()
        );
    }
    let _ = write!(
        body,
        "<table class=\"selectable\"><caption>Quarantined messages ({} matching), newest first</caption><thead><tr>",
        list.total
    );
    if operate {
        body.push_str("<th scope=\"col\"><input type=\"checkbox\" data-select-all=\"entry\" aria-label=\"Select every entry shown\"></th>");
    }
    body.push_str("<th scope=\"col\">Entry</th><th scope=\"col\">Quarantined</th><th scope=\"col\">Channel</th><th scope=\"col\">Sender</th><th scope=\"col\">Type</th><th scope=\"col\">Control id</th><th scope=\"col\">Errors</th><th scope=\"col\">Warnings</th><th scope=\"col\">Why</th><th scope=\"col\">Status</th><th scope=\"col\">Edits</th></tr></thead><tbody>");
    for r in &list.rows {
        body.push_str("<tr>");
        if operate {
            let _ = write!(
                body,
                "<td><input type=\"checkbox\" name=\"id\" value=\"{id}\" data-select=\"entry\" aria-label=\"Select entry {id}\"></td>",
                id = r.id
            );
        }
        let _ = write!(
            body,
            "<td><a href=\"/console/quarantine/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&r.quarantined),
            escape(&r.channel),
            escape(&r.sender),
            escape(&r.message_type),
            escape(&r.control_id),
            r.errors,
            r.warnings,
            escape(&r.reason),
            escape(&r.status),
            r.edits,
            id = r.id,
        );
    }
    if list.rows.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"{}\">Nothing quarantined matches.</td></tr>",
            if operate { 12 } else { 11 }
        );
    }
    body.push_str("</tbody></table>");
    if operate {
        body.push_str(
            "<fieldset><legend>With the selected entries</legend>\
             <label for=\"bulk-reason\">Reason<input id=\"bulk-reason\" name=\"reason\"></label>\
             <label class=\"inline\" for=\"bulk-force\"><input id=\"bulk-force\" type=\"checkbox\" name=\"force\" value=\"1\">even with errors</label>\
             <button type=\"submit\" formaction=\"/console/quarantine/reprocess\">Reprocess</button>\
             <button type=\"submit\" formaction=\"/console/quarantine/revalidate\">Revalidate</button>\
             <button type=\"submit\" formaction=\"/console/quarantine/discard\">Discard</button>\
             </fieldset></form>",
        );
    }
    if let Some(next) = list.next_before {
        let mut link = String::from("/console/quarantine?");
        for (k, v) in list
            .query
            .iter()
            .filter(|(k, v)| k != "before" && !v.is_empty())
        {
            let _ = write!(link, "{}={}&", url_encode(k), url_encode(v));
        }
        let _ = write!(link, "before={next}");
        let _ = write!(
            body,
            "<p><a href=\"{}\">Older entries</a></p>",
            escape(&link)
        );
    }

    body.push_str("<h2>Dead letters</h2>");
    if operate && !list.dead_letters.is_empty() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/console/dead-letters/resend\">{}",
            viewer.csrf_field()
        );
    }
    body.push_str("<table class=\"selectable\"><caption>Entries a destination gave up on</caption><thead><tr>");
    if operate && !list.dead_letters.is_empty() {
        body.push_str("<th scope=\"col\"><input type=\"checkbox\" data-select-all=\"dead\" aria-label=\"Select every dead letter shown\"></th>");
    }
    body.push_str("<th scope=\"col\">Message</th><th scope=\"col\">Channel</th><th scope=\"col\">Destination</th><th scope=\"col\">Attempts</th><th scope=\"col\">Since</th><th scope=\"col\">Last error</th></tr></thead><tbody>");
    for d in &list.dead_letters {
        body.push_str("<tr>");
        if operate {
            let _ = write!(
                body,
                "<td><input type=\"checkbox\" name=\"entry\" value=\"{e}\" data-select=\"dead\" aria-label=\"Select dead letter {e}\"></td>",
                e = d.entry_id
            );
        }
        let _ = write!(
            body,
            "<td><a href=\"/console/messages/{m}\">{m}</a></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.channel),
            escape(&d.destination),
            d.attempts,
            escape(&d.since),
            escape(&d.error),
            m = d.message_id,
        );
    }
    if list.dead_letters.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No dead letters.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if operate && !list.dead_letters.is_empty() {
        body.push_str(
            "<fieldset><legend>With the selected dead letters</legend>\
             <button type=\"submit\" formnovalidate>Resend the selected</button>\
             <label for=\"dead-reason\">Reason for discarding<input id=\"dead-reason\" name=\"reason\" required></label>\
             <label class=\"inline\" for=\"dead-confirm\"><input id=\"dead-confirm\" type=\"checkbox\" name=\"confirm\" value=\"1\" required>I confirm: discarded dead letters are not sent again</label>\
             <button type=\"submit\" formaction=\"/console/dead-letters/discard\">Discard the selected</button>\
             </fieldset></form>",
        );
    }
    // Keyset paging: the filter kept, the quarantine list's own page too.
    let dead_link = |after: Option<i64>| {
        let mut link = String::from("/console/quarantine?");
        for (k, v) in list
            .query
            .iter()
            .filter(|(k, v)| k != "dead_after" && !v.is_empty())
        {
            let _ = write!(link, "{}={}&", url_encode(k), url_encode(v));
        }
        if let Some(after) = after {
            let _ = write!(link, "dead_after={after}");
        }
        link
    };
    if list.dead_after.is_some() || list.dead_next_after.is_some() {
        body.push_str("<p class=\"pages\">");
        if list.dead_after.is_some() {
            let _ = write!(
                body,
                "<a href=\"{}\">First dead letters</a> ",
                escape(&dead_link(None))
            );
        }
        if let Some(next) = list.dead_next_after {
            let _ = write!(
                body,
                "<a href=\"{}\">Later dead letters</a>",
                escape(&dead_link(Some(next)))
            );
        }
        body.push_str("</p>");
    }
    page("Quarantine", Some(viewer), &body)
}

/// A validation finding as the entry's page lists it.
#[derive(Debug, Clone, Default)]
pub struct FindingView {
    pub severity: String,
    pub path: String,
    pub code: u16,
    pub message: String,
}

/// One edit of the entry's history.
#[derive(Debug, Clone, Default)]
pub struct EditView {
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// Everything the entry's page shows.
#[derive(Debug, Clone, Default)]
pub struct QuarantineDetail {
    pub row: QuarantineRow,
    pub findings: Vec<FindingView>,
    pub version: String,
    /// The message as received.
    pub original: Vec<u8>,
    /// The current content (the last edit, or the original).
    pub content: String,
    pub revision: i64,
    pub history: Vec<EditView>,
    pub status_by: Option<String>,
    pub status_reason: Option<String>,
    pub reprocessed_as: Option<i64>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// One quarantine entry: its findings, the message in a textarea to edit (segments one
/// per line), revalidate, reprocess and discard for operators, its edit history and the
/// original message labelled field by field.
pub fn quarantine_entry_page(viewer: &Viewer, d: &QuarantineDetail) -> String {
    let r = &d.row;
    let mut body = outcome_html(d.notice.as_deref(), d.error.as_deref());
    let _ = write!(
        body,
        "<table><caption>Entry {id}</caption><tbody>\
         <tr><th scope=\"row\">Status</th><td class=\"status\">{}</td></tr>\
         <tr><th scope=\"row\">Quarantined</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Message</th><td><a href=\"/console/messages/{m}\">{m}</a></td></tr>\
         <tr><th scope=\"row\">Channel</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Sender</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Type</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Control id</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Why</th><td>{}</td></tr>",
        escape(&r.status),
        escape(&r.quarantined),
        escape(&r.channel),
        escape(&r.sender),
        escape(&r.message_type),
        escape(&r.control_id),
        escape(&r.reason),
        id = r.id,
        m = r.message_id,
    );
    if let Some(by) = &d.status_by {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">Decided by</th><td>{} {}</td></tr>",
            escape(by),
            escape(d.status_reason.as_deref().unwrap_or(""))
        );
    }
    if let Some(m) = d.reprocessed_as {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">Reprocessed as</th><td><a class=\"reprocessed-as\" href=\"/console/messages/{m}\">message {m}</a></td></tr>"
        );
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Findings</h2><table class=\"findings\"><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Where</th><th scope=\"col\">Code</th><th scope=\"col\">What</th></tr></thead><tbody>");
    for f in &d.findings {
        let _ = write!(
            body,
            "<tr><td class=\"{sev}\">{sev}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&f.path),
            f.code,
            escape(&f.message),
            sev = escape(&f.severity),
        );
    }
    if d.findings.is_empty() {
        body.push_str("<tr><td colspan=\"4\">No findings: the content validates.</td></tr>");
    }
    body.push_str("</tbody></table>");

    let open = r.status == "open";
    if viewer.operates && viewer.csrf.is_some() && open {
        let action = format!("/console/quarantine/{}", r.id);
        let _ = write!(
            body,
            "<h2>Edit</h2><form class=\"edit\" method=\"post\" action=\"{action}/edit\">{csrf}\
             <input type=\"hidden\" name=\"revision\" value=\"{rev}\">\
             <label for=\"content\">Message (one segment a line)<textarea id=\"content\" name=\"content\" rows=\"12\" spellcheck=\"false\">{}</textarea></label>\
             <label for=\"edit-reason\">Why it is edited<input id=\"edit-reason\" name=\"reason\" required></label>\
             <div><button type=\"submit\">Save the edit</button></div></form>\
             <h2>Actions</h2><div class=\"actions\">\
             <form method=\"post\" action=\"{action}/revalidate\">{csrf}<button type=\"submit\">Revalidate</button></form>\
             <form method=\"post\" action=\"{action}/reprocess\">{csrf}\
             <label for=\"reprocess-reason\">Reason<input id=\"reprocess-reason\" name=\"reason\"></label>\
             <label class=\"inline\" for=\"force\"><input id=\"force\" type=\"checkbox\" name=\"force\" value=\"1\">even with errors</label>\
             <button type=\"submit\">Reprocess</button></form>\
             <form method=\"post\" action=\"{action}/discard\">{csrf}\
             <label for=\"discard-reason\">Why it is discarded<input id=\"discard-reason\" name=\"reason\" required></label>\
             <button type=\"submit\">Discard</button></form></div>",
            escape(&d.content.replace('\r', "\n")),
            csrf = viewer.csrf_field(),
            rev = d.revision,
        );
    } else {
        body.push_str("<h2>Current content</h2>");
        body.push_str(&labelled_message(d.content.as_bytes(), &d.version));
    }

    body.push_str("<h2>Edits</h2><table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">Why</th></tr></thead><tbody>");
    for e in &d.history {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.at),
            escape(&e.by),
            escape(&e.reason)
        );
    }
    if d.history.is_empty() {
        body.push_str("<tr><td colspan=\"3\">Not edited.</td></tr>");
    }
    body.push_str("</tbody></table><h2>As received</h2>");
    body.push_str(&labelled_message(&d.original, &d.version));
    page(&format!("Quarantine entry {}", r.id), Some(viewer), &body)
}

/// How many messages of a sender and type were validated, and how many failed.
#[derive(Debug, Clone, Default)]
pub struct SenderQuality {
    pub channel: String,
    pub sender: String,
    pub message_type: String,
    pub validated: i64,
    pub with_errors: i64,
    pub with_warnings: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// One finding's counter for a sender and type, at a field.
#[derive(Debug, Clone, Default)]
pub struct FieldQuality {
    pub channel: String,
    pub sender: String,
    pub message_type: String,
    pub path: String,
    pub code: u16,
    pub severity: String,
    pub description: String,
    pub count: i64,
    pub messages: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// Per-sender data quality: messages validated and failed per sender and type, then
/// the findings by field with when they were first and last seen. Counts only.
pub fn data_quality_page(
    viewer: &Viewer,
    query: &[(String, String)],
    senders: &[SenderQuality],
    fields: &[FieldQuality],
    over_time: &crate::QualityOverTime,
) -> String {
    let mut body =
        String::from("<form class=\"search\" method=\"get\" action=\"/console/data-quality\">");
    for (name, label) in QUARANTINE_FILTERS
        .iter()
        .chain(&[("since", "Over time since (a date)")])
    {
        let _ = write!(
            body,
            "<label for=\"q-{name}\">{label}<input id=\"q-{name}\" name=\"{name}\" value=\"{}\"></label>",
            escape(value_of(query, name))
        );
    }
    let bucket = value_of(query, "bucket");
    body.push_str("<label for=\"q-bucket\">Per<select id=\"q-bucket\" name=\"bucket\">");
    for (value, words) in [("", "automatic"), ("day", "day"), ("hour", "hour")] {
        let selected = if value == bucket { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{value}\"{selected}>{words}</option>");
    }
    body.push_str("</select></label><div><button type=\"submit\">Filter</button></div></form>");
    body.push_str("<h2>By sender</h2><table><caption>Messages validated</caption><thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">Sender</th><th scope=\"col\">Type</th><th scope=\"col\">Validated</th><th scope=\"col\">With errors</th><th scope=\"col\">Error share</th><th scope=\"col\">With warnings only</th><th scope=\"col\">First seen</th><th scope=\"col\">Last seen</th></tr></thead><tbody>");
    for s in senders {
        let share = if s.validated > 0 {
            format!("{:.1} %", 100.0 * s.with_errors as f64 / s.validated as f64)
        } else {
            "-".to_owned()
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><th scope=\"row\">{}</th><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{share}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.channel),
            escape(&s.sender),
            escape(&s.message_type),
            s.validated,
            s.with_errors,
            s.with_warnings,
            escape(&s.first_seen),
            escape(&s.last_seen),
        );
    }
    if senders.is_empty() {
        body.push_str("<tr><td colspan=\"9\">Nothing validated yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Findings by field</h2><table><caption>Most frequent first</caption><thead><tr><th scope=\"col\">Sender</th><th scope=\"col\">Type</th><th scope=\"col\">Field</th><th scope=\"col\">Code</th><th scope=\"col\">Severity</th><th scope=\"col\">What</th><th scope=\"col\">Occurrences</th><th scope=\"col\">Messages</th><th scope=\"col\">First seen</th><th scope=\"col\">Last seen</th></tr></thead><tbody>");
    let mut sorted: Vec<&FieldQuality> = fields.iter().collect();
    sorted.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
    for f in sorted {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><th scope=\"row\">{}</th><td class=\"n\">{}</td><td class=\"{sev}\">{sev}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.sender),
            escape(&f.message_type),
            escape(&f.path),
            f.code,
            escape(&f.description),
            f.count,
            f.messages,
            escape(&f.first_seen),
            escape(&f.last_seen),
            sev = escape(&f.severity),
        );
    }
    if fields.is_empty() {
        body.push_str("<tr><td colspan=\"10\">No findings.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&crate::quality_over_time_html(over_time));
    page("Data quality", Some(viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(operates: bool) -> Viewer {
        Viewer {
            user: "ana".into(),
            role: "operator".into(),
            csrf: Some("tok\"en".into()),
            reads_phi: true,
            operates,
            stewards: false,
            administers: false,
        }
    }

    fn list() -> QuarantineList {
        QuarantineList {
            rows: vec![QuarantineRow {
                id: 7,
                message_id: 70,
                control_id: "C<1>".into(),
                status: "open".into(),
                ..QuarantineRow::default()
            }],
            total: 1,
            ..QuarantineList::default()
        }
    }

    #[test]
    fn an_operator_gets_bulk_actions_with_the_csrf_token_and_an_analyst_none() {
        let html = quarantine_page(&viewer(true), &list());
        assert!(html.contains("name=\"id\" value=\"7\""), "{html}");
        assert!(html.contains("formaction=\"/console/quarantine/discard\""));
        assert!(html.contains("name=\"csrf_token\" value=\"tok&quot;en\""));
        assert!(html.contains("C&lt;1&gt;"));
        let html = quarantine_page(&viewer(false), &list());
        assert!(!html.contains("<form id=\"bulk\""), "{html}");
        assert!(!html.contains("name=\"id\""));
        assert!(html.contains("href=\"/console/quarantine/7\""));
    }

    #[test]
    fn an_open_entry_is_edited_in_a_textarea_one_segment_a_line() {
        let detail = QuarantineDetail {
            row: QuarantineRow {
                id: 3,
                status: "open".into(),
                ..QuarantineRow::default()
            },
            content: "MSH|^~\\&|A\rPID|1||</textarea>".into(),
            original: b"MSH|^~\\&|A\r".to_vec(),
            version: "2.5.1".into(),
            ..QuarantineDetail::default()
        };
        let html = quarantine_entry_page(&viewer(true), &detail);
        assert!(
            html.contains("MSH|^~\\&amp;|A\nPID|1||&lt;/textarea&gt;</textarea>"),
            "{html}"
        );
        assert!(html.contains("action=\"/console/quarantine/3/reprocess\""));
        let closed = QuarantineDetail {
            row: QuarantineRow {
                status: "discarded".into(),
                ..detail.row.clone()
            },
            ..detail
        };
        let html = quarantine_entry_page(&viewer(true), &closed);
        assert!(!html.contains("<textarea"));
    }
}

//! The message browser and a message's detail, each field labelled from the standard.

use std::fmt::Write as _;

use crate::{Viewer, escape, page, url_encode};

/// One row of the message browser (metadata only; the patient's name comes from the
/// message for callers who read content).
#[derive(Debug, Clone, Default)]
pub struct MessageRow {
    pub id: i64,
    pub received: String,
    pub channel: String,
    pub message_type: String,
    pub sender: String,
    pub control_id: String,
    pub state: String,
}

/// The search fields of the browser, by query parameter, with their labels.
pub const SEARCH_FIELDS: &[(&str, &str)] = &[
    ("since", "Received from (date or time)"),
    ("until", "Received before"),
    ("channel", "Channel"),
    ("state", "State"),
    ("type", "Message type (ORU or ORU^R01)"),
    ("sender", "Sender (MSH-3)"),
    ("control_id", "Control id (MSH-10)"),
    ("patient_id", "Patient identifier"),
    ("patient_name", "Patient name"),
    ("order", "Order or accession number"),
    ("text", "Text in the message"),
    ("destination", "Destination"),
    (
        "destination_state",
        "Destination entry state (queued, delivered, errored, dead_lettered)",
    ),
];

/// One of the viewer's saved searches: its name and query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedSearchLink {
    pub name: String,
    pub query: String,
}

/// The viewer's saved searches, each a link to the browser with a delete button, and
/// the form saving the search shown (`query`) under a name.
fn saved_searches_html(
    viewer: &Viewer,
    query: &[(String, String)],
    saved: &[SavedSearchLink],
) -> String {
    let mut body = String::new();
    let Some(_) = viewer.csrf.as_ref() else {
        return body;
    };
    body.push_str("<section class=\"saved\" aria-labelledby=\"saved-title\"><h2 id=\"saved-title\">Saved searches</h2>");
    if saved.is_empty() {
        body.push_str("<p>None yet.</p>");
    } else {
        body.push_str("<ul>");
        for s in saved {
            let _ = write!(
                body,
                "<li><a href=\"/console/messages?{}\">{}</a> <form class=\"inline\" method=\"post\" action=\"/console/saved-searches/{}/delete\">{}<button type=\"submit\" aria-label=\"Delete saved search {}\">Delete</button></form></li>",
                escape(&s.query),
                escape(&s.name),
                url_encode(&s.name),
                viewer.csrf_field(),
                escape(&s.name),
            );
        }
        body.push_str("</ul>");
    }
    let current: Vec<String> = query
        .iter()
        .filter(|(k, v)| k != "before" && !v.is_empty())
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect();
    if !current.is_empty() {
        let _ = write!(
            body,
            "<form class=\"save-search\" method=\"post\" action=\"/console/saved-searches\">{}<input type=\"hidden\" name=\"query\" value=\"{}\"><label for=\"save-name\">Save this search as<input id=\"save-name\" name=\"name\" required maxlength=\"100\"></label><button type=\"submit\">Save</button></form>",
            viewer.csrf_field(),
            escape(&current.join("&")),
        );
    }
    body.push_str("</section>");
    body
}

/// The message browser: the search form (filled with `query`), the viewer's saved
/// searches and the form saving this one, the page of rows, a link to the next page,
/// or an error from the search.
pub fn messages_page(
    viewer: &Viewer,
    query: &[(String, String)],
    saved: &[SavedSearchLink],
    rows: &[MessageRow],
    next_before: Option<i64>,
    error: Option<&str>,
) -> String {
    let value_of = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut body =
        String::from("<form class=\"search\" method=\"get\" action=\"/console/messages\">");
    for (name, label) in SEARCH_FIELDS {
        let _ = write!(
            body,
            "<label for=\"q-{name}\">{label}<input id=\"q-{name}\" name=\"{name}\" value=\"{}\"></label>",
            escape(value_of(name))
        );
    }
    body.push_str("<div><button type=\"submit\">Search</button></div></form>");
    body.push_str(&saved_searches_html(viewer, query, saved));
    if let Some(error) = error {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    body.push_str("<table><caption>Messages, newest first</caption><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Received</th><th scope=\"col\">Channel</th><th scope=\"col\">Type</th><th scope=\"col\">Sender</th><th scope=\"col\">Control id</th><th scope=\"col\">State</th></tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/messages/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.received),
            escape(&r.channel),
            escape(&r.message_type),
            escape(&r.sender),
            escape(&r.control_id),
            escape(&r.state),
            id = r.id,
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No messages match.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if let Some(next) = next_before {
        let mut link = String::from("/console/messages?");
        for (k, v) in query.iter().filter(|(k, v)| k != "before" && !v.is_empty()) {
            let _ = write!(link, "{}={}&", url_encode(k), url_encode(v));
        }
        let _ = write!(link, "before={next}");
        let _ = write!(
            body,
            "<p><a href=\"{}\">Older messages</a></p>",
            escape(&link)
        );
    }
    page("Messages", Some(viewer), &body)
}

/// A destination's entry on the message's detail page. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, Default)]
pub struct DestinationEntry {
    pub entry_id: i64,
    pub destination: String,
    pub state: String,
    /// Why it is in its state (the filter, the dead-letter reason, who discarded it).
    pub state_reason: Option<String>,
    pub attempts: u64,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub queued: String,
    pub first_sent: Option<String>,
    pub last_sent: Option<String>,
    pub acked: Option<String>,
    pub state_changed: String,
}

/// A FHIR resource the repository holds from the message (a version it wrote).
#[derive(Debug, Clone, Default)]
pub struct FhirResourceView {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    /// The version's JSON, shown collapsed.
    pub json: String,
}

/// Everything a message's detail page shows.
#[derive(Debug, Clone, Default)]
pub struct MessageDetail {
    pub row: MessageRow,
    pub state_reason: Option<String>,
    pub version: String,
    pub raw: Vec<u8>,
    /// Each hop of the message and when (RFC 3339): received, stored, processed.
    pub hops: Vec<(String, String)>,
    pub destinations: Vec<DestinationEntry>,
    /// The quarantine entry, when the message was quarantined.
    pub quarantine_entry: Option<i64>,
    /// The findings the quarantine stored for it (validation).
    pub findings: Vec<crate::FindingView>,
    /// The patient index's golden records the message linked (`E12`).
    pub patients: Vec<String>,
    /// The repository's resources written from it; `None` when the repository is off.
    pub fhir: Option<Vec<FhirResourceView>>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// Entry states a destination's resend copies.
const RESENDABLE: &[&str] = &["delivered", "errored", "dead_lettered"];

/// The message's raw bytes with each segment and field labelled from the standard's
/// definitions for `version` (nearest known version when it has none): each field is a
/// `span` whose `title` names it, its data type and its table.
pub fn labelled_message(raw: &[u8], version: &str) -> String {
    let spec = hl7v2_spec::Spec::nearest(version)
        .map(|m| m.spec)
        .or_else(|| hl7v2_spec::Spec::version("2.5.1"));
    let text = String::from_utf8_lossy(raw);
    let mut out = String::from("<pre class=\"hl7\">");
    for line in text.split(['\r', '\n']).filter(|l| !l.is_empty()) {
        let Some(sep) = line
            .strip_prefix("MSH")
            .or_else(|| line.strip_prefix("FHS"))
            .or_else(|| line.strip_prefix("BHS"))
            .and_then(|rest| rest.chars().next())
            .or(Some('|'))
        else {
            continue;
        };
        let header = line.starts_with("MSH") || line.starts_with("FHS") || line.starts_with("BHS");
        let mut parts = line.split(sep);
        let name = parts.next().unwrap_or_default();
        let segment = spec.and_then(|s| s.segment(name));
        let seg_title = segment
            .map(|s| format!("{} {}", s.id, s.name))
            .unwrap_or_else(|| format!("{name} (not in the standard)"));
        let _ = write!(
            out,
            "<span class=\"seg\" title=\"{}\">{}</span>",
            escape(&seg_title),
            escape(name)
        );
        // In a header the separator itself is field 1.
        let mut n = if header { 1 } else { 0 };
        for field in parts {
            n += 1;
            if header && n == 1 {
                n = 2;
                let _ = write!(
                    out,
                    "<span class=\"f\" title=\"MSH-1 Field Separator\">{}</span>",
                    escape(&sep.to_string())
                );
            } else {
                out.push_str(&escape(&sep.to_string()));
            }
            if field.is_empty() {
                continue;
            }
            let title = match segment.and_then(|s| s.field(n)) {
                Some(def) => {
                    let mut t = format!("{} ({})", def.label(), def.data_type);
                    if let Some(table) = def.table {
                        let _ = write!(t, ", table {table:04}");
                    }
                    t
                }
                None => format!("{name}-{n}"),
            };
            let _ = write!(
                out,
                "<span class=\"f\" title=\"{}\">{}</span>",
                escape(&title),
                escape(field)
            );
        }
        out.push('\n');
    }
    out.push_str("</pre>");
    out
}

/// The message as a tree: segment > field > repetition > component > subcomponent,
/// each level labelled from the standard's definitions for `version`, as nested
/// `<details>` (no script). Empty fields are left out.
pub fn message_tree(raw: &[u8], version: &str) -> String {
    let spec = hl7v2_spec::Spec::nearest(version)
        .map(|m| m.spec)
        .or_else(|| hl7v2_spec::Spec::version("2.5.1"));
    let text = String::from_utf8_lossy(raw);
    // The separators from MSH-1 and MSH-2, the standard's when there is no MSH.
    let (mut field_sep, mut comp, mut rep, mut sub) = ('|', '^', '~', '&');
    if let Some(msh) = text.split(['\r', '\n']).find(|l| l.starts_with("MSH")) {
        let mut chars = msh.chars().skip(3);
        field_sep = chars.next().unwrap_or('|');
        let enc: Vec<char> = chars.take_while(|c| *c != field_sep).collect();
        comp = enc.first().copied().unwrap_or('^');
        rep = enc.get(1).copied().unwrap_or('~');
        sub = enc.get(3).copied().unwrap_or('&');
    }
    let mut out = String::from("<div class=\"tree\">");
    for (index, line) in text
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let mut fields: Vec<&str> = line.split(field_sep).collect();
        let name = fields.first().copied().unwrap_or_default().to_owned();
        let header = matches!(name.as_str(), "MSH" | "FHS" | "BHS");
        let segment = spec.and_then(|s| s.segment(&name));
        let seg_name = segment.map(|s| s.name).unwrap_or("not in the standard");
        let _ = write!(
            out,
            "<details{}><summary><span class=\"seg\">{}</span> {}</summary><ul>",
            if index == 0 { " open" } else { "" },
            escape(&name),
            escape(seg_name)
        );
        // In a header the separator itself is field 1 and MSH-2 holds the encoding
        // characters, shown as they are.
        let numbered: Vec<(usize, String)> = if header {
            let mut v = vec![(1, field_sep.to_string())];
            fields.remove(0);
            for (i, f) in fields.iter().enumerate() {
                v.push((i + 2, (*f).to_owned()));
            }
            v
        } else {
            fields
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, f)| (i, (*f).to_owned()))
                .collect()
        };
        for (n, field) in numbered {
            if field.is_empty() {
                continue;
            }
            let def = segment.and_then(|s| s.field(n));
            let label = match def {
                Some(d) => format!("{} ({})", d.label(), d.data_type),
                None => format!("{name}-{n}"),
            };
            let data_type = def.and_then(|d| spec.and_then(|s| s.datatype(d.data_type)));
            let literal = header && n <= 2;
            let reps: Vec<&str> = if literal {
                vec![field.as_str()]
            } else {
                field.split(rep).collect()
            };
            let simple =
                literal || (reps.len() == 1 && !field.contains(comp) && !field.contains(sub));
            if simple {
                let _ = write!(
                    out,
                    "<li><span class=\"label\">{}</span> <code>{}</code></li>",
                    escape(&label),
                    escape(&field)
                );
                continue;
            }
            let _ = write!(
                out,
                "<li><details><summary><span class=\"label\">{}</span></summary><ul>",
                escape(&label)
            );
            for (r, repetition) in reps.iter().enumerate() {
                if repetition.is_empty() {
                    continue;
                }
                let nested = reps.len() > 1;
                if nested {
                    let _ = write!(
                        out,
                        "<li><details open><summary>Repetition {}</summary><ul>",
                        r + 1
                    );
                }
                for (c, component) in repetition.split(comp).enumerate() {
                    if component.is_empty() {
                        continue;
                    }
                    let cdef = data_type.and_then(|t| t.component(c + 1));
                    let clabel = match cdef {
                        Some(d) => format!("{name}-{n}.{} {} ({})", c + 1, d.name, d.data_type),
                        None => format!("{name}-{n}.{}", c + 1),
                    };
                    let subs: Vec<&str> = component.split(sub).collect();
                    if subs.len() == 1 {
                        let _ = write!(
                            out,
                            "<li><span class=\"label\">{}</span> <code>{}</code></li>",
                            escape(&clabel),
                            escape(component)
                        );
                        continue;
                    }
                    let sub_type = cdef.and_then(|d| spec.and_then(|s| s.datatype(d.data_type)));
                    let _ = write!(
                        out,
                        "<li><details open><summary><span class=\"label\">{}</span></summary><ul>",
                        escape(&clabel)
                    );
                    for (k, value) in subs.iter().enumerate() {
                        if value.is_empty() {
                            continue;
                        }
                        let slabel = match sub_type.and_then(|t| t.component(k + 1)) {
                            Some(d) => format!("{name}-{n}.{}.{} {}", c + 1, k + 1, d.name),
                            None => format!("{name}-{n}.{}.{}", c + 1, k + 1),
                        };
                        let _ = write!(
                            out,
                            "<li><span class=\"label\">{}</span> <code>{}</code></li>",
                            escape(&slabel),
                            escape(value)
                        );
                    }
                    out.push_str("</ul></details></li>");
                }
                if nested {
                    out.push_str("</ul></details></li>");
                }
            }
            out.push_str("</ul></details></li>");
        }
        out.push_str("</ul></details>");
    }
    out.push_str("</div>");
    out
}

/// A message's detail page: its header fields and state, the time of each hop, links
/// to its quarantine entry and its patients' golden records, the validation findings,
/// the message labelled field by field and as a tree, each destination's entry (times,
/// attempts, answer, error; for operators a resend button) with what it was sent, the
/// FHIR resources made from it, and a reprocess button for operators.
pub fn message_page(viewer: &Viewer, d: &MessageDetail) -> String {
    let row = &d.row;
    let mut body = crate::outcome_html(d.notice.as_deref(), d.error.as_deref());
    let _ = write!(
        body,
        "<table><caption>Message {id}</caption><tbody>\
         <tr><th scope=\"row\">Received</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Channel</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Type</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Sender</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Control id</th><td>{}</td></tr>\
         <tr><th scope=\"row\">State</th><td>{}{}</td></tr></tbody></table>",
        escape(&row.received),
        escape(&row.channel),
        escape(&row.message_type),
        escape(&row.sender),
        escape(&row.control_id),
        escape(&row.state),
        d.state_reason
            .as_deref()
            .map(|r| format!(" ({})", escape(r)))
            .unwrap_or_default(),
        id = row.id,
    );
    let mut links = Vec::new();
    if let Some(q) = d.quarantine_entry {
        links.push(format!(
            "<li><a href=\"/console/quarantine/{q}\">Quarantine entry {q}</a></li>"
        ));
    }
    for p in &d.patients {
        links.push(format!(
            "<li><a href=\"/console/patients/{}\">Patient {}</a> (golden record)</li>",
            url_encode(p),
            escape(p)
        ));
    }
    if !links.is_empty() {
        let _ = write!(
            body,
            "<nav aria-label=\"Related\"><ul class=\"related\">{}</ul></nav>",
            links.concat()
        );
    }

    body.push_str("<h2>Hops</h2><table class=\"hops\"><thead><tr><th scope=\"col\">Hop</th><th scope=\"col\">Destination</th><th scope=\"col\">At</th></tr></thead><tbody>");
    for (hop, at) in &d.hops {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td></td><td><time datetime=\"{at}\">{at}</time></td></tr>",
            escape(hop),
            at = escape(at)
        );
    }
    for e in &d.destinations {
        for (hop, at) in [
            ("Queued", Some(&e.queued)),
            ("First sent", e.first_sent.as_ref()),
            ("Acknowledged", e.acked.as_ref()),
        ] {
            if let Some(at) = at {
                let _ = write!(
                    body,
                    "<tr><th scope=\"row\">{hop}</th><td>{}</td><td><time datetime=\"{at}\">{at}</time></td></tr>",
                    escape(&e.destination),
                    at = escape(at)
                );
            }
        }
    }
    body.push_str("</tbody></table>");

    if d.quarantine_entry.is_some() || !d.findings.is_empty() {
        body.push_str("<h2>Validation findings</h2>");
        if d.findings.is_empty() {
            body.push_str("<p>None stored.</p>");
        } else {
            body.push_str("<table class=\"findings\"><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Where</th><th scope=\"col\">Code</th><th scope=\"col\">Finding</th></tr></thead><tbody>");
            for f in &d.findings {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                    escape(&f.severity),
                    escape(&f.path),
                    f.code,
                    escape(&f.message)
                );
            }
            body.push_str("</tbody></table>");
        }
    }

    body.push_str("<h2>Message</h2>");
    body.push_str(&labelled_message(&d.raw, &d.version));
    body.push_str("<h2>Message tree</h2>");
    body.push_str(&message_tree(&d.raw, &d.version));

    let operate = viewer.operates && viewer.csrf.is_some();
    body.push_str("<h2>Destinations</h2><table class=\"destinations\"><thead><tr><th scope=\"col\">Destination</th><th scope=\"col\">Entry</th><th scope=\"col\">State</th><th scope=\"col\">Attempts</th><th scope=\"col\">Queued</th><th scope=\"col\">First sent</th><th scope=\"col\">Last sent</th><th scope=\"col\">Acknowledged</th><th scope=\"col\">Answer</th><th scope=\"col\">Error</th>");
    if operate {
        body.push_str("<th scope=\"col\">Action</th>");
    }
    body.push_str("</tr></thead><tbody>");
    for (i, e) in d.destinations.iter().enumerate() {
        let latest = !d.destinations[i + 1..]
            .iter()
            .any(|later| later.destination == e.destination);
        let state = match &e.state_reason {
            Some(r) if !r.is_empty() => format!("{} ({})", escape(&e.state), escape(r)),
            _ => escape(&e.state),
        };
        let _ = write!(
            body,
            "<tr data-entry=\"{}\"><th scope=\"row\">{}</th><td class=\"n\">{}</td><td class=\"state\">{state}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            e.entry_id,
            escape(&e.destination),
            e.entry_id,
            e.attempts,
            escape(&e.queued),
            escape(e.first_sent.as_deref().unwrap_or("")),
            escape(e.last_sent.as_deref().unwrap_or("")),
            escape(e.acked.as_deref().unwrap_or("")),
            escape(e.answer.as_deref().unwrap_or("")),
            escape(e.error.as_deref().unwrap_or(""))
        );
        if operate {
            body.push_str("<td>");
            if latest && RESENDABLE.contains(&e.state.as_str()) {
                let _ = write!(
                    body,
                    "<form class=\"inline\" method=\"post\" action=\"/console/messages/{}/resend\">{}<input type=\"hidden\" name=\"destination\" value=\"{}\"><button type=\"submit\" aria-label=\"Resend to {}\">Resend</button></form>",
                    row.id,
                    viewer.csrf_field(),
                    escape(&e.destination),
                    escape(&e.destination)
                );
            }
            body.push_str("</td>");
        }
        body.push_str("</tr>");
    }
    if d.destinations.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"{}\">No destination entries.</td></tr>",
            if operate { 11 } else { 10 }
        );
    }
    body.push_str("</tbody></table>");
    for e in &d.destinations {
        if let Some(payload) = &e.payload {
            let _ = write!(
                body,
                "<h3>Sent to {} (entry {})</h3>",
                escape(&e.destination),
                e.entry_id
            );
            body.push_str(&labelled_message(payload, &d.version));
        }
    }

    if let Some(resources) = &d.fhir {
        body.push_str("<h2>FHIR resources</h2>");
        if resources.is_empty() {
            body.push_str("<p>The repository holds no resource from this message.</p>");
        } else {
            body.push_str("<ul class=\"fhir\">");
            for r in resources {
                let _ = write!(
                    body,
                    "<li><details><summary><a href=\"/fhir/{t}/{id}/_history/{v}\">{t}/{id}</a> version {v}</summary><pre>{}</pre></details></li>",
                    escape(&r.json),
                    t = escape(&r.resource_type),
                    id = escape(&r.id),
                    v = r.version,
                );
            }
            body.push_str("</ul>");
        }
    }

    if operate {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/console/messages/{}/reprocess\">{}<button type=\"submit\">Reprocess</button></form>",
            row.id,
            viewer.csrf_field()
        );
    }
    page(&format!("Message {}", row.id), Some(viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_searches_link_to_the_browser_and_the_shown_search_can_be_saved() {
        let viewer = Viewer {
            user: "ana".into(),
            role: "analyst".into(),
            csrf: Some("tok".into()),
            reads_phi: true,
            ..Viewer::default()
        };
        let saved = [SavedSearchLink {
            name: "Lab <errors>".into(),
            query: "channel=lab&state=errored".into(),
        }];
        let query = [("patient_name".to_owned(), "doe & co".to_owned())];
        let html = messages_page(&viewer, &query, &saved, &[], None, None);
        assert!(
            html.contains(
                "<a href=\"/console/messages?channel=lab&amp;state=errored\">Lab &lt;errors&gt;</a>"
            ),
            "{html}"
        );
        assert!(html.contains("action=\"/console/saved-searches/Lab%20%3Cerrors%3E/delete\""));
        assert!(
            html.contains("name=\"query\" value=\"patient_name=doe%20%26%20co\""),
            "{html}"
        );
        // Without a search shown there is nothing to save; without a session, no forms.
        let html = messages_page(&viewer, &[], &[], &[], None, None);
        assert!(html.contains("None yet.") && !html.contains("save-search"));
        let token = Viewer {
            csrf: None,
            ..viewer
        };
        let html = messages_page(&token, &query, &saved, &[], None, None);
        assert!(!html.contains("Saved searches"));
    }

    #[test]
    fn fields_are_labelled_from_the_standard_and_escaped() {
        let html = labelled_message(
            b"MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|C1|P|2.5.1\rPID|1||MRN1||DOE<b>^JANE\r",
            "2.5.1",
        );
        assert!(
            html.contains("title=\"PID-5 Patient Name (XPN)\""),
            "{html}"
        );
        assert!(html.contains("title=\"PID-3 Patient Identifier List (CX)\""));
        assert!(html.contains("title=\"MSH-10 Message Control ID (ST)\">C1<"));
        assert!(html.contains("DOE&lt;b&gt;^JANE"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("table 0076") || html.contains("MSH-9 Message Type"));
    }

    #[test]
    fn the_tree_nests_fields_repetitions_components_and_subcomponents_with_labels() {
        let html = message_tree(
            b"MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|C1|P|2.5.1\rPID|1||MRN1^^^H&1.2.3&ISO~MRN2||DOE<b>^JANE\r",
            "2.5.1",
        );
        // Segment > field > repetition > component > subcomponent, each labelled.
        assert!(
            html.contains(
                "<summary><span class=\"seg\">PID</span> Patient Identification</summary>"
            ),
            "{html}"
        );
        assert!(
            html.contains("PID-3 Patient Identifier List (CX)"),
            "{html}"
        );
        assert!(html.contains("<summary>Repetition 2</summary>"), "{html}");
        assert!(
            html.contains("PID-3.1 ID Number (ST)</span> <code>MRN1</code>"),
            "{html}"
        );
        assert!(
            html.contains("PID-3.4.2 Universal ID</span> <code>1.2.3</code>"),
            "{html}"
        );
        assert!(
            html.contains("PID-5.1 Family Name (FN)</span> <code>DOE&lt;b&gt;</code>")
                || html.contains("PID-5.1 Family Name"),
            "{html}"
        );
        // MSH-1 and MSH-2 are shown as they are, not split.
        assert!(
            html.contains("MSH-2 Encoding Characters (ST)</span> <code>^~\\&amp;</code>"),
            "{html}"
        );
        assert!(
            html.contains("MSH-9.2 Trigger Event (ID)</span> <code>R01</code>"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
        // Balanced: every details closed.
        assert_eq!(
            html.matches("<details").count(),
            html.matches("</details>").count()
        );
    }

    #[test]
    fn the_detail_page_shows_hops_links_findings_and_resend_only_for_operators() {
        let detail = MessageDetail {
            row: MessageRow {
                id: 7,
                state: "dead_lettered".into(),
                ..MessageRow::default()
            },
            version: "2.5.1".into(),
            raw: b"MSH|^~\\&|LAB|H|EHR|H|2024||ORU^R01|C1|P|2.5.1\r".to_vec(),
            hops: vec![("Received".into(), "2026-01-01T00:00:00.000001Z".into())],
            destinations: vec![
                DestinationEntry {
                    entry_id: 3,
                    destination: "lis".into(),
                    state: "discarded".into(),
                    state_reason: Some("discarded by olivia: gone".into()),
                    queued: "2026-01-01T00:00:01Z".into(),
                    first_sent: Some("2026-01-01T00:00:02Z".into()),
                    ..DestinationEntry::default()
                },
                DestinationEntry {
                    entry_id: 4,
                    destination: "ehr".into(),
                    state: "delivered".into(),
                    queued: "2026-01-01T00:00:01Z".into(),
                    acked: Some("2026-01-01T00:00:03Z".into()),
                    ..DestinationEntry::default()
                },
            ],
            quarantine_entry: Some(12),
            patients: vec!["E5".into()],
            fhir: Some(vec![FhirResourceView {
                resource_type: "Patient".into(),
                id: "p1".into(),
                version: 2,
                json: "{\"resourceType\":\"Patient\"}".into(),
            }]),
            ..MessageDetail::default()
        };
        let operator = Viewer {
            user: "olivia".into(),
            role: "operator".into(),
            csrf: Some("tok".into()),
            reads_phi: true,
            operates: true,
            ..Viewer::default()
        };
        let html = message_page(&operator, &detail);
        assert!(
            html.contains("<a href=\"/console/quarantine/12\">"),
            "{html}"
        );
        assert!(html.contains("<a href=\"/console/patients/E5\">"), "{html}");
        assert!(
            html.contains("<time datetime=\"2026-01-01T00:00:00.000001Z\">"),
            "{html}"
        );
        assert!(
            html.contains("<th scope=\"row\">First sent</th><td>lis</td>"),
            "{html}"
        );
        assert!(
            html.contains("<th scope=\"row\">Acknowledged</th><td>ehr</td>"),
            "{html}"
        );
        assert!(
            html.contains("discarded (discarded by olivia: gone)"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"/fhir/Patient/p1/_history/2\">Patient/p1</a>"),
            "{html}"
        );
        assert!(html.contains("&quot;resourceType&quot;"), "{html}");
        // A discarded entry has no resend; the delivered one has, with the token.
        assert_eq!(html.matches("/resend\"").count(), 1, "{html}");
        assert!(
            html.contains("name=\"destination\" value=\"ehr\""),
            "{html}"
        );
        let analyst = Viewer {
            operates: false,
            ..operator
        };
        let html = message_page(&analyst, &detail);
        assert!(
            !html.contains("/resend") && !html.contains("/reprocess"),
            "{html}"
        );
    }
}

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

/// A destination's entry on the message's detail page.
#[derive(Debug, Clone, Default)]
pub struct DestinationEntry {
    pub destination: String,
    pub state: String,
    pub attempts: u64,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub payload: Option<Vec<u8>>,
}

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

/// A message's detail page: its header fields, the labelled message, each
/// destination's entry with what it was sent, and a reprocess button for operators.
pub fn message_page(
    viewer: &Viewer,
    row: &MessageRow,
    version: &str,
    raw: &[u8],
    destinations: &[DestinationEntry],
    can_operate: bool,
) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<table><caption>Message {id}</caption><tbody>\
         <tr><th scope=\"row\">Received</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Channel</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Type</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Sender</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Control id</th><td>{}</td></tr>\
         <tr><th scope=\"row\">State</th><td>{}</td></tr></tbody></table>",
        escape(&row.received),
        escape(&row.channel),
        escape(&row.message_type),
        escape(&row.sender),
        escape(&row.control_id),
        escape(&row.state),
        id = row.id,
    );
    body.push_str("<h2>Message</h2>");
    body.push_str(&labelled_message(raw, version));
    body.push_str("<h2>Destinations</h2><table><thead><tr><th scope=\"col\">Destination</th><th scope=\"col\">State</th><th scope=\"col\">Attempts</th><th scope=\"col\">Answer</th><th scope=\"col\">Error</th></tr></thead><tbody>");
    for d in destinations {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.destination),
            escape(&d.state),
            d.attempts,
            escape(d.answer.as_deref().unwrap_or("")),
            escape(d.error.as_deref().unwrap_or(""))
        );
    }
    if destinations.is_empty() {
        body.push_str("<tr><td colspan=\"5\">No destination entries.</td></tr>");
    }
    body.push_str("</tbody></table>");
    for d in destinations {
        if let Some(payload) = &d.payload {
            let _ = write!(body, "<h3>Sent to {}</h3>", escape(&d.destination));
            body.push_str(&labelled_message(payload, version));
        }
    }
    if let (true, Some(csrf)) = (can_operate, &viewer.csrf) {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/console/messages/{}/reprocess\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\"><button type=\"submit\">Reprocess</button></form>",
            row.id,
            escape(csrf)
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
}

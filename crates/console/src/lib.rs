//! Corridor's web console as HTML: server-rendered pages and the assets they load, all
//! compiled into the binary. No HTTP framework and no I/O: the `api` crate declares the
//! console's routes in its one route table (so the one access check covers them), reads
//! what a page shows, and hands it to these functions.
//!
//! Pages carry no inline script or style: the [`CONTENT_SECURITY_POLICY`] allows
//! `'self'` only. Live updates are plain JavaScript (`assets/console.js`) reading
//! server-sent events; there is no front-end build and no Node.js at run time.
//!
//! Every value shown is HTML-escaped ([`escape`]). What a role may see is decided by
//! the caller: [`Dashboard`] holds counts only (no patient data), so a viewer's
//! dashboard has nothing to hide; pages with message content are only rendered for
//! callers allowed to read it.

use std::fmt::Write as _;

/// The `Content-Security-Policy` of every console page: scripts, styles, images and
/// connections (server-sent events) from the console's own origin only; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// An asset served under `/console/assets/NAME`: its content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "console.css" => Some((
            "text/css; charset=utf-8",
            include_bytes!("../assets/console.css"),
        )),
        "console.js" => Some((
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/console.js"),
        )),
        _ => None,
    }
}

/// `text` with `& < > " '` escaped, safe in element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a query string value.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Who the page is shown to, for the header: their name and role, and the session's
/// CSRF token for the forms that change something (none with a bearer token).
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub user: String,
    pub role: String,
    pub csrf: Option<String>,
    /// Whether the role reads message content (the message browser is linked).
    pub reads_phi: bool,
}

fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(v) = viewer {
        nav.push_str("<a href=\"/\">Dashboard</a>");
        if v.reads_phi {
            nav.push_str("<a href=\"/console/messages\">Messages</a>");
        }
        let _ = write!(
            nav,
            "<span>{} ({})</span>",
            escape(&v.user),
            escape(&v.role)
        );
        if let Some(csrf) = &v.csrf {
            let _ = write!(
                nav,
                "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
                escape(csrf)
            );
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Corridor</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head>\
         <body><header><strong>Corridor</strong>{nav}</header>\
         <main><h1>{title}</h1>{body}</main></body></html>\n",
        title = escape(title),
    )
}

/// The sign-in page; `failed` after a refused attempt; `next` is where to go after.
pub fn login_page(failed: bool, next: &str) -> String {
    let error = if failed {
        "<p class=\"error\" role=\"alert\">Unknown user or wrong password.</p>"
    } else {
        ""
    };
    let body = format!(
        "<form class=\"login\" method=\"post\" action=\"/login\">{error}\
         <label for=\"user\">User<input id=\"user\" name=\"user\" autocomplete=\"username\" required></label>\
         <label for=\"password\">Password<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form>",
        escape(next)
    );
    page("Sign in", None, &body)
}

/// A page saying the role does not allow what was asked.
pub fn forbidden_page(viewer: &Viewer, what: &str) -> String {
    page(
        "Not allowed",
        Some(viewer),
        &format!(
            "<p>Your role ({}) does not allow {}.</p>",
            escape(&viewer.role),
            escape(what)
        ),
    )
}

/// The message states the dashboard counts, in the order shown.
pub const STATES: &[&str] = &[
    "received",
    "processed",
    "filtered",
    "quarantined",
    "errored",
    "delivered",
    "rejected",
];

/// One channel's message counts by state.
#[derive(Debug, Clone, Default)]
pub struct ChannelCounts {
    pub channel: String,
    /// Count per state, in [`STATES`] order.
    pub counts: Vec<u64>,
}

/// One destination's queue.
#[derive(Debug, Clone, Default)]
pub struct DestinationCounts {
    pub channel: String,
    pub destination: String,
    pub queued: u64,
    pub delivered: u64,
    pub errored: u64,
    pub dead_lettered: u64,
    pub depth: u64,
    pub oldest_queued_age_ms: Option<u64>,
}

/// Colour thresholds of a queue's oldest entry: yellow from `warn_ms`, red from
/// `bad_ms`.
#[derive(Debug, Clone, Copy)]
pub struct AgeThresholds {
    pub warn_ms: u64,
    pub bad_ms: u64,
}

impl Default for AgeThresholds {
    fn default() -> AgeThresholds {
        AgeThresholds {
            warn_ms: 60_000,
            bad_ms: 300_000,
        }
    }
}

impl AgeThresholds {
    /// The CSS class of an age: `ok`, `warn` or `bad`.
    pub fn level(&self, age_ms: Option<u64>) -> &'static str {
        match age_ms {
            Some(a) if a >= self.bad_ms => "bad",
            Some(a) if a >= self.warn_ms => "warn",
            _ => "ok",
        }
    }
}

/// What the dashboard shows: counts only, never patient data.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub channels: Vec<ChannelCounts>,
    pub destinations: Vec<DestinationCounts>,
    pub thresholds: AgeThresholds,
}

/// How an age reads: `-`, `850 ms`, `42 s`, `7 min`, `3 h`.
pub fn age_text(age_ms: Option<u64>) -> String {
    match age_ms {
        None => "-".to_owned(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) if ms < 120_000 => format!("{} s", ms / 1_000),
        Some(ms) if ms < 7_200_000 => format!("{} min", ms / 60_000),
        Some(ms) => format!("{} h", ms / 3_600_000),
    }
}

impl Dashboard {
    /// Every live value by its `data-count` key, for the events stream:
    /// `channel/STATE`, `dest/CHANNEL/NAME/FIELD`; ages with their colour level.
    pub fn live_values(&self) -> Vec<(String, String, Option<&'static str>)> {
        let mut values = Vec::new();
        for c in &self.channels {
            for (state, n) in STATES.iter().zip(&c.counts) {
                values.push((format!("{}/{state}", c.channel), n.to_string(), None));
            }
        }
        for d in &self.destinations {
            let key = |field: &str| format!("dest/{}/{}/{field}", d.channel, d.destination);
            values.push((key("queued"), d.queued.to_string(), None));
            values.push((key("delivered"), d.delivered.to_string(), None));
            values.push((key("errored"), d.errored.to_string(), None));
            values.push((key("dead_lettered"), d.dead_lettered.to_string(), None));
            values.push((key("depth"), d.depth.to_string(), None));
            values.push((
                key("oldest"),
                age_text(d.oldest_queued_age_ms),
                Some(self.thresholds.level(d.oldest_queued_age_ms)),
            ));
        }
        values
    }
}

/// The dashboard page. Counts link to the message browser filtered on them when the
/// viewer reads message content.
pub fn dashboard_page(viewer: &Viewer, board: &Dashboard) -> String {
    let mut body = String::from("<div data-live=\"/console/events\">");
    body.push_str("<h2>Channels</h2><table><caption>Messages by state</caption><thead><tr><th scope=\"col\">Channel</th>");
    for state in STATES {
        let _ = write!(body, "<th scope=\"col\">{state}</th>");
    }
    body.push_str("</tr></thead><tbody>");
    for c in &board.channels {
        let _ = write!(body, "<tr><th scope=\"row\">{}</th>", escape(&c.channel));
        for (state, n) in STATES.iter().zip(&c.counts) {
            let key = escape(&format!("{}/{state}", c.channel));
            if viewer.reads_phi {
                let _ = write!(
                    body,
                    "<td class=\"n\" data-count=\"{key}\"><a href=\"/console/messages?channel={}&amp;state={state}\">{n}</a></td>",
                    url_encode(&c.channel)
                );
            } else {
                let _ = write!(body, "<td class=\"n\" data-count=\"{key}\">{n}</td>");
            }
        }
        body.push_str("</tr>");
    }
    if board.channels.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"{}\">No messages yet.</td></tr>",
            STATES.len() + 1
        );
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Destinations</h2><table><caption>Queues</caption><thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">Destination</th><th scope=\"col\">queued</th><th scope=\"col\">delivered</th><th scope=\"col\">errored</th><th scope=\"col\">dead-lettered</th><th scope=\"col\">depth</th><th scope=\"col\">oldest queued</th></tr></thead><tbody>");
    for d in &board.destinations {
        let key = |field: &str| escape(&format!("dest/{}/{}/{field}", d.channel, d.destination));
        let _ = write!(
            body,
            "<tr><td>{}</td><th scope=\"row\">{}</th>",
            escape(&d.channel),
            escape(&d.destination)
        );
        for (field, n) in [
            ("queued", d.queued),
            ("delivered", d.delivered),
            ("errored", d.errored),
            ("dead_lettered", d.dead_lettered),
            ("depth", d.depth),
        ] {
            let _ = write!(
                body,
                "<td class=\"n\" data-count=\"{}\">{n}</td>",
                key(field)
            );
        }
        let level = board.thresholds.level(d.oldest_queued_age_ms);
        let _ = write!(
            body,
            "<td class=\"n {level}\" data-count=\"{}\">{}</td></tr>",
            key("oldest"),
            age_text(d.oldest_queued_age_ms)
        );
    }
    if board.destinations.is_empty() {
        body.push_str("<tr><td colspan=\"8\">No destinations running.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    page("Dashboard", Some(viewer), &body)
}

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
];

/// The message browser: the search form (filled with `query`), the page of rows, a
/// link to the next page, or an error from the search.
pub fn messages_page(
    viewer: &Viewer,
    query: &[(String, String)],
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

/// A time in microseconds since the epoch as the console shows it (RFC 3339, UTC).
pub fn time_text(micros: i64) -> String {
    datetime::rfc3339::format_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_viewer_dashboard_has_counts_and_no_links_to_messages() {
        let board = Dashboard {
            channels: vec![ChannelCounts {
                channel: "lab".into(),
                counts: vec![1, 2, 0, 0, 3, 0, 0],
            }],
            ..Dashboard::default()
        };
        let viewer = Viewer {
            user: "vic".into(),
            role: "viewer".into(),
            csrf: None,
            reads_phi: false,
        };
        let html = dashboard_page(&viewer, &board);
        assert!(html.contains("data-count=\"lab/errored\">3<"), "{html}");
        assert!(!html.contains("/console/messages"));
        let analyst = Viewer {
            reads_phi: true,
            ..viewer
        };
        let html = dashboard_page(&analyst, &board);
        assert!(html.contains("href=\"/console/messages?channel=lab&amp;state=errored\">3<"));
    }

    #[test]
    fn ages_take_their_colour_from_the_thresholds() {
        let t = AgeThresholds {
            warn_ms: 1_000,
            bad_ms: 5_000,
        };
        assert_eq!(t.level(None), "ok");
        assert_eq!(t.level(Some(999)), "ok");
        assert_eq!(t.level(Some(1_000)), "warn");
        assert_eq!(t.level(Some(5_000)), "bad");
    }
}

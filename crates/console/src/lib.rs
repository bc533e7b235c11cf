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

mod admin;
mod audit;
mod charts;
mod dashboard;
mod messages;
mod patients;
mod quality;
mod quarantine;

pub use admin::*;
pub use audit::*;
pub use charts::*;
pub use dashboard::*;
pub use messages::*;
pub use patients::*;
pub use quality::*;
pub use quarantine::*;

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
    /// Whether the role reads message content (the message browser, the quarantine and
    /// the patient index are linked).
    pub reads_phi: bool,
    /// Whether the role changes messages: reprocess, edit, discard, acknowledge alerts.
    pub operates: bool,
    /// Whether the role makes patient index decisions: reviews, merge, unmerge.
    pub stewards: bool,
    /// Whether the role administers: users, tokens, configuration, the audit trail.
    pub administers: bool,
}

impl Viewer {
    /// The hidden CSRF field of a form that changes something (empty without a session).
    pub fn csrf_field(&self) -> String {
        match &self.csrf {
            Some(csrf) => format!(
                "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
                escape(csrf)
            ),
            None => String::new(),
        }
    }
}

/// What the last action did, shown above a page after a form's redirect: `notice`
/// when it worked, `error` when it did not.
pub fn outcome_html(notice: Option<&str>, error: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(n) = notice.filter(|n| !n.is_empty()) {
        let _ = write!(out, "<p class=\"notice\" role=\"status\">{}</p>", escape(n));
    }
    if let Some(e) = error.filter(|e| !e.is_empty()) {
        let _ = write!(out, "<p class=\"error\" role=\"alert\">{}</p>", escape(e));
    }
    out
}

pub(crate) fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(v) = viewer {
        nav.push_str("<a href=\"/\">Dashboard</a>");
        if v.reads_phi {
            nav.push_str("<a href=\"/console/messages\">Messages</a>");
            nav.push_str("<a href=\"/console/quarantine\">Quarantine</a>");
        }
        nav.push_str("<a href=\"/console/data-quality\">Data quality</a>");
        if v.reads_phi {
            nav.push_str("<a href=\"/console/reviews\">Patient index</a>");
        }
        if v.administers {
            nav.push_str("<a href=\"/console/admin\">Administration</a>");
            nav.push_str("<a href=\"/console/audit\">Audit trail</a>");
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

/// A time in microseconds since the epoch as the console shows it (RFC 3339, UTC).
pub fn time_text(micros: i64) -> String {
    datetime::rfc3339::format_micros(micros)
}

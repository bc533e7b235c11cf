//! Administration: the running channels with their listeners and destinations, the
//! configuration history with each version's diff, the users and tokens, and the
//! audit trail's export; shown to administrators. Each channel has start, pause and
//! stop buttons, each destination pause or resume (CSRF-protected forms).

use std::fmt::Write as _;

use crate::{Viewer, escape, page};

/// A running channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelView {
    pub name: String,
    /// The source's listening address.
    pub listen: String,
    pub received: u64,
    pub processed: u64,
    pub errored: u64,
    /// Its destinations' names.
    pub destinations: Vec<String>,
    /// `running`, `paused` or `stopped` (an operator's start, stop and pause).
    pub state: String,
    /// Its destinations an operator paused.
    pub paused_destinations: Vec<String>,
}

/// One applied configuration.
#[derive(Debug, Clone, Default)]
pub struct ConfigVersionView {
    pub n: i64,
    pub applied_at: String,
    pub applied_by: String,
    /// A unified diff against the version before (empty for the first).
    pub diff: String,
}

/// A user.
#[derive(Debug, Clone, Default)]
pub struct UserView {
    pub name: String,
    pub role: String,
    pub created: String,
    pub has_password: bool,
    pub disabled: bool,
}

/// A token (never its secret: the hint only).
#[derive(Debug, Clone, Default)]
pub struct TokenView {
    pub id: i64,
    pub user: String,
    pub hint: String,
    pub role: String,
    pub created: String,
    pub expires: String,
    pub revoked: String,
}

/// What the administration page shows.
#[derive(Debug, Clone, Default)]
pub struct AdminView {
    pub channels: Vec<ChannelView>,
    /// Newest first; the running configuration's text, when known.
    pub versions: Vec<ConfigVersionView>,
    pub running_config: Option<String>,
    pub users: Vec<UserView>,
    pub tokens: Vec<TokenView>,
    /// What the last form did (`?notice=`, `?error=`).
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// A form of one button posting to `action` with the session's CSRF token.
fn button(viewer: &Viewer, action: &str, label: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}<button type=\"submit\">{}</button></form>",
        escape(action),
        viewer.csrf_field(),
        escape(label)
    )
}

/// The start, pause and stop buttons of a channel (those that change its state).
fn channel_buttons(viewer: &Viewer, c: &ChannelView) -> String {
    let base = format!("/console/channels/{}", crate::url_encode(&c.name));
    let mut out = String::new();
    for (action, label) in [("start", "Start"), ("pause", "Pause"), ("stop", "Stop")] {
        let current = matches!(
            (action, c.state.as_str()),
            ("start", "running") | ("pause", "paused") | ("stop", "stopped")
        );
        if !current {
            out.push_str(&button(
                viewer,
                &format!("{base}/{action}"),
                &format!("{label} {}", c.name),
            ));
        }
    }
    out
}

/// A destination's name, its state and its pause or resume button.
fn destination_cell(viewer: &Viewer, c: &ChannelView, operate: bool) -> String {
    let mut out = String::new();
    for d in &c.destinations {
        let paused = c.paused_destinations.contains(d);
        let _ = write!(
            out,
            "<div>{} <span class=\"state {}\">{}</span>",
            escape(d),
            if paused { "paused" } else { "running" },
            if paused { "paused" } else { "running" },
        );
        if operate {
            let (action, label) = if paused {
                ("resume", "Resume")
            } else {
                ("pause", "Pause")
            };
            out.push_str(&button(
                viewer,
                &format!(
                    "/console/channels/{}/destinations/{}/{action}",
                    crate::url_encode(&c.name),
                    crate::url_encode(d)
                ),
                &format!("{label} {d}"),
            ));
        }
        out.push_str("</div>");
    }
    out
}

/// A diff with its added and removed lines marked for the stylesheet.
fn diff_html(diff: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in diff.lines() {
        let class = match line.chars().next() {
            Some('+') if !line.starts_with("+++") => "add",
            Some('-') if !line.starts_with("---") => "del",
            Some('@') => "hunk",
            _ => "",
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(line));
    }
    out.push_str("</pre>");
    out
}

/// The administration page.
pub fn admin_page(viewer: &Viewer, a: &AdminView) -> String {
    let operate = viewer.operates && viewer.csrf.is_some();
    let mut body = crate::outcome_html(a.notice.as_deref(), a.error.as_deref());
    body.push_str(
        "<h2>Channels</h2><table><caption>Running channels</caption><thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">State</th><th scope=\"col\">Source</th><th scope=\"col\">received</th><th scope=\"col\">processed</th><th scope=\"col\">errored</th><th scope=\"col\">Destinations</th></tr></thead><tbody>",
    );
    for c in &a.channels {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td><span class=\"state {}\">{}</span>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.state),
            escape(&c.state),
            if operate {
                channel_buttons(viewer, c)
            } else {
                String::new()
            },
            escape(&c.listen),
            c.received,
            c.processed,
            c.errored,
            destination_cell(viewer, c, operate),
        );
    }
    if a.channels.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No channel is running.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if let Some(config) = &a.running_config {
        body.push_str("<details><summary>The running configuration (sources, steps and destinations)</summary><pre class=\"config\">");
        body.push_str(&escape(config));
        body.push_str("</pre></details>");
    }
    body.push_str("<h2>Configuration history</h2>");
    if a.versions.is_empty() {
        body.push_str("<p>No configuration recorded.</p>");
    }
    for v in &a.versions {
        let _ = write!(
            body,
            "<section class=\"version\"><h3>Version {} applied {} by {}</h3>",
            v.n,
            escape(&v.applied_at),
            escape(&v.applied_by)
        );
        if v.diff.is_empty() {
            body.push_str("<p>The first configuration.</p>");
        } else {
            body.push_str(&diff_html(&v.diff));
        }
        body.push_str("</section>");
    }
    body.push_str("<h2>Users</h2><table><thead><tr><th scope=\"col\">User</th><th scope=\"col\">Role</th><th scope=\"col\">Added</th><th scope=\"col\">Password</th><th scope=\"col\">Disabled</th></tr></thead><tbody>");
    for u in &a.users {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&u.name),
            escape(&u.role),
            escape(&u.created),
            if u.has_password { "set" } else { "none" },
            if u.disabled { "disabled" } else { "" },
        );
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Tokens</h2><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Owner</th><th scope=\"col\">Starts with</th><th scope=\"col\">Role</th><th scope=\"col\">Created</th><th scope=\"col\">Expires</th><th scope=\"col\">Revoked</th></tr></thead><tbody>");
    for t in &a.tokens {
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.id,
            escape(&t.user),
            escape(&t.hint),
            escape(&t.role),
            escape(&t.created),
            escape(&t.expires),
            escape(&t.revoked),
        );
    }
    if a.tokens.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No tokens.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(
        "<h2>Audit trail</h2><p><a href=\"/console/audit\">Browse and filter the audit trail</a></p><form class=\"search\" method=\"get\" action=\"/api/audit\">\
         <label for=\"audit-since\">Since (a date or an RFC 3339 time)<input id=\"audit-since\" name=\"since\" required></label>\
         <label for=\"audit-format\">Format<select id=\"audit-format\" name=\"format\"><option value=\"csv\">CSV</option><option value=\"json\">JSON</option></select></label>\
         <div><button type=\"submit\">Export</button></div></form>",
    );
    page("Administration", Some(viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_added_and_removed_lines_escaped() {
        let html = diff_html("--- a\n+++ b\n@@ -1 +1 @@\n-x = \"<1>\"\n+x = 2\n");
        assert!(
            html.contains("<span class=\"del\">-x = &quot;&lt;1&gt;&quot;</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"add\">+x = 2</span>"));
        assert!(html.contains("<span class=\"\">--- a</span>"));
    }
}

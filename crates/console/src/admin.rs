//! Administration: the running channels with their listeners and destinations, the
//! configuration history with each version's diff, the users and tokens, and the
//! audit trail's export; shown to administrators. Each channel and each destination
//! has start, pause and stop buttons; users are added and disabled, tokens created and
//! revoked, from forms (each CSRF-protected). A new token's secret is shown once, on
//! [`token_created_page`].

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
    /// Its destinations an operator paused or stopped, with that state (`paused`,
    /// `stopped`); the others run.
    pub held_destinations: Vec<(String, String)>,
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

/// The roles a user or token can be given, narrowest first.
pub const ROLES: [&str; 5] = ["viewer", "analyst", "operator", "steward", "admin"];

/// A token (never its secret: the hint only).
#[derive(Debug, Clone, Default)]
pub struct TokenView {
    pub id: i64,
    pub user: String,
    pub hint: String,
    pub role: String,
    /// SMART-style scopes, space-separated (empty: none).
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub revoked: String,
}

/// A token just created: its secret, shown once.
#[derive(Debug, Clone, Default)]
pub struct TokenCreatedView {
    pub id: i64,
    pub user: String,
    pub role: String,
    pub scopes: String,
    pub expires: String,
    pub secret: String,
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

/// The start, pause and stop buttons of a channel or destination at `base` (those that
/// change its state), each labelled with `name`.
fn state_buttons(viewer: &Viewer, base: &str, name: &str, state: &str) -> String {
    let mut out = String::new();
    for (action, label) in [("start", "Start"), ("pause", "Pause"), ("stop", "Stop")] {
        let current = matches!(
            (action, state),
            ("start", "running") | ("pause", "paused") | ("stop", "stopped")
        );
        if !current {
            out.push_str(&button(
                viewer,
                &format!("{base}/{action}"),
                &format!("{label} {name}"),
            ));
        }
    }
    out
}

/// The start, pause and stop buttons of a channel.
fn channel_buttons(viewer: &Viewer, c: &ChannelView) -> String {
    let base = format!("/console/channels/{}", crate::url_encode(&c.name));
    state_buttons(viewer, &base, &c.name, &c.state)
}

/// A destination's name, its state (running, paused: queues and sends nothing;
/// stopped: the same, its connection to the receiver closed) and its buttons.
fn destination_cell(viewer: &Viewer, c: &ChannelView, operate: bool) -> String {
    let mut out = String::new();
    for d in &c.destinations {
        let state = c
            .held_destinations
            .iter()
            .find(|(name, _)| name == d)
            .map_or("running", |(_, state)| state.as_str());
        let _ = write!(
            out,
            "<div>{} <span class=\"state {}\">{}</span>",
            escape(d),
            escape(state),
            escape(state),
        );
        if operate {
            let base = format!(
                "/console/channels/{}/destinations/{}",
                crate::url_encode(&c.name),
                crate::url_encode(d)
            );
            out.push_str(&state_buttons(viewer, &base, d, state));
        }
        out.push_str("</div>");
    }
    out
}

/// A `<select>` of the roles, `first` (value, label) offered first when given.
fn role_select(id: &str, name: &str, first: Option<(&str, &str)>) -> String {
    let mut out = format!("<select id=\"{id}\" name=\"{name}\">");
    if let Some((value, label)) = first {
        let _ = write!(
            out,
            "<option value=\"{}\">{}</option>",
            escape(value),
            escape(label)
        );
    }
    for role in ROLES {
        let _ = write!(out, "<option value=\"{role}\">{role}</option>");
    }
    out.push_str("</select>");
    out
}

/// The users' table, with a disable button per enabled user and the add form.
fn users_html(viewer: &Viewer, users: &[UserView], administer: bool) -> String {
    let mut body = String::from(
        "<h2>Users</h2><table><caption>Local users (last sign-in is not kept; the audit trail has every login)</caption><thead><tr><th scope=\"col\">User</th><th scope=\"col\">Role</th><th scope=\"col\">Enabled</th><th scope=\"col\">Added</th><th scope=\"col\">Password</th><th scope=\"col\">Change</th></tr></thead><tbody>",
    );
    for u in users {
        let change = if administer && !u.disabled {
            button(
                viewer,
                &format!("/console/users/{}/disable", crate::url_encode(&u.name)),
                &format!("Disable {}", u.name),
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&u.name),
            escape(&u.role),
            if u.disabled { "disabled" } else { "enabled" },
            escape(&u.created),
            if u.has_password { "set" } else { "none" },
            change,
        );
    }
    if users.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No users.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if administer {
        let _ = write!(
            body,
            "<h3>Add a user</h3><form class=\"search\" method=\"post\" action=\"/console/users\">{}\
             <label for=\"user-name\">Name<input id=\"user-name\" name=\"name\" required maxlength=\"64\" autocomplete=\"off\"></label>\
             <label for=\"user-role\">Role{}</label>\
             <label for=\"user-password\">Password (at least 12 characters)<input id=\"user-password\" name=\"password\" type=\"password\" required minlength=\"12\" autocomplete=\"new-password\"></label>\
             <label for=\"user-password-again\">Password again<input id=\"user-password-again\" name=\"password_again\" type=\"password\" required minlength=\"12\" autocomplete=\"new-password\"></label>\
             <div><button type=\"submit\">Add user</button></div></form>",
            viewer.csrf_field(),
            role_select("user-role", "role", None),
        );
    }
    body
}

/// The tokens' table, with a revoke button per live token and the create form.
fn tokens_html(viewer: &Viewer, tokens: &[TokenView], administer: bool) -> String {
    let mut body = String::from(
        "<h2>Tokens</h2><table><caption>API tokens (never their secrets)</caption><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Owner</th><th scope=\"col\">Starts with</th><th scope=\"col\">Role</th><th scope=\"col\">Scopes</th><th scope=\"col\">Created</th><th scope=\"col\">Expires</th><th scope=\"col\">Revoked</th><th scope=\"col\">Change</th></tr></thead><tbody>",
    );
    for t in tokens {
        let change = if administer && t.revoked.is_empty() {
            button(
                viewer,
                &format!("/console/tokens/{}/revoke", t.id),
                &format!("Revoke token {}", t.id),
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.id,
            escape(&t.user),
            escape(&t.hint),
            escape(if t.role.is_empty() {
                "(owner's)"
            } else {
                &t.role
            }),
            escape(&t.scopes),
            escape(&t.created),
            escape(if t.expires.is_empty() {
                "never"
            } else {
                &t.expires
            }),
            escape(&t.revoked),
            change,
        );
    }
    if tokens.is_empty() {
        body.push_str("<tr><td colspan=\"9\">No tokens.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if administer {
        let _ = write!(
            body,
            "<h3>Create a token</h3><form class=\"search\" method=\"post\" action=\"/console/tokens\">{}\
             <label for=\"token-user\">Owner (a user)<input id=\"token-user\" name=\"user\" required maxlength=\"64\" autocomplete=\"off\"></label>\
             <label for=\"token-role\">Role (at most the owner's){}</label>\
             <label for=\"token-expires\">Expires after (days; empty: never)<input id=\"token-expires\" name=\"expires_days\" type=\"number\" min=\"1\"></label>\
             <label for=\"token-scopes\">FHIR scopes (space-separated; empty: none)<input id=\"token-scopes\" name=\"scopes\" autocomplete=\"off\"></label>\
             <div><button type=\"submit\">Create token</button></div></form>",
            viewer.csrf_field(),
            role_select("token-role", "role", Some(("", "the owner's"))),
        );
    }
    body
}

/// The answer to the token form: the secret, shown this once (the page is served with
/// `Cache-Control: no-store`; the token list shows only its first characters).
pub fn token_created_page(viewer: &Viewer, t: &TokenCreatedView) -> String {
    let body = format!(
        "<p class=\"notice\" role=\"status\">Token {id} created for {user}.</p>\
         <p>Copy the token now: it is shown only on this page and cannot be shown again. Send it as <code>Authorization: Bearer TOKEN</code>.</p>\
         <p><label for=\"token-secret\">Token<input id=\"token-secret\" class=\"secret\" readonly size=\"60\" value=\"{secret}\"></label></p>\
         <table><tbody><tr><th scope=\"row\">Id</th><td class=\"n\">{id}</td></tr>\
         <tr><th scope=\"row\">Owner</th><td>{user}</td></tr>\
         <tr><th scope=\"row\">Role</th><td>{role}</td></tr>\
         <tr><th scope=\"row\">Scopes</th><td>{scopes}</td></tr>\
         <tr><th scope=\"row\">Expires</th><td>{expires}</td></tr></tbody></table>\
         <p><a href=\"/console/admin\">Back to administration</a></p>",
        id = t.id,
        user = escape(&t.user),
        secret = escape(&t.secret),
        role = escape(if t.role.is_empty() {
            "(owner's)"
        } else {
            &t.role
        }),
        scopes = escape(&t.scopes),
        expires = escape(if t.expires.is_empty() {
            "never"
        } else {
            &t.expires
        }),
    );
    page("Token created", Some(viewer), &body)
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
    let administer = viewer.administers && viewer.csrf.is_some();
    body.push_str(&users_html(viewer, &a.users, administer));
    body.push_str(&tokens_html(viewer, &a.tokens, administer));
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

    fn operator() -> Viewer {
        Viewer {
            user: "olivia".into(),
            role: "operator".into(),
            csrf: Some("t0k".into()),
            operates: true,
            ..Viewer::default()
        }
    }

    #[test]
    fn each_destination_offers_the_buttons_that_change_its_state() {
        let channel = ChannelView {
            name: "lab".into(),
            destinations: vec!["ehr".into(), "ris".into(), "pacs".into()],
            held_destinations: vec![
                ("ris".into(), "paused".into()),
                ("pacs".into(), "stopped".into()),
            ],
            ..ChannelView::default()
        };
        let html = destination_cell(&operator(), &channel, true);
        let cell = |name: &str| {
            html.split(&format!("<div>{name} "))
                .nth(1)
                .and_then(|rest| rest.split("</div>").next())
                .unwrap_or_default()
                .to_owned()
        };
        let base = "/console/channels/lab/destinations";
        let (ehr, ris, pacs) = (cell("ehr"), cell("ris"), cell("pacs"));
        assert!(
            ehr.contains("<span class=\"state running\">running</span>"),
            "{ehr}"
        );
        assert!(!ehr.contains(&format!("{base}/ehr/start")));
        assert!(
            ehr.contains(&format!("{base}/ehr/pause")) && ehr.contains(&format!("{base}/ehr/stop"))
        );
        assert!(ris.contains(">paused</span>") && !ris.contains(&format!("{base}/ris/pause")));
        assert!(
            ris.contains(&format!("{base}/ris/start")) && ris.contains(&format!("{base}/ris/stop"))
        );
        assert!(pacs.contains(">stopped</span>") && !pacs.contains(&format!("{base}/pacs/stop")));
        assert!(
            pacs.contains(&format!("{base}/pacs/start"))
                && pacs.contains(&format!("{base}/pacs/pause"))
        );
        assert_eq!(html.matches("name=\"csrf_token\" value=\"t0k\"").count(), 6);
    }

    #[test]
    fn the_created_token_page_escapes_what_it_shows() {
        let page = token_created_page(
            &operator(),
            &TokenCreatedView {
                id: 7,
                user: "<b>".into(),
                secret: "crd_a\"b".into(),
                ..TokenCreatedView::default()
            },
        );
        assert!(page.contains("value=\"crd_a&quot;b\""), "{page}");
        assert!(page.contains("<td>&lt;b&gt;</td>"));
        assert!(page.contains("<td>never</td>") && page.contains("<td>(owner&#39;s)</td>"));
    }
}

//! The dashboard: counts per channel and destination, queue ages coloured by the
//! configured thresholds, and the alerts that fire.

use std::fmt::Write as _;

use crate::{Viewer, escape, page, url_encode};

/// The message states the dashboard counts, in the order shown.
pub const STATES: &[&str] = &[
    "received",
    "processed",
    "filtered",
    "quarantined",
    "errored",
    "delivered",
    "dead_lettered",
    "rejected",
];

/// One channel's message counts by state.
#[derive(Debug, Clone, Default)]
pub struct ChannelCounts {
    pub channel: String,
    /// Count per state, in [`STATES`] order.
    pub counts: Vec<u64>,
    /// `paused` or `stopped` when an operator holds the channel; empty when running.
    pub held: String,
    /// Messages stored per second over the last minute.
    pub stored_per_second: f64,
    /// Messages processed (they left `received`) per second over the last minute.
    pub processed_per_second: f64,
    /// Receipt to stored (the ACK's commit), p50 and p99 in microseconds, over the last
    /// one to two minutes (`None`: nothing stored then).
    pub stored_p50_us: Option<u64>,
    pub stored_p99_us: Option<u64>,
    /// Receipt to processed (queued for the destinations, or filtered, quarantined,
    /// errored), p50 and p99 in microseconds, over the last one to two minutes.
    pub processed_p50_us: Option<u64>,
    pub processed_p99_us: Option<u64>,
    /// Connections open on the channel's listener (`None`: no listener of its own).
    pub open_connections: Option<u64>,
    /// The sender's clock lag (receipt less MSH-7) over the last five minutes.
    pub clock_lag: ClockLagText,
}

/// A channel's sender clock lag: receipt time less MSH-7, in microseconds (negative:
/// the sender's clock is ahead), median and maximum, and the messages whose MSH-7 was
/// missing or unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockLagText {
    pub p50_us: Option<i64>,
    pub max_us: Option<i64>,
    pub unreadable: u64,
}

/// How a clock lag reads: `-`, `+350 ms`, `-2.0 s`, `+12 min`.
pub fn lag_text(micros: Option<i64>) -> String {
    let Some(us) = micros else {
        return "-".to_owned();
    };
    let sign = if us < 0 { '-' } else { '+' };
    let abs = us.unsigned_abs();
    if abs < 1_000_000 {
        format!("{sign}{} ms", abs / 1_000)
    } else if abs < 120_000_000 {
        format!("{sign}{:.1} s", abs as f64 / 1e6)
    } else if abs < 7_200_000_000 {
        format!("{sign}{} min", abs / 60_000_000)
    } else {
        format!("{sign}{} h", abs / 3_600_000_000)
    }
}

/// How a latency bucket's bound reads: `-`, `≤ 250 µs`, `≤ 2.5 ms`, `≤ 1 s`, `> 1 min`
/// (`u64::MAX`: above the last bound).
pub fn latency_text(micros: Option<u64>) -> String {
    match micros {
        None => "-".to_owned(),
        Some(u64::MAX) => "> 1 min".to_owned(),
        Some(us) if us < 1_000 => format!("≤ {us} µs"),
        Some(us) if us < 1_000_000 => format!("≤ {} ms", us as f64 / 1_000.0),
        Some(us) => format!("≤ {} s", us as f64 / 1_000_000.0),
    }
}

/// How a rate reads: `0`, `0.25`, `12.5`, `9500`.
pub fn rate_text(per_second: f64) -> String {
    if per_second <= 0.0 {
        "0".to_owned()
    } else if per_second < 10.0 {
        format!("{per_second:.2}")
    } else if per_second < 100.0 {
        format!("{per_second:.1}")
    } else {
        format!("{per_second:.0}")
    }
}

/// One destination's queue.
#[derive(Debug, Clone, Default)]
pub struct DestinationCounts {
    pub channel: String,
    pub destination: String,
    /// Whether an operator paused it.
    pub paused: bool,
    pub queued: u64,
    pub delivered: u64,
    pub errored: u64,
    pub dead_lettered: u64,
    pub depth: u64,
    pub oldest_queued_age_ms: Option<u64>,
    /// Sent to the receiver's positive answer, p50 and p99 in microseconds, since start.
    pub answer_p50_us: Option<u64>,
    pub answer_p99_us: Option<u64>,
    /// Receipt to the entry's first attempt (the "sent" hop), p50 and p99 in
    /// microseconds, since start.
    pub sent_p50_us: Option<u64>,
    pub sent_p99_us: Option<u64>,
    /// The destination's own colour thresholds (`[console.destinations]`); `None`: the
    /// dashboard's.
    pub thresholds: Option<QueueThresholds>,
}

/// Colour thresholds of a destination's queue (`[console]` in the configuration): its
/// oldest entry's age and its depth each turn yellow (`warn`) from their warning
/// threshold and red (`bad`) from their alarm threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueThresholds {
    pub age_warn_ms: u64,
    pub age_alarm_ms: u64,
    pub depth_warn: u64,
    pub depth_alarm: u64,
}

impl Default for QueueThresholds {
    fn default() -> QueueThresholds {
        QueueThresholds {
            age_warn_ms: 60_000,
            age_alarm_ms: 300_000,
            depth_warn: 1_000,
            depth_alarm: 10_000,
        }
    }
}

impl QueueThresholds {
    /// The CSS class of an oldest entry's age: `ok`, `warn` or `bad`.
    pub fn age_level(&self, age_ms: Option<u64>) -> &'static str {
        match age_ms {
            Some(a) if a >= self.age_alarm_ms => "bad",
            Some(a) if a >= self.age_warn_ms => "warn",
            _ => "ok",
        }
    }

    /// The CSS class of a queue's depth: `ok`, `warn` or `bad`.
    pub fn depth_level(&self, depth: u64) -> &'static str {
        if depth >= self.depth_alarm {
            "bad"
        } else if depth >= self.depth_warn {
            "warn"
        } else {
            "ok"
        }
    }
}

/// The words a level is shown with next to its value, so the state does not rest on
/// colour alone: nothing, `warning` or `alarm`.
pub fn level_text(level: &str) -> &'static str {
    match level {
        "bad" => "alarm",
        "warn" => "warning",
        _ => "",
    }
}

/// What the dashboard shows: counts only, never patient data.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub channels: Vec<ChannelCounts>,
    pub destinations: Vec<DestinationCounts>,
    pub thresholds: QueueThresholds,
    /// Every configured alert and its state.
    pub alerts: Vec<AlertRow>,
    /// Volume and latency over hours and days, per channel (drawn on the page, not
    /// updated live).
    pub charts: Vec<crate::Chart>,
    /// What the last form did (an acknowledgement), from the redirect's query.
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// An alert as the dashboard shows it (no patient data: names, states and counts).
#[derive(Debug, Clone, Default)]
pub struct AlertRow {
    pub name: String,
    pub condition: String,
    /// `ok`, `pending`, `firing` or `resolving`.
    pub state: String,
    pub detail: Option<String>,
    pub fired_at: Option<String>,
    pub acked_by: Option<String>,
}

/// The alerts that are not `ok`, firing first, with an acknowledge button for firing
/// ones not yet acknowledged when the viewer operates: the part of the dashboard inside
/// `[data-live-alerts]` that the events stream (`GET /console/events`, event `alerts`) sends
/// again whenever it changes, so a firing alert appears and a resolved one leaves
/// without a reload.
pub fn alerts_html(viewer: &Viewer, alerts: &[AlertRow]) -> String {
    let mut body = String::from("<h2>Alerts</h2>");
    let mut active: Vec<&AlertRow> = alerts.iter().filter(|a| a.state != "ok").collect();
    active.sort_by_key(|a| (a.state != "firing", a.name.clone()));
    if active.is_empty() {
        let _ = write!(
            body,
            "<p class=\"ok\" data-alerts=\"0\">No alert is firing ({} configured).</p>",
            alerts.len()
        );
        return body;
    }
    let _ = write!(
        body,
        "<table class=\"alerts\" data-alerts=\"{}\"><caption>Alerts not ok</caption><thead><tr><th scope=\"col\">Alert</th><th scope=\"col\">Condition</th><th scope=\"col\">State</th><th scope=\"col\">Since</th><th scope=\"col\">Detail</th><th scope=\"col\">Acknowledged</th></tr></thead><tbody>",
        active.len()
    );
    for a in active {
        let level = match a.state.as_str() {
            "firing" => "bad",
            _ => "warn",
        };
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"{level}\">{}</td><td>{}</td><td>{}</td><td>",
            escape(&a.name),
            escape(&a.condition),
            escape(&a.state),
            escape(a.fired_at.as_deref().unwrap_or("")),
            escape(a.detail.as_deref().unwrap_or("")),
        );
        match (
            &a.acked_by,
            a.state == "firing" && viewer.operates && viewer.csrf.is_some(),
        ) {
            (Some(by), _) => {
                let _ = write!(body, "by {}", escape(by));
            }
            (None, true) => {
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"/console/alerts/{}/ack\">{}<button type=\"submit\">Acknowledge</button></form>",
                    crate::url_encode(&a.name),
                    viewer.csrf_field()
                );
            }
            (None, false) => body.push_str("no"),
        }
        body.push_str("</td></tr>");
    }
    body.push_str("</tbody></table>");
    body
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
    /// The thresholds `d`'s queue is coloured with: its own, else the dashboard's.
    pub fn thresholds_of(&self, d: &DestinationCounts) -> QueueThresholds {
        d.thresholds.unwrap_or(self.thresholds)
    }

    /// Every live value by its `data-count` key, for the events stream:
    /// `channel/STATE`, `dest/CHANNEL/NAME/FIELD`; ages with their colour level.
    pub fn live_values(&self) -> Vec<(String, String, Option<&'static str>)> {
        let mut values = Vec::new();
        for c in &self.channels {
            for (state, n) in STATES.iter().zip(&c.counts) {
                values.push((format!("{}/{state}", c.channel), n.to_string(), None));
            }
            values.push((
                format!("{}/connections", c.channel),
                c.open_connections.map_or("-".to_owned(), |n| n.to_string()),
                None,
            ));
            values.push((
                format!("{}/stored_per_second", c.channel),
                rate_text(c.stored_per_second),
                None,
            ));
            values.push((
                format!("{}/processed_per_second", c.channel),
                rate_text(c.processed_per_second),
                None,
            ));
            for (field, us) in [
                ("stored_p50", c.stored_p50_us),
                ("stored_p99", c.stored_p99_us),
                ("processed_p50", c.processed_p50_us),
                ("processed_p99", c.processed_p99_us),
            ] {
                values.push((format!("{}/{field}", c.channel), latency_text(us), None));
            }
            values.push((
                format!("{}/clock_lag_p50", c.channel),
                lag_text(c.clock_lag.p50_us),
                None,
            ));
            values.push((
                format!("{}/clock_lag_max", c.channel),
                lag_text(c.clock_lag.max_us),
                None,
            ));
            values.push((
                format!("{}/clock_unreadable", c.channel),
                c.clock_lag.unreadable.to_string(),
                None,
            ));
        }
        for d in &self.destinations {
            let key = |field: &str| format!("dest/{}/{}/{field}", d.channel, d.destination);
            values.push((key("queued"), d.queued.to_string(), None));
            values.push((key("delivered"), d.delivered.to_string(), None));
            values.push((key("errored"), d.errored.to_string(), None));
            values.push((key("dead_lettered"), d.dead_lettered.to_string(), None));
            let thresholds = self.thresholds_of(d);
            let depth_level = thresholds.depth_level(d.depth);
            values.push((key("depth"), d.depth.to_string(), Some(depth_level)));
            values.push((key("depth_state"), level_text(depth_level).to_owned(), None));
            values.push((key("sent_p50"), latency_text(d.sent_p50_us), None));
            values.push((key("sent_p99"), latency_text(d.sent_p99_us), None));
            values.push((key("answer_p50"), latency_text(d.answer_p50_us), None));
            values.push((key("answer_p99"), latency_text(d.answer_p99_us), None));
            let age_level = thresholds.age_level(d.oldest_queued_age_ms);
            values.push((
                key("oldest"),
                age_text(d.oldest_queued_age_ms),
                Some(age_level),
            ));
            values.push((key("oldest_state"), level_text(age_level).to_owned(), None));
        }
        values
    }
}

/// Each channel's hop latencies, p50 and p99 (the bound of the histogram bucket that
/// holds them), over the last one to two minutes.
fn latency_html(channels: &[ChannelCounts]) -> String {
    let mut body = String::from(
        "<h2>Latency</h2><table><caption>From receipt, last one to two minutes (bucket bounds)</caption><thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">stored p50</th><th scope=\"col\">stored p99</th><th scope=\"col\">processed p50</th><th scope=\"col\">processed p99</th><th scope=\"col\" title=\"receipt time less MSH-7, last five minutes (negative: the sender's clock is ahead)\">sender clock lag p50</th><th scope=\"col\">clock lag max</th><th scope=\"col\" title=\"messages of the last five minutes whose MSH-7 was missing or unreadable\">no MSH-7 time</th></tr></thead><tbody>",
    );
    for c in channels {
        let _ = write!(body, "<tr><th scope=\"row\">{}</th>", escape(&c.channel));
        for (field, us) in [
            ("stored_p50", c.stored_p50_us),
            ("stored_p99", c.stored_p99_us),
            ("processed_p50", c.processed_p50_us),
            ("processed_p99", c.processed_p99_us),
        ] {
            let _ = write!(
                body,
                "<td class=\"n\" data-count=\"{}\">{}</td>",
                escape(&format!("{}/{field}", c.channel)),
                latency_text(us)
            );
        }
        for (field, text) in [
            ("clock_lag_p50", lag_text(c.clock_lag.p50_us)),
            ("clock_lag_max", lag_text(c.clock_lag.max_us)),
            ("clock_unreadable", c.clock_lag.unreadable.to_string()),
        ] {
            let _ = write!(
                body,
                "<td class=\"n\" data-count=\"{}\">{text}</td>",
                escape(&format!("{}/{field}", c.channel))
            );
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    body
}

/// The dashboard page. Counts link to the message browser filtered on them when the
/// viewer reads message content.
pub fn dashboard_page(viewer: &Viewer, board: &Dashboard) -> String {
    let mut body = crate::outcome_html(board.notice.as_deref(), board.error.as_deref());
    body.push_str("<div data-live=\"/console/events\">");
    body.push_str("<h2>Channels</h2><table><caption>Messages by state</caption><thead><tr><th scope=\"col\">Channel</th>");
    for state in STATES {
        let _ = write!(body, "<th scope=\"col\">{state}</th>");
    }
    body.push_str("<th scope=\"col\" title=\"connections open on the channel's listener\">connections</th><th scope=\"col\" title=\"messages stored per second over the last minute\">stored/s</th><th scope=\"col\" title=\"messages processed per second over the last minute\">processed/s</th></tr></thead><tbody>");
    for c in &board.channels {
        let _ = write!(body, "<tr><th scope=\"row\">{}", escape(&c.channel));
        if !c.held.is_empty() {
            let _ = write!(
                body,
                " <span class=\"state {0}\">{0}</span>",
                escape(&c.held)
            );
        }
        body.push_str("</th>");
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
        let _ = write!(
            body,
            "<td class=\"n\" data-count=\"{}\">{}</td>",
            escape(&format!("{}/connections", c.channel)),
            c.open_connections.map_or("-".to_owned(), |n| n.to_string())
        );
        for (field, rate) in [
            ("stored_per_second", c.stored_per_second),
            ("processed_per_second", c.processed_per_second),
        ] {
            let _ = write!(
                body,
                "<td class=\"n\" data-count=\"{}\">{}</td>",
                escape(&format!("{}/{field}", c.channel)),
                rate_text(rate)
            );
        }
        body.push_str("</tr>");
    }
    if board.channels.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"{}\">No messages yet.</td></tr>",
            STATES.len() + 4
        );
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Destinations</h2><table><caption>Queues</caption><thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">Destination</th><th scope=\"col\">queued</th><th scope=\"col\">delivered</th><th scope=\"col\">errored</th><th scope=\"col\">dead-lettered</th><th scope=\"col\">depth</th><th scope=\"col\">oldest queued</th><th scope=\"col\" title=\"receipt to the first attempt of the destination's entry, since start\">sent p50</th><th scope=\"col\">sent p99</th><th scope=\"col\" title=\"sent to the receiver's positive answer, since start\">answer p50</th><th scope=\"col\">answer p99</th></tr></thead><tbody>");
    for d in &board.destinations {
        let key = |field: &str| escape(&format!("dest/{}/{}/{field}", d.channel, d.destination));
        let _ = write!(
            body,
            "<tr><td>{}</td><th scope=\"row\">{}{}</th>",
            escape(&d.channel),
            escape(&d.destination),
            if d.paused {
                " <span class=\"state paused\">paused</span>"
            } else {
                ""
            }
        );
        for (field, states, n) in [
            ("queued", "queued", d.queued),
            ("delivered", "delivered", d.delivered),
            ("errored", "errored", d.errored),
            ("dead_lettered", "dead_lettered", d.dead_lettered),
            ("depth", "queued,sending", d.depth),
        ] {
            // The depth is coloured, and its state said in words beside it.
            let (class, state) = if field == "depth" {
                let level = board.thresholds_of(d).depth_level(n);
                (
                    format!("n {level}"),
                    format!(
                        " <span class=\"level\" data-count=\"{}\">{}</span>",
                        key("depth_state"),
                        level_text(level)
                    ),
                )
            } else {
                ("n".to_owned(), String::new())
            };
            if viewer.reads_phi {
                let _ = write!(
                    body,
                    "<td class=\"{class}\" data-count=\"{}\"><a href=\"/console/messages?channel={}&amp;destination={}&amp;destination_state={}\">{n}</a>{state}</td>",
                    key(field),
                    url_encode(&d.channel),
                    url_encode(&d.destination),
                    url_encode(states)
                );
            } else if state.is_empty() {
                let _ = write!(
                    body,
                    "<td class=\"{class}\" data-count=\"{}\">{n}</td>",
                    key(field)
                );
            } else {
                let _ = write!(
                    body,
                    "<td class=\"{class}\" data-count=\"{}\"><span data-value>{n}</span>{state}</td>",
                    key(field)
                );
            }
        }
        let level = board.thresholds_of(d).age_level(d.oldest_queued_age_ms);
        let _ = write!(
            body,
            "<td class=\"n {level}\" data-count=\"{}\"><span data-value>{}</span> <span class=\"level\" data-count=\"{}\">{}</span></td>",
            key("oldest"),
            age_text(d.oldest_queued_age_ms),
            key("oldest_state"),
            level_text(level)
        );
        for (field, us) in [
            ("sent_p50", d.sent_p50_us),
            ("sent_p99", d.sent_p99_us),
            ("answer_p50", d.answer_p50_us),
            ("answer_p99", d.answer_p99_us),
        ] {
            let _ = write!(
                body,
                "<td class=\"n\" data-count=\"{}\">{}</td>",
                key(field),
                latency_text(us)
            );
        }
        body.push_str("</tr>");
    }
    if board.destinations.is_empty() {
        body.push_str("<tr><td colspan=\"12\">No destinations running.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&latency_html(&board.channels));
    let _ = write!(
        body,
        "<div data-live-alerts aria-live=\"polite\">{}</div>",
        alerts_html(viewer, &board.alerts)
    );
    body.push_str("</div>");
    let _ = write!(
        body,
        "<div data-charts=\"/console/charts\">{}</div>",
        charts_html(&board.charts)
    );
    page("Dashboard", Some(viewer), &body)
}

/// The dashboard's charts (empty without any): the part of the page `GET
/// /console/charts` answers alone, which the dashboard's script swaps in every few
/// seconds.
pub fn charts_html(charts: &[crate::Chart]) -> String {
    let mut body = String::new();
    if !charts.is_empty() {
        body.push_str("<h2>History</h2>");
        for chart in charts {
            body.push_str(&crate::chart_html(chart));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A viewer: no patient data, no operations.
    fn viewer() -> Viewer {
        Viewer {
            user: "vic".into(),
            role: "viewer".into(),
            csrf: None,
            reads_phi: false,
            operates: false,
            stewards: false,
            administers: false,
        }
    }

    #[test]
    fn a_viewer_dashboard_has_counts_and_no_links_to_messages() {
        let board = Dashboard {
            channels: vec![ChannelCounts {
                channel: "lab".into(),
                counts: vec![1, 2, 0, 0, 3, 0, 0],
                held: "paused".into(),
                stored_per_second: 12.345,
                processed_per_second: 0.0,
                stored_p99_us: Some(2_500),
                ..ChannelCounts::default()
            }],
            ..Dashboard::default()
        };
        let viewer = viewer();
        let html = dashboard_page(&viewer, &board);
        assert!(html.contains("data-count=\"lab/errored\">3<"), "{html}");
        assert!(html.contains("data-count=\"lab/stored_per_second\">12.3<"));
        assert!(html.contains("data-count=\"lab/processed_per_second\">0<"));
        assert!(
            html.contains("data-count=\"lab/stored_p99\">≤ 2.5 ms<"),
            "{html}"
        );
        assert!(html.contains("data-count=\"lab/stored_p50\">-<"));
        assert!(!html.contains("/console/messages"));
        // An operator's pause shows beside the channel's name.
        assert!(
            html.contains("<span class=\"state paused\">paused</span>"),
            "{html}"
        );
        let analyst = Viewer {
            reads_phi: true,
            ..viewer
        };
        let html = dashboard_page(&analyst, &board);
        assert!(html.contains("href=\"/console/messages?channel=lab&amp;state=errored\">3<"));
    }

    #[test]
    fn destination_counts_link_to_their_entries_for_a_reader_of_content() {
        let board = Dashboard {
            destinations: vec![DestinationCounts {
                channel: "lab".into(),
                destination: "lis out".into(),
                queued: 4,
                dead_lettered: 2,
                depth: 5,
                ..DestinationCounts::default()
            }],
            ..Dashboard::default()
        };
        let mut viewer = Viewer {
            user: "ana".into(),
            role: "analyst".into(),
            reads_phi: true,
            ..viewer()
        };
        let html = dashboard_page(&viewer, &board);
        assert!(
            html.contains("href=\"/console/messages?channel=lab&amp;destination=lis%20out&amp;destination_state=dead_lettered\">2<"),
            "{html}"
        );
        assert!(html.contains("destination_state=queued\">4<"), "{html}");
        assert!(
            html.contains("destination_state=queued%2Csending\">5<"),
            "{html}"
        );
        viewer.reads_phi = false;
        let html = dashboard_page(&viewer, &board);
        assert!(!html.contains("destination_state="), "{html}");
        assert!(html.contains("data-count=\"dest/lab/lis out/dead_lettered\">2<"));
    }

    #[test]
    fn a_firing_alert_shows_with_acknowledge_for_an_operator_only() {
        let board = Dashboard {
            alerts: vec![
                AlertRow {
                    name: "lab queue".into(),
                    condition: "queue_depth".into(),
                    state: "firing".into(),
                    ..AlertRow::default()
                },
                AlertRow {
                    name: "quiet".into(),
                    state: "ok".into(),
                    ..AlertRow::default()
                },
            ],
            ..Dashboard::default()
        };
        let operator = Viewer {
            user: "op".into(),
            role: "operator".into(),
            csrf: Some("t".into()),
            reads_phi: true,
            operates: true,
            stewards: false,
            administers: false,
        };
        let html = dashboard_page(&operator, &board);
        assert!(
            html.contains("action=\"/console/alerts/lab%20queue/ack\""),
            "{html}"
        );
        assert!(!html.contains(">quiet<"));
        let viewer = Viewer {
            operates: false,
            ..operator
        };
        let html = dashboard_page(&viewer, &board);
        assert!(html.contains(">lab queue<") && !html.contains("/ack"));
    }

    #[test]
    fn the_sender_clock_lag_shows_per_channel_with_its_sign() {
        let board = Dashboard {
            channels: vec![ChannelCounts {
                channel: "lab".into(),
                counts: vec![0; STATES.len()],
                clock_lag: ClockLagText {
                    p50_us: Some(350_000),
                    max_us: Some(-2_000_000),
                    unreadable: 3,
                },
                ..ChannelCounts::default()
            }],
            ..Dashboard::default()
        };
        let viewer = viewer();
        let html = dashboard_page(&viewer, &board);
        assert!(
            html.contains("data-count=\"lab/clock_lag_p50\">+350 ms<"),
            "{html}"
        );
        assert!(
            html.contains("data-count=\"lab/clock_lag_max\">-2.0 s<"),
            "{html}"
        );
        assert!(
            html.contains("data-count=\"lab/clock_unreadable\">3<"),
            "{html}"
        );
        let live = board.live_values();
        assert!(
            live.iter()
                .any(|(k, v, _)| k == "lab/clock_lag_p50" && v == "+350 ms")
        );
        assert_eq!(lag_text(None), "-");
        assert_eq!(lag_text(Some(3 * 3_600_000_000)), "+3 h");
        assert_eq!(lag_text(Some(-300_000_000)), "-5 min");
    }

    #[test]
    fn ages_and_depths_take_their_colour_from_the_thresholds() {
        let t = QueueThresholds {
            age_warn_ms: 1_000,
            age_alarm_ms: 5_000,
            depth_warn: 10,
            depth_alarm: 100,
        };
        assert_eq!(t.age_level(None), "ok");
        assert_eq!(t.age_level(Some(999)), "ok");
        assert_eq!(t.age_level(Some(1_000)), "warn");
        assert_eq!(t.age_level(Some(5_000)), "bad");
        assert_eq!(t.depth_level(0), "ok");
        assert_eq!(t.depth_level(9), "ok");
        assert_eq!(t.depth_level(10), "warn");
        assert_eq!(t.depth_level(99), "warn");
        assert_eq!(t.depth_level(100), "bad");
        assert_eq!(level_text("ok"), "");
        assert_eq!(level_text("warn"), "warning");
        assert_eq!(level_text("bad"), "alarm");
    }

    #[test]
    fn a_destination_s_own_thresholds_win_and_its_sent_hop_shows_beside_the_answer() {
        let own = QueueThresholds {
            depth_warn: 50,
            depth_alarm: 100,
            ..QueueThresholds::default()
        };
        let board = Dashboard {
            destinations: vec![
                DestinationCounts {
                    channel: "lab".into(),
                    destination: "ehr".into(),
                    depth: 20,
                    sent_p50_us: Some(2_500_000),
                    ..DestinationCounts::default()
                },
                DestinationCounts {
                    channel: "lab".into(),
                    destination: "archive".into(),
                    depth: 20,
                    thresholds: Some(own),
                    ..DestinationCounts::default()
                },
            ],
            thresholds: QueueThresholds {
                depth_warn: 10,
                depth_alarm: 100,
                ..QueueThresholds::default()
            },
            alerts: vec![AlertRow {
                name: "ehr down".into(),
                state: "firing".into(),
                ..AlertRow::default()
            }],
            ..Dashboard::default()
        };
        let page = dashboard_page(&Viewer::default(), &board);
        assert!(page.contains("<td class=\"n warn\" data-count=\"dest/lab/ehr/depth\">"));
        assert!(
            page.contains("<td class=\"n ok\" data-count=\"dest/lab/archive/depth\">"),
            "{page}"
        );
        assert!(page.contains("data-count=\"dest/lab/ehr/sent_p50\">≤ 2.5 s<"));
        assert!(page.contains("data-count=\"dest/lab/archive/sent_p99\">-<"));
        let live = board.live_values();
        let level = |k: &str| live.iter().find(|(key, _, _)| key == k).and_then(|v| v.2);
        assert_eq!(level("dest/lab/ehr/depth"), Some("warn"));
        assert_eq!(level("dest/lab/archive/depth"), Some("ok"));
        // The alerts sit inside the live block, ahead of its end and of the charts.
        let live_block = page.find("data-live=\"/console/events\"").unwrap();
        let alerts = page.find("<div data-live-alerts").unwrap();
        let charts = page.find("data-charts=").unwrap();
        assert!(live_block < alerts && alerts < charts, "{page}");
        assert!(page[alerts..charts].contains(">ehr down<"), "{page}");
        assert!(
            page[alerts..charts].ends_with("</div></div><div "),
            "{page}"
        );
    }

    #[test]
    fn the_page_and_the_live_values_say_a_queue_s_state_in_class_and_words() {
        let board = Dashboard {
            destinations: vec![DestinationCounts {
                channel: "lab".into(),
                destination: "ehr".into(),
                depth: 12,
                oldest_queued_age_ms: Some(6_000),
                ..DestinationCounts::default()
            }],
            thresholds: QueueThresholds {
                age_warn_ms: 1_000,
                age_alarm_ms: 5_000,
                depth_warn: 10,
                depth_alarm: 100,
            },
            ..Dashboard::default()
        };
        let viewer = Viewer {
            user: "vic".into(),
            role: "viewer".into(),
            ..Viewer::default()
        };
        let page = dashboard_page(&viewer, &board);
        assert!(
            page.contains("<td class=\"n warn\" data-count=\"dest/lab/ehr/depth\"><span data-value>12</span> <span class=\"level\" data-count=\"dest/lab/ehr/depth_state\">warning</span></td>"),
            "{page}"
        );
        assert!(
            page.contains("<td class=\"n bad\" data-count=\"dest/lab/ehr/oldest\"><span data-value>6 s</span> <span class=\"level\" data-count=\"dest/lab/ehr/oldest_state\">alarm</span></td>"),
            "{page}"
        );
        let live = board.live_values();
        let value = |k: &str| live.iter().find(|(key, _, _)| key == k).cloned();
        assert_eq!(
            value("dest/lab/ehr/depth"),
            Some(("dest/lab/ehr/depth".into(), "12".into(), Some("warn")))
        );
        assert_eq!(
            value("dest/lab/ehr/depth_state"),
            Some(("dest/lab/ehr/depth_state".into(), "warning".into(), None))
        );
        assert_eq!(
            value("dest/lab/ehr/oldest_state"),
            Some(("dest/lab/ehr/oldest_state".into(), "alarm".into(), None))
        );
    }
}

//! The dashboard's charts of volume and latency over hours and days, drawn by the
//! server as inline SVG (no script, no chart library): a line per measure, each point
//! with a tooltip (`<title>`), and the same numbers as a table for screen readers and
//! anyone who prefers one.

use std::fmt::Write as _;

use crate::{escape, time_text};

/// One span of a chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChartPoint {
    /// Minutes since the Unix epoch at the span's start.
    pub start_minute: u64,
    /// Messages stored in the span.
    pub stored: u64,
    /// Messages processed in the span.
    pub processed: u64,
    /// The highest minute's p99 of receipt to processed in the span, microseconds.
    pub processed_p99_us: Option<u64>,
}

/// A channel's chart over one range.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub channel: String,
    /// `last 6 hours`, `last 7 days`.
    pub range: String,
    /// Minutes per point.
    pub step_minutes: u64,
    pub points: Vec<ChartPoint>,
}

pub(crate) const WIDTH: f64 = 600.0;
pub(crate) const HEIGHT: f64 = 100.0;

/// A line of `values` scaled to the chart's box, with a tooltip per point.
pub(crate) fn line(out: &mut String, class: &str, values: &[(f64, String)]) {
    let max = values.iter().map(|(v, _)| *v).fold(0.0, f64::max);
    let n = values.len().max(2) - 1;
    let xy = |i: usize, v: f64| {
        let x = WIDTH * i as f64 / n as f64;
        let y = if max > 0.0 {
            HEIGHT - HEIGHT * v / max
        } else {
            HEIGHT
        };
        (x, y)
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (v, _))| {
            let (x, y) = xy(i, *v);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"{class}\" fill=\"none\" stroke-width=\"1.5\" points=\"{}\"/>",
        points.join(" ")
    );
    for (i, (v, tip)) in values.iter().enumerate() {
        if *v > 0.0 {
            let (x, y) = xy(i, *v);
            let _ = write!(
                out,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\"><title>{}</title></circle>",
                escape(tip)
            );
        }
    }
}

fn p99_text(us: Option<u64>) -> String {
    crate::latency_text(us)
}

/// One chart: messages stored and processed per span, and the processing p99, as SVG
/// with tooltips, then as a table of the spans that had messages.
pub fn chart_html(chart: &Chart) -> String {
    let label = format!(
        "{}: messages per {} min and processing p99, {}",
        chart.channel, chart.step_minutes, chart.range
    );
    let mut out = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>",
        escape(&label)
    );
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"-2 -2 {} {}\" width=\"{}\" height=\"{}\">",
        escape(&label),
        WIDTH + 4.0,
        HEIGHT * 2.0 + 16.0,
        WIDTH + 4.0,
        HEIGHT * 2.0 + 16.0
    );
    let when = |p: &ChartPoint| time_text((p.start_minute as i64).saturating_mul(60_000_000));
    let volume: Vec<(f64, String)> = chart
        .points
        .iter()
        .map(|p| (p.stored as f64, format!("{}: {} stored", when(p), p.stored)))
        .collect();
    let processed: Vec<(f64, String)> = chart
        .points
        .iter()
        .map(|p| {
            (
                p.processed as f64,
                format!("{}: {} processed", when(p), p.processed),
            )
        })
        .collect();
    out.push_str("<g>");
    line(&mut out, "stored", &volume);
    line(&mut out, "processed", &processed);
    out.push_str("</g>");
    let latency: Vec<(f64, String)> = chart
        .points
        .iter()
        .map(|p| {
            let us = p.processed_p99_us.filter(|us| *us != u64::MAX);
            (
                us.unwrap_or(0) as f64,
                format!(
                    "{}: processing p99 {}",
                    when(p),
                    p99_text(p.processed_p99_us)
                ),
            )
        })
        .collect();
    let _ = write!(out, "<g transform=\"translate(0,{})\">", HEIGHT + 16.0);
    line(&mut out, "latency", &latency);
    out.push_str("</g></svg>");
    out.push_str("<details><summary>As a table</summary><table><thead><tr><th scope=\"col\">From</th><th scope=\"col\">stored</th><th scope=\"col\">processed</th><th scope=\"col\">processing p99</th></tr></thead><tbody>");
    let mut any = false;
    for p in chart.points.iter().filter(|p| p.stored + p.processed > 0) {
        any = true;
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&when(p)),
            p.stored,
            p.processed,
            escape(&p99_text(p.processed_p99_us))
        );
    }
    if !any {
        out.push_str("<tr><td colspan=\"4\">No messages in this range.</td></tr>");
    }
    out.push_str("</tbody></table></details></figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_measure_tooltips_and_a_table() {
        let chart = Chart {
            channel: "lab".into(),
            range: "last 6 hours".into(),
            step_minutes: 5,
            points: vec![
                ChartPoint {
                    start_minute: 29_000_000,
                    stored: 10,
                    processed: 8,
                    processed_p99_us: Some(2_500),
                },
                ChartPoint {
                    start_minute: 29_000_005,
                    ..ChartPoint::default()
                },
                ChartPoint {
                    start_minute: 29_000_010,
                    stored: 5,
                    processed: 5,
                    processed_p99_us: Some(u64::MAX),
                },
            ],
        };
        let html = chart_html(&chart);
        assert_eq!(html.matches("<polyline").count(), 3);
        // The tallest point reaches the top, the empty span the bottom.
        assert!(
            html.contains("points=\"0.0,0.0 300.0,100.0 600.0,50.0\""),
            "{html}"
        );
        assert!(
            html.contains("<title>2025-02-19T21:20:00Z: 10 stored</title>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"n\">≤ 2.5 ms</td>"));
        assert!(html.contains("<td class=\"n\">&gt; 1 min</td>"));
        assert_eq!(
            html.matches("<tr><td>").count(),
            2,
            "empty spans are left out"
        );
        assert!(html.contains("role=\"img\""));
    }
}

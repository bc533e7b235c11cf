//! Data quality over time on the data-quality page: per sender, a chart of findings and
//! failed messages per day (or hour), and a table of the spans by field. Counts only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::charts::{HEIGHT, WIDTH, line};
use crate::{escape, time_text};

/// How many fields a sender's table has columns for (the most frequent; the rest are
/// summed in "other fields").
pub const TIMELINE_FIELDS: usize = 8;

/// One span of a sender's timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanQuality {
    /// The span's start (microseconds).
    pub start: i64,
    pub validated: i64,
    pub with_errors: i64,
    /// Occurrences per field, in the order of [`SenderTimeline::fields`], then the
    /// other fields' sum.
    pub findings: Vec<i64>,
}

/// A sender's data quality over time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderTimeline {
    pub sender: String,
    /// The table's fields, most frequent first.
    pub fields: Vec<String>,
    /// Every span from the first asked for to the last, oldest first (empty ones too).
    pub spans: Vec<SpanQuality>,
}

/// Data quality over time, as the page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityOverTime {
    /// `day` or `hour`.
    pub bucket: String,
    pub since: String,
    pub senders: Vec<SenderTimeline>,
}

impl QualityOverTime {
    /// Builds the timelines from the counters' rows: `validated` as (span start,
    /// sender, validated, with errors), `fields` as (span start, sender, path,
    /// occurrences); spans of `width` microseconds from `since` up to `until`.
    pub fn build(
        bucket: &str,
        since: i64,
        until: i64,
        width: i64,
        validated: &[(i64, String, i64, i64)],
        fields: &[(i64, String, String, i64)],
    ) -> QualityOverTime {
        let width = width.max(1);
        let first = since - since.rem_euclid(width);
        let mut senders: BTreeMap<&str, SenderTimeline> = BTreeMap::new();
        let spans = |first: i64| {
            let mut out = Vec::new();
            let mut start = first;
            while start <= until && out.len() < 2000 {
                out.push(SpanQuality {
                    start,
                    ..SpanQuality::default()
                });
                start += width;
            }
            out
        };
        let index = |start: i64| usize::try_from((start - first) / width).ok();
        // The fields most frequent over the range, per sender.
        let mut totals: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for (_, sender, path, count) in fields {
            *totals.entry((sender, path)).or_default() += count;
        }
        for (_, sender, _, _) in validated {
            senders.entry(sender).or_insert_with(|| SenderTimeline {
                sender: sender.clone(),
                ..SenderTimeline::default()
            });
        }
        for (_, sender, _, _) in fields {
            senders.entry(sender).or_insert_with(|| SenderTimeline {
                sender: sender.clone(),
                ..SenderTimeline::default()
            });
        }
        for (name, timeline) in senders.iter_mut() {
            let mut mine: Vec<(&str, i64)> = totals
                .iter()
                .filter(|((s, _), _)| s == name)
                .map(|((_, p), n)| (*p, *n))
                .collect();
            mine.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            timeline.fields = mine
                .iter()
                .take(TIMELINE_FIELDS)
                .map(|(p, _)| (*p).to_owned())
                .collect();
            timeline.spans = spans(first);
            let columns = timeline.fields.len() + 1;
            for span in &mut timeline.spans {
                span.findings = vec![0; columns];
            }
        }
        for (start, sender, n, errors) in validated {
            if let (Some(t), Some(i)) = (senders.get_mut(sender.as_str()), index(*start)) {
                if let Some(span) = t.spans.get_mut(i) {
                    span.validated += n;
                    span.with_errors += errors;
                }
            }
        }
        for (start, sender, path, count) in fields {
            if let (Some(t), Some(i)) = (senders.get_mut(sender.as_str()), index(*start)) {
                let column = t
                    .fields
                    .iter()
                    .position(|f| f == path)
                    .unwrap_or(t.fields.len());
                if let Some(cell) = t.spans.get_mut(i).and_then(|s| s.findings.get_mut(column)) {
                    *cell += count;
                }
            }
        }
        QualityOverTime {
            bucket: bucket.to_owned(),
            since: time_text(since),
            senders: senders.into_values().collect(),
        }
    }
}

/// A sender's chart: findings and messages with errors per span, as SVG with tooltips.
fn timeline_chart(t: &SenderTimeline, bucket: &str) -> String {
    let label = format!(
        "{}: findings and messages with errors per {bucket}",
        t.sender
    );
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"-2 -2 {} {}\" width=\"{}\" height=\"{}\">",
        escape(&label),
        WIDTH + 4.0,
        HEIGHT + 4.0,
        WIDTH + 4.0,
        HEIGHT + 4.0
    );
    let findings: Vec<(f64, String)> = t
        .spans
        .iter()
        .map(|s| {
            let n: i64 = s.findings.iter().sum();
            (n as f64, format!("{}: {n} findings", time_text(s.start)))
        })
        .collect();
    let errors: Vec<(f64, String)> = t
        .spans
        .iter()
        .map(|s| {
            (
                s.with_errors as f64,
                format!(
                    "{}: {} of {} messages with errors",
                    time_text(s.start),
                    s.with_errors,
                    s.validated
                ),
            )
        })
        .collect();
    line(&mut out, "stored", &findings);
    line(&mut out, "latency", &errors);
    out.push_str("</svg>");
    out
}

/// The section of the page: per sender, its chart and its table of spans by field
/// (spans without messages are left out of the table).
pub fn quality_over_time_html(q: &QualityOverTime) -> String {
    let mut out = format!(
        "<h2>Over time</h2><p>Per {} since {}, from the hourly counters (kept across restarts and quarantine pruning).</p>",
        escape(&q.bucket),
        escape(&q.since)
    );
    if q.senders.is_empty() {
        out.push_str("<p>Nothing validated in this range.</p>");
    }
    for t in &q.senders {
        let _ = write!(
            out,
            "<section class=\"timeline\"><h3>{}</h3><figure class=\"chart\"><figcaption>Findings (blue) and messages with errors (red) per {}</figcaption>{}</figure>",
            escape(&t.sender),
            escape(&q.bucket),
            timeline_chart(t, &q.bucket)
        );
        let _ = write!(
            out,
            "<table><caption>{}: findings by field per {}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">Validated</th><th scope=\"col\">With errors</th>",
            escape(&t.sender),
            escape(&q.bucket),
            if q.bucket == "hour" { "Hour" } else { "Day" }
        );
        for f in &t.fields {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(f));
        }
        out.push_str("<th scope=\"col\">Other fields</th></tr></thead><tbody>");
        let mut any = false;
        for s in t
            .spans
            .iter()
            .filter(|s| s.validated > 0 || s.findings.iter().any(|n| *n > 0))
        {
            any = true;
            let when = time_text(s.start);
            let when = if q.bucket == "day" {
                when.get(..10).unwrap_or(&when).to_owned()
            } else {
                when
            };
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                escape(&when),
                s.validated,
                s.with_errors
            );
            for n in &s.findings {
                let _ = write!(out, "<td class=\"n\">{n}</td>");
            }
            out.push_str("</tr>");
        }
        if !any {
            let _ = write!(
                out,
                "<tr><td colspan=\"{}\">Nothing in this range.</td></tr>",
                t.fields.len() + 4
            );
        }
        out.push_str("</tbody></table></section>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn rows_fall_into_their_sender_day_and_field() {
        let since = 20_000 * DAY + 5;
        let q = QualityOverTime::build(
            "day",
            since,
            20_002 * DAY + 7,
            DAY,
            &[
                (20_000 * DAY, "LAB".into(), 10, 2),
                (20_002 * DAY, "LAB".into(), 4, 1),
                (20_001 * DAY, "RAD".into(), 3, 0),
            ],
            &[
                (20_000 * DAY, "LAB".into(), "ORU_R01.PID-7".into(), 2),
                (20_002 * DAY, "LAB".into(), "ORU_R01.PID-7".into(), 1),
                (20_002 * DAY, "LAB".into(), "ORU_R01.OBX-5".into(), 5),
            ],
        );
        assert_eq!(q.senders.len(), 2);
        let lab = &q.senders[0];
        assert_eq!(lab.sender, "LAB");
        assert_eq!(lab.fields, vec!["ORU_R01.OBX-5", "ORU_R01.PID-7"]);
        assert_eq!(lab.spans.len(), 3);
        assert_eq!(lab.spans[0].findings, vec![0, 2, 0]);
        assert_eq!(lab.spans[1].validated, 0);
        assert_eq!(lab.spans[2].findings, vec![5, 1, 0]);
        assert_eq!(lab.spans[2].with_errors, 1);
        let html = quality_over_time_html(&q);
        assert!(html.contains("<th scope=\"row\">2024-10-06</th><td class=\"n\">4</td><td class=\"n\">1</td><td class=\"n\">5</td><td class=\"n\">1</td>"), "{html}");
        assert!(html.contains("role=\"img\""));
        assert_eq!(html.matches("<section class=\"timeline\">").count(), 2);
    }
}

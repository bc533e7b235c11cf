//! Judging ACKs, counting outcomes and latencies, and the lines and summary that
//! report them.

use std::io::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use hl7v2::{AckCode, Message};
use mllp::MllpError;

use crate::send::Report;

/// What an ACK said about the message it answers.
pub(crate) enum Verdict<'a> {
    Accepted(AckCode),
    Negative(AckCode, String),
    /// MSA-2 names another message.
    Mismatch(AckCode, String),
    Unreadable(&'a str),
}

pub(crate) fn judge<'a>(ack: &[u8], sent_control_id: &str) -> Verdict<'a> {
    let Ok(message) = Message::parse(ack) else {
        return Verdict::Unreadable("not an HL7 message");
    };
    let Some(msa) = message.find_segment(b"MSA", 1) else {
        return Verdict::Unreadable("no MSA segment");
    };
    let text = |n: usize| msa.field(n).map(|f| f.text()).unwrap_or_default();
    let Some(code) = AckCode::parse(&text(1)) else {
        return Verdict::Unreadable("MSA-1 is not an acknowledgement code");
    };
    let acknowledged = text(2);
    if acknowledged != sent_control_id {
        return Verdict::Mismatch(code, acknowledged.into_owned());
    }
    if code.is_positive() {
        Verdict::Accepted(code)
    } else {
        Verdict::Negative(code, text(3).into_owned())
    }
}

/// Counts and latencies of one connection, or of all of them once merged.
pub(crate) struct Tally {
    accepted: u64,
    negative: u64,
    mismatched: u64,
    unreadable: u64,
    timed_out: u64,
    /// Written, but the connection failed before the ACK came.
    pub(crate) no_ack: u64,
    /// Never written, because the connection failed and could not be reopened.
    not_sent: u64,
    /// Why a connection gave up, the first time one did.
    abandoned_because: Option<String>,
    latency_us: Histogram<u64>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            accepted: 0,
            negative: 0,
            mismatched: 0,
            unreadable: 0,
            timed_out: 0,
            no_ack: 0,
            not_sent: 0,
            abandoned_because: None,
            // 1 µs to one hour, three significant digits.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| unreachable!("the bounds are valid")),
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.accepted
            + self.negative
            + self.mismatched
            + self.unreadable
            + self.timed_out
            + self.no_ack
            + self.not_sent
    }

    pub(crate) fn all_accepted(&self) -> bool {
        self.accepted == self.total()
    }

    pub(crate) fn record(
        &mut self,
        verdict: &Verdict,
        latency: Duration,
        control_id: &str,
        lines: &mut Lines,
    ) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(micros.max(1));
        match verdict {
            Verdict::Accepted(code) => {
                self.accepted += 1;
                lines.line(format_args!("{} {control_id}", code.as_str()));
            }
            Verdict::Negative(code, text) => {
                self.negative += 1;
                lines.line(format_args!("{} {control_id} {text}", code.as_str()));
            }
            Verdict::Mismatch(code, acknowledged) => {
                self.mismatched += 1;
                lines.line(format_args!(
                    "MISMATCH {control_id} answered by {} for {acknowledged:?}",
                    code.as_str()
                ));
            }
            Verdict::Unreadable(why) => {
                self.unreadable += 1;
                lines.line(format_args!("BADACK {control_id} {why}"));
            }
        }
    }

    pub(crate) fn record_failure(
        &mut self,
        error: &MllpError,
        timeout: Duration,
        control_id: &str,
        lines: &mut Lines,
    ) {
        if matches!(error, MllpError::Timeout(_)) {
            self.timed_out += 1;
            lines.line(format_args!(
                "TIMEOUT {control_id} no ACK within {:.3} s",
                timeout.as_secs_f64()
            ));
        } else {
            self.no_ack += 1;
            lines.line(format_args!("NOACK {control_id} {error}"));
        }
    }

    pub(crate) fn abandon(&mut self, not_sent: u64, reason: String) {
        self.not_sent += not_sent;
        self.abandoned_because.get_or_insert(reason);
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.negative += other.negative;
        self.mismatched += other.mismatched;
        self.unreadable += other.unreadable;
        self.timed_out += other.timed_out;
        self.no_ack += other.no_ack;
        self.not_sent += other.not_sent;
        if self.abandoned_because.is_none() {
            self.abandoned_because = other.abandoned_because;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    pub(crate) fn outcomes(&self) -> String {
        let mut text = format!(
            "{} accepted, {} negative, {} mismatched, {} unreadable, {} timed out, {} without ACK, {} not sent",
            self.accepted,
            self.negative,
            self.mismatched,
            self.unreadable,
            self.timed_out,
            self.no_ack,
            self.not_sent
        );
        if let Some(reason) = &self.abandoned_because {
            text.push_str(&format!(" (a connection gave up: {reason})"));
        }
        text
    }

    pub(crate) fn failure_summary(&self) -> String {
        format!(
            "{} of {} messages were not acknowledged positively: {}",
            self.total() - self.accepted,
            self.total(),
            self.outcomes()
        )
    }
}

impl Report {
    /// The `--stats` summary: messages, throughput, ACK latency percentiles and
    /// outcomes, four lines.
    pub fn stats(&self, connections: usize, rate: Option<f64>) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let acknowledged = self.tally.latency_us.len();
        let per_second = if seconds > 0.0 {
            acknowledged as f64 / seconds
        } else {
            0.0
        };
        let mode = match rate {
            None => "closed loop, one message in flight per connection".to_owned(),
            Some(rate) => format!("open loop at {rate} msgs/s, latency from scheduled send times"),
        };
        let h = &self.tally.latency_us;
        let ms = |micros: u64| micros as f64 / 1000.0;
        format!(
            "messages     {} over {connections} connection(s) in {seconds:.3} s ({mode})\n\
             throughput   {per_second:.0} msgs/s\n\
             ACK latency  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms\n\
             outcomes     {}\n",
            self.tally.total(),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.90)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            self.tally.outcomes(),
        )
    }
}

/// One line per ACK on standard output, written in blocks: connections
/// interleave whole lines, never parts of them.
pub(crate) struct Lines {
    enabled: bool,
    buffer: String,
}

impl Lines {
    const BLOCK: usize = 32 * 1024;

    pub(crate) fn new(enabled: bool) -> Lines {
        Lines {
            enabled,
            buffer: String::new(),
        }
    }

    pub(crate) fn line(&mut self, text: std::fmt::Arguments) {
        if self.enabled {
            use std::fmt::Write as _;
            let _ = self.buffer.write_fmt(text);
            self.buffer.push('\n');
            if self.buffer.len() >= Self::BLOCK {
                self.flush();
            }
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.buffer.is_empty() {
            // A closed standard output (`| head`) must not stop the sending.
            let _ = std::io::stdout().lock().write_all(self.buffer.as_bytes());
            self.buffer.clear();
        }
    }
}

impl Report {
    /// True when every message was acknowledged positively.
    pub fn all_accepted(&self) -> bool {
        self.tally.all_accepted()
    }

    /// How many messages were not acknowledged positively, and how each ended.
    pub fn failure_summary(&self) -> String {
        self.tally.failure_summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_for_another_message_is_a_mismatch() {
        let ack = b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240102||ACK|A1|P|2.5.1\rMSA|AA|OTHER\r";
        assert!(
            matches!(judge(ack, "MINE"), Verdict::Mismatch(AckCode::AA, ref id) if id == "OTHER")
        );
        assert!(matches!(
            judge(ack, "OTHER"),
            Verdict::Accepted(AckCode::AA)
        ));
        let nak = b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240102||ACK|A1|P|2.5.1\rMSA|AE|MINE|bad PID\r";
        assert!(
            matches!(judge(nak, "MINE"), Verdict::Negative(AckCode::AE, ref t) if t == "bad PID")
        );
    }

    #[test]
    fn merged_tallies_count_every_outcome() {
        let mut lines = Lines::new(false);
        let mut one = Tally::new();
        one.record(
            &Verdict::Accepted(AckCode::AA),
            Duration::from_millis(1),
            "1",
            &mut lines,
        );
        let mut two = Tally::new();
        two.record_failure(
            &MllpError::Timeout(Duration::from_secs(1)),
            Duration::from_secs(1),
            "2",
            &mut lines,
        );
        two.abandon(3, "refused".into());
        one.merge(two);
        assert_eq!(one.total(), 5);
        assert!(!one.all_accepted());
        assert_eq!(
            one.failure_summary(),
            "4 of 5 messages were not acknowledged positively: 1 accepted, 0 negative, \
             0 mismatched, 0 unreadable, 1 timed out, 0 without ACK, 3 not sent \
             (a connection gave up: refused)"
        );
    }
}

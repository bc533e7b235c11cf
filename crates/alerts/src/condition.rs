//! Whether each condition holds now, from a [`Snapshot`] of the engine's counters and
//! queues, the file system and the certificates. Rates and quiet times need the past:
//! a [`Watch`] keeps the samples of its window.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use store::UnixMicros;

use crate::config::{AlertConfig, ConditionKind};

/// What the engine hands the alerts at each evaluation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub at: UnixMicros,
    /// Each channel's counters since start.
    pub channels: Vec<ChannelSample>,
    /// Each destination's statistics.
    pub destinations: Vec<delivery::DestinationStats>,
}

/// One channel's counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSample {
    pub channel: String,
    /// Messages accepted.
    pub received: u64,
    /// Messages refused with a NAK.
    pub rejected: u64,
    /// Messages whose processing failed.
    pub errored: u64,
}

/// `active_hours = "07:00-19:00"` in a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveHours {
    start: u32,
    end: u32,
    zone: datetime::Zone,
}

impl ActiveHours {
    /// Parses `HH:MM-HH:MM` and the zone (default UTC).
    pub fn parse(text: &str, zone: Option<&str>) -> Result<ActiveHours, String> {
        let minute = |t: &str| {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        let bad = || format!("{text:?} is not HH:MM-HH:MM (e.g. \"07:00-19:00\")");
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(start).ok_or_else(bad)?, minute(end).ok_or_else(bad)?);
        if start == end {
            return Err(format!("{text:?} is an empty span"));
        }
        let zone = match zone {
            None => datetime::Zone::Fixed(datetime::UtcOffset::UTC),
            Some(z) => z.parse().map_err(|e: datetime::BadZone| e.to_string())?,
        };
        Ok(ActiveHours { start, end, zone })
    }

    /// Whether the instant `at` falls in the span, in the zone's local time.
    pub fn contains(&self, at: UnixMicros) -> bool {
        let minute = self.zone.minute_of_day(at.0.div_euclid(1_000_000));
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// The end of validity (notAfter, Unix seconds) of the first certificate in a PEM file.
pub fn certificate_not_after(file: &Path) -> Result<i64, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| format!("{} holds no PEM certificate: {e}", file.display()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("{} is not an X.509 certificate: {e}", file.display()))?;
    Ok(cert.validity().not_after.timestamp())
}

/// Bytes free for an unprivileged user on the file system holding `dir`.
pub fn free_space(dir: &Path) -> Result<u64, String> {
    let stat = rustix::fs::statvfs(dir)
        .map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// One alert's condition and the past it needs.
#[derive(Debug)]
pub(crate) struct Watch {
    config: AlertConfig,
    active_hours: Option<ActiveHours>,
    /// certificate_expiry: the file watched.
    certificate: Option<std::path::PathBuf>,
    /// disk_space: the data directory.
    data_dir: std::path::PathBuf,
    /// error_rate and nak_rate: (time, failures, total) since start, oldest first.
    samples: VecDeque<(i64, u64, u64)>,
    /// no_messages: the received count last seen and when it last changed.
    last_received: Option<(u64, i64)>,
}

impl Watch {
    pub(crate) fn new(
        config: AlertConfig,
        certificate: Option<std::path::PathBuf>,
        data_dir: &Path,
    ) -> Watch {
        let active_hours = config
            .active_hours
            .as_deref()
            .and_then(|h| ActiveHours::parse(h, config.zone.as_deref()).ok());
        Watch {
            config,
            active_hours,
            certificate,
            data_dir: data_dir.to_owned(),
            samples: VecDeque::new(),
            last_received: None,
        }
    }

    pub(crate) fn config(&self) -> &AlertConfig {
        &self.config
    }

    /// Some(detail, in words without patient data) while the condition holds.
    pub(crate) fn holds(&mut self, snapshot: &Snapshot) -> Option<String> {
        let c = &self.config;
        let channel = c.channel.as_deref().unwrap_or_default();
        let destination = || {
            snapshot.destinations.iter().find(|d| {
                d.channel == channel && Some(d.destination.as_str()) == c.destination.as_deref()
            })
        };
        let now = snapshot.at.0;
        match c.when {
            ConditionKind::QueueDepth => {
                let d = destination()?;
                let above = c.above.unwrap_or(0.0) as u64;
                (d.counts.depth > above).then(|| {
                    format!(
                        "{channel}/{}: {} entries queued, above {above}",
                        d.destination, d.counts.depth
                    )
                })
            }
            ConditionKind::QueueAge => {
                let d = destination()?;
                let limit = c.older_than.map_or(Duration::ZERO, |d| d.0);
                let age = d.oldest_queued_age?;
                (age > limit).then(|| {
                    format!(
                        "{channel}/{}: the oldest queued entry has waited {}s, over {}s",
                        d.destination,
                        age.as_secs(),
                        limit.as_secs()
                    )
                })
            }
            ConditionKind::DestinationUnreachable => {
                let d = destination()?;
                let since = d.failing_since?;
                Some(format!(
                    "{channel}/{}: every delivery has failed for {}s: {}",
                    d.destination,
                    (now - since.0).max(0) / 1_000_000,
                    d.last_error
                        .as_deref()
                        .map_or("no answer", delivery::reason_for_logs)
                ))
            }
            ConditionKind::NoMessages => {
                let sample = snapshot.channels.iter().find(|s| s.channel == channel)?;
                let changed = match self.last_received {
                    Some((count, at)) if count == sample.received => at,
                    _ => now,
                };
                self.last_received = Some((sample.received, changed));
                let quiet = c.quiet_for.map_or(Duration::ZERO, |d| d.0);
                let quiet_micros = i64::try_from(quiet.as_micros()).unwrap_or(i64::MAX);
                let in_hours = self
                    .active_hours
                    .as_ref()
                    .is_none_or(|h| h.contains(snapshot.at));
                (in_hours && now - changed >= quiet_micros).then(|| {
                    format!(
                        "{channel}: no message for {}s (limit {}s)",
                        (now - changed) / 1_000_000,
                        quiet.as_secs()
                    )
                })
            }
            ConditionKind::ErrorRate | ConditionKind::NakRate => {
                let (failures, total, what) = if c.when == ConditionKind::ErrorRate {
                    let s = snapshot.channels.iter().find(|s| s.channel == channel)?;
                    (
                        s.rejected + s.errored,
                        s.received + s.rejected,
                        "messages rejected or errored",
                    )
                } else {
                    let d = destination()?;
                    (
                        d.failures_since_start,
                        d.failures_since_start + d.delivered_since_start,
                        "delivery attempts failed",
                    )
                };
                let window = c.window.map_or(Duration::from_secs(300), |d| d.0);
                let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
                self.samples.push_back((now, failures, total));
                // Keep the newest sample at or before the window's start as its base.
                while self.samples.len() > 2 && self.samples[1].0 <= now - window {
                    self.samples.pop_front();
                }
                let (_, base_failures, base_total) = *self.samples.front()?;
                let (failed, all) = (
                    failures - base_failures.min(failures),
                    total - base_total.min(total),
                );
                let share = if all == 0 {
                    0.0
                } else {
                    failed as f64 / all as f64
                };
                (all >= c.min_count.unwrap_or(1).max(1) && share > c.above.unwrap_or(1.0)).then(
                    || {
                        format!(
                            "{}: {failed} of {all} {what} in the window ({:.1}%), above {:.1}%",
                            match &c.destination {
                                Some(d) => format!("{channel}/{d}"),
                                None => channel.to_owned(),
                            },
                            share * 100.0,
                            c.above.unwrap_or(1.0) * 100.0
                        )
                    },
                )
            }
            ConditionKind::CertificateExpiry => {
                let file = self.certificate.as_deref()?;
                let days = i64::from(c.within_days.unwrap_or(0));
                match certificate_not_after(file) {
                    Err(problem) => Some(problem),
                    Ok(not_after) => {
                        let left = not_after - now.div_euclid(1_000_000);
                        (left < days * 86_400).then(|| {
                            format!(
                                "the certificate {} expires in {} days (at {}), within {days}",
                                file.display(),
                                left.div_euclid(86_400),
                                datetime::rfc3339::format_micros(
                                    not_after.saturating_mul(1_000_000)
                                )
                            )
                        })
                    }
                }
            }
            ConditionKind::DiskSpace => {
                let below = c.below.map_or(0, |b| b.0);
                match free_space(&self.data_dir) {
                    Err(problem) => Some(problem),
                    Ok(free) => (free < below).then(|| {
                        format!("{} bytes free for the data directory, below {below}", free)
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_hours_wrap_midnight_and_follow_the_zone() {
        let day = ActiveHours::parse("07:00-19:00", Some("+02:00")).unwrap();
        // 2026-01-01T06:00Z is 08:00 at +02:00.
        let at = |h: i64| UnixMicros((1_767_225_600 + h * 3600) * 1_000_000);
        assert!(day.contains(at(6)));
        assert!(!day.contains(at(4)));
        let night = ActiveHours::parse("22:00-06:00", None).unwrap();
        assert!(night.contains(at(23)));
        assert!(night.contains(at(3)));
        assert!(!night.contains(at(12)));
        assert!(ActiveHours::parse("7-19", None).is_err());
        assert!(ActiveHours::parse("07:00-19:00", Some("Mars/Olympus")).is_err());
    }

    fn alert(text: &str) -> AlertConfig {
        toml::from_str(&format!("name = \"a\"\nnotify = [\"n\"]\n{text}")).unwrap()
    }

    #[test]
    fn error_rate_is_taken_over_the_window_only() {
        let mut watch = Watch::new(
            alert("when = \"error_rate\"\nchannel = \"lab\"\nabove = 0.5\nwindow = \"10s\""),
            None,
            Path::new("."),
        );
        let snap = |secs: i64, received: u64, errored: u64| Snapshot {
            at: UnixMicros(secs * 1_000_000),
            channels: vec![ChannelSample {
                channel: "lab".into(),
                received,
                rejected: 0,
                errored,
            }],
            destinations: vec![],
        };
        assert!(watch.holds(&snap(0, 0, 0)).is_none());
        // 8 errors of 10 messages within the window.
        assert!(watch.holds(&snap(5, 10, 8)).is_some());
        // Long after: 10 clean messages in the last window.
        assert!(watch.holds(&snap(20, 20, 8)).is_none());
        assert!(watch.holds(&snap(30, 30, 8)).is_none());
    }

    fn ehr(depth: u64, failing_since: Option<i64>) -> delivery::DestinationStats {
        delivery::DestinationStats {
            channel: "lab".into(),
            destination: "ehr".into(),
            kind: delivery::DestinationKind::Mllp,
            counts: delivery::QueueCounts {
                depth,
                ..Default::default()
            },
            oldest_queued_age: None,
            alert: None,
            last_error: failing_since
                .map(|_| "the receiver answered AE: no patient DOE^JANE".to_owned()),
            failing_since: failing_since.map(UnixMicros),
            delivered_since_start: 0,
            failures_since_start: 0,
            answer_latency: Default::default(),
            sent_latency: Default::default(),
        }
    }

    #[test]
    fn queue_depth_and_an_unreachable_destination_read_the_queue_statistics() {
        let at = |secs: i64, d: delivery::DestinationStats| Snapshot {
            at: UnixMicros(secs * 1_000_000),
            channels: vec![],
            destinations: vec![d],
        };
        let mut depth = Watch::new(
            alert("when = \"queue_depth\"\nchannel = \"lab\"\ndestination = \"ehr\"\nabove = 100"),
            None,
            Path::new("."),
        );
        assert!(depth.holds(&at(0, ehr(100, None))).is_none());
        assert!(depth.holds(&at(0, ehr(101, None))).is_some());
        let mut down = Watch::new(
            alert("when = \"destination_unreachable\"\nchannel = \"lab\"\ndestination = \"ehr\""),
            None,
            Path::new("."),
        );
        assert!(down.holds(&at(10, ehr(1, None))).is_none());
        let detail = down.holds(&at(10, ehr(1, Some(4_000_000)))).unwrap();
        // The receiver's own text (it may quote the message) stays out.
        assert_eq!(
            detail,
            "lab/ehr: every delivery has failed for 6s: the receiver answered AE"
        );
    }

    #[test]
    fn a_quiet_channel_counts_from_its_last_message_and_only_in_active_hours() {
        let mut quiet = Watch::new(
            alert(
                "when = \"no_messages\"\nchannel = \"lab\"\nquiet_for = \"10m\"\nactive_hours = \"07:00-19:00\"",
            ),
            None,
            Path::new("."),
        );
        // 2026-01-01T08:00Z onwards, minute by minute.
        let at = |minute: i64, received: u64| Snapshot {
            at: UnixMicros((1_767_254_400 + minute * 60) * 1_000_000),
            channels: vec![ChannelSample {
                channel: "lab".into(),
                received,
                ..Default::default()
            }],
            destinations: vec![],
        };
        assert!(quiet.holds(&at(0, 5)).is_none());
        assert!(quiet.holds(&at(9, 5)).is_none());
        assert!(quiet.holds(&at(10, 5)).is_some());
        // A message: quiet again counts from it.
        assert!(quiet.holds(&at(11, 6)).is_none());
        assert!(quiet.holds(&at(20, 6)).is_none());
        assert!(quiet.holds(&at(21, 6)).is_some());
        // 19:30 is outside the active hours.
        assert!(quiet.holds(&at(11 * 60 + 30, 6)).is_none());
    }

    #[test]
    fn a_certificate_near_its_end_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, cert.pem()).unwrap();
        assert_eq!(certificate_not_after(&file).unwrap(), 1_893_456_000);
        let mut watch = Watch::new(
            alert("when = \"certificate_expiry\"\nfile = \"cert.pem\"\nwithin_days = 30"),
            Some(file),
            dir.path(),
        );
        let at = |secs: i64| Snapshot {
            at: UnixMicros(secs * 1_000_000),
            channels: vec![],
            destinations: vec![],
        };
        assert!(watch.holds(&at(1_893_456_000 - 40 * 86_400)).is_none());
        let detail = watch.holds(&at(1_893_456_000 - 10 * 86_400)).unwrap();
        assert!(detail.contains("expires in 10 days"), "{detail}");
    }
}

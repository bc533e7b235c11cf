//! `[alerting]` (how often conditions are looked at, the notifiers) and `[[alerts]]`
//! (each alert's condition, its `for` time and its notifiers), as written in the
//! configuration, and [`check`], which names every problem by its key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use conf::{ByteSize, ConfigDuration};
use serde::Deserialize;

/// `[alerting]`: the evaluation interval and the notifiers alerts name.
///
/// ```
/// let alerting: alerts::AlertingConfig = toml::from_str(r#"
///     interval = "5s"
///     [notifiers.ops]
///     type = "webhook"
///     url = "http://127.0.0.1:9000/hook"
/// "#).unwrap();
/// assert_eq!(alerting.interval.0, std::time::Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// How often every alert's condition is evaluated (default 10s).
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
    /// Notifiers by name: `[alerting.notifiers.NAME]`.
    #[serde(default)]
    pub notifiers: BTreeMap<String, NotifierConfig>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            interval: default_interval(),
            notifiers: BTreeMap::new(),
        }
    }
}

fn default_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// A JSON POST to a URL.
    Webhook,
    /// A mail through an SMTP server.
    Email,
    /// An HL7 ORU^R01 notice to an MLLP listener.
    Mllp,
}

impl NotifierKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Webhook => "webhook",
            NotifierKind::Email => "email",
            NotifierKind::Mllp => "mllp",
        }
    }
}

/// `[alerting.notifiers.NAME]`: one flat table, its keys by kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// `webhook`, `email` or `mllp`.
    #[serde(rename = "type")]
    pub kind: NotifierKind,
    /// How long one notification may take (default 10s). A failed one is tried three
    /// times in all.
    #[serde(default = "default_notify_timeout")]
    pub timeout: ConfigDuration,
    /// webhook: the URL (`http://` or `https://`).
    #[serde(default)]
    pub url: Option<String>,
    /// webhook: extra request headers (`Authorization = "Bearer ..."`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// webhook (https) and mllp: TLS towards the receiver, as for destinations.
    #[serde(default)]
    pub tls: Option<delivery::TlsConfig>,
    /// email: the mail server, as for e-mail destinations.
    #[serde(default)]
    pub smtp: Option<delivery::smtp::SmtpConfig>,
    /// email: the sender's address.
    #[serde(default)]
    pub from: Option<String>,
    /// email: the recipients.
    #[serde(default)]
    pub recipients: Option<Vec<String>>,
    /// mllp: the receiver, `host:port`.
    #[serde(default)]
    pub to: Option<String>,
    /// mllp: MSH-5 of the notice (default `ALERTS`).
    #[serde(default)]
    pub receiving_application: Option<String>,
    /// mllp: MSH-6 of the notice (default empty).
    #[serde(default)]
    pub receiving_facility: Option<String>,
}

fn default_notify_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// A destination's queue holds more than `above` entries.
    QueueDepth,
    /// A destination's oldest waiting entry is older than `older_than`.
    QueueAge,
    /// A channel received nothing for `quiet_for` (within `active_hours`, if given).
    NoMessages,
    /// A channel's share of rejected and errored messages over `window` is above `above`.
    ErrorRate,
    /// A destination's share of failed attempts (NAKs, errors) over `window` is above
    /// `above`.
    NakRate,
    /// Every attempt to deliver to a destination has failed (for `for`).
    DestinationUnreachable,
    /// A certificate expires within `within_days`.
    CertificateExpiry,
    /// The data directory's file system has less than `below` free.
    DiskSpace,
}

impl ConditionKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::QueueDepth => "queue_depth",
            ConditionKind::QueueAge => "queue_age",
            ConditionKind::NoMessages => "no_messages",
            ConditionKind::ErrorRate => "error_rate",
            ConditionKind::NakRate => "nak_rate",
            ConditionKind::DestinationUnreachable => "destination_unreachable",
            ConditionKind::CertificateExpiry => "certificate_expiry",
            ConditionKind::DiskSpace => "disk_space",
        }
    }
}

/// One `[[alerts]]` table.
///
/// ```
/// let alert: alerts::AlertConfig = toml::from_str(r#"
///     name = "ehr-down"
///     when = "destination_unreachable"
///     channel = "lab"
///     destination = "ehr"
///     for = "2m"
///     notify = ["ops"]
/// "#).unwrap();
/// assert_eq!(alert.hold().as_secs(), 120);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Unique; names the alert in notifications, `/api/alerts` and `/metrics`.
    pub name: String,
    /// The condition.
    pub when: ConditionKind,
    /// The channel watched (queue_depth, queue_age, no_messages, error_rate, nak_rate,
    /// destination_unreachable; certificate_expiry: its listener's certificate).
    #[serde(default)]
    pub channel: Option<String>,
    /// The destination of `channel` watched (queue_depth, queue_age, nak_rate,
    /// destination_unreachable; certificate_expiry: its TLS certificate).
    #[serde(default)]
    pub destination: Option<String>,
    /// queue_depth: entries; error_rate and nak_rate: a share between 0 and 1.
    #[serde(default)]
    pub above: Option<f64>,
    /// queue_age: how old the oldest waiting entry may get.
    #[serde(default)]
    pub older_than: Option<ConfigDuration>,
    /// no_messages: how long a channel may be quiet.
    #[serde(default)]
    pub quiet_for: Option<ConfigDuration>,
    /// no_messages: only between these local times, `"07:00-19:00"` (may wrap midnight).
    #[serde(default)]
    pub active_hours: Option<String>,
    /// no_messages: the zone of `active_hours`, an IANA name or an offset (default UTC).
    #[serde(default)]
    pub zone: Option<String>,
    /// error_rate and nak_rate: the window the share is taken over (default 5m).
    #[serde(default)]
    pub window: Option<ConfigDuration>,
    /// error_rate and nak_rate: the fewest messages (attempts) in the window for the
    /// share to count (default 1).
    #[serde(default)]
    pub min_count: Option<u64>,
    /// certificate_expiry: a PEM certificate file (instead of `channel`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// certificate_expiry: how many days before expiry to fire.
    #[serde(default)]
    pub within_days: Option<u32>,
    /// disk_space: the least free space (`"2GiB"`).
    #[serde(default)]
    pub below: Option<ByteSize>,
    /// How long the condition must hold before the alert fires (default 0: at once).
    #[serde(default, rename = "for")]
    pub hold_for: Option<ConfigDuration>,
    /// How long the condition must be gone before the alert resolves (default: `for`).
    #[serde(default)]
    pub clear_for: Option<ConfigDuration>,
    /// The notifiers told when it fires and when it resolves (`[alerting.notifiers]`).
    pub notify: Vec<String>,
}

impl AlertConfig {
    /// The `for` time.
    pub fn hold(&self) -> Duration {
        self.hold_for.map_or(Duration::ZERO, |d| d.0)
    }

    /// The `clear_for` time.
    pub fn clear(&self) -> Duration {
        self.clear_for.map_or(self.hold(), |d| d.0)
    }
}

/// What the engine knows of its channels, for checking what alerts name.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Channel name -> what alerts can watch in it.
    pub channels: BTreeMap<String, KnownChannel>,
}

/// One channel, as alerts see it.
#[derive(Debug, Clone, Default)]
pub struct KnownChannel {
    /// The certificate of its listener, if it uses TLS.
    pub listener_cert: Option<PathBuf>,
    /// Its destinations, each with its TLS certificate file (its own, else its CA).
    pub destinations: BTreeMap<String, Option<PathBuf>>,
}

/// The certificate file an alert watches: `file`, or the named channel's listener's or
/// destination's. None when it names none (an error of [`check`]).
pub fn certificate_of(alert: &AlertConfig, known: &Known, base: &Path) -> Option<PathBuf> {
    if let Some(file) = &alert.file {
        return Some(base.join(file));
    }
    let channel = known.channels.get(alert.channel.as_deref()?)?;
    match &alert.destination {
        Some(d) => channel.destinations.get(d)?.clone(),
        None => channel.listener_cert.clone(),
    }
    .map(|f| base.join(f))
}

/// Every problem of `[alerting]` and `[[alerts]]`, as (key, message).
pub fn check(
    alerting: &AlertingConfig,
    alerts: &[AlertConfig],
    known: &Known,
    base: &Path,
) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if alerting.interval.0 < Duration::from_millis(100) {
        errors.push((
            "alerting.interval".to_owned(),
            "must be at least 100ms".to_owned(),
        ));
    }
    for (name, notifier) in &alerting.notifiers {
        let at = format!("alerting.notifiers.{name}");
        if let Err((key, message)) = check_notifier(name, notifier) {
            errors.push((format!("{at}.{key}"), message));
        }
    }
    let mut names = BTreeSet::new();
    for (i, alert) in alerts.iter().enumerate() {
        let at = format!("alerts[{i}]");
        let mut error = |key: &str, message: String| errors.push((format!("{at}.{key}"), message));
        if alert.name.is_empty()
            || !alert
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            error(
                "name",
                format!(
                    "{:?} is not an alert name (use letters, digits, '-' and '_')",
                    alert.name
                ),
            );
        } else if !names.insert(alert.name.as_str()) {
            error("name", format!("{:?} names two alerts", alert.name));
        }
        if alert.notify.is_empty() {
            error(
                "notify",
                "name at least one notifier of [alerting.notifiers]".to_owned(),
            );
        }
        for (j, notifier) in alert.notify.iter().enumerate() {
            if !alerting.notifiers.contains_key(notifier) {
                error(
                    &format!("notify[{j}]"),
                    format!("{notifier:?} is not a notifier of [alerting.notifiers]"),
                );
            }
        }
        for (key, message) in check_condition(alert, known, base) {
            error(&key, message);
        }
    }
    errors
}

fn check_notifier(name: &str, n: &NotifierConfig) -> Result<(), (String, String)> {
    let kind = n.kind;
    let owned: [(&str, bool, &[NotifierKind]); 8] = [
        ("url", n.url.is_some(), &[NotifierKind::Webhook]),
        ("headers", !n.headers.is_empty(), &[NotifierKind::Webhook]),
        (
            "tls",
            n.tls.is_some(),
            &[NotifierKind::Webhook, NotifierKind::Mllp],
        ),
        ("smtp", n.smtp.is_some(), &[NotifierKind::Email]),
        ("from", n.from.is_some(), &[NotifierKind::Email]),
        ("recipients", n.recipients.is_some(), &[NotifierKind::Email]),
        ("to", n.to.is_some(), &[NotifierKind::Mllp]),
        (
            "receiving_application",
            n.receiving_application.is_some() || n.receiving_facility.is_some(),
            &[NotifierKind::Mllp],
        ),
    ];
    for (key, given, kinds) in owned {
        if given && !kinds.contains(&kind) {
            return Err((
                key.to_owned(),
                format!(
                    "belongs to {} notifiers, not {}",
                    kinds[0].as_str(),
                    kind.as_str()
                ),
            ));
        }
    }
    let need = |key: &str, given: bool| {
        if given {
            Ok(())
        } else {
            Err((
                key.to_owned(),
                format!("{} notifiers need `{key}`", kind.as_str()),
            ))
        }
    };
    if n.timeout.0.is_zero() {
        return Err(("timeout".into(), "must be longer than zero".into()));
    }
    match kind {
        NotifierKind::Webhook => {
            need("url", n.url.is_some())?;
            let url = n.url.as_deref().unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    "url".into(),
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
        }
        NotifierKind::Email => {
            need("smtp", n.smtp.is_some())?;
            need("from", n.from.is_some())?;
            need(
                "recipients",
                n.recipients.as_ref().is_some_and(|r| !r.is_empty()),
            )?;
            if let Some(smtp) = &n.smtp {
                smtp.check().map_err(|(k, m)| (format!("smtp.{k}"), m))?;
            }
        }
        NotifierKind::Mllp => {
            need("to", n.to.is_some())?;
            let to = n.to.as_deref().unwrap_or_default();
            if to
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(("to".into(), format!("{to:?} is not HOST:PORT")));
            }
        }
    }
    let _ = name;
    Ok(())
}

/// The keys each condition takes (besides `name`, `when`, `for`, `clear_for`, `notify`).
fn keys_of(kind: ConditionKind) -> &'static [&'static str] {
    match kind {
        ConditionKind::QueueDepth => &["channel", "destination", "above"],
        ConditionKind::QueueAge => &["channel", "destination", "older_than"],
        ConditionKind::NoMessages => &["channel", "quiet_for", "active_hours", "zone"],
        ConditionKind::ErrorRate => &["channel", "above", "window", "min_count"],
        ConditionKind::NakRate => &["channel", "destination", "above", "window", "min_count"],
        ConditionKind::DestinationUnreachable => &["channel", "destination"],
        ConditionKind::CertificateExpiry => &["file", "channel", "destination", "within_days"],
        ConditionKind::DiskSpace => &["below"],
    }
}

fn check_condition(alert: &AlertConfig, known: &Known, base: &Path) -> Vec<(String, String)> {
    let kind = alert.when;
    let mut errors = Vec::new();
    let given: [(&str, bool); 12] = [
        ("channel", alert.channel.is_some()),
        ("destination", alert.destination.is_some()),
        ("above", alert.above.is_some()),
        ("older_than", alert.older_than.is_some()),
        ("quiet_for", alert.quiet_for.is_some()),
        ("active_hours", alert.active_hours.is_some()),
        ("zone", alert.zone.is_some()),
        ("window", alert.window.is_some()),
        ("min_count", alert.min_count.is_some()),
        ("file", alert.file.is_some()),
        ("within_days", alert.within_days.is_some()),
        ("below", alert.below.is_some()),
    ];
    let allowed = keys_of(kind);
    for (key, is_given) in given {
        if is_given && !allowed.contains(&key) {
            errors.push((
                key.to_owned(),
                format!("is not a key of `when = \"{}\"`", kind.as_str()),
            ));
        }
    }
    let mut need = |key: &str, is_given: bool| {
        if !is_given {
            errors.push((
                key.to_owned(),
                format!("`when = \"{}\"` needs `{key}`", kind.as_str()),
            ));
        }
    };
    use ConditionKind as K;
    let wants_destination = matches!(
        kind,
        K::QueueDepth | K::QueueAge | K::NakRate | K::DestinationUnreachable
    );
    if allowed.contains(&"channel") && kind != K::CertificateExpiry {
        need("channel", alert.channel.is_some());
    }
    if wants_destination {
        need("destination", alert.destination.is_some());
    }
    match kind {
        K::QueueDepth | K::ErrorRate | K::NakRate => need("above", alert.above.is_some()),
        K::QueueAge => need("older_than", alert.older_than.is_some()),
        K::NoMessages => need("quiet_for", alert.quiet_for.is_some()),
        K::CertificateExpiry => need("within_days", alert.within_days.is_some()),
        K::DiskSpace => need("below", alert.below.is_some()),
        K::DestinationUnreachable => {}
    }
    if let Some(above) = alert.above {
        let share = matches!(kind, K::ErrorRate | K::NakRate);
        if share && !(0.0..1.0).contains(&above) {
            errors.push((
                "above".into(),
                format!("{above} is not a share from 0 up to (not including) 1"),
            ));
        } else if !share && (above < 0.0 || above.fract() != 0.0) {
            errors.push((
                "above".into(),
                format!("{above} is not a number of entries"),
            ));
        }
    }
    if let Some(window) = alert.window
        && window.0.is_zero()
    {
        errors.push(("window".into(), "must be longer than zero".into()));
    }
    if let Some(hours) = &alert.active_hours
        && let Err(message) = crate::condition::ActiveHours::parse(hours, alert.zone.as_deref())
    {
        errors.push(("active_hours".into(), message));
    }
    if alert.zone.is_some() && alert.active_hours.is_none() && kind == K::NoMessages {
        errors.push(("zone".into(), "goes with `active_hours`".into()));
    }
    // What a channel and destination name must exist.
    if allowed.contains(&"channel")
        && let Some(channel) = &alert.channel
    {
        match known.channels.get(channel) {
            None => errors.push((
                "channel".into(),
                format!("{channel:?} is not a configured channel"),
            )),
            Some(c) => {
                if let Some(destination) = &alert.destination
                    && !c.destinations.contains_key(destination)
                {
                    errors.push((
                        "destination".into(),
                        format!("{destination:?} is not a destination of channel {channel:?}"),
                    ));
                }
            }
        }
    }
    if kind == K::CertificateExpiry && errors.is_empty() {
        if alert.file.is_some() && alert.channel.is_some() {
            errors.push(("file".into(), "give `file` or `channel`, not both".into()));
        } else if alert.file.is_none() && alert.channel.is_none() {
            errors.push((
                "file".into(),
                "`when = \"certificate_expiry\"` needs `file` or `channel`".into(),
            ));
        } else {
            match certificate_of(alert, known, base) {
                None => errors.push((
                    if alert.destination.is_some() {
                        "destination"
                    } else {
                        "channel"
                    }
                    .into(),
                    "uses no TLS certificate to watch".into(),
                )),
                Some(file) => {
                    if let Err(message) = crate::condition::certificate_not_after(&file) {
                        errors.push(("file".into(), message));
                    }
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        let mut lab = KnownChannel::default();
        lab.destinations.insert("ehr".into(), None);
        Known {
            channels: [("lab".to_owned(), lab)].into_iter().collect(),
        }
    }

    fn problems(text: &str) -> Vec<(String, String)> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            alerting: AlertingConfig,
            alerts: Vec<AlertConfig>,
        }
        let file: File = toml::from_str(text).unwrap();
        check(&file.alerting, &file.alerts, &known(), Path::new("."))
    }

    #[test]
    fn every_problem_names_its_key() {
        let found = problems(
            r#"
            [alerting.notifiers.hook]
            type = "webhook"
            url = "ftp://x"
            [alerting.notifiers.mail]
            type = "email"
            smtp = { host = "mail.example.org", security = "none" }
            from = "a@example.org"
            recipients = ["b@example.org"]
            [alerting.notifiers.pager]
            type = "mllp"
            url = "http://x"
            [[alerts]]
            name = "q"
            when = "queue_depth"
            channel = "lab"
            destination = "nope"
            above = 1.5
            quiet_for = "1m"
            notify = ["hook", "missing"]
            [[alerts]]
            name = "q"
            when = "no_messages"
            channel = "radiology"
            quiet_for = "10m"
            active_hours = "7-19"
            notify = ["hook"]
            "#,
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerting.notifiers.hook.url",
                "alerting.notifiers.mail.smtp.security",
                "alerting.notifiers.pager.url",
                "alerts[0].notify[1]",
                "alerts[0].quiet_for",
                "alerts[0].above",
                "alerts[0].destination",
                "alerts[1].name",
                "alerts[1].active_hours",
                "alerts[1].channel",
            ],
            "{found:?}"
        );
    }

    #[test]
    fn a_good_alert_has_no_problem() {
        let found = problems(
            r#"
            [alerting.notifiers.hook]
            type = "webhook"
            url = "http://127.0.0.1:9/hook"
            [[alerts]]
            name = "lab-quiet"
            when = "no_messages"
            channel = "lab"
            quiet_for = "30m"
            active_hours = "07:00-19:00"
            zone = "Europe/Paris"
            for = "1m"
            notify = ["hook"]
            "#,
        );
        assert!(found.is_empty(), "{found:?}");
    }
}

//! The configuration file (TOML): what Corridor runs, checked before it runs.
//!
//! The shape is a contract users and scripts rely on (`docs/configuration.md`): it is only
//! ever extended. Unknown keys are errors, and every error names the key it is
//! about, e.g. `channels.lab.source.listen: "nonsense" is not a socket address`.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::intake::AckModeSetting;
pub use crate::sources::shared_keys::ListenAddr;
use crate::sources::shared_keys::default_read_timeout;
pub use conf::{ByteSize, ConfigDuration, DuplicateWindow, parse_byte_size, parse_duration};
pub use delivery::{DestinationConfig, DestinationKind};
use serde::Deserialize;
use serde::de::{self, Deserializer};
pub use steps::{FilterConfig, TransformConfig};

/// The whole configuration file.
///
/// ```
/// let config = engine::Config::from_toml(r#"
///     [data]
///     dir = "/var/lib/corridor"
///     [channels.lab]
///     source = { type = "mllp", listen = "127.0.0.1:2575", ack_mode = "enhanced" }
/// "#).unwrap();
/// assert_eq!(config.channels["lab"].source.ack_mode, engine::AckModeSetting::Enhanced);
///
/// let error = engine::Config::from_toml("[channels.lab]\nsource = { type = \"mllp\", listen = \"nonsense\" }\n")
///     .unwrap_err();
/// assert!(error.to_string().contains("channels.lab.source.listen: \"nonsense\" is not a socket address"));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the database lives.
    #[serde(default)]
    pub data: DataConfig,
    /// The HTTP server (health and metrics).
    #[serde(default)]
    pub http: HttpConfig,
    /// Channels by name: `[channels.NAME]`.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    /// The master patient index: `[mpi] enabled = true`, thresholds and the enterprise
    /// id's FHIR system (see `mpi::MpiConfig`).
    #[serde(default)]
    pub mpi: mpi::MpiConfig,
    /// `[audit]`: how long the audit trail is kept.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[rules]`: the clinical rules on channels whose repository is on, and where alerts
    /// are delivered (see `stages::rules`).
    #[serde(default)]
    pub rules: crate::stages::rules::RulesSection,
    /// `[alerting]`: how often alerts are evaluated, and the notifiers they name.
    #[serde(default)]
    pub alerting: alerts::AlertingConfig,
    /// `[[alerts]]`: conditions that notify once when they start and once when they end
    /// (`docs/alerts.md`).
    #[serde(default)]
    pub alerts: Vec<alerts::AlertConfig>,
    /// `[terminology]`: code maps and code systems loaded at start (see
    /// `TerminologyConfig`).
    #[serde(default)]
    pub terminology: TerminologyConfig,
    /// `[console]`: when the dashboard colours a queue yellow and red.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Where relative file names (lookup tables, scripts, TLS files, file destinations)
    /// start: the configuration file's directory, or the working directory.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[data]`: where Corridor keeps its database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Directory of the SQLite database (`corridor.db`); created if missing.
    /// Default `corridor-data`. Read from a file, a relative directory starts at the
    /// file's directory, as every other path in it does. `--data` wins.
    #[serde(default = "default_data_dir")]
    pub dir: PathBuf,
    /// Whether `corridor run` reads the whole database for damage before it starts
    /// (default `"off"`; `"quick"` or `"full"`).
    #[serde(default)]
    pub check_at_start: DatabaseCheck,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: default_data_dir(),
            check_at_start: DatabaseCheck::default(),
        }
    }
}

/// `[data] check_at_start`: how `corridor run` checks the database before it starts.
///
/// Off by default: a check reads the whole file, which delays the listeners of a large
/// database by as long as that read takes, while senders wait; `corridor db check`
/// checks on demand (from a service's pre-start step, for example).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseCheck {
    /// No check: damage shows when a read reaches it.
    #[default]
    Off,
    /// SQLite's `quick_check`: every page's structure.
    Quick,
    /// SQLite's `integrity_check` and `foreign_key_check`.
    Full,
}

impl DatabaseCheck {
    /// The check to run, if any.
    pub fn depth(self) -> Option<store::IntegrityCheck> {
        match self {
            DatabaseCheck::Off => None,
            DatabaseCheck::Quick => Some(store::IntegrityCheck::Quick),
            DatabaseCheck::Full => Some(store::IntegrityCheck::Full),
        }
    }
}

/// `[terminology]`: the code maps and code systems in force. Each file (FHIR
/// `ConceptMap`/`CodeSystem` JSON, a CSV map, or the LOINC table) is stored as a load
/// named by its path when it changed since its last load; loads made with `corridor
/// terminology load` or `POST /api/terminology` join them. The engine looks for new
/// loads every `reload_interval` and puts them in force without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminologyConfig {
    /// Files to load at start (relative to the configuration file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// The starter map of common laboratory tests to LOINC (default on).
    #[serde(default = "default_true")]
    pub starter: bool,
    /// How often the store is read for loads made by another process (default 2s).
    #[serde(default = "default_terminology_reload")]
    pub reload_interval: ConfigDuration,
}

impl Default for TerminologyConfig {
    fn default() -> Self {
        TerminologyConfig {
            files: Vec::new(),
            starter: true,
            reload_interval: default_terminology_reload(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_terminology_reload() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(2))
}

impl TerminologyConfig {
    /// Problems with these settings, as (key, message).
    pub(crate) fn check(&self, base_dir: &Path) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.reload_interval.0.is_zero() {
            errors.push((
                "terminology.reload_interval".to_owned(),
                "must be longer than 0".to_owned(),
            ));
        }
        for (i, file) in self.files.iter().enumerate() {
            let path = base_dir.join(file);
            let key = format!("terminology.files[{i}]");
            match std::fs::read_to_string(&path) {
                Err(e) => errors.push((key, format!("{}: {e}", path.display()))),
                Ok(text) => {
                    let name = file.display().to_string();
                    if let Err(invalid) = terminology::stored::parse_file(
                        &name,
                        &text,
                        &terminology::MapScope::everywhere(),
                    ) {
                        errors.push((key, invalid.to_string()));
                    }
                }
            }
        }
        errors
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("corridor-data")
}

/// `[http]`: the HTTP server with `GET /health` and `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (default `127.0.0.1:8080`); port 0 picks a free port.
    #[serde(default = "default_http_listen")]
    pub listen: ListenAddr,
    /// `false` runs without the HTTP server (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time a client has to send a whole request, headers and body (default `"30s"`).
    #[serde(default = "default_read_timeout")]
    pub read_timeout: ConfigDuration,
    /// Time a kept-alive connection may wait for its next request (default `"1m"`; `0` = forever).
    #[serde(default = "default_http_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// Most connections served at once (default 256).
    #[serde(default = "default_http_max_connections")]
    pub max_connections: usize,
    /// `"on"` (default): every route but `/health` needs credentials. `"off"` only on a
    /// loopback `listen` address.
    #[serde(default)]
    pub auth: AuthSetting,
    /// `true` serves `/metrics` without credentials (default `false`).
    #[serde(default)]
    pub metrics_public: bool,
    /// `[http.oidc]`: OpenID Connect bearer tokens from a hospital's identity provider.
    #[serde(default)]
    pub oidc: Option<OidcSettings>,
    /// HTTPS: the certificate chain (PEM, leaf first); with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the private key (PEM); with `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// With it, clients must present a certificate issued by one of these CAs (PEM);
    /// its subject is recorded in the audit trail.
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
    /// The largest request body accepted on any route (default `"1MiB"`); larger is a 413.
    #[serde(default = "default_http_max_body")]
    pub max_body: ByteSize,
    /// A console session unused this long ends (default `"30m"`; 1 minute up to
    /// `session_timeout`).
    #[serde(default = "default_session_idle_timeout")]
    pub session_idle_timeout: ConfigDuration,
    /// A console session ends this long after its login, used or not (default `"12h"`;
    /// at most 30 days).
    #[serde(default = "default_session_timeout")]
    pub session_timeout: ConfigDuration,
}

fn default_http_max_body() -> ByteSize {
    ByteSize(api::DEFAULT_MAX_BODY as u64)
}
fn default_session_idle_timeout() -> ConfigDuration {
    ConfigDuration(access::SessionPolicy::default().idle_timeout)
}
fn default_session_timeout() -> ConfigDuration {
    ConfigDuration(access::SessionPolicy::default().absolute_timeout)
}

impl HttpConfig {
    /// The console sessions' policy: `session_idle_timeout` and `session_timeout`.
    pub fn session_policy(&self) -> access::SessionPolicy {
        access::SessionPolicy {
            idle_timeout: self.session_idle_timeout.0,
            absolute_timeout: self.session_timeout.0,
            ..access::SessionPolicy::default()
        }
    }
}

/// `[audit]`: the audit trail's own retention, apart from messages'.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// How long audit records are kept (default six years, `"2196d"`).
    #[serde(default = "default_audit_retention")]
    pub retention: ConfigDuration,
    /// How often records older than that are pruned (default `"1h"`).
    #[serde(default = "default_audit_prune_interval")]
    pub prune_interval: ConfigDuration,
}

fn default_audit_retention() -> ConfigDuration {
    ConfigDuration(access::audit::DEFAULT_RETENTION)
}
fn default_audit_prune_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: default_audit_retention(),
            prune_interval: default_audit_prune_interval(),
        }
    }
}

/// `[console]`: the dashboard's colour thresholds for every destination's queue: its
/// oldest entry's age and its depth turn yellow (with the word "warning") from the
/// `_warn` value and red ("alarm") from the `_alarm` value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Default `"1m"`.
    #[serde(default = "default_queue_age_warn")]
    pub queue_age_warn: ConfigDuration,
    /// Default `"5m"`.
    #[serde(default = "default_queue_age_alarm")]
    pub queue_age_alarm: ConfigDuration,
    /// Default 1000 entries.
    #[serde(default = "default_queue_depth_warn")]
    pub queue_depth_warn: u64,
    /// Default 10000 entries.
    #[serde(default = "default_queue_depth_alarm")]
    pub queue_depth_alarm: u64,
    /// `[console.destinations.CHANNEL.DESTINATION]`: one destination's own thresholds,
    /// the same four keys, each optional (unset: the value above).
    #[serde(default)]
    pub destinations: BTreeMap<String, BTreeMap<String, QueueThresholdOverrides>>,
}

/// One destination's own queue colour thresholds (`[console.destinations.CHANNEL.NAME]`):
/// each key left out is `[console]`'s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueThresholdOverrides {
    #[serde(default)]
    pub queue_age_warn: Option<ConfigDuration>,
    #[serde(default)]
    pub queue_age_alarm: Option<ConfigDuration>,
    #[serde(default)]
    pub queue_depth_warn: Option<u64>,
    #[serde(default)]
    pub queue_depth_alarm: Option<u64>,
}

fn default_queue_age_warn() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(
        api::QueueThresholds::default().age_warn_ms,
    ))
}
fn default_queue_age_alarm() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(
        api::QueueThresholds::default().age_alarm_ms,
    ))
}
fn default_queue_depth_warn() -> u64 {
    api::QueueThresholds::default().depth_warn
}
fn default_queue_depth_alarm() -> u64 {
    api::QueueThresholds::default().depth_alarm
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            queue_age_warn: default_queue_age_warn(),
            queue_age_alarm: default_queue_age_alarm(),
            queue_depth_warn: default_queue_depth_warn(),
            queue_depth_alarm: default_queue_depth_alarm(),
            destinations: BTreeMap::new(),
        }
    }
}

fn millis(d: &ConfigDuration) -> u64 {
    u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)
}

impl ConsoleConfig {
    /// The thresholds the dashboard colours with.
    pub fn queue_thresholds(&self) -> api::QueueThresholds {
        api::QueueThresholds {
            age_warn_ms: millis(&self.queue_age_warn),
            age_alarm_ms: millis(&self.queue_age_alarm),
            depth_warn: self.queue_depth_warn,
            depth_alarm: self.queue_depth_alarm,
        }
    }

    /// Each destination with thresholds of its own, `((channel, destination),
    /// thresholds)`: its keys over `[console]`'s.
    pub fn destination_thresholds(&self) -> BTreeMap<(String, String), api::QueueThresholds> {
        let global = self.queue_thresholds();
        let mut out = BTreeMap::new();
        for (channel, destinations) in &self.destinations {
            for (destination, o) in destinations {
                out.insert(
                    (channel.clone(), destination.clone()),
                    api::QueueThresholds {
                        age_warn_ms: o.queue_age_warn.as_ref().map_or(global.age_warn_ms, millis),
                        age_alarm_ms: o
                            .queue_age_alarm
                            .as_ref()
                            .map_or(global.age_alarm_ms, millis),
                        depth_warn: o.queue_depth_warn.unwrap_or(global.depth_warn),
                        depth_alarm: o.queue_depth_alarm.unwrap_or(global.depth_alarm),
                    },
                );
            }
        }
        out
    }

    /// The problems of `[console]`, each naming its key; `channels` for the
    /// destinations `[console.destinations]` names.
    fn check(&self, channels: &BTreeMap<String, ChannelConfig>) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let zero = "must be more than 0";
        for (key, is_zero) in [
            ("console.queue_age_warn", self.queue_age_warn.0.is_zero()),
            ("console.queue_age_alarm", self.queue_age_alarm.0.is_zero()),
            ("console.queue_depth_warn", self.queue_depth_warn == 0),
            ("console.queue_depth_alarm", self.queue_depth_alarm == 0),
        ] {
            if is_zero {
                errors.push((key.to_owned(), zero.to_owned()));
            }
        }
        if self.queue_age_warn.0 > self.queue_age_alarm.0 {
            errors.push((
                "console.queue_age_warn".to_owned(),
                "must not be longer than console.queue_age_alarm".to_owned(),
            ));
        }
        if self.queue_depth_warn > self.queue_depth_alarm {
            errors.push((
                "console.queue_depth_warn".to_owned(),
                "must not be more than console.queue_depth_alarm".to_owned(),
            ));
        }
        let own = self.destination_thresholds();
        for (channel, destinations) in &self.destinations {
            for (destination, o) in destinations {
                let at = format!("console.destinations.{channel}.{destination}");
                let known = channels
                    .get(channel)
                    .is_some_and(|c| c.destinations.iter().any(|d| d.name == *destination));
                if !known {
                    errors.push((
                        at.clone(),
                        format!("channels.{channel} has no destination named {destination:?}"),
                    ));
                }
                for (key, is_zero) in [
                    (
                        "queue_age_warn",
                        o.queue_age_warn.is_some_and(|d| d.0.is_zero()),
                    ),
                    (
                        "queue_age_alarm",
                        o.queue_age_alarm.is_some_and(|d| d.0.is_zero()),
                    ),
                    ("queue_depth_warn", o.queue_depth_warn == Some(0)),
                    ("queue_depth_alarm", o.queue_depth_alarm == Some(0)),
                ] {
                    if is_zero {
                        errors.push((format!("{at}.{key}"), zero.to_owned()));
                    }
                }
                let Some(t) = own.get(&(channel.clone(), destination.clone())) else {
                    continue;
                };
                // Named by the key this destination set (warn when both or neither).
                let side = |warn: bool, alarm: bool, what: &str| {
                    if alarm && !warn {
                        format!("{at}.queue_{what}_alarm")
                    } else {
                        format!("{at}.queue_{what}_warn")
                    }
                };
                if t.age_warn_ms > t.age_alarm_ms {
                    errors.push((
                        side(
                            o.queue_age_warn.is_some(),
                            o.queue_age_alarm.is_some(),
                            "age",
                        ),
                        format!(
                            "the warning age ({} ms) must not be longer than the alarm age ({} ms)",
                            t.age_warn_ms, t.age_alarm_ms
                        ),
                    ));
                }
                if t.depth_warn > t.depth_alarm {
                    errors.push((
                        side(
                            o.queue_depth_warn.is_some(),
                            o.queue_depth_alarm.is_some(),
                            "depth",
                        ),
                        format!(
                            "the warning depth ({}) must not be more than the alarm depth ({})",
                            t.depth_warn, t.depth_alarm
                        ),
                    ));
                }
            }
        }
        errors
    }
}

/// `[http] auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthSetting {
    /// Credentials required.
    #[default]
    On,
    /// No authentication (loopback only).
    Off,
}

/// `[http.oidc]`: the issuer whose JWTs are accepted as bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The expected `iss`.
    pub issuer: String,
    /// The expected `aud` (Corridor's client id at the issuer).
    pub audience: String,
    /// The issuer's keys as a JWKS file (relative to the configuration file).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL, fetched at start and again for an unknown key.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM CA certificates for an `https://` `jwks_url` (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Algorithms accepted (default `["RS256", "PS256", "ES256"]`; asymmetric only).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// The claim naming roles, as a dotted path (default `roles`).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Claim value to Corridor role; empty: the values are role names.
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    /// Clock skew allowed on `exp` and `nbf` (default `"60s"`).
    #[serde(default)]
    pub leeway: Option<ConfigDuration>,
}

impl OidcSettings {
    /// The settings `access` verifies tokens with; files relative to `base_dir`.
    /// A problem is returned as (key, message).
    pub fn to_config(&self, base_dir: &Path) -> Result<access::oidc::OidcConfig, (String, String)> {
        use access::oidc::{JwksSource, OidcConfig};
        let jwks = match (&self.jwks_file, &self.jwks_url) {
            (Some(file), None) => JwksSource::File(base_dir.join(file)),
            (None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                JwksSource::Url(url.clone())
            }
            (None, Some(_)) => {
                return Err((
                    "http.oidc.jwks_url".to_owned(),
                    "must be an http:// or https:// URL".to_owned(),
                ));
            }
            _ => {
                return Err((
                    "http.oidc.jwks_file".to_owned(),
                    "give exactly one of jwks_file and jwks_url".to_owned(),
                ));
            }
        };
        let mut config = OidcConfig::new(&self.issuer, &self.audience, jwks);
        config.ca_file = self.ca_file.as_ref().map(|f| base_dir.join(f));
        if let Some(names) = &self.algorithms {
            let mut algorithms = Vec::new();
            for name in names {
                let algorithm = name.parse().map_err(|_| {
                    (
                        "http.oidc.algorithms".to_owned(),
                        format!("{name:?} is not a JWT algorithm"),
                    )
                })?;
                algorithms.push(algorithm);
            }
            config.algorithms = algorithms;
        }
        if let Some(claim) = &self.roles_claim {
            config.roles_claim = claim.clone();
        }
        for (value, role) in &self.role_map {
            let role = role.parse().map_err(|e: access::UnknownRole| {
                (format!("http.oidc.role_map.{value}"), e.to_string())
            })?;
            config.role_map.insert(value.clone(), role);
        }
        if let Some(leeway) = self.leeway {
            config.leeway = leeway.0;
        }
        if self.issuer.trim().is_empty() {
            return Err((
                "http.oidc.issuer".to_owned(),
                "must not be empty".to_owned(),
            ));
        }
        if self.audience.trim().is_empty() {
            return Err((
                "http.oidc.audience".to_owned(),
                "must not be empty".to_owned(),
            ));
        }
        Ok(config)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            enabled: true,
            read_timeout: default_read_timeout(),
            idle_timeout: default_http_idle_timeout(),
            max_connections: default_http_max_connections(),
            auth: AuthSetting::On,
            metrics_public: false,
            oidc: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            max_body: default_http_max_body(),
            session_idle_timeout: default_session_idle_timeout(),
            session_timeout: default_session_timeout(),
        }
    }
}

impl HttpConfig {
    /// The problems of the HTTPS settings, as (key, message).
    fn check_tls(&self, base_dir: &Path) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => problems.push((
                "http.tls_key".to_owned(),
                "tls_cert is set: give its private key too".to_owned(),
            )),
            (None, Some(_)) => problems.push((
                "http.tls_cert".to_owned(),
                "tls_key is set: give the certificate too".to_owned(),
            )),
            _ => {}
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            problems.push((
                "http.tls_client_ca".to_owned(),
                "client certificates need HTTPS: set tls_cert and tls_key".to_owned(),
            ));
        }
        for (key, file) in [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_client_ca", &self.tls_client_ca),
        ] {
            if let Some(file) = file.as_ref().filter(|f| !base_dir.join(f).is_file()) {
                problems.push((
                    format!("http.{key}"),
                    format!(
                        "file {:?} does not exist",
                        base_dir.join(file).display().to_string()
                    ),
                ));
            }
        }
        problems
    }

    /// The limits of the API's listener.
    pub fn limits(&self) -> crate::HttpLimits {
        crate::HttpLimits {
            max_connections: self.max_connections,
            read_timeout: self.read_timeout.0,
            idle_timeout: self.idle_timeout.0,
        }
    }

    /// HTTPS settings, files relative to `base_dir`: None without `tls_cert`.
    pub fn tls(&self, base_dir: &Path) -> Option<mllp::TlsServerConfig> {
        Some(mllp::TlsServerConfig {
            cert_path: base_dir.join(self.tls_cert.as_ref()?),
            key_path: base_dir.join(self.tls_key.as_ref()?),
            client_ca_path: self.tls_client_ca.as_ref().map(|ca| base_dir.join(ca)),
        })
    }

    /// What every answer carries and the body limit.
    pub fn policy(&self) -> api::HttpPolicy {
        api::HttpPolicy {
            max_body: usize::try_from(self.max_body.0).unwrap_or(usize::MAX),
            tls: self.tls_cert.is_some(),
        }
    }
}

fn default_http_listen() -> ListenAddr {
    ListenAddr(SocketAddr::from(([127, 0, 0, 1], 8080)))
}
fn default_http_idle_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn default_http_max_connections() -> usize {
    256
}

fn yes() -> bool {
    true
}

/// `[channels.NAME]`: one source, and what happens to its messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Where messages come from.
    pub source: SourceConfig,
    /// Which messages go on: each must keep the message (see the `steps` crate).
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    /// Changes made, in order, to each message that passed the filters.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
    /// Where messages are delivered, each with its own queue, filters and transformers.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// An HL7 path (e.g. `PID-3.1`) whose value orders processing and delivery: messages
    /// with the same value keep their receive order; others may pass each other. Without
    /// it the whole channel keeps one order.
    #[serde(default)]
    pub ordering_key: Option<HlPath>,
    /// `[channels.NAME.validation]`: validate each message before or after the ACK.
    /// Without it the channel does not validate.
    #[serde(default)]
    pub validation: Option<ValidationConfig>,
    /// `[channels.NAME.retention]`: how long finished messages are kept.
    /// Without it they are kept forever.
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
    /// `[channels.NAME.fhir]`: convert each message to FHIR and, with
    /// `repository = true`, store the resources (see `stages::fhir`).
    #[serde(default)]
    pub fhir: Option<crate::stages::fhir::FhirConfig>,
    /// `[channels.NAME.rules]`: this channel's clinical rules, thresholds and windows,
    /// in place of `[rules]`' (see `stages::rules`).
    #[serde(default)]
    pub rules: Option<rules::RulesConfig>,
    /// `[channels.NAME.map]`: map coded fields through the terminology in force (see
    /// `stages::terminology`). Without it the channel maps nothing.
    #[serde(default)]
    pub map: Option<terminology::MapStepConfig>,
    /// How long a transformer or script may make a message (default 16 MiB, 1 KiB to
    /// 1 GiB): a step that grows it past this fails, and the message ends `errored`.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// The zone of the sender's MSH-7 when it carries no offset, for the clock lag
    /// (`"America/Chicago"`, `"+01:00"`); without it such times are read as UTC.
    #[serde(default)]
    pub sender_timezone: Option<String>,
}

fn default_max_message_size() -> ByteSize {
    ByteSize(16 << 20)
}

/// The range `max_message_size` may take.
const MAX_MESSAGE_SIZE: std::ops::RangeInclusive<u64> = 1 << 10..=1 << 30;

impl ChannelConfig {
    /// A channel with `source` and nothing else: messages are stored, acknowledged and
    /// recorded as processed.
    pub fn with_source(source: SourceConfig) -> ChannelConfig {
        ChannelConfig {
            source,
            filters: Vec::new(),
            transforms: Vec::new(),
            destinations: Vec::new(),
            ordering_key: None,
            validation: None,
            retention: None,
            fhir: None,
            rules: None,
            map: None,
            max_message_size: default_max_message_size(),
            sender_timezone: None,
        }
    }

    /// The channel's steps, built, with its maximum message size.
    pub fn steps(&self, base_dir: &Path) -> Result<steps::Chain, steps::StepError> {
        let max = usize::try_from(self.max_message_size.0).unwrap_or(usize::MAX);
        steps::Chain::compile(&self.filters, &self.transforms, base_dir)
            .map(|chain| chain.with_max_message_size(max))
    }
}

pub use crate::sources::config::{SourceConfig, SourceKind, SourceSettings};
pub use crate::sources::directory::DirectorySourceConfig;
pub use crate::sources::http::HttpSourceConfig;
pub use crate::sources::mllp::{MllpSourceConfig, TlsConfig};

/// `[channels.NAME.validation]`: how a channel validates its messages.
///
/// ```
/// let config = engine::Config::from_toml(r#"
///     [channels.lab]
///     source = { type = "mllp", listen = "127.0.0.1:0" }
///     [channels.lab.validation]
///     mode = "before_ack"
///     version = "2.5.1"
///     strict = true
/// "#).unwrap();
/// let validation = config.channels["lab"].validation.as_ref().unwrap();
/// assert_eq!(validation.mode, engine::ValidationMode::BeforeAck);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// `"before_ack"`, `"after_ack"` (default) or `"off"`.
    #[serde(default)]
    pub mode: ValidationMode,
    /// Validate as this HL7 version instead of the one in MSH-12 (e.g. `"2.5.1"`).
    #[serde(default)]
    pub version: Option<String>,
    /// A conformance profile (TOML, or HL7 v2 XML as NIST and IGAMT publish them)
    /// that tightens or relaxes the standard for this channel.
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Required fields, required components and table values are errors (default false).
    #[serde(default)]
    pub strict: bool,
    /// Profiles by sending application (MSH-3, whole or its first component), which win
    /// over `profile`: `senders = { LAB = "lab-profile.toml" }`.
    #[serde(default)]
    pub senders: BTreeMap<String, PathBuf>,
}

/// When a channel validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMode {
    /// Before the ACK: a message with an error finding is stored as rejected and
    /// answered AE (AR in enhanced mode: CR) with one ERR segment per finding.
    BeforeAck,
    /// After the ACK, in the pipeline: a message with an error finding is quarantined.
    #[default]
    AfterAck,
    /// No validation.
    Off,
}

impl ValidationConfig {
    /// Problems with these settings, as (key, message); `at` is `channels.NAME`.
    /// Loads each profile to prove it reads.
    pub(crate) fn check(&self, at: &str, base_dir: &Path) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Some(version) = self
            .version
            .as_ref()
            .filter(|v| hl7v2_spec::Spec::nearest(v).is_none())
        {
            errors.push((
                format!("{at}.validation.version"),
                format!("{version:?} is not an HL7 v2 version Corridor knows (2.1 to 2.8.2)"),
            ));
        }
        if self.mode == ValidationMode::Off {
            return errors;
        }
        // Every profile, not only the first that fails.
        let mut cache = quarantine::ProfileCache::new();
        let profiles = self
            .profile
            .iter()
            .map(|file| (format!("{at}.validation.profile"), file))
            .chain(
                self.senders
                    .iter()
                    .map(|(sender, file)| (format!("{at}.validation.senders.{sender}"), file)),
            );
        for (key, file) in profiles {
            if let Err(problem) = load_profile(key, base_dir, file, &mut cache) {
                errors.push(problem);
            }
        }
        errors
    }

    /// The channel's validation settings with its profiles loaded (once each, through
    /// `cache`). The error names the key of the profile that is missing or invalid.
    pub fn build(
        &self,
        channel: &str,
        base_dir: &Path,
        cache: &mut quarantine::ProfileCache,
    ) -> Result<quarantine::ChannelValidation, ConfigError> {
        self.build_in(&format!("channels.{channel}"), base_dir, cache)
            .map_err(|(key, message)| ConfigError {
                key,
                message,
                line: None,
            })
    }

    fn build_in(
        &self,
        at: &str,
        base_dir: &Path,
        cache: &mut quarantine::ProfileCache,
    ) -> Result<quarantine::ChannelValidation, (String, String)> {
        let mut load = |key: String, file: &Path| load_profile(key, base_dir, file, cache);
        let profile = match &self.profile {
            Some(file) => Some(load(format!("{at}.validation.profile"), file)?),
            None => None,
        };
        let mut sender_profiles = BTreeMap::new();
        for (sender, file) in &self.senders {
            let key = format!("{at}.validation.senders.{sender}");
            sender_profiles.insert(sender.clone(), load(key, file)?);
        }
        Ok(quarantine::ChannelValidation {
            version: self.version.clone(),
            strict: self.strict,
            profile,
            sender_profiles,
        })
    }
}

/// The profile in `file`, loaded once through `cache`; the error names `key`.
fn load_profile(
    key: String,
    base_dir: &Path,
    file: &Path,
    cache: &mut quarantine::ProfileCache,
) -> Result<std::sync::Arc<hl7v2_spec::validate::Profile>, (String, String)> {
    let path = base_dir.join(file);
    if !path.is_file() {
        return Err((
            key,
            format!(
                "profile file {:?} does not exist",
                path.display().to_string()
            ),
        ));
    }
    cache
        .load(&path)
        .map_err(|e| (key, format!("the profile does not load: {e}")))
}

/// `[channels.NAME.retention]`: finished messages older than `max_age`, or beyond the
/// newest `max_messages` of the channel, are deleted in the background.
///
/// Only messages in a final state are deleted (`delivered`, `filtered`, `rejected`,
/// `dead_lettered`), with their destination queue rows; messages still `received`,
/// `processed`, `quarantined` or `errored` are kept whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete finished messages received longer ago than this (e.g. `"30d"`).
    #[serde(default)]
    pub max_age: Option<ConfigDuration>,
    /// Keep at most this many finished messages of the channel (the newest).
    #[serde(default)]
    pub max_messages: Option<u64>,
    /// How often the channel is pruned (default `"1m"`).
    #[serde(default = "default_retention_interval")]
    pub interval: ConfigDuration,
    /// Messages deleted per store write (default 500): small writes leave room for traffic.
    #[serde(default = "default_retention_batch")]
    pub batch_size: usize,
}

fn default_retention_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn default_retention_batch() -> usize {
    500
}

impl RetentionConfig {
    /// Problems with these settings, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.max_age.is_none() && self.max_messages.is_none() {
            errors.push((
                format!("{at}.retention"),
                "set max_age (e.g. \"30d\") or max_messages, or leave the section out".to_owned(),
            ));
        }
        if self.max_age.is_some_and(|a| a.0.is_zero()) {
            errors.push((
                format!("{at}.retention.max_age"),
                "must be longer than 0".to_owned(),
            ));
        }
        if self.interval.0.is_zero() {
            errors.push((
                format!("{at}.retention.interval"),
                "must be longer than 0".to_owned(),
            ));
        }
        if self.batch_size == 0 {
            errors.push((
                format!("{at}.retention.batch_size"),
                "must be at least 1".to_owned(),
            ));
        }
        errors
    }
}

/// An HL7 path (`PID-3[2].1`), checked when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlPath(pub String);

impl<'de> Deserialize<'de> for HlPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.parse::<hl7v2::Path>() {
            Ok(path) if path.selects_many() => Err(de::Error::custom(format!(
                "{text} selects every occurrence or repetition ([*]); this key needs a path to one value"
            ))),
            Ok(_) => Ok(HlPath(text)),
            Err(error) => Err(de::Error::custom(error.to_string())),
        }
    }
}

/// One problem in a configuration, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `channels.lab.source.listen` (`.` for the whole file).
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in a configuration (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// Where the configuration came from (a file path), if from a file.
    pub source_name: Option<String>,
    /// The problems, in the order of the file.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if let Some(name) = &self.source_name {
                write!(f, "{name}: ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl Config {
    /// The configuration used without `--config` (`docs/configuration.md`, "Without a file"): one channel
    /// `default` with an MLLP listener on 127.0.0.1:2575, data in
    /// `./corridor-data`, HTTP on 127.0.0.1:8080.
    pub fn default_config() -> Config {
        let mut channels = BTreeMap::new();
        channels.insert(
            "default".to_owned(),
            ChannelConfig::with_source(SourceConfig::mllp(SocketAddr::from((
                [127, 0, 0, 1],
                2575,
            )))),
        );
        Config {
            data: DataConfig::default(),
            http: HttpConfig::default(),
            channels,
            mpi: mpi::MpiConfig::default(),
            audit: AuditConfig::default(),
            rules: crate::stages::rules::RulesSection::default(),
            alerting: alerts::AlertingConfig::default(),
            alerts: Vec::new(),
            terminology: TerminologyConfig::default(),
            console: ConsoleConfig::default(),
            base_dir: PathBuf::from("."),
        }
    }

    /// Reads and checks a configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml_in(text, Path::new("."))
    }

    /// Like [`Config::from_toml`], with relative file names starting at `base_dir`.
    ///
    /// Every problem is listed, not only the first: after a key the types refuse (an
    /// unknown key, a bad value), the file is read again without it, until it reads; the
    /// checks of [`Config::check`] then run on what is left.
    pub fn from_toml_in(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let deserializer = toml::Deserializer::new(text);
        let first = match serde_path_to_error::deserialize::<_, Config>(deserializer) {
            Ok(mut config) => {
                config.base_dir = base_dir.to_owned();
                // Like every other path in the file, the data directory starts at the
                // file's directory, so the working directory never picks the database.
                if config.data.dir.is_relative() {
                    config.data.dir = base_dir.join(&config.data.dir);
                }
                let mut errors = config.check();
                for error in &mut errors {
                    error.line = error.line.or_else(|| line_of_key(text, &error.key));
                }
                return if errors.is_empty() {
                    Ok(config)
                } else {
                    Err(ConfigErrors {
                        source_name: None,
                        errors,
                    })
                };
            }
            Err(error) => error,
        };
        // The parser's own error keeps its exact line; the rest come from the tree.
        let key = first.path().to_string();
        let inner = first.into_inner();
        let line = inner
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = inner.message().trim().to_owned();
        // A kind-tagged table (a source, a destination) names the key inside it in its
        // message; its line is that key's, not the table's.
        let first = match conf::tagged::split_key(&message) {
            Some((inside, rest)) => {
                let key = if key == "." {
                    inside.to_owned()
                } else {
                    format!("{key}.{inside}")
                };
                ConfigError {
                    line: line_of_key(text, &key).or(line),
                    key,
                    message: rest.to_owned(),
                }
            }
            None => ConfigError {
                key: key_of_problem(key, &message),
                message,
                line,
            },
        };
        let mut errors = vec![first];
        // Text that is not TOML at all has no tree to look further in.
        if let Ok(tree) = text.parse::<toml::Table>() {
            for error in ProblemFinder::default().find(tree, text, base_dir) {
                if !errors.iter().any(|e| e.key == error.key) {
                    errors.push(error);
                }
            }
        }
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(ConfigErrors {
            source_name: None,
            errors,
        })
    }

    /// Reads and checks a configuration file; errors start with the file's name.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigErrors {
            source_name: Some(name.clone()),
            errors: vec![ConfigError {
                key: ".".to_owned(),
                message: format!("cannot read the file: {error}"),
                line: None,
            }],
        })?;
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Config::from_toml_in(&text, base_dir).map_err(|mut errors| {
            errors.source_name = Some(name);
            errors
        })
    }

    /// Checks what the types alone cannot: names, addresses in use twice,
    /// files that must exist, keys each kind of destination needs.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut error = |key: String, message: String| {
            errors.push(ConfigError {
                key,
                message,
                line: None,
            })
        };
        if self.channels.is_empty() {
            error(
                "channels".to_owned(),
                "no channel is configured (add e.g. [channels.lab] with source = { type = \"mllp\", listen = \"127.0.0.1:2575\" })".to_owned(),
            );
        }
        if let Err(invalid) = self.mpi.check() {
            let message = invalid.to_string();
            let key = if message.contains("identifier_base") {
                "mpi.identifier_base"
            } else {
                "mpi"
            };
            error(key.to_owned(), message);
        }
        for (key, message) in self.rules.check(&self.base_dir) {
            error(key, message);
        }
        if !self.rules.destinations.is_empty()
            && !self
                .channels
                .values()
                .any(|c| c.fhir.as_ref().is_some_and(|f| f.repository))
        {
            error(
                "rules.destinations".to_owned(),
                "the rules run only on channels whose clinical repository is on, and no channel has fhir.repository = true".to_owned(),
            );
        }
        if self
            .channels
            .contains_key(crate::stages::rules::ALERTS_CHANNEL)
        {
            error(
                format!("channels.{}", crate::stages::rules::ALERTS_CHANNEL),
                "is the name of the alerts channel of [rules]; choose another".to_owned(),
            );
        }
        for (key, message) in self.terminology.check(&self.base_dir) {
            error(key, message);
        }
        let mut listens: BTreeMap<SocketAddr, String> = BTreeMap::new();
        if self.http.enabled && self.http.listen.0.port() != 0 {
            listens.insert(self.http.listen.0, "http.listen".to_owned());
        }
        if self.http.max_connections == 0 {
            error(
                "http.max_connections".to_owned(),
                "must be at least 1".to_owned(),
            );
        }
        if self.http.read_timeout.0.is_zero() {
            error(
                "http.read_timeout".to_owned(),
                "must be longer than 0".to_owned(),
            );
        }
        if self.http.auth == AuthSetting::Off && !self.http.listen.0.ip().is_loopback() {
            error(
                "http.auth".to_owned(),
                format!(
                    "\"off\" is allowed only on a loopback address, and http.listen is {}",
                    self.http.listen.0
                ),
            );
        }
        if let Some(oidc) = &self.http.oidc
            && let Err((key, message)) = oidc.to_config(&self.base_dir)
        {
            error(key, message);
        }
        for (key, message) in self.http.check_tls(&self.base_dir) {
            error(key, message);
        }
        if self.http.max_body.0 < 1024 {
            error(
                "http.max_body".to_owned(),
                format!(
                    "{} bytes is too small (at least 1KiB)",
                    self.http.max_body.0
                ),
            );
        }
        let (idle, absolute) = (
            self.http.session_idle_timeout.0,
            self.http.session_timeout.0,
        );
        if absolute > Duration::from_secs(30 * 86_400) || absolute < Duration::from_secs(60) {
            error(
                "http.session_timeout".to_owned(),
                "must be between 1 minute and 30 days".to_owned(),
            );
        }
        if idle < Duration::from_secs(60) || idle > absolute {
            error(
                "http.session_idle_timeout".to_owned(),
                "must be at least 1 minute and at most http.session_timeout".to_owned(),
            );
        }
        if self.audit.retention.0 < Duration::from_secs(86_400) {
            error(
                "audit.retention".to_owned(),
                "must be at least one day".to_owned(),
            );
        }
        if self.audit.prune_interval.0.is_zero() {
            error(
                "audit.prune_interval".to_owned(),
                "must be longer than 0".to_owned(),
            );
        }
        for (key, message) in self.console.check(&self.channels) {
            error(key, message);
        }
        for (name, channel) in &self.channels {
            let at = format!("channels.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                error(
                    at.clone(),
                    format!("{name:?} is not a channel name (use letters, digits, '-' and '_')"),
                );
            }
            let source = &channel.source;
            for (key, message) in source.check(&at, &self.base_dir) {
                error(key, message);
            }
            if let Some(listen) = source.listen().filter(|l| l.port() != 0) {
                if let Some(other) = listens.get(&listen) {
                    error(
                        format!("{at}.source.listen"),
                        format!("{listen} is already used by {other}"),
                    );
                } else {
                    listens.insert(listen, format!("{at}.source.listen"));
                }
            }
            if let Some(validation) = &channel.validation {
                for (key, message) in validation.check(&at, &self.base_dir) {
                    error(key, message);
                }
            }
            if let Some(retention) = &channel.retention {
                for (key, message) in retention.check(&at) {
                    error(key, message);
                }
            }
            if let Some(fhir) = &channel.fhir {
                for (key, message) in fhir.check(&at) {
                    error(key, message);
                }
                // One identifier system everywhere: the FHIR Patient's identifiers and
                // the patient index's answers are made under one base.
                if let Some(base) = &fhir.identifier_base
                    && self.mpi.enabled
                    && base.trim_end_matches('/') != self.mpi.identifier_base
                {
                    error(
                        format!("{at}.fhir.identifier_base"),
                        format!(
                            "{base:?} differs from [mpi] identifier_base {:?}: the patient index would answer with other identifier systems than the FHIR API shows; set one base (in [mpi]) and leave this key out",
                            self.mpi.identifier_base
                        ),
                    );
                }
            }
            if let Some(rules) = &channel.rules {
                for (key, message) in
                    crate::stages::rules::check_channel(rules, &at, &self.base_dir)
                {
                    error(key, message);
                }
            }
            if let Some(map) = &channel.map {
                if let Err(invalid) = terminology::MapStep::new(map) {
                    error(format!("{at}.map.{}", invalid.place), invalid.message);
                }
            }
            if let Some(zone) = &channel.sender_timezone {
                if let Err(e) = zone.parse::<datetime::Zone>() {
                    error(format!("{at}.sender_timezone"), e.to_string());
                }
            }
            if !MAX_MESSAGE_SIZE.contains(&channel.max_message_size.0) {
                error(
                    format!("{at}.max_message_size"),
                    format!(
                        "{} bytes is out of range (1KiB to 1GiB)",
                        channel.max_message_size.0
                    ),
                );
            }
            for (key, message) in
                step_problems(&at, &channel.filters, &channel.transforms, &self.base_dir)
            {
                error(key, message);
            }
            let mut names = BTreeMap::new();
            for (i, destination) in channel.destinations.iter().enumerate() {
                let key = format!("{at}.destinations[{i}]");
                if let Some(first) = names.insert(destination.name.clone(), i) {
                    error(
                        format!("{key}.name"),
                        format!(
                            "{:?} is already the name of {at}.destinations[{first}]",
                            destination.name
                        ),
                    );
                }
                if let Err(invalid) = destination.validate() {
                    let reason = match invalid {
                        delivery::ConfigError::Invalid { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    // The reason names its key in backquotes: `to`, `retry.max_attempts`.
                    let named = reason.split('`').nth(1).filter(|k| !k.contains(' '));
                    let key = named.map_or(key.clone(), |k| format!("{key}.{k}"));
                    error(key, reason);
                } else {
                    for (key, message) in step_problems(
                        &key,
                        &destination.filters,
                        &destination.transforms,
                        &self.base_dir,
                    ) {
                        error(key, message);
                    }
                }
            }
        }
        for (key, message) in self.hand_over_problems() {
            error(key, message);
        }
        for (key, message) in alerts::check(
            &self.alerting,
            &self.alerts,
            &self.alert_targets(),
            &self.base_dir,
        ) {
            error(key, message);
        }
        errors
    }

    /// The problems of channel destinations (`type = "channel"`): the receiving channel
    /// must exist and differ from the sending one, and no chain of hand-overs may come
    /// back to a channel it passed (`a -> b -> c -> a`), which would pass a message round
    /// for ever. Each problem names the destination's `channel` key.
    fn hand_over_problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        // Each channel's hand-overs: (destination index, receiving channel).
        let mut edges: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
        let senders = self
            .channels
            .iter()
            .map(|(name, c)| {
                (
                    format!("channels.{name}"),
                    Some(name.as_str()),
                    &c.destinations,
                )
            })
            .chain(std::iter::once((
                "rules".to_owned(),
                None,
                &self.rules.destinations,
            )));
        for (at, from, destinations) in senders {
            for (i, destination) in destinations.iter().enumerate() {
                let delivery::DestinationSettings::Channel(settings) = &destination.settings else {
                    continue;
                };
                // A missing or empty name is the destination's own check's to report.
                let Some(to) = settings.channel.as_deref().filter(|t| !t.trim().is_empty()) else {
                    continue;
                };
                let key = format!("{at}.destinations[{i}].channel");
                if Some(to) == from {
                    problems.push((
                        key,
                        format!("channel {to:?} cannot hand messages to itself"),
                    ));
                } else if !self.channels.contains_key(to) {
                    problems.push((
                        key,
                        format!("there is no channel {to:?} to hand messages to"),
                    ));
                } else if let Some(from) = from {
                    edges.entry(from).or_default().push((i, to));
                }
            }
        }
        // Depth first from each channel in name order; an edge back to a channel on the
        // current path closes a cycle, reported once at that edge.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            OnPath,
            Done,
        }
        let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
        for &start in edges.keys() {
            if marks.contains_key(start) {
                continue;
            }
            // The path, each channel with the next of its edges to follow.
            let mut path: Vec<(&str, usize)> = vec![(start, 0)];
            marks.insert(start, Mark::OnPath);
            while let Some(&(node, next)) = path.last() {
                let out = edges.get(node).map_or(&[][..], Vec::as_slice);
                let Some(&(i, to)) = out.get(next) else {
                    marks.insert(node, Mark::Done);
                    path.pop();
                    continue;
                };
                if let Some(last) = path.last_mut() {
                    last.1 += 1;
                }
                match marks.get(to) {
                    None => {
                        marks.insert(to, Mark::OnPath);
                        path.push((to, 0));
                    }
                    Some(Mark::OnPath) => {
                        let from = path.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let cycle: Vec<&str> = path[from..]
                            .iter()
                            .map(|(n, _)| *n)
                            .chain(std::iter::once(to))
                            .collect();
                        problems.push((
                            format!("channels.{node}.destinations[{i}].channel"),
                            format!(
                                "closes the cycle {}: a message would be handed round for ever",
                                cycle.join(" -> ")
                            ),
                        ));
                    }
                    Some(Mark::Done) => {}
                }
            }
        }
        problems
    }

    /// What `[[alerts]]` may watch: each channel's listener certificate and destinations
    /// (with their TLS certificate, else CA, file).
    pub fn alert_targets(&self) -> alerts::Known {
        let channels = self
            .channels
            .iter()
            .map(|(name, channel)| {
                let known = alerts::KnownChannel {
                    listener_cert: channel.source.listener_cert().map(Path::to_path_buf),
                    destinations: channel
                        .destinations
                        .iter()
                        .map(|d| {
                            let file = d
                                .tls()
                                .map(|t| t.cert.clone().unwrap_or_else(|| t.ca.clone()));
                            (d.name.clone(), file)
                        })
                        .collect(),
                };
                (name.clone(), known)
            })
            .collect();
        alerts::Known { channels }
    }
}

/// Every filter's and transformer's problem, as (key, message); each step is compiled
/// apart, so one bad step does not hide the next.
fn step_problems(
    at: &str,
    filters: &[FilterConfig],
    transforms: &[TransformConfig],
    base_dir: &Path,
) -> Vec<(String, String)> {
    let filters = filters.iter().enumerate().filter_map(|(i, filter)| {
        let problem = steps::Filter::compile(filter, base_dir).err()?;
        Some(step_key(at, &format!("filters[{i}]: {problem}")))
    });
    let transforms = transforms.iter().enumerate().filter_map(|(i, transform)| {
        let problem = steps::Transform::compile(transform, base_dir).err()?;
        Some(step_key(at, &format!("transforms[{i}]: {problem}")))
    });
    filters.chain(transforms).collect()
}

/// The key and words of a step compiler's error, which start with the step
/// (`filters[0]: path: "x" is not a path`): `at.filters[0].path` and the rest.
fn step_key(at: &str, text: &str) -> (String, String) {
    let mut key = at.to_owned();
    let mut rest = text;
    while let Some((part, after)) = rest.split_once(": ") {
        let is_key = !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_[].".contains(c));
        if !is_key {
            break;
        }
        key.push('.');
        key.push_str(part);
        rest = after;
    }
    (key, rest.to_owned())
}

/// The 1-based line where `key` (`channels.lab.source.listen`, `channels.lab.destinations[1].to`)
/// is written in `text`: the line of its own assignment when it can be found, else of the
/// nearest table or key above it. `None` when not even its table is in the text.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    // Key parts, each with the occurrence an index asks for (`destinations[1]` -> 1).
    let parts: Vec<(&str, usize)> = key
        .split('.')
        .map(|part| match part.split_once('[') {
            Some((name, index)) => (
                name,
                index.trim_end_matches(']').parse::<usize>().unwrap_or(0),
            ),
            None => (part, 0),
        })
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let header_of = |line: &str| -> Option<String> {
        let line = line.trim();
        let inner = line
            .strip_prefix("[[")
            .and_then(|l| l.split("]]").next())
            .or_else(|| line.strip_prefix('[').and_then(|l| l.split(']').next()))?;
        Some(
            inner
                .split('.')
                .map(|p| p.trim().trim_matches('"'))
                .collect::<Vec<_>>()
                .join("."),
        )
    };
    // The longest prefix of the key written as a table header, at its occurrence.
    for len in (1..=parts.len()).rev() {
        let name = parts[..len]
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(".");
        let occurrence = parts[len - 1].1;
        let Some(at) = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| header_of(line).as_deref() == Some(name.as_str()))
            .nth(occurrence)
            .map(|(i, _)| i)
        else {
            continue;
        };
        // Inside the table (up to the next header): the deepest rest of the key written.
        let mut found = at;
        let mut rest = parts[len..].iter();
        if let Some((first, _)) = rest.next() {
            let assigns = |line: &str, key: &str| {
                line.split([',', '{'])
                    .any(|piece| piece.trim().split('=').next().map(str::trim) == Some(key))
            };
            for (i, line) in lines.iter().enumerate().skip(at + 1) {
                if header_of(line).is_some() && line.trim_start().starts_with('[') {
                    break;
                }
                if assigns(line, first) {
                    found = i;
                    break;
                }
            }
        }
        return Some(found + 1);
    }
    None
}

/// Most problems listed for one file: each costs a read of the whole tree.
const MOST_PROBLEMS: usize = 200;

/// One step of a key path in the TOML tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyStep {
    Key(String),
    Index(usize),
}

/// `channels.lab.destinations[1].to` from its steps.
fn key_text(steps: &[KeyStep]) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            KeyStep::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            KeyStep::Index(index) => {
                let _ = write!(text, "[{index}]");
            }
        }
    }
    text
}

/// The steps of `channels.lab.destinations[1].to`.
fn key_steps(text: &str) -> Vec<KeyStep> {
    let mut steps = Vec::new();
    for part in text.split('.') {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            steps.push(KeyStep::Key(key.to_owned()));
        }
        for index in pieces {
            match index.trim_end_matches(']').parse() {
                Ok(index) => steps.push(KeyStep::Index(index)),
                Err(_) => steps.push(KeyStep::Key(format!("[{index}"))),
            }
        }
    }
    steps
}

/// The field a serde message is about: "unknown field `lisen`, expected ..." -> `lisen`.
fn field_in(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

/// The key an error names: an unknown key is named itself (`channels.lab.source.lisen`),
/// not only its table.
fn key_of_problem(key: String, message: &str) -> String {
    match field_in(message, "unknown field `") {
        Some(field) if !key.ends_with(&format!(".{field}")) && key != field => {
            if key.is_empty() || key == "." {
                field
            } else {
                format!("{key}.{field}")
            }
        }
        _ => key,
    }
}

/// Finds every problem in a tree by reading it, taking out what failed, and reading
/// again. Keys are reported as the file writes them: an element taken out of an array
/// does not renumber the ones after it.
#[derive(Default)]
struct ProblemFinder {
    /// Values taken out (not unknown keys), as the file writes their keys.
    removed: Vec<Vec<KeyStep>>,
    /// Tables taken out because a required key of theirs was.
    dropped_tables: Vec<Vec<KeyStep>>,
    /// Tables a key was taken out of: what they now lack was reported already.
    taken_from: Vec<Vec<KeyStep>>,
    /// Per array (as the file writes its key), the indexes taken out of it.
    removed_indexes: std::collections::HashMap<Vec<KeyStep>, Vec<usize>>,
}

impl ProblemFinder {
    fn find(mut self, tree: toml::Table, text: &str, base_dir: &Path) -> Vec<ConfigError> {
        let mut tree = toml::Value::Table(tree);
        let mut errors = Vec::new();
        for _ in 0..MOST_PROBLEMS {
            let error = match serde_path_to_error::deserialize::<_, Config>(tree.clone()) {
                Ok(mut config) => {
                    config.base_dir = base_dir.to_owned();
                    errors.extend(config.check().into_iter().filter_map(|mut error| {
                        let steps = self.as_written(&key_steps(&error.key));
                        if self.touches_removed(&steps) {
                            // About what was taken out: reported already, or caused by it.
                            return None;
                        }
                        error.key = key_text(&steps);
                        error.line = line_of_key(text, &error.key);
                        Some(error)
                    }));
                    break;
                }
                Err(error) => error,
            };
            let mut at: Vec<KeyStep> = Vec::new();
            for segment in error.path() {
                match segment {
                    serde_path_to_error::Segment::Map { key } => at.push(KeyStep::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => at.push(KeyStep::Index(*index)),
                    _ => break,
                }
            }
            let mut message = error.into_inner().message().trim().to_owned();
            if let Some((inside, rest)) = conf::tagged::split_key(&message) {
                at.extend(key_steps(inside));
                message = rest.to_owned();
            }
            let unknown = field_in(&message, "unknown field `");
            let missing = field_in(&message, "missing field `");
            let is_unknown = unknown.is_some();
            let (target, report) = match (unknown, missing) {
                (Some(field), _) => {
                    if at.last() != Some(&KeyStep::Key(field.clone())) {
                        at.push(KeyStep::Key(field));
                    }
                    (at, true)
                }
                // A required key taken out earlier: take its table out too, silently.
                (_, Some(field)) => {
                    let mut gone = self.as_written(&at);
                    gone.push(KeyStep::Key(field));
                    let report = !self.removed.contains(&gone);
                    (at, report)
                }
                _ => (at, true),
            };
            let written = self.as_written(&target);
            if report {
                let key = key_text(&written);
                errors.push(ConfigError {
                    line: line_of_key(text, &key),
                    key,
                    message,
                });
            }
            if target.is_empty() || !remove_at(&mut tree, &target) {
                break;
            }
            if let Some((KeyStep::Index(index), array)) = written.split_last() {
                self.removed_indexes
                    .entry(array.to_vec())
                    .or_default()
                    .push(*index);
            }
            if !report {
                self.dropped_tables.push(written.clone());
            }
            self.taken_from
                .push(written[..written.len().saturating_sub(1)].to_vec());
            if !is_unknown {
                self.removed.push(written);
            }
        }
        errors
    }

    /// A key of the pruned tree as the file writes it.
    fn as_written(&self, steps: &[KeyStep]) -> Vec<KeyStep> {
        let mut written = Vec::with_capacity(steps.len());
        for step in steps {
            let step = match step {
                KeyStep::Index(index) => {
                    let gone = self.removed_indexes.get(&written);
                    let is_gone = |i: &usize| gone.is_some_and(|g| g.contains(i));
                    let original = (0..).filter(|i| !is_gone(i)).nth(*index).unwrap_or(*index);
                    KeyStep::Index(original)
                }
                key => key.clone(),
            };
            written.push(step);
        }
        written
    }

    /// Whether a checked key is about a value taken out (it is, or is inside it), a
    /// table taken out (it holds it: `channels` when its only channel was taken out), or
    /// a table a key was taken out of (a filter without its misspelt `pth`, retention
    /// without its bad `max_age`).
    fn touches_removed(&self, steps: &[KeyStep]) -> bool {
        self.removed.iter().any(|gone| steps.starts_with(gone))
            || self
                .dropped_tables
                .iter()
                .any(|gone| gone.starts_with(steps))
            || self.taken_from.iter().any(|table| table == steps)
    }
}

/// Takes the value at `steps` out of `tree`; false when there is none.
fn remove_at(tree: &mut toml::Value, steps: &[KeyStep]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut node = tree;
    for step in parents {
        let next = match (step, node) {
            (KeyStep::Key(key), toml::Value::Table(table)) => table.get_mut(key),
            (KeyStep::Index(index), toml::Value::Array(array)) => array.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    match (last, node) {
        (KeyStep::Key(key), toml::Value::Table(table)) => table.remove(key).is_some(),
        (KeyStep::Index(index), toml::Value::Array(array)) if *index < array.len() => {
            array.remove(*index);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mllp(source: &SourceConfig) -> &MllpSourceConfig {
        match &source.settings {
            SourceSettings::Mllp(mllp) => mllp,
            other => panic!("not an MLLP source: {other:?}"),
        }
    }

    fn first_error(text: &str) -> String {
        Config::from_toml(text).unwrap_err().errors[0].to_string()
    }

    #[test]
    fn an_alert_naming_a_destination_the_channel_lacks_fails_naming_its_key() {
        let text = "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n\
                    [[channels.lab.destinations]]\nname = \"ehr\"\ntype = \"mllp\"\nto = \"127.0.0.1:1\"\n\
                    [alerting.notifiers.ops]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
                    [[alerts]]\nname = \"down\"\nwhen = \"destination_unreachable\"\nchannel = \"lab\"\n\
                    destination = \"billing\"\nnotify = [\"ops\"]\n";
        let error = first_error(text);
        assert!(
            error.contains("alerts[0].destination") && error.contains("\"billing\""),
            "{error}"
        );
        let good = text.replace("\"billing\"", "\"ehr\"");
        let config = Config::from_toml(&good).unwrap();
        assert_eq!(config.alerts[0].hold(), std::time::Duration::ZERO);
    }

    #[test]
    fn ordering_key_must_name_one_value() {
        let error = first_error(
            "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nordering_key = \"PID-3[*].1\"\n",
        );
        assert!(
            error.contains("channels.lab.ordering_key") && error.contains("[*]"),
            "{error}"
        );
    }

    #[test]
    fn full_example_reads_every_key() {
        let config = Config::from_toml(
            r#"
            [data]
            dir = "d"
            [http]
            listen = "127.0.0.1:0"
            [channels.lab]
            source = { type = "mllp", listen = "127.0.0.1:2575", ack_mode = "original", duplicate_window = "10m", max_frame_size = "16MiB", read_timeout = "30s", idle_timeout = "10m", max_connections = 1000, commit_acks = false }
            filters = [ { path = "MSH-9.1", in = ["ORU"] } ]
            transforms = [ { set = "MSH-5", value = "EHR" } ]
            [[channels.lab.destinations]]
            name = "ehr"
            type = "mllp"
            to = "127.0.0.1:2576"
            "#,
        )
        .unwrap();
        let lab = &config.channels["lab"];
        assert_eq!(
            lab.source.duplicate_window.0,
            Some(Duration::from_secs(600))
        );
        assert_eq!(lab.source.max_frame_size.0, 16 << 20);
        assert_eq!(mllp(&lab.source).idle_timeout.0, Duration::from_secs(600));
        assert_eq!(mllp(&lab.source).max_connections, 1000);
        assert_eq!(lab.filters.len(), 1);
        assert_eq!(
            lab.destinations[0].settings,
            delivery::DestinationSettings::Mllp(delivery::MllpDestinationConfig::new(
                "127.0.0.1:2576"
            ))
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let message = first_error(
            "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:1\", lisen = 3 }\n",
        );
        assert!(message.contains("channels.lab.source.lisen"), "{message}");
        assert!(message.contains("unknown field `lisen`"), "{message}");
        let top = first_error("[dta]\ndir = \"x\"\n");
        assert!(top.contains("unknown field `dta`"), "{top}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let message = first_error(
            "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:1\", read_timeout = \"soon\" }\n",
        );
        assert!(
            message.starts_with(
                "line 2: channels.lab.source.read_timeout: \"soon\" is not a duration"
            ),
            "{message}"
        );
        let kind =
            first_error("[channels.lab]\nsource = { type = \"ftp\", listen = \"127.0.0.1:1\" }\n");
        assert!(kind.contains("channels.lab.source.type"), "{kind}");
        let path = first_error(
            "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:1\" }\nfilters = [ { path = \"not a path\", in = [\"A\"] } ]\n",
        );
        assert!(path.contains("channels.lab.filters[0].path"), "{path}");
    }

    #[test]
    fn a_key_of_another_kind_of_source_is_named_with_its_line() {
        let text = "[channels.lab]\nsource = { type = \"directory\", path = \".\", read_timeout = \"5s\" }\n";
        assert_eq!(
            first_error(text),
            "line 2: channels.lab.source.read_timeout: is not a key of a directory source (mllp, http and fhir sources take it)"
        );
        assert_eq!(
            first_error(
                "[channels.lab]\nsource = { type = \"http\", listen = \"127.0.0.1:0\", commit_acks = true }\n"
            ),
            "line 2: channels.lab.source.commit_acks: is not a key of a http source (a mllp source takes it)"
        );
    }

    #[test]
    fn a_source_written_as_a_table_names_each_key_on_its_own_line() {
        let text = r#"[channels.lab.source]
path = "."
poll_interval = "often"
listen = "127.0.0.1:0"
colour = "red"
type = "directory"
max_frame_size = "huge"

[channels.other]
source = { listen = "127.0.0.1:0", type = "ftp", lisen = 1 }
"#;
        let errors = Config::from_toml(text).unwrap_err().errors;
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "line 3: channels.lab.source.poll_interval: \"often\" is not a duration (expected e.g. \"250ms\", \"30s\", \"10m\", \"1h\", \"1d\")",
                "line 4: channels.lab.source.listen: is not a key of a directory source (mllp, http and fhir sources take it)",
                "line 5: channels.lab.source.colour: unknown field `colour`, expected one of `path`, `pattern`, `poll_interval`, `done`, `error`, `max_file_size`, `allow_hard_links`",
                "line 7: channels.lab.source.max_frame_size: \"huge\" is not a size (expected bytes or e.g. \"64KiB\", \"16MiB\")",
                "line 10: channels.other.source.lisen: unknown field `lisen`: no kind of source takes it",
                "line 10: channels.other.source.type: unknown variant `ftp`, expected one of `mllp`, `http`, `directory`, `fhir`, `nats`, `database`, `sftp`",
            ]
        );
    }

    #[test]
    fn a_key_of_another_kind_of_destination_is_named_with_its_line() {
        let text = r#"[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }

[[channels.lab.destinations]]
name = "archive"
type = "file"
path = "out"
to = "127.0.0.1:1"
retry = { max_attempts = 0 }

[[channels.lab.destinations]]
name = "mail"
tls = { ca = "ca.pem" }
type = "email"
"#;
        let errors = Config::from_toml(text).unwrap_err().errors;
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "line 8: channels.lab.destinations[0].to: is not a key of a file destination (a mllp destination takes it)",
                // The values the types read are checked too, by kind.
                "line 9: channels.lab.destinations[0].retry.max_attempts: `retry.max_attempts` must be at least 1",
                "line 11: channels.lab.destinations[1].smtp: email destinations need `smtp`",
                "line 13: channels.lab.destinations[1].tls: is not a key of an email destination (mllp, http, fhir, database and nats destinations take it)",
            ]
        );
    }

    #[test]
    fn mllp_tls_files_start_at_the_configuration_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let text = "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", tls = { cert = \"cert.pem\", key = \"key.pem\" } }\n";
        let config = Config::from_toml_in(text, dir.path()).unwrap();
        let source = &config.channels["a"].source;
        let listener = mllp(source).listener_config(source.max_frame_size, &config.base_dir);
        let tls = listener.tls.unwrap();
        assert_eq!(tls.cert_path, dir.path().join("cert.pem"));
        assert_eq!(tls.key_path, dir.path().join("key.pem"));
        // From another directory the same names are missing, and named so.
        let elsewhere = tempfile::tempdir().unwrap();
        let errors = Config::from_toml_in(text, elsewhere.path())
            .unwrap_err()
            .errors;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["channels.a.source.tls.cert", "channels.a.source.tls.key"]
        );
    }

    #[test]
    fn check_finds_every_semantic_problem() {
        let errors = Config::from_toml(
            r#"
            [channels.a]
            source = { type = "mllp", listen = "127.0.0.1:2575", max_connections = 0 }
            [[channels.a.destinations]]
            name = "x"
            type = "mllp"
            [channels.b]
            source = { type = "mllp", listen = "127.0.0.1:2575" }
            "#,
        )
        .unwrap_err()
        .errors;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "channels.a.source.max_connections",
                "channels.a.destinations[0].to",
                "channels.b.source.listen"
            ]
        );
    }

    /// `[channels.NAME]` with an MLLP source and a channel destination to each of `to`.
    fn handing(name: &str, to: &[&str]) -> String {
        let mut text = format!(
            "[channels.{name}]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n"
        );
        for (i, to) in to.iter().enumerate() {
            text.push_str(&format!(
                "[[channels.{name}.destinations]]\nname = \"d{i}\"\ntype = \"channel\"\nchannel = \"{to}\"\n"
            ));
        }
        text
    }

    fn problems(text: &str) -> Vec<(String, String)> {
        match Config::from_toml(text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .errors
                .into_iter()
                .map(|e| (e.key, e.message))
                .collect(),
        }
    }

    #[test]
    fn channel_destinations_hand_over_along_chains_without_cycles() {
        // A chain and a fan-in are fine.
        let chain = [
            handing("a", &["b", "c"]),
            handing("b", &["c"]),
            handing("c", &[]),
        ]
        .concat();
        assert_eq!(problems(&chain), Vec::new());

        let unknown = [handing("a", &["nowhere"])].concat();
        let found = problems(&unknown);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "channels.a.destinations[0].channel");
        assert!(found[0].1.contains("no channel \"nowhere\""), "{found:?}");

        let itself = handing("a", &["a"]);
        let found = problems(&itself);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "channels.a.destinations[0].channel");
        assert!(found[0].1.contains("itself"), "{found:?}");

        // A cycle over three channels is reported once, naming it.
        let cycle = [
            handing("a", &["b"]),
            handing("b", &["c"]),
            handing("c", &["d", "a"]),
            handing("d", &[]),
        ]
        .concat();
        let found = problems(&cycle);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "channels.c.destinations[1].channel");
        assert!(found[0].1.contains("a -> b -> c -> a"), "{found:?}");

        // Two separate cycles are both found.
        let two = [
            handing("a", &["b"]),
            handing("b", &["a"]),
            handing("x", &["y"]),
            handing("y", &["x"]),
        ]
        .concat();
        let found = problems(&two);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.contains("a -> b -> a"), "{found:?}");
        assert!(found[1].1.contains("x -> y -> x"), "{found:?}");

        // A name left out is the destination's own problem.
        let missing = "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n[[channels.a.destinations]]\nname = \"d\"\ntype = \"channel\"\n";
        let found = problems(missing);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].0.starts_with("channels.a.destinations[0]"),
            "{found:?}"
        );
    }

    #[test]
    fn checked_errors_name_their_line() {
        let text = "[channels.a]\nsource = { type = \"http\" }\n\n[channels.b]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n[channels.b.retention]\ninterval = 0\nmax_age = \"1d\"\n";
        let errors = Config::from_toml(text).unwrap_err().errors;
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "line 2: channels.a.source.listen: a http source needs listen = \"IP:port\"",
                "line 7: channels.b.retention.interval: must be longer than 0"
            ]
        );
        assert_eq!(line_of_key(text, "channels.b"), Some(4));
        assert_eq!(line_of_key(text, "nowhere.x"), None);
    }

    #[test]
    fn every_problem_is_listed_not_only_the_first() {
        let text = r#"[dta]
dir = "x"
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:1", lisen = 3, read_timeout = "soon" }
filters = [ { pth = "MSH-3", equals = "A" }, { path = "MSH-9.1", in = ["ORU"] }, { path = "not a path", in = ["A"] } ]

[[channels.lab.destinations]]
name = "a"
type = "pigeon"
to = "127.0.0.1:2576"
colour = "red"

[[channels.lab.destinations]]
name = "b"
type = "mllp"
retry = { max_attempts = "many" }

[channels.b]
source = { type = "mllp", listen = "127.0.0.1:1", max_connections = 0 }
"#;
        let errors = Config::from_toml(text).unwrap_err().errors;
        let found: Vec<(Option<usize>, &str)> =
            errors.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(1), "dta"),
                (Some(4), "channels.lab.source.lisen"),
                (Some(4), "channels.lab.source.read_timeout"),
                (Some(4), "channels.lab.source.listen"),
                (Some(5), "channels.lab.filters[0].pth"),
                // Numbered as written, though filters[0] was set aside to read the rest.
                (Some(5), "channels.lab.filters[2].path"),
                (Some(9), "channels.lab.destinations[0].type"),
                (Some(11), "channels.lab.destinations[0].colour"),
                (Some(13), "channels.lab.destinations[1].to"),
                (Some(16), "channels.lab.destinations[1].retry.max_attempts"),
                (Some(19), "channels.b.source.max_connections"),
            ]
        );
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages[0].starts_with("unknown field `dta`"),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("\"soon\" is not a duration"),
            "{messages:?}"
        );
        assert!(messages[6].contains("pigeon"), "{messages:?}");
        // Nothing is reported that only follows from a problem already listed: the
        // filter without its misspelt `pth`, destination 0 without its bad `type`.
        assert_eq!(errors.len(), 11);
    }

    #[test]
    fn profiles_are_each_checked() {
        let errors = Config::from_toml(
            "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n[channels.lab.validation]\nprofile = \"missing.toml\"\nsenders = { A = \"a.toml\", B = \"b.toml\" }\n",
        )
        .unwrap_err()
        .errors;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "channels.lab.validation.profile",
                "channels.lab.validation.senders.A",
                "channels.lab.validation.senders.B"
            ]
        );
    }

    #[test]
    fn a_sender_timezone_is_read_and_a_bad_one_names_its_key() {
        let config = Config::from_toml(
            "[channels.a]\nsender_timezone = \"America/Chicago\"\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
        )
        .unwrap();
        assert_eq!(
            config.channels["a"].sender_timezone.as_deref(),
            Some("America/Chicago")
        );
        let error = Config::from_toml(
            "[channels.a]\nsender_timezone = \"Mars/Olympus\"\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
        )
        .unwrap_err()
        .errors[0]
            .to_string();
        assert!(error.contains("channels.a.sender_timezone"), "{error}");
    }

    #[test]
    fn duplicate_window_can_be_turned_off() {
        for off in ["\"off\"", "0", "false"] {
            let config = Config::from_toml(&format!(
                "[channels.a]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\", duplicate_window = {off} }}\n"
            ))
            .unwrap();
            assert_eq!(
                config.channels["a"].source.duplicate_window.0, None,
                "{off}"
            );
        }
    }

    #[test]
    fn mllp_allow_lists_are_read_and_misplaced_ones_name_their_key() {
        let config = Config::from_toml(
            "[http]\nenabled = false\n[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", allow_from = [\"10.0.0.0/8\", \"2001:db8::/32\"] }\n",
        )
        .unwrap();
        let source = &config.channels["a"].source;
        let listener = mllp(source).listener_config(source.max_frame_size, Path::new("."));
        assert_eq!(listener.allow_from.len(), 2);
        assert!(listener.allows_address("10.2.3.4".parse().unwrap()));
        assert!(!listener.allows_address("192.0.2.1".parse().unwrap()));
        let keys_of = |source: &str| -> Vec<String> {
            match Config::from_toml(&format!(
                "[http]\nenabled = false\n[channels.a]\nsource = {{ {source} }}\n"
            )) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.errors.into_iter().map(|e| e.key).collect(),
            }
        };
        assert_eq!(
            keys_of("type = \"mllp\", listen = \"127.0.0.1:0\", allow_subjects = [\"CN=lab\"]"),
            ["channels.a.source.allow_subjects"]
        );
        assert_eq!(
            keys_of("type = \"http\", listen = \"127.0.0.1:0\", allow_from = [\"10.0.0.0/8\"]"),
            ["channels.a.source.allow_from"]
        );
        let bad =
            keys_of("type = \"mllp\", listen = \"127.0.0.1:0\", allow_from = [\"10.0.0.300/8\"]");
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with("channels.a.source.allow_from"),
            "{bad:?}"
        );
    }

    #[test]
    fn session_timeouts_are_configurable_and_checked_naming_the_key() {
        const CHANNEL: &str =
            "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";
        let keys_of = |http: &str| -> Vec<String> {
            match Config::from_toml(&format!("[http]\n{http}\n{CHANNEL}")) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.errors.into_iter().map(|e| e.key).collect(),
            }
        };
        let default = Config::from_toml(CHANNEL).unwrap().http.session_policy();
        assert_eq!(default, access::SessionPolicy::default());
        let config = Config::from_toml(&format!(
            "[http]\nsession_idle_timeout = \"10m\"\nsession_timeout = \"8h\"\n{CHANNEL}"
        ))
        .unwrap();
        let policy = config.http.session_policy();
        assert_eq!(policy.idle_timeout, Duration::from_secs(600));
        assert_eq!(policy.absolute_timeout, Duration::from_secs(8 * 3600));
        assert_eq!(
            keys_of("session_idle_timeout = \"10s\""),
            ["http.session_idle_timeout"]
        );
        assert_eq!(
            keys_of("session_idle_timeout = \"2h\"\nsession_timeout = \"1h\""),
            ["http.session_idle_timeout"]
        );
        assert_eq!(
            keys_of("session_timeout = \"60d\""),
            ["http.session_timeout"]
        );
    }

    #[test]
    fn queue_colour_thresholds_are_read_and_bad_ones_name_their_key() {
        const CHANNEL: &str =
            "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";
        let errors_of = |console: &str| -> Vec<String> {
            match Config::from_toml(&format!("[console]\n{console}\n{CHANNEL}")) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.errors.iter().map(|e| e.to_string()).collect(),
            }
        };
        let default = Config::from_toml(CHANNEL).unwrap();
        assert_eq!(
            default.console.queue_thresholds(),
            api::QueueThresholds::default()
        );
        let config = Config::from_toml(&format!(
            "[console]\nqueue_age_warn = \"30s\"\nqueue_age_alarm = \"2m\"\n\
             queue_depth_warn = 50\nqueue_depth_alarm = 500\n{CHANNEL}"
        ))
        .unwrap();
        assert_eq!(
            config.console.queue_thresholds(),
            api::QueueThresholds {
                age_warn_ms: 30_000,
                age_alarm_ms: 120_000,
                depth_warn: 50,
                depth_alarm: 500,
            }
        );
        let errors = errors_of("queue_depth_warn = 0");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("console.queue_depth_warn: must be more than 0"),
            "{errors:?}"
        );
        let errors = errors_of("queue_age_warn = \"10m\"");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(
                "console.queue_age_warn: must not be longer than console.queue_age_alarm"
            ),
            "{errors:?}"
        );
        let errors = errors_of("queue_depth_warn = 20\nqueue_depth_alarm = 10");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("console.queue_depth_warn: must not be more"),
            "{errors:?}"
        );
        let errors = errors_of("queue_depth = 5");
        assert!(
            errors.iter().any(|e| e.contains("console.queue_depth")),
            "{errors:?}"
        );
    }

    #[test]
    fn http_auth_is_on_by_default_off_only_on_loopback_and_oidc_keys_are_checked() {
        const CHANNEL: &str =
            "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";
        let keys_of = |http: &str| -> Vec<String> {
            match Config::from_toml(&format!("[http]\n{http}\n{CHANNEL}")) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.errors.into_iter().map(|e| e.key).collect(),
            }
        };
        let config = Config::from_toml(CHANNEL).unwrap();
        assert_eq!(config.http.auth, AuthSetting::On);
        assert!(!config.http.metrics_public);
        assert!(keys_of("listen = \"127.0.0.1:0\"\nauth = \"off\"").is_empty());
        assert!(keys_of("listen = \"[::1]:0\"\nauth = \"off\"").is_empty());
        assert_eq!(
            keys_of("listen = \"0.0.0.0:8080\"\nauth = \"off\""),
            ["http.auth"]
        );
        assert_eq!(keys_of("auth = \"maybe\""), ["http.auth"]);
        let oidc = "[http.oidc]\nissuer = \"https://idp\"\naudience = \"corridor\"\n";
        assert!(
            keys_of(&format!(
                "{oidc}jwks_url = \"https://idp/keys\"\nrole_map = {{ lab = \"analyst\" }}"
            ))
            .is_empty()
        );
        assert_eq!(keys_of(oidc), ["http.oidc.jwks_file"]);
        assert_eq!(
            keys_of(&format!(
                "{oidc}jwks_file = \"k.json\"\njwks_url = \"https://idp/keys\""
            )),
            ["http.oidc.jwks_file"]
        );
        assert_eq!(
            keys_of(&format!("{oidc}jwks_url = \"ftp://idp/keys\"")),
            ["http.oidc.jwks_url"]
        );
        assert_eq!(
            keys_of(&format!(
                "{oidc}jwks_file = \"k.json\"\nrole_map = {{ lab = \"root\" }}"
            )),
            ["http.oidc.role_map.lab"]
        );
        assert_eq!(
            keys_of(&format!(
                "{oidc}jwks_file = \"k.json\"\nalgorithms = [\"XX999\"]"
            )),
            ["http.oidc.algorithms"]
        );
    }

    #[test]
    fn http_limits_are_read_and_zero_values_are_refused_naming_the_key() {
        let config = Config::from_toml(
            "[http]\nread_timeout = \"5s\"\nidle_timeout = 0\nmax_connections = 64\n[channels.a]\nsource = { type = \"http\", listen = \"127.0.0.1:0\", read_timeout = \"2s\", max_connections = 8 }\n",
        )
        .unwrap();
        let api = config.http.limits();
        assert_eq!(api.read_timeout, Duration::from_secs(5));
        assert_eq!(api.idle_timeout, Duration::ZERO);
        assert_eq!(api.max_connections, 64);
        let SourceSettings::Http(http) = &config.channels["a"].source.settings else {
            panic!("not an HTTP source");
        };
        let source = http.limits();
        assert_eq!(source.read_timeout, Duration::from_secs(2));
        assert_eq!(source.max_connections, 8);
        assert_eq!(HttpConfig::default().limits(), crate::HttpLimits::default());
        let errors = Config::from_toml(
            "[http]\nread_timeout = 0\nmax_connections = 0\n[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
        )
        .unwrap_err()
        .errors;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["http.max_connections", "http.read_timeout"]);
    }
}

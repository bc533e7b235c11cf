//! A channel's source, one module per kind, each started from its configuration
//! and run behind [`RunningSource`]: `mllp` (an MLLP listener), `http` (a `POST` of a
//! message or batch, answered with the ACK), `fhir` (a `POST` of FHIR R4 made into v2
//! messages, answered with an OperationOutcome; on the `http` source's listener) and
//! `directory` (files moved to `done` or `error` once their messages are stored) and
//! `database` (a query polled, each row a message through a template, its position
//! stored with the message) and `sftp` (the directory source's files, on an SFTP
//! server). Every kind hands its messages to the
//! channel's [`Intake`], which stores them and builds the acknowledgements.
//!
//! Each kind's module holds its own configuration struct too (`MllpSourceConfig`,
//! `HttpSourceConfig`, `DirectorySourceConfig`); the keys every kind takes and the
//! `type` that picks one are in `config.rs` ([`SourceConfig`]), and what several kinds
//! share (listen address, ACK mode, listener limits) in `shared_keys.rs`, a leaf that
//! imports no kind.
//!
//! Adding a kind: a module here with its configuration struct and its running type
//! implementing [`RunningSource`], a variant of [`SourceSettings`] and of
//! [`ChannelSource`], and its arm in [`ChannelSource::start`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quarantine::ChannelValidation;
use store::Store;
use tracing::{error, warn};

use crate::config::{ChannelConfig, Config, ConfigError, ConfigErrors, ValidationMode};
use crate::intake::{Intake, ReceiverSettings};
use crate::metrics::Metrics;
use crate::retention::Retention;
use crate::start_error::StartError;

pub mod config;
pub mod database;
pub mod directory;
pub mod fhir;
pub mod http;
pub(crate) mod mllp;
pub mod nats;
pub mod sftp;
pub(crate) mod shared_keys;

pub use config::{SourceConfig, SourceKind, SourceSettings};

/// One running listener of a source (MLLP or HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The channel it feeds.
    pub channel: String,
    /// The address it is bound to (the real port when the configuration said 0).
    pub addr: SocketAddr,
    /// True when it serves TLS.
    pub tls: bool,
}

/// What every running source does, whatever its kind.
pub(crate) trait RunningSource: Send + Sized {
    /// The address it listens on, for the kinds that listen.
    fn listener(&self) -> Option<Listener>;

    /// Stops taking messages; what it was storing is stored and answered first,
    /// waiting up to `grace` for busy connections. False when some were cut off.
    fn shutdown(self, grace: Duration) -> impl Future<Output = bool> + Send;
}

/// One channel's running source, of whichever kind its configuration names.
pub(crate) enum ChannelSource {
    Mllp(mllp::MllpSource),
    Http(http::RunningHttp),
    Fhir(fhir::RunningFhir),
    Directory(directory::DirectorySource),
    Nats(nats::NatsSource),
    Database(database::DatabaseSource),
    Sftp(sftp::SftpSource),
}

impl ChannelSource {
    /// Starts the source of channel `name` as `channel` describes it, handing its
    /// messages to `intake`; relative folders start at `base_dir`. Errors name the key.
    pub(crate) async fn start(
        name: &str,
        channel: &ChannelConfig,
        intake: Intake,
        base_dir: &Path,
    ) -> Result<ChannelSource, StartError> {
        let source = &channel.source;
        Ok(match &source.settings {
            SourceSettings::Mllp(mllp) => {
                let max_frame_size = source.max_frame_size;
                ChannelSource::Mllp(
                    mllp::MllpSource::start(name, mllp, max_frame_size, base_dir, intake).await?,
                )
            }
            SourceSettings::Http(http) => {
                let max_frame_size = source.max_frame_size;
                ChannelSource::Http(
                    http::RunningHttp::start(name, http, max_frame_size, intake).await?,
                )
            }
            SourceSettings::Fhir(fhir) => {
                let max_frame_size = source.max_frame_size;
                ChannelSource::Fhir(
                    fhir::RunningFhir::start(name, fhir, max_frame_size, intake).await?,
                )
            }
            SourceSettings::Directory(directory) => {
                let settings = directory::DirectorySettings::from_config(
                    directory,
                    source.max_frame_size,
                    base_dir,
                );
                let started =
                    directory::DirectorySource::start(settings, intake).map_err(|err| {
                        source_error(
                            name,
                            "path",
                            format!(
                                "cannot read the folder or create its done and error folders: {err}"
                            ),
                        )
                    })?;
                ChannelSource::Directory(started)
            }
            SourceSettings::Nats(config) => {
                let max_frame_size = usize::try_from(source.max_frame_size.0).unwrap_or(usize::MAX);
                let started =
                    nats::NatsSource::start(name, config, max_frame_size, base_dir, intake)
                        .await
                        .map_err(|message| source_error(name, "", message))?;
                ChannelSource::Nats(started)
            }
            SourceSettings::Database(database) => {
                let started = database::DatabaseSource::start(database, base_dir, intake)
                    .map_err(|(key, message)| source_error(name, &key, message))?;
                ChannelSource::Database(started)
            }
            SourceSettings::Sftp(sftp) => {
                let started =
                    sftp::SftpSource::start(sftp, source.max_frame_size, base_dir, intake)
                        .map_err(|(key, message)| source_error(name, &key, message))?;
                ChannelSource::Sftp(started)
            }
        })
    }

    pub(crate) fn is_mllp(&self) -> bool {
        matches!(self, ChannelSource::Mllp(_))
    }
}

/// A source that cannot start: the error names `channels.NAME.source` and, when given,
/// its key.
fn source_error(channel: &str, key: &str, message: String) -> StartError {
    let key = match key {
        "" => format!("channels.{channel}.source"),
        key => format!("channels.{channel}.source.{key}"),
    };
    StartError::Config(ConfigErrors {
        source_name: None,
        errors: vec![ConfigError {
            key,
            message,
            line: None,
        }],
    })
}

impl RunningSource for ChannelSource {
    fn listener(&self) -> Option<Listener> {
        match self {
            ChannelSource::Mllp(s) => s.listener(),
            ChannelSource::Http(s) => s.listener(),
            ChannelSource::Fhir(s) => s.listener(),
            ChannelSource::Directory(s) => s.listener(),
            ChannelSource::Nats(s) => s.listener(),
            ChannelSource::Database(s) => s.listener(),
            ChannelSource::Sftp(s) => s.listener(),
        }
    }

    async fn shutdown(self, grace: Duration) -> bool {
        match self {
            ChannelSource::Mllp(s) => RunningSource::shutdown(s, grace).await,
            ChannelSource::Http(s) => RunningSource::shutdown(s, grace).await,
            ChannelSource::Fhir(s) => RunningSource::shutdown(s, grace).await,
            ChannelSource::Directory(s) => RunningSource::shutdown(s, grace).await,
            ChannelSource::Nats(s) => RunningSource::shutdown(s, grace).await,
            ChannelSource::Database(s) => RunningSource::shutdown(s, grace).await,
            ChannelSource::Sftp(s) => RunningSource::shutdown(s, grace).await,
        }
    }
}

/// Each channel's validation mode and settings, by channel name (channels without a
/// `[channels.NAME.validation]` section, or with `mode = "off"`, are absent).
pub(crate) type Validations = HashMap<String, (ValidationMode, Arc<ChannelValidation>)>;

/// Builds every channel's validation, loading each profile file once; a missing or
/// invalid profile fails naming its key.
pub(crate) fn channel_validations(config: &Config) -> Result<Validations, StartError> {
    let mut cache = quarantine::ProfileCache::new();
    let mut validations = HashMap::new();
    for (name, channel) in &config.channels {
        let Some(settings) = &channel.validation else {
            continue;
        };
        if settings.mode == ValidationMode::Off {
            continue;
        }
        let validation = settings
            .build(name, &config.base_dir, &mut cache)
            .map_err(|error| {
                StartError::Config(ConfigErrors {
                    source_name: None,
                    errors: vec![error],
                })
            })?;
        validations.insert(name.clone(), (settings.mode, Arc::new(validation)));
    }
    Ok(validations)
}

/// Each channel's pipeline notifier, by channel name; clones share the table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wakes(Arc<std::sync::RwLock<HashMap<String, Arc<tokio::sync::Notify>>>>);

impl Wakes {
    /// The notifier of `channel`, made on first use.
    pub(crate) fn of(&self, channel: &str) -> Arc<tokio::sync::Notify> {
        if let Some(wake) = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(channel)
        {
            return wake.clone();
        }
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(channel.to_owned())
            .or_default()
            .clone()
    }

    /// Wakes `channel`'s pipeline, if the channel exists.
    pub(crate) fn wake(&self, channel: &str) {
        if let Some(wake) = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(channel)
        {
            wake.notify_one();
        }
    }

    /// Forgets a removed channel's notifier.
    pub(crate) fn remove(&self, channel: &str) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(channel);
    }
}

/// What every channel's intake is built from.
pub(crate) struct Intakes {
    pub store: Store,
    pub metrics: Metrics,
    /// Each channel's pipeline notifier, kept across reloads: a source left running
    /// and the channel's next processor share it.
    pub wakes: Wakes,
    pub validations: Validations,
    /// Channels with no stage and no destination: archives, whose messages are
    /// `processed` on receipt.
    pub archives: HashSet<String>,
}

impl Intakes {
    /// The intake of a configured channel: its ACK mode and duplicate window, its
    /// pipeline's notifier, and its validation when it validates before the ACK.
    pub(crate) fn intake(&self, name: &str, channel: &ChannelConfig) -> Intake {
        let settings = ReceiverSettings {
            channel: Arc::from(name),
            ack_mode: channel.source.ack_mode,
            duplicate_window: channel.source.duplicate_window.0,
            stored: self.wakes.of(name),
        };
        let mut intake = Intake::new(
            settings,
            self.store.clone(),
            self.metrics.channel(name).unwrap_or_default(),
        );
        if let Some((ValidationMode::BeforeAck, validation)) = self.validations.get(name) {
            intake = intake.validating(validation.clone());
        }
        if self.archives.contains(name) {
            intake = intake.processed_on_receipt();
        }
        // Checked when the configuration was read; a zone that does not parse is UTC.
        if let Some(zone) = channel
            .sender_timezone
            .as_deref()
            .and_then(|z| z.parse::<datetime::Zone>().ok())
        {
            intake = intake.clock_zone(zone);
        }
        intake
    }
}

/// Every channel's running source, by channel name, and the retention task.
pub(crate) struct Sources {
    channels: BTreeMap<String, ChannelSource>,
    retention: Option<Retention>,
}

impl Sources {
    /// Starts every channel's source through its intake (but those `stopped` says an
    /// operator stopped), and retention when a channel has a policy. When one fails, those already started are stopped.
    pub(crate) async fn start(
        config: &Config,
        intakes: &Intakes,
        stopped: impl Fn(&str) -> bool,
    ) -> Result<Sources, StartError> {
        let mut sources = Sources {
            channels: BTreeMap::new(),
            retention: None,
        };
        for (name, channel) in &config.channels {
            if stopped(name) {
                // Stopped by an operator (`channel_control.rs`): not started.
                continue;
            }
            let intake = intakes.intake(name, channel);
            match ChannelSource::start(name, channel, intake, &config.base_dir).await {
                Ok(source) => {
                    sources.channels.insert(name.clone(), source);
                }
                Err(err) => {
                    sources.shutdown(Duration::ZERO).await;
                    return Err(err);
                }
            }
        }
        sources.restart_retention(&intakes.store, config).await;
        Ok(sources)
    }

    /// Stops the retention task and starts it again with `config`'s policies (none
    /// when no channel has one).
    pub(crate) async fn restart_retention(&mut self, store: &Store, config: &Config) {
        if let Some(retention) = self.retention.take() {
            retention.shutdown().await;
        }
        let policies: Vec<_> = config
            .channels
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.retention?)))
            .collect();
        if !policies.is_empty() {
            self.retention = Some(Retention::spawn(store.clone(), policies));
        }
    }

    /// Adds a started channel source.
    pub(crate) fn insert(&mut self, channel: &str, source: ChannelSource) {
        self.channels.insert(channel.to_owned(), source);
    }

    /// Takes a channel's source out, to stop it.
    pub(crate) fn remove(&mut self, channel: &str) -> Option<ChannelSource> {
        self.channels.remove(channel)
    }

    /// The MLLP listeners, one per channel that has one.
    pub(crate) fn mllp_listeners(&self) -> Vec<Listener> {
        self.listeners(true)
    }

    /// Each MLLP source's channel and listener counters.
    pub(crate) fn mllp_stats(&self) -> Vec<(String, ::mllp::StatsReader)> {
        self.channels
            .iter()
            .filter_map(|(name, source)| match source {
                ChannelSource::Mllp(s) => Some((name.clone(), s.stats())),
                _ => None,
            })
            .collect()
    }

    /// The HTTP sources' addresses.
    pub(crate) fn http_listeners(&self) -> Vec<Listener> {
        self.listeners(false)
    }

    fn listeners(&self, mllp: bool) -> Vec<Listener> {
        self.channels
            .values()
            .filter(|source| source.is_mllp() == mllp)
            .filter_map(RunningSource::listener)
            .collect()
    }

    /// Stops every source after what it was storing is stored: the HTTP and directory
    /// sources first, then the MLLP listeners together, each waiting up to `grace` for
    /// busy connections; then the retention task.
    pub(crate) async fn shutdown(self, grace: Duration) {
        let (mllp, others): (Vec<_>, Vec<_>) = self
            .channels
            .into_values()
            .partition(ChannelSource::is_mllp);
        for source in others {
            source.shutdown(grace).await;
        }
        let stops: Vec<_> = mllp
            .into_iter()
            .map(|source| tokio::spawn(source.shutdown(grace)))
            .collect();
        for stop in stops {
            match stop.await {
                Ok(true) => {}
                Ok(false) => warn!(
                    grace_seconds = grace.as_secs(),
                    "connections still busy after the grace period were dropped; their senders will resend"
                ),
                Err(err) => error!(error = %err, "listener shutdown failed"),
            }
        }
        if let Some(retention) = self.retention {
            retention.shutdown().await;
        }
    }
}

/// The messages of a body or file holding one message, several, or an FHS/BHS batch:
/// each with the line it starts on, and whether there were several (or an envelope).
/// A single message without an envelope is the whole input, byte for byte.
pub(crate) fn split_batch(input: &Bytes) -> Result<(Vec<(Bytes, usize)>, bool), hl7v2::Error> {
    let batch = hl7v2::Batch::parse(input)?;
    let enveloped = batch.file_header.is_some()
        || batch.file_trailer.is_some()
        || !batch.batch_headers.is_empty()
        || !batch.batch_trailers.is_empty();
    if batch.messages.len() == 1 && !enveloped {
        return Ok((vec![(input.clone(), batch.messages[0].2)], false));
    }
    let messages = batch
        .messages
        .iter()
        .map(|&(bytes, offset, line)| (input.slice(offset..offset + bytes.len()), line))
        .collect();
    Ok((messages, true))
}

/// Like [`split_batch`] for a body that must be answered whatever it holds: input that
/// is not a well-formed stream or batch is one message (which the intake rejects and
/// stores).
pub(crate) fn split_body(input: &Bytes) -> (Vec<Bytes>, bool) {
    match split_batch(input) {
        Ok((messages, batch)) if !messages.is_empty() => {
            (messages.into_iter().map(|(m, _)| m).collect(), batch)
        }
        _ => (vec![input.clone()], false),
    }
}

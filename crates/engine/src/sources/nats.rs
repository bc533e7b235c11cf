//! The NATS source: `source = { type = "nats", url = "nats://host:4222", stream = "HL7",
//! consumer = "corridor-lab", filter_subject = "hl7.ORU.>" }`.
//!
//! A durable pull consumer (`consumer`, created with explicit acknowledgement when the
//! stream does not have it yet) on the JetStream stream `stream`, which the operator
//! creates. Each NATS message's payload is one HL7 v2 message, several, or an FHS/BHS
//! batch; the messages of up to `batch_size` NATS messages go to the channel's
//! [`Intake`] in one write, and only AFTER that write committed is each NATS message
//! acknowledged:
//!
//! - `+ACK` when its messages were stored (or were duplicates of stored ones);
//! - `+TERM` when one was rejected (it does not parse as HL7, or failed validation
//!   before the ACK): it is stored as `rejected` all the same, with the others as
//!   `received`, and JetStream stops redelivering it;
//! - `-NAK` (redelivered after a second) when the store could not take it;
//! - `+TERM`, storing nothing, when its payload is larger than `max_frame_size`
//!   (logged at `warn` with its stream sequence).
//!
//! A crash between the commit and the acknowledgement means JetStream redelivers after
//! the consumer's ack wait (30 seconds by default), and the channel's duplicate window
//! (default 10 minutes) keeps those messages from being stored twice. A NATS server that
//! is down or restarting is waited for: the source connects, finds its consumer and
//! fetches again every second, logging the first failure at `warn` and the recovery at
//! `info` (never a payload).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Listener, RunningSource, split_body};
use crate::intake::{Intake, IntakeStatus, Origin};

/// How long one fetch waits for messages before it asks again.
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// How long the source waits before trying again after NATS failed it.
const RETRY_AFTER: Duration = Duration::from_secs(1);

fn default_batch_size() -> usize {
    100
}

/// `type = "nats"`: a NATS source's own keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    /// `nats://host:port` (or `tls://host:port`); several separated by commas.
    #[serde(default)]
    pub url: Option<String>,
    /// The JetStream stream read (the operator creates it).
    #[serde(default)]
    pub stream: Option<String>,
    /// The durable consumer's name; created on the stream when missing.
    #[serde(default)]
    pub consumer: Option<String>,
    /// Only the stream's messages on these subjects (a new consumer's filter).
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// Most NATS messages fetched and stored in one write (default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The user name, with `password_env` or `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose first line is the password (relative to the configuration file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The environment variable holding a token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A NATS credentials file (`.creds`), relative to the configuration file.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// TLS towards the server.
    #[serde(default)]
    pub tls: Option<delivery::TlsConfig>,
}

impl NatsSourceConfig {
    fn server(&self) -> delivery::nats::NatsServerKeys<'_> {
        delivery::nats::NatsServerKeys {
            url: self.url.as_deref(),
            user: self.user.as_deref(),
            password_env: self.password_env.as_deref(),
            password_file: self.password_file.as_deref(),
            token_env: self.token_env.as_deref(),
            credentials: self.credentials.as_deref(),
            tls: self.tls.as_ref(),
        }
    }

    /// Problems with these settings, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Err(message) = self.server().check() {
            errors.push((format!("{at}.source"), message));
        }
        for (key, value) in [("stream", &self.stream), ("consumer", &self.consumer)] {
            match value.as_deref() {
                None => errors.push((
                    format!("{at}.source.{key}"),
                    format!("nats sources need `{key}`"),
                )),
                Some(name) if !valid_name(name) => errors.push((
                    format!("{at}.source.{key}"),
                    format!("{name:?} is not a JetStream name (letters, digits, `-` and `_`)"),
                )),
                Some(_) => {}
            }
        }
        if let Some(filter) = &self.filter_subject
            && (filter.is_empty()
                || filter.contains(char::is_whitespace)
                || filter.split('.').any(str::is_empty))
        {
            errors.push((
                format!("{at}.source.filter_subject"),
                format!("{filter:?} is not a NATS subject"),
            ));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            errors.push((
                format!("{at}.source.batch_size"),
                "must be between 1 and 10000".to_owned(),
            ));
        }
        errors
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What the reading task needs.
struct Reader {
    config: NatsSourceConfig,
    base_dir: PathBuf,
    max_frame_size: usize,
    intake: Intake,
}

/// A running NATS source.
pub struct NatsSource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl NatsSource {
    /// Starts reading; the secrets and TLS files are read now (errors name the key), the
    /// server is connected to in the background and waited for while it is down.
    pub async fn start(
        name: &str,
        config: &NatsSourceConfig,
        max_frame_size: usize,
        base_dir: &Path,
        intake: Intake,
    ) -> Result<NatsSource, String> {
        config
            .server()
            .options(base_dir, &format!("corridor {name}"))
            .await?;
        let (stop, stopped) = watch::channel(false);
        let reader = Reader {
            config: config.clone(),
            base_dir: base_dir.to_owned(),
            max_frame_size,
            intake,
        };
        info!(channel = %name, stream = ?config.stream, consumer = ?config.consumer, "nats source reading");
        let task = tokio::spawn(reader.run(stopped));
        Ok(NatsSource { stop, task })
    }
}

impl NatsSource {
    /// Stops reading: what was fetched is stored and acknowledged first.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Waits `wait`, or less when the source is stopped; true when it was.
async fn pause(stopped: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

impl Reader {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let channel = self.intake.channel().clone();
        let mut failing = false;
        let mut report = |failed: Option<&str>| match failed {
            Some(why) => {
                if !failing {
                    warn!(channel = %channel, error = %why, "nats source cannot read; trying again every second");
                    failing = true;
                }
            }
            None => {
                if failing {
                    info!(channel = %channel, "nats source reading again");
                    failing = false;
                }
            }
        };
        // Connect (the client then reconnects by itself).
        let client = loop {
            let name = format!("corridor {channel}");
            match self
                .config
                .server()
                .connect(&self.base_dir, &name, Duration::from_secs(5))
                .await
            {
                Ok(client) => break client,
                Err(why) => report(Some(why.as_str())),
            }
            if pause(&mut stopped, RETRY_AFTER).await {
                return;
            }
        };
        let context = jetstream::new(client);
        let stream_name = self.config.stream.clone().unwrap_or_default();
        let consumer_name = self.config.consumer.clone().unwrap_or_default();
        let origin = Origin::new(format!("nats:{stream_name}/{consumer_name}"));
        let mut consumer: Option<jetstream::consumer::Consumer<pull::Config>> = None;
        loop {
            if *stopped.borrow() {
                return;
            }
            if consumer.is_none() {
                match self.consumer(&context, &stream_name, &consumer_name).await {
                    Ok(found) => consumer = Some(found),
                    Err(why) => {
                        report(Some(why.as_str()));
                        if pause(&mut stopped, RETRY_AFTER).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(current) = consumer.clone() else {
                continue;
            };
            let fetched = tokio::select! {
                fetched = fetch(&current, self.config.batch_size) => fetched,
                _ = stopped.changed() => return,
            };
            match fetched {
                Ok(messages) => {
                    report(None);
                    if !messages.is_empty() {
                        self.store(messages, &origin).await;
                    }
                }
                Err(why) => {
                    report(Some(why.as_str()));
                    if pause(&mut stopped, RETRY_AFTER).await {
                        return;
                    }
                }
            }
        }
    }

    /// The durable consumer, created when the stream does not have it.
    async fn consumer(
        &self,
        context: &jetstream::Context,
        stream: &str,
        consumer: &str,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
        let found = context
            .get_stream(stream)
            .await
            .map_err(|e| format!("stream {stream:?}: {e}"))?;
        let config = pull::Config {
            durable_name: Some(consumer.to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            filter_subject: self.config.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        };
        found
            .get_or_create_consumer(consumer, config)
            .await
            .map_err(|e| format!("consumer {consumer:?} of stream {stream:?}: {e}"))
    }

    /// Stores the messages of a fetch in one write, then acknowledges each.
    async fn store(&self, messages: Vec<jetstream::Message>, origin: &Origin) {
        let channel = self.intake.channel();
        let mut all: Vec<Bytes> = Vec::new();
        // For each NATS message: the range of `all` holding its HL7 messages (None:
        // too large, nothing stored).
        let mut ranges = Vec::with_capacity(messages.len());
        for message in &messages {
            let payload = message.message.payload.clone();
            if payload.len() > self.max_frame_size {
                let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                warn!(channel = %channel, sequence, size = payload.len(), "a NATS message larger than max_frame_size was terminated without being stored");
                ranges.push(None);
                continue;
            }
            let (split, _) = split_body(&payload);
            let start = all.len();
            all.extend(split);
            ranges.push(Some(start..all.len()));
        }
        let answers = if all.is_empty() {
            Vec::new()
        } else {
            self.intake.receive(all, origin).await
        };
        for (message, range) in messages.iter().zip(ranges) {
            let kind = match range {
                None => AckKind::Term,
                Some(range) => {
                    let statuses = answers.get(range).unwrap_or_default();
                    if statuses.is_empty()
                        || statuses
                            .iter()
                            .any(|a| matches!(a.status, IntakeStatus::Failed))
                    {
                        AckKind::Nak(Some(RETRY_AFTER))
                    } else if statuses
                        .iter()
                        .any(|a| matches!(a.status, IntakeStatus::Rejected { .. }))
                    {
                        AckKind::Term
                    } else {
                        AckKind::Ack
                    }
                }
            };
            if let Err(e) = message.ack_with(kind).await {
                debug!(channel = %channel, error = %e, "a NATS acknowledgement was not sent; JetStream redelivers and the duplicate window drops the repeat");
            }
        }
    }
}

/// Up to `max` messages, waiting at most [`FETCH_WAIT`] for the first.
async fn fetch(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    max: usize,
) -> Result<Vec<jetstream::Message>, String> {
    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .expires(FETCH_WAIT)
        .messages()
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let mut messages = Vec::new();
    while let Some(next) = batch.next().await {
        match next {
            Ok(message) => messages.push(message),
            Err(e) if messages.is_empty() => return Err(format!("fetch: {e}")),
            Err(_) => break,
        }
    }
    Ok(messages)
}

impl RunningSource for NatsSource {
    fn listener(&self) -> Option<Listener> {
        None
    }

    async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let mut task = self.task;
        match tokio::time::timeout(grace, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

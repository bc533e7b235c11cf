//! MLLP sources: one `mllp` listener per channel, each connection's frames handed to
//! the channel's [`Intake`] and answered with its acknowledgements (and, with MLLP
//! release 2, a commit acknowledgement first).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mllp::{CommitAck, ConnectionInfo, FrameHandler, MllpServer, ServerHandle};
use serde::Deserialize;
use store::Store;
use tracing::info;

use super::config::{
    ListenerKeys, SourceKind, default_idle_timeout, default_max_connections, default_read_timeout,
};
use super::{Listener, RunningSource, StartError};
use crate::config::{AckModeSetting, ByteSize, ConfigDuration, ListenAddr, SourceConfig};
use crate::intake::{Intake, IntakeStatus, Origin, ReceiverSettings};
use crate::metrics::ChannelMetrics;

/// `source = { type = "mllp", ... }`: an MLLP source's own keys (the keys every source
/// takes are in [`SourceConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpSourceConfig {
    /// Address to listen on, `IP:port` (required; missing, it is reported with the
    /// file's other problems).
    #[serde(default)]
    pub listen: Option<ListenAddr>,
    /// Serve over TLS; with `client_ca`, mutual TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Time a sender has to finish a frame it started (default `"30s"`).
    #[serde(default = "default_read_timeout")]
    pub read_timeout: ConfigDuration,
    /// Time a connection may stay open without sending (default `"1h"`; `0` = forever).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// Most connections served at once (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// MLLP release 2: send a commit acknowledgement (0x06) once stored (default false).
    #[serde(default)]
    pub commit_acks: bool,
    /// The client addresses allowed, as CIDR blocks (`["10.1.0.0/16",
    /// "192.0.2.7/32"]`). Empty (the default): every address.
    #[serde(default)]
    pub allow_from: Vec<ipnet::IpNet>,
    /// Under mutual TLS: the client certificate subjects allowed
    /// (`"CN=lab-1,O=Hospital"`). Empty (the default): any the client CA issued.
    #[serde(default)]
    pub allow_subjects: Vec<String>,
    /// With `ack_mode = "enhanced"`: the `host:port` of the senders' own MLLP
    /// listener, where the application acknowledgements MSH-16 asks for are sent
    /// once each message is processed. Without it they are noted as owed only.
    #[serde(default)]
    pub application_ack_to: Option<String>,
}

/// `tls = { cert = "..", key = "..", client_ca = ".." }` (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// With it, mutual TLS: clients must present a certificate issued by one of these CAs.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl MllpSourceConfig {
    /// An MLLP source on `listen` with every default.
    pub fn new(listen: SocketAddr) -> MllpSourceConfig {
        MllpSourceConfig {
            listen: Some(ListenAddr(listen)),
            tls: None,
            read_timeout: default_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            commit_acks: false,
            allow_from: Vec::new(),
            allow_subjects: Vec::new(),
            application_ack_to: None,
        }
    }

    /// The settings of the `mllp` crate's listener for this source, whose largest
    /// frame is `max_frame_size`.
    pub fn listener_config(&self, max_frame_size: ByteSize) -> mllp::MllpServerConfig {
        let listen = self
            .listen
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |l| l.0);
        let mut config = mllp::MllpServerConfig::new(listen.to_string());
        config.tls = self.tls.as_ref().map(|tls| mllp::TlsServerConfig {
            cert_path: tls.cert.clone(),
            key_path: tls.key.clone(),
            client_ca_path: tls.client_ca.clone(),
        });
        config.max_frame_size = usize::try_from(max_frame_size.0).unwrap_or(usize::MAX);
        config.read_timeout = self.read_timeout.0;
        config.idle_timeout = self.idle_timeout.0;
        config.max_connections = self.max_connections;
        config.commit_acks = self.commit_acks;
        config.allow_from = self.allow_from.clone();
        config.allow_subjects = self.allow_subjects.clone();
        config
    }

    /// Problems with these keys, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str, ack_mode: AckModeSetting) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if !self.allow_subjects.is_empty()
            && self.tls.as_ref().is_none_or(|tls| tls.client_ca.is_none())
        {
            errors.push((
                format!("{at}.source.allow_subjects"),
                "needs mutual TLS (tls.client_ca): without it no client has a certificate"
                    .to_owned(),
            ));
        }
        let listener = ListenerKeys {
            kind: SourceKind::Mllp,
            listen: self.listen,
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
            application_ack_to: self.application_ack_to.as_deref(),
            ack_mode,
        };
        errors.extend(listener.check(at));
        if let Some(tls) = &self.tls {
            let files = [
                ("cert", Some(&tls.cert)),
                ("key", Some(&tls.key)),
                ("client_ca", tls.client_ca.as_ref()),
            ];
            for (key, file) in files {
                if let Some(file) = file.filter(|f| !f.is_file()) {
                    errors.push((
                        format!("{at}.source.tls.{key}"),
                        format!("file {:?} does not exist", file.display().to_string()),
                    ));
                }
            }
        }
        errors
    }
}

/// A running MLLP source: its listener's address and the server behind it.
pub(crate) struct MllpSource {
    listener: Listener,
    server: ServerHandle,
    stats: mllp::StatsReader,
}

impl MllpSource {
    /// Binds `source`'s listener and serves it through `intake`; the error names the
    /// `listen` key of channel `name`.
    pub(crate) async fn start(
        name: &str,
        source: &SourceConfig,
        mllp: &MllpSourceConfig,
        intake: Intake,
    ) -> Result<MllpSource, StartError> {
        let server = MllpServer::bind(name, mllp.listener_config(source.max_frame_size))
            .await
            .map_err(|err| StartError::Listen {
                key: format!("channels.{name}.source.listen"),
                addr: source.listen_addr(),
                reason: err.to_string(),
            })?;
        let listener = Listener {
            channel: name.to_owned(),
            addr: server.local_addr(),
            tls: mllp.tls.is_some(),
        };
        let stats = server.stats_reader();
        let server = server.spawn(MllpReceiver::with_intake(intake));
        Ok(MllpSource {
            listener,
            server,
            stats,
        })
    }
}

impl MllpSource {
    /// The listener's counters (connections refused by its allow lists among them).
    pub(crate) fn stats(&self) -> mllp::StatsReader {
        self.stats.clone()
    }
}

impl RunningSource for MllpSource {
    fn listener(&self) -> Option<Listener> {
        Some(self.listener.clone())
    }

    /// Stops accepting, waits up to `grace` for connections busy storing, then
    /// drops the rest (their senders got no ACK and will resend).
    async fn shutdown(self, grace: Duration) -> bool {
        self.server.shutdown_within(grace).await
    }
}

/// The [`FrameHandler`] of an MLLP source: hands every frame to the channel's
/// [`Intake`], then answers with its acknowledgement.
///
/// ```no_run
/// # async fn example(store: store::Store) -> Result<(), mllp::MllpError> {
/// use std::sync::Arc;
/// use engine::{AckModeSetting, ChannelMetrics, MllpReceiver, ReceiverSettings};
///
/// let receiver = MllpReceiver::new(
///     ReceiverSettings { channel: Arc::from("lab"), ack_mode: AckModeSetting::Original, duplicate_window: None, stored: Default::default() },
///     store,
///     Arc::new(ChannelMetrics::default()),
/// );
/// let server = mllp::MllpServer::bind("lab", mllp::MllpServerConfig::new("127.0.0.1:0")).await?;
/// let handle = server.spawn(receiver);
/// # handle.shutdown().await; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MllpReceiver {
    intake: Intake,
}

impl MllpReceiver {
    /// A receiver storing into `store` and counting into `metrics`.
    pub fn new(settings: ReceiverSettings, store: Store, metrics: Arc<ChannelMetrics>) -> Self {
        MllpReceiver {
            intake: Intake::new(settings, store, metrics),
        }
    }

    /// A receiver that hands its frames to `intake`.
    pub fn with_intake(intake: Intake) -> Self {
        MllpReceiver { intake }
    }

    async fn receive(&self, frames: Vec<Bytes>, conn: &ConnectionInfo) -> Vec<Vec<Bytes>> {
        let origin = Origin {
            peer: Arc::from(conn.peer_addr.to_string()),
            tls_identity: conn.client_subject.as_deref().map(Arc::from),
        };
        let received = self.intake.receive(frames, &origin).await;
        received
            .into_iter()
            .map(|answer| {
                let mut out = Vec::with_capacity(2);
                if conn.commit_acks {
                    out.push(match answer.status {
                        IntakeStatus::Failed => CommitAck::Reject.payload(),
                        _ => CommitAck::Accept.payload(),
                    });
                }
                out.extend(answer.ack.map(Bytes::from));
                out
            })
            .collect()
    }
}

impl FrameHandler for MllpReceiver {
    async fn on_frame(&self, frame: Bytes, conn: &ConnectionInfo) -> Vec<Bytes> {
        self.receive(vec![frame], conn)
            .await
            .pop()
            .unwrap_or_default()
    }

    async fn on_frames(&self, frames: Vec<Bytes>, conn: &ConnectionInfo) -> Vec<Vec<Bytes>> {
        self.receive(frames, conn).await
    }

    fn on_connection_opened(&self, conn: &ConnectionInfo) {
        info!(channel = %self.intake.channel(), peer = %conn.peer_addr, conn = %conn.id, tls = conn.tls, "sender connected");
    }

    fn on_connection_closed(&self, conn: &ConnectionInfo) {
        info!(channel = %self.intake.channel(), peer = %conn.peer_addr, conn = %conn.id, "sender disconnected");
    }
}

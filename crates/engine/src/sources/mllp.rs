//! MLLP sources: one `mllp` listener per channel, each connection's frames handed to
//! the channel's [`Intake`] and answered with its acknowledgements (and, with MLLP
//! release 2, a commit acknowledgement first).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mllp::{CommitAck, ConnectionInfo, FrameHandler, MllpServer, ServerHandle};
use store::Store;
use tracing::info;

use super::{Listener, RunningSource, StartError};
use crate::config::SourceConfig;
use crate::intake::{Intake, IntakeStatus, Origin, ReceiverSettings};
use crate::metrics::ChannelMetrics;

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
        intake: Intake,
    ) -> Result<MllpSource, StartError> {
        let server = MllpServer::bind(name, source.listener_config())
            .await
            .map_err(|err| StartError::Listen {
                key: format!("channels.{name}.source.listen"),
                addr: source.listen_addr(),
                reason: err.to_string(),
            })?;
        let listener = Listener {
            channel: name.to_owned(),
            addr: server.local_addr(),
            tls: source.tls.is_some(),
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

//! The MLLP listener: accepts connections, cuts frames, hands them to a
//! [`FrameHandler`] and writes its responses back, in order.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::codec::FrameDecoder;
use crate::config::MllpServerConfig;
use crate::error::MllpError;
use crate::frame::encode_frame_into;
use crate::subject::subject_of_certificate;

/// Spare buffer capacity made available before a socket read on a quiet connection.
const READ_CHUNK: usize = 16 * 1024;
/// Once a read brought more than half of that, reads make room for twice the most any
/// read of the connection brought, up to this: frames that arrived while the last batch
/// was being committed are then read, and committed, together (a sender keeping 64
/// frames of 1.5 KB in flight fits in one read). Untouched room costs no memory.
const MAX_READ_CHUNK: usize = 256 * 1024;
/// How long a closing connection waits for its goodbye (TLS close_notify, FIN).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// At most one "max connections reached" warning per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Receives each frame of a connection and decides what to answer.
///
/// Frames of one connection reach the handler one call at a time, in the order
/// they were received, even when the sender pipelines them: frames already
/// buffered together go to [`on_frames`](Self::on_frames) as one batch, a lone
/// frame to [`on_frame`](Self::on_frame), and nothing more is read or handed
/// over until the responses of the previous call were written. Different
/// connections call it concurrently, so a slow handler call delays only its own
/// connection.
///
/// ```
/// use bytes::Bytes;
/// use mllp::{ConnectionInfo, FrameHandler};
///
/// /// Answers every frame with a fixed application ACK.
/// struct AlwaysAccept;
///
/// impl FrameHandler for AlwaysAccept {
///     async fn on_frame(&self, _frame: Bytes, _conn: &ConnectionInfo) -> Vec<Bytes> {
///         vec![Bytes::from_static(b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|AA|1\r")]
///     }
/// }
/// ```
pub trait FrameHandler: Send + Sync + 'static {
    /// Handles one received payload and returns the payloads to send back, in
    /// order (each becomes one frame). An empty vector sends nothing.
    fn on_frame(
        &self,
        frame: Bytes,
        conn: &ConnectionInfo,
    ) -> impl Future<Output = Vec<Bytes>> + Send;

    /// Handles several payloads that arrived together on one connection
    /// (a pipelining sender), returning one list of responses per payload, in
    /// the same order. The responses of all of them are written together.
    ///
    /// The default calls [`on_frame`](Self::on_frame) for each in turn.
    /// Override it to commit the whole batch at once (one fsync for many
    /// messages) before acknowledging any of them. A missing list sends nothing
    /// for its frame (and is logged as a handler error).
    fn on_frames(
        &self,
        frames: Vec<Bytes>,
        conn: &ConnectionInfo,
    ) -> impl Future<Output = Vec<Vec<Bytes>>> + Send {
        async move {
            let mut responses = Vec::with_capacity(frames.len());
            for frame in frames {
                responses.push(self.on_frame(frame, conn).await);
            }
            responses
        }
    }

    /// Called once a connection is accepted (after its TLS handshake), before its
    /// first frame.
    fn on_connection_opened(&self, conn: &ConnectionInfo) {
        let _ = conn;
    }

    /// Called once a connection has closed, for whatever reason.
    fn on_connection_closed(&self, conn: &ConnectionInfo) {
        let _ = conn;
    }
}

impl<T: FrameHandler> FrameHandler for Arc<T> {
    fn on_frame(
        &self,
        frame: Bytes,
        conn: &ConnectionInfo,
    ) -> impl Future<Output = Vec<Bytes>> + Send {
        T::on_frame(self, frame, conn)
    }

    fn on_frames(
        &self,
        frames: Vec<Bytes>,
        conn: &ConnectionInfo,
    ) -> impl Future<Output = Vec<Vec<Bytes>>> + Send {
        T::on_frames(self, frames, conn)
    }

    fn on_connection_opened(&self, conn: &ConnectionInfo) {
        T::on_connection_opened(self, conn)
    }

    fn on_connection_closed(&self, conn: &ConnectionInfo) {
        T::on_connection_closed(self, conn)
    }
}

/// A [`FrameHandler`] made from a closure; see [`handler_fn`].
#[derive(Clone)]
pub struct FnHandler<F>(F);

/// Turns a closure returning a future into a [`FrameHandler`].
///
/// ```
/// use bytes::Bytes;
/// let echo = mllp::handler_fn(|frame: Bytes, _conn: &mllp::ConnectionInfo| async move { vec![frame] });
/// # fn is_handler(_: impl mllp::FrameHandler) {}
/// # is_handler(echo);
/// ```
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(Bytes, &ConnectionInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Bytes>> + Send + 'static,
{
    FnHandler(f)
}

impl<F, Fut> FrameHandler for FnHandler<F>
where
    F: Fn(Bytes, &ConnectionInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Bytes>> + Send + 'static,
{
    fn on_frame(
        &self,
        frame: Bytes,
        conn: &ConnectionInfo,
    ) -> impl Future<Output = Vec<Bytes>> + Send {
        (self.0)(frame, conn)
    }
}

/// Number of a connection, unique within one server, counting from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a handler knows about the connection a frame came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Name the listener was bound with ([`MllpServer::bind`]), e.g. the channel name.
    pub listener: Arc<str>,
    /// Connection number, unique within the listener.
    pub id: ConnectionId,
    /// The sender's address.
    pub peer_addr: SocketAddr,
    /// The local address the connection arrived on.
    pub local_addr: SocketAddr,
    /// True when the connection is TLS.
    pub tls: bool,
    /// With mutual TLS, the verified client certificate's subject as an
    /// RFC 4514 string, most specific first: `"CN=lab-1,O=Hospital"`.
    pub client_subject: Option<String>,
    /// The listener's [`MllpServerConfig::commit_acks`]: the sender expects an
    /// MLLP release 2 commit acknowledgement as the first response.
    pub commit_acks: bool,
}

impl ConnectionInfo {
    /// Describes a plain-TCP connection; the other fields can be set after.
    /// The server builds these itself; this is for callers testing a handler.
    pub fn new(
        listener: &str,
        id: ConnectionId,
        peer_addr: SocketAddr,
        local_addr: SocketAddr,
    ) -> ConnectionInfo {
        ConnectionInfo {
            listener: Arc::from(listener),
            id,
            peer_addr,
            local_addr,
            tls: false,
            client_subject: None,
            commit_acks: false,
        }
    }
}

/// Counters of one listener since it was bound (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted and served (TLS handshake attempted or plain TCP).
    pub connections_accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: u64,
    /// Connections open right now.
    pub connections_open: u64,
    /// Frames received and handed to the handler.
    pub frames_received: u64,
    /// Response frames written.
    pub frames_sent: u64,
    /// Junk bytes skipped outside frames.
    pub bytes_skipped: u64,
    /// Connections closed because a frame exceeded `max_frame_size`.
    pub frames_too_large: u64,
    /// Connections closed because a frame was not finished within `read_timeout`.
    pub read_timeouts: u64,
    /// Connections closed because no frame started within `idle_timeout`.
    pub idle_timeouts: u64,
    /// Connections closed because the peer did not take its responses within
    /// `read_timeout` (it stopped reading).
    pub write_timeouts: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// Connections closed unread because their address is not in `allow_from` or
    /// their certificate subject not in `allow_subjects`.
    pub connections_not_allowed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    connections_open: AtomicU64,
    frames_received: AtomicU64,
    frames_sent: AtomicU64,
    bytes_skipped: AtomicU64,
    frames_too_large: AtomicU64,
    read_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    tls_handshake_failures: AtomicU64,
    connections_not_allowed: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            connections_accepted: get(&self.connections_accepted),
            connections_refused: get(&self.connections_refused),
            connections_open: get(&self.connections_open),
            frames_received: get(&self.frames_received),
            frames_sent: get(&self.frames_sent),
            bytes_skipped: get(&self.bytes_skipped),
            frames_too_large: get(&self.frames_too_large),
            read_timeouts: get(&self.read_timeouts),
            idle_timeouts: get(&self.idle_timeouts),
            write_timeouts: get(&self.write_timeouts),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            connections_not_allowed: get(&self.connections_not_allowed),
        }
    }
}

/// A bound MLLP listener, not yet serving.
///
/// [`bind`](Self::bind) opens the socket (so the port is known and the listener
/// is ready as soon as it returns); [`spawn`](Self::spawn) or
/// [`run_until`](Self::run_until) then serves connections with a handler.
pub struct MllpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    name: Arc<str>,
    config: MllpServerConfig,
    tls: Option<TlsAcceptor>,
    counters: Arc<Counters>,
}

impl fmt::Debug for MllpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MllpServer")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MllpServer {
    /// Loads the TLS files (if any) and binds the listening socket.
    ///
    /// `name` identifies the listener in logs and in [`ConnectionInfo::listener`].
    /// Errors name the address or the PEM file that failed.
    pub async fn bind(name: &str, config: MllpServerConfig) -> Result<MllpServer, MllpError> {
        config.validate()?;
        let tls = config
            .tls
            .as_ref()
            .map(crate::tls::server_acceptor)
            .transpose()?;
        let bind_error = |source| MllpError::Bind {
            addr: config.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(config.listen.as_str())
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        info!(listener = name, addr = %local_addr, tls = tls.is_some(), "MLLP listener ready");
        Ok(MllpServer {
            listener,
            local_addr,
            name: Arc::from(name),
            config,
            tls,
            counters: Arc::default(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A reader of this listener's counters that stays valid while it serves
    /// (for callers that use [`run_until`](Self::run_until)).
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(self.counters.clone())
    }

    /// Serves connections on a background task until [`ServerHandle::shutdown`].
    /// Must be called within a Tokio runtime.
    pub fn spawn<H: FrameHandler>(self, handler: H) -> ServerHandle {
        let shutdown = CancellationToken::new();
        let abandon = CancellationToken::new();
        let local_addr = self.local_addr;
        let counters = self.counters.clone();
        let task =
            tokio::spawn(self.serve(handler, shutdown.clone().cancelled_owned(), abandon.clone()));
        ServerHandle {
            local_addr,
            shutdown,
            abandon,
            counters,
            task,
        }
    }

    /// Serves connections on the current task until `shutdown` completes, then
    /// shuts down gracefully: stops accepting, lets every frame already received
    /// be handled and answered, closes the connections and returns.
    pub async fn run_until<H: FrameHandler>(self, handler: H, shutdown: impl Future<Output = ()>) {
        self.serve(handler, shutdown, CancellationToken::new())
            .await
    }

    /// The accept loop; `abandon` drops connections still busy after shutdown.
    async fn serve<H: FrameHandler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
        abandon: CancellationToken,
    ) {
        let MllpServer {
            listener,
            local_addr,
            name,
            config,
            tls,
            counters,
        } = self;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            handler,
            name: name.clone(),
            local_addr,
            config,
            tls,
            counters,
            stop: stop.clone(),
        });
        let limit = Arc::new(Semaphore::new(shared.config.max_connections));
        let connections = TaskTracker::new();
        let mut next_id = 0u64;
        let mut refusals = RefusalLog::default();
        let mut not_allowed = RefusalLog::default();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer_addr) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually out of file descriptors: pause instead of spinning.
                    error!(listener = %name, error = %err, "cannot accept connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !shared.config.allows_address(peer_addr.ip()) {
                bump(&shared.counters.connections_not_allowed, 1);
                not_allowed.refused(|unlogged| {
                    warn!(
                        listener = %name,
                        peer = %peer_addr,
                        refused_since_last_warning = unlogged,
                        "address not in allow_from; connection closed unread"
                    );
                });
                drop(tcp);
                continue;
            }
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                bump(&shared.counters.connections_refused, 1);
                let max_connections = shared.config.max_connections;
                refusals.refused(|unlogged| {
                    warn!(
                        listener = %name,
                        peer = %peer_addr,
                        max_connections,
                        refused_since_last_warning = unlogged,
                        "max connections reached; connection refused"
                    );
                });
                drop(tcp);
                continue;
            };
            next_id += 1;
            bump(&shared.counters.connections_accepted, 1);
            let shared = shared.clone();
            let id = ConnectionId(next_id);
            let abandon = abandon.clone();
            connections.spawn(async move {
                // Released even if the handler panics and unwinds this task.
                let _open = OpenConnection::new(shared.counters.clone(), permit);
                tokio::select! {
                    () = serve_connection(&shared, tcp, peer_addr, id) => {}
                    () = abandon.cancelled() => {
                        warn!(listener = %shared.name, conn = %id, peer = %peer_addr, "connection still busy after the shutdown grace period; dropped");
                    }
                }
            });
        }
        drop(listener);
        info!(listener = %name, open_connections = connections.len(), "MLLP listener stopped accepting; finishing frames in flight");
        stop.cancel();
        connections.close();
        connections.wait().await;
        info!(listener = %name, "MLLP listener shut down");
    }
}

/// Reads a listener's counters; cheap to clone.
#[derive(Debug, Clone)]
pub struct StatsReader(Arc<Counters>);

impl StatsReader {
    /// The counters now.
    pub fn read(&self) -> ServerStats {
        self.0.snapshot()
    }
}

/// Holds a connection's slot and keeps the open-connection gauge right.
struct OpenConnection {
    counters: Arc<Counters>,
    _permit: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(counters: Arc<Counters>, permit: OwnedSemaphorePermit) -> Self {
        bump(&counters.connections_open, 1);
        OpenConnection {
            counters,
            _permit: permit,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Logs refusals at most once per interval, with the count of those not logged.
#[derive(Default)]
struct RefusalLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    /// Counts a refusal and calls `log` with the count of those not logged since the
    /// last line, unless a line was logged within the interval.
    fn refused(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        log(self.unlogged);
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

/// A listener serving on a background task.
///
/// Dropping the handle leaves the listener running; call
/// [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    abandon: CancellationToken,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters since the listener was bound.
    pub fn stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// Stops accepting, lets frames already received be handled and their
    /// responses written, closes every connection, then returns. Waits as long
    /// as handlers take; see [`shutdown_within`](Self::shutdown_within) for a bound.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(err) = self.task.await {
            error!(error = %err, "MLLP listener task failed");
        }
    }

    /// Like [`shutdown`](Self::shutdown), but connections still busy after
    /// `grace` are dropped (their senders get no answer and will resend).
    /// Returns true when everything finished within `grace`.
    pub async fn shutdown_within(mut self, grace: Duration) -> bool {
        self.shutdown.cancel();
        let finished = match tokio::time::timeout(grace, &mut self.task).await {
            Ok(joined) => joined,
            Err(_) => {
                self.abandon.cancel();
                if let Err(err) = self.task.await {
                    error!(error = %err, "MLLP listener task failed");
                }
                return false;
            }
        };
        if let Err(err) = finished {
            error!(error = %err, "MLLP listener task failed");
        }
        true
    }
}

struct Shared<H> {
    handler: H,
    name: Arc<str>,
    local_addr: SocketAddr,
    config: MllpServerConfig,
    tls: Option<TlsAcceptor>,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

async fn serve_connection<H: FrameHandler>(
    shared: &Shared<H>,
    tcp: TcpStream,
    peer_addr: SocketAddr,
    id: ConnectionId,
) {
    // Responses are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let local_addr = tcp.local_addr().unwrap_or(shared.local_addr);
    let mut conn = ConnectionInfo {
        listener: shared.name.clone(),
        id,
        peer_addr,
        local_addr,
        tls: shared.tls.is_some(),
        client_subject: None,
        commit_acks: shared.config.commit_acks,
    };
    match &shared.tls {
        None => {
            debug!(listener = %conn.listener, conn = %id, peer = %peer_addr, "connection opened");
            serve_frames(shared, tcp, &conn).await;
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(shared.config.read_timeout, acceptor.accept(tcp));
            let outcome = tokio::select! {
                outcome = handshake => outcome,
                () = shared.stop.cancelled() => return,
            };
            let stream = match outcome {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    bump(&shared.counters.tls_handshake_failures, 1);
                    warn!(listener = %conn.listener, conn = %id, peer = %peer_addr, reason = %err, "TLS handshake failed; connection refused");
                    return;
                }
                Err(_) => {
                    bump(&shared.counters.tls_handshake_failures, 1);
                    warn!(listener = %conn.listener, conn = %id, peer = %peer_addr, timeout = ?shared.config.read_timeout, "TLS handshake not finished in time; connection closed");
                    return;
                }
            };
            conn.client_subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| subject_of_certificate(leaf));
            if !shared.config.allows_subject(conn.client_subject.as_deref()) {
                bump(&shared.counters.connections_not_allowed, 1);
                // The subject names a system, not a patient: it may be logged.
                warn!(listener = %conn.listener, conn = %id, peer = %peer_addr, client = conn.client_subject.as_deref().unwrap_or("-"), "certificate subject not in allow_subjects; connection closed unread");
                return;
            }
            debug!(listener = %conn.listener, conn = %id, peer = %peer_addr, client = conn.client_subject.as_deref().unwrap_or("-"), "TLS connection opened");
            serve_frames(shared, stream, &conn).await;
        }
    }
}

/// Why a connection's frame loop ended.
enum Closed {
    ByPeer,
    Shutdown,
    Broken,
}

async fn serve_frames<H, S>(shared: &Shared<H>, mut stream: S, conn: &ConnectionInfo)
where
    H: FrameHandler,
    S: AsyncRead + AsyncWrite + Unpin,
{
    shared.handler.on_connection_opened(conn);
    let mut decoder = FrameDecoder::new(shared.config.max_frame_size);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let closed = frame_loop(shared, &mut stream, conn, &mut decoder, &mut buf).await;
    log_skipped(shared, conn, &mut decoder);
    if matches!(closed, Closed::ByPeer | Closed::Shutdown) {
        // Say goodbye properly (TLS close_notify) but never wait on a stuck peer.
        let _ = tokio::time::timeout(CLOSE_GRACE, stream.shutdown()).await;
    }
    shared.handler.on_connection_closed(conn);
    debug!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, "connection closed");
}

async fn frame_loop<H, S>(
    shared: &Shared<H>,
    stream: &mut S,
    conn: &ConnectionInfo,
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
) -> Closed
where
    H: FrameHandler,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &shared.config;
    let mut out = BytesMut::new();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut idle_since = Instant::now();
    let mut frame_started: Option<Instant> = None;
    let mut chunk = READ_CHUNK;
    loop {
        // Answer every frame already received before reading more: this keeps
        // pipelined frames in order and finishes them during shutdown. Frames
        // that arrived together are handed over together (group commit).
        let mut too_large = None;
        loop {
            match decoder.decode(buf) {
                Ok(Some(frame)) => batch.push(frame),
                Ok(None) => break,
                Err(err) => {
                    too_large = Some(err);
                    break;
                }
            }
        }
        log_skipped(shared, conn, decoder);
        if !batch.is_empty() {
            frame_started = None;
            bump(&shared.counters.frames_received, batch.len() as u64);
            out.clear();
            let mut sent = 0;
            if batch.len() == 1 {
                let frame = batch.pop().unwrap_or_default();
                let responses = shared.handler.on_frame(frame, conn).await;
                sent += encode_responses(conn, &responses, &mut out);
            } else {
                let frames = batch.len();
                let responses = shared
                    .handler
                    .on_frames(std::mem::take(&mut batch), conn)
                    .await;
                if responses.len() != frames {
                    error!(listener = %conn.listener, conn = %conn.id, frames, answers = responses.len(), "handler answered a batch with the wrong number of response lists");
                }
                for frame_responses in &responses {
                    sent += encode_responses(conn, frame_responses, &mut out);
                }
            }
            if !out.is_empty() {
                let written = async {
                    stream.write_all(&out).await?;
                    stream.flush().await
                };
                // A peer that stops reading must not hold its task (and shutdown) forever.
                match tokio::time::timeout(config.read_timeout, written).await {
                    Ok(Ok(())) => bump(&shared.counters.frames_sent, sent),
                    Ok(Err(err)) => {
                        debug!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, error = %err, "cannot write response; connection closed");
                        return Closed::Broken;
                    }
                    Err(_) => {
                        bump(&shared.counters.write_timeouts, 1);
                        warn!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, read_timeout = ?config.read_timeout, "peer took no responses within read_timeout; connection closed");
                        return Closed::Broken;
                    }
                }
            }
            idle_since = Instant::now();
        }
        if let Some(too_large) = too_large {
            bump(&shared.counters.frames_too_large, 1);
            warn!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, max_frame_size = too_large.limit, "frame exceeds max_frame_size; connection closed");
            return Closed::Broken;
        }
        if shared.stop.is_cancelled() {
            return Closed::Shutdown;
        }
        let (deadline, timed_out_reading) = if decoder.is_mid_frame() {
            let started = *frame_started.get_or_insert_with(Instant::now);
            (Some(started + config.read_timeout), true)
        } else if config.idle_timeout.is_zero() {
            (None, false)
        } else {
            (Some(idle_since + config.idle_timeout), false)
        };
        buf.reserve(chunk);
        let read = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return Closed::Shutdown,
            read = stream.read_buf(buf) => read,
            () = sleep_until(deadline) => {
                if timed_out_reading {
                    bump(&shared.counters.read_timeouts, 1);
                    warn!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, read_timeout = ?config.read_timeout, "frame not finished within read_timeout; connection closed");
                } else {
                    bump(&shared.counters.idle_timeouts, 1);
                    info!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, idle_timeout = ?config.idle_timeout, "no frame within idle_timeout; connection closed");
                }
                return Closed::Broken;
            }
        };
        match read {
            Ok(0) => {
                if decoder.is_mid_frame() {
                    info!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, "peer closed the connection in the middle of a frame");
                }
                return Closed::ByPeer;
            }
            Ok(n) => chunk = chunk.max(2 * n).min(MAX_READ_CHUNK),
            Err(err) => {
                debug!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, error = %err, "connection read failed");
                return Closed::Broken;
            }
        }
    }
}

/// Frames `responses` into `out`; returns how many were framed. A response
/// that cannot be framed is dropped with an error line.
fn encode_responses(conn: &ConnectionInfo, responses: &[Bytes], out: &mut BytesMut) -> u64 {
    let mut framed = 0;
    for response in responses {
        match encode_frame_into(response, out) {
            Ok(()) => framed += 1,
            Err(err) => {
                error!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, error = %err, "handler response not sent")
            }
        }
    }
    framed
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn log_skipped<H>(shared: &Shared<H>, conn: &ConnectionInfo, decoder: &mut FrameDecoder) {
    let skipped = decoder.take_skipped_bytes();
    if skipped > 0 {
        bump(&shared.counters.bytes_skipped, skipped as u64);
        warn!(listener = %conn.listener, conn = %conn.id, peer = %conn.peer_addr, skipped_bytes = skipped, "skipped bytes outside MLLP frames");
    }
}

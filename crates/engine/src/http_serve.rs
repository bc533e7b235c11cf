//! Serving HTTP with limits: the engine's API port and every HTTP source.
//!
//! `axum::serve` reads headers for as long as a client likes, keeps idle connections
//! forever and takes every connection offered, so a client that opens connections and
//! sends nothing could hold file descriptors until the process had none left for MLLP
//! senders or the database. Each listener here, instead:
//!
//! - serves at most `max_connections` at once. When they are all taken, a new
//!   connection takes the place of the oldest one that has not sent a byte of a
//!   request (nginx reuses its idle connections the same way), so a flood of idle
//!   connections never locks out a client that asks at once; when every connection is
//!   busy with a request, the new one is closed at once;
//! - gives each request `read_timeout` from its first byte (on a new connection, from
//!   opening it): a connection whose headers are not all in by then is closed, and a
//!   handler still reading the body then gets [`RequestTimedOut`] (the connection is
//!   closed after its answer, the body being unfinished);
//! - closes a connection kept alive after an answer once it has waited `idle_timeout`
//!   for the next request, and one whose client does not take its answer within
//!   `read_timeout`;
//! - pauses instead of spinning when accepting fails (out of file descriptors);
//! - with TLS ([`HttpServer::spawn_tls`], the API port's `[http] tls_cert`), completes
//!   the handshake within `read_timeout` and hands each request the client
//!   certificate's subject ([`api::TlsIdentity`]) under mutual TLS.
//!
//! Shutting down stops accepting, closes idle connections, and lets requests in flight
//! be answered.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mllp::tokio_rustls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, error, info, warn};

/// How long the accept loop pauses after accepting failed (usually: out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per this interval about a full listener or failing accepts.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);
/// How long a new connection waits for the one it displaced to let go of its slot.
const DISPLACE_WAIT: Duration = Duration::from_secs(1);

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a whole request (headers and body), from its first
    /// byte or, on a new connection, from opening it; also the time it has to take an
    /// answer.
    pub read_timeout: Duration,
    /// Time a connection kept alive after an answer may wait for the next request;
    /// zero waits forever (it still gives way to new connections when the listener is full).
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A request body that did not arrive within `read_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimedOut {
    /// The listener's `read_timeout`.
    pub read_timeout: Duration,
}

impl fmt::Display for RequestTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request was not received within read_timeout ({:?})",
            self.read_timeout
        )
    }
}

impl std::error::Error for RequestTimedOut {}

impl RequestTimedOut {
    /// The timeout somewhere in `error`'s chain of sources, if that is what it was.
    pub fn in_chain(error: &(dyn std::error::Error + 'static)) -> Option<RequestTimedOut> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(timed_out) = error.downcast_ref::<RequestTimedOut>() {
                return Some(*timed_out);
            }
            next = error.source();
        }
        None
    }
}

/// A listener serving an axum [`Router`] on a background task.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Serves `app` on `listener` within `limits`; `name` names the listener in logs.
    pub(crate) fn spawn(
        name: &str,
        listener: TcpListener,
        app: Router,
        limits: HttpLimits,
    ) -> io::Result<HttpServer> {
        HttpServer::spawn_tls(name, listener, app, limits, None)
    }

    /// [`HttpServer::spawn`], serving HTTPS when `tls` is given.
    pub(crate) fn spawn_tls(
        name: &str,
        listener: TcpListener,
        app: Router,
        limits: HttpLimits,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let listening = Listening {
            name: Arc::from(name),
            app,
            limits,
            tls,
            stop: stop.clone(),
        };
        let task = tokio::spawn(listening.accept_loop(listener));
        Ok(HttpServer { addr, stop, task })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes idle connections, lets requests in flight be answered,
    /// and returns once every connection is closed.
    pub(crate) async fn shutdown(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            error!(error = %err, "HTTP listener task failed");
        }
    }
}

struct Listening {
    name: Arc<str>,
    app: Router,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
}

impl Listening {
    async fn accept_loop(self, listener: TcpListener) {
        let listening = Arc::new(self);
        let slots = Arc::new(Semaphore::new(listening.limits.max_connections));
        // Every connection served, oldest first: where room is made when the slots run out.
        let mut open: VecDeque<Weak<ConnectionWatch>> = VecDeque::new();
        let connections = TaskTracker::new();
        let mut warnings = Warnings::default();
        loop {
            let accepted = tokio::select! {
                biased;
                () = listening.stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    warnings.accept_failed(&listening.name, &err);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => match make_room(&mut open, &slots).await {
                    Some(slot) => {
                        warnings.full(&listening, true);
                        slot
                    }
                    None => {
                        warnings.full(&listening, false);
                        drop(tcp);
                        continue;
                    }
                },
            };
            let watch = Arc::new(ConnectionWatch::new());
            remember(&mut open, &watch, listening.limits.max_connections);
            connections.spawn(listening.clone().serve(tcp, peer, watch, slot));
        }
        drop(listener);
        info!(listener = %listening.name, open_connections = connections.len(), "HTTP listener stopped accepting; answering requests in flight");
        connections.close();
        connections.wait().await;
        info!(listener = %listening.name, "HTTP listener shut down");
    }

    async fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        watch: Arc<ConnectionWatch>,
        _slot: OwnedSemaphorePermit,
    ) {
        // Answers are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let stream = WatchedStream {
            stream: tcp,
            watch: watch.clone(),
        };
        let Some(acceptor) = self.tls.clone() else {
            return self.serve_io(TokioIo::new(stream), peer, watch, None).await;
        };
        // The handshake, like a request's head, must be done within read_timeout.
        let tls = match tokio::time::timeout(self.limits.read_timeout, acceptor.accept(stream))
            .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                debug!(listener = %self.name, peer = %peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(listener = %self.name, peer = %peer, "TLS handshake not done within read_timeout; connection closed");
                return;
            }
        };
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| mllp::subject_of_certificate(leaf))
            .map(api::TlsIdentity);
        self.serve_io(TokioIo::new(tls), peer, watch, identity)
            .await;
    }

    async fn serve_io<I>(
        self: Arc<Self>,
        io: TokioIo<I>,
        peer: SocketAddr,
        watch: Arc<ConnectionWatch>,
        identity: Option<api::TlsIdentity>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.limits;
        let service = {
            let app = self.app.clone();
            let watch = watch.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let deadline = watch.request_received(limits.read_timeout);
                let mut request = request.map(|body| {
                    Body::new(DeadlineBody {
                        body,
                        deadline: Box::pin(tokio::time::sleep_until(deadline)),
                        read_timeout: limits.read_timeout,
                    })
                });
                request.extensions_mut().insert(ConnectInfo(peer));
                if let Some(identity) = &identity {
                    request.extensions_mut().insert(identity.clone());
                }
                let mut app = app.clone();
                let watch = watch.clone();
                async move {
                    // A Router is always ready, and its errors are Infallible.
                    let response = match app.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    watch.enter(Phase::Responding);
                    Ok::<_, Infallible>(response.map(|body| Body::new(AnswerBody { body, watch })))
                }
            })
        };
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            let deadline = watch.deadline(&limits);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        debug!(listener = %self.name, peer = %peer, error = %err, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = watch.changed.notified() => {}
                () = sleep_until(deadline.map(|(at, _)| at)) => {
                    // The phase may have moved on since the deadline was taken.
                    if let Some((at, expiry)) = watch.deadline(&limits) {
                        if at <= Instant::now() {
                            expiry.log(&self.name, peer, &limits);
                            return;
                        }
                    }
                }
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Adds a new connection to `open`, first forgetting closed ones once there are as many
/// as open ones could be (a forgotten `Weak` frees its connection's watch).
fn remember(
    open: &mut VecDeque<Weak<ConnectionWatch>>,
    watch: &Arc<ConnectionWatch>,
    max_connections: usize,
) {
    if open.len() >= max_connections.saturating_mul(2) {
        open.retain(|watch| watch.strong_count() > 0);
    }
    open.push_back(Arc::downgrade(watch));
}

/// Takes the slot of the oldest connection that has not sent a byte of a request;
/// `None` when every connection is busy.
async fn make_room(
    open: &mut VecDeque<Weak<ConnectionWatch>>,
    slots: &Arc<Semaphore>,
) -> Option<OwnedSemaphorePermit> {
    if !displace_oldest_idle(open) {
        return None;
    }
    tokio::time::timeout(DISPLACE_WAIT, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Tells the oldest connection that has not sent a byte of a request to close; false
/// when there is none.
fn displace_oldest_idle(open: &mut VecDeque<Weak<ConnectionWatch>>) -> bool {
    open.retain(|watch| watch.strong_count() > 0);
    open.iter()
        .filter_map(Weak::upgrade)
        .any(|watch| watch.displace())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Waiting for the first byte of a request.
    Waiting = 0,
    /// A request's bytes are arriving; its headers are not all in yet.
    Receiving = 1,
    /// The handler has the request (and reads its body within the deadline).
    Handling = 2,
    /// The answer is being written.
    Responding = 3,
    /// Closing to make room for a new connection.
    Displaced = 4,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Waiting,
            1 => Phase::Receiving,
            2 => Phase::Handling,
            3 => Phase::Responding,
            _ => Phase::Displaced,
        }
    }
}

/// Why a connection is closed by its watch.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    RequestNotReceived,
    Idle,
    AnswerNotTaken,
    Displaced,
}

impl Expiry {
    fn log(self, listener: &str, peer: SocketAddr, limits: &HttpLimits) {
        match self {
            Expiry::RequestNotReceived => {
                warn!(listener, peer = %peer, read_timeout = ?limits.read_timeout, "request not received within read_timeout; connection closed")
            }
            Expiry::AnswerNotTaken => {
                warn!(listener, peer = %peer, read_timeout = ?limits.read_timeout, "answer not taken within read_timeout; connection closed")
            }
            Expiry::Idle => {
                debug!(listener, peer = %peer, idle_timeout = ?limits.idle_timeout, "idle connection closed")
            }
            Expiry::Displaced => {
                debug!(listener, peer = %peer, "connection that sent nothing closed to make room for a new one")
            }
        }
    }
}

/// What a connection's task, its socket and its service share: the phase of the
/// request cycle and when it began, read by the task to close it in time.
struct ConnectionWatch {
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `opened`.
    phase_began_ms: AtomicU64,
    /// An answer was sent: waiting now counts against `idle_timeout`, not `read_timeout`.
    answered: AtomicBool,
    opened: Instant,
    changed: Notify,
}

impl ConnectionWatch {
    fn new() -> ConnectionWatch {
        ConnectionWatch {
            phase: AtomicU8::new(Phase::Waiting as u8),
            phase_began_ms: AtomicU64::new(0),
            answered: AtomicBool::new(false),
            opened: Instant::now(),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn phase_began(&self) -> Instant {
        self.opened + Duration::from_millis(self.phase_began_ms.load(Ordering::Acquire))
    }

    /// Moves to `to` from `from` (any phase but `Displaced` when `None`); false when it
    /// was elsewhere.
    fn advance(&self, from: Option<Phase>, to: Phase) -> bool {
        let now_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let moved = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                let current = Phase::from_u8(current);
                let allowed = match from {
                    Some(from) => current == from,
                    None => current != Phase::Displaced,
                };
                allowed.then_some(to as u8)
            })
            .is_ok();
        if moved {
            self.phase_began_ms.store(now_ms, Ordering::Release);
            self.changed.notify_one();
        }
        moved
    }

    fn enter(&self, to: Phase) {
        self.advance(None, to);
    }

    /// The first bytes of a request arrived.
    fn bytes_arrived(&self) {
        if self.phase() == Phase::Waiting {
            self.advance(Some(Phase::Waiting), Phase::Receiving);
        }
    }

    /// The headers are in and the handler takes over: returns when the whole request
    /// must be in (its first byte plus `read_timeout`).
    fn request_received(&self, read_timeout: Duration) -> Instant {
        let started = match self.phase() {
            Phase::Receiving => self.phase_began(),
            _ => Instant::now(),
        };
        self.enter(Phase::Handling);
        started + read_timeout
    }

    /// The answer was written: the connection waits for its next request.
    fn answered(&self) {
        self.answered.store(true, Ordering::Release);
        self.enter(Phase::Waiting);
    }

    /// Closes a connection that has not sent a byte of its next request; false when it has.
    fn displace(&self) -> bool {
        self.advance(Some(Phase::Waiting), Phase::Displaced)
    }

    /// When the current phase runs out, and what that means.
    fn deadline(&self, limits: &HttpLimits) -> Option<(Instant, Expiry)> {
        let began = self.phase_began();
        match self.phase() {
            Phase::Waiting if self.answered.load(Ordering::Acquire) => {
                (!limits.idle_timeout.is_zero())
                    .then(|| (began + limits.idle_timeout, Expiry::Idle))
            }
            Phase::Waiting | Phase::Receiving => {
                Some((began + limits.read_timeout, Expiry::RequestNotReceived))
            }
            Phase::Handling => None,
            Phase::Responding => Some((began + limits.read_timeout, Expiry::AnswerNotTaken)),
            Phase::Displaced => Some((began, Expiry::Displaced)),
        }
    }
}

/// The socket, telling the watch when a request's first bytes arrive.
struct WatchedStream {
    stream: TcpStream,
    watch: Arc<ConnectionWatch>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that fails with [`RequestTimedOut`] once its deadline has passed.
struct DeadlineBody {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    read_timeout: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timed_out = RequestTimedOut {
                read_timeout: self.read_timeout,
            };
            return Poll::Ready(Some(Err(Box::new(timed_out))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body; once hyper has written it (and drops it) the connection waits
/// for its next request.
struct AnswerBody {
    body: Body,
    watch: Arc<ConnectionWatch>,
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.watch.answered();
    }
}

/// Warnings about a full listener and failing accepts, at most one per interval each,
/// with counts of what happened since the last one.
#[derive(Default)]
struct Warnings {
    full_warned: Option<Instant>,
    displaced: u64,
    refused: u64,
    accept_warned: Option<Instant>,
    accept_failures: u64,
}

fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < WARNING_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}

impl Warnings {
    fn full(&mut self, listening: &Listening, displaced: bool) {
        if displaced {
            self.displaced += 1;
        } else {
            self.refused += 1;
        }
        if due(&mut self.full_warned) {
            warn!(
                listener = %listening.name,
                max_connections = listening.limits.max_connections,
                closed_idle = self.displaced,
                refused = self.refused,
                "connection limit reached; idle connections closed to make room, or new ones refused when none was idle"
            );
            self.displaced = 0;
            self.refused = 0;
        }
    }

    fn accept_failed(&mut self, listener: &str, err: &io::Error) {
        self.accept_failures += 1;
        if due(&mut self.accept_warned) {
            error!(listener, error = %err, failures = self.accept_failures, "cannot accept connections; pausing");
            self.accept_failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            max_connections: 4,
            read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_new_connection_has_read_timeout_to_send_its_request() {
        let watch = ConnectionWatch::new();
        let (at, expiry) = watch.deadline(&limits()).unwrap();
        assert!(matches!(expiry, Expiry::RequestNotReceived));
        assert_eq!(at, watch.opened + Duration::from_secs(2));
    }

    #[test]
    fn the_body_must_be_in_within_read_timeout_of_the_first_byte() {
        let watch = ConnectionWatch::new();
        watch.bytes_arrived();
        assert_eq!(watch.phase(), Phase::Receiving);
        let first_byte = watch.phase_began();
        let deadline = watch.request_received(Duration::from_secs(2));
        assert_eq!(deadline, first_byte + Duration::from_secs(2));
        assert!(
            watch.deadline(&limits()).is_none(),
            "the handler is not timed"
        );
    }

    #[test]
    fn an_answered_connection_waits_idle_timeout_and_can_be_displaced() {
        let watch = ConnectionWatch::new();
        watch.bytes_arrived();
        assert!(!watch.displace(), "a connection receiving a request stays");
        watch.request_received(Duration::from_secs(2));
        watch.enter(Phase::Responding);
        assert!(matches!(
            watch.deadline(&limits()),
            Some((_, Expiry::AnswerNotTaken))
        ));
        watch.answered();
        let (at, expiry) = watch.deadline(&limits()).unwrap();
        assert!(matches!(expiry, Expiry::Idle));
        assert_eq!(at, watch.phase_began() + Duration::from_secs(5));
        assert!(watch.displace());
        watch.bytes_arrived();
        watch.enter(Phase::Handling);
        assert_eq!(watch.phase(), Phase::Displaced, "displaced is final");
    }

    #[test]
    fn closed_connections_are_forgotten_and_the_oldest_idle_one_is_displaced_first() {
        let mut open = VecDeque::new();
        for _ in 0..100 {
            let closed = Arc::new(ConnectionWatch::new());
            remember(&mut open, &closed, 4);
        }
        assert!(
            open.len() <= 8,
            "{} closed connections remembered",
            open.len()
        );
        let (busy, oldest_idle, newest_idle) = (
            Arc::new(ConnectionWatch::new()),
            Arc::new(ConnectionWatch::new()),
            Arc::new(ConnectionWatch::new()),
        );
        busy.bytes_arrived();
        for watch in [&busy, &oldest_idle, &newest_idle] {
            remember(&mut open, watch, 4);
        }
        assert!(displace_oldest_idle(&mut open));
        assert_eq!(open.len(), 3, "closed connections are dropped");
        assert_eq!(busy.phase(), Phase::Receiving);
        assert_eq!(oldest_idle.phase(), Phase::Displaced);
        assert_eq!(newest_idle.phase(), Phase::Waiting);
        newest_idle.bytes_arrived();
        assert!(!displace_oldest_idle(&mut open), "every connection is busy");
    }

    #[test]
    fn a_timeout_is_found_inside_the_errors_that_wrap_it() {
        let timed_out = RequestTimedOut {
            read_timeout: Duration::from_secs(2),
        };
        let wrapped = axum::Error::new(Box::new(timed_out) as axum::BoxError);
        let found = RequestTimedOut::in_chain(&wrapped).unwrap();
        assert_eq!(found.read_timeout, Duration::from_secs(2));
        assert!(RequestTimedOut::in_chain(&io::Error::other("reset")).is_none());
    }
}

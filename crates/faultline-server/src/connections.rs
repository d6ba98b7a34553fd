//! The HTTP/1.1 connection layer: accepting connections up to a cap, the deadlines that close
//! connections whose clients stall, and the graceful close at shutdown.
//!
//! axum's own `serve` has none of the limits a service facing untrusted clients needs: a
//! client trickling a request head one byte a second, or holding an idle keep-alive
//! connection, kept it open for as long as it liked. So the server runs hyper's HTTP/1
//! connections itself:
//!
//! - **At most [`Limits::max_connections`] open.** Past the cap the accept loop stops
//!   accepting: new connections wait in the kernel's backlog (their clients see a slow
//!   connect, not a refusal) and the open ones are served as before; the idle keep-alive
//!   ones (nothing in flight) are closed, so that new clients get their slots.
//! - **Deadlines**, by what the connection is waiting for from its client (see [`Phase`]):
//!   a request head must be complete within [`Limits::header_timeout`] of its first byte (of
//!   the connection's opening, for the first request); a request body must keep arriving at
//!   [`Limits::body_min_rate`] bytes a second after a first `header_timeout` of slack; a
//!   keep-alive connection with no request in flight is closed after
//!   [`Limits::idle_timeout`]. While a request is handled, or its answer is sent (a live
//!   stream for hours), the client owes nothing and no deadline runs. A connection past its
//!   deadline is dropped, which closes the socket; its request, if any, sees its body end in
//!   an error.
//! - **Load shedding** ([`crate::load_shedding`]): a request past the concurrency cap is
//!   answered here, before any middleware.
//! - **Shutdown**: the accept loop stops, and every connection is asked to close once its
//!   current answer is sent (idle ones close at once); [`crate::serve`] bounds the wait.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::load_shedding::Admission;

/// What the connection layer enforces; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Bytes a second; 0 turns the floor off.
    pub body_min_rate: u64,
    pub max_connections: usize,
}

/// Serve `app` on `listener` until `shutdown` completes; then stop accepting, ask every
/// connection to close after its current answer, and return once all have closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    admission: Arc<Admission>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Asks the idle keep-alive connections to close when every slot is taken.
    let at_capacity = Arc::new(tokio::sync::Notify::new());
    loop {
        // A slot first: past the cap, connections wait in the backlog rather than being
        // accepted and then starved. At the cap, connections with nothing in flight give
        // theirs up, so that clients holding idle connections cannot keep new ones out.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                at_capacity.notify_waiters();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Reap the connections that ended, so that the set does not grow with every one.
        while connections.try_join_next().is_some() {}
        let _ = socket.set_nodelay(true);
        let (app, admission, closing) = (app.clone(), admission.clone(), closing.clone());
        let at_capacity = at_capacity.clone();
        connections.spawn(async move {
            metrics::gauge!("faultline_connections_open").increment(1.0);
            serve_connection(socket, remote, app, limits, admission, closing, at_capacity).await;
            metrics::gauge!("faultline_connections_open").decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// An error from `accept`. Most are about one connection (it was reset before it was
/// accepted) and the next accept succeeds; running out of file descriptors is not, and
/// retrying at once would spin, so it waits a little.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    // Once a minute at most: out of file descriptors, this would otherwise be ten lines a second.
    static LAST_WARNED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    {
        let mut last = LAST_WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(
                error = %err,
                "cannot accept connections; retrying every 100 ms (if out of file descriptors: \
                 raise `ulimit -n` or lower --max-connections)"
            );
        }
    }
    metrics::counter!("faultline_accept_errors_total").increment(1);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection(
    socket: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: Limits,
    admission: Arc<Admission>,
    mut closing: tokio::sync::watch::Receiver<bool>,
    at_capacity: Arc<tokio::sync::Notify>,
) {
    let watch = Arc::new(Watch::new());
    let io = hyper_util::rt::TokioIo::new(WatchedIo { inner: socket, watch: watch.clone() });
    let service = {
        let watch = watch.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            watch.request_began(hyper::body::Body::is_end_stream(request.body()));
            request.extensions_mut().insert(ConnectInfo(remote));
            let request = request.map(|body| Body::new(WatchedBody { inner: body, watch: watch.clone() }));
            let (app, admission, watch) = (app.clone(), admission.clone(), watch.clone());
            async move {
                let response = match admission.admit(&request) {
                    Ok(slot) => {
                        let response = app.oneshot(request).await.unwrap_or_else(|never| match never {});
                        drop(slot);
                        response
                    }
                    Err(overloaded) => *overloaded,
                };
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| AnsweredBody { inner: body, watch: Some(watch) }),
                )
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        // The deadlines below replace hyper's header timeout, which would also close idle
        // keep-alive connections after the header timeout.
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let check_every = (limits.header_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut asked_to_close = false;
    loop {
        let wake = match watch.deadline(&limits) {
            Some((deadline, _)) => deadline.min(Instant::now() + check_every),
            None => Instant::now() + check_every,
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, %remote, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {
                if let Some((deadline, reason)) = watch.deadline(&limits)
                    && deadline <= Instant::now()
                {
                    tracing::debug!(%remote, reason, "closing a connection past its deadline");
                    metrics::counter!("faultline_connections_cut_total", "reason" => reason).increment(1);
                    return;
                }
            }
            _ = closing.changed(), if !asked_to_close => {
                asked_to_close = true;
                connection.as_mut().graceful_shutdown();
            }
            () = at_capacity.notified() => {
                if watch.idle() {
                    tracing::debug!(%remote, "closing an idle connection: every connection slot is taken");
                    metrics::counter!("faultline_connections_cut_total", "reason" => "idle_at_capacity")
                        .increment(1);
                    return;
                }
            }
        }
    }
}

/// What a connection waits for from its client, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in flight and no byte of the next one.
    Idle(Instant),
    /// Part of a request head.
    Head(Instant),
    /// The rest of a request body, of which `received` bytes came.
    Body { since: Instant, received: u64 },
    /// Nothing: a request is being handled or answered.
    Busy,
}

/// A connection's [`Phase`] and how many of its requests are unanswered, shared by its
/// socket, its request bodies, its answers and its deadline loop.
struct Watch(Mutex<(Phase, usize)>);

impl Watch {
    fn new() -> Watch {
        // The first request head is due within the header timeout of the connection opening.
        Watch(Mutex::new((Phase::Head(Instant::now()), 0)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, usize)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bytes_read(&self) {
        let mut state = self.lock();
        if let Phase::Idle(_) = state.0 {
            state.0 = Phase::Head(Instant::now());
        }
    }

    fn request_began(&self, without_body: bool) {
        let mut state = self.lock();
        state.1 += 1;
        state.0 = if without_body { Phase::Busy } else { Phase::Body { since: Instant::now(), received: 0 } };
    }

    fn body_bytes(&self, n: usize) {
        if let Phase::Body { received, .. } = &mut self.lock().0 {
            *received += n as u64;
        }
    }

    fn body_ended(&self) {
        let mut state = self.lock();
        if let Phase::Body { .. } = state.0 {
            state.0 = Phase::Busy;
        }
    }

    fn request_answered(&self) {
        let mut state = self.lock();
        state.1 = state.1.saturating_sub(1);
        if state.1 == 0 {
            state.0 = Phase::Idle(Instant::now());
        }
    }

    /// Whether nothing is in flight and nothing of a next request has come.
    fn idle(&self) -> bool {
        matches!(self.lock().0, Phase::Idle(_))
    }

    /// When the connection is to be closed if nothing changes, and why.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        match self.lock().0 {
            Phase::Idle(since) => Some((since + limits.idle_timeout, "idle_timeout")),
            Phase::Head(since) => Some((since + limits.header_timeout, "header_timeout")),
            Phase::Body { since, received } if limits.body_min_rate > 0 => {
                let allowed = Duration::from_secs_f64(received as f64 / limits.body_min_rate as f64);
                Some((since + limits.header_timeout + allowed, "body_too_slow"))
            }
            Phase::Body { .. } | Phase::Busy => None,
        }
    }
}

/// The socket, noting when bytes arrive (the start of a request head).
struct WatchedIo {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.bytes_read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body, counting what arrives against the floor rate until it ends or is dropped.
struct WatchedBody {
    inner: Incoming,
    watch: Arc<Watch>,
}

impl hyper::body::Body for WatchedBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.watch.body_bytes(data.len());
                }
                if this.inner.is_end_stream() {
                    this.watch.body_ended();
                }
            }
            Poll::Ready(_) => this.watch.body_ended(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.watch.body_ended();
    }
}

/// An answer's body: when it is sent (or dropped), its request is answered.
struct AnsweredBody {
    inner: Body,
    watch: Option<Arc<Watch>>,
}

impl AnsweredBody {
    fn answered(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.request_answered();
        }
    }
}

impl hyper::body::Body for AnsweredBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.answered();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnsweredBody {
    fn drop(&mut self) {
        self.answered();
    }
}

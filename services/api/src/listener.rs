//! What both listeners do against slow, idle and too many clients: a process-wide cap
//! on open connections and a cap per client address (checked before any TLS handshake
//! or parsing), and a watch on every connection that closes it when it goes quiet for
//! too long (a client that connects and sends nothing, or half a request, or stops
//! reading its answers). Timeouts of headers and requests are set where the protocol
//! is spoken (`http::serve`, `grpc::serve`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::metrics::ConnectionMetrics;

/// The limits of both listeners (`noroshi serve --help`, README "Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers, counted from when the
    /// connection is ready for the request (just opened, or its previous answer sent);
    /// also the longest a new connection may stay quiet before its first
    /// [`OPENING_BYTES`].
    pub header_read_timeout: Duration,
    /// Longest a connection may go without a byte read or written while it waits on
    /// the network (live streams send a heartbeat well within it). Longer than
    /// `request_timeout`, so that a request is answered before its connection is cut.
    pub idle_timeout: Duration,
    /// Longest one request may take, from its headers to its answer's headers (a live
    /// stream counts until it starts).
    pub request_timeout: Duration,
    /// Connections one client address may hold open at once, over both listeners;
    /// 0: no cap (behind a load balancer every client has its address).
    pub per_address: usize,
    /// Connections the process holds open at once, over both listeners.
    pub total: usize,
}

/// How long an HTTP/2 connection's answer to a ping may take (pings are sent every
/// [`ConnectionLimits::heartbeat`], so that a connection with quiet streams never looks
/// idle).
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Most requests one HTTP/2 connection may have in flight at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Bytes a client sends first on any connection: an HTTP/2 preface's length, and less
/// than any HTTP/1.1 request.
pub const OPENING_BYTES: usize = 24;

/// Limits that cannot work together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("--header-read-timeout, --idle-timeout and --request-timeout must be above zero")]
    Zero,
    #[error(
        "--idle-timeout ({idle:?}) must be longer than --request-timeout ({request:?}): a request's connection would be cut before its answer"
    )]
    IdleBelowRequest { idle: Duration, request: Duration },
    #[error("--max-connections must be above zero")]
    NoConnections,
}

impl ConnectionLimits {
    /// The limits, if they can work together.
    pub fn checked(self) -> Result<Self, LimitsError> {
        if [
            self.header_read_timeout,
            self.idle_timeout,
            self.request_timeout,
        ]
        .contains(&Duration::ZERO)
        {
            return Err(LimitsError::Zero);
        }
        if self.idle_timeout <= self.request_timeout {
            return Err(LimitsError::IdleBelowRequest {
                idle: self.idle_timeout,
                request: self.request_timeout,
            });
        }
        if self.total == 0 {
            return Err(LimitsError::NoConnections);
        }
        Ok(self)
    }

    /// How often a live stream with nothing to send sends a heartbeat: a quarter of the
    /// idle timeout, at most 15 s and at least 1 s.
    pub fn heartbeat(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            per_address: 256,
            total: 16_384,
        }
    }
}

/// Admits connections within [`ConnectionLimits`]; one per process, shared by both
/// listeners.
#[derive(Debug)]
pub struct Admission {
    limits: ConnectionLimits,
    open: Mutex<Open>,
    metrics: ConnectionMetrics,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open: the map is bounded by `total`.
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already holds `per_address` connections.
    PerAddress,
    /// The process already holds `total` connections.
    Total,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Total => "total",
        }
    }
}

impl Admission {
    pub fn new(limits: ConnectionLimits, metrics: ConnectionMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::default(),
            metrics,
        })
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// The next connection on `listener` (named `name` in metrics) that is admitted,
    /// with Nagle's algorithm off (responses and live events are small writes, and
    /// holding one back for the peer's delayed ACK adds tens of milliseconds), under
    /// watch. Connections refused are closed; errors accepting are logged and, when
    /// they are not the peer's (such as running out of descriptors), waited out a
    /// moment rather than spun on.
    pub async fn accept(
        self: &Arc<Self>,
        listener: &TcpListener,
        name: &'static str,
    ) -> (Watched<TcpStream>, SocketAddr) {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) if peer_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.admit(addr.ip(), name) else {
                continue;
            };
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(error = %error, "TCP_NODELAY not set");
            }
            return (Watched::new(tcp, permit), addr);
        }
    }

    /// A permit for a connection from `address` on `listener`, held as long as the
    /// connection is open; or why there is none.
    pub fn admit(
        self: &Arc<Self>,
        address: IpAddr,
        listener: &'static str,
    ) -> Result<Permit, Refusal> {
        let refused = {
            let mut open = self
                .open
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let from_address = open.by_address.get(&address).copied().unwrap_or(0);
            if open.total >= self.limits.total {
                Some(Refusal::Total)
            } else if self.limits.per_address > 0 && from_address >= self.limits.per_address {
                Some(Refusal::PerAddress)
            } else {
                open.total += 1;
                open.by_address.insert(address, from_address + 1);
                None
            }
        };
        if let Some(refusal) = refused {
            self.metrics.refused(listener, refusal.as_str());
            tracing::debug!(peer = %address, listener, reason = refusal.as_str(), "connection refused");
            return Err(refusal);
        }
        self.metrics.opened(listener);
        Ok(Permit {
            admission: self.clone(),
            address,
            listener,
        })
    }
}

/// Errors of one connection (the peer gave up before it was accepted), not of the
/// listener.
fn peer_error(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    address: IpAddr,
    listener: &'static str,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let admission = &self.admission;
        {
            let mut open = admission
                .open
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            open.total = open.total.saturating_sub(1);
            if let Some(count) = open.by_address.get_mut(&self.address) {
                *count -= 1;
                if *count == 0 {
                    open.by_address.remove(&self.address);
                }
            }
        }
        admission.metrics.closed(self.listener);
    }
}

/// A connection under watch: until the client has sent its first [`OPENING_BYTES`] it
/// may stay quiet for `header_read_timeout` at a time, afterwards for `idle_timeout`;
/// a read or write that waits longer fails with `TimedOut`, which closes the
/// connection. It holds the connection's [`Permit`].
#[derive(Debug)]
pub struct Watched<Io> {
    io: Io,
    deadline: Pin<Box<Sleep>>,
    quiet: Duration,
    idle_timeout: Duration,
    received: usize,
    permit: Permit,
}

impl<Io> Watched<Io> {
    pub fn new(io: Io, permit: Permit) -> Self {
        let limits = permit.admission.limits;
        Self {
            io,
            deadline: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
            quiet: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            received: 0,
            permit,
        }
    }

    pub fn get_ref(&self) -> &Io {
        &self.io
    }

    fn progressed(&mut self) {
        let deadline = Instant::now() + self.quiet;
        self.deadline.as_mut().reset(deadline);
    }

    fn read(&mut self, bytes: usize) {
        if self.received < OPENING_BYTES {
            self.received += bytes;
            if self.received >= OPENING_BYTES {
                self.quiet = self.idle_timeout;
            }
        }
        self.progressed();
    }

    /// Called when the inner IO is not ready: whether the connection has been quiet
    /// too long (the timer wakes the connection's task when it runs out).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let timeout = self.quiet;
                self.permit
                    .admission
                    .metrics
                    .timed_out(self.permit.listener);
                tracing::debug!(
                    peer = %self.permit.address,
                    listener = self.permit.listener,
                    received = self.received,
                    timeout = ?timeout,
                    "connection closed: quiet too long"
                );
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no bytes moved for {timeout:?}"),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read(buf.filled().len() - before);
                Poll::Ready(result)
            }
            Poll::Pending => this.timed_out(cx).map(Err),
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.timed_out(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.timed_out(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.timed_out(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn admission(per_address: usize, total: usize) -> Arc<Admission> {
        Admission::new(
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(10),
                per_address,
                total,
                ..ConnectionLimits::default()
            },
            ConnectionMetrics::default(),
        )
    }

    #[test]
    fn caps_per_address_and_in_total_and_frees_places_on_drop() {
        let admission = admission(2, 3);
        let (a, b, c) = (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
        );
        let first = admission.admit(a, "http").unwrap();
        let _second = admission.admit(a, "grpc").unwrap();
        assert_eq!(admission.admit(a, "http").unwrap_err(), Refusal::PerAddress);
        let _third = admission.admit(b, "http").unwrap();
        assert_eq!(admission.admit(c, "http").unwrap_err(), Refusal::Total);
        drop(first);
        let _fourth = admission.admit(c, "http").unwrap();
        assert_eq!(admission.admit(a, "http").unwrap_err(), Refusal::Total);
        let open = admission.open.lock().unwrap();
        assert_eq!(open.total, 3);
        assert_eq!(open.by_address.len(), 3);
    }

    #[test]
    fn forgets_addresses_with_nothing_open() {
        let admission = admission(0, 10);
        let permits: Vec<_> = (0..5)
            .map(|i| admission.admit(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i)), "http"))
            .collect::<Result<_, _>>()
            .unwrap();
        drop(permits);
        let open = admission.open.lock().unwrap();
        assert_eq!(open.total, 0);
        assert!(open.by_address.is_empty());
    }

    #[test]
    fn limits_that_cannot_work_together_are_refused() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.checked(), Ok(limits));
        let cut_short = ConnectionLimits {
            idle_timeout: limits.request_timeout,
            ..limits
        };
        assert!(matches!(
            cut_short.checked(),
            Err(LimitsError::IdleBelowRequest { .. })
        ));
        let zero = ConnectionLimits {
            header_read_timeout: Duration::ZERO,
            ..limits
        };
        assert_eq!(zero.checked(), Err(LimitsError::Zero));
        assert_eq!(
            ConnectionLimits { total: 0, ..limits }.checked(),
            Err(LimitsError::NoConnections)
        );
        assert_eq!(limits.heartbeat(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_new_connection_times_out_sooner_than_an_opened_one() {
        let admission = admission(0, 10);
        let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Half an opening, then nothing: closed after header_read_timeout, though the
        // server wrote meanwhile (an HTTP/2 server's settings).
        let (server, mut client) = tokio::io::duplex(64);
        let mut watched = Watched::new(server, admission.admit(address, "grpc").unwrap());
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut opening = [0u8; 16];
        watched.read_exact(&mut opening).await.unwrap();
        watched.write_all(b"settings").await.unwrap();
        let started = Instant::now();
        let error = watched.read_u8().await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(watched);

        // Opened: the idle timeout applies from then on, and every byte read or
        // written starts it again.
        let (server, mut client) = tokio::io::duplex(64);
        let mut watched = Watched::new(server, admission.admit(address, "http").unwrap());
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut read = vec![0u8; request.len()];
        watched.read_exact(&mut read).await.unwrap();
        tokio::time::sleep(Duration::from_secs(9)).await;
        watched.write_all(b"HTTP/1.1 200 OK").await.unwrap();
        tokio::time::sleep(Duration::from_secs(9)).await;
        client.write_all(b"T").await.unwrap();
        assert_eq!(watched.read_u8().await.unwrap(), b'T');
        let started = Instant::now();
        let error = watched.read_u8().await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(watched);
        assert_eq!(admission.open.lock().unwrap().total, 0);
    }
}

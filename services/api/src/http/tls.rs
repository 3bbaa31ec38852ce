//! The HTTP listener over TLS, and the peer it tells handlers about.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::auth::TlsPeer;
use crate::listener::{Admission, Watched};

impl Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A listener that hands out TLS connections once their handshake is done; handshakes
/// run concurrently, so a slow client holds up nobody else.
#[derive(Debug)]
pub struct TlsListener {
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<Watched<TcpStream>>, TlsPeer)>,
    local: SocketAddr,
}

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        config: rustls::ServerConfig,
        admission: Arc<Admission>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, accepted) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // Admitted before the handshake, the costly part.
                let (tcp, addr) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = admission.accept(&listener, "http") => accepted,
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let certificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|certs| certs.first())
                                .map(|cert| Arc::new(cert.to_vec()));
                            let peer = TlsPeer { addr, certificate };
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(peer = %addr, error = %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<Watched<TcpStream>>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped at shutdown: no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local,
            certificate: None,
        })
    }
}

//! A TCP proxy that a test can cut, to take a real server away from the code under test
//! (a crashed database, a network partition) and bring it back.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Forwards connections from [`TcpProxy::addr`] to a target. Cutting it resets every
/// open connection and closes its port, so that connecting is refused as when the
/// server is down, until it is restored on the same port.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// Bumped on every cut; open connections end when it changes.
    cuts: watch::Sender<u64>,
    /// Stops the accept loop that owns the listening socket.
    listening: Mutex<Option<CancellationToken>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = Self {
            addr,
            target,
            cuts: watch::channel(0).0,
            listening: Mutex::new(None),
        };
        proxy.listen(listener);
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resets every open connection and refuses new ones.
    pub fn cut(&self) {
        if let Some(listening) = self.listening.lock().expect("proxy lock").take() {
            listening.cancel();
        }
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Listens on the same port again.
    pub async fn restore(&self) {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 100 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(error) => panic!("cannot listen on {} again: {error}", self.addr),
            }
        };
        self.listen(listener);
    }

    fn listen(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        let target = self.target;
        let cuts = self.cuts.clone();
        *self.listening.lock().expect("proxy lock") = Some(token.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                if token.is_cancelled() {
                    return;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                    // Dropping both ends resets the connection for the code under test.
                });
            }
        });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

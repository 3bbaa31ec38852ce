//! A private nats-server per test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use noroshi_event_store::RecordedEvent;
use noroshi_event_store::wire::decode_event;
use tempfile::TempDir;

/// A nats-server with JetStream on a loopback port of its own choosing, with its own
/// store directory.
///
/// The server binds a random port itself (`port: -1`) and writes it to a ports file,
/// which is read back: no port is picked, released and bound again, so no other process
/// can take it in between. A restart binds the port it had.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    /// Known once the server has started.
    port: Option<u16>,
    max_payload: usize,
    dir: TempDir,
}

fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("NOROSHI_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

impl NatsServer {
    /// Starts a server that accepts messages of up to 2 MiB, as `ops/nats/` configures.
    pub async fn start() -> Self {
        Self::with_max_payload(2 * 1024 * 1024).await
    }

    pub async fn with_max_payload(max_payload: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("noroshi-nats-")
            .tempdir()
            .expect("temp dir for nats-server");
        let mut server = Self {
            child: None,
            port: None,
            max_payload,
            dir,
        };
        server.launch().await;
        server
    }

    /// Writes the configuration: the known port, or a random one (`-1`).
    fn configure(&self) -> PathBuf {
        let config = self.dir.path().join("nats.conf");
        let port = self.port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        std::fs::write(
            &config,
            format!(
                "host: 127.0.0.1\nport: {port}\nmax_payload: {}\n\
                 jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n",
                self.max_payload,
                self.dir.path().join("jetstream").display()
            ),
        )
        .expect("write nats config");
        config
    }

    /// The client port the server `pid` wrote to its ports file, once it has.
    async fn bound_port(&self, pid: u32) -> u16 {
        let file = self.dir.path().join(format!("nats-server_{pid}.ports"));
        let mut port = None;
        crate::eventually(
            "nats-server to write its ports file",
            Duration::from_secs(15),
            || {
                port = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .and_then(|ports| {
                        ports["nats"][0]
                            .as_str()
                            .and_then(|url| url.rsplit_once(':'))
                            .and_then(|(_, port)| port.parse().ok())
                    });
                std::future::ready(port.is_some())
            },
        )
        .await;
        port.expect("a port")
    }

    async fn launch(&mut self) {
        let config = self.configure();
        let log =
            std::fs::File::create(self.dir.path().join("nats-server.log")).expect("nats log file");
        let binary = server_binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("--ports_file_dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); run ops/test or set NOROSHI_NATS_SERVER",
                    binary.display()
                )
            });
        let pid = child.id();
        self.child = Some(child);
        if self.port.is_none() {
            self.port = Some(self.bound_port(pid).await);
        }
        let url = self.url();
        crate::eventually(
            "nats-server to accept clients",
            Duration::from_secs(15),
            || {
                let url = url.clone();
                // The server accepts clients only once JetStream is up.
                async move {
                    let connect = async_nats::ConnectOptions::new()
                        .connection_timeout(Duration::from_millis(500))
                        .connect(url);
                    matches!(
                        tokio::time::timeout(Duration::from_secs(1), connect).await,
                        Ok(Ok(_))
                    )
                }
            },
        )
        .await;
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port.unwrap_or_default())
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to test nats-server")
    }

    /// Shuts the server down gracefully (SIGTERM) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .expect("join")
                .expect("wait for nats-server");
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every message of a JetStream stream, in stream order, decoded as events.
pub async fn read_all_events(client: &async_nats::Client, stream: &str) -> Vec<RecordedEvent> {
    let context = jetstream::new(client.clone());
    let mut stream = context
        .get_stream(stream)
        .await
        .expect("open jetstream stream");
    let state = stream.info().await.expect("stream info").state.clone();
    let mut events = Vec::with_capacity(usize::try_from(state.messages).unwrap_or_default());
    if state.messages == 0 {
        return events;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.expect("get message");
        events.push(decode_event(&message.headers, message.payload).expect("a noroshi event"));
    }
    events
}

//! Server-Sent Events over real HTTP, as a browser's `EventSource` receives them.

use std::time::Duration;

use serde_json::Value;

use crate::api::{Actor, TestApi};

/// A Server-Sent Events subscription over real HTTP.
#[derive(Debug)]
pub struct Events {
    body: hyper::body::Incoming,
    buffer: String,
}

impl Events {
    pub async fn open(api: &TestApi, actor: Actor, path: &str) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let request = http::Request::get(format!("http://{}{path}", api.http_addr))
            .header("authorization", format!("Bearer {}", actor.token))
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE stream"
        );
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event and its JSON data; `None` if none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        use http_body_util::BodyExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                match name {
                    Some(name) => return Some((name, serde_json::from_str(&data).unwrap())),
                    None => continue, // a keep-alive comment
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

//! Slow, idle and too many clients on both listeners: connections beyond an address's
//! cap or the process's cap are closed at once, connections that send half a request
//! (or half an HTTP/2 preface) are closed after the header-read timeout, a request whose
//! body stalls is answered 503 after the request timeout, and through all of it real
//! clients are served and the server's open connections stay within its cap. Live
//! streams with nothing to say stay open past the idle timeout (heartbeats, pings).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use noroshi_api::listener::ConnectionLimits;
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{ApiOptions, HOSPITAL, HQ, TestApi, authed};
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::sse::Events;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Caps small enough to reach, and a header-read timeout longer than it takes to open
/// a few thousand connections, so that none is closed before the test counts them.
const CAPS: ConnectionLimits = ConnectionLimits {
    header_read_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(20),
    request_timeout: Duration::from_secs(15),
    per_address: 40,
    total: 600,
};

/// Short timeouts.
const TIMEOUTS: ConnectionLimits = ConnectionLimits {
    header_read_timeout: Duration::from_secs(2),
    idle_timeout: Duration::from_secs(6),
    request_timeout: Duration::from_secs(3),
    per_address: 40,
    total: 600,
};

async fn api(limits: ConnectionLimits) -> TestApi {
    // The test holds a few thousand sockets of its own.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the descriptor limit");
    let api = TestApi::with(ApiOptions {
        connections: limits,
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    api
}

/// A connection from `source` (any 127.0.0.0/8 address is this machine) to `to`.
async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(to).await
}

/// Opens `count` connections from `source` to `to` and writes `half` on each; those
/// the server closed at once are dropped, the rest returned.
async fn hold(source: Ipv4Addr, to: SocketAddr, count: usize, half: &[u8]) -> Vec<TcpStream> {
    let attempts = (0..count).map(|_| async move {
        let mut stream = connect_from(source, to).await.ok()?;
        stream.write_all(half).await.ok()?;
        // A refused connection is closed by the server straight after the accept; an
        // admitted HTTP/2 one may get the server's settings.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => None,
            Ok(Ok(_)) | Err(_) => Some(stream),
        }
    });
    futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether the server closes `stream` within `wait` without answering: reads return
/// end of file or a reset.
async fn closed_by_server(mut stream: TcpStream, wait: Duration) -> bool {
    let mut buffer = [0u8; 256];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read).await.unwrap_or(false)
}

/// A metric's value summed over its label sets (0 when absent).
async fn metric(api: &TestApi, name: &str, labels: &str) -> f64 {
    let answer = api
        .http_request(http::Method::GET, "/metrics", &[], Vec::new())
        .await;
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Real clients from 127.0.0.1: the bed board over HTTP and gRPC.
async fn served(api: &TestApi) {
    for _ in 0..5 {
        let (status, body) = api.http_get(Some(HQ), "/api/v1/views/bed_board").await;
        assert_eq!(status, 200, "{body}");
        api.views()
            .get_bed_board(authed(HQ, pb::GetBedBoardRequest::default()))
            .await
            .expect("a gRPC read");
    }
}

#[tokio::test]
async fn slow_clients_are_capped_and_closed_and_real_ones_still_served() {
    let api = api(CAPS).await;
    served(&api).await;
    let (http, grpc) = (api.http_addr, api.addr);

    // One address opens 1,500 connections to each listener, each with half a request:
    // it keeps its 40, the rest are closed at once.
    let half_request: &[u8] = b"GET /api/v1/views/bed_board HT";
    let half_preface: &[u8] = b"PRI * HTTP/2.0\r\n";
    let one = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = hold(one, http, 1500, half_request).await;
    held.extend(hold(one, grpc, 1500, half_preface).await);
    assert_eq!(held.len(), 40, "the address's cap over both listeners");
    assert!(
        metric(&api, "noroshi_connections_refused_total", "per_address").await >= 2900.0,
        "the refusals are counted"
    );
    served(&api).await;

    // Thirty addresses with 30 connections each: the process's cap of 600 holds. (While
    // it is full, new connections from anywhere are refused, real ones too, until the
    // header-read timeout frees the slow ones' places: the cap keeps the process's
    // descriptors, the timeout keeps the wait short.)
    let mut waves = Vec::new();
    for last in 1..=30u8 {
        let source = Ipv4Addr::new(127, 0, 1, last);
        let (to, half) = if last % 2 == 0 {
            (http, half_request)
        } else {
            (grpc, half_preface)
        };
        waves.push(hold(source, to, 30, half));
    }
    let waves = futures_util::future::join_all(waves).await;
    held.extend(waves.into_iter().flatten());
    let held_count = held.len();
    assert!(held_count <= 600, "{held_count} held, beyond the cap");

    // Every half request is closed by the server: none is ever answered.
    let closes = held
        .into_iter()
        .map(|stream| closed_by_server(stream, Duration::from_secs(30)));
    let closed = futures_util::future::join_all(closes).await;
    assert!(
        closed.iter().all(|closed| *closed),
        "{} of {} slow connections still open",
        closed.iter().filter(|closed| !**closed).count(),
        closed.len()
    );
    assert!(metric(&api, "noroshi_connections_timed_out_total", "listener").await >= 1.0);
    let refused_total = metric(&api, "noroshi_connections_refused_total", "\"total\"").await;
    assert!(
        held_count + refused_total as usize >= 940,
        "{held_count} held and {refused_total} refused for the cap, of 940"
    );

    // The real clients again, and nothing left over: the server's descriptors for
    // client connections are back to the few real ones.
    served(&api).await;
    let open = metric(&api, "noroshi_connections_open", "listener").await;
    assert!(open <= 8.0, "{open} connections still open");
}

#[tokio::test]
async fn a_stalled_body_is_answered_and_a_dribbled_header_closed_but_quiet_streams_stay() {
    let nats = NatsServer::start().await;
    let api = api(TIMEOUTS).await;
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    let sse = Events::open(&api, HOSPITAL, "/api/v1/views/bed_board/stream").await;
    let mut sse = sse;
    sse.next(Duration::from_secs(10))
        .await
        .expect("the snapshot");
    let mut grpc = api
        .views()
        .watch_bed_board(authed(HOSPITAL, pb::GetBedBoardRequest::default()))
        .await
        .expect("a gRPC watch")
        .into_inner();
    grpc.message().await.unwrap().expect("the snapshot");

    // Headers dribbled one byte every half second: closed by the header-read timeout,
    // though bytes keep coming.
    let mut dribbler = TcpStream::connect(api.http_addr).await.unwrap();
    let dribble = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if dribbler.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(30), dribble)
            .await
            .is_ok(),
        "a dribbled header is cut off"
    );

    // A command whose body stops halfway: 503, naming the limit, once the request
    // timeout runs out.
    let mut stalled = TcpStream::connect(api.http_addr).await.unwrap();
    let head = format!(
        "POST /api/v1/commands/DeclareCapacity HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{{\"command_id\":",
        HOSPITAL.token
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stalled.read_to_end(&mut answer));
    let _ = read.await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("took longer than 3 s"), "{answer}");

    // Both live streams outlived the idle timeout with nothing to say; a declaration
    // still reaches them.
    tokio::time::sleep(TIMEOUTS.idle_timeout + Duration::from_secs(2)).await;
    api.declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 9, 9, 2)
        .await;
    let (name, delta) = sse
        .next(Duration::from_secs(10))
        .await
        .expect("the SSE stream is still open");
    assert_eq!(name, "delta", "{delta}");
    let update = tokio::time::timeout(Duration::from_secs(10), grpc.message())
        .await
        .expect("the gRPC stream is still open")
        .expect("no error")
        .expect("an update");
    assert!(
        matches!(update.update, Some(pb::bed_board_update::Update::Delta(_))),
        "{update:?}"
    );
}

//! TLS on both listeners, and client certificates from the deployment's own CA: a
//! certificate authenticates its organisation's terminal, binds the connection to that
//! organisation, and nothing from another CA gets in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http_body_util::BodyExt;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, FacilityKind, PrincipalId};
use noroshi_identity::certificates::{self, ClientCertificates, IssuedPem, TlsFiles};
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{Actor, HOSPITAL, HQ, TestApi, declare_request};
use pb::facility_service_client::FacilityServiceClient;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The CA, a server certificate for `localhost` and `127.0.0.1`, and a second,
/// unrelated CA.
struct Pki {
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    rogue: std::path::PathBuf,
    server: TlsFiles,
}

fn pki(mode: ClientCertificates) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let rogue = dir.path().join("rogue");
    certificates::init_ca(&ca).unwrap();
    certificates::init_ca(&rogue).unwrap();
    // A second init never overwrites a CA.
    assert!(certificates::init_ca(&ca).is_err());
    let server =
        certificates::issue_server(&ca, &["localhost".into(), "127.0.0.1".into()], 30).unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server-key.pem");
    std::fs::write(&cert, &server.cert_pem).unwrap();
    std::fs::write(&key, &server.key_pem).unwrap();
    let server = TlsFiles {
        cert,
        key,
        client_ca: Some(ca.join(certificates::CA_CERT)),
        client_certificates: mode,
    };
    Pki {
        _dir: dir,
        ca,
        rogue,
        server,
    }
}

fn operator() -> Principal {
    Principal {
        principal_id: PrincipalId::parse("test-operator").unwrap(),
        organisation_id: FacilityId::parse("noroshi-admin").unwrap(),
        role: Role::Admin,
    }
}

async fn terminal(api: &TestApi, ca: &Path, organisation: &str) -> IssuedPem {
    certificates::issue_client(
        api.db.pool(),
        ca,
        &operator(),
        organisation,
        FacilityKind::Hospital,
        30,
    )
    .await
    .unwrap()
}

fn ca_pem(pki: &Pki) -> Vec<u8> {
    std::fs::read(pki.ca.join(certificates::CA_CERT)).unwrap()
}

/// What a gRPC call over TLS came to: its result, or how it was refused.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done(String),
    Status(tonic::Code),
    /// The TLS handshake or connection failed.
    Refused,
}

async fn declare(
    addr: SocketAddr,
    pki: &Pki,
    certificate: Option<&IssuedPem>,
    token: Option<Actor>,
    facility: &str,
) -> Outcome {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem(pki)))
        .domain_name("localhost");
    if let Some(cert) = certificate {
        tls = tls.identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem));
    }
    let channel = match Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(_) => return Outcome::Refused,
    };
    let mut request = tonic::Request::new(declare_request(
        facility,
        pb::BedCategory::Moderate,
        5,
        3,
        1,
    ));
    if let Some(actor) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", actor.token).parse().unwrap(),
        );
    }
    match FacilityServiceClient::new(channel)
        .declare_capacity(request)
        .await
    {
        Ok(result) => Outcome::Done(result.into_inner().stream_id),
        // A refused client certificate surfaces as a broken connection.
        Err(status)
            if status.code() == tonic::Code::Unavailable
                || status.code() == tonic::Code::Unknown =>
        {
            Outcome::Refused
        }
        Err(status) => Outcome::Status(status.code()),
    }
}

/// `GET path` over HTTPS: the status, or `None` when TLS refused the connection.
async fn https_get(
    addr: SocketAddr,
    pki: &Pki,
    certificate: Option<&IssuedPem>,
    path: &str,
) -> Option<u16> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem(pki)) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match certificate {
        Some(cert) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

#[tokio::test]
async fn required_client_certificates_admit_only_the_ca_s_terminals_for_their_own_organisation() {
    let api = TestApi::start().await;
    api.seed().await;
    let pki = pki(ClientCertificates::Required);
    let (grpc, http) = api.serve_tls(&pki.server).await;
    let hofu = terminal(&api, &pki.ca, "hofu-central").await;
    // Even registered, a certificate from another CA fails the chain check.
    let rogue = terminal(&api, &pki.rogue, "hofu-central").await;
    let events = api.db.event_count().await;

    // No certificate, or another CA's: refused, whatever token comes with it.
    assert_eq!(
        declare(grpc, &pki, None, Some(HOSPITAL), "hofu-central").await,
        Outcome::Refused
    );
    assert_eq!(
        declare(grpc, &pki, Some(&rogue), None, "hofu-central").await,
        Outcome::Refused
    );
    assert_eq!(
        https_get(http, &pki, None, "/api/v1/views/bed_board").await,
        None
    );
    assert_eq!(
        https_get(http, &pki, Some(&rogue), "/api/v1/views/bed_board").await,
        None
    );
    assert_eq!(api.db.event_count().await, events);

    // The terminal of hofu-central declares for hofu-central, and only for it.
    assert_eq!(
        declare(grpc, &pki, Some(&hofu), None, "hofu-central").await,
        Outcome::Done("facility-hofu-central".into())
    );
    assert_eq!(
        declare(grpc, &pki, Some(&hofu), None, "ube-medical").await,
        Outcome::Status(tonic::Code::PermissionDenied)
    );
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM events WHERE stream_id = 'facility-hofu-central' \
         ORDER BY version DESC LIMIT 1",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(actor, format!("cert:{}", hofu.serial));
    // A token of another organisation cannot ride on the terminal; its own can.
    assert_eq!(
        declare(grpc, &pki, Some(&hofu), Some(HQ), "hofu-central").await,
        Outcome::Status(tonic::Code::PermissionDenied)
    );
    assert!(matches!(
        declare(grpc, &pki, Some(&hofu), Some(HOSPITAL), "hofu-central").await,
        Outcome::Done(_)
    ));
    // Over HTTPS too.
    assert_eq!(
        https_get(http, &pki, Some(&hofu), "/api/v1/views/bed_board").await,
        Some(200)
    );

    // Revoked: the next request is unauthenticated.
    assert!(
        certificates::revoke(api.db.pool(), &hofu.serial)
            .await
            .unwrap()
    );
    assert_eq!(
        declare(grpc, &pki, Some(&hofu), None, "hofu-central").await,
        Outcome::Status(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        https_get(http, &pki, Some(&hofu), "/api/v1/views/bed_board").await,
        Some(401)
    );
    let denials: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'PERMISSION_DENIED' AND principal_id = $1",
    )
    .bind(format!("cert:{}", hofu.serial))
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(denials, 1);
}

#[tokio::test]
async fn optional_client_certificates_let_other_credentials_in_without_one() {
    let api = TestApi::start().await;
    api.seed().await;
    let pki = pki(ClientCertificates::Optional);
    let (grpc, http) = api.serve_tls(&pki.server).await;
    let hofu = terminal(&api, &pki.ca, "hofu-central").await;
    let rogue = terminal(&api, &pki.rogue, "hofu-central").await;

    assert!(matches!(
        declare(grpc, &pki, None, Some(HOSPITAL), "hofu-central").await,
        Outcome::Done(_)
    ));
    assert_eq!(
        declare(grpc, &pki, None, None, "hofu-central").await,
        Outcome::Status(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        declare(grpc, &pki, Some(&hofu), None, "ube-medical").await,
        Outcome::Status(tonic::Code::PermissionDenied)
    );
    // A certificate that is presented must still come from the CA.
    assert_eq!(
        declare(grpc, &pki, Some(&rogue), Some(HOSPITAL), "hofu-central").await,
        Outcome::Refused
    );
    assert_eq!(
        https_get(http, &pki, None, "/api/v1/views/bed_board").await,
        Some(401)
    );
    assert_eq!(
        https_get(http, &pki, Some(&hofu), "/api/v1/views/bed_board").await,
        Some(200)
    );
}

/// Runs `noroshi <args>` (without blocking the test's runtime): its stdout, or panics.
async fn noroshi(args: &[&str], database_url: &str) -> String {
    let output = tokio::process::Command::new(noroshi_tests::noroshi_bin())
        .args(["--log", "warn"])
        .args(args)
        .env("NOROSHI_DATABASE_URL", database_url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "noroshi {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_admin_commands_make_a_ca_whose_certificates_work_as_issued() {
    let api = TestApi::start().await;
    api.seed().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let url = api.db.url().to_owned();
    let ca = path("ca");
    noroshi(&["admin", "ca", "--dir", &ca, "init"], &url).await;
    let key_mode = std::fs::metadata(dir.path().join("ca").join(certificates::CA_KEY))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );
    let out_dir = path("");
    noroshi(
        &[
            "admin",
            "ca",
            "--dir",
            &ca,
            "server",
            "localhost",
            "127.0.0.1",
            "--out-dir",
            &out_dir,
        ],
        &url,
    )
    .await;
    let issued = noroshi(
        &[
            "admin",
            "ca",
            "--dir",
            &ca,
            "issue",
            "hofu-central",
            "--out-dir",
            &out_dir,
        ],
        &url,
    )
    .await;
    let serial = issued
        .split_whitespace()
        .nth(2)
        .expect("the serial")
        .trim_end_matches(':')
        .to_owned();
    // An unregistered organisation gets no certificate.
    let refused = tokio::process::Command::new(noroshi_tests::noroshi_bin())
        .args([
            "--log",
            "warn",
            "admin",
            "ca",
            "--dir",
            &ca,
            "issue",
            "no-such-org",
        ])
        .env("NOROSHI_DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());

    let pki = Pki {
        ca: dir.path().join("ca"),
        rogue: dir.path().join("ca"),
        server: TlsFiles {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server-key.pem"),
            client_ca: Some(dir.path().join("ca").join(certificates::CA_CERT)),
            client_certificates: ClientCertificates::Required,
        },
        _dir: dir,
    };
    let (grpc, _) = api.serve_tls(&pki.server).await;
    let read = |suffix: &str| {
        std::fs::read_to_string(
            pki._dir
                .path()
                .join(format!("hofu-central-{serial}{suffix}")),
        )
        .unwrap()
    };
    let terminal = IssuedPem {
        serial: serial.clone(),
        cert_pem: read(".pem"),
        key_pem: read("-key.pem"),
        fingerprint: Vec::new(),
        subject: String::new(),
        not_after: time::OffsetDateTime::now_utc(),
    };
    assert_eq!(
        declare(grpc, &pki, Some(&terminal), None, "hofu-central").await,
        Outcome::Done("facility-hofu-central".into())
    );
    noroshi(&["admin", "ca", "--dir", &ca, "revoke", &serial], &url).await;
    assert_eq!(
        declare(grpc, &pki, Some(&terminal), None, "hofu-central").await,
        Outcome::Status(tonic::Code::Unauthenticated)
    );
}

//! The gRPC API in-process on a free port, over a fresh database, with one token per
//! kind of principal and a small synthetic Yamaguchi world to act on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use noroshi::application::{Application, Component, Config};
use noroshi_api::listener::ConnectionLimits;
use noroshi_app::{Clock, CommandHandler, CommandSettings, system_clock};
use noroshi_domain::placement::PlacementPolicy;
use noroshi_identity::IdentitySettings;
use noroshi_identity::certificates::TlsFiles;
use noroshi_identity::tokens::{TokenEntry, Tokens};
use noroshi_projections::views::ViewSettings;
use noroshi_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::facility_service_client::FacilityServiceClient;
use pb::placement_service_client::PlacementServiceClient;
use sqlx::ConnectOptions;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::TestDatabase;
use crate::proxy::TcpProxy;

/// The URL of `db` through a new proxy that a test can cut.
async fn url_through_proxy(db: &TestDatabase) -> (String, TcpProxy) {
    let direct = noroshi_event_store::connect_options(db.url()).expect("test database url");
    let target = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .expect("resolve PostgreSQL")
        .next()
        .expect("an address for PostgreSQL");
    let proxy = TcpProxy::start(target).await;
    let url = direct
        .host("127.0.0.1")
        .port(proxy.addr().port())
        .to_url_lossy()
        .to_string();
    (url, proxy)
}

/// A principal of the test world: its bearer token and organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub token: &'static str,
    pub organisation: &'static str,
    pub role: &'static str,
}

pub const ADMIN: Actor = Actor {
    token: "test-token-admin-0001",
    organisation: "noroshi-admin",
    role: "ADMIN",
};
pub const HQ: Actor = Actor {
    token: "test-token-hq-000000001",
    organisation: "yamaguchi-hq",
    role: "HQ",
};
/// Health center of Hofu (防府市 352063).
pub const HC: Actor = Actor {
    token: "test-token-hc-hofu-0001",
    organisation: "hofu-hc",
    role: "HEALTH_CENTER",
};
/// Health center of Ube and Sanyo-Onoda.
pub const HC_OTHER: Actor = Actor {
    token: "test-token-hc-ube-00001",
    organisation: "ube-hc",
    role: "HEALTH_CENTER",
};
/// A hospital with oxygen and ventilators.
pub const HOSPITAL: Actor = Actor {
    token: "test-token-hosp-hofu-01",
    organisation: "hofu-central",
    role: "HOSPITAL",
};
/// A hospital with oxygen only.
pub const HOSPITAL_OTHER: Actor = Actor {
    token: "test-token-hosp-ube-001",
    organisation: "ube-medical",
    role: "HOSPITAL",
};
pub const HOTEL: Actor = Actor {
    token: "test-token-hotel-yuda-01",
    organisation: "yuda-hotel",
    role: "HOTEL",
};
/// A consult center whose doctors consult remotely (へき地医療支援センター).
pub const CONSULT: Actor = Actor {
    token: "test-token-consult-yamaguchi",
    organisation: "yamaguchi-consult",
    role: "CONSULT_CENTER",
};
/// Another consult center.
pub const CONSULT_OTHER: Actor = Actor {
    token: "test-token-consult-hagi-01",
    organisation: "hagi-consult",
    role: "CONSULT_CENTER",
};
/// A mobile clinic (a vehicle with a nurse on board) that cares for patients at home.
pub const MOBILE: Actor = Actor {
    token: "test-token-mobile-clinic-01",
    organisation: "akiyoshi-mobile",
    role: "MOBILE_CLINIC",
};
pub const PUBLIC: Actor = Actor {
    token: "test-token-public-00001",
    organisation: "public",
    role: "PUBLIC",
};

pub const ACTORS: &[Actor] = &[
    ADMIN,
    HQ,
    HC,
    HC_OTHER,
    HOSPITAL,
    HOSPITAL_OTHER,
    HOTEL,
    CONSULT,
    CONSULT_OTHER,
    MOBILE,
    PUBLIC,
];

/// Municipality codes used by the world.
pub const HOFU: &str = "352063";
pub const UBE: &str = "352021";

/// Knobs of a test API; `Clock` has no `Debug`.
#[allow(missing_debug_implementations)]
#[derive(Clone)]
pub struct ApiOptions {
    pub policy: PlacementPolicy,
    pub clock: Clock,
    pub pool_size: u32,
    pub max_message_bytes: usize,
    /// The bearer tokens the API accepts; those of [`ACTORS`] by default.
    pub tokens: Tokens,
    /// Reach PostgreSQL through a [`TcpProxy`] that the test can cut.
    pub through_proxy: bool,
    pub views: ViewSettings,
    pub identity: IdentitySettings,
    /// Timeouts and connection caps of both listeners.
    pub connections: ConnectionLimits,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            policy: PlacementPolicy::default(),
            clock: system_clock(),
            pool_size: 16,
            max_message_bytes: 1024 * 1024,
            tokens: tokens(),
            through_proxy: false,
            views: ViewSettings::default(),
            identity: IdentitySettings::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// An HTTP answer: status, headers, and the body as JSON (a JSON string if it is not).
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: ::http::HeaderMap,
    pub json: serde_json::Value,
    /// The body as sent.
    pub body: bytes::Bytes,
}

/// A running gRPC API; stopped on drop.
pub struct TestApi {
    pub db: TestDatabase,
    pub addr: SocketAddr,
    /// The HTTP API's address.
    pub http_addr: SocketAddr,
    pub handler: Arc<CommandHandler>,
    /// The cuttable path to PostgreSQL, with [`ApiOptions::through_proxy`].
    pub proxy: Option<TcpProxy>,
    channel: Channel,
    shutdown: CancellationToken,
    /// What the API was built with, to serve it again over TLS.
    config: Config,
}

impl std::fmt::Debug for TestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The token file entry of `actor`.
pub fn token_entry(actor: &Actor) -> TokenEntry {
    TokenEntry {
        token: actor.token.into(),
        principal_id: format!("{}-user", actor.organisation),
        organisation_id: actor.organisation.into(),
        role: actor.role.into(),
    }
}

pub fn tokens() -> Tokens {
    let entries: Vec<TokenEntry> = ACTORS.iter().map(token_entry).collect();
    Tokens::from_entries(&entries).expect("test tokens are valid")
}

/// `message` with `authorization: Bearer <token>` of `actor`.
pub fn authed<T>(actor: Actor, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", actor.token)
            .parse()
            .expect("ascii token"),
    );
    request
}

/// `stream:version,…` of command results, for `min_versions` (read your writes).
pub fn min_versions(results: &[&pb::CommandResult]) -> String {
    results
        .iter()
        .flat_map(|result| &result.streams)
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .collect::<Vec<_>>()
        .join(",")
}

/// A fresh command id.
pub fn cid() -> String {
    Uuid::new_v4().to_string()
}

impl TestApi {
    pub async fn start() -> Self {
        Self::with(ApiOptions::default()).await
    }

    pub async fn with(options: ApiOptions) -> Self {
        let db = TestDatabase::with_pool_size(options.pool_size).await;
        let (url, proxy) = if options.through_proxy {
            let (url, proxy) = url_through_proxy(&db).await;
            (url, Some(proxy))
        } else {
            (db.url().to_owned(), None)
        };
        let mut config = Config::new(url);
        config.database.max_connections = options.pool_size;
        if proxy.is_some() {
            // A cut proxy makes a connection wait at most this long.
            config.database.acquire_timeout = Duration::from_secs(2);
        }
        config.components = vec![Component::Api];
        config.commands = CommandSettings {
            prefecture: crate::fixtures::yamaguchi(),
            policy: options.policy,
            max_attempts: 32,
            cache_capacity: 10_000,
        };
        config.api.grpc_addr = "127.0.0.1:0".into();
        config.api.http_addr = "127.0.0.1:0".into();
        config.api.max_request_bytes = options.max_message_bytes;
        config.api.views = options.views;
        config.api.identity = options.identity;
        config.api.connections = options.connections;
        config.api.dev_tokens = Some(options.tokens);
        // The tests' webhook receivers listen on plain http.
        config.api.allow_http_webhooks = true;
        config.shutdown_timeout = Duration::from_secs(5);
        config.clock = options.clock;
        let (application, addr, http_addr) = Self::application(&config).await;
        let handler = application.handler().clone();
        let shutdown = application.shutdown();
        tokio::spawn(application.run_until_stopped());
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        Self {
            db,
            addr,
            http_addr,
            handler,
            proxy,
            channel,
            shutdown,
            config,
        }
    }

    /// An application of `config`, built, and its gRPC and HTTP addresses.
    async fn application(config: &Config) -> (Application, SocketAddr, SocketAddr) {
        let application = Application::build(config.clone())
            .await
            .expect("build the application");
        let addr = application.grpc_addr().expect("a gRPC listener");
        let http_addr = application.http_addr().expect("an HTTP listener");
        (application, addr, http_addr)
    }

    /// Serves the same API once more over TLS with `files`, on new ports: the gRPC and
    /// the HTTP address.
    pub async fn serve_tls(&self, files: &TlsFiles) -> (SocketAddr, SocketAddr) {
        let mut config = self.config.clone();
        config.api.tls = Some(files.clone());
        let (application, grpc, http) = Self::application(&config).await;
        let shutdown = self.shutdown.clone();
        let stop = application.shutdown();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        });
        tokio::spawn(application.run_until_stopped());
        (grpc, http)
    }

    /// The gRPC channel to the API, for raw calls.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn views(&self) -> pb::view_service_client::ViewServiceClient<Channel> {
        pb::view_service_client::ViewServiceClient::new(self.channel.clone())
    }

    /// `GET <path>` on the HTTP API as `actor` (or anonymously): status and JSON body.
    pub async fn http_get(&self, actor: Option<Actor>, path: &str) -> (u16, serde_json::Value) {
        self.http(::http::Method::GET, actor, path, Vec::new())
            .await
    }

    /// `POST <path>` with `body` on the HTTP API as `actor`: status and JSON body.
    pub async fn http_post(
        &self,
        actor: Option<Actor>,
        path: &str,
        body: impl Into<Vec<u8>>,
    ) -> (u16, serde_json::Value) {
        self.http(::http::Method::POST, actor, path, body.into())
            .await
    }

    async fn http(
        &self,
        method: ::http::Method,
        actor: Option<Actor>,
        path: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(actor) = actor {
            headers.push(("authorization", format!("Bearer {}", actor.token)));
        }
        let answer = self.http_request(method, path, &headers, body).await;
        (answer.status, answer.json)
    }

    /// Any request on the HTTP API, with exactly `headers`.
    pub async fn http_request(
        &self,
        method: ::http::Method,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> HttpAnswer {
        http_request(&self.http_addr.to_string(), method, path, headers, body).await
    }

    pub fn facilities(&self) -> FacilityServiceClient<Channel> {
        FacilityServiceClient::new(self.channel.clone()).max_encoding_message_size(64 * 1024 * 1024)
    }

    pub fn cases(&self) -> CaseServiceClient<Channel> {
        CaseServiceClient::new(self.channel.clone()).max_encoding_message_size(64 * 1024 * 1024)
    }

    pub fn placements(&self) -> PlacementServiceClient<Channel> {
        PlacementServiceClient::new(self.channel.clone())
    }

    pub fn consults(&self) -> pb::consult_service_client::ConsultServiceClient<Channel> {
        pb::consult_service_client::ConsultServiceClient::new(self.channel.clone())
    }

    /// Registers the world's organisations and facilities through the API.
    pub async fn seed(&self) {
        use pb::{Capability as C, FacilityKind as K};
        // (id, name, kind, medical area, municipality, jurisdiction, capabilities)
        type Entry<'a> = (
            &'a str,
            &'a str,
            K,
            &'a str,
            &'a str,
            &'a [&'a str],
            &'a [C],
        );
        let world: &[Entry<'_>] = &[
            (
                "yamaguchi-hq",
                "山口県入院調整本部",
                K::Hq,
                "",
                "352039",
                &[],
                &[],
            ),
            (
                "hofu-hc",
                "防府健康福祉センター",
                K::HealthCenter,
                "3504",
                HOFU,
                &[HOFU],
                &[],
            ),
            (
                "ube-hc",
                "宇部健康福祉センター",
                K::HealthCenter,
                "3505",
                UBE,
                &[UBE, "352161"],
                &[],
            ),
            (
                "hofu-central",
                "防府中央みらい病院",
                K::Hospital,
                "3504",
                HOFU,
                &[],
                &[C::Oxygen, C::Ventilator],
            ),
            (
                "ube-medical",
                "宇部あおば医療センター",
                K::Hospital,
                "3505",
                UBE,
                &[],
                &[C::Oxygen],
            ),
            (
                "yuda-hotel",
                "湯田ひだまりホテル",
                K::Hotel,
                "3504",
                "352039",
                &[],
                &[],
            ),
            (
                "yamaguchi-consult",
                "山口へき地医療支援センター",
                K::ConsultCenter,
                "3504",
                "352039",
                &[],
                &[],
            ),
            (
                "hagi-consult",
                "萩遠隔診療センター",
                K::ConsultCenter,
                "3507",
                "352047",
                &[],
                &[],
            ),
            (
                "akiyoshi-mobile",
                "秋吉台みらい号",
                K::MobileClinic,
                "3504",
                "352039",
                &[],
                &[],
            ),
        ];
        for (id, name, kind, area, municipality, jurisdiction, capabilities) in world {
            self.facilities()
                .register_facility(authed(
                    ADMIN,
                    pb::RegisterFacilityRequest {
                        command_id: cid(),
                        facility_id: (*id).into(),
                        name: (*name).into(),
                        name_en: String::new(),
                        kind: *kind as i32,
                        prefecture: "35".into(),
                        medical_area: (*area).into(),
                        municipality: (*municipality).into(),
                        jurisdiction: jurisdiction.iter().map(|s| (*s).into()).collect(),
                        capabilities: capabilities.iter().map(|c| *c as i32).collect(),
                        expected_version: None,
                    },
                ))
                .await
                .unwrap_or_else(|e| panic!("register {id}: {e:?}"));
        }
    }

    /// `facility` declares absolute figures for one category.
    pub async fn declare(
        &self,
        actor: Actor,
        facility: &str,
        category: pb::BedCategory,
        secured: i64,
        ready: i64,
        occupied: i64,
    ) -> pb::CommandResult {
        let mut request = declare_request(facility, category, secured, ready, occupied);
        if actor.role == "HQ" {
            request.proxy_reason = "電話で確認".into();
        }
        self.facilities()
            .declare_capacity(authed(actor, request))
            .await
            .unwrap_or_else(|e| panic!("declare {facility}: {e:?}"))
            .into_inner()
    }

    /// The Hofu health center reports a synthetic patient; returns the case id.
    pub async fn report_case(&self, severity: pb::Severity) -> String {
        let result = self
            .cases()
            .report_case(authed(HC, report_request(severity)))
            .await
            .expect("report case")
            .into_inner();
        result.stream_id.trim_start_matches("case-").to_owned()
    }

    /// The Hofu health center triages `case_id` anew at `severity`, without risk factors
    /// or needs.
    pub async fn triage(&self, case_id: &str, severity: pb::Severity) -> pb::CommandResult {
        self.cases()
            .triage_case(authed(
                HC,
                pb::TriageCaseRequest {
                    command_id: cid(),
                    case_id: case_id.into(),
                    severity: severity as i32,
                    risk_factors: vec![],
                    needs: vec![],
                    note: String::new(),
                    expected_version: None,
                },
            ))
            .await
            .expect("triage case")
            .into_inner()
    }

    /// HQ overrides `case_id`'s priority.
    pub async fn override_priority(&self, case_id: &str, priority: i64) -> pb::CommandResult {
        self.cases()
            .override_priority(authed(
                HQ,
                pb::OverridePriorityRequest {
                    command_id: cid(),
                    case_id: case_id.into(),
                    priority,
                    reason: "妊娠後期、急変の恐れ".into(),
                    expected_version: None,
                },
            ))
            .await
            .expect("override priority")
            .into_inner()
    }

    /// Requests a placement for `case_id` as the Hofu health center; returns its id.
    pub async fn request_placement(&self, case_id: &str, category: pb::BedCategory) -> String {
        let result = self
            .placements()
            .request_placement(authed(
                HC,
                pb::RequestPlacementRequest {
                    command_id: cid(),
                    case_id: case_id.into(),
                    category: category as i32,
                    needs: vec![],
                    note: String::new(),
                    expected_version: None,
                },
            ))
            .await
            .expect("request placement")
            .into_inner();
        result.stream_id.trim_start_matches("placement-").to_owned()
    }

    /// HQ offers a placement to `facility`.
    pub async fn offer(&self, placement_id: &str, facility: &str) -> pb::CommandResult {
        self.placements()
            .offer_placement(authed(
                HQ,
                pb::OfferPlacementRequest {
                    command_id: cid(),
                    placement_id: placement_id.into(),
                    facility_id: facility.into(),
                    expected_version: None,
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("offer to {facility}: {e:?}"))
            .into_inner()
    }

    /// `actor` accepts the offer of `placement_id`.
    pub async fn accept(
        &self,
        actor: Actor,
        placement_id: &str,
    ) -> Result<pb::CommandResult, tonic::Status> {
        let request = pb::AcceptPlacementRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            override_capacity: false,
            override_reason: String::new(),
            expected_version: None,
        };
        self.placements()
            .accept_placement(authed(actor, request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// `actor` declines the offer of `placement_id`.
    pub async fn decline(&self, actor: Actor, placement_id: &str) -> pb::CommandResult {
        let request = pb::DeclinePlacementRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            reason: "満床のため".into(),
            expected_version: None,
        };
        self.placements()
            .decline_placement(authed(actor, request))
            .await
            .expect("decline")
            .into_inner()
    }

    /// The health center arranges an ambulance and records the departure.
    pub async fn transport(&self, placement_id: &str) {
        let mut placements = self.placements();
        let transport = pb::ArrangeTransportRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            vehicle: pb::Vehicle::Ambulance as i32,
            pickup_at: None,
            note: String::new(),
            expected_version: None,
        };
        placements
            .arrange_transport(authed(HC, transport))
            .await
            .expect("arrange transport");
        let departure = pb::RecordDepartureRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            expected_version: None,
        };
        placements
            .record_departure(authed(HC, departure))
            .await
            .expect("record departure");
    }

    /// `actor`, the receiving facility, records the arrival.
    pub async fn arrive(&self, actor: Actor, placement_id: &str) -> pb::CommandResult {
        let request = pb::RecordArrivalRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            expected_version: None,
        };
        self.placements()
            .record_arrival(authed(actor, request))
            .await
            .expect("record arrival")
            .into_inner()
    }

    /// The case's whole way into a `category` bed of `facility` (whose `actor` accepts
    /// and records the arrival), as the health center asks for it and HQ offers it: the
    /// placement and the arrival's result.
    pub async fn admit(
        &self,
        case_id: &str,
        category: pb::BedCategory,
        actor: Actor,
        facility: &str,
    ) -> (String, pb::CommandResult) {
        let placement_id = self.request_placement(case_id, category).await;
        self.offer(&placement_id, facility).await;
        self.accept(actor, &placement_id).await.expect("accept");
        self.transport(&placement_id).await;
        let arrived = self.arrive(actor, &placement_id).await;
        (placement_id, arrived)
    }

    /// `actor` discharges the patient of `placement_id`.
    pub async fn discharge(
        &self,
        actor: Actor,
        placement_id: &str,
        outcome: pb::DischargeOutcome,
    ) -> pb::CommandResult {
        let request = pb::RecordDischargeRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            outcome: outcome as i32,
            note: String::new(),
            expected_version: None,
        };
        self.placements()
            .record_discharge(authed(actor, request))
            .await
            .expect("record discharge")
            .into_inner()
    }

    /// HQ cancels the placement.
    pub async fn cancel(&self, placement_id: &str) -> pb::CommandResult {
        let request = pb::CancelPlacementRequest {
            command_id: cid(),
            placement_id: placement_id.into(),
            reason: "調整終了".into(),
            expected_version: None,
        };
        self.placements()
            .cancel_placement(authed(HQ, request))
            .await
            .expect("cancel placement")
            .into_inner()
    }

    /// `facility`'s moderate `(secured, ready)` as the bed board's table holds it now.
    pub async fn moderate_beds(&self, facility: &str) -> Option<(i32, i32)> {
        sqlx::query_as(
            "SELECT secured, ready FROM bed_board_beds WHERE facility_id = $1 AND category = 'MODERATE'",
        )
        .bind(facility)
        .fetch_optional(self.db.pool())
        .await
        .expect("read bed_board_beds")
    }

    /// Event types of a stream, in order.
    pub async fn event_types(&self, stream: &str) -> Vec<String> {
        let events = self
            .db
            .store()
            .read_stream(&crate::fixtures::stream(stream), 1, 10_000)
            .await
            .expect("read stream");
        events
            .into_iter()
            .map(|e| e.event_type.trim_start_matches("noroshi.v1.").to_owned())
            .collect()
    }
}

/// A declaration of one category's figures by the facility itself, with a fresh command id.
pub fn declare_request(
    facility: &str,
    category: pb::BedCategory,
    secured: i64,
    ready: i64,
    occupied: i64,
) -> pb::DeclareCapacityRequest {
    pb::DeclareCapacityRequest {
        command_id: cid(),
        facility_id: facility.into(),
        categories: vec![pb::DeclaredFigures {
            category: category as i32,
            secured,
            ready,
            occupied,
        }],
        proxy_reason: String::new(),
        expected_version: None,
    }
}

/// A synthetic, fictional patient living in Hofu.
pub fn report_request(severity: pb::Severity) -> pb::ReportCaseRequest {
    pb::ReportCaseRequest {
        command_id: cid(),
        external_ref: String::new(),
        patient: Some(pb::PatientIdentity {
            name: "試験 花子".into(),
            name_kana: "シケン ハナコ".into(),
            birth_date: "1950-04-01".into(),
            sex: pb::Sex::Female as i32,
            phone: "0835-00-0000".into(),
            address: "防府市 架空町 1-2-3".into(),
        }),
        municipality: HOFU.into(),
        risk_factors: vec![pb::RiskFactor::Age65Plus as i32],
        severity: severity as i32,
        needs: vec![],
        expected_version: None,
    }
}

/// An HTTP request to the server at `addr` (`host:port`), its answer read whole.
pub async fn http_request(
    addr: &str,
    method: ::http::Method,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Vec<u8>>,
) -> HttpAnswer {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = ::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = client
        .request(
            request
                .body(http_body_util::Full::new(bytes::Bytes::from(body.into())))
                .expect("request"),
        )
        .await
        .expect("http request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("http body")
        .to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    HttpAnswer {
        status,
        headers,
        json,
        body,
    }
}

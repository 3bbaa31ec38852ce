//! Real identities (docs/identity.md): logins and sessions with CSRF, idle and absolute
//! timeouts and lockout; API clients with scopes, expiry and revocation; and the audit
//! log that records each of them, queried by HQ and ADMIN as JSON and CSV.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::Method;
use noroshi_identity::IdentitySettings;
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{ADMIN, ApiOptions, HC, HQ, HttpAnswer, TestApi, cid, declare_request};
use noroshi_tests::pipeline::Pipeline;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn json_headers() -> Vec<(&'static str, String)> {
    vec![("content-type", "application/json".to_owned())]
}

/// Creates a user of `organisation` as HQ, over HTTP.
async fn create_user(api: &TestApi, username: &str, organisation: &str, role: &str) {
    let (status, body) = api
        .http_post(
            Some(HQ),
            "/api/v1/admin/users",
            json!({"username": username, "display_name": "試験 花子", "organisation_id": organisation,
                   "role": role, "password": PASSWORD})
            .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn login(api: &TestApi, username: &str, password: &str) -> HttpAnswer {
    api.http_request(
        Method::POST,
        "/api/v1/session",
        &json_headers(),
        json!({"username": username, "password": password}).to_string(),
    )
    .await
}

/// A logged-in session: its `Cookie` header and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn logged_in(api: &TestApi, username: &str) -> Session {
    let answer = login(api, username, PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let set_cookie = answer.headers["set-cookie"].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Session {
        cookie,
        csrf: answer.json["csrf_token"].as_str().unwrap().to_owned(),
    }
}

impl Session {
    fn headers(&self, csrf: bool) -> Vec<(&'static str, String)> {
        let mut headers = json_headers();
        headers.push(("cookie", self.cookie.clone()));
        if csrf {
            headers.push(("x-csrf-token", self.csrf.clone()));
        }
        headers
    }
}

async fn audit_kinds(api: &TestApi, principal_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM audit_log WHERE principal_id = $1 ORDER BY id")
        .bind(principal_id)
        .fetch_all(api.db.pool())
        .await
        .unwrap()
}

fn report_body() -> String {
    json!({
        "command_id": cid(),
        "patient": {"name": "試験 次郎", "birth_date": "1970-01-02", "sex": "SEX_MALE",
                    "address": "防府市 架空町 1-2-3"},
        "municipality": "352063",
        "severity": "SEVERITY_MILD"
    })
    .to_string()
}

#[tokio::test]
async fn a_login_opens_a_session_that_needs_its_csrf_token_to_change_anything() {
    let api = TestApi::start().await;
    api.seed().await;
    create_user(&api, "hofu.nurse", "hofu-hc", "HEALTH_CENTER").await;

    // Wrong password and unknown user: the same refusal.
    for (username, password) in [
        ("hofu.nurse", "not the password!"),
        ("nobody.here", PASSWORD),
    ] {
        let answer = login(&api, username, password).await;
        assert_eq!(answer.status, 401, "{}", answer.json);
        assert_eq!(answer.json["code"], "UNAUTHENTICATED");
        assert!(
            answer.json["message"]
                .as_str()
                .unwrap()
                .contains("wrong username or password")
        );
        assert!(answer.headers.get("set-cookie").is_none());
    }

    let answer = login(&api, "hofu.nurse", PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["principal_id"], "user:hofu.nurse");
    assert_eq!(answer.json["organisation_id"], "hofu-hc");
    assert_eq!(answer.json["role"], "HEALTH_CENTER");
    let set_cookie = answer.headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.starts_with("noroshi_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    // Not behind TLS here, so not Secure.
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let session = Session {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: answer.json["csrf_token"].as_str().unwrap().to_owned(),
    };
    // The session reads, and knows its CSRF token.
    let read = api
        .http_request(
            Method::GET,
            "/api/v1/views/case_board",
            &session.headers(false),
            "",
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.json);
    let me = api
        .http_request(Method::GET, "/api/v1/session", &session.headers(false), "")
        .await;
    assert_eq!(me.json["csrf_token"], session.csrf.as_str());

    // A command without the CSRF token is refused and writes nothing; with it, it runs.
    let events = api.db.event_count().await;
    let refused = api
        .http_request(
            Method::POST,
            "/api/v1/commands/ReportCase",
            &session.headers(false),
            report_body(),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    assert!(refused.json["message"].as_str().unwrap().contains("CSRF"));
    let mut wrong = session.headers(false);
    wrong.push(("x-csrf-token", "not-the-token".to_owned()));
    let refused = api
        .http_request(
            Method::POST,
            "/api/v1/commands/ReportCase",
            &wrong,
            report_body(),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    assert_eq!(api.db.event_count().await, events);
    let reported = api
        .http_request(
            Method::POST,
            "/api/v1/commands/ReportCase",
            &session.headers(true),
            report_body(),
        )
        .await;
    assert_eq!(reported.status, 200, "{}", reported.json);
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM events WHERE stream_id = $1 AND version = 1")
            .bind(reported.json["stream_id"].as_str().unwrap())
            .fetch_one(api.db.pool())
            .await
            .unwrap();
    assert_eq!(actor, "user:hofu.nurse");

    // The logout form without its csrf_token field is refused; with it, the session ends.
    let mut form = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("cookie", session.cookie.clone()),
    ];
    let refused = api
        .http_request(Method::POST, "/logout", &form, "other=1")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    let still = api
        .http_request(Method::GET, "/api/v1/session", &session.headers(false), "")
        .await;
    assert_eq!(still.status, 200);
    let out = api
        .http_request(
            Method::POST,
            "/logout",
            &form,
            format!("csrf_token={}", session.csrf),
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.json);
    assert_eq!(out.headers["location"], "/login");
    form.truncate(1);
    let ended = api
        .http_request(
            Method::GET,
            "/api/v1/views/case_board",
            &session.headers(false),
            "",
        )
        .await;
    assert_eq!(ended.status, 401, "{}", ended.json);
    // The ended session's cookie is no obstacle to logging in again, by form too.
    form.push(("cookie", session.cookie.clone()));
    let form_login = api
        .http_request(
            Method::POST,
            "/login",
            &form,
            format!(
                "username=hofu.nurse&password={}",
                PASSWORD.replace(' ', "+")
            ),
        )
        .await;
    assert_eq!(form_login.status, 303, "{}", form_login.json);
    assert!(form_login.headers.contains_key("set-cookie"));
    let failed_form = api
        .http_request(
            Method::POST,
            "/login",
            &form,
            "username=hofu.nurse&password=wrong",
        )
        .await;
    assert_eq!(failed_form.status, 401);
    // The form comes back with the error and the username kept.
    let page = failed_form.json.as_str().unwrap();
    assert!(page.contains("wrong username or password") && page.contains(r#"value="hofu.nurse""#));

    assert_eq!(
        audit_kinds(&api, "user:hofu.nurse").await,
        [
            "LOGIN_FAILED",
            "LOGIN_SUCCEEDED",
            "PERMISSION_DENIED",
            "PERMISSION_DENIED",
            "PERMISSION_DENIED",
            "LOGOUT",
            "LOGIN_SUCCEEDED",
            "LOGIN_FAILED"
        ]
    );
    assert_eq!(audit_kinds(&api, "anonymous").await, ["LOGIN_FAILED"]);
}

#[tokio::test]
async fn the_nth_failure_locks_the_account_even_when_attempts_run_in_parallel() {
    let api = TestApi::with(ApiOptions {
        identity: IdentitySettings {
            max_failed_logins: 5,
            lockout: Duration::from_secs(3600),
            ..IdentitySettings::default()
        },
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    create_user(&api, "hofu.beds", "hofu-central", "HOSPITAL").await;

    let attempts = (0..12).map(|i| {
        let api = &api;
        async move { login(api, "hofu.beds", &format!("wrong password {i:02}")).await }
    });
    for answer in futures_util::future::join_all(attempts).await {
        assert_eq!(answer.status, 401, "{}", answer.json);
    }
    // Locked: even the right password is refused, and says so.
    let locked = login(&api, "hofu.beds", PASSWORD).await;
    assert_eq!(locked.status, 401);
    assert!(
        locked.json["message"].as_str().unwrap().contains("locked"),
        "{}",
        locked.json
    );
    let kinds = audit_kinds(&api, "user:hofu.beds").await;
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("LOGIN_FAILED"), 5, "{kinds:?}");
    assert_eq!(count("LOGIN_LOCKED"), 8, "{kinds:?}");
    assert_eq!(count("LOGIN_SUCCEEDED"), 0, "{kinds:?}");

    // An administrator's reset lifts the lock; the old password is gone.
    let (status, body) = api
        .http_post(
            Some(HQ),
            "/api/v1/admin/users/hofu.beds/password",
            json!({"password": "a brand new passphrase"}).to_string(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(login(&api, "hofu.beds", PASSWORD).await.status, 401);
    assert_eq!(
        login(&api, "hofu.beds", "a brand new passphrase")
            .await
            .status,
        200
    );
    let resets: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'PASSWORD_RESET' AND principal_id = $1 \
         AND detail::jsonb ->> 'username' = 'hofu.beds'",
    )
    .bind(format!("{}-user", HQ.organisation))
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(resets, 1);
}

#[tokio::test]
async fn sessions_end_when_idle_at_their_lifetime_and_when_the_user_is_disabled() {
    let api = TestApi::with(ApiOptions {
        identity: IdentitySettings {
            session_idle: Duration::from_millis(800),
            session_lifetime: Duration::from_secs(2),
            ..IdentitySettings::default()
        },
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    create_user(&api, "ube.nurse", "ube-hc", "HEALTH_CENTER").await;
    let read = |session: &Session| {
        let headers = session.headers(false);
        let api = &api;
        async move {
            api.http_request(Method::GET, "/api/v1/views/case_board", &headers, "")
                .await
                .status
        }
    };

    // Idle: unused past the idle timeout, the session is over.
    let idle = logged_in(&api, "ube.nurse").await;
    assert_eq!(read(&idle).await, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(read(&idle).await, 401);

    // Absolute: used every 300 ms, it still ends at its lifetime.
    let busy = logged_in(&api, "ube.nurse").await;
    let opened = std::time::Instant::now();
    let mut ended_after = None;
    while opened.elapsed() < Duration::from_secs(4) {
        if read(&busy).await == 401 {
            ended_after = Some(opened.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ended_after = ended_after.expect("the session outlived its lifetime");
    assert!(
        ended_after >= Duration::from_millis(1900),
        "{ended_after:?}"
    );

    // Disabled: the session ends at once, and no login works.
    let session = logged_in(&api, "ube.nurse").await;
    let (status, body) = api
        .http_request(
            Method::PATCH,
            "/api/v1/admin/users/ube.nurse",
            &[
                ("content-type", "application/json".to_owned()),
                ("authorization", format!("Bearer {}", HQ.token)),
            ],
            json!({"disabled": true}).to_string(),
        )
        .await
        .into_parts();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], true);
    assert_eq!(read(&session).await, 401);
    assert_eq!(login(&api, "ube.nurse", PASSWORD).await.status, 401);
}

trait IntoParts {
    fn into_parts(self) -> (u16, Value);
}

impl IntoParts for HttpAnswer {
    fn into_parts(self) -> (u16, Value) {
        (self.status, self.json)
    }
}

#[tokio::test]
async fn user_administration_checks_who_asks_and_every_field() {
    let api = TestApi::start().await;
    api.seed().await;
    let create = |actor, body: Value| {
        let api = &api;
        async move {
            api.http_post(Some(actor), "/api/v1/admin/users", body.to_string())
                .await
        }
    };
    let user = |username: &str, organisation: &str, role: &str, password: &str| {
        json!({"username": username, "display_name": "試験", "organisation_id": organisation,
               "role": role, "password": password})
    };
    // A health center manages no users; HQ creates no ADMIN; ADMIN does.
    let (status, _) = create(HC, user("hc.made", "hofu-hc", "HEALTH_CENTER", PASSWORD)).await;
    assert_eq!(status, 403);
    let (status, _) = create(HQ, user("new.admin", "noroshi-admin", "ADMIN", PASSWORD)).await;
    assert_eq!(status, 403);
    let (status, body) = create(ADMIN, user("new.admin", "noroshi-admin", "ADMIN", PASSWORD)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = create(ADMIN, user("new.admin", "noroshi-admin", "ADMIN", PASSWORD)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );
    // Every bad field at once, and nothing created.
    let (status, body) = create(HQ, user("X", "hofu-hc", "HOSPITAL", "short")).await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["username", "organisation_id", "password"],
        "{body}"
    );
    let (status, body) = create(HQ, user("ghost", "no-such-org", "HOSPITAL", PASSWORD)).await;
    assert_eq!(
        (status, body["violations"][0]["field"].as_str()),
        (400, Some("organisation_id"))
    );
    let (status, body) = api
        .http_post(Some(HQ), "/api/v1/admin/users", r#"{"username": 7}"#)
        .await;
    assert_eq!(
        (status, body["violations"][0]["field"].as_str()),
        (400, Some("username"))
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    assert_eq!(users, 1);
    // The listing never carries a hash; the creation is in the audit log with its actor.
    let (status, body) = api.http_get(Some(HQ), "/api/v1/admin/users").await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains("argon2"), "{body}");
    let created: String = sqlx::query_scalar(
        "SELECT principal_id FROM audit_log WHERE kind = 'USER_CREATED' \
         AND detail::jsonb ->> 'username' = 'new.admin'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(created, format!("{}-user", ADMIN.organisation));
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

/// Issues an API client as ADMIN over HTTP: its id and token.
async fn issue_client(
    api: &TestApi,
    organisation: &str,
    scopes: &[&str],
    expires_in: u64,
) -> (String, String) {
    let (status, body) = api
        .http_post(
            Some(ADMIN),
            "/api/v1/admin/clients",
            json!({"name": "病床システム連携", "organisation_id": organisation, "scopes": scopes,
                   "expires_in": expires_in})
            .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["client"]["client_id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn api_client_tokens_act_only_for_their_organisation_and_scopes_until_revoked() {
    let api = TestApi::start().await;
    api.seed().await;
    // Only ADMIN issues clients; bad fields are named.
    let (status, _) = api
        .http_post(
            Some(HQ),
            "/api/v1/admin/clients",
            json!({"name": "x", "organisation_id": "hofu-central", "scopes": ["facilities"],
                   "expires_in": 60})
            .to_string(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = api
        .http_post(
            Some(ADMIN),
            "/api/v1/admin/clients",
            json!({"name": "x", "organisation_id": "hofu-central", "scopes": ["beds"],
                   "expires_in": 0})
            .to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["violations"][0]["field"], "scopes[0]");
    assert_eq!(body["violations"][1]["field"], "expires_in");

    let (client_id, token) = issue_client(&api, "hofu-central", &["facilities"], 3600).await;
    assert!(token.starts_with("nrs_"));
    // Stored only as a digest.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_clients WHERE position($1 in encode(token_hash, 'escape')) > 0 \
            OR name = $1",
    )
    .bind(&token)
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(stored, 0);

    // Its own facility: yes. Another: PERMISSION_DENIED. A view: not in its scopes.
    let declared = api
        .facilities()
        .declare_capacity(with_token(
            &token,
            declare_request("hofu-central", pb::BedCategory::Moderate, 4, 2, 1),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declared.stream_id, "facility-hofu-central");
    let other = api
        .facilities()
        .declare_capacity(with_token(
            &token,
            declare_request("ube-medical", pb::BedCategory::Moderate, 4, 2, 1),
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::PermissionDenied);
    let view = api
        .views()
        .get_bed_board(with_token(&token, pb::GetBedBoardRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(view.code(), tonic::Code::PermissionDenied);
    let (status, _) = api
        .http_request(
            Method::GET,
            "/api/v1/views/bed_board",
            &[("authorization", format!("Bearer {token}"))],
            "",
        )
        .await
        .into_parts();
    assert_eq!(status, 403);

    // Revoked: refused at once, over both APIs.
    let (status, body) = api
        .http_post(
            Some(ADMIN),
            &format!("/api/v1/admin/clients/{client_id}/revoke"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let revoked = api
        .facilities()
        .declare_capacity(with_token(
            &token,
            declare_request("hofu-central", pb::BedCategory::Moderate, 4, 2, 1),
        ))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
    let (status, _) = api
        .http_request(
            Method::POST,
            "/api/v1/commands/DeclareCapacity",
            &[("authorization", format!("Bearer {token}"))],
            "{}",
        )
        .await
        .into_parts();
    assert_eq!(status, 401);

    let principal = format!("client:{client_id}");
    assert_eq!(
        audit_kinds(&api, &principal).await,
        [
            "TOKEN_USED",
            "TOKEN_USED",
            "PERMISSION_DENIED",
            "TOKEN_USED",
            "PERMISSION_DENIED",
            "TOKEN_USED",
            "PERMISSION_DENIED",
            "TOKEN_REFUSED",
            "TOKEN_REFUSED"
        ]
    );

    // Expired: refused once its lifetime has passed.
    let (_, short) = issue_client(&api, "hofu-central", &["facilities", "views"], 1).await;
    api.views()
        .get_bed_board(with_token(&short, pb::GetBedBoardRequest::default()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = api
        .views()
        .get_bed_board(with_token(&short, pb::GetBedBoardRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(expired.code(), tonic::Code::Unauthenticated);

    // An unknown token, and one of another kind, are refused too.
    let unknown = api
        .facilities()
        .declare_capacity(with_token(
            "nrs_not-a-real-token",
            declare_request("hofu-central", pb::BedCategory::Moderate, 4, 2, 1),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn hq_and_admin_query_the_audit_log_by_case_principal_and_time_and_as_csv() {
    let nats = NatsServer::start().await;
    let api = TestApi::start().await;
    api.seed().await;
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    // The health center reads the case's identity twice: two PII records for it.
    for _ in 0..2 {
        let (status, body) = api
            .http_get(
                Some(HC),
                &format!("/api/v1/views/case_board?min_versions=case-{case_id}:1"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = api
        .http_get(Some(HQ), &format!("/api/v1/audit?case_id={case_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{body}");
    for record in records {
        assert_eq!(record["kind"], "PII_READ");
        assert_eq!(record["principal_id"], "hofu-hc-user");
        assert_eq!(record["case_id"], case_id.as_str());
    }
    let (_, body) = api
        .http_get(
            Some(ADMIN),
            "/api/v1/audit?principal_id=hofu-hc-user&kind=PII_READ",
        )
        .await;
    assert_eq!(body["records"].as_array().unwrap().len(), 2);
    let (_, body) = api
        .http_get(Some(HQ), "/api/v1/audit?from=2099-01-01T00:00:00Z")
        .await;
    assert_eq!(body["records"].as_array().unwrap().len(), 0);

    let csv = api
        .http_request(
            Method::GET,
            &format!("/api/v1/audit?case_id={case_id}&kind=PII_READ&format=csv"),
            &[("authorization", format!("Bearer {}", HQ.token))],
            "",
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.json.as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,kind,principal_id,organisation_id,role,via,case_id,detail"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].contains(&case_id) && lines[1].contains("PII_READ"));
    // Reading the audit log is itself recorded.
    let reads = audit_kinds(&api, "yamaguchi-hq-user").await;
    assert_eq!(
        reads.iter().filter(|k| *k == "AUDIT_READ").count(),
        3,
        "{reads:?}"
    );

    // Nobody else reads it; that refusal is itself recorded; bad filters are named.
    let (status, _) = api.http_get(Some(HC), "/api/v1/audit").await;
    assert_eq!(status, 403);
    assert_eq!(
        audit_kinds(&api, "hofu-hc-user")
            .await
            .last()
            .map(String::as_str),
        Some("PERMISSION_DENIED")
    );
    let (status, body) = api
        .http_get(
            Some(HQ),
            "/api/v1/audit?case_id=nope&from=yesterday&limit=0",
        )
        .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["case_id", "from", "limit"]);
    // The audit log stays append-only.
    let tampered = sqlx::query("DELETE FROM audit_log")
        .execute(api.db.pool())
        .await;
    assert!(tampered.is_err());
}

#[tokio::test]
async fn one_address_gets_only_so_many_login_attempts_a_minute_across_usernames() {
    let api = TestApi::with(ApiOptions {
        identity: IdentitySettings {
            login_attempts_per_minute: 4,
            ..IdentitySettings::default()
        },
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    create_user(&api, "hofu.clerk", "hofu-central", "HOSPITAL").await;
    // Spraying one password over many usernames: no account sees repeated failures.
    for i in 0..4 {
        let answer = login(&api, &format!("sprayed.{i}"), PASSWORD).await;
        assert_eq!(answer.status, 401, "{}", answer.json);
    }
    let throttled = login(&api, "hofu.clerk", PASSWORD).await;
    assert_eq!(throttled.status, 429, "{}", throttled.json);
    assert_eq!(throttled.json["code"], "RESOURCE_EXHAUSTED");
    // A throttled attempt is not even checked.
    assert!(audit_kinds(&api, "user:hofu.clerk").await.is_empty());
    assert_eq!(audit_kinds(&api, "anonymous").await.len(), 4);
    // The form says it in the page, keeping the username.
    let page = api
        .http_request(
            Method::POST,
            "/login",
            &[(
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            )],
            "username=hofu.clerk&password=whatever",
        )
        .await;
    assert_eq!(page.status, 429);
    assert!(
        page.json
            .as_str()
            .unwrap()
            .contains("too many login attempts")
    );
}

/// A database migrated while the audit log was still the event store's migration: the
/// event store forgets its record of it, the identity migrations take it over, and the
/// rows and the append-only rule stay.
#[tokio::test]
async fn a_database_migrated_before_the_audit_log_moved_keeps_its_audit_log() {
    let db = noroshi_tests::TestDatabase::create().await;
    let pool = db.pool();
    sqlx::query(
        "INSERT INTO audit_log (kind, principal_id, organisation_id, role, via) \
         VALUES ('PII_READ', 'hofu-hc-user', 'hofu-hc', 'HEALTH_CENTER', 'case_board')",
    )
    .execute(pool)
    .await
    .unwrap();
    // The histories as the earlier layout left them.
    sqlx::query("DELETE FROM _sqlx_migrations_identity WHERE version = 20261130000001")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (20261130000001, 'audit log', true, '\\x00'::bytea, 1)",
    )
    .execute(pool)
    .await
    .unwrap();

    noroshi_event_store::migrate(pool).await.unwrap();
    noroshi_projections::migrate(pool).await.unwrap();
    noroshi_identity::migrate(pool).await.unwrap();

    let histories: (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = 20261130000001), \
                EXISTS (SELECT 1 FROM _sqlx_migrations_identity WHERE version = 20261130000001)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(histories, (false, true));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE via = 'case_board'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(pool)
            .await
            .is_err(),
        "the audit log stays append-only"
    );
    // Running them again changes nothing.
    noroshi_event_store::migrate(pool).await.unwrap();
    noroshi_identity::migrate(pool).await.unwrap();
}

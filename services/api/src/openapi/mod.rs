//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API. The command
//! bodies and answers are derived from the protobuf schema the commands decode with, so
//! the document cannot drift from what the server accepts.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

pub(crate) mod schema;

use self::schema::{Document, errors, message_schema};
use crate::error::ApiError;
use crate::http::commands::COMMANDS;
use crate::json::{MissingMessage, schema};

/// The OpenAPI document, open like `/healthz`: it describes, it reveals no data.
pub(crate) async fn openapi_document() -> Result<axum::Json<Value>, ApiError> {
    document().map(axum::Json)
}

/// A route other than a view or a command.
struct Route {
    method: &'static str,
    path: &'static str,
    operation: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Open to anyone, as `/healthz` is: it describes or reports, and reveals no data.
    open: bool,
    /// Path parameters: the ids of cases, placements and clients are UUIDs, others text.
    parameters: &'static [&'static str],
    /// The query parameters, documented in the summary.
    query: &'static [(&'static str, &'static str)],
    body: Option<Value>,
    /// The media type of `body` (JSON unless said).
    body_media: &'static str,
    /// The success status, and its content (`None`: no content).
    answer: (&'static str, Option<(&'static str, Value)>),
}

impl Route {
    fn operation(&self) -> Value {
        let mut responses = errors();
        let (status, content) = &self.answer;
        responses[*status] = match content {
            Some((media, schema)) => json!({"description": self.summary,
                "content": {*media: {"schema": schema}}}),
            None => json!({"description": self.summary}),
        };
        let mut parameters: Vec<Value> = self
            .parameters
            .iter()
            .map(|name| {
                let schema = if matches!(
                    *name,
                    "placement_id" | "case_id" | "client_id" | "webhook_id"
                ) {
                    json!({"type": "string", "format": "uuid"})
                } else {
                    json!({"type": "string"})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        parameters.extend(self.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "required": false,
                "description": description, "schema": {"type": "string"}})
        }));
        let mut operation = json!({
            "operationId": self.operation,
            "tags": [self.tag],
            "summary": self.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if !self.open {
            operation["security"] = json!([{"bearer": []}, {"session": []}]);
        }
        if let Some(body) = &self.body {
            operation["requestBody"] =
                json!({"required": true, "content": {self.body_media: {"schema": body}}});
        }
        operation
    }
}

/// Every route other than the views and the commands, typed by `generator`.
fn routes(generator: &mut SchemaGenerator) -> Vec<Route> {
    use crate::http::admin::{AuditRecords, ClientBody, Clients, PasswordBody, UserBody, Users};
    use crate::http::import::ImportAnswer;
    use crate::http::sessions::{Login, SessionAnswer};
    use crate::http::webhooks::{Deliveries, WebhookBody, Webhooks};
    use crate::web::{Areas, Candidates, Facilities, Observations};
    use noroshi_identity::clients::{ClientRecord, Issued};
    use noroshi_identity::users::{UserChange, UserRecord};
    use noroshi_identity::webhooks::Registered;
    let json = |schema: Value| Some(("application/json", schema));
    let session = json(generator.subschema_for::<SessionAnswer>().to_value());
    let route = |method, path, operation, tag, summary| Route {
        method,
        path,
        operation,
        tag,
        summary,
        open: false,
        parameters: &[],
        query: &[],
        body: None,
        body_media: "application/json",
        answer: ("200", None),
    };
    vec![
        Route {
            body: Some(generator.subschema_for::<Login>().to_value()),
            answer: ("200", session.clone()),
            open: true,
            ..route(
                "post",
                "/api/v1/session",
                "create_session",
                "sessions",
                "logs in: a session cookie, and the CSRF token its state-changing requests send as X-CSRF-Token",
            )
        },
        Route {
            answer: ("200", session),
            ..route(
                "get",
                "/api/v1/session",
                "get_session",
                "sessions",
                "who is logged in, and the session's CSRF token",
            )
        },
        Route {
            answer: ("204", None),
            ..route(
                "delete",
                "/api/v1/session",
                "delete_session",
                "sessions",
                "logs out (with the CSRF token)",
            )
        },
        Route {
            answer: ("200", json(generator.subschema_for::<Users>().to_value())),
            ..route(
                "get",
                "/api/v1/admin/users",
                "list_users",
                "admin",
                "the users (ADMIN, HQ)",
            )
        },
        Route {
            body: Some(generator.subschema_for::<UserBody>().to_value()),
            answer: (
                "201",
                json(generator.subschema_for::<UserRecord>().to_value()),
            ),
            ..route(
                "post",
                "/api/v1/admin/users",
                "create_user",
                "admin",
                "creates a user (ADMIN; HQ for every role but ADMIN)",
            )
        },
        Route {
            parameters: &["username"],
            body: Some(generator.subschema_for::<UserChange>().to_value()),
            answer: (
                "200",
                json(generator.subschema_for::<UserRecord>().to_value()),
            ),
            ..route(
                "patch",
                "/api/v1/admin/users/{username}",
                "update_user",
                "admin",
                "changes a user's display name, or disables or enables it",
            )
        },
        Route {
            parameters: &["username"],
            body: Some(generator.subschema_for::<PasswordBody>().to_value()),
            answer: ("204", None),
            ..route(
                "post",
                "/api/v1/admin/users/{username}/password",
                "reset_password",
                "admin",
                "sets a new password, lifts a lockout and ends the user's sessions",
            )
        },
        Route {
            answer: ("200", json(generator.subschema_for::<Clients>().to_value())),
            ..route(
                "get",
                "/api/v1/admin/clients",
                "list_clients",
                "admin",
                "the API clients, never their tokens (ADMIN)",
            )
        },
        Route {
            body: Some(generator.subschema_for::<ClientBody>().to_value()),
            answer: ("201", json(generator.subschema_for::<Issued>().to_value())),
            ..route(
                "post",
                "/api/v1/admin/clients",
                "issue_client",
                "admin",
                "issues an API client; the answer holds its token, the only time it is shown (ADMIN)",
            )
        },
        Route {
            parameters: &["client_id"],
            answer: (
                "200",
                json(generator.subschema_for::<ClientRecord>().to_value()),
            ),
            ..route(
                "post",
                "/api/v1/admin/clients/{client_id}/revoke",
                "revoke_client",
                "admin",
                "revokes an API client, at once (ADMIN)",
            )
        },
        Route {
            query: &[
                ("case_id", "only reads of this case"),
                ("principal_id", "only this principal's records"),
                ("kind", "only records of this kind (e.g. PII_READ)"),
                ("from", "RFC 3339: not before"),
                ("to", "RFC 3339: before"),
                ("limit", "at most this many records"),
                ("format", "csv for a CSV download (text/csv)"),
            ],
            answer: (
                "200",
                json(generator.subschema_for::<AuditRecords>().to_value()),
            ),
            ..route(
                "get",
                "/api/v1/audit",
                "get_audit_log",
                "admin",
                "the audit log, newest first, as JSON or CSV (HQ, ADMIN); the read is recorded too",
            )
        },
        Route {
            query: &[("encoding", "utf-8 (default, with a BOM) or shift_jis")],
            answer: ("200", Some(("text/csv", json!({"type": "string", "description": "CSV, UTF-8 with a BOM or Shift_JIS"})))),
            ..route(
                "get",
                "/api/v1/exports/bed_board.csv",
                "export_bed_board",
                "exports",
                "the bed board as the caller's view shows it, a row per facility and category (the daily report)",
            )
        },
        Route {
            query: &[("encoding", "utf-8 (default, with a BOM) or shift_jis")],
            answer: ("200", Some(("text/csv", json!({"type": "string", "description": "CSV, UTF-8 with a BOM or Shift_JIS"})))),
            ..route(
                "get",
                "/api/v1/exports/cases.csv",
                "export_cases",
                "exports",
                "a health center's cases with the patients' identities (HQ: every health center's); each case is an audited read",
            )
        },
        Route {
            query: &[("encoding", "utf-8 (default, with a BOM) or shift_jis")],
            answer: ("200", Some(("text/csv", json!({"type": "string", "description": "CSV, UTF-8 with a BOM or Shift_JIS"})))),
            ..route(
                "get",
                "/api/v1/exports/open_data.csv",
                "export_open_data",
                "exports",
                "the public figures by area and bed category, in the manner of the national COVID-19 open-data item definitions (anyone who reads views)",
            )
        },
        Route {
            query: &[("encoding", "utf-8 (default, with a BOM) or shift_jis")],
            answer: ("200", Some(("text/csv", json!({"type": "string", "description": "CSV, UTF-8 with a BOM or Shift_JIS"})))),
            ..route(
                "get",
                "/api/v1/exports/placements.csv",
                "export_placements",
                "exports",
                "HQ's placement log: every placement with the time of each step, the waits in minutes (HQ)",
            )
        },
        Route {
            query: &[
                ("from", "the first day, YYYY-MM-DD in Japan (default: 13 days before `to`)"),
                ("to", "the last day, YYYY-MM-DD in Japan (default: today)"),
            ],
            answer: ("200", Some(("text/html", json!({"type": "string", "description": "the report as one HTML page, in Japanese, with SVG charts"})))),
            ..route(
                "get",
                "/api/v1/reports/after_action",
                "report_after_action",
                "exports",
                "the after-action report of a period (振り返り報告書): the surge's curve, beds against demand by area, times to a bed, declines, alerts and how fast they were acknowledged, computed from the event log (HQ)",
            )
        },
        Route {
            query: &[
                ("dry_run", "true: decide every row, write nothing"),
                ("encoding", "auto (default), utf-8 or shift_jis"),
                ("mapping", "JSON object of the file's headers to case fields, for other layouts (docs/import.md)"),
            ],
            body: Some(json!({"type": "string", "description": "the case file: CSV in UTF-8 (with or without BOM) or Shift_JIS"})),
            body_media: "text/csv",
            answer: ("200", json(generator.subschema_for::<ImportAnswer>().to_value())),
            ..route(
                "post",
                "/api/v1/import/cases",
                "import_cases",
                "import",
                "imports a health center's case file, row by row as ReportCase; with Accept: application/x-ndjson, progress, every error and the summary come line by line (health centers)",
            )
        },
        Route {
            query: &[
                ("dry_run", "true: decide every row, write nothing"),
                ("encoding", "auto (default), utf-8 or shift_jis"),
                ("mapping", "JSON object of the file's headers to case fields, for other layouts (docs/import.md)"),
            ],
            body: Some(json!({"type": "string", "description": "the capacity file: CSV in UTF-8 (with or without BOM) or Shift_JIS"})),
            body_media: "text/csv",
            answer: ("200", json(generator.subschema_for::<ImportAnswer>().to_value())),
            ..route(
                "post",
                "/api/v1/import/capacity",
                "import_capacity",
                "import",
                "imports a capacity file, row by row as DeclareCapacity (a row whose figures are in force already is present); facilities their own rows, HQ any facility's on its behalf",
            )
        },
        Route {
            answer: ("200", json(json!({"$ref": "#/components/schemas/noroshi.v1.AlertRulesInForce"}))),
            ..route(
                "get",
                "/api/v1/alert-rules",
                "get_alert_rules",
                "alerts",
                "every alert rule in force, the defaults included where HQ set none (HQ)",
            )
        },
        Route {
            answer: ("200", json(generator.subschema_for::<Webhooks>().to_value())),
            ..route(
                "get",
                "/api/v1/webhooks",
                "list_webhooks",
                "alerts",
                "webhook endpoints, never their secrets (HQ and ADMIN every one, others their organisation's)",
            )
        },
        Route {
            body: Some(generator.subschema_for::<WebhookBody>().to_value()),
            answer: ("201", json(generator.subschema_for::<Registered>().to_value())),
            ..route(
                "post",
                "/api/v1/webhooks",
                "register_webhook",
                "alerts",
                "registers an endpoint for an organisation's alerts; the answer holds its signing secret, the only time it is shown (HQ, ADMIN)",
            )
        },
        Route {
            parameters: &["webhook_id"],
            answer: ("204", None),
            ..route(
                "delete",
                "/api/v1/webhooks/{webhook_id}",
                "delete_webhook",
                "alerts",
                "removes an endpoint; its pending deliveries stop (HQ, ADMIN)",
            )
        },
        Route {
            parameters: &["webhook_id"],
            answer: ("200", json(generator.subschema_for::<Deliveries>().to_value())),
            ..route(
                "get",
                "/api/v1/webhooks/{webhook_id}/deliveries",
                "list_webhook_deliveries",
                "alerts",
                "an endpoint's deliveries, newest first, with each attempt's outcome (its organisation, HQ, ADMIN)",
            )
        },
        Route {
            answer: ("200", json(generator.subschema_for::<Areas>().to_value())),
            ..route(
                "get",
                "/api/v1/areas",
                "get_areas",
                "reference",
                "the medical areas and their municipalities by code (any reader of views)",
            )
        },
        Route {
            answer: (
                "200",
                json(generator.subschema_for::<Facilities>().to_value()),
            ),
            ..route(
                "get",
                "/api/v1/facilities",
                "get_facilities",
                "reference",
                "the registered facilities' names, kinds and areas (any reader of views but PUBLIC)",
            )
        },
        Route {
            parameters: &["placement_id"],
            answer: (
                "200",
                json(generator.subschema_for::<Candidates>().to_value()),
            ),
            ..route(
                "get",
                "/api/v1/placements/{placement_id}/candidates",
                "get_candidates",
                "reference",
                "where HQ may offer a waiting placement, best first (HQ)",
            )
        },
        Route {
            parameters: &["case_id"],
            answer: (
                "200",
                json(generator.subschema_for::<Observations>().to_value()),
            ),
            ..route(
                "get",
                "/api/v1/cases/{case_id}/observations",
                "get_observations",
                "reference",
                "a case's SpO2 and temperature trend (an audited read)",
            )
        },
        Route {
            open: true,
            answer: (
                "200",
                Some(("text/plain", json!({"type": "string", "const": "ok"}))),
            ),
            ..route(
                "get",
                "/healthz",
                "healthz",
                "operations",
                "the process is up",
            )
        },
        Route {
            open: true,
            answer: (
                "200",
                json(generator.subschema_for::<crate::http::operations::Readiness>().to_value()),
            ),
            ..route(
                "get",
                "/readyz",
                "readyz",
                "operations",
                "ready, with each projection's lag",
            )
        },
        Route {
            open: true,
            answer: (
                "200",
                Some((crate::metrics::CONTENT_TYPE, json!({"type": "string"}))),
            ),
            ..route(
                "get",
                "/metrics",
                "metrics",
                "operations",
                "Prometheus metrics (OpenMetrics text)",
            )
        },
        Route {
            open: true,
            answer: (
                "200",
                Some((
                    "application/json",
                    json!({"type": "object",
                "description": "this document (OpenAPI 3.1)"}),
                )),
            ),
            ..route(
                "get",
                "/api/v1/openapi.json",
                "openapi",
                "operations",
                "this document",
            )
        },
    ]
    .into_iter()
    .chain(pages())
    .collect()
}

/// The web UI's pages and forms (docs/web.md): HTML for people, described for
/// completeness.
fn pages() -> Vec<Route> {
    let html = || Some(("text/html", json!({"type": "string"})));
    let page = |path, operation, summary| Route {
        method: "get",
        path,
        operation,
        tag: "web",
        summary,
        open: true,
        parameters: &[],
        query: &[],
        body: None,
        body_media: "application/json",
        answer: ("200", html()),
    };
    vec![
        page(
            "/",
            "page_home",
            "the caller's own page, or the login (303)",
        ),
        page("/login", "page_login", "the login form"),
        Route {
            method: "post",
            answer: ("303", None),
            ..page(
                "/login",
                "submit_login",
                "logs in from the form (username, password); 303 to the caller's page",
            )
        },
        Route {
            method: "post",
            answer: ("303", None),
            ..page(
                "/logout",
                "submit_logout",
                "logs out from the form (with the CSRF token); 303 to the login",
            )
        },
        page("/hq", "page_hq", "HQ: the queue, the bed board, candidates"),
        page(
            "/hc",
            "page_health_center",
            "a health center: its cases, reports, observations, requests",
        ),
        Route {
            parameters: &["facility_id"],
            ..page(
                "/facility/{facility_id}",
                "page_facility",
                "a hospital's or hotel's inbox and capacity",
            )
        },
        page(
            "/timeline",
            "page_timeline",
            "the history of a case or placement",
        ),
        page("/public", "page_public", "the public statistics"),
        page(
            "/admin",
            "page_admin",
            "users, API clients and the audit log",
        ),
        Route {
            parameters: &["name"],
            answer: ("200", Some(("text/plain", json!({"type": "string"})))),
            ..page(
                "/assets/{name}",
                "asset",
                "the pages' script and style sheet",
            )
        },
    ]
}

/// The whole document.
pub(crate) fn document() -> Result<Value, ApiError> {
    let schema = schema()?;
    let mut document = Document::default();
    crate::views::describe(&mut document)?;
    let Document {
        mut paths,
        mut messages,
    } = document;
    for (name, request) in COMMANDS {
        let request = schema
            .get_message_by_name(&format!("noroshi.v1.{request}"))
            .ok_or_else(|| ApiError::internal(MissingMessage((*request).into())))?;
        messages.insert(request.full_name().to_owned(), request.clone());
        let mut responses = errors();
        responses["200"] = json!({
            "description": "committed (or, for a command id seen before, the original answer with replayed = true)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/noroshi.v1.CommandResult"}}},
        });
        paths.insert(
            format!("/api/v1/commands/{name}"),
            json!({"post": {
                "operationId": name,
                "tags": ["commands"],
                "summary": format!("{name}, as the gRPC method of the same name"),
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": format!("#/components/schemas/{}", request.full_name())}
                }}},
                "responses": responses,
            }}),
        );
    }
    // Proto messages answered by routes other than the commands'.
    for name in ["noroshi.v1.CommandResult", "noroshi.v1.AlertRulesInForce"] {
        if let Some(message) = schema.get_message_by_name(name) {
            messages.insert(message.full_name().to_owned(), message);
        }
    }
    // The routes besides views and commands, their bodies and answers typed from the
    // Rust types they are (de)serialized with.
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas/".into())
        .into_generator();
    for route in routes(&mut generator) {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.method] = route.operation();
    }
    // Nested messages, until every referenced one is described.
    let mut schemas = serde_json::Map::new();
    let mut done = std::collections::BTreeSet::new();
    while let Some((name, message)) = messages
        .iter()
        .find(|(name, _)| !done.contains(*name))
        .map(|(n, m)| (n.clone(), m.clone()))
    {
        done.insert(name.clone());
        schemas.insert(name, message_schema(&message, &mut messages));
    }
    schemas.extend(generator.take_definitions(true));
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message", "violations"], "properties": {
            "code": {"type": "string", "examples": ["INVALID_ARGUMENT"]},
            "message": {"type": "string"},
            "violations": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "description": {"type": "string"}}}},
        }}),
    );
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "noroshi",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Regional surge coordination: beds, cases and placements. The same API as the gRPC services of package noroshi.v1.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "noroshi_session",
                    "description": "a web session (POST /api/v1/session); state-changing requests also send X-CSRF-Token"},
            },
        },
    }))
}

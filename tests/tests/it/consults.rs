//! Remote consultations (DESIGN.md §5.5): request, schedule, start, complete, escalate,
//! cancel and miss, over gRPC and HTTP; two consult centers racing for one request; who
//! may do what; and what each reader of `consult_queue` sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{
    Actor, CONSULT, CONSULT_OTHER, HC, HC_OTHER, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, PUBLIC,
    TestApi, authed, cid,
};
use noroshi_tests::pipeline::{Pipeline, live_world};
use noroshi_tests::sse::Events;
use serde_json::{Value, json};
use tonic::Code;

async fn world() -> (TestApi, (Pipeline, NatsServer)) {
    live_world(&[
        (HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10),
        (HOTEL, "yuda-hotel", pb::BedCategory::HotelRoom, 20),
    ])
    .await
}

/// A MILD case placed in the hotel: its id.
async fn hotel_resident(api: &TestApi) -> String {
    let case_id = api.report_case(pb::Severity::Mild).await;
    api.admit(&case_id, pb::BedCategory::HotelRoom, HOTEL, "yuda-hotel")
        .await;
    case_id
}

fn request(case_id: &str, center: &str) -> pb::RequestConsultRequest {
    pb::RequestConsultRequest {
        command_id: cid(),
        case_id: case_id.into(),
        mode: pb::ConsultMode::DToPWithN as i32,
        urgency: pb::ConsultUrgency::Urgent as i32,
        question: "SpO₂ 93% で推移、入院の要否をご判断ください".into(),
        contact: "https://meet.example.invalid/yuda-hotel".into(),
        center_id: center.into(),
        ..pb::RequestConsultRequest::default()
    }
}

async fn ask(
    api: &TestApi,
    actor: Actor,
    request: pb::RequestConsultRequest,
) -> Result<(String, pb::CommandResult), tonic::Status> {
    let result = api
        .consults()
        .request_consult(authed(actor, request))
        .await?
        .into_inner();
    Ok((
        result.stream_id.trim_start_matches("consult-").to_owned(),
        result,
    ))
}

async fn schedule(
    api: &TestApi,
    actor: Actor,
    consult_id: &str,
) -> Result<pb::CommandResult, tonic::Status> {
    let at = time::OffsetDateTime::now_utc() + time::Duration::minutes(20);
    api.consults()
        .schedule_consult(authed(
            actor,
            pb::ScheduleConsultRequest {
                command_id: cid(),
                consult_id: consult_id.into(),
                scheduled_for: Some(noroshi_codec::timestamps::to_timestamp(at)),
                doctor: "遠隔 一郎".into(),
                ..pb::ScheduleConsultRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn start(
    api: &TestApi,
    actor: Actor,
    consult_id: &str,
) -> Result<pb::CommandResult, tonic::Status> {
    api.consults()
        .start_consult(authed(
            actor,
            pb::StartConsultRequest {
                command_id: cid(),
                consult_id: consult_id.into(),
                ..pb::StartConsultRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn complete(
    api: &TestApi,
    actor: Actor,
    consult_id: &str,
    recommendation: pb::Recommendation,
) -> Result<pb::CommandResult, tonic::Status> {
    api.consults()
        .complete_consult(authed(
            actor,
            pb::CompleteConsultRequest {
                command_id: cid(),
                consult_id: consult_id.into(),
                findings: "呼吸数増加、酸素投与の適応あり".into(),
                recommendation: recommendation as i32,
                ..pb::CompleteConsultRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn escalate(
    api: &TestApi,
    actor: Actor,
    consult_id: &str,
) -> Result<pb::CommandResult, tonic::Status> {
    api.consults()
        .escalate_consult(authed(
            actor,
            pb::EscalateConsultRequest {
                command_id: cid(),
                consult_id: consult_id.into(),
                category: pb::BedCategory::Moderate as i32,
                note: "遠隔診療の結果".into(),
                ..pb::EscalateConsultRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn cancel(
    api: &TestApi,
    actor: Actor,
    consult_id: &str,
) -> Result<pb::CommandResult, tonic::Status> {
    api.consults()
        .cancel_consult(authed(
            actor,
            pb::CancelConsultRequest {
                command_id: cid(),
                consult_id: consult_id.into(),
                reason: "状態が安定したため".into(),
                ..pb::CancelConsultRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(ok) => panic!("expected a refusal, got {ok:?}"),
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_consult_from_request_to_escalation_with_its_refusals() {
    let (api, _read_side) = world().await;
    let case_id = hotel_resident(&api).await;

    // Who may ask: the hotel where the patient is, the owning health center, HQ; nobody
    // else, and a consult center least of all.
    for actor in [HOSPITAL_OTHER, HC_OTHER, CONSULT, PUBLIC] {
        assert_eq!(
            code(ask(&api, actor, request(&case_id, "")).await),
            Code::PermissionDenied,
            "{}",
            actor.organisation
        );
    }
    let (consult, requested) = ask(&api, HOTEL, request(&case_id, "")).await.unwrap();
    assert!(
        requested
            .streams
            .iter()
            .any(|s| s.stream_id == format!("case-{case_id}")),
        "the case records its open consult: {requested:?}"
    );
    // One open consult per case and provider: another to any center is refused, one
    // addressed to a named center is not.
    assert_eq!(
        code(ask(&api, HC, request(&case_id, "")).await),
        Code::FailedPrecondition
    );
    let (addressed, _) = ask(&api, HC, request(&case_id, "hagi-consult"))
        .await
        .unwrap();
    assert_eq!(
        code(schedule(&api, CONSULT, &addressed).await),
        Code::FailedPrecondition,
        "addressed to the other center"
    );

    // Only consult centers schedule; the others may not conduct what they did not
    // schedule.
    assert_eq!(
        code(schedule(&api, HOTEL, &consult).await),
        Code::PermissionDenied
    );
    schedule(&api, CONSULT, &consult).await.unwrap();
    assert_eq!(
        code(schedule(&api, CONSULT_OTHER, &consult).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(start(&api, CONSULT_OTHER, &consult).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(complete(&api, CONSULT, &consult, pb::Recommendation::Escalate).await),
        Code::FailedPrecondition,
        "not started"
    );
    start(&api, CONSULT, &consult).await.unwrap();
    complete(&api, CONSULT, &consult, pb::Recommendation::Escalate)
        .await
        .unwrap();
    // A completed consult is closed on its case: a new one may be asked.
    assert!(ask(&api, HOTEL, request(&case_id, "")).await.is_ok());

    // ESCALATE opens a placement request in one step: the resident keeps the room.
    let escalated = escalate(&api, HOTEL, &consult).await.unwrap();
    let placement = escalated
        .streams
        .iter()
        .find(|s| s.stream_id.starts_with("placement-"))
        .map(|s| s.stream_id.clone())
        .expect("a placement request");
    assert_eq!(
        api.event_types(&placement).await,
        ["PlacementRequested"],
        "{escalated:?}"
    );
    assert_eq!(
        api.event_types(&format!("consult-{consult}"))
            .await
            .last()
            .unwrap(),
        "ConsultEscalated"
    );
    assert_eq!(
        code(escalate(&api, HOTEL, &consult).await),
        Code::FailedPrecondition,
        "escalated once"
    );
    let versions = escalated
        .streams
        .iter()
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .collect::<Vec<_>>()
        .join(",");
    let (status, queue) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/placement_queue?min_versions={versions}"),
        )
        .await;
    assert_eq!(status, 200, "{queue}");
    let row = queue["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| format!("placement-{}", r["placement_id"].as_str().unwrap()) == placement)
        .unwrap_or_else(|| panic!("the escalation in HQ's queue: {queue}"));
    assert_eq!(
        (row["origin_kind"].as_str(), row["origin"].as_str()),
        (Some("FACILITY"), Some("yuda-hotel"))
    );

    // The addressed consult is cancelled by the health center; a cancelled consult is
    // neither missed nor cancelled again.
    assert_eq!(
        code(cancel(&api, HOSPITAL_OTHER, &addressed).await),
        Code::PermissionDenied
    );
    cancel(&api, HC, &addressed).await.unwrap();
    assert_eq!(
        code(cancel(&api, HQ, &addressed).await),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn two_consult_centers_racing_for_one_request_give_one_schedule() {
    let (api, _read_side) = world().await;
    for _ in 0..5 {
        let case_id = hotel_resident(&api).await;
        let (consult, _) = ask(&api, HOTEL, request(&case_id, "")).await.unwrap();
        let (a, b) = tokio::join!(
            schedule(&api, CONSULT, &consult),
            schedule(&api, CONSULT_OTHER, &consult)
        );
        let codes: Vec<Code> = [&a, &b]
            .iter()
            .map(|r| r.as_ref().map_or_else(tonic::Status::code, |_| Code::Ok))
            .collect();
        assert_eq!(
            codes.iter().filter(|c| **c == Code::Ok).count(),
            1,
            "{a:?} {b:?}"
        );
        assert!(codes.contains(&Code::FailedPrecondition), "{a:?} {b:?}");
        assert_eq!(
            api.event_types(&format!("consult-{consult}")).await,
            ["ConsultRequested", "ConsultScheduled"]
        );
    }
}

/// `RequestConsult` over HTTP by the hotel: a valid request with `changes` and `window`
/// laid over it (a null removes a field). Status, answer, and the fields it names.
async fn post_request(
    api: &TestApi,
    case_id: &str,
    changes: Value,
    window: &Value,
) -> (u16, Value, Vec<String>) {
    let mut body = json!({
        "command_id": cid(),
        "case_id": case_id,
        "mode": "CONSULT_MODE_D_TO_P_WITH_N",
        "urgency": "CONSULT_URGENCY_EMERGENCY",
        "question": "呼吸苦の訴えあり",
        "contact": "0835-00-0000",
    });
    let fields = body.as_object_mut().unwrap();
    for (key, value) in changes
        .as_object()
        .unwrap()
        .iter()
        .chain(window.as_object().unwrap())
    {
        if value.is_null() {
            fields.remove(key);
        } else {
            fields.insert(key.clone(), value.clone());
        }
    }
    let (status, answer) = api
        .http_post(
            Some(HOTEL),
            "/api/v1/commands/RequestConsult",
            body.to_string(),
        )
        .await;
    let named = answer["violations"]
        .as_array()
        .map(|violations| {
            violations
                .iter()
                .filter_map(|v| v["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (status, answer, named)
}

#[tokio::test]
async fn bad_consult_requests_name_every_field_over_http() {
    let (api, _read_side) = world().await;
    let case_id = hotel_resident(&api).await;
    let window = json!({
        "preferred_from": "2026-12-08T10:00:00Z",
        "preferred_until": "2026-12-08T09:00:00Z",
    });
    let (status, answer, fields) = post_request(
        &api,
        &case_id,
        json!({"urgency": null, "question": "", "contact": ""}),
        &window,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(fields.contains(&"urgency".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"question".to_owned()) || fields.contains(&"contact".to_owned()),
        "{fields:?}"
    );
    let events = api.db.event_count().await;
    // A blank question is no question; the window is the domain's rule, checked once
    // every field parses.
    let (status, answer, fields) =
        post_request(&api, &case_id, json!({"question": " "}), &window).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(fields, ["question"], "{answer}");
    let (status, answer, fields) = post_request(&api, &case_id, json!({}), &window).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(fields, ["preferred_until"], "{answer}");
    assert_eq!(api.db.event_count().await, events, "nothing written");
    // An unknown consult is not found for HQ, and denied for a center that could not
    // tell.
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        code(start(&api, CONSULT, &unknown).await),
        Code::PermissionDenied
    );
    assert_eq!(code(cancel(&api, HQ, &unknown).await), Code::NotFound);
    // Over HTTP the same request works as over gRPC.
    let (status, answer) = api
        .http_post(
            Some(HC),
            "/api/v1/commands/RequestConsult",
            json!({
                "command_id": cid(),
                "case_id": case_id,
                "mode": "CONSULT_MODE_D_TO_D",
                "urgency": "CONSULT_URGENCY_ROUTINE",
                "question": "今後の療養方針について",
                "contact": "0835-00-0000",
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["stream_id"]
            .as_str()
            .unwrap()
            .starts_with("consult-")
    );
}

/// The fictional patient of `report_request`.
const PATIENT_NAME: &str = "試験 花子";

/// The row of `consult` in a queue answer or delta, if any.
fn consult_row(data: &Value, consult: &str) -> Option<Value> {
    data["rows"]
        .as_array()?
        .iter()
        .find(|r| r["consult_id"] == consult)
        .cloned()
}

/// Follows a consult_queue stream until `wanted` holds of an event's data. With
/// `private`, every event on the way must say nothing of that patient.
async fn until(
    events: &mut Events,
    private: Option<&str>,
    wanted: impl Fn(&str, &Value) -> bool,
) -> Value {
    loop {
        let (name, data) = events
            .next(Duration::from_secs(15))
            .await
            .expect("an update of the consult queue");
        if let Some(case_id) = private {
            let text = data.to_string();
            assert!(
                !text.contains(PATIENT_NAME) && !text.contains(case_id),
                "{name}: {text}"
            );
        }
        if wanted(&name, &data) {
            return data;
        }
    }
}

async fn pii_reads(api: &TestApi, actor: Actor, case_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'PII_READ' AND organisation_id = $1 \
         AND case_id = $2::uuid AND via = 'consult_queue'",
    )
    .bind(actor.organisation)
    .bind(case_id)
    .fetch_one(api.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn consult_centers_see_a_request_de_identified_until_one_schedules_it() {
    let (api, _read_side) = world().await;
    let case_id = hotel_resident(&api).await;
    let mut taker = Events::open(&api, CONSULT, "/api/v1/views/consult_queue/stream").await;
    let mut other = Events::open(&api, CONSULT_OTHER, "/api/v1/views/consult_queue/stream").await;
    let mut hotel = Events::open(&api, HOTEL, "/api/v1/views/consult_queue/stream").await;
    for events in [&mut taker, &mut other, &mut hotel] {
        let (name, data) = events.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(name, "snapshot", "{data}");
        assert_eq!(data["rows"], json!([]), "{data}");
    }
    let (consult, requested) = ask(&api, HOTEL, request(&case_id, "")).await.unwrap();

    // Both centers see the request, de-identified, live and when they read.
    for events in [&mut taker, &mut other] {
        let data = until(events, Some(&case_id), |_, data| {
            consult_row(data, &consult).is_some()
        })
        .await;
        let row = consult_row(&data, &consult).unwrap();
        assert_eq!(row["identified"], false, "{row}");
        assert_eq!(row["urgency"], "CONSULT_URGENCY_URGENT", "{row}");
        assert_eq!(row["severity"], "SEVERITY_MILD", "{row}");
        assert_eq!(row["age_band"], "70-79", "{row}");
        for withheld in ["case_id", "name", "question", "contact", "age"] {
            assert!(row.get(withheld).is_none(), "{withheld} in {row}");
        }
        assert!(!data.to_string().contains(PATIENT_NAME), "{data}");
    }
    let fresh = requested
        .streams
        .iter()
        .find(|s| s.stream_id.starts_with("consult-"))
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .unwrap();
    let (status, queue) = api
        .http_get(
            Some(CONSULT_OTHER),
            &format!("/api/v1/views/consult_queue?min_versions={fresh}"),
        )
        .await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(consult_row(&queue, &consult).unwrap()["identified"], false);
    assert_eq!(pii_reads(&api, CONSULT_OTHER, &case_id).await, 0);
    // The requester sees its own request identified.
    let data = until(&mut hotel, None, |_, data| {
        consult_row(data, &consult).is_some()
    })
    .await;
    let row = consult_row(&data, &consult).unwrap();
    assert_eq!(
        (row["identified"].as_bool(), row["name"].as_str()),
        (Some(true), Some(PATIENT_NAME)),
        "{row}"
    );

    // One center schedules it: it now sees the patient; the other loses the request.
    let scheduled = schedule(&api, CONSULT, &consult).await.unwrap();
    let data = until(&mut taker, None, |_, data| {
        consult_row(data, &consult).is_some_and(|r| r["identified"] == true)
    })
    .await;
    let row = consult_row(&data, &consult).unwrap();
    assert_eq!(row["name"], PATIENT_NAME, "{row}");
    assert_eq!(
        row["question"],
        "SpO₂ 93% で推移、入院の要否をご判断ください"
    );
    assert_eq!(row["center"], "yamaguchi-consult");
    assert_eq!(row["status"], "CONSULT_STATUS_SCHEDULED");
    until(&mut other, Some(&case_id), |name, data| {
        name == "delta"
            && data["removed"]
                .as_array()
                .is_some_and(|r| r.iter().any(|id| id == consult.as_str()))
    })
    .await;
    // Nothing more of it reaches the other center, not even when the consult moves on.
    start(&api, CONSULT, &consult).await.unwrap();
    assert!(
        other.next(Duration::from_secs(2)).await.is_none(),
        "the other center's queue is as it was"
    );
    assert!(pii_reads(&api, CONSULT, &case_id).await >= 1);
    assert_eq!(pii_reads(&api, CONSULT_OTHER, &case_id).await, 0);

    // Who else reads it: the owning health center and HQ identified; a hospital the
    // patient has nothing to do with sees nothing; the public is refused.
    let fresh = scheduled
        .streams
        .iter()
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .collect::<Vec<_>>()
        .join(",");
    for actor in [HC, HQ] {
        let (status, queue) = api
            .http_get(
                Some(actor),
                &format!("/api/v1/views/consult_queue?min_versions={fresh}"),
            )
            .await;
        assert_eq!(status, 200, "{queue}");
        assert_eq!(
            consult_row(&queue, &consult).unwrap()["name"],
            PATIENT_NAME,
            "{}",
            actor.organisation
        );
    }
    // The center that took it reads the case's history, naming itself where it took
    // it; the other center may not.
    let case_stream = scheduled
        .streams
        .iter()
        .find(|s| s.stream_id.starts_with("case-"))
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .unwrap();
    let (status, timeline) = api
        .http_get(
            Some(CONSULT),
            &format!("/api/v1/views/timeline?case_id={case_id}&min_versions={case_stream}"),
        )
        .await;
    assert_eq!(status, 200, "{timeline}");
    let entries = timeline["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["event_type"] == "ConsultOpened" && e["facility_id"] == "yamaguchi-consult"),
        "{timeline}"
    );
    assert!(
        entries.iter().any(|e| e["event_type"] == "CaseReported"),
        "{timeline}"
    );
    let (status, _) = api
        .http_get(
            Some(CONSULT_OTHER),
            &format!("/api/v1/views/timeline?case_id={case_id}"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, queue) = api
        .http_get(Some(HOSPITAL_OTHER), "/api/v1/views/consult_queue")
        .await;
    assert_eq!((status, &queue["rows"]), (200, &json!([])), "{queue}");
    let (status, _) = api
        .http_get(Some(PUBLIC), "/api/v1/views/consult_queue")
        .await;
    assert_eq!(status, 403);
    // Over gRPC the same rules.
    let queue = api
        .views()
        .get_consult_queue(authed(CONSULT_OTHER, pb::GetConsultQueueRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        queue.rows.iter().all(|r| r.consult_id != consult),
        "{queue:?}"
    );
}

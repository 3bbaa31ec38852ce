//! Patients at home in the care of a clinic or mobile clinic (DESIGN.md §5.4, §7): the
//! health center assigns the care site; the care site reads the patient on its case board
//! (live), records observations and asks for consults; the care ends when the patient
//! arrives at a facility, and every other organisation stays refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{Actor, HC, HC_OTHER, HOSPITAL, HOTEL, MOBILE, TestApi, authed, cid};
use noroshi_tests::pipeline::{Pipeline, live_world};
use noroshi_tests::sse::Events;
use serde_json::{Value, json};
use tonic::Code;

async fn world() -> (TestApi, (Pipeline, NatsServer)) {
    live_world(&[(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10)]).await
}

/// `AssignCareSite` over HTTP as `actor`: status and answer.
async fn assign(api: &TestApi, actor: Actor, case_id: &str, care_site: &str) -> (u16, Value) {
    api.http_post(
        Some(actor),
        "/api/v1/commands/AssignCareSite",
        json!({
            "command_id": cid(),
            "case_id": case_id,
            "care_site_id": care_site,
            "note": "週2回の訪問",
        })
        .to_string(),
    )
    .await
}

async fn observe(
    api: &TestApi,
    actor: Actor,
    case_id: &str,
    spo2: i64,
) -> Result<pb::CommandResult, tonic::Status> {
    api.cases()
        .record_observation(authed(
            actor,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.into(),
                spo2_percent: spo2,
                temperature_decicelsius: 378,
                ..pb::RecordObservationRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// `min_versions` naming every stream a command wrote.
fn fresh(result: &pb::CommandResult) -> String {
    result
        .streams
        .iter()
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .collect::<Vec<_>>()
        .join(",")
}

/// `min_versions` naming every stream a command answered over HTTP wrote.
fn fresh_json(answer: &Value) -> String {
    answer["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let version = &s["version"];
            let version = version
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| version.to_string());
            format!("{}:{version}", s["stream_id"].as_str().unwrap())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The case board `actor` reads once the command that returned `after` is applied.
async fn board(api: &TestApi, actor: Actor, after: &str) -> Vec<Value> {
    let (status, board) = api
        .http_get(
            Some(actor),
            &format!("/api/v1/views/case_board?min_versions={after}"),
        )
        .await;
    assert_eq!(status, 200, "{board}");
    board["rows"].as_array().cloned().unwrap_or_default()
}

/// Reads `events` until `done` holds for an update; panics after 10 s.
async fn until(events: &mut Events, mut done: impl FnMut(&str, &Value) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (name, data) = events.next(left).await.expect("the update came in time");
        if done(&name, &data) {
            return;
        }
    }
}

#[tokio::test]
async fn a_mobile_clinic_cares_for_a_patient_at_home_until_a_hospital_admits_them() {
    let (api, _read_side) = world().await;
    let case_id = api.report_case(pb::Severity::Mild).await;
    api.cases()
        .start_home_care(authed(
            HC,
            pb::StartHomeCareRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                ..pb::StartHomeCareRequest::default()
            },
        ))
        .await
        .unwrap();
    let mut live = Events::open(&api, MOBILE, "/api/v1/views/case_board/stream").await;
    let (name, snapshot) = live.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "snapshot", "{snapshot}");
    assert_eq!(snapshot["rows"], json!([]), "nobody in its care yet");

    // Before it is assigned, the mobile clinic may not touch the patient.
    assert_eq!(
        observe(&api, MOBILE, &case_id, 95)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let (status, assigned) = assign(&api, HC, &case_id, MOBILE.organisation).await;
    assert_eq!(status, 200, "{assigned}");
    // The patient appears on the mobile clinic's board, live, identified.
    until(&mut live, |name, data| {
        name == "delta"
            && data["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["case_id"] == case_id.as_str()))
    })
    .await;
    let rows = board(&api, MOBILE, &fresh_json(&assigned)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["case_id"], case_id.as_str());
    assert_eq!(rows[0]["care_site_id"], MOBILE.organisation);
    assert!(rows[0]["name"].as_str().is_some_and(|n| !n.is_empty()));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'PII_READ' AND organisation_id = $1 \
         AND case_id = $2::uuid",
    )
    .bind(MOBILE.organisation)
    .bind(&case_id)
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert!(audited >= 1, "the care site's reads are audited");

    // It records what it sees; the deterioration reaches the health center's board.
    let observed = observe(&api, MOBILE, &case_id, 93).await.unwrap();
    let types = api.event_types(&format!("case-{case_id}")).await;
    assert!(types.ends_with(&["ObservationRecorded".into(), "DeteriorationFlagged".into()]));
    let hc_rows = board(&api, HC, &fresh(&observed)).await;
    let row = hc_rows
        .iter()
        .find(|r| r["case_id"] == case_id.as_str())
        .unwrap();
    assert_eq!(row["last_observed_by"], MOBILE.organisation, "{row}");
    assert_eq!(row["last_spo2"], 93, "{row}");
    assert_eq!(row["deteriorated"], true, "{row}");
    assert_eq!(row["care_site_id"], MOBILE.organisation, "{row}");

    // It asks a consult center to see the patient, and sees its own request identified.
    let consult = api
        .consults()
        .request_consult(authed(
            MOBILE,
            pb::RequestConsultRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                mode: pb::ConsultMode::DToPWithN as i32,
                urgency: pb::ConsultUrgency::Urgent as i32,
                question: "訪問時 SpO₂ 93%、入院の要否をご判断ください".into(),
                contact: "https://meet.example.invalid/akiyoshi-mobile".into(),
                ..pb::RequestConsultRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (status, queue) = api
        .http_get(
            Some(MOBILE),
            &format!(
                "/api/v1/views/consult_queue?min_versions={}",
                fresh(&consult)
            ),
        )
        .await;
    assert_eq!(status, 200, "{queue}");
    let mine = &queue["rows"][0];
    assert_eq!(mine["case_id"], case_id.as_str(), "{queue}");
    assert_eq!(mine["identified"], true, "{queue}");
    assert_eq!(mine["requested_by"], MOBILE.organisation, "{queue}");
    // The consult is cancelled (the health center arranges a bed instead) before the
    // patient moves: a case with an open consult may still be placed.
    api.consults()
        .cancel_consult(authed(
            MOBILE,
            pb::CancelConsultRequest {
                command_id: cid(),
                consult_id: consult.stream_id.trim_start_matches("consult-").into(),
                reason: "保健所が入院を調整".into(),
                ..pb::CancelConsultRequest::default()
            },
        ))
        .await
        .unwrap();

    // The patient is admitted: the care ends with the arrival.
    let (_, arrived) = api
        .admit(
            &case_id,
            pb::BedCategory::Moderate,
            HOSPITAL,
            "hofu-central",
        )
        .await;
    until(&mut live, |name, data| {
        name == "delta"
            && data["removed"]
                .as_array()
                .is_some_and(|removed| removed.iter().any(|r| r == case_id.as_str()))
    })
    .await;
    // The mobile clinic may no longer follow the case; its board, read after the removal
    // it saw live, is empty.
    assert!(board(&api, MOBILE, "").await.is_empty());
    let hc_rows = board(&api, HC, &fresh(&arrived)).await;
    let row = hc_rows
        .iter()
        .find(|r| r["case_id"] == case_id.as_str())
        .unwrap();
    assert!(row.get("care_site_id").is_none(), "{row}");
    assert_eq!(
        observe(&api, MOBILE, &case_id, 94)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied,
        "the hospital observes its patient now"
    );
    observe(&api, HOSPITAL, &case_id, 94).await.unwrap();
    // A care site cares for a patient at home only.
    let (status, refused) = assign(&api, HC, &case_id, MOBILE.organisation).await;
    assert_eq!(status, 412, "{refused}");
    assert_eq!(refused["code"], "FAILED_PRECONDITION", "{refused}");
}

#[tokio::test]
async fn a_care_site_is_a_registered_clinic_and_only_the_owning_health_center_assigns_it() {
    let (api, _read_side) = world().await;
    let case_id = api.report_case(pb::Severity::Mild).await;
    let before = api.db.event_count().await;
    // Not a clinic, not registered, not an id, not a case.
    for (care_site, field) in [
        ("hofu-central", "care_site_id"),
        ("no-such-clinic", "care_site_id"),
        ("Not An Id!", "care_site_id"),
    ] {
        let (status, answer) = assign(&api, HC, &case_id, care_site).await;
        assert_eq!(status, 400, "{care_site}: {answer}");
        assert_eq!(answer["code"], "INVALID_ARGUMENT", "{answer}");
        assert_eq!(answer["violations"][0]["field"], field, "{answer}");
    }
    let (status, answer) = api
        .http_post(
            Some(HC),
            "/api/v1/commands/AssignCareSite",
            json!({"command_id": cid(), "case_id": "nope", "care_site_id": 7}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    // Another health center, the hospital, the hotel and the mobile clinic itself are
    // refused, revealing nothing.
    for actor in [HC_OTHER, HOSPITAL, HOTEL, MOBILE] {
        let (status, answer) = assign(&api, actor, &case_id, MOBILE.organisation).await;
        assert_eq!(status, 403, "{}: {answer}", actor.organisation);
    }
    assert_eq!(api.db.event_count().await, before, "nothing was written");

    // Assigned twice is refused; ended, it can be assigned again.
    let (status, assigned) = assign(&api, HC, &case_id, MOBILE.organisation).await;
    assert_eq!(status, 200, "{assigned}");
    // The care site's timeline reader sees the history of the patient it cared for.
    let (status, timeline) = api
        .http_get(
            Some(MOBILE),
            &format!(
                "/api/v1/views/timeline?case_id={case_id}&min_versions={}",
                fresh_json(&assigned)
            ),
        )
        .await;
    assert_eq!(status, 200, "{timeline}");
    let named: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "CareSiteAssigned")
        .filter_map(|e| e["facility_id"].as_str())
        .collect();
    assert_eq!(named, [MOBILE.organisation], "{timeline}");
    let (status, answer) = assign(&api, HC, &case_id, MOBILE.organisation).await;
    assert_eq!(status, 412, "{answer}");
    assert_eq!(answer["code"], "FAILED_PRECONDITION", "{answer}");
    let (status, ended) = assign(&api, HC, &case_id, "").await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(
        observe(&api, MOBILE, &case_id, 96)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied,
        "the care ended"
    );
    let types = api.event_types(&format!("case-{case_id}")).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| t.as_str() == "CareSiteAssigned")
            .count(),
        2,
        "{types:?}"
    );
}

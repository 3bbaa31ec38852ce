//! HQ's candidates for a waiting placement (`GET /api/v1/placements/{id}/candidates`):
//! free beds of the category, own area first, then bordering areas, decliners last;
//! HQ only; bad ids named. And the names that pages label codes and ids with: of medical
//! areas and municipalities (`GET /api/v1/areas`) and of facilities (`GET /api/v1/facilities`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{HC, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, PUBLIC, TestApi};
use noroshi_tests::pipeline::Pipeline;
use serde_json::Value;

/// The candidates' facility ids, once the placement has reached the queue.
async fn candidates(api: &TestApi, placement_id: &str) -> Vec<Value> {
    let path = format!("/api/v1/placements/{placement_id}/candidates");
    for _ in 0..150 {
        let (status, body) = api.http_get(Some(HQ), &path).await;
        if status == 200 {
            return body["candidates"].as_array().unwrap().clone();
        }
        assert_eq!(status, 404, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the placement never reached the queue");
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter()
        .map(|c| c["facility_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn candidates_rank_own_area_then_bordering_areas_and_decliners_last() {
    let nats = NatsServer::start().await;
    let api = TestApi::start().await;
    api.seed().await;
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    // hofu-central is in 3504 with the patient, ube-medical in 3505; the hotel has no
    // moderate beds.
    api.declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 4, 2, 0)
        .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        9,
        8,
        0,
    )
    .await;
    api.declare(HOTEL, "yuda-hotel", pb::BedCategory::HotelRoom, 9, 8, 0)
        .await;
    sqlx::query(
        "INSERT INTO medical_areas (code, name, neighbours) VALUES \
         ('3504', '山口・防府', '{3505}'), ('3505', '宇部・小野田', '{3504}')",
    )
    .execute(api.db.pool())
    .await
    .unwrap();
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;

    // Each view catches up on its own: wait until the board shows both hospitals' beds
    // and the facilities' areas are known.
    let mut list = Vec::new();
    for _ in 0..150 {
        list = candidates(&api, &placement).await;
        if list.len() == 2 && list.iter().any(|c| c["same_area"] == true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids(&list), ["hofu-central", "ube-medical"], "{list:?}");
    assert_eq!(list[0]["same_area"], true);
    assert_eq!(list[1]["near_area"], true);
    assert_eq!(list[0]["available"], 2);

    // After hofu-central declines, it comes last.
    api.offer(&placement, "hofu-central").await;
    api.decline(HOSPITAL, &placement).await;
    for _ in 0..150 {
        list = candidates(&api, &placement).await;
        if list
            .first()
            .is_some_and(|c| c["facility_id"] == "ube-medical")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids(&list), ["ube-medical", "hofu-central"], "{list:?}");
    assert_eq!(list[1]["declined_before"], true);

    // HQ only; bad and unknown ids.
    let path = format!("/api/v1/placements/{placement}/candidates");
    assert_eq!(api.http_get(Some(HC), &path).await.0, 403);
    let (status, body) = api
        .http_get(Some(HQ), "/api/v1/placements/not-a-uuid/candidates")
        .await;
    assert_eq!(
        (status, body["violations"][0]["field"].as_str()),
        (400, Some("placement_id"))
    );
    let (status, _) = api
        .http_get(
            Some(HQ),
            "/api/v1/placements/0190a000-0000-7000-8000-000000000000/candidates",
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_reader_gets_the_names_of_areas_and_municipalities_and_nobody_without_credentials() {
    let api = TestApi::start().await;
    api.seed().await;
    let (status, body) = api.http_get(Some(HQ), "/api/v1/areas").await;
    assert_eq!(
        (status, body),
        (
            200,
            serde_json::json!({ "areas": [], "municipalities": [] })
        )
    );
    sqlx::raw_sql(
        "INSERT INTO medical_areas (code, name, name_en, neighbours) VALUES \
         ('3505', '宇部・小野田', NULL, '{3504}'), ('3504', '山口・防府', 'Yamaguchi-Hofu', '{3505}'); \
         INSERT INTO municipalities (code, name, name_en, medical_area) VALUES \
         ('352063', '防府市', 'Hofu', '3504'), ('352039', '山口市', NULL, '3504')",
    )
    .execute(api.db.pool())
    .await
    .unwrap();
    let expected = serde_json::json!({
        "areas": [
            { "code": "3504", "name": "山口・防府", "name_en": "Yamaguchi-Hofu" },
            { "code": "3505", "name": "宇部・小野田", "name_en": null },
        ],
        "municipalities": [
            { "code": "352039", "name": "山口市", "name_en": null, "medical_area": "3504" },
            { "code": "352063", "name": "防府市", "name_en": "Hofu", "medical_area": "3504" },
        ],
    });
    for reader in [HQ, HC, HOSPITAL, HOTEL, PUBLIC] {
        let (status, body) = api.http_get(Some(reader), "/api/v1/areas").await;
        assert_eq!((status, &body), (200, &expected), "{}", reader.token);
    }
    let (status, body) = api.http_get(None, "/api/v1/areas").await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn every_reader_but_the_public_gets_the_facilities_names() {
    let nats = NatsServer::start().await;
    let api = TestApi::start().await;
    api.seed().await;
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    let mut facilities = Vec::new();
    for _ in 0..150 {
        let (status, body) = api.http_get(Some(HC), "/api/v1/facilities").await;
        assert_eq!(status, 200, "{body}");
        facilities = body["facilities"].as_array().unwrap().clone();
        if facilities.iter().any(|f| f["facility_id"] == "yuda-hotel") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hofu = facilities
        .iter()
        .find(|f| f["facility_id"] == "hofu-central")
        .expect("hofu-central is listed");
    assert_eq!(
        (&hofu["name"], &hofu["kind"], &hofu["medical_area"]),
        (
            &serde_json::json!("防府中央みらい病院"),
            &serde_json::json!("HOSPITAL"),
            &serde_json::json!("3504")
        )
    );
    let ids: Vec<&str> = ids(&facilities);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in id order");
    for reader in [HQ, HOSPITAL, HOTEL] {
        let (status, body) = api.http_get(Some(reader), "/api/v1/facilities").await;
        assert_eq!(status, 200, "{}: {body}", reader.token);
        assert_eq!(
            body["facilities"].as_array().unwrap().len(),
            facilities.len()
        );
    }
    let (status, body) = api.http_get(Some(PUBLIC), "/api/v1/facilities").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    assert_eq!(api.http_get(None, "/api/v1/facilities").await.0, 401);
}

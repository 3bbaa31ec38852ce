//! FHIR R4 bed capacity (`/fhir/r4/…`): valid R4 according to an independent
//! implementation (the Python `fhir.resources` R4 models, installed by ops/test), figures
//! equal to the bed board's, each caller its own facilities, errors as OperationOutcomes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{Actor, HC, HOSPITAL, HOSPITAL_OTHER, HQ, TestApi, min_versions};
use noroshi_tests::pipeline::live_world;
use serde_json::Value;

/// Checks `resources` with the FHIR R4 models of `fhir.resources` (NOROSHI_FHIR_PYTHON,
/// which ops/test sets after installing them): every resource must parse, with no unknown
/// or missing element.
fn valid_r4(resources: &[&Value]) {
    let python = std::env::var("NOROSHI_FHIR_PYTHON").unwrap_or_else(|_| {
        panic!(
            "NOROSHI_FHIR_PYTHON is not set: run the suite through ops/test, which installs \
             the FHIR R4 validator (fhir.resources 6.1.0) and sets it"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resources.json");
    std::fs::write(&file, serde_json::to_vec(resources).unwrap()).unwrap();
    let script = "import json, sys\n\
        import fhir.resources as f\n\
        from fhir.resources import construct_fhir_element\n\
        assert f.__fhir_version__ == '4.0.1', f.__fhir_version__\n\
        for r in json.load(open(sys.argv[1])):\n\
        \x20   construct_fhir_element(r['resourceType'], r)\n\
        print('valid', len(json.load(open(sys.argv[1]))))\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not valid FHIR R4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn fhir(api: &TestApi, actor: Option<Actor>, path: &str) -> (u16, Value) {
    let mut headers = vec![("accept", "application/fhir+json".to_owned())];
    if let Some(actor) = actor {
        headers.push(("authorization", format!("Bearer {}", actor.token)));
    }
    let answer = api
        .http_request(http::Method::GET, path, &headers, Vec::new())
        .await;
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/fhir+json; charset=utf-8"
    );
    (answer.status, answer.json)
}

/// A population's count in a report's group of `system`/`code`.
fn count(report: &Value, group: &str, population: &str) -> u64 {
    report["group"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["code"]["coding"][0]["code"] == group)
        .and_then(|g| {
            g["population"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["code"]["coding"][0]["code"] == population)
        })
        .map_or(0, |p| p["count"].as_u64().unwrap())
}

#[tokio::test]
async fn bed_capacity_is_valid_fhir_r4_and_equals_the_bed_board() {
    let (api, _read_side) = live_world(&[
        (HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10),
        (HOSPITAL, "hofu-central", pb::BedCategory::Severe, 4),
        (HOSPITAL_OTHER, "ube-medical", pb::BedCategory::Moderate, 6),
    ])
    .await;
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            10,
            9,
            4,
        )
        .await;
    let fresh = min_versions(&[&declared]);
    let (status, board) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/bed_board?min_versions={fresh}"),
        )
        .await;
    assert_eq!(status, 200);

    // The capability statement is open, and valid.
    let (status, metadata) = fhir(&api, None, "/fhir/r4/metadata").await;
    assert_eq!(status, 200);
    assert_eq!(metadata["fhirVersion"], "4.0.1");

    let (status, bundle) = fhir(&api, Some(HQ), "/fhir/r4/Bundle/prefecture").await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["type"], "collection");
    let reports: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    // Every facility's figures as the board shows them.
    let mut by_facility: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for row in board["rows"].as_array().unwrap() {
        by_facility
            .entry(row["facility_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(row);
    }
    assert_eq!(
        reports.len(),
        by_facility.len() + 1,
        "the prefecture's and each facility's"
    );
    let hospital = [
        "BED_CATEGORY_SEVERE",
        "BED_CATEGORY_MODERATE",
        "BED_CATEGORY_MILD",
    ];
    let sum = |rows: &[&Value], field: &str, only_severe: bool| -> u64 {
        rows.iter()
            .filter(|r| {
                let c = r["category"].as_str().unwrap();
                if only_severe {
                    c == "BED_CATEGORY_SEVERE"
                } else {
                    hospital.contains(&c)
                }
            })
            .map(|r| r[field].as_u64().unwrap())
            .sum()
    };
    for (facility, rows) in &by_facility {
        let report = reports
            .iter()
            .find(|r| r["subject"]["reference"] == format!("Location/{facility}"))
            .unwrap();
        assert_eq!(
            count(report, "Beds", "numTotBeds"),
            sum(rows, "secured", false),
            "{facility}"
        );
        assert_eq!(
            count(report, "Beds", "numTotBedsOcc"),
            sum(rows, "occupied", false)
        );
        assert_eq!(
            count(report, "Beds", "numTotBedsAvail"),
            sum(rows, "available", false)
        );
        assert_eq!(
            count(report, "Beds", "numICUBeds"),
            sum(rows, "secured", true)
        );
        for row in rows {
            let category = row["category"]
                .as_str()
                .unwrap()
                .trim_start_matches("BED_CATEGORY_");
            for figure in ["secured", "ready", "occupied", "held", "available"] {
                assert_eq!(
                    count(report, category, figure),
                    row[figure].as_u64().unwrap()
                );
            }
        }
    }
    let hofu = reports
        .iter()
        .find(|r| r["id"] == "bed-capacity-hofu-central")
        .unwrap();
    assert_eq!(
        (
            count(hofu, "Beds", "numTotBeds"),
            count(hofu, "Beds", "numTotBedsOcc")
        ),
        (14, 4)
    );
    let prefecture = reports
        .iter()
        .find(|r| r["id"] == "bed-capacity-prefecture-35")
        .unwrap();
    let all: Vec<&Value> = by_facility.values().flatten().copied().collect();
    assert_eq!(
        count(prefecture, "Beds", "numTotBeds"),
        sum(&all, "secured", false)
    );
    assert_eq!(
        count(prefecture, "Beds", "numTotBedsOcc"),
        board["prefecture"]["occupied"].as_u64().unwrap()
            - sum(
                &all.iter()
                    .filter(|r| r["category"] == "BED_CATEGORY_HOTEL_ROOM")
                    .copied()
                    .collect::<Vec<_>>(),
                "occupied",
                false
            )
    );

    // Each caller its own: a hospital reads its report and searches only itself.
    let (status, own) = fhir(
        &api,
        Some(HOSPITAL),
        "/fhir/r4/MeasureReport/bed-capacity-hofu-central",
    )
    .await;
    assert_eq!(status, 200);
    let (status, search) = fhir(&api, Some(HOSPITAL), "/fhir/r4/MeasureReport").await;
    assert_eq!(status, 200);
    assert_eq!(search["type"], "searchset");
    assert_eq!(search["total"], 1);
    let (status, other) = fhir(
        &api,
        Some(HOSPITAL_OTHER),
        "/fhir/r4/MeasureReport/bed-capacity-hofu-central",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(other["resourceType"], "OperationOutcome");
    let (status, refused) = fhir(&api, Some(HOSPITAL), "/fhir/r4/Bundle/prefecture").await;
    assert_eq!(status, 403);
    let (status, anonymous) = fhir(&api, None, "/fhir/r4/MeasureReport").await;
    assert_eq!(status, 401);
    let (status, _) = fhir(&api, Some(HC), "/fhir/r4/Bundle/prefecture").await;
    assert_eq!(status, 200);

    let mut all_resources = vec![
        &metadata, &bundle, &own, &search, &other, &refused, &anonymous,
    ];
    all_resources.extend(reports.iter().copied());
    valid_r4(&all_resources);
}

//! Case import (`POST /api/v1/import/cases`, docs/import.md): Shift_JIS with 和暦 dates and
//! UTF-8 with 西暦 dates import to the same cases, once; a dry run names every bad cell
//! and writes nothing; a row outside the jurisdiction is refused alone; garbage gets a
//! clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use encoding_rs::SHIFT_JIS;
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{HC, HOFU, HOSPITAL, HQ, TestApi, UBE};
use noroshi_tests::fixtures::case_file;
use serde_json::Value;

fn shift_jis(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = SHIFT_JIS.encode(text);
    assert!(!unmappable, "the test file is Shift_JIS-clean");
    bytes.into_owned()
}

/// Posts `file` to the import as `actor`, with `query`: status and answer.
async fn import(
    api: &TestApi,
    actor: noroshi_tests::api::Actor,
    query: &str,
    file: Vec<u8>,
) -> (u16, Value) {
    let answer = api
        .http_request(
            http::Method::POST,
            &format!("/api/v1/import/cases{query}"),
            &[
                ("authorization", format!("Bearer {}", actor.token)),
                ("content-type", "text/csv".into()),
            ],
            file,
        )
        .await;
    (answer.status, answer.json)
}

/// The `CaseReported` event of the Hofu health center's case `external_ref`.
async fn reported_case(api: &TestApi, external_ref: &str) -> pb::CaseReported {
    use prost::Message;
    let case_id = noroshi_app::case::case_id_for(
        HC.organisation,
        Some(&noroshi_domain::values::ExternalRef::parse(external_ref).unwrap()),
    );
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE stream_id = $1 AND event_type = 'noroshi.v1.CaseReported'",
    )
    .bind(format!("case-{case_id}"))
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    pb::CaseReported::decode(payload.as_slice()).unwrap()
}

async fn seeded() -> TestApi {
    let api = TestApi::start().await;
    api.seed().await;
    api
}

async fn reported(api: &TestApi) -> i64 {
    api.db.event_count_of("noroshi.v1.CaseReported").await
}

#[tokio::test]
async fn ten_thousand_rows_in_shift_jis_and_in_utf8_import_to_the_same_cases_once() {
    let api = seeded().await;
    let sjis = shift_jis(&case_file(10_000, true));
    let utf8 = case_file(10_000, false).into_bytes();
    // A dry run decides every row and writes nothing.
    let before = api.db.event_count().await;
    let (status, dry) = import(&api, HC, "?dry_run=true", utf8.clone()).await;
    assert_eq!(status, 200, "{dry}");
    let summary = &dry["summary"];
    assert_eq!(summary["encoding"], "utf-8");
    assert_eq!(
        (summary["rows"].as_u64(), summary["created"].as_u64()),
        (Some(10_000), Some(10_000)),
        "{summary}"
    );
    assert_eq!(summary["ignored_columns"], serde_json::json!(["備考"]));
    assert_eq!(
        api.db.event_count().await,
        before,
        "a dry run writes nothing"
    );

    let (status, first) = import(&api, HC, "", sjis.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["summary"]["encoding"], "shift_jis");
    assert_eq!(first["summary"]["created"], 10_000, "{}", first["summary"]);
    assert_eq!(first["summary"]["refused"], 0, "{}", first["errors"]);
    assert_eq!(reported(&api).await, 10_000);
    let after = api.db.event_count().await;
    // The same cases from the UTF-8 file and from the Shift_JIS file again: nothing new.
    for (name, file) in [("utf-8", utf8), ("shift_jis again", sjis)] {
        let (status, again) = import(&api, HC, "", file).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            (
                again["summary"]["created"].as_u64(),
                again["summary"]["present"].as_u64()
            ),
            (Some(0), Some(10_000)),
            "{name}: {}",
            again["summary"]
        );
    }
    assert_eq!(api.db.event_count().await, after);
    // A case as the file says: 和暦 read as the date the UTF-8 file writes in 西暦.
    let case = reported_case(&api, "T-00042").await;
    let patient = case.patient.clone().unwrap();
    assert_eq!(patient.name, "試験 患者42");
    assert_eq!(patient.birth_date, "1982-07-15");
    assert_eq!(patient.sex(), pb::Sex::Female);
    assert_eq!(case.severity(), pb::Severity::ModerateIi);
    assert_eq!(case.municipality, HOFU);
}

#[tokio::test]
async fn a_dry_run_names_exactly_the_bad_cells_and_a_row_outside_the_jurisdiction_is_refused_alone()
{
    let api = seeded().await;
    let mut lines: Vec<String> = case_file(40, false).lines().map(str::to_owned).collect();
    // Line numbers count the header as line 1.
    let spoil = |lines: &mut Vec<String>, line: usize, column: usize, value: &str| {
        let mut cells: Vec<String> = lines[line - 1].split(',').map(str::to_owned).collect();
        cells[column - 1] = value.to_owned();
        lines[line - 1] = cells.join(",");
    };
    spoil(&mut lines, 5, 4, "昭和64年2月1日");
    spoil(&mut lines, 17, 5, "不詳");
    spoil(&mut lines, 33, 9, "とても重い");
    spoil(&mut lines, 33, 2, "");
    let file = lines.join("\n").into_bytes();
    let before = api.db.event_count().await;
    let (status, dry) = import(&api, HC, "?dry_run=true", file.clone()).await;
    assert_eq!(status, 200, "{dry}");
    let named: Vec<(u64, u64, String)> = dry["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        named,
        vec![
            (5, 4, "birth_date".to_owned()),
            (17, 5, "sex".to_owned()),
            (33, 2, "name".to_owned()),
            (33, 9, "severity".to_owned()),
        ],
        "{dry}"
    );
    assert_eq!(dry["errors"][0]["header"], "生年月日");
    assert_eq!(
        (
            dry["summary"]["refused"].as_u64(),
            dry["summary"]["created"].as_u64()
        ),
        (Some(3), Some(37))
    );
    assert_eq!(
        api.db.event_count().await,
        before,
        "a dry run writes nothing"
    );

    // A row in Ube's jurisdiction is refused; the rest are recorded.
    let mut lines: Vec<String> = case_file(10, false).lines().map(str::to_owned).collect();
    lines[4] = lines[4].replace(HOFU, UBE);
    let (status, answer) = import(&api, HC, "", lines.join("\n").into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["summary"]["created"].as_u64(),
            answer["summary"]["refused"].as_u64()
        ),
        (Some(9), Some(1))
    );
    assert_eq!(answer["errors"][0]["line"], 5);
    assert_eq!(answer["errors"][0]["field"], "municipality", "{answer}");
    assert_eq!(answer["summary"]["refused_by_reason"]["municipality"], 1);
    assert_eq!(reported(&api).await, 9);
}

#[tokio::test]
async fn garbage_gets_a_clear_error_and_only_health_centers_import() {
    let api = seeded().await;
    let good = case_file(3, false).into_bytes();
    for actor in [HQ, HOSPITAL] {
        let (status, _) = import(&api, actor, "", good.clone()).await;
        assert_eq!(status, 403);
    }
    let (status, answer) = import(&api, HC, "?encoding=ebcdic", good.clone()).await;
    assert_eq!(
        (status, answer["violations"][0]["field"].as_str()),
        (400, Some("encoding"))
    );
    let (status, answer) = import(
        &api,
        HC,
        "?mapping=%7B%22ID%22%3A%22nothing%22%7D",
        good.clone(),
    )
    .await;
    assert_eq!(
        (status, answer["violations"][0]["field"].as_str()),
        (400, Some("mapping")),
        "{answer}"
    );

    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.extend(std::iter::repeat_n(0xAB, 4096));
    let (status, answer) = import(&api, HC, "", png).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["violations"][0]["description"]
            .as_str()
            .unwrap()
            .contains("binary"),
        "{answer}"
    );
    let (status, answer) = import(&api, HC, "", Vec::new()).await;
    assert_eq!(status, 400);
    assert!(
        answer["violations"][0]["description"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{answer}"
    );
    let (status, answer) = import(&api, HC, "", "名前,住所\nx,y\n".into()).await;
    assert_eq!(status, 400);
    assert!(
        answer["violations"][0]["description"]
            .as_str()
            .unwrap()
            .contains("external_ref"),
        "{answer}"
    );

    // 50 MB on one line: refused at that line, without holding it.
    let mut long = case_file(2, false).into_bytes();
    long.extend(std::iter::repeat_n(b'x', 50 * 1024 * 1024));
    let (status, answer) = import(&api, HC, "?dry_run=true", long).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["rows"], 2);
    assert_eq!(
        answer["summary"]["stopped"], "line 4 is longer than 65536 bytes",
        "{answer}"
    );
    // A file cut inside a quoted cell: its last row is short, and says so.
    let mut cut = case_file(3, false);
    cut.push_str("T-09999,\"試験 途中");
    let (status, answer) = import(&api, HC, "?dry_run=true", cut.into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["created"], 3);
    assert_eq!(answer["errors"][0]["line"], 5, "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{answer}"
    );
    // A formula in a name is a name: stored as text (exports neutralise it).
    let formula = case_file(1, false).replace(
        "試験 患者1,",
        "\"=HYPERLINK(\"\"http://example.invalid\"\",\"\"x\"\")\",",
    );
    let (status, answer) = import(&api, HC, "", formula.into_bytes()).await;
    assert_eq!(
        (status, answer["summary"]["created"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
}

#[tokio::test]
async fn ndjson_tells_progress_every_error_and_the_summary_line_by_line() {
    let api = seeded().await;
    let mut file = case_file(450, false);
    file.push_str("T-99999,試験,,1990/02/30,女,,防府市,352063,軽症,,\n");
    let answer = api
        .http_request(
            http::Method::POST,
            "/api/v1/import/cases?dry_run=true",
            &[
                ("authorization", format!("Bearer {}", HC.token)),
                ("accept", "application/x-ndjson".into()),
            ],
            file.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200);
    let text = answer
        .json
        .as_str()
        .expect("NDJSON is not one JSON document")
        .to_owned();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let progress: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["progress"]["rows"].as_u64())
        .collect();
    assert_eq!(progress, vec![200, 400]);
    let errors: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (
            errors[0]["error"]["line"].as_u64(),
            errors[0]["error"]["column"].as_u64()
        ),
        (Some(452), Some(4))
    );
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(
        (
            summary["rows"].as_u64(),
            summary["created"].as_u64(),
            summary["refused"].as_u64()
        ),
        (Some(451), Some(450), Some(1))
    );
}

#[tokio::test]
async fn the_cli_imports_a_file_with_a_mapping_and_says_what_it_refused() {
    let api = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    // Another layout: the reference under 患者ID, named by a mapping file.
    let file = dir.path().join("cases.csv");
    let text = case_file(30, true).replacen("HER-SYS ID", "患者ID", 1);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replace("女", "?").replace("男", "?");
    std::fs::write(&file, shift_jis(&lines.join("\n"))).unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, "[columns]\n\"患者ID\" = \"external_ref\"\n").unwrap();
    let run = |dry_run: bool| {
        let mut command = tokio::process::Command::new(noroshi_tests::noroshi_bin());
        command
            .args(["import", "cases"])
            .arg(&file)
            .arg("--mapping")
            .arg(&mapping)
            .args([
                "--url",
                &format!("http://{}", api.http_addr),
                "--token",
                HC.token,
            ]);
        if dry_run {
            command.arg("--dry-run");
        }
        command.output()
    };
    let dry = run(true).await.unwrap();
    let out = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(1), "a refused row: {out}");
    assert!(out.contains("line 4, column 5 (性別): sex:"), "{out}");
    assert!(
        out.contains("dry run, nothing written; 30 rows: created 29, present 0, refused 1"),
        "{out}"
    );
    assert_eq!(reported(&api).await, 0);
    let real = run(false).await.unwrap();
    assert_eq!(real.status.code(), Some(1));
    assert_eq!(reported(&api).await, 29);
    // Fixed, the file imports the one row left.
    std::fs::write(&file, shift_jis(&text)).unwrap();
    let fixed = run(false).await.unwrap();
    let out = String::from_utf8_lossy(&fixed.stdout);
    assert_eq!(fixed.status.code(), Some(0), "{out}");
    assert!(
        out.contains("30 rows: created 1, present 29, refused 0"),
        "{out}"
    );
    assert_eq!(reported(&api).await, 30);
    // A hospital's capacity file, the same way.
    let beds = dir.path().join("beds.csv");
    std::fs::write(
        &beds,
        "医療機関等コード,病床区分,確保病床数,即応病床数,入院・入所者数\nhofu-central,重症,6,5,2\n",
    )
    .unwrap();
    let capacity = tokio::process::Command::new(noroshi_tests::noroshi_bin())
        .args(["import", "capacity"])
        .arg(&beds)
        .args([
            "--url",
            &format!("http://{}", api.http_addr),
            "--token",
            HOSPITAL.token,
        ])
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&capacity.stdout);
    assert_eq!(capacity.status.code(), Some(0), "{out}");
    assert!(
        out.contains("1 rows: created 1, present 0, refused 0"),
        "{out}"
    );
}

/// `POST /api/v1/import/capacity` as `actor`.
async fn import_capacity(
    api: &TestApi,
    actor: noroshi_tests::api::Actor,
    query: &str,
    file: &str,
) -> (u16, Value) {
    let answer = api
        .http_request(
            http::Method::POST,
            &format!("/api/v1/import/capacity{query}"),
            &[("authorization", format!("Bearer {}", actor.token))],
            file.as_bytes().to_vec(),
        )
        .await;
    (answer.status, answer.json)
}

#[tokio::test]
async fn capacity_files_declare_each_facility_s_figures_once_and_only_where_allowed() {
    let api = seeded().await;
    let declared = || api.db.event_count_of("noroshi.v1.CapacityDeclared");
    let before = declared().await;
    // The bed board export's layout: its extra columns are ignored.
    let file = "集計日時,二次医療圏,医療機関等コード,医療機関等名,病床区分,確保病床数,即応病床数,入院・入所者数\n\
                ,3504,hofu-central,防府中央,中等症,12,10,４\n\
                ,3504,hofu-central,防府中央,重症,4床,4,1\n\
                ,3505,ube-medical,宇部医療,中等症,8,8,2\n";
    // A hospital imports its own rows; another facility's row is refused, alone.
    let (status, dry) = import_capacity(&api, HOSPITAL, "?dry_run=true", file).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (
            dry["summary"]["created"].as_u64(),
            dry["summary"]["refused"].as_u64()
        ),
        (Some(2), Some(1)),
        "{dry}"
    );
    assert_eq!(dry["errors"][0]["line"], 4);
    assert_eq!(dry["errors"][0]["field"], "PERMISSION_DENIED");
    assert_eq!(declared().await, before, "a dry run writes nothing");
    let (status, real) = import_capacity(&api, HOSPITAL, "", file).await;
    assert_eq!(status, 200);
    assert_eq!(real["summary"]["created"], 2, "{real}");
    assert_eq!(declared().await, before + 2);
    // Again: the figures are in force already; nothing is declared.
    let (_, again) = import_capacity(&api, HOSPITAL, "", file).await;
    assert_eq!(
        (
            again["summary"]["present"].as_u64(),
            again["summary"]["created"].as_u64()
        ),
        (Some(2), Some(0)),
        "{again}"
    );
    assert_eq!(declared().await, before + 2);
    // HQ imports every facility's on its behalf: only the row not yet in force is new.
    let (status, hq) = import_capacity(&api, HQ, "", file).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            hq["summary"]["created"].as_u64(),
            hq["summary"]["present"].as_u64()
        ),
        (Some(1), Some(2)),
        "{hq}"
    );
    let proxy: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'noroshi.v1.CapacityDeclared' AND stream_id = 'facility-ube-medical'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(proxy, 1);
    // Health centers do not declare capacity; bad figures are named where they are.
    let (status, _) = import_capacity(&api, HC, "", file).await;
    assert_eq!(status, 403);
    let bad = "医療機関等コード,病床区分,確保病床数,即応病床数,入院・入所者数\nhofu-central,ICU,10,-1,3\n";
    let (status, answer) = import_capacity(&api, HOSPITAL, "?dry_run=true", bad).await;
    assert_eq!(status, 200);
    let named: Vec<(u64, u64)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(named, vec![(2, 2), (2, 4)], "{answer}");
}

//! CSV exports (`/api/v1/exports/…`): the right columns and figures, each role its own
//! rows, formulas neutralised, Shift_JIS on request, and every patient exported audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use encoding_rs::SHIFT_JIS;
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{
    Actor, HC, HC_OTHER, HOSPITAL, HOSPITAL_OTHER, HQ, PUBLIC, TestApi, UBE, min_versions,
};
use noroshi_tests::pipeline::live_world;

/// `GET path` as `actor`: status, content type and body bytes.
async fn download(api: &TestApi, actor: Actor, path: &str) -> (u16, String, Vec<u8>) {
    let answer = api
        .http_request(
            http::Method::GET,
            path,
            &[("authorization", format!("Bearer {}", actor.token))],
            Vec::new(),
        )
        .await;
    let kind = answer
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (answer.status, kind, answer.body.to_vec())
}

/// The rows of a UTF-8 export, after its BOM.
fn rows(body: &[u8]) -> Vec<Vec<String>> {
    assert!(body.starts_with(&[0xEF, 0xBB, 0xBF]), "a BOM first");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&body[3..])
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

async fn import(api: &TestApi, actor: Actor, file: &str) {
    let answer = api
        .http_request(
            http::Method::POST,
            "/api/v1/import/cases",
            &[("authorization", format!("Bearer {}", actor.token))],
            file.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["summary"]["refused"], 0, "{}", answer.json);
}

#[tokio::test]
async fn each_export_has_its_columns_and_figures_and_follows_the_access_rules() {
    let (api, _read_side) =
        live_world(&[(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10)]).await;
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            10,
            8,
            3,
        )
        .await;
    import(
        &api,
        HC,
        "HER-SYS ID,氏名,生年月日,性別,住所,市町村コード,重症度\n\
         EX-1,\"=HYPERLINK(\"\"http://example.invalid\"\",\"\"x\"\")\",1950/1/2,女,防府市1,352063,軽症\n\
         EX-2,出力 二郎,S40.3.4,男,防府市2,352063,中等症Ⅱ\n",
    )
    .await;
    import(
        &api,
        HC_OTHER,
        &format!("HER-SYS ID,氏名,生年月日,性別,住所,市町村コード,重症度\nEX-9,宇部 九子,1960/5/6,女,宇部市1,{UBE},軽症\n"),
    )
    .await;
    // The views have caught up once a read naming the writes answers.
    let fresh = min_versions(&[&declared]);
    let (status, _) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/bed_board?min_versions={fresh}"),
        )
        .await;
    assert_eq!(status, 200);
    let mut cases = Vec::new();
    for _ in 0..100 {
        let (status, _, body) = download(&api, HC, "/api/v1/exports/cases.csv").await;
        assert_eq!(status, 200);
        cases = rows(&body);
        if cases.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A health center's cases: its own only, the formula made text, the dates as written.
    assert_eq!(
        cases[0][..7],
        [
            "保健所",
            "受付番号",
            "氏名",
            "フリガナ",
            "生年月日",
            "年齢",
            "性別"
        ]
    );
    assert_eq!(cases.len(), 3, "the header and Hofu's two cases: {cases:?}");
    let by_ref = |r: &str| cases.iter().find(|row| row[1] == r).unwrap().clone();
    assert_eq!(
        by_ref("EX-1")[2],
        "'=HYPERLINK(\"http://example.invalid\",\"x\")"
    );
    assert_eq!(by_ref("EX-2")[2], "出力 二郎");
    assert_eq!(by_ref("EX-2")[4], "1965/03/04");
    assert_eq!(by_ref("EX-2")[8], "中等症II");
    assert!(!cases.iter().any(|row| row[1] == "EX-9"));
    // Every patient exported is an audited read.
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT case_id) FROM audit_log WHERE kind = 'PII_READ' AND organisation_id = 'hofu-hc'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(audited, 2);
    // HQ exports every health center's; facilities and the public none.
    let (status, _, body) = download(&api, HQ, "/api/v1/exports/cases.csv").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&body).len(), 4);
    for actor in [HOSPITAL, PUBLIC] {
        let (status, _, _) = download(&api, actor, "/api/v1/exports/cases.csv").await;
        assert_eq!(status, 403);
    }

    // The bed board: the figures the view shows.
    let (status, kind, body) = download(&api, HQ, "/api/v1/exports/bed_board.csv").await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let board = rows(&body);
    assert_eq!(
        board[0],
        [
            "集計日時",
            "二次医療圏",
            "医療機関等コード",
            "医療機関等名",
            "病床区分",
            "確保病床数",
            "即応病床数",
            "入院・入所者数",
            "受入予定",
            "空床数",
            "病床使用率(%)",
            "受入可否",
            "最終報告日時",
            "報告が古い"
        ]
    );
    let hofu = board
        .iter()
        .find(|row| row[2] == "hofu-central" && row[4] == "中等症")
        .unwrap();
    assert_eq!(hofu[5..11], ["10", "8", "3", "0", "5", "30.0"]);
    // A hospital's export is its own board.
    let (_, _, body) = download(&api, HOSPITAL, "/api/v1/exports/bed_board.csv").await;
    assert!(rows(&body)[1..].iter().all(|row| row[2] == "hofu-central"));
    // Shift_JIS on request, the same table.
    let (status, kind, sjis) =
        download(&api, HQ, "/api/v1/exports/bed_board.csv?encoding=shift_jis").await;
    assert_eq!(
        (status, kind.as_str()),
        (200, "text/csv; charset=shift_jis")
    );
    let (text, _, bad) = SHIFT_JIS.decode(&sjis);
    assert!(!bad);
    assert!(text.starts_with("集計日時,二次医療圏"));
    let (status, _, _) = download(&api, HQ, "/api/v1/exports/bed_board.csv?encoding=latin1").await;
    assert_eq!(status, 400);

    // Open data, for anyone, the public too: the prefecture's code and name first.
    let (status, _, body) = download(&api, PUBLIC, "/api/v1/exports/open_data.csv").await;
    assert_eq!(status, 200);
    let open = rows(&body);
    assert_eq!(
        open[0][..4],
        [
            "全国地方公共団体コード",
            "都道府県名",
            "二次医療圏",
            "公表_年月日"
        ]
    );
    let moderate = open
        .iter()
        .find(|row| row[2] == "全域" && row[4] == "中等症")
        .unwrap();
    assert_eq!(moderate[..2], ["350001", "山口県"]);
    assert_eq!(moderate[5], "10");
}

#[tokio::test]
async fn hq_s_placement_log_has_every_placement_with_the_time_of_each_step() {
    let api = TestApi::start().await;
    api.seed().await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        10,
        0,
    )
    .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        10,
        10,
        0,
    )
    .await;
    // One placement declined once, then accepted and arrived; another cancelled.
    let case = api.report_case(pb::Severity::ModerateI).await;
    let placed = api
        .request_placement(&case, pb::BedCategory::Moderate)
        .await;
    api.offer(&placed, "ube-medical").await;
    api.decline(HOSPITAL_OTHER, &placed).await;
    api.offer(&placed, "hofu-central").await;
    api.accept(HOSPITAL, &placed).await.unwrap();
    api.transport(&placed).await;
    api.arrive(HOSPITAL, &placed).await;
    let other = api.report_case(pb::Severity::Mild).await;
    let cancelled = api
        .request_placement(&other, pb::BedCategory::Moderate)
        .await;
    api.cancel(&cancelled).await;

    let (status, _, body) = download(&api, HQ, "/api/v1/exports/placements.csv").await;
    assert_eq!(status, 200);
    let log = rows(&body);
    assert_eq!(log.len(), 3, "the header and two placements: {log:?}");
    let header = &log[0];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = |id: &str| log.iter().find(|r| r[0] == id).unwrap();
    let done = row(&placed);
    assert_eq!(done[column("症例ID")], case);
    assert_eq!(done[column("打診回数")], "2");
    assert_eq!(done[column("辞退回数")], "1");
    assert!(done[column("辞退理由")].starts_with("ube-medical: "));
    assert_eq!(done[column("受入先")], "hofu-central");
    for step in [
        "依頼日時",
        "最初の打診日時",
        "受入日時",
        "搬送手配日時",
        "出発日時",
        "到着日時",
    ] {
        assert!(!done[column(step)].is_empty(), "{step}: {done:?}");
    }
    assert!(done[column("取消日時")].is_empty());
    let minutes: f64 = done[column("依頼から到着まで(分)")].parse().unwrap();
    assert!((0.0..5.0).contains(&minutes), "{minutes}");
    let gone = row(&cancelled);
    assert!(!gone[column("取消日時")].is_empty());
    assert!(gone[column("受入先")].is_empty());
    // HQ's alone.
    for actor in [HC, HOSPITAL, PUBLIC] {
        let (status, _, _) = download(&api, actor, "/api/v1/exports/placements.csv").await;
        assert_eq!(status, 403);
    }
}

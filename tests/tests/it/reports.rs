//! The after-action report (DESIGN.md §12): for a scripted period, the HTML holds the
//! expected figures (over HTTP for HQ, and from `noroshi report`), and the PDF that
//! headless Chromium prints has pages, the first of which is not blank.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{HC, HOSPITAL, HOSPITAL_OTHER, HQ, TestApi};
use noroshi_tests::noroshi_bin;

fn today() -> String {
    time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date()
        .to_string()
}

/// A day's surge: three cases, two placements (one declined at Ube, then placed at Hofu
/// Central; one waiting), with the areas named.
async fn scripted() -> TestApi {
    let api = TestApi::start().await;
    api.seed().await;
    sqlx::raw_sql(
        "INSERT INTO medical_areas (code, name, neighbours) VALUES \
         ('3504', '山口・防府', '{3505}'), ('3505', '宇部・小野田', '{3504}')",
    )
    .execute(api.db.pool())
    .await
    .unwrap();
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        8,
        2,
    )
    .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        6,
        6,
        6,
    )
    .await;
    let first = api.report_case(pb::Severity::ModerateI).await;
    let second = api.report_case(pb::Severity::Severe).await;
    api.report_case(pb::Severity::Mild).await;
    let placed = api
        .request_placement(&first, pb::BedCategory::Moderate)
        .await;
    api.offer(&placed, "ube-medical").await;
    api.decline(HOSPITAL_OTHER, &placed).await;
    api.offer(&placed, "hofu-central").await;
    api.accept(HOSPITAL, &placed).await.unwrap();
    api.transport(&placed).await;
    api.arrive(HOSPITAL, &placed).await;
    api.request_placement(&second, pb::BedCategory::Moderate)
        .await;
    api
}

/// The figures every form of the report must show for [`scripted`].
fn assert_figures(html: &str) {
    for (id, value) in [
        ("total-reported", 3),
        ("total-requested", 2),
        ("total-accepted", 1),
        ("total-arrived", 1),
        ("total-cancelled", 0),
        ("total-declines", 1),
    ] {
        assert!(
            html.contains(&format!("<dd id=\"{id}\">{value}</dd>")),
            "{id} = {value} in {html}"
        );
    }
    assert!(html.contains("入院調整 振り返り報告書"), "title");
    assert!(html.contains("満床のため"), "the decline's reason");
    // 山口・防府: Hofu Central's 10 secured beds, 3 occupied once the patient arrived; both
    // requests came from the Hofu health center.
    assert!(
        html.contains(
            "<tr data-area=\"3504\"><td>3504 山口・防府</td><td class=\"num\">10</td><td class=\"num\">3</td><td class=\"num\">30%</td><td class=\"num\">2</td><td class=\"num\">1</td></tr>"
        ),
        "the area's row in {html}"
    );
    assert!(
        html.contains("<tr id=\"to-arrival\"><td>依頼から到着まで</td><td class=\"num\">1</td>")
    );
    assert!(html.matches("<svg").count() >= 3, "three charts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_reads_the_after_action_report_of_a_period() {
    let api = scripted().await;
    let day = today();
    let path = format!("/api/v1/reports/after_action?from={day}&to={day}");
    let answer = api
        .http_request(
            ::http::Method::GET,
            &path,
            &[("authorization", format!("Bearer {}", HQ.token))],
            Vec::new(),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/html; charset=utf-8");
    assert_figures(std::str::from_utf8(&answer.body).unwrap());
    // A period before any of it says nothing happened.
    let (status, _) = api
        .http_get(
            Some(HQ),
            "/api/v1/reports/after_action?from=2020-01-01&to=2020-01-02",
        )
        .await;
    assert_eq!(status, 200);
    // HQ's alone, and bad days are named.
    let (status, _) = api.http_get(Some(HC), &path).await;
    assert_eq!(status, 403);
    for (query, field) in [
        ("from=yesterday", "from"),
        ("from=2026-12-09&to=2026-12-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "to"),
        ("week=1", "week"),
    ] {
        let (status, body) = api
            .http_get(Some(HQ), &format!("/api/v1/reports/after_action?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["violations"][0]["field"], field, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noroshi_report_writes_the_html_and_a_pdf_that_renders() {
    let api = scripted().await;
    let dir = tempfile::tempdir().unwrap();
    let day = today();
    let run = |format: &str, output: &std::path::Path| {
        tokio::process::Command::new(noroshi_bin())
            .args([
                "--log", "warn", "report", "--from", &day, "--to", &day, "--format", format,
            ])
            .arg("--output")
            .arg(output)
            .env("NOROSHI_DATABASE_URL", api.db.url())
            .output()
    };
    let html = dir.path().join("report.html");
    let done = run("html", &html).await.unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_figures(&std::fs::read_to_string(&html).unwrap());

    let pdf = dir.path().join("report.pdf");
    let done = run("pdf", &pdf).await.unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "a PDF");
    // Its pages, counted by poppler.
    let info = tokio::process::Command::new("pdfinfo")
        .arg(&pdf)
        .output()
        .await
        .expect("pdfinfo (poppler-utils, installed by ops/test)");
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let pages: u32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap();
    assert!(pages >= 2, "the booklet has its pages: {info}");
    // The first page as a greyscale image: a fair share of it is ink, not paper.
    let image = dir.path().join("page");
    let rendered = tokio::process::Command::new("pdftoppm")
        .args(["-f", "1", "-l", "1", "-r", "40", "-gray", "-singlefile"])
        .arg(&pdf)
        .arg(&image)
        .output()
        .await
        .unwrap();
    assert!(rendered.status.success());
    let pgm = std::fs::read(dir.path().join("page.pgm")).unwrap();
    // P5 <width> <height> <max>\n, then one byte per pixel.
    let mut fields = pgm.splitn(5, |b| b.is_ascii_whitespace());
    assert_eq!(fields.next(), Some(&b"P5"[..]));
    let (width, height): (usize, usize) = (
        std::str::from_utf8(fields.next().unwrap())
            .unwrap()
            .parse()
            .unwrap(),
        std::str::from_utf8(fields.next().unwrap())
            .unwrap()
            .parse()
            .unwrap(),
    );
    let _max = fields.next();
    let pixels = fields.next().unwrap();
    assert_eq!(pixels.len(), width * height);
    let ink = pixels.iter().filter(|p| **p < 200).count();
    assert!(
        ink * 100 > pixels.len(),
        "more than 1% of the first page is ink: {ink} of {}",
        pixels.len()
    );
}

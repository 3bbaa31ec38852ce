//! The web UI in a real browser (headless Chromium through WebDriver): a full episode
//! played by four people in four browsers while HQ's page follows without a reload, the
//! language switch, field errors that keep what was typed, and a facility page that the
//! URL cannot open for another facility. Screenshots of each role's page are saved under
//! `target/screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fantoccini::{Client, Locator};
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, FacilityKind, PrincipalId};
use noroshi_identity::users::{self, NewUser, Password};
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{
    HC, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, TestApi, authed, cid, report_request,
};
use noroshi_tests::browser::{Browser, accessible, log_in, screenshot, wait_for, wait_text};
use noroshi_tests::pipeline::Pipeline;

const PASSWORD: &str = "browser-test-passphrase";

/// The API with its projections, and one login per role.
struct World {
    api: TestApi,
    _pipeline: (Pipeline, NatsServer),
    base: String,
}

async fn world() -> World {
    let nats = NatsServer::start().await;
    let api = TestApi::start().await;
    api.seed().await;
    api.declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 4, 1)
        .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        5,
        3,
        0,
    )
    .await;
    let (pipeline, _) = Pipeline::start(&api.db, &nats).await;
    sqlx::raw_sql(
        "INSERT INTO medical_areas (code, name, neighbours) VALUES \
         ('3504', '山口・防府', '{3505}'), ('3505', '宇部・小野田', '{3504}'); \
         INSERT INTO municipalities (code, name, medical_area) VALUES ('352063', '防府市', '3504')",
    )
    .execute(api.db.pool())
    .await
    .unwrap();
    let operator = Principal {
        principal_id: PrincipalId::parse("test-operator").unwrap(),
        organisation_id: FacilityId::parse("noroshi-admin").unwrap(),
        role: Role::Admin,
    };
    for (username, organisation, role, kind) in [
        ("hq.duty", "yamaguchi-hq", "HQ", FacilityKind::Hq),
        (
            "hofu.nurse",
            "hofu-hc",
            "HEALTH_CENTER",
            FacilityKind::HealthCenter,
        ),
        (
            "hofu.beds",
            "hofu-central",
            "HOSPITAL",
            FacilityKind::Hospital,
        ),
        (
            "ube.beds",
            "ube-medical",
            "HOSPITAL",
            FacilityKind::Hospital,
        ),
        ("yuda.nurse", "yuda-hotel", "HOTEL", FacilityKind::Hotel),
        (
            "consult.doctor",
            "yamaguchi-consult",
            "CONSULT_CENTER",
            FacilityKind::ConsultCenter,
        ),
        (
            "mobile.nurse",
            "akiyoshi-mobile",
            "MOBILE_CLINIC",
            FacilityKind::MobileClinic,
        ),
    ] {
        users::create(
            api.db.pool(),
            &operator,
            &NewUser {
                username: username.into(),
                display_name: "試験 利用者".into(),
                organisation_id: organisation.into(),
                role: role.into(),
                password: Password::new(PASSWORD),
            },
            Some(kind),
            "test",
        )
        .await
        .unwrap();
    }
    let base = format!("http://{}", api.http_addr);
    World {
        api,
        _pipeline: (pipeline, nats),
        base,
    }
}

/// Types `text` into the field `css` matches, in place of what it held. WebDriver's
/// clear fires no `input` event, so a live update landing between the clear and the
/// first key may fill the field again (a form that follows live figures until someone
/// types): then it is cleared and typed again.
async fn fill(client: &Client, css: &str, text: &str) {
    for _ in 0..5 {
        let field = wait_for(client, css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
        if field.prop("value").await.unwrap().as_deref() == Some(text) {
            return;
        }
    }
    panic!("{css} does not keep {text:?}");
}

/// Clicks the element `css` matches; again if a live update redrew it between finding it
/// and clicking (as a person would click the redrawn button).
async fn click(client: &Client, css: &str) {
    for _ in 0..20 {
        match wait_for(client, css).await.click().await {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("click {css}: {e:?}"),
        }
    }
    panic!("click {css}: redrawn at every try");
}

async fn value(client: &Client, css: &str) -> String {
    wait_for(client, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_language_switch_changes_every_label_and_stays_chosen() {
    let browser = Browser::start().await;
    let world = world().await;
    let nurse = browser.session().await;
    nurse.goto(&format!("{}/login", world.base)).await.unwrap();
    wait_for(&nurse, "#login-form").await;
    accessible(&nurse, "login").await;
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    assert_eq!(nurse.current_url().await.unwrap().path(), "/hc");
    wait_text(&nurse, "#live", |t| t == "ライブ").await;
    assert_eq!(
        wait_text(&nurse, "main h2", |t| !t.is_empty()).await,
        "担当患者"
    );
    click(&nurse, "#lang").await;
    wait_text(&nurse, "main h2", |t| t == "Our cases").await;
    wait_text(&nurse, "#report-form button[type=submit]", |t| {
        t == "Report"
    })
    .await;
    wait_text(&nurse, ".logout button", |t| t == "Log out").await;
    accessible(&nurse, "health-center in English").await;
    // No label of the page is left in Japanese, hidden panels included.
    let untranslated = "return [...document.querySelectorAll('[data-i18n]')] \
        .filter((n) => /[\\u3040-\\u30ff\\u4e00-\\u9fff]/.test(n.textContent)) \
        .map((n) => n.dataset.i18n);";
    let left = nurse.execute(untranslated, vec![]).await.unwrap();
    assert_eq!(
        left,
        serde_json::json!([]),
        "labels left in Japanese on /hc"
    );
    // Chosen once, kept on the next page load.
    nurse.refresh().await.unwrap();
    wait_text(&nurse, "main h2", |t| t == "Our cases").await;
    click(&nurse, "#lang").await;
    wait_text(&nurse, "main h2", |t| t == "担当患者").await;
    nurse.close().await.unwrap();
    // HQ's and a hospital's pages, in English as well.
    for (login, path) in [("hq.duty", "/hq"), ("hofu.beds", "/facility/hofu-central")] {
        let user = browser.session().await;
        log_in(&user, &world.base, login, PASSWORD).await;
        assert_eq!(user.current_url().await.unwrap().path(), path);
        wait_text(&user, "#live", |t| t == "ライブ").await;
        click(&user, "#lang").await;
        wait_text(&user, ".logout button", |t| t == "Log out").await;
        let left = user.execute(untranslated, vec![]).await.unwrap();
        assert_eq!(
            left,
            serde_json::json!([]),
            "labels left in Japanese on {path}"
        );
        user.close().await.unwrap();
    }
}

#[tokio::test]
async fn an_invalid_form_shows_the_field_error_and_keeps_what_was_typed() {
    let browser = Browser::start().await;
    let world = world().await;
    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    wait_text(&nurse, "#live", |t| t == "ライブ").await;
    let events = world.api.db.event_count().await;
    fill(
        &nurse,
        "#report-form input[name='patient.name']",
        "試験 四郎",
    )
    .await;
    fill(
        &nurse,
        "#report-form input[name='patient.address']",
        "防府市 架空町 9-9",
    )
    .await;
    pick(&nurse, "#report-form select[name='municipality']", "352063").await;
    fill(
        &nurse,
        "#report-form input[name='patient.phone']",
        "電話はなし",
    )
    .await;
    click(&nurse, "#report-form button[type=submit]").await;
    let error = wait_text(
        &nurse,
        "#report-form .field-error[data-field='patient.phone']",
        |t| !t.is_empty(),
    )
    .await;
    assert!(error.contains("電話番号"), "{error}");
    let invalid = wait_for(&nurse, "#report-form input[name='patient.phone']")
        .await
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    // What was typed is still there, and nothing was written.
    assert_eq!(
        value(&nurse, "#report-form input[name='patient.name']").await,
        "試験 四郎"
    );
    assert_eq!(
        value(&nurse, "#report-form input[name='patient.phone']").await,
        "電話はなし"
    );
    assert_eq!(world.api.db.event_count().await, events);
    // In English, the same error comes in English.
    click(&nurse, "#lang").await;
    click(&nurse, "#report-form button[type=submit]").await;
    let error = wait_text(
        &nurse,
        "#report-form .field-error[data-field='patient.phone']",
        |t| t.starts_with("must"),
    )
    .await;
    assert!(error.contains("phone number"), "{error}");
    nurse.close().await.unwrap();
}

#[tokio::test]
async fn a_hospital_cannot_open_another_facility_s_page_by_editing_the_url() {
    let browser = Browser::start().await;
    let world = world().await;
    let beds = browser.session().await;
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    assert_eq!(
        beds.current_url().await.unwrap().path(),
        "/facility/hofu-central"
    );
    wait_text(&beds, "#capacity", |t| t.contains("中等症")).await;
    // Its own declaration: more ready than secured is named at the field, in Japanese,
    // and what was typed stays.
    let ready = "#declare-form input[name='categories[1].ready']";
    wait_for(&beds, ready).await;
    fill(&beds, ready, "9").await;
    click(&beds, "#declare-form button[type=submit]").await;
    let error = wait_text(
        &beds,
        "#declare-form .field-error[data-field='categories[1].ready']",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(
        error,
        "即応病床（9）が確保病床（6）を超えています。先に病床を確保してください"
    );
    assert_eq!(value(&beds, ready).await, "9");
    beds.goto(&format!("{}/facility/ube-medical", world.base))
        .await
        .unwrap();
    wait_text(&beds, "main h1", |t| t == "このページは表示できません").await;
    accessible(&beds, "forbidden").await;
    assert!(
        beds.find(Locator::Css("#offers")).await.is_err(),
        "no inbox on the refused page"
    );
    // Nor through the API the page would use.
    beds.goto(&format!(
        "{}/api/v1/views/facility_inbox?facility_id=ube-medical",
        world.base
    ))
    .await
    .unwrap();
    let body = wait_text(&beds, "body", |t| !t.is_empty()).await;
    assert!(body.contains("PERMISSION_DENIED"), "{body}");
    // The other page (HQ's) is refused as well.
    beds.goto(&format!("{}/hq", world.base)).await.unwrap();
    wait_text(&beds, "main h1", |t| t == "このページは表示できません").await;
    beds.close().await.unwrap();
}

/// Waits (up to 10 s) until nothing on the page matches `css`; `what` says what should have gone.
async fn wait_gone(client: &Client, css: &str, what: &str) {
    for _ in 0..100 {
        if client.find(Locator::Css(css)).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: {css} is still there");
}

/// Sets a form control's value as a person would pick it (date and select controls do
/// not take typed keys the same way in every locale).
async fn pick(client: &Client, css: &str, value: &str) {
    wait_for(client, css).await;
    client
        .execute(
            "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
             el.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![css.into(), value.into()],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_whole_episode_in_four_browsers_while_hq_watches_without_reloading() {
    let browser = Browser::start().await;
    let world = world().await;
    let (hq, nurse, beds, public) = (
        browser.session().await,
        browser.session().await,
        browser.session().await,
        browser.session().await,
    );
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    assert_eq!(hq.current_url().await.unwrap().path(), "/hq");
    // The header names the HQ once: its name already says what it is.
    wait_text(&hq, "#who-org", |t| t == "山口県入院調整本部").await;
    wait_for(&hq, "#who-role[hidden]").await;
    let occupied =
        "#bed-board tr[data-facility='hofu-central'][data-category='MODERATE'] td:nth-child(5)";
    wait_text(&hq, occupied, |t| t == "1").await;
    // Areas go by their names as well as their codes.
    wait_text(&hq, "#bed-board .area[data-area='3504'] h3", |t| {
        t.starts_with("医療圏 3504 山口・防府")
    })
    .await;
    // The proxy entry suggests hospitals and hotels by name.
    let hofu = wait_for(&hq, "#facility-list option[value='hofu-central']").await;
    assert_eq!(
        hofu.attr("label").await.unwrap().as_deref(),
        Some("防府中央みらい病院 (3504 山口・防府)")
    );
    let suggested = hq
        .execute(
            "return document.querySelectorAll('#facility-list option').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(suggested, serde_json::json!(3), "two hospitals and a hotel");
    // It starts from the figures on the board for the facility and category chosen.
    pick(&hq, "#proxy-form input[name='facility_id']", "hofu-central").await;
    assert_eq!(
        (
            value(&hq, "#proxy-form input[name='categories[0].secured']").await,
            value(&hq, "#proxy-form input[name='categories[0].ready']").await,
            value(&hq, "#proxy-form input[name='categories[0].occupied']").await,
        ),
        ("6".to_owned(), "4".to_owned(), "1".to_owned())
    );
    pick(
        &hq,
        "#proxy-form select[name='categories[0].category']",
        "BED_CATEGORY_SEVERE",
    )
    .await;
    assert_eq!(
        value(&hq, "#proxy-form input[name='categories[0].secured']").await,
        "0"
    );
    // Categories go from the most to the least acute.
    let order = hq
        .execute(
            "return [...document.querySelectorAll(\"#bed-board tr[data-facility='hofu-central']\")].map(r => r.dataset.category);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(order, serde_json::json!(["SEVERE", "MODERATE", "MILD"]));
    // A marker that a reload would wipe.
    hq.execute("window.stillTheSamePage = true;", vec![])
        .await
        .unwrap();

    // 1. The health center reports a case and requests a placement.
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    wait_text(&nurse, "#live", |t| t == "ライブ").await;
    // The header names the user's organisation, and its role, which the name does not.
    wait_text(&nurse, "#who-org", |t| t == "防府健康福祉センター").await;
    wait_for(&nurse, "#who-role:not([hidden])").await;
    // The report form offers the health center's own municipalities, by name.
    wait_text(
        &nurse,
        "#report-form select[name='municipality'] option[value='352063']",
        |t| t == "防府市",
    )
    .await;
    let offered: Vec<String> = serde_json::from_value(
        nurse
            .execute(
                "return [...document.querySelectorAll(\"#report-form select[name='municipality'] option\")]\
                 .map((o) => o.value).filter((v) => v);",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        offered.contains(&"352063".to_owned()) && !offered.contains(&"352021".to_owned()),
        "Hofu's health center reports for its jurisdiction only: {offered:?}"
    );
    fill(
        &nurse,
        "#report-form input[name='patient.name']",
        "試験 五郎",
    )
    .await;
    fill(
        &nurse,
        "#report-form input[name='patient.name_kana']",
        "しけん ごろう",
    )
    .await;
    pick(
        &nurse,
        "#report-form input[name='patient.birth_date']",
        "1958-03-04",
    )
    .await;
    pick(
        &nurse,
        "#report-form select[name='patient.sex']",
        "SEX_MALE",
    )
    .await;
    fill(
        &nurse,
        "#report-form input[name='patient.address']",
        "防府市 架空町 1-1",
    )
    .await;
    pick(&nurse, "#report-form select[name='municipality']", "352063").await;
    pick(
        &nurse,
        "#report-form select[name='severity']",
        "SEVERITY_MODERATE_I",
    )
    .await;
    // Born in 1958: the age risk factor ticks itself.
    let aged = nurse
        .execute(
            "return document.querySelector(\"#report-form input[value='RISK_FACTOR_AGE_65_PLUS']\").checked;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(aged, serde_json::Value::Bool(true));
    click(&nurse, "#report-form input[value='CAPABILITY_OXYGEN']").await;
    click(&nurse, "#report-form button[type=submit]").await;
    wait_text(&nurse, "#report-form .form-status", |t| t == "登録しました").await;
    wait_text(&nurse, "#cases tbody tr[data-case]", |t| {
        t.contains("試験 五郎")
    })
    .await;
    let case_id = wait_for(&nurse, "#cases tbody tr[data-case]")
        .await
        .attr("data-case")
        .await
        .unwrap()
        .expect("a case row names its case");
    click(&nurse, "#cases tbody tr[data-case] button.open").await;
    wait_text(&nurse, "#case-title", |t| t.contains("試験 五郎")).await;
    // A triage states risk factors and needs anew: its form starts from the case's own,
    // so triaging again keeps them.
    let checked = nurse
        .execute(
            "return [...document.querySelectorAll('#triage-form input:checked')].map(i => i.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        checked,
        serde_json::json!(["RISK_FACTOR_AGE_65_PLUS", "CAPABILITY_OXYGEN"])
    );
    click(&nurse, "#triage-form button[type=submit]").await;
    wait_text(&nurse, "#case-status", |t| t.contains("トリアージ")).await;
    pick(
        &nurse,
        "#request-form select[name='category']",
        "BED_CATEGORY_MODERATE",
    )
    .await;
    // A further need for this placement.
    click(&nurse, "#request-form input[value='CAPABILITY_VENTILATOR']").await;
    click(&nurse, "#request-form button[type=submit]").await;
    wait_text(&nurse, "#case-status", |t| t.contains("入院調整の依頼")).await;

    // 2. HQ sees it wait, and offers it to the top candidate: the hospital of the same
    //    area with free moderate beds.
    let waiting = wait_text(&hq, "#queue tbody tr[data-placement]", |t| {
        t.contains("依頼済み")
    })
    .await;
    assert!(waiting.contains("自宅 防府市"), "{waiting}");
    assert!(
        waiting.contains("人工呼吸器") && waiting.contains("酸素投与"),
        "{waiting}"
    );
    // The triage kept the risk factor and the need: read once the case board has applied
    // the request (the case's third event, after the report and the triage).
    let (status, board) = world
        .api
        .http_get(
            Some(HC),
            &format!("/api/v1/views/case_board?min_versions=case-{case_id}:3"),
        )
        .await;
    assert_eq!(status, 200, "{board}");
    let row = board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case_id"] == case_id.as_str())
        .unwrap_or_else(|| panic!("the case is on the board: {board}"));
    assert_eq!(
        row["risk_factors"],
        serde_json::json!(["RISK_FACTOR_AGE_65_PLUS"]),
        "{row}"
    );
    assert!(
        row["needs"]
            .as_array()
            .unwrap()
            .contains(&"CAPABILITY_OXYGEN".into()),
        "{row}"
    );
    click(&hq, "#queue tbody tr[data-placement] button.choose").await;
    let top = wait_for(&hq, "#candidates li[data-facility]").await;
    assert_eq!(
        top.attr("data-facility").await.unwrap().as_deref(),
        Some("hofu-central")
    );
    let text = top.text().await.unwrap();
    assert!(text.contains("医療圏 3504 山口・防府"), "{text}");
    top.find(Locator::Css("button.offer"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&hq, "#queue tbody tr[data-placement]", |t| {
        t.contains("打診中")
    })
    .await;

    // 3. The hospital accepts; the offer it saw names no patient.
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    // Its area goes by name once the page has loaded the names.
    let offer = wait_text(&beds, "#offers tbody tr[data-placement]", |t| {
        t.contains("中等症") && t.contains("自宅 3504 山口・防府")
    })
    .await;
    assert!(!offer.contains("試験 五郎"), "{offer}");
    assert!(offer.contains("人工呼吸器"), "{offer}");
    accessible(&beds, "facility").await;
    screenshot(&beds, "facility").await;
    click(&beds, "#offers tbody tr[data-placement] button.accept").await;
    wait_text(&hq, "#queue tbody tr[data-placement]", |t| {
        t.contains("受入決定")
    })
    .await;
    wait_text(&beds, "#inbound tbody tr[data-placement]", |t| {
        t.contains("試験 五郎")
    })
    .await;

    // 4. The health center arranges transport.
    wait_text(
        &nurse,
        "#cases tbody tr[data-case] .placement-status",
        |t| t == "受入決定 → 防府中央みらい病院",
    )
    .await;
    click(&nurse, "#cases tbody tr[data-case] button.open").await;
    pick(
        &nurse,
        "#transport-form select[name='vehicle']",
        "VEHICLE_HEALTH_CENTER_VEHICLE",
    )
    .await;
    // Times are entered and shown in Japan time, whatever the device's zone (this
    // browser's is the machine's).
    pick(
        &nurse,
        "#transport-form input[name='pickup_at']",
        "2026-12-05T10:30",
    )
    .await;
    click(&nurse, "#transport-form button[type=submit]").await;
    wait_text(&nurse, "#case-status", |t| t.contains("搬送手配")).await;
    wait_text(&beds, "#inbound tbody tr[data-placement]", |t| {
        t.contains("12/5 10:30")
    })
    .await;
    let (status, inbox) = world
        .api
        .http_get(Some(HOSPITAL), "/api/v1/views/facility_inbox")
        .await;
    assert_eq!(status, 200, "{inbox}");
    assert!(
        inbox
            .to_string()
            .contains(r#""pickup_at":"2026-12-05T01:30:00Z""#),
        "{inbox}"
    );
    wait_text(&hq, "#queue tbody tr[data-placement]", |t| {
        t.contains("搬送手配済み")
    })
    .await;
    accessible(&nurse, "health-center").await;
    screenshot(&nurse, "health-center").await;
    // The patient leaves home.
    click(&nurse, "#departure-form button[type=submit]").await;
    wait_text(&nurse, "#case-status", |t| t.contains("出発")).await;
    wait_text(&hq, "#queue tbody tr[data-placement]", |t| {
        t.contains("搬送中")
    })
    .await;

    // 5. The hospital records the arrival: the placement leaves HQ's queue and the bed
    //    is occupied on HQ's board, all without a reload.
    wait_text(&beds, "#inbound tbody tr[data-placement]", |t| {
        t.contains("搬送中")
    })
    .await;
    click(&beds, "#inbound tbody tr[data-placement] button.arrive").await;
    wait_text(&beds, "#placed tbody tr[data-placement]", |t| {
        t.contains("試験 五郎")
    })
    .await;
    wait_text(&hq, occupied, |t| t == "2").await;
    wait_gone(
        &hq,
        "#queue tbody tr[data-placement]",
        "the arrived placement left the queue",
    )
    .await;
    let same = hq
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        serde_json::Value::Bool(true),
        "HQ's page was reloaded"
    );
    accessible(&hq, "hq").await;
    screenshot(&hq, "hq").await;

    // 6. The hospital asks for a step-down to a hotel in one step: the patient keeps the
    //    bed until arriving there, and the case's nurse and HQ see the request without a
    //    reload.
    click(
        &beds,
        "#placed tbody tr[data-placement] button.open-patient",
    )
    .await;
    pick(
        &beds,
        "#escalate-form select[name='category']",
        "BED_CATEGORY_HOTEL_ROOM",
    )
    .await;
    click(&beds, "#escalate-form button[type=submit]").await;
    wait_text(
        &beds,
        "#placed tbody tr[data-placement] td.moving-on",
        |t| t == "依頼済み",
    )
    .await;
    wait_text(
        &nurse,
        "#cases tbody tr[data-case] .placement-status",
        |t| t == "依頼済み",
    )
    .await;
    wait_text(&nurse, "#cases tbody tr[data-case] .case-status", |t| {
        t == "入院中"
    })
    .await;
    wait_for(&hq, "#queue tbody tr[data-placement]").await;
    wait_text(&hq, occupied, |t| t == "2").await;
    let timeline = hq
        .execute("return document.querySelector('#queue') !== null;", vec![])
        .await
        .unwrap();
    assert_eq!(timeline, serde_json::Value::Bool(true));

    // The fourth browser: the case's timeline, each event named in the reader's language,
    // then the public statistics, as anyone logged in sees them.
    log_in(&public, &world.base, "hq.duty", PASSWORD).await;
    public
        .goto(&format!("{}/timeline?case_id={case_id}", world.base))
        .await
        .unwrap();
    // Facilities go by name once the page has loaded the names.
    let timeline = wait_text(&public, "#timeline", |t| {
        t.contains("到着") && t.contains("防府中央みらい病院")
    })
    .await;
    for step in [
        "患者の報告",
        "入院調整の依頼",
        "受入打診",
        "受入決定",
        "搬送手配",
        "出発",
    ] {
        assert!(timeline.contains(step), "{step} missing: {timeline}");
    }
    assert!(!timeline.contains("PlacementRequested"), "{timeline}");
    accessible(&public, "timeline").await;
    public
        .goto(&format!("{}/public", world.base))
        .await
        .unwrap();
    wait_text(&public, "#public-stats", |t| {
        t.contains("中等症") && t.contains("医療圏 3504 山口・防府")
    })
    .await;
    let order = public
        .execute(
            "return [...document.querySelectorAll('#public-stats .area:first-child tr')].map(r => r.dataset.category);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        order,
        serde_json::json!(["SEVERE", "MODERATE", "MILD", "HOTEL_ROOM"])
    );
    accessible(&public, "public").await;
    screenshot(&public, "public").await;
    for client in [hq, nurse, beds, public] {
        client.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_hospital_limits_its_acceptance_and_says_why() {
    let browser = Browser::start().await;
    let world = world().await;
    let beds = browser.session().await;
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    let category = "#acceptance-form select[name='category']";
    let acceptance = "#acceptance-form select[name='acceptance']";
    wait_for(
        &beds,
        "#acceptance-form option[value='BED_CATEGORY_MODERATE']",
    )
    .await;
    pick(&beds, category, "BED_CATEGORY_MODERATE").await;
    // The page says when the figures were last reported, in Japan time, as HQ's board does.
    let (_, board) = world
        .api
        .http_get(Some(HQ), "/api/v1/views/bed_board?category=MODERATE")
        .await;
    let declared_at = board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["facility_id"] == "hofu-central")
        .and_then(|r| r["declared_at"].as_str())
        .map(|at| {
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .unwrap()
                    .to_offset(time::macros::offset!(+9));
            format!(
                "{}/{} {:02}:{:02}",
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute()
            )
        })
        .expect("the seed declares hofu-central's moderate beds");
    wait_text(
        &beds,
        "#capacity tr[data-category='MODERATE'] .declared",
        |t| t == format!("最終報告 {declared_at}"),
    )
    .await;
    // It starts from the category's current state: accepting, without limits.
    assert_eq!(value(&beds, acceptance).await, "ACCEPTANCE_ACCEPTING");
    // A limit needs "limited": named at the group, and nothing is written.
    let events = world.api.db.event_count().await;
    click(
        &beds,
        "#acceptance-form input[value='ACCEPTANCE_CONSTRAINT_STAFF']",
    )
    .await;
    click(&beds, "#acceptance-form button[type=submit]").await;
    let error = wait_text(
        &beds,
        "#acceptance-form [data-list='constraints'] .field-error",
        |t| !t.is_empty(),
    )
    .await;
    assert!(error.contains("「制限あり」を選んでください"), "{error}");
    assert_eq!(world.api.db.event_count().await, events);
    pick(&beds, acceptance, "ACCEPTANCE_LIMITED").await;
    click(&beds, "#acceptance-form button[type=submit]").await;
    wait_text(&beds, "#acceptance-form .form-status", |t| {
        t == "登録しました"
    })
    .await;
    wait_text(
        &beds,
        "#capacity tr[data-category='MODERATE'] .acceptance",
        |t| t == "制限あり（人員）",
    )
    .await;
    // HQ's board says so.
    let mut row = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, board) = world
            .api
            .http_get(Some(HQ), "/api/v1/views/bed_board?category=MODERATE")
            .await;
        assert_eq!(status, 200, "{board}");
        row = board["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["facility_id"] == "hofu-central")
            .cloned()
            .unwrap_or_default();
        if row["acceptance"] == "ACCEPTANCE_LIMITED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (&row["acceptance"], &row["constraints"]),
        (
            &serde_json::json!("ACCEPTANCE_LIMITED"),
            &serde_json::json!(["ACCEPTANCE_CONSTRAINT_STAFF"])
        ),
        "{row}"
    );
    // And HQ's page, with the time of the last report.
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    let hq_row = "#bed-board tr[data-facility='hofu-central'][data-category='MODERATE']";
    wait_text(&hq, &format!("{hq_row} td.declared"), |t| t == declared_at).await;
    wait_text(&hq, hq_row, |t| t.contains("制限あり（人員）")).await;
    hq.close().await.unwrap();
    beds.close().await.unwrap();
}

/// Polls until the form control `css` holds `expected`.
async fn wait_value(client: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = value(client, css).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css}: {last:?}, never {expected:?}");
}

#[tokio::test]
async fn the_capacity_form_follows_hq_s_figures_until_the_bed_manager_types() {
    let browser = Browser::start().await;
    let world = world().await;
    let beds = browser.session().await;
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    let moderate = |figure: &str| {
        format!(
            "#declare-table tr:has(input[value='BED_CATEGORY_MODERATE']) \
             input[name$='.{figure}']"
        )
    };
    let (secured, ready) = (moderate("secured"), moderate("ready"));
    wait_for(&beds, &secured).await;
    // HQ enters figures on the hospital's behalf: the open form shows them.
    let hq = |secured, ready| {
        world.api.declare(
            HQ,
            "hofu-central",
            pb::BedCategory::Moderate,
            secured,
            ready,
            3,
        )
    };
    hq(40, 20).await;
    wait_value(&beds, &secured, "40").await;
    wait_value(&beds, &ready, "20").await;
    // Once the bed manager types, what they typed stays.
    fill(&beds, &ready, "21").await;
    hq(41, 22).await;
    wait_text(&beds, "#capacity tr[data-category='MODERATE']", |t| {
        t.contains("即応病床 22")
    })
    .await;
    assert_eq!(value(&beds, &secured).await, "40");
    assert_eq!(value(&beds, &ready).await, "21");
    // Declared, the form follows the figures again.
    click(&beds, "#declare-form button[type=submit]").await;
    wait_text(&beds, "#declare-form .form-status", |t| t == "登録しました").await;
    hq(42, 23).await;
    wait_value(&beds, &secured, "42").await;
    wait_value(&beds, &ready, "23").await;
    beds.close().await.unwrap();
}

#[tokio::test]
async fn home_care_and_a_placement_cancelled_by_the_health_center_then_by_hq() {
    let browser = Browser::start().await;
    let world = world().await;
    let case_id = world.api.report_case(pb::Severity::Mild).await;
    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    let row = format!("#cases tbody tr[data-case='{case_id}']");
    let status = format!("{row} .case-status");
    wait_text(&nurse, &status, |t| t == "報告済み").await;
    click(&nurse, &format!("{row} button.open")).await;
    // No placement yet: home care is offered, a cancel is not.
    wait_for(&nurse, "#home-care-form:not([hidden])").await;
    wait_for(&nurse, "#cancel-form[hidden]").await;
    fill(
        &nurse,
        "#home-care-form input[name='note']",
        "自宅で経過観察",
    )
    .await;
    click(&nurse, "#home-care-form button[type=submit]").await;
    wait_text(&nurse, &status, |t| t == "自宅療養").await;

    // The patient worsens: a placement is requested, then called off.
    click(&nurse, "#request-form button[type=submit]").await;
    wait_text(&nurse, &status, |t| t == "調整中").await;
    wait_for(&nurse, "#cancel-form:not([hidden])").await;
    wait_for(&nurse, "#home-care-form[hidden]").await;
    // A cancel states its reason.
    let events = world.api.db.event_count().await;
    click(&nurse, "#cancel-form button[type=submit]").await;
    wait_text(
        &nurse,
        "#cancel-form .field-error[data-field='reason']",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(world.api.db.event_count().await, events);
    fill(
        &nurse,
        "#cancel-form input[name='reason']",
        "症状が軽快したため",
    )
    .await;
    click(&nurse, "#cancel-form button[type=submit]").await;
    wait_text(&nurse, &format!("{row} .placement-status"), |t| {
        t.starts_with("取消")
    })
    .await;
    wait_text(&nurse, &status, |t| t == "自宅療養").await;

    // Requested again, and this time HQ calls it off from its queue.
    let placement_status = format!("{row} .placement-status");
    click(&nurse, "#request-form button[type=submit]").await;
    wait_text(&nurse, &placement_status, |t| t.starts_with("依頼済み")).await;
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    click(&hq, "#queue tbody tr[data-placement] button.cancel").await;
    wait_for(&hq, "#cancel-panel:not([hidden])").await;
    fill(
        &hq,
        "#hq-cancel-form input[name='reason']",
        "重複した依頼のため",
    )
    .await;
    click(&hq, "#hq-cancel-form button[type=submit]").await;
    wait_for(&hq, "#cancel-panel[hidden]").await;
    wait_text(&nurse, &placement_status, |t| t.starts_with("取消")).await;
    wait_gone(
        &hq,
        "#queue tbody tr[data-placement]",
        "the cancelled placement left HQ's queue",
    )
    .await;
    hq.close().await.unwrap();
    nurse.close().await.unwrap();
}

#[tokio::test]
async fn hq_moves_a_waiting_patient_up_the_queue_until_a_new_triage() {
    let browser = Browser::start().await;
    let world = world().await;
    // Both 65 or older: mild is priority 3, moderate I is 2. The mild case waits longer.
    let mild = world.api.report_case(pb::Severity::Mild).await;
    let mild_placement = world
        .api
        .request_placement(&mild, pb::BedCategory::Mild)
        .await;
    let moderate = world.api.report_case(pb::Severity::ModerateI).await;
    let moderate_placement = world
        .api
        .request_placement(&moderate, pb::BedCategory::Moderate)
        .await;
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    let first = "#queue tbody tr:first-child";
    let mild_row = format!("#queue tbody tr[data-placement='{mild_placement}']");
    wait_for(&hq, &mild_row).await;
    // The time to a bed counts both requests, by severity, live.
    wait_text(&hq, "#sla-rows tbody", |t| {
        t.contains("軽症") && t.contains("中等症I")
    })
    .await;
    wait_for(&hq, "#sla-chart svg g[data-step='to_first_offer']").await;
    wait_text(
        &hq,
        &format!("{first}[data-placement='{moderate_placement}'] td.priority"),
        |t| t == "2",
    )
    .await;

    // HQ raises the mild case to the top; the change states its reason.
    click(&hq, &format!("{mild_row} button.reprioritise")).await;
    wait_for(&hq, "#priority-panel:not([hidden])").await;
    assert_eq!(
        value(&hq, "#hq-priority-form select[name='priority']").await,
        "3"
    );
    pick(&hq, "#hq-priority-form select[name='priority']", "1").await;
    let events = world.api.db.event_count().await;
    click(&hq, "#hq-priority-form button[type=submit]").await;
    wait_text(
        &hq,
        "#hq-priority-form .field-error[data-field='reason']",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(world.api.db.event_count().await, events);
    fill(
        &hq,
        "#hq-priority-form input[name='reason']",
        "妊娠後期のため（本部判断）",
    )
    .await;
    click(&hq, "#hq-priority-form button[type=submit]").await;
    wait_for(&hq, "#priority-panel[hidden]").await;
    wait_text(
        &hq,
        &format!("{first}[data-placement='{mild_placement}'] td.priority"),
        |t| {
            t.starts_with('1') && t.contains("本部変更") && t.contains("妊娠後期のため（本部判断）")
        },
    )
    .await;
    assert_eq!(
        world
            .api
            .event_types(&format!("case-{mild}"))
            .await
            .last()
            .map(String::as_str),
        Some("PriorityOverridden")
    );

    // A new triage by the health center sets the computed priority again (mild, no
    // risk factor: 4), and the case goes back behind the other, without HQ's mark or reason.
    world.api.triage(&mild, pb::Severity::Mild).await;
    wait_text(
        &hq,
        &format!("{first}[data-placement='{moderate_placement}'] td.priority"),
        |t| t == "2",
    )
    .await;
    wait_text(&hq, &format!("{mild_row} td.priority"), |t| t == "4").await;
    hq.close().await.unwrap();
}

/// Reports a synthetic case under `reference` with the Hofu health center; its id.
async fn report_named(api: &TestApi, reference: &str, name: &str, kana: &str) -> String {
    let mut request = report_request(pb::Severity::Mild);
    request.external_ref = reference.into();
    let patient = request.patient.as_mut().unwrap();
    (patient.name, patient.name_kana) = (name.into(), kana.into());
    let result = api
        .cases()
        .report_case(authed(HC, request))
        .await
        .unwrap()
        .into_inner();
    result.stream_id.trim_start_matches("case-").to_owned()
}

#[tokio::test]
async fn a_nurse_finds_a_case_by_name_kana_or_reference_and_closed_cases_wait_until_asked_for() {
    let browser = Browser::start().await;
    let world = world().await;
    let hofu = report_named(&world.api, "HS-0001", "防府 一郎", "ホウフ イチロウ").await;
    let ube = report_named(&world.api, "HS-0002", "宇部 次郎", "ウベ ジロウ").await;
    let closed = report_named(&world.api, "HS-0003", "周南 三郎", "シュウナン サブロウ").await;
    world
        .api
        .cases()
        .close_case(authed(
            HC,
            pb::CloseCaseRequest {
                command_id: cid(),
                case_id: closed.clone(),
                outcome: pb::CaseOutcome::Recovered as i32,
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    let row = |case: &str| format!("#cases tbody tr[data-case='{case}']");
    // Open cases only, each with its reference.
    wait_text(&nurse, &row(&hofu), |t| t.contains("HS-0001")).await;
    wait_text(&nurse, "#case-count", |t| t == "2 / 2 件").await;
    assert!(nurse.find(Locator::Css(&row(&closed))).await.is_err());

    // Kana typed in hiragana finds the katakana reading; a reference in any case.
    fill(&nurse, "#case-search", "うべ").await;
    wait_text(&nurse, "#case-count", |t| t == "1 / 2 件").await;
    wait_for(&nurse, &row(&ube)).await;
    assert!(nurse.find(Locator::Css(&row(&hofu))).await.is_err());
    fill(&nurse, "#case-search", "hs-0001").await;
    wait_text(&nurse, "#case-count", |t| t == "1 / 2 件").await;
    wait_for(&nurse, &row(&hofu)).await;
    fill(&nurse, "#case-search", "防府").await;
    wait_for(&nurse, &row(&hofu)).await;
    // Erased as a person would, key by key (backspace).
    wait_for(&nurse, "#case-search")
        .await
        .send_keys(&"\u{E003}".repeat(4))
        .await
        .unwrap();
    wait_text(&nurse, "#case-count", |t| t == "2 / 2 件").await;

    // A patient whose SpO₂ falls comes first, whatever the order before.
    world
        .api
        .cases()
        .record_observation(authed(
            HC,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: ube.clone(),
                observed_at: None,
                temperature_decicelsius: 385,
                spo2_percent: 90,
                on_oxygen: false,
                symptoms: vec![],
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    wait_text(
        &nurse,
        &format!("#cases tbody tr:first-child[data-case='{ube}']"),
        |t| t.contains("悪化"),
    )
    .await;
    // Opening a case brings its panel into view below the board.
    click(&nurse, &format!("{} button.open", row(&hofu))).await;
    let top: f64 = nurse
        .execute(
            "return document.getElementById('case-panel').getBoundingClientRect().top;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        top.abs() < 5.0,
        "the case panel starts at the top of the window: {top}"
    );

    // Closed from its panel, the case leaves the board of open cases: the panel says so
    // and offers nothing more to do with it, rather than keep forms for a case gone.
    wait_for(&nurse, "#case-gone[hidden]").await;
    click(&nurse, "#close-form button[type=submit]").await;
    wait_for(&nurse, "#case-gone:not([hidden])").await;
    wait_text(&nurse, "#case-count", |t| t == "1 / 1 件").await;
    assert!(nurse.find(Locator::Css(&row(&hofu))).await.is_err());
    for form in ["observe-form", "triage-form", "request-form", "close-form"] {
        wait_for(&nurse, &format!("#{form}[hidden]")).await;
    }

    // Closed cases come when asked for (and the search still applies); a closed case's
    // panel offers no form either.
    pick(&nurse, "#case-scope", "all").await;
    wait_for(&nurse, "#case-gone[hidden]").await;
    wait_for(&nurse, "#observe-form[hidden]").await;
    wait_for(&nurse, "#close-form[hidden]").await;
    fill(&nurse, "#case-search", "周南").await;
    wait_text(&nurse, &format!("{} .case-status", row(&closed)), |t| {
        t == "回復"
    })
    .await;
    wait_text(&nurse, "#case-count", |t| t == "1 / 3 件").await;

    // A second report of the same reference is refused at the reference, in Japanese,
    // and writes nothing.
    let events = world.api.db.event_count().await;
    fill(&nurse, "#report-form input[name='external_ref']", "HS-0002").await;
    fill(
        &nurse,
        "#report-form input[name='patient.name']",
        "宇部 次郎",
    )
    .await;
    pick(
        &nurse,
        "#report-form input[name='patient.birth_date']",
        "1950-04-01",
    )
    .await;
    pick(&nurse, "#report-form select[name='municipality']", "352063").await;
    click(&nurse, "#report-form button[type=submit]").await;
    let error = wait_text(
        &nurse,
        "#report-form .field-error[data-field='external_ref']",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(error, "この HER-SYS ID の患者はすでに報告されています");
    assert_eq!(world.api.db.event_count().await, events);
    nurse.close().await.unwrap();
}

#[tokio::test]
async fn hq_adds_a_user_on_the_admin_page_who_can_then_log_in() {
    let browser = Browser::start().await;
    let world = world().await;
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    click(&hq, "#nav-admin").await;
    wait_text(&hq, "#users tbody", |t| t.contains("hofu.nurse")).await;
    // Organisations go by name, with the id the forms take below it; the forms suggest them.
    wait_text(&hq, "#users tr[data-user='hofu.beds']", |t| {
        t.contains("防府中央みらい病院\nhofu-central")
    })
    .await;
    let ube = wait_for(&hq, "#organisation-list option[value='ube-medical']").await;
    assert_eq!(
        ube.attr("label").await.unwrap().as_deref(),
        Some("宇部あおば医療センター")
    );
    fill(&hq, "#user-form input[name='username']", "ube.clerk").await;
    fill(&hq, "#user-form input[name='display_name']", "試験 事務").await;
    fill(
        &hq,
        "#user-form input[name='organisation_id']",
        "ube-medical",
    )
    .await;
    pick(&hq, "#user-form select[name='role']", "HOSPITAL").await;
    // Too short a password: named at the field, and nothing else is lost.
    fill(&hq, "#user-form input[name='password']", "short").await;
    click(&hq, "#user-form button[type=submit]").await;
    wait_text(&hq, "#user-form .field-error[data-field='password']", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(
        value(&hq, "#user-form input[name='username']").await,
        "ube.clerk"
    );
    fill(
        &hq,
        "#user-form input[name='password']",
        "a long enough passphrase",
    )
    .await;
    click(&hq, "#user-form button[type=submit]").await;
    wait_text(&hq, "#users tbody", |t| t.contains("ube.clerk")).await;
    // The audit log shows who created it.
    wait_text(&hq, "#audit tbody", |t| t.contains("USER_CREATED")).await;
    // A webhook for the health center: its secret shows once, the endpoint is listed.
    fill(
        &hq,
        "#webhook-form input[name='organisation_id']",
        "hofu-hc",
    )
    .await;
    fill(
        &hq,
        "#webhook-form input[name='url']",
        "https://pager.example.invalid/noroshi",
    )
    .await;
    fill(&hq, "#webhook-form input[name='kinds']", "DETERIORATION").await;
    click(&hq, "#webhook-form button[type=submit]").await;
    wait_text(&hq, "#webhook-secret", |t| t.contains("whsec_")).await;
    wait_text(&hq, "#webhooks", |t| {
        t.contains("pager.example.invalid") && t.contains("DETERIORATION")
    })
    .await;
    accessible(&hq, "admin").await;
    screenshot(&hq, "admin").await;

    let clerk = browser.session().await;
    log_in(&clerk, &world.base, "ube.clerk", "a long enough passphrase").await;
    assert_eq!(
        clerk.current_url().await.unwrap().path(),
        "/facility/ube-medical"
    );
    // Not for a hospital.
    clerk.goto(&format!("{}/admin", world.base)).await.unwrap();
    wait_text(&clerk, "main h1", |t| t == "このページは表示できません").await;
    for client in [hq, clerk] {
        client.close().await.unwrap();
    }
}

/// A hotel nurse records a resident's low SpO₂ and asks for a hospital bed in one step:
/// the page speaks as a hotel does (療養中, 退所), the resident keeps the room while the
/// request goes on, and the discharge is not offered meanwhile.
#[tokio::test]
async fn a_hotel_nurse_records_a_low_spo2_and_requests_a_hospital_bed() {
    let browser = Browser::start().await;
    let world = world().await;
    let api = &world.api;
    api.declare(HOTEL, "yuda-hotel", pb::BedCategory::HotelRoom, 10, 10, 0)
        .await;
    let case_id = api.report_case(pb::Severity::Mild).await;
    api.admit(&case_id, pb::BedCategory::HotelRoom, HOTEL, "yuda-hotel")
        .await;

    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "yuda.nurse", PASSWORD).await;
    let row = format!("#placed tr[data-case='{case_id}']");
    wait_for(&nurse, &row).await;
    // A hotel's words: residents 療養中, who check out (退所).
    wait_text(&nurse, "h2[data-i18n='fac.placed']", |t| t == "療養中").await;
    wait_text(&nurse, &format!("{row} button.discharge"), |t| t == "退所").await;
    let outcomes = nurse
        .find_all(Locator::Css(&format!(
            "{row} select[name='outcome'] option"
        )))
        .await
        .unwrap();
    assert_eq!(
        outcomes.len(),
        2,
        "recovered or deceased; moving on is a request"
    );

    click(&nurse, &format!("{row} button.open-patient")).await;
    fill(&nurse, "#fac-observe-form input[name='spo2_percent']", "92").await;
    fill(
        &nurse,
        "#fac-observe-form input[name='temperature_decicelsius']",
        "38.2",
    )
    .await;
    click(&nurse, "#fac-observe-form button[type=submit]").await;
    wait_text(&nurse, &format!("{row} td.spo2"), |t| {
        t.contains("92%") && t.contains("悪化")
    })
    .await;

    wait_text(&nurse, "#escalate-form h3", |t| t == "入院の依頼（悪化時）").await;
    pick(
        &nurse,
        "#escalate-form select[name='category']",
        "BED_CATEGORY_MODERATE",
    )
    .await;
    click(&nurse, "#escalate-form button[type=submit]").await;
    wait_text(&nurse, &format!("{row} td.moving-on"), |t| t == "依頼済み").await;
    // The room stays the resident's; no discharge while the request goes on.
    wait_gone(
        &nurse,
        &format!("{row} .discharge-form"),
        "the discharge form",
    )
    .await;
    let (_, board) = api
        .http_get(Some(HQ), "/api/v1/views/bed_board?category=HOTEL_ROOM")
        .await;
    let room = board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["facility_id"] == "yuda-hotel")
        .cloned()
        .unwrap();
    assert_eq!(room["occupied"], 1, "{room}");
    // HQ's queue shows the escalation (its projection may trail the inbox a moment).
    let mut escalation = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, queue) = api
            .http_get(Some(HQ), "/api/v1/views/placement_queue")
            .await;
        escalation = queue["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["case_id"] == case_id.as_str())
            .cloned()
            .unwrap_or_default();
        if !escalation.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (&escalation["origin"], &escalation["deteriorated"]),
        (&serde_json::json!("yuda-hotel"), &serde_json::json!(true)),
        "{escalation}"
    );
    accessible(&nurse, "hotel").await;
    screenshot(&nurse, "hotel").await;
    nurse.close().await.unwrap();
}

/// A hotel nurse asks for a remote consult; the consult center's page shows the request
/// live without the patient's identity, the doctor takes it, holds it and completes it
/// with ESCALATE; the placement request reaches HQ's queue without a reload.
#[tokio::test]
async fn a_remote_consult_from_a_hotel_ends_in_hq_s_queue() {
    let browser = Browser::start().await;
    let world = world().await;
    let api = &world.api;
    api.declare(HOTEL, "yuda-hotel", pb::BedCategory::HotelRoom, 10, 10, 0)
        .await;
    let case_id = api.report_case(pb::Severity::Mild).await;
    api.admit(&case_id, pb::BedCategory::HotelRoom, HOTEL, "yuda-hotel")
        .await;

    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    wait_for(&hq, "#queue").await;
    hq.execute("window.stillTheSamePage = true;", vec![])
        .await
        .unwrap();
    let doctor = browser.session().await;
    log_in(&doctor, &world.base, "consult.doctor", PASSWORD).await;
    wait_text(&doctor, "#consults tbody", |t| {
        t.contains("依頼はありません")
    })
    .await;
    // The doctor allows notifications: a new request rings.
    doctor.execute(FAKE_NOTIFICATIONS, vec![]).await.unwrap();
    click(&doctor, "#notify").await;
    wait_text(&doctor, "#notify", |t| t.starts_with("通知: オン")).await;

    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "yuda.nurse", PASSWORD).await;
    let row = format!("#placed tr[data-case='{case_id}']");
    click(&nurse, &format!("{row} button.open-patient")).await;
    fill(
        &nurse,
        "#consult-form textarea[name='question']",
        "SpO₂ 93%、呼吸苦の訴えあり",
    )
    .await;
    fill(
        &nurse,
        "#consult-form input[name='contact']",
        "0835-00-0000",
    )
    .await;
    click(&nurse, "#consult-form button[type=submit]").await;
    wait_text(&nurse, "#patient-consults li .consult-status", |t| {
        t == "依頼済み"
    })
    .await;

    // The center sees the request live, de-identified until it takes it.
    let request = "#consults tbody tr[data-consult]";
    wait_text(&doctor, &format!("{request} .consult-status"), |t| {
        t == "依頼済み"
    })
    .await;
    let listed = wait_text(&doctor, request, |t| !t.is_empty()).await;
    assert!(!listed.contains("試験"), "{listed}");
    let told = shown(&doctor).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].starts_with("新しい遠隔診療の依頼 | 至急"),
        "{told:?}"
    );
    assert!(
        !told[0].contains("試験"),
        "a notification names no patient: {told:?}"
    );
    click(&doctor, &format!("{request} button.open-consult")).await;
    wait_text(&doctor, "#consult-title", |t| t.contains("特定されません")).await;
    let soon = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+9))
        + time::Duration::minutes(30);
    let soon = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        soon.year(),
        u8::from(soon.month()),
        soon.day(),
        soon.hour(),
        soon.minute()
    );
    let field = wait_for(&doctor, "#schedule-form input[name='scheduled_for']").await;
    doctor
        .execute(
            "arguments[0].value = arguments[1];",
            vec![
                serde_json::to_value(&field).unwrap(),
                serde_json::Value::String(soon),
            ],
        )
        .await
        .unwrap();
    fill(&doctor, "#schedule-form input[name='doctor']", "遠隔 一郎").await;
    click(&doctor, "#schedule-form button[type=submit]").await;
    // Taken: the patient is named now, with the history of the case (newest first), and
    // the doctor holds the consult.
    wait_text(&doctor, "#consult-title", |t| t.contains("試験 花子")).await;
    wait_text(&doctor, "#consult-timeline", |t| {
        t.contains("遠隔診療の依頼") && t.contains("患者の報告")
    })
    .await;
    click(&doctor, "#start-form button[type=submit]").await;
    wait_text(&doctor, "#consult-title", |t| t.contains("診察中")).await;
    fill(
        &doctor,
        "#complete-form textarea[name='findings']",
        "酸素投与の適応あり",
    )
    .await;
    pick(
        &doctor,
        "#complete-form select[name='recommendation']",
        "RECOMMENDATION_ESCALATE",
    )
    .await;
    click(&doctor, "#complete-form button[type=submit]").await;
    wait_text(&doctor, "#consult-status", |t| {
        t.contains("入院調整を依頼済み")
    })
    .await;

    // HQ's queue shows the new request from the hotel, without a reload.
    wait_text(&hq, "#queue tbody tr[data-placement]", |t| {
        t.contains("湯田ひだまりホテル")
    })
    .await;
    let same = hq
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        serde_json::Value::Bool(true),
        "HQ's page was reloaded"
    );
    // The nurse sees the recommendation and that the request is under way.
    wait_text(&nurse, "#patient-consults li", |t| t.contains("入院が必要")).await;
    wait_text(&nurse, &format!("{row} td.moving-on"), |t| t == "依頼済み").await;
    accessible(&doctor, "consult-center").await;
    screenshot(&doctor, "consult-center").await;
    for session in [hq, doctor, nurse] {
        session.close().await.unwrap();
    }
}

/// A health-center nurse puts a patient at home in the mobile clinic's care; the mobile
/// clinic's nurse sees the patient on its page without reloading, records a low SpO₂ and
/// asks a consult center; the health center's board shows who observed it, live.
#[tokio::test]
async fn a_mobile_clinic_nurse_cares_for_a_patient_at_home() {
    let browser = Browser::start().await;
    let world = world().await;
    let api = &world.api;
    let case_id = api.report_case(pb::Severity::Mild).await;

    let hc = browser.session().await;
    log_in(&hc, &world.base, "hofu.nurse", PASSWORD).await;
    let mobile = browser.session().await;
    log_in(&mobile, &world.base, "mobile.nurse", PASSWORD).await;
    // A mobile clinic has no beds: its page is the patients in its care.
    wait_text(&mobile, "#cared tbody", |t| {
        t.contains("担当する患者はいません")
    })
    .await;
    let beds = mobile.find_all(Locator::Css("section.beds")).await.unwrap();
    for section in beds {
        assert!(!section.is_displayed().await.unwrap(), "no bed panels");
    }

    let row = format!("#cases tr[data-case='{case_id}']");
    click(&hc, &format!("{row} button.open")).await;
    click(&hc, "#home-care-form button[type=submit]").await;
    wait_text(&hc, &format!("{row} td.case-status"), |t| t == "自宅療養").await;
    pick(
        &hc,
        "#care-site-form select[name='care_site_id']",
        "akiyoshi-mobile",
    )
    .await;
    click(&hc, "#care-site-form button[type=submit]").await;
    wait_text(&hc, "#case-title", |t| t.contains("秋吉台みらい号")).await;

    let mine = format!("#cared tr[data-case='{case_id}']");
    wait_for(&mobile, &mine).await;
    click(&mobile, &format!("{mine} button.open-patient")).await;
    assert!(
        !wait_for(&mobile, "#escalate-form")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "the health center places a patient at home"
    );
    fill(
        &mobile,
        "#fac-observe-form input[name='spo2_percent']",
        "93",
    )
    .await;
    click(&mobile, "#fac-observe-form button[type=submit]").await;
    wait_text(&mobile, &format!("{mine} td.spo2"), |t| {
        t.contains("93%") && t.contains("悪化")
    })
    .await;
    fill(
        &mobile,
        "#consult-form textarea[name='question']",
        "訪問時 SpO₂ 93%、入院の要否",
    )
    .await;
    fill(
        &mobile,
        "#consult-form input[name='contact']",
        "https://meet.example.invalid/akiyoshi",
    )
    .await;
    click(&mobile, "#consult-form button[type=submit]").await;
    wait_text(&mobile, "#patient-consults", |t| t.contains("依頼済み")).await;

    // The health center sees the deterioration, and who saw it, without reloading; and
    // the consult the mobile clinic asked for in the case's panel.
    wait_text(&hc, &format!("{row} td:nth-child(3)"), |t| {
        t.contains("悪化")
    })
    .await;
    wait_text(&hc, "#case-consults", |t| t.contains("依頼済み")).await;
    let (_, board) = api.http_get(Some(HC), "/api/v1/views/case_board").await;
    let case = board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case_id"] == case_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(case["last_observed_by"], "akiyoshi-mobile", "{case}");
    accessible(&mobile, "mobile clinic").await;
    accessible(&hc, "health center with a care site").await;
    screenshot(&mobile, "mobile-clinic").await;
    hc.close().await.unwrap();
    mobile.close().await.unwrap();
}

/// Stands in for the browser's Notification API, permission granted, and records what
/// the page shows: a headless browser has no desktop to show it on.
const FAKE_NOTIFICATIONS: &str = "window.shown = []; \
    window.Notification = class { \
      constructor(title, options) { window.shown.push(title + ' | ' + (options.body || '')); } \
      static get permission() { return 'granted'; } \
      static requestPermission() { return Promise.resolve('granted'); } \
    }; return true;";

async fn shown(client: &Client) -> Vec<String> {
    let value = client
        .execute("return window.shown || [];", vec![])
        .await
        .unwrap();
    serde_json::from_value(value).unwrap()
}

/// A hospital's page in the background tells of a new offer with a desktop notification,
/// and not once muted; a health center's alert panel shows a deterioration the scheduler
/// raised, the page title counts it, and a nurse acknowledges it with a note.
#[tokio::test]
async fn new_offers_notify_until_muted_and_alerts_are_acknowledged_from_the_panel() {
    let browser = Browser::start().await;
    let world = world().await;
    let api = &world.api;
    let beds = browser.session().await;
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    wait_text(&beds, "#live", |t| t == "ライブ").await;
    beds.execute(FAKE_NOTIFICATIONS, vec![]).await.unwrap();
    wait_text(&beds, "#notify", |t| t == "通知をオンにする").await;
    click(&beds, "#notify").await;
    wait_text(&beds, "#notify", |t| t.starts_with("通知: オン")).await;

    let offer = |severity| async move {
        let case_id = api.report_case(severity).await;
        let placement = api
            .request_placement(&case_id, pb::BedCategory::Moderate)
            .await;
        api.offer(&placement, "hofu-central").await;
        placement
    };
    let first = offer(pb::Severity::ModerateI).await;
    wait_for(&beds, &format!("#offers tr[data-placement='{first}']")).await;
    let mut told = Vec::new();
    for _ in 0..100 {
        told = shown(&beds).await;
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].starts_with("新しい受入打診 | "), "{told:?}");

    // Muted: the next offer shows on the page, and no notification.
    click(&beds, "#notify").await;
    wait_text(&beds, "#notify", |t| t.starts_with("通知: ミュート")).await;
    let second = offer(pb::Severity::ModerateIi).await;
    wait_for(&beds, &format!("#offers tr[data-placement='{second}']")).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(shown(&beds).await.len(), 1, "muted");
    accessible(&beds, "hospital with alerts").await;
    beds.close().await.unwrap();

    // A patient at home deteriorates; the scheduler raises the alert.
    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    wait_text(&nurse, "#alerts", |t| t.contains("アラートはありません")).await;
    nurse.execute(FAKE_NOTIFICATIONS, vec![]).await.unwrap();
    click(&nurse, "#notify").await;
    wait_text(&nurse, "#notify", |t| t.starts_with("通知: オン")).await;
    let case_id = api.report_case(pb::Severity::Mild).await;
    api.cases()
        .record_observation(authed(
            HC,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                spo2_percent: 91,
                ..pb::RecordObservationRequest::default()
            },
        ))
        .await
        .unwrap();
    let read_models = noroshi::read_models::ReadModels {
        pool: api.db.pool().clone(),
    };
    let system = noroshi_app::timers::system_principal().unwrap();
    let alert = "#alerts li[data-kind='DETERIORATION']";
    for _ in 0..100 {
        noroshi_app::scheduler::round(&api.handler, &read_models, &system)
            .await
            .unwrap();
        if nurse.find(Locator::Css(alert)).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    wait_text(&nurse, alert, |t| t.contains("重大 · 容体悪化")).await;
    // A new critical alert rings too.
    let told = shown(&nurse).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].starts_with("重大なアラート | 容体悪化"), "{told:?}");
    let title = nurse.title().await.unwrap();
    assert!(title.starts_with("(1) "), "{title}");
    accessible(&nurse, "health center with an alert").await;
    fill(
        &nurse,
        &format!("{alert} input[name='note']"),
        "電話で状態確認、救急要請",
    )
    .await;
    click(&nurse, &format!("{alert} button.ack")).await;
    wait_text(&nurse, alert, |t| {
        t.contains("確認済み") && t.contains("救急要請")
    })
    .await;
    for _ in 0..50 {
        if !nurse.title().await.unwrap().starts_with('(') {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !nurse.title().await.unwrap().starts_with('('),
        "no open alert left"
    );
    screenshot(&nurse, "health-center-alerts").await;
    nurse.close().await.unwrap();
}

/// HQ sets an area's occupancy thresholds on its page: a bad pair is named at its field,
/// a good one is recorded as a rule.
#[tokio::test]
async fn hq_sets_an_area_s_occupancy_thresholds_on_its_page() {
    let browser = Browser::start().await;
    let world = world().await;
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    let form = "#occupancy-rule-form";
    wait_text(
        &hq,
        &format!("{form} select[name='rule.occupancy.medical_area']"),
        |t| t.contains("山口・防府"),
    )
    .await;
    pick(
        &hq,
        &format!("{form} select[name='rule.occupancy.medical_area']"),
        "3504",
    )
    .await;
    fill(
        &hq,
        &format!("{form} input[name='rule.occupancy.warning_percent']"),
        "60",
    )
    .await;
    fill(
        &hq,
        &format!("{form} input[name='rule.occupancy.critical_percent']"),
        "40",
    )
    .await;
    click(&hq, &format!("{form} button[type=submit]")).await;
    wait_text(&hq, &format!("{form} .field-error"), |t| {
        t.contains("warning_percent")
    })
    .await;
    fill(
        &hq,
        &format!("{form} input[name='rule.occupancy.critical_percent']"),
        "80",
    )
    .await;
    click(&hq, &format!("{form} button[type=submit]")).await;
    wait_text(&hq, &format!("{form} .form-status"), |t| {
        t == "登録しました"
    })
    .await;
    let rules: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'noroshi.v1.AlertRuleSet'",
    )
    .fetch_all(world.api.db.pool())
    .await
    .unwrap();
    assert_eq!(rules.len(), 1, "one rule, the good one");
    // Each area shows the rule in force for it: 宇部・小野田 the defaults, 山口・防府 its own.
    let area = format!("{form} select[name='rule.occupancy.medical_area']");
    let warning = format!("{form} input[name='rule.occupancy.warning_percent']");
    let critical = format!("{form} input[name='rule.occupancy.critical_percent']");
    pick(&hq, &area, "3505").await;
    wait_value(&hq, &warning, "50").await;
    wait_value(&hq, &critical, "70").await;
    pick(&hq, &area, "3504").await;
    wait_value(&hq, &warning, "60").await;
    wait_value(&hq, &critical, "80").await;
    accessible(&hq, "hq with alert rules").await;
    hq.close().await.unwrap();
}

/// A health-center nurse checks a Shift_JIS case file on the page (a bad row named by line
/// and column, nothing recorded), records the good rows, and sees them on the board.
#[tokio::test]
async fn a_nurse_checks_a_case_file_then_imports_it_and_sees_the_cases() {
    let browser = Browser::start().await;
    let world = world().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("患者一覧.csv");
    let text = "HER-SYS ID,氏名,フリガナ,生年月日,性別,住所,市町村コード,重症度\n\
                IMP-001,取込 一子,トリコミ イチコ,昭和30年5月6日,女,防府市八王子1,352063,軽症\n\
                IMP-002,取込 二郎,トリコミ ジロウ,H2.3.4,男,防府市八王子2,352063,中等症Ⅱ\n\
                IMP-003,取込 三子,トリコミ ミツコ,1990/01/02,不明,防府市八王子3,352063,軽症\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
    std::fs::write(&path, &sjis).unwrap();
    let nurse = browser.session().await;
    log_in(&nurse, &world.base, "hofu.nurse", PASSWORD).await;
    wait_for(&nurse, "#import-form input[type=file]")
        .await
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
    click(&nurse, "#import-form button[type=submit]").await;
    wait_text(&nurse, "#import-status", |t| {
        t.contains("確認しました")
            && t.contains("全 3 行、新規 2")
            && t.contains("取り込めない行 1")
    })
    .await;
    let error = wait_text(&nurse, "#import-errors tbody tr", |t| !t.is_empty()).await;
    assert!(
        error.contains('4') && error.contains("性別") && error.contains("sex"),
        "{error}"
    );
    assert_eq!(
        world.api.db.event_count_of("noroshi.v1.CaseReported").await,
        0
    );
    accessible(&nurse, "health center import report").await;
    wait_text(&nurse, "#import-run", |t| t.contains("2 件を登録する")).await;
    click(&nurse, "#import-run").await;
    wait_text(&nurse, "#import-status", |t| {
        t.contains("登録しました") && t.contains("新規 2")
    })
    .await;
    wait_text(&nurse, "#cases tbody", |t| {
        t.contains("取込 一子") && t.contains("取込 二郎")
    })
    .await;
    assert_eq!(
        world.api.db.event_count_of("noroshi.v1.CaseReported").await,
        2
    );
    screenshot(&nurse, "health-center-import").await;
    nurse.close().await.unwrap();
}

/// A hospital's bed manager imports its figures from a spreadsheet on its page: a row of
/// another hospital is refused alone, its own rows show in its capacity at once.
#[tokio::test]
async fn a_bed_manager_imports_the_hospital_s_figures_from_a_file() {
    let browser = Browser::start().await;
    let world = world().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("病床.csv");
    let text = "医療機関等コード,病床区分,確保病床数,即応病床数,入院・入所者数\n\
                hofu-central,中等症,16,12,5\n\
                ube-medical,中等症,9,9,1\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
    std::fs::write(&path, &sjis).unwrap();
    let beds = browser.session().await;
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    wait_for(&beds, "#import-form input[type=file]")
        .await
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
    click(&beds, "#import-form button[type=submit]").await;
    wait_text(&beds, "#import-status", |t| {
        t.contains("全 2 行、新規 1") && t.contains("取り込めない行 1")
    })
    .await;
    let refused = wait_text(&beds, "#import-errors tbody tr", |t| !t.is_empty()).await;
    assert!(refused.contains("PERMISSION_DENIED"), "{refused}");
    click(&beds, "#import-run").await;
    wait_text(&beds, "#import-status", |t| t.contains("登録しました")).await;
    wait_text(&beds, "#capacity tr[data-category='MODERATE']", |t| {
        t.contains("即応病床 12") && t.contains("入院中 5")
    })
    .await;
    accessible(&beds, "hospital capacity import").await;
    beds.close().await.unwrap();
}

/// A time as a `datetime-local` value in Japan, to the second.
fn jst_input(at: time::OffsetDateTime) -> String {
    at.to_offset(time::macros::offset!(+9))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hq_replays_the_beds_as_they_were_with_the_review_slider() {
    let browser = Browser::start().await;
    let world = world().await;
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    let occupied =
        "#bed-board tr[data-facility='hofu-central'][data-category='MODERATE'] td:nth-child(5)";
    wait_text(&hq, occupied, |t| t == "1").await;
    let before = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    world
        .api
        .declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 5, 4)
        .await;
    wait_text(&hq, occupied, |t| t == "4").await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let after = time::OffsetDateTime::now_utc();

    // HQ reviews the period: at its end the figure of now, at its start the one before.
    hq.execute(
        "const f = document.getElementById('review-form'); \
         f.elements.from.value = arguments[0]; f.elements.to.value = arguments[1];",
        vec![jst_input(before).into(), jst_input(after).into()],
    )
    .await
    .unwrap();
    click(&hq, "#review-form button[type=submit]").await;
    wait_for(&hq, "#review-controls:not([hidden])").await;
    wait_text(&hq, "#review-at", |t| t.contains("振り返り表示中")).await;
    wait_text(&hq, occupied, |t| t == "4").await;
    // The map: 4 of 6 beds occupied in 山口・防府 (67 %).
    let tile = "#area-map g[data-area='3504']";
    wait_for(&hq, &format!("{tile}[data-level='mid']")).await;
    hq.execute(
        "const s = document.getElementById('review-slider'); s.value = '0'; \
         s.dispatchEvent(new Event('input'));",
        vec![],
    )
    .await
    .unwrap();
    wait_text(&hq, occupied, |t| t == "1").await;
    // ...and in the past, 1 of 6 (17 %).
    wait_for(&hq, &format!("{tile}[data-level='low']")).await;
    let note = wait_text(&hq, ".review-note", |t| t.contains("時点の状況")).await;
    assert!(note.contains("操作はできません"), "{note}");
    // Nothing said in the meantime reaches the past.
    world
        .api
        .declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 5, 3)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(wait_text(&hq, occupied, |_| true).await, "1");
    accessible(&hq, "hq-review").await;

    // Back to the present, live again.
    click(&hq, "#review-live").await;
    wait_text(&hq, occupied, |t| t == "3").await;
    world
        .api
        .declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 5, 2)
        .await;
    wait_text(&hq, occupied, |t| t == "2").await;
    hq.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hq_and_the_hospital_see_figures_that_disagree_with_the_patients_placed() {
    let browser = Browser::start().await;
    let world = world().await;
    let api = &world.api;
    // Two patients placed at Hofu Central (6 secured, 4 ready, 1 occupied before).
    for _ in 0..2 {
        let case = api.report_case(pb::Severity::ModerateI).await;
        let placement = api
            .request_placement(&case, pb::BedCategory::Moderate)
            .await;
        api.offer(&placement, "hofu-central").await;
        api.accept(HOSPITAL, &placement).await.unwrap();
        api.transport(&placement).await;
        api.arrive(HOSPITAL, &placement).await;
    }
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    let beds = browser.session().await;
    log_in(&beds, &world.base, "hofu.beds", PASSWORD).await;
    wait_text(&hq, "#reconcile tbody", |t| {
        t.contains("食い違いはありません")
    })
    .await;
    wait_for(&beds, "#offers").await;
    assert!(
        beds.find(Locator::Css("#reconcile-notice[hidden]"))
            .await
            .is_ok(),
        "no notice while the figures agree"
    );

    // The bed manager declares one occupied bed while two placed patients are there.
    api.declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 4, 1)
        .await;
    let row = "#reconcile tbody tr[data-facility='hofu-central'][data-category='MODERATE']";
    let shown = wait_text(&hq, row, |t| !t.is_empty()).await;
    assert!(shown.contains('1') && shown.contains('2'), "{shown}");
    let notice = wait_text(
        &beds,
        "#reconcile-notice:not([hidden]) #reconcile-own",
        |t| t.contains("報告上の入院中は 1 床") && t.contains("入院中の患者は 2 人"),
    )
    .await;
    assert!(notice.contains("中等症"), "{notice}");
    accessible(&beds, "facility-reconcile").await;

    // Figures that agree clear both, live.
    api.declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 4, 2)
        .await;
    wait_text(&hq, "#reconcile tbody", |t| {
        t.contains("食い違いはありません")
    })
    .await;
    wait_for(&beds, "#reconcile-notice[hidden]").await;
    hq.close().await.unwrap();
    beds.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_area_map_follows_the_bed_board_live() {
    let browser = Browser::start().await;
    let world = world().await;
    let hq = browser.session().await;
    log_in(&hq, &world.base, "hq.duty", PASSWORD).await;
    // 山口・防府: Hofu Central, 1 of 6 moderate beds occupied; 宇部・小野田: none of 5.
    let tile =
        |area: &str, level: &str| format!("#area-map g[data-area='{area}'][data-level='{level}']");
    wait_for(&hq, &tile("3504", "low")).await;
    wait_for(&hq, &tile("3505", "low")).await;
    let title = wait_text(&hq, "#area-map g[data-area='3504'] text.figure", |t| {
        !t.is_empty()
    })
    .await;
    assert!(title.contains("空床"), "{title}");
    let hover: String = hq
        .execute(
            "return document.querySelector(\"#area-map g[data-area='3504'] title\").textContent;",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        hover.contains("3504") && hover.contains("入院中 1"),
        "{hover}"
    );
    // A declaration turns the area's colour, without a reload.
    world
        .api
        .declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 6, 4, 5)
        .await;
    wait_for(&hq, &tile("3504", "high")).await;
    wait_for(&hq, &tile("3505", "low")).await;
    // A tile leads to its area's rows.
    assert!(
        hq.find(Locator::Css("#area-map a[href='#area-3504']"))
            .await
            .is_ok()
    );
    wait_for(&hq, "#bed-board #area-3504").await;
    accessible(&hq, "hq-map").await;
    hq.close().await.unwrap();

    // The public page draws the same areas from the public statistics.
    let public = browser.session().await;
    log_in(&public, &world.base, "hq.duty", PASSWORD).await;
    public
        .goto(&format!("{}/public", world.base))
        .await
        .unwrap();
    wait_for(&public, "#area-map g[data-area='3504']").await;
    accessible(&public, "public-map").await;
    public.close().await.unwrap();
}

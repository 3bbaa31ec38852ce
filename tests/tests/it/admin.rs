//! `noroshi admin apply`: the Yamaguchi demo file through the real binary, and the
//! declarative rules (register, update, unchanged, refuse) through the library.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use noroshi::apply::{AdminError, AdminFile, Outcome, Plan, apply};
use noroshi_codec::decode;
use noroshi_domain::DomainEvent;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::facility::{FacilityEvent, FacilityProfile};
use noroshi_domain::values::{FacilityId, FacilityKind, PrincipalId};
use noroshi_event_store::GlobalCursor;
use noroshi_identity::tokens::Tokens;
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{Actor, ApiOptions, TestApi, authed, declare_request, report_request};
use noroshi_tests::{TestDatabase, noroshi_bin, read_all_to};

fn demo_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/demo/yamaguchi.toml")
}

/// Runs `noroshi admin apply <args>` against `db`; returns stdout, or panics with stderr.
fn admin_apply(db: &TestDatabase, args: &[&str]) -> String {
    let output = Command::new(noroshi_bin())
        .args(["--log", "warn", "admin", "apply"])
        .args(args)
        .env("NOROSHI_DATABASE_URL", db.url())
        .output()
        .expect("run noroshi admin apply");
    assert!(
        output.status.success(),
        "admin apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every registered profile in the store, by id.
async fn registered(db: &TestDatabase, count: usize) -> BTreeMap<String, FacilityProfile> {
    let (events, _) = read_all_to(&db.store(), GlobalCursor::START, 100, count).await;
    events
        .iter()
        .filter_map(|e| match decode(e).expect("decodable") {
            DomainEvent::Facility(FacilityEvent::Registered(p)) => {
                Some((p.facility_id.to_string(), p))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_demo_file_registers_yamaguchi_once() {
    let db = TestDatabase::create().await;
    let demo = demo_file();
    let demo = demo.to_str().expect("utf-8 path");

    let dry = admin_apply(&db, &["--dry-run", demo]);
    assert!(dry.contains("51 would be registered"), "{dry}");
    assert!(dry.contains("users: 7 would be created"), "{dry}");
    assert_eq!(db.event_count().await, 0, "a dry run writes nothing");

    let first = admin_apply(&db, &[demo]);
    assert!(
        first.contains(
            "facilities: 51 registered, 0 updated, 0 unchanged; tokens checked: 53; \
             users: 7 created, 0 existing; medical areas: 8"
        ),
        "{first}"
    );
    let logins: Vec<(String, String, String)> =
        sqlx::query_as("SELECT username, organisation_id, role FROM users ORDER BY username")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(
        logins,
        [
            ("demo-admin", "noroshi-admin", "ADMIN"),
            ("demo-consult", "yamabiko-remote-center", "CONSULT_CENTER"),
            ("demo-hc", "yamaguchi-hc", "HEALTH_CENTER"),
            ("demo-hospital", "hofu-sakuragi-general", "HOSPITAL"),
            ("demo-hotel", "yuda-onsen-hotel", "HOTEL"),
            ("demo-hq", "yamaguchi-hq", "HQ"),
            ("demo-mobile", "yamabiko-go", "MOBILE_CLINIC"),
        ]
        .map(|(u, o, r)| (u.to_owned(), o.to_owned(), r.to_owned()))
    );
    let facilities = registered(&db, 51).await;
    assert_eq!(facilities.len(), 51);
    assert_eq!(db.event_count().await, 51);

    let by_kind = |kind| facilities.values().filter(move |p| p.kind == kind);
    assert_eq!(by_kind(FacilityKind::Hq).count(), 1);
    assert_eq!(by_kind(FacilityKind::HealthCenter).count(), 8);
    assert_eq!(by_kind(FacilityKind::Hospital).count(), 31);
    assert_eq!(by_kind(FacilityKind::Hotel).count(), 5);
    assert_eq!(by_kind(FacilityKind::ConsultCenter).count(), 1);
    assert_eq!(by_kind(FacilityKind::Clinic).count(), 3);
    assert_eq!(by_kind(FacilityKind::MobileClinic).count(), 1);
    assert_eq!(by_kind(FacilityKind::Temporary).count(), 1);

    // The eight medical areas, each with one health center whose jurisdiction holds
    // every facility of the area, and the jurisdictions together cover Yamaguchi's 19
    // municipalities exactly once.
    let mut covered = BTreeSet::new();
    let mut areas = BTreeSet::new();
    for hc in by_kind(FacilityKind::HealthCenter) {
        let area = hc
            .medical_area
            .clone()
            .expect("a health center has an area");
        areas.insert(area.to_string());
        for m in &hc.jurisdiction {
            assert!(covered.insert(m.to_string()), "{m} is in two jurisdictions");
        }
        for facility in facilities.values() {
            if facility.medical_area.as_ref() == Some(&area) {
                assert!(
                    hc.jurisdiction.contains(&facility.municipality),
                    "{} lies outside its area's health center",
                    facility.facility_id
                );
            }
        }
        assert!(
            by_kind(FacilityKind::Hospital).any(|h| h.medical_area.as_ref() == Some(&area)),
            "area {area} has a hospital"
        );
    }
    let expected_areas: BTreeSet<String> = (1..=8).map(|n| format!("350{n}")).collect();
    assert_eq!(areas, expected_areas);
    assert_eq!(covered.len(), 19, "{covered:?}");

    let again = admin_apply(&db, &[demo]);
    assert!(
        again.contains("facilities: 0 registered, 0 updated, 51 unchanged"),
        "{again}"
    );
    assert!(again.contains("users: 0 created, 7 existing"), "{again}");
    let borders: Vec<(String, Vec<String>)> =
        sqlx::query_as("SELECT code, neighbours FROM medical_areas ORDER BY code")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(borders.len(), 8);
    // Every border goes both ways.
    for (code, neighbours) in &borders {
        for n in neighbours {
            let (_, back) = borders.iter().find(|(c, _)| c == n).unwrap();
            assert!(back.contains(code), "{code} borders {n} one way only");
        }
    }
    // Each of the 19 municipalities is named once, in the area of the health center
    // whose jurisdiction holds it.
    let places: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT code, name, name_en, medical_area FROM municipalities ORDER BY code",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let named: BTreeSet<String> = places.iter().map(|(code, ..)| code.clone()).collect();
    assert_eq!(named, covered);
    for (code, name, name_en, area) in &places {
        assert!(!name.is_empty() && name_en.is_some(), "{code}");
        let hc = by_kind(FacilityKind::HealthCenter)
            .find(|hc| hc.jurisdiction.iter().any(|m| m.as_str() == code))
            .unwrap();
        assert_eq!(
            hc.medical_area.as_ref().map(|a| a.as_str()),
            Some(area.as_str()),
            "{code} {name}"
        );
    }
    assert_eq!(db.event_count().await, 51, "applying twice changes nothing");
}

#[tokio::test]
async fn demo_tokens_act_for_their_organisations() {
    let tokens = Tokens::load(&demo_file()).expect("the demo tokens load");
    assert_eq!(tokens.len(), 53);
    let api = TestApi::with(ApiOptions {
        tokens,
        ..ApiOptions::default()
    })
    .await;
    let file = AdminFile::load(&demo_file()).expect("the demo file parses");
    let plan = Plan::check(&file, "35").expect("the demo file is valid");
    let report = apply(&api.handler, &operator(), &plan, false)
        .await
        .expect("apply");
    assert_eq!(report.count(Outcome::Registered), 51);

    const HOSPITAL: Actor = Actor {
        token: "demo-token-hofu-sakuragi-general",
        organisation: "hofu-sakuragi-general",
        role: "HOSPITAL",
    };
    const HEALTH_CENTER: Actor = Actor {
        token: "demo-token-yamaguchi-hc",
        organisation: "yamaguchi-hc",
        role: "HEALTH_CENTER",
    };
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-sakuragi-general",
            pb::BedCategory::Moderate,
            20,
            12,
            4,
        )
        .await;
    assert_eq!(declared.stream_id, "facility-hofu-sakuragi-general");
    let denied = api
        .facilities()
        .declare_capacity(authed(
            HOSPITAL,
            declare_request("hofu-umibe", pb::BedCategory::Moderate, 1, 1, 0),
        ))
        .await
        .expect_err("another hospital's capacity");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let reported = api
        .cases()
        .report_case(authed(
            HEALTH_CENTER,
            report_request(pb::Severity::ModerateI),
        ))
        .await
        .expect("Hofu lies in the Yamaguchi-Hofu health center's jurisdiction")
        .into_inner();
    assert!(reported.stream_id.starts_with("case-"), "{reported:?}");
}

fn operator() -> Principal {
    Principal {
        principal_id: PrincipalId::parse("test-operator").expect("valid"),
        organisation_id: FacilityId::parse("noroshi-admin").expect("valid"),
        role: Role::Admin,
    }
}

const SMALL: &str = r#"
[[facility]]
facility_id = "hagi-hc"
name = "萩地域保健所"
kind = "HEALTH_CENTER"
medical_area = "3508"
municipality = "352047"
jurisdiction = ["352047", "355020"]

[[facility]]
facility_id = "hagi-test-hospital"
name = "萩テスト病院"
kind = "HOSPITAL"
medical_area = "3508"
municipality = "352047"
capabilities = ["OXYGEN"]

[[token]]
token = "small-file-token-hospital"
principal_id = "hagi-beds"
organisation_id = "hagi-test-hospital"
role = "HOSPITAL"
"#;

async fn apply_text(api: &TestApi, text: &str) -> Result<noroshi::apply::Report, AdminError> {
    let file = AdminFile::parse(text)?;
    let plan = Plan::check(&file, "35")?;
    apply(&api.handler, &operator(), &plan, false).await
}

fn problems(result: Result<noroshi::apply::Report, AdminError>) -> String {
    match result {
        Err(AdminError::Invalid(problems)) => problems.join("\n"),
        other => panic!("expected a refused file, got {other:?}"),
    }
}

#[tokio::test]
async fn changes_become_updates_and_bad_files_change_nothing() {
    let api = TestApi::start().await;
    let report = apply_text(&api, SMALL).await.expect("apply");
    assert_eq!(report.count(Outcome::Registered), 2);
    assert_eq!(api.db.event_count().await, 2);

    // A renamed hospital and a new capability: one FacilityUpdated, nothing else.
    let changed = SMALL.replace("萩テスト病院", "萩テスト総合病院").replace(
        r#"capabilities = ["OXYGEN"]"#,
        r#"capabilities = ["OXYGEN", "DIALYSIS"]"#,
    );
    let report = apply_text(&api, &changed).await.expect("apply changes");
    assert_eq!(report.count(Outcome::Updated), 1);
    assert_eq!(report.count(Outcome::Unchanged), 1);
    assert_eq!(
        api.event_types("facility-hagi-test-hospital").await,
        ["FacilityRegistered", "FacilityUpdated"]
    );
    let (facility, version) = api
        .handler
        .facility(&FacilityId::parse("hagi-test-hospital").expect("valid"))
        .await
        .expect("load");
    let profile = facility.profile.expect("registered");
    assert_eq!(version, 2);
    assert_eq!(profile.name.as_str(), "萩テスト総合病院");
    assert_eq!(profile.capabilities.len(), 2);

    // Each of these files is refused whole: nothing is written.
    let before = api.db.event_count().await;
    let kind = problems(
        apply_text(
            &api,
            &changed.replace(r#"kind = "HOSPITAL""#, r#"kind = "HOTEL""#),
        )
        .await,
    );
    assert!(
        kind.contains("is registered as HOSPITAL; a kind cannot change"),
        "{kind}"
    );

    let fields = problems(
        apply_text(
            &api,
            &changed
                .replace(r#"municipality = "352047""#, r#"municipality = "Hagi""#)
                .replace(r#"kind = "HEALTH_CENTER""#, r#"kind = "HOKENJO""#)
                .replace(r#""DIALYSIS""#, r#""TELEPORTER""#),
        )
        .await,
    );
    for expected in [
        r#"facility[0] "hagi-hc": kind: unknown kind "HOKENJO""#,
        r#"facility[0] "hagi-hc": municipality: must be a 5 or 6 digit municipality code"#,
        r#"facility[1] "hagi-test-hospital": capabilities[1]: unknown capability "TELEPORTER""#,
    ] {
        assert!(
            fields.contains(expected),
            "{expected} missing from:\n{fields}"
        );
    }

    let duplicate = format!(
        "{changed}\n{}",
        &changed[..changed.find("[[token]]").expect("token")]
    );
    let duplicate = problems(apply_text(&api, &duplicate).await);
    assert!(
        duplicate.contains("facility_id is listed twice"),
        "{duplicate}"
    );

    let stranger = problems(
        apply_text(
            &api,
            &changed.replace(
                r#"organisation_id = "hagi-test-hospital""#,
                r#"organisation_id = "nowhere-hospital""#,
            ),
        )
        .await,
    );
    assert!(
        stranger.contains("the organisation is not registered"),
        "{stranger}"
    );

    let misfit = problems(
        apply_text(
            &api,
            &changed.replace(r#"role = "HOSPITAL""#, r#"role = "HEALTH_CENTER""#),
        )
        .await,
    );
    assert!(
        misfit.contains("role HEALTH_CENTER cannot stand for a HOSPITAL organisation"),
        "{misfit}"
    );

    let typo = apply_text(&api, &changed.replace("capabilities =", "capabilites =")).await;
    assert!(
        matches!(&typo, Err(AdminError::Parse(m)) if m.contains("capabilites")),
        "{typo:?}"
    );
    assert_eq!(
        api.db.event_count().await,
        before,
        "refused files wrote nothing"
    );

    // A token for an organisation registered earlier, not in this file, is accepted.
    let later = r#"
[[token]]
token = "small-file-token-hagi-hc"
principal_id = "hagi-hc-duty"
organisation_id = "hagi-hc"
role = "HEALTH_CENTER"
"#;
    let report = apply_text(&api, later).await.expect("apply tokens only");
    assert_eq!(report.tokens, 1);
    assert!(report.facilities.is_empty());
}

#[test]
fn area_borders_must_go_both_ways_between_listed_areas() {
    let file = AdminFile::parse(
        r#"
[[area]]
code = "3501"
name = "岩国"
neighbours = ["3502", "3599"]

[[area]]
code = "3502"
name = "柳井"

[[area]]
code = "35x"
name = "誤り"
"#,
    )
    .unwrap();
    let Err(AdminError::Invalid(problems)) = Plan::check(&file, "35") else {
        panic!("bad areas must be refused");
    };
    assert_eq!(
        problems,
        [
            "area[2] \"35x\": not a 4 digit medical area code",
            "area 3501: borders 3502, but 3502 does not list it",
            "area 3501: neighbour 3599 is not a listed area",
        ]
    );
}

#[test]
fn municipalities_are_checked_and_a_facility_must_lie_in_the_area_of_its_municipality() {
    let long = "あ".repeat(201);
    let file = AdminFile::parse(&format!(
        r#"
[[area]]
code = "3504"
name = "山口・防府"
name_en = ""
municipalities = [
  {{ code = "352063", name = "防府市" }},
  {{ code = "35-20", name = "誤り" }},
]

[[area]]
code = "3505"
name = "宇部・小野田"
municipalities = [
  {{ code = "352063", name = "{long}" }},
  {{ code = "352021", name = "宇部市", name_en = "Ube" }},
]

[[facility]]
facility_id = "hofu-misplaced"
name = "防府まちがい病院"
name_en = "Hofu Misplaced Hospital"
kind = "HOSPITAL"
medical_area = "3505"
municipality = "352063"

[[facility]]
facility_id = "ube-rightly"
name = "宇部ただしい病院"
name_en = "Ube Rightly Hospital"
kind = "HOSPITAL"
medical_area = "3505"
municipality = "352021"
"#
    ))
    .unwrap();
    let Err(AdminError::Invalid(problems)) = Plan::check(&file, "35") else {
        panic!("bad municipalities must be refused");
    };
    assert_eq!(
        problems,
        [
            "area[0] \"3504\": name_en must be 1 to 200 characters",
            "area[0] \"3504\": municipalities[1].code must be a 5 or 6 digit municipality code",
            "area[1] \"3505\": municipality 352063 is listed twice",
            "area[1] \"3505\": municipalities[0].name must be 1 to 200 characters",
            "facility \"hofu-misplaced\": municipality 352063 lies in area 3504, not 3505",
        ]
    );
}

//! CSV exports (DESIGN.md §11): the bed board as the daily report prefectures sent upward,
//! a health center's cases, and the public open data. Each is read through its view's
//! query, so it follows the view's access rules, and a read of patients is audited as the
//! view audits it. UTF-8 with a BOM, or `?encoding=shift_jis`.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use noroshi_domain::authz::Principal;
use noroshi_domain::values::Role;
use noroshi_identity::Scope;
use noroshi_interop::export::{self, Cell, OutEncoding, Table};
use noroshi_projections::bed_board::BedBoard;
use noroshi_projections::case_board::CaseBoard;
use noroshi_projections::public_stats::PublicStats;
use noroshi_projections::views::{MAX_PAGE_SIZE, ViewQuery};
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;
use time::macros::{format_description, offset};

use crate::auth::Authed;
use crate::error::ApiError;
use crate::state::HttpContext;

/// `encoding` of the query, the only parameter.
fn encoding(params: &[(String, String)]) -> Result<OutEncoding, ApiError> {
    let mut chosen = OutEncoding::default();
    for (name, value) in params {
        match name.as_str() {
            "encoding" => {
                chosen = OutEncoding::parse(value)
                    .ok_or_else(|| ApiError::invalid("encoding", "must be utf-8 or shift_jis"))?
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown parameter; encoding is known",
                ));
            }
        }
    }
    Ok(chosen)
}

fn file(name: &str, table: Table, encoding: OutEncoding) -> Response {
    let stamp = jst(OffsetDateTime::now_utc(), STAMP);
    (
        [
            (header::CONTENT_TYPE, encoding.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"noroshi-{name}-{stamp}.csv\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        table.finish(encoding),
    )
        .into_response()
}

type Format = &'static [time::format_description::BorrowedFormatItem<'static>];
const MINUTE: Format = format_description!("[year]/[month]/[day] [hour]:[minute]");
const STAMP: Format = format_description!("[year][month][day]-[hour][minute]");
const DAY: Format = format_description!("[year]-[month]-[day]");

/// A time as Japan reads it (JST), in `format`.
fn jst(at: OffsetDateTime, format: Format) -> String {
    at.to_offset(offset!(+9)).format(format).unwrap_or_default()
}

fn timestamp(at: Option<&prost_types::Timestamp>) -> Cell {
    at.and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .map(|t| Cell::Text(jst(t, MINUTE)))
        .unwrap_or(Cell::Empty)
}

fn category(value: i32) -> &'static str {
    match pb::BedCategory::try_from(value) {
        Ok(pb::BedCategory::Severe) => "重症",
        Ok(pb::BedCategory::Moderate) => "中等症",
        Ok(pb::BedCategory::Mild) => "軽症",
        Ok(pb::BedCategory::HotelRoom) => "宿泊療養",
        _ => "",
    }
}

fn status(value: i32) -> &'static str {
    match pb::CaseStatus::try_from(value) {
        Ok(pb::CaseStatus::Reported) => "報告済み",
        Ok(pb::CaseStatus::HomeCare) => "自宅療養",
        Ok(pb::CaseStatus::AwaitingPlacement) => "入院・療養等調整中",
        Ok(pb::CaseStatus::PlacementInProgress) => "搬送調整中",
        Ok(pb::CaseStatus::Hospitalized) => "入院中",
        Ok(pb::CaseStatus::InHotel) => "宿泊療養中",
        Ok(pb::CaseStatus::Recovered) => "療養解除",
        Ok(pb::CaseStatus::Deceased) => "死亡",
        Ok(pb::CaseStatus::TransferredOut) => "他県へ移管",
        _ => "",
    }
}

fn severity(value: i32) -> &'static str {
    match pb::Severity::try_from(value) {
        Ok(pb::Severity::Asymptomatic) => "無症状",
        Ok(pb::Severity::Mild) => "軽症",
        Ok(pb::Severity::ModerateI) => "中等症I",
        Ok(pb::Severity::ModerateIi) => "中等症II",
        Ok(pb::Severity::Severe) => "重症",
        _ => "",
    }
}

fn sex(value: i32) -> &'static str {
    match pb::Sex::try_from(value) {
        Ok(pb::Sex::Female) => "女",
        Ok(pb::Sex::Male) => "男",
        Ok(pb::Sex::Other) => "その他",
        _ => "",
    }
}

fn acceptance(value: i32) -> &'static str {
    match pb::Acceptance::try_from(value) {
        Ok(pb::Acceptance::Accepting) => "受入可",
        Ok(pb::Acceptance::Limited) => "条件付き",
        Ok(pb::Acceptance::NotAccepting) => "受入停止",
        _ => "",
    }
}

fn percent(part: u64, whole: u64) -> Cell {
    if whole == 0 {
        Cell::Empty
    } else {
        Cell::Number(part as f64 * 100.0 / whole as f64)
    }
}

/// `GET /api/v1/exports/bed_board.csv`: a row per facility and category, as the board
/// shows the caller (HQ and health centers every facility, a facility its own).
pub(super) async fn bed_board(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let encoding = encoding(&params)?;
    let board = BedBoard::get(&context.views, &principal, &Default::default()).await?;
    let reported = jst(OffsetDateTime::now_utc(), MINUTE);
    let mut table = Table::new(&[
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
        "報告が古い",
    ]);
    for row in &board.rows {
        table.row([
            Cell::from(reported.as_str()),
            Cell::from(row.medical_area.clone()),
            Cell::from(row.facility_id.as_str()),
            Cell::from(row.name.as_str()),
            Cell::from(category(row.category)),
            Cell::from(row.secured),
            Cell::from(row.ready),
            Cell::from(row.occupied),
            Cell::from(row.held),
            Cell::from(row.available),
            percent(u64::from(row.occupied), u64::from(row.secured)),
            Cell::from(acceptance(row.acceptance)),
            timestamp(row.declared_at.as_ref()),
            Cell::from(if row.stale { "はい" } else { "" }),
        ]);
    }
    Ok(file("bed-board", table, encoding))
}

/// `GET /api/v1/exports/cases.csv`: a health center's own cases (HQ: every one), every
/// status, with the patients' identities; each case is audited as a read.
pub(super) async fn cases(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal: Principal = caller.scoped(Scope::Views)?.clone();
    if !matches!(principal.role, Role::HealthCenter | Role::Hq) {
        return Err(ApiError::PermissionDenied);
    }
    let encoding = encoding(&params)?;
    let mut table = Table::new(&[
        "保健所",
        "受付番号",
        "氏名",
        "フリガナ",
        "生年月日",
        "年齢",
        "性別",
        "市町村コード",
        "重症度",
        "優先度",
        "状態",
        "入院・入所先",
        "最終SpO2(%)",
        "悪化",
        "報告日時",
        "終了日時",
    ]);
    let mut request = pb::GetCaseBoardRequest {
        page_size: MAX_PAGE_SIZE,
        ..Default::default()
    };
    loop {
        let page = CaseBoard::get(&context.views, &principal, &request).await?;
        for row in &page.rows {
            table.row([
                Cell::from(row.health_center_id.as_str()),
                Cell::from(row.external_ref.clone()),
                Cell::from(row.name.as_str()),
                Cell::from(row.name_kana.clone()),
                Cell::from(row.birth_date.replace('-', "/")),
                Cell::from(row.age),
                Cell::from(sex(row.sex)),
                Cell::from(row.municipality.as_str()),
                Cell::from(severity(row.severity)),
                Cell::from(row.priority),
                Cell::from(status(row.status)),
                Cell::from(row.placement_target.clone()),
                Cell::from(row.last_spo2),
                Cell::from(if row.deteriorated { "あり" } else { "" }),
                timestamp(row.reported_at.as_ref()),
                timestamp(row.closed_at.as_ref()),
            ]);
        }
        match page.next_page_token {
            Some(token) if !token.is_empty() => request.page_token = token,
            _ => break,
        }
    }
    Ok(file("cases", table, encoding))
}

/// `GET /api/v1/exports/open_data.csv`: the public figures, in the manner of the national
/// COVID-19 open-data item definitions (全国地方公共団体コード, 都道府県名, 公表_年月日 first; one
/// row per area and bed category). Anyone who reads views may have it, the public too;
/// counts of people the public view withholds stay empty.
pub(super) async fn open_data(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let encoding = encoding(&params)?;
    let public = Principal {
        role: Role::Public,
        ..principal
    };
    let stats = PublicStats::get(&context.views, &public, &Default::default()).await?;
    let prefecture = context.handler.prefecture().code();
    let code = export::prefecture_local_government_code(&prefecture);
    let name = export::prefecture_name(&prefecture).unwrap_or_default();
    let day = jst(OffsetDateTime::now_utc(), DAY);
    let mut table = Table::new(&[
        "全国地方公共団体コード",
        "都道府県名",
        "二次医療圏",
        "公表_年月日",
        "病床区分",
        "確保病床数",
        "即応病床数",
        "入院・入所者数",
        "空床数",
        "入院中",
        "宿泊療養中",
        "自宅療養中",
        "入院・療養等調整中",
    ]);
    let count = |area: &pb::AreaStats, wanted: pb::CaseStatus| {
        area.cases
            .iter()
            .find(|c| c.status == wanted as i32)
            .and_then(|c| c.count)
            .map_or(Cell::Empty, Cell::Count)
    };
    let areas = stats.areas.iter().chain(stats.prefecture.as_ref());
    for area in areas {
        for beds in &area.beds {
            table.row([
                Cell::from(code.as_str()),
                Cell::from(name),
                Cell::from(area.medical_area.clone().unwrap_or_else(|| "全域".into())),
                Cell::from(day.as_str()),
                Cell::from(category(beds.category)),
                Cell::from(beds.secured),
                Cell::from(beds.ready),
                Cell::from(beds.occupied),
                Cell::from(beds.available),
                count(area, pb::CaseStatus::Hospitalized),
                count(area, pb::CaseStatus::InHotel),
                count(area, pb::CaseStatus::HomeCare),
                count(area, pb::CaseStatus::AwaitingPlacement),
            ]);
        }
    }
    Ok(file("open-data", table, encoding))
}

/// Minutes from `from` to `to`, when both happened.
fn minutes(from: OffsetDateTime, to: Option<OffsetDateTime>) -> Cell {
    to.map_or(Cell::Empty, |to| {
        Cell::Number((to - from).as_seconds_f64() / 60.0)
    })
}

fn at(time: Option<OffsetDateTime>) -> Cell {
    time.map_or(Cell::Empty, |t| Cell::Text(jst(t, MINUTE)))
}

/// `GET /api/v1/exports/placements.csv`: HQ's placement log, every placement ever
/// requested with the time of each step (no patient's identity: the case by its id).
pub(super) async fn placements(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?;
    if principal.role != Role::Hq {
        return Err(ApiError::PermissionDenied);
    }
    let encoding = encoding(&params)?;
    let log = noroshi_app::placement_log::placement_log(&context.handler).await?;
    let mut table = Table::new(&[
        "調整ID",
        "症例ID",
        "依頼元",
        "出発地",
        "病床区分",
        "優先度",
        "依頼日時",
        "最初の打診日時",
        "打診回数",
        "辞退回数",
        "期限切れ回数",
        "辞退理由",
        "受入先",
        "受入日時",
        "搬送手配日時",
        "出発日時",
        "到着日時",
        "取消日時",
        "取消理由",
        "依頼から最初の打診まで(分)",
        "依頼から受入まで(分)",
        "依頼から到着まで(分)",
    ]);
    for steps in &log {
        table.row([
            Cell::from(steps.placement_id.to_string()),
            Cell::from(steps.case_id.to_string()),
            Cell::from(steps.requested_by.as_str()),
            Cell::from(steps.origin.as_str()),
            Cell::from(category(noroshi_codec::WireEnum::to_wire(steps.category))),
            Cell::from(u32::from(steps.priority.get())),
            at(Some(steps.requested_at)),
            at(steps.first_offered_at),
            Cell::from(steps.offers),
            Cell::from(steps.declines),
            Cell::from(steps.expired_offers),
            Cell::from(steps.decline_reasons.join(" / ")),
            Cell::from(steps.accepted_by.as_ref().map(|f| f.to_string())),
            at(steps.accepted_at),
            at(steps.transport_at),
            at(steps.departed_at),
            at(steps.arrived_at),
            at(steps.cancelled_at),
            Cell::from(steps.cancel_reason.clone()),
            minutes(steps.requested_at, steps.first_offered_at),
            minutes(steps.requested_at, steps.accepted_at),
            minutes(steps.requested_at, steps.arrived_at),
        ]);
    }
    Ok(file("placements", table, encoding))
}

/// `GET /api/v1/reports/after_action`: the after-action report of a period as one HTML
/// page (HQ). Computed from the event log, so any period can be written up, also after
/// the fact.
pub(super) async fn after_action(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?;
    if principal.role != Role::Hq {
        return Err(ApiError::PermissionDenied);
    }
    let today = OffsetDateTime::now_utc().to_offset(offset!(+9)).date();
    let (from, to) = crate::reports::period(&params, today)?;
    let figures =
        crate::reports::after_action(&context.handler, context.views.pool(), from, to).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        noroshi_interop::report::html(&figures),
    )
        .into_response())
}

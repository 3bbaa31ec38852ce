//! The after-action report (DESIGN.md §12, 振り返り・検証・文書化): a period's figures,
//! gathered from the event log elsewhere, written as one self-contained HTML page in
//! Japanese with SVG charts drawn by `plotters`, ready to print (to PDF) as a booklet.

use std::fmt::Write as _;

use plotters::prelude::*;
use time::{Date, OffsetDateTime};

/// Everything the report says about one period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AfterAction {
    /// 山口県.
    pub prefecture: String,
    /// The first and last day of the period, in Japan.
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub generated_at: Option<OffsetDateTime>,
    pub days: Vec<DayFigures>,
    pub areas: Vec<AreaFigures>,
    /// Minutes from the request to the acceptance, and to the arrival, of the placements
    /// requested in the period that reached the step.
    pub to_acceptance: Vec<f64>,
    pub to_arrival: Vec<f64>,
    pub totals: Totals,
    /// The most frequent first.
    pub declines_by_reason: Vec<(String, u64)>,
    pub declines_by_facility: Vec<(String, u64)>,
    pub alerts: Vec<AlertFigures>,
    /// The drill's title when the log is a drill's (DESIGN.md §12): the report is then
    /// the drill's report, and says so.
    pub drill: Option<String>,
}

/// One day of the surge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayFigures {
    pub day: Option<Date>,
    pub reported: u64,
    pub requested: u64,
    pub arrived: u64,
    pub discharged: u64,
    /// Placements requested and neither accepted nor cancelled at the end of the day.
    pub waiting: u64,
}

/// Capacity against demand in one secondary medical area.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AreaFigures {
    pub code: String,
    pub name: String,
    /// Beds secured and occupied at the end of the period.
    pub secured: u64,
    pub occupied: u64,
    /// Placements requested from the area in the period, and those that arrived.
    pub requested: u64,
    pub arrived: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub reported: u64,
    pub requested: u64,
    pub accepted: u64,
    pub arrived: u64,
    pub cancelled: u64,
    pub declines: u64,
}

/// The alerts of one kind raised in the period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFigures {
    /// Its label in Japanese.
    pub kind: String,
    pub raised: u64,
    pub acknowledged: u64,
    /// Minutes from raising to the acknowledgement, of those acknowledged.
    pub minutes_to_acknowledge: Vec<f64>,
}

/// `percentile_cont`: linear interpolation between the closest ranks of `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

/// `12.5 分`, or `—`.
fn minutes(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |m| format!("{m:.0} 分"))
}

/// Escapes text for HTML content and attribute values (the report's, and the web pages').
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn day(date: Option<Date>) -> String {
    date.map_or_else(String::new, |d| {
        format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
    })
}

fn short_day(date: Option<Date>) -> String {
    date.map_or_else(String::new, |d| {
        format!("{}/{}", u8::from(d.month()), d.day())
    })
}

/// A chart that could not be drawn says so rather than failing the report.
fn chart(draw: impl FnOnce(&mut String) -> Result<(), Box<dyn std::error::Error>>) -> String {
    let mut svg = String::new();
    match draw(&mut svg) {
        Ok(()) => svg,
        Err(error) => format!(
            "<p class=\"muted\">図を描けませんでした（{}）</p>",
            escape(&error.to_string())
        ),
    }
}

const FONT: &str = "sans-serif";

/// The surge's curve: new cases and requests per day, and those waiting at each day's end.
fn surge_chart(days: &[DayFigures]) -> String {
    chart(|out| {
        let top = days
            .iter()
            .map(|d| d.reported.max(d.requested).max(d.waiting))
            .max()
            .unwrap_or(0)
            .max(1);
        let n = days.len().max(1) as u32;
        {
            let root = SVGBackend::with_string(out, (760, 320)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(34)
                .y_label_area_size(44)
                .build_cartesian_2d(0u32..n, 0u64..top + top / 10 + 1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(days.len().min(15))
                .x_label_formatter(&|i| short_day(days.get(*i as usize).and_then(|d| d.day)))
                .y_desc("人・件")
                .label_style((FONT, 13))
                .draw()?;
            let series = [
                (
                    RGBColor(31, 95, 135),
                    "新規の患者",
                    days.iter().map(|d| d.reported).collect::<Vec<_>>(),
                ),
                (
                    RGBColor(183, 121, 31),
                    "入院調整の依頼",
                    days.iter().map(|d| d.requested).collect(),
                ),
                (
                    RGBColor(197, 48, 48),
                    "日の終わりに調整待ち",
                    days.iter().map(|d| d.waiting).collect(),
                ),
            ];
            for (color, label, values) in series {
                chart
                    .draw_series(LineSeries::new(
                        values.iter().enumerate().map(|(i, v)| (i as u32, *v)),
                        color.stroke_width(3),
                    ))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .label_font((FONT, 13))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
            root.present()?;
        }
        Ok(())
    })
}

/// Capacity against demand by area: beds secured and occupied at the end, requests.
fn area_chart(areas: &[AreaFigures]) -> String {
    chart(|out| {
        let top = areas
            .iter()
            .map(|a| a.secured.max(a.requested))
            .max()
            .unwrap_or(0)
            .max(1);
        let n = areas.len().max(1) as u32;
        {
            let root = SVGBackend::with_string(out, (760, 320)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(44)
                // A segmented range holds its end: n areas are 0..=n-1.
                .build_cartesian_2d((0u32..n - 1).into_segmented(), 0u64..top + top / 10 + 1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(areas.len().max(1))
                .x_label_formatter(&|segment| match segment {
                    SegmentValue::CenterOf(i) => areas
                        .get(*i as usize)
                        .map(|a| a.name.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .y_desc("床・件")
                .label_style((FONT, 12))
                .draw()?;
            // Capacity as bars, the occupied beds inside the secured ones; demand as points.
            let (secured, occupied) = (RGBColor(159, 184, 200), RGBColor(31, 95, 135));
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(secured.filled())
                        .margin(6)
                        .data(areas.iter().enumerate().map(|(i, a)| (i as u32, a.secured))),
                )?
                .label("確保病床（期間末）")
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], secured.filled())
                });
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(occupied.filled())
                        .margin(22)
                        .data(
                            areas
                                .iter()
                                .enumerate()
                                .map(|(i, a)| (i as u32, a.occupied)),
                        ),
                )?
                .label("入院中（期間末）")
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], occupied.filled())
                });
            let demand = RGBColor(183, 121, 31);
            chart
                .draw_series(areas.iter().enumerate().map(|(i, a)| {
                    Circle::new(
                        (SegmentValue::CenterOf(i as u32), a.requested),
                        6,
                        demand.filled(),
                    )
                }))?
                .label("入院調整の依頼")
                .legend(move |(x, y)| Circle::new((x + 7, y), 5, demand.filled()));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .label_font((FONT, 13))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
            root.present()?;
        }
        Ok(())
    })
}

/// The distribution of the minutes to a step, as a histogram in buckets of 30 minutes
/// (the last bucket holds everything longer).
fn histogram(values: &[f64], color: RGBColor) -> String {
    const BUCKET: f64 = 30.0;
    const BUCKETS: u32 = 16;
    chart(|out| {
        let mut counts = vec![0u64; BUCKETS as usize];
        for v in values {
            let i = ((v / BUCKET).floor().max(0.0) as usize).min(BUCKETS as usize - 1);
            counts[i] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0).max(1);
        {
            let root = SVGBackend::with_string(out, (760, 260)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(34)
                .y_label_area_size(44)
                .build_cartesian_2d((0u32..BUCKETS - 1).into_segmented(), 0u64..top + 1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(BUCKETS as usize)
                .x_label_formatter(&|segment| match segment {
                    SegmentValue::CenterOf(i) if *i + 1 == BUCKETS => {
                        format!("{}分〜", f64::from(*i) * BUCKET)
                    }
                    SegmentValue::CenterOf(i) if i % 2 == 0 => {
                        format!("{}", f64::from(*i) * BUCKET)
                    }
                    _ => String::new(),
                })
                .x_desc("依頼からの時間（分）")
                .y_desc("件")
                .label_style((FONT, 12))
                .draw()?;
            chart.draw_series(
                Histogram::vertical(&chart)
                    .style(color.filled())
                    .margin(2)
                    .data(counts.iter().enumerate().map(|(i, c)| (i as u32, *c))),
            )?;
            root.present()?;
        }
        Ok(())
    })
}

const STYLE: &str = "*{box-sizing:border-box}body{font-family:'IPAGothic','Noto Sans CJK JP',sans-serif;color:#1f2a30;margin:2rem auto;max-width:52rem;line-height:1.6}\
h1{font-size:1.6rem;margin-bottom:0}h2{font-size:1.2rem;border-bottom:2px solid #1f5f87;margin-top:2rem;break-after:avoid}\
table{border-collapse:collapse;margin:.5rem 0;width:100%}th,td{border:1px solid #c9d1d6;padding:.25rem .5rem;text-align:left}\
td.num,th.num{text-align:right}.muted{color:#5d6b73}.figure{break-inside:avoid}.lead{font-size:1.05rem}\
dl.totals{display:grid;grid-template-columns:repeat(3,1fr);gap:.5rem}dl.totals div{border:1px solid #c9d1d6;padding:.5rem}\
dl.totals dt{font-size:.85rem;color:#5d6b73}dl.totals dd{margin:0;font-size:1.4rem;font-weight:700}\
@media print{body{margin:0;max-width:none}section{break-inside:avoid-page}}";

/// The report as one HTML page.
pub fn html(report: &AfterAction) -> String {
    let mut page = String::new();
    let period = format!("{}〜{}", day(report.from), day(report.to));
    let (kind, drill) = match &report.drill {
        Some(title) => (
            "訓練報告書",
            format!(
                "<p class=\"lead drill\">訓練「{}」の記録です。実際の患者・病床の記録ではありません。</p>",
                escape(title)
            ),
        ),
        None => ("振り返り報告書", String::new()),
    };
    let _ = write!(
        page,
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{kind} {period}</title><style>{STYLE}</style></head><body>\
         <header><h1>{pref} 入院調整 {kind}</h1>{drill}<p class=\"lead\">期間：{period}（日本時間）</p>\
         <p class=\"muted\">noroshi のイベントログから作成（作成：{generated}）。患者を特定できる情報は含みません。</p></header>",
        pref = escape(&report.prefecture),
        generated = report
            .generated_at
            .map(|t| t
                .to_offset(time::macros::offset!(+9))
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]"
                ))
                .unwrap_or_default())
            .unwrap_or_default(),
    );
    let t = &report.totals;
    let _ = write!(
        page,
        "<section><h2>1. 概要</h2><dl class=\"totals\">\
         <div><dt>新規の患者</dt><dd id=\"total-reported\">{}</dd></div>\
         <div><dt>入院調整の依頼</dt><dd id=\"total-requested\">{}</dd></div>\
         <div><dt>受入決定</dt><dd id=\"total-accepted\">{}</dd></div>\
         <div><dt>入院・入所（到着）</dt><dd id=\"total-arrived\">{}</dd></div>\
         <div><dt>取消</dt><dd id=\"total-cancelled\">{}</dd></div>\
         <div><dt>受入の辞退</dt><dd id=\"total-declines\">{}</dd></div></dl></section>",
        t.reported, t.requested, t.accepted, t.arrived, t.cancelled, t.declines
    );
    let _ = write!(
        page,
        "<section class=\"figure\"><h2>2. 流行の推移</h2>{}<table><thead><tr><th>日</th><th class=\"num\">新規の患者</th>\
         <th class=\"num\">入院調整の依頼</th><th class=\"num\">到着</th><th class=\"num\">退院・退所</th>\
         <th class=\"num\">日の終わりに調整待ち</th></tr></thead><tbody>",
        surge_chart(&report.days)
    );
    for d in &report.days {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            day(d.day),
            d.reported,
            d.requested,
            d.arrived,
            d.discharged,
            d.waiting
        );
    }
    page.push_str("</tbody></table></section>");
    let _ = write!(
        page,
        "<section class=\"figure\"><h2>3. 医療圏ごとの病床と需要</h2>{}<table><thead><tr><th>二次医療圏</th>\
         <th class=\"num\">確保病床（期間末）</th><th class=\"num\">入院中（期間末）</th><th class=\"num\">病床使用率</th>\
         <th class=\"num\">入院調整の依頼</th><th class=\"num\">到着</th></tr></thead><tbody>",
        area_chart(&report.areas)
    );
    for a in &report.areas {
        let rate = if a.secured > 0 {
            format!("{:.0}%", a.occupied as f64 * 100.0 / a.secured as f64)
        } else {
            "—".to_owned()
        };
        let _ = write!(
            page,
            "<tr data-area=\"{code}\"><td>{code} {name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{rate}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            a.secured,
            a.occupied,
            a.requested,
            a.arrived,
            code = escape(&a.code),
            name = escape(&a.name),
        );
    }
    page.push_str("</tbody></table></section>");
    let (acceptance, arrival) = (sorted(&report.to_acceptance), sorted(&report.to_arrival));
    let _ = write!(
        page,
        "<section class=\"figure\"><h2>4. 入院までの時間</h2><table><thead><tr><th></th><th class=\"num\">件数</th>\
         <th class=\"num\">中央値</th><th class=\"num\">90パーセンタイル</th></tr></thead><tbody>\
         <tr id=\"to-acceptance\"><td>依頼から受入決定まで</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\
         <tr id=\"to-arrival\"><td>依頼から到着まで</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\
         </tbody></table><h3>依頼から到着までの分布</h3>{}</section>",
        acceptance.len(),
        minutes(percentile(&acceptance, 0.5)),
        minutes(percentile(&acceptance, 0.9)),
        arrival.len(),
        minutes(percentile(&arrival, 0.5)),
        minutes(percentile(&arrival, 0.9)),
        histogram(&arrival, RGBColor(31, 95, 135)),
    );
    page.push_str("<section><h2>5. 受入の辞退</h2><h3>理由</h3><table><tbody>");
    if report.declines_by_reason.is_empty() {
        page.push_str("<tr><td class=\"muted\">辞退はありませんでした</td></tr>");
    }
    for (reason, count) in &report.declines_by_reason {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\">{count}</td></tr>",
            escape(reason)
        );
    }
    page.push_str("</tbody></table><h3>医療機関</h3><table><tbody>");
    for (facility, count) in &report.declines_by_facility {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\">{count}</td></tr>",
            escape(facility)
        );
    }
    page.push_str(
        "</tbody></table></section><section><h2>6. アラートと確認までの時間</h2><table><thead><tr><th>種類</th>\
         <th class=\"num\">発生</th><th class=\"num\">確認済み</th><th class=\"num\">確認までの中央値</th></tr></thead><tbody>",
    );
    if report.alerts.is_empty() {
        page.push_str("<tr><td class=\"muted\" colspan=\"4\">アラートはありませんでした</td></tr>");
    }
    for alert in &report.alerts {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&alert.kind),
            alert.raised,
            alert.acknowledged,
            minutes(percentile(&sorted(&alert.minutes_to_acknowledge), 0.5)),
        );
    }
    page.push_str(
        "</tbody></table></section><section><h2>7. 次の流行に向けて</h2><p class=\"muted\">\
         この報告書は記録された事実のみを示します。検証の所見と改善策は、関係者の振り返り会議で追記してください。</p></section></body></html>",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_postgresql_does() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[10.0], 0.9), Some(10.0));
        assert_eq!(percentile(&[5.0, 10.0, 12.0, 30.0], 0.5), Some(11.0));
        assert_eq!(percentile(&[50.0, 70.0], 0.9), Some(68.0));
    }

    #[test]
    fn the_report_escapes_what_people_wrote_and_draws_its_charts() {
        let report = AfterAction {
            prefecture: "山口県".into(),
            days: vec![DayFigures {
                reported: 3,
                requested: 2,
                ..DayFigures::default()
            }],
            declines_by_reason: vec![("<script>満床</script>".into(), 2)],
            to_arrival: vec![45.0, 75.0],
            ..AfterAction::default()
        };
        let page = html(&report);
        assert!(page.contains("&lt;script&gt;満床&lt;/script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.matches("<svg").count() >= 3, "three charts");
        assert!(page.contains("<td class=\"num\">2</td><td class=\"num\">60 分</td>"));
    }
}

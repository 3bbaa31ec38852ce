//! Capacity files (docs/import.md): a row per facility and bed category, as a facility's
//! spreadsheet or HQ's daily table keeps them (the bed board export reads back), read into
//! what `DeclareCapacity` takes.

use noroshi_domain::facility::CategoryFigures;
use noroshi_domain::values::{BedCategory, FacilityId};

use crate::table::{self, Cells, RowField, normal};
pub use crate::table::{CellError, HeaderError};

/// A field of a capacity row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    FacilityId,
    Category,
    Secured,
    Ready,
    Occupied,
}

impl RowField for Field {
    const ALL: &'static [Self] = &[
        Self::FacilityId,
        Self::Category,
        Self::Secured,
        Self::Ready,
        Self::Occupied,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::FacilityId => "facility_id",
            Self::Category => "category",
            Self::Secured => "secured",
            Self::Ready => "ready",
            Self::Occupied => "occupied",
        }
    }

    fn required(self) -> bool {
        true
    }

    fn headers(self) -> &'static [&'static str] {
        match self {
            Self::FacilityId => &["医療機関等コード", "医療機関コード", "施設コード"],
            Self::Category => &["病床区分", "区分"],
            Self::Secured => &["確保病床数", "確保病床"],
            Self::Ready => &["即応病床数", "即応病床"],
            Self::Occupied => &["入院・入所者数", "入院患者数", "入所者数", "使用中"],
        }
    }
}

pub type Mapping = table::Mapping<Field>;
pub type Columns = table::Columns<Field>;

/// A capacity row read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityRow {
    pub facility_id: FacilityId,
    pub figures: CategoryFigures,
}

/// Reads a row's cells.
pub fn row(
    columns: &Columns,
    record: &csv::StringRecord,
    line: u64,
) -> Result<CapacityRow, Vec<CellError>> {
    let mut cells = Cells::read(columns, record, line);
    let facility_id = cells.parse(Field::FacilityId, |v| {
        FacilityId::parse(v).map_err(|e| e.0.to_owned())
    });
    let category = cells.parse(Field::Category, category);
    let secured = cells.parse(Field::Secured, beds);
    let ready = cells.parse(Field::Ready, beds);
    let occupied = cells.parse(Field::Occupied, beds);
    cells.finish()?;
    match (facility_id, category, secured, ready, occupied) {
        (Some(facility_id), Some(category), Some(secured), Some(ready), Some(occupied)) => {
            Ok(CapacityRow {
                facility_id,
                figures: CategoryFigures {
                    category,
                    secured,
                    ready,
                    occupied,
                },
            })
        }
        _ => Err(vec![CellError {
            line,
            column: 0,
            header: String::new(),
            field: "row",
            message: "a required cell could not be read".into(),
        }]),
    }
}

fn category(value: &str) -> Result<BedCategory, String> {
    match normal(value).as_str() {
        "重症" | "SEVERE" => Ok(BedCategory::Severe),
        "中等症" | "MODERATE" => Ok(BedCategory::Moderate),
        "軽症" | "MILD" => Ok(BedCategory::Mild),
        "宿泊療養" | "HOTEL_ROOM" => Ok(BedCategory::HotelRoom),
        _ => Err(format!("{value:?} is not 重症, 中等症, 軽症 or 宿泊療養")),
    }
}

/// A count of beds: 0 to 100,000, half- or full-width digits, optionally ending in 床.
fn beds(value: &str) -> Result<u32, String> {
    let digits = normal(value);
    let digits = digits.strip_suffix('床').unwrap_or(&digits);
    match digits.parse::<u32>() {
        Ok(n) if n <= 100_000 && !digits.starts_with('+') => Ok(n),
        _ => Err(format!("{value:?} is not a number of beds (0 to 100000)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    #[test]
    fn the_bed_board_export_reads_back_and_bad_figures_are_named() {
        let header = record(&[
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
        ]);
        let columns = Columns::of(&header, &Mapping::new()).unwrap();
        assert_eq!(columns.ignored.len(), 5);
        let read = row(
            &columns,
            &record(&[
                "",
                "3504",
                "hofu-central",
                "防府中央",
                "中等症",
                "１０床",
                "8",
                "3",
                "0",
                "5",
            ]),
            2,
        )
        .unwrap();
        assert_eq!(read.facility_id.as_str(), "hofu-central");
        assert_eq!(
            read.figures,
            CategoryFigures {
                category: BedCategory::Moderate,
                secured: 10,
                ready: 8,
                occupied: 3,
            }
        );
        let errors = row(
            &columns,
            &record(&["", "", "Hofu Central", "", "ICU", "-1", "x", "", "", ""]),
            3,
        )
        .unwrap_err();
        let named: Vec<(usize, &str)> = errors.iter().map(|e| (e.column, e.field)).collect();
        assert_eq!(
            named,
            vec![
                (3, "facility_id"),
                (5, "category"),
                (6, "secured"),
                (7, "ready"),
                (8, "occupied")
            ]
        );
    }
}

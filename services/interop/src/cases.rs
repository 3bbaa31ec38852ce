//! Case files (docs/import.md): one row per patient, Japanese headers (or a mapping of
//! other headers to fields), read row by row into what `ReportCase` takes.

use std::collections::BTreeSet;

use noroshi_domain::case::{CaseReport, Patient};
use noroshi_domain::values::{
    ExternalRef, FacilityId, MunicipalityCode, Name, Phone, RiskFactor, Severity, Sex, Text,
};

use crate::dates;
use crate::table::{self, Cells, RowField, normal};
pub use crate::table::{CellError, HeaderError};

/// A field of a case row, by the name the API and the mapping files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    ExternalRef,
    Name,
    NameKana,
    BirthDate,
    Sex,
    Phone,
    Address,
    Municipality,
    Severity,
    RiskFactors,
}

impl RowField for Field {
    const ALL: &'static [Self] = &[
        Self::ExternalRef,
        Self::Name,
        Self::NameKana,
        Self::BirthDate,
        Self::Sex,
        Self::Phone,
        Self::Address,
        Self::Municipality,
        Self::Severity,
        Self::RiskFactors,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::ExternalRef => "external_ref",
            Self::Name => "name",
            Self::NameKana => "name_kana",
            Self::BirthDate => "birth_date",
            Self::Sex => "sex",
            Self::Phone => "phone",
            Self::Address => "address",
            Self::Municipality => "municipality",
            Self::Severity => "severity",
            Self::RiskFactors => "risk_factors",
        }
    }

    fn required(self) -> bool {
        !matches!(self, Self::NameKana | Self::Phone | Self::RiskFactors)
    }

    fn headers(self) -> &'static [&'static str] {
        match self {
            Self::ExternalRef => &["HER-SYSID", "HER-SYS", "受付番号", "管理番号", "患者番号"],
            Self::Name => &["氏名", "患者氏名", "名前"],
            Self::NameKana => &["フリガナ", "ふりがな", "氏名(カナ)", "氏名カナ", "カナ氏名"],
            Self::BirthDate => &["生年月日"],
            Self::Sex => &["性別"],
            Self::Phone => &["電話番号", "連絡先電話番号", "連絡先", "電話"],
            Self::Address => &["住所", "居住地住所", "現住所"],
            Self::Municipality => &["市町村", "市区町村", "居住市町村", "市町村コード"],
            Self::Severity => &["重症度", "重症度分類", "症状の程度"],
            Self::RiskFactors => &["リスク因子", "重症化リスク因子", "基礎疾患"],
        }
    }
}

/// Headers of another layout, each the case field it holds.
pub type Mapping = table::Mapping<Field>;
/// Which column holds which case field.
pub type Columns = table::Columns<Field>;

/// A case row read: what `ReportCase` takes, but the health center, which is the
/// importer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    pub external_ref: ExternalRef,
    pub patient: Patient,
    pub municipality: MunicipalityCode,
    pub risk_factors: BTreeSet<RiskFactor>,
    pub severity: Severity,
}

impl CaseRow {
    pub fn report(self, health_center_id: FacilityId) -> CaseReport {
        CaseReport {
            health_center_id,
            external_ref: Some(self.external_ref),
            patient: self.patient,
            municipality: self.municipality,
            risk_factors: self.risk_factors,
            severity: self.severity,
            needs: BTreeSet::new(),
        }
    }
}

fn invalid(error: noroshi_domain::values::InvalidValue) -> String {
    error.0.to_owned()
}

/// Reads a row's cells; `municipality` finds a municipality's code by its name.
pub fn row(
    columns: &Columns,
    record: &csv::StringRecord,
    line: u64,
    municipality: &dyn Fn(&str) -> Option<MunicipalityCode>,
) -> Result<CaseRow, Vec<CellError>> {
    let mut cells = Cells::read(columns, record, line);
    let optional =
        |v: &str, parse: fn(&str) -> Result<Name, noroshi_domain::values::InvalidValue>| {
            if v.is_empty() {
                Ok(None)
            } else {
                parse(v).map(Some).map_err(invalid)
            }
        };
    let external_ref = cells.parse(Field::ExternalRef, |v| {
        ExternalRef::parse(v).map_err(invalid)
    });
    let name = cells.parse(Field::Name, |v| Name::parse(v).map_err(invalid));
    let name_kana = cells.parse(Field::NameKana, |v| optional(v, Name::parse));
    let birth_date = cells.parse(Field::BirthDate, dates::parse);
    let sex = cells.parse(Field::Sex, sex);
    let phone = cells.parse(Field::Phone, |v| {
        if v.is_empty() {
            Ok(None)
        } else {
            Phone::parse(v).map(Some).map_err(invalid)
        }
    });
    let address = cells.parse(Field::Address, |v| Text::parse(v).map_err(invalid));
    let place = cells.parse(Field::Municipality, |v| place(v, municipality));
    let severity = cells.parse(Field::Severity, severity);
    let risk_factors = cells.parse(Field::RiskFactors, risk_factors);
    cells.finish()?;
    let read = || {
        Some(CaseRow {
            external_ref: external_ref?,
            patient: Patient {
                name: name?,
                name_kana: name_kana.flatten(),
                birth_date: birth_date?,
                sex: sex?,
                phone: phone.flatten(),
                address: address?,
            },
            municipality: place?,
            risk_factors: risk_factors.unwrap_or_default(),
            severity: severity?,
        })
    };
    // Every required cell was present and parsed, or `finish` said which was not.
    read().ok_or_else(|| {
        vec![CellError {
            line,
            column: 0,
            header: String::new(),
            field: "row",
            message: "a required cell could not be read".into(),
        }]
    })
}

fn sex(value: &str) -> Result<Sex, String> {
    match normal(value).as_str() {
        "男" | "男性" | "M" | "MALE" => Ok(Sex::Male),
        "女" | "女性" | "F" | "FEMALE" => Ok(Sex::Female),
        "その他" | "OTHER" => Ok(Sex::Other),
        _ => Err(format!("{value:?} is not 男, 女 or その他")),
    }
}

fn severity(value: &str) -> Result<Severity, String> {
    // 中等症Ⅰ/Ⅱ are written with Roman numerals, Latin letters or digits.
    let key = normal(value)
        .replace(['Ⅰ', '1'], "I")
        .replace(['Ⅱ', '2'], "II");
    match key.as_str() {
        "無症状" | "無症候" | "ASYMPTOMATIC" => Ok(Severity::Asymptomatic),
        "軽症" | "MILD" => Ok(Severity::Mild),
        "中等症I" | "MODERATE_I" => Ok(Severity::ModerateI),
        "中等症II" | "MODERATE_II" => Ok(Severity::ModerateII),
        "重症" | "SEVERE" => Ok(Severity::Severe),
        _ => Err(format!(
            "{value:?} is not 無症状, 軽症, 中等症I, 中等症II or 重症"
        )),
    }
}

fn risk_factors(value: &str) -> Result<BTreeSet<RiskFactor>, String> {
    value
        .split(['・', '、', ',', ';', '；', '／', '/', ' ', '　'])
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "なし")
        .map(|v| {
            let factor = match normal(v).as_str() {
                "65歳以上" | "高齢" | "高齢者" => Some(RiskFactor::Age65Plus),
                "糖尿病" => Some(RiskFactor::Diabetes),
                "慢性肺疾患" | "COPD" => Some(RiskFactor::ChronicLung),
                "慢性腎臓病" | "CKD" => Some(RiskFactor::ChronicKidney),
                "透析" | "人工透析" => Some(RiskFactor::Dialysis),
                "妊娠" | "妊婦" => Some(RiskFactor::Pregnancy),
                "免疫抑制" | "免疫不全" => Some(RiskFactor::Immunosuppressed),
                "肥満" => Some(RiskFactor::Obesity),
                "心血管疾患" | "心疾患" => Some(RiskFactor::Cardiovascular),
                other => RiskFactor::parse(other),
            };
            factor.ok_or_else(|| format!("{v:?} is not a risk factor (see docs/import.md)"))
        })
        .collect()
}

/// A municipality by its JIS X 0402 code (5 digits, or 6 with the check digit) or name.
fn place(
    value: &str,
    by_name: &dyn Fn(&str) -> Option<MunicipalityCode>,
) -> Result<MunicipalityCode, String> {
    let digits = normal(value);
    if digits.bytes().all(|b| b.is_ascii_digit()) && (5..=6).contains(&digits.len()) {
        let full = match digits.len() {
            5 => format!("{digits}{}", check_digit(&digits)),
            _ if check_digit(&digits[..5]) == digits[5..] => digits,
            _ => return Err(format!("{value:?}: its check digit is wrong")),
        };
        return MunicipalityCode::parse(&full).map_err(|e| e.0.to_owned());
    }
    by_name(value.trim())
        .ok_or_else(|| format!("{value:?} is not a municipality of the prefecture"))
}

/// The check digit of a 5-digit JIS X 0402 code (the 6-digit codes noroshi keeps).
pub(crate) fn check_digit(code: &str) -> String {
    let sum: u32 = code
        .bytes()
        .zip([6, 5, 4, 3, 2])
        .map(|(b, weight)| u32::from(b - b'0') * weight)
        .sum();
    // 11 minus the remainder, its last digit (a remainder of 0 gives 1, of 1 gives 0).
    ((11 - sum % 11) % 10).to_string()
}

/// A case file's rows, read in constant memory from decoded text.
pub fn reader<R: std::io::Read>(text: R) -> csv::Reader<R> {
    table::reader(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    fn hofu(name: &str) -> Option<MunicipalityCode> {
        (name == "防府市").then(|| MunicipalityCode::parse("352063").unwrap())
    }

    const HEADER: &[&str] = &[
        "HER-SYS ID",
        "氏名",
        "フリガナ",
        "生年月日",
        "性別",
        "電話番号",
        "住所",
        "市町村",
        "重症度",
        "基礎疾患",
        "備考",
    ];

    #[test]
    fn a_row_under_japanese_headers_reads_as_a_report() {
        let columns = Columns::of(&record(HEADER), &Mapping::new()).unwrap();
        assert_eq!(columns.ignored, vec!["備考".to_owned()]);
        let row = row(
            &columns,
            &record(&[
                "HS-0001",
                "防府 花子",
                "ホウフ ハナコ",
                "昭和33年4月1日",
                "女",
                "0835-00-0000",
                "防府市寿町1-1",
                "防府市",
                "中等症Ⅱ",
                "糖尿病・65歳以上",
                "",
            ]),
            2,
            &hofu,
        )
        .unwrap();
        assert_eq!(row.external_ref.as_str(), "HS-0001");
        assert_eq!(row.patient.sex, Sex::Female);
        assert_eq!(row.severity, Severity::ModerateII);
        assert_eq!(row.municipality.as_str(), "352063");
        for (code, full) in [
            ("35208", "352080"),
            ("35321", "353213"),
            ("352063", "352063"),
        ] {
            assert_eq!(place(code, &hofu).unwrap().as_str(), full);
        }
        assert!(place("352064", &hofu).unwrap_err().contains("check digit"));
        assert_eq!(
            row.risk_factors,
            BTreeSet::from([RiskFactor::Diabetes, RiskFactor::Age65Plus])
        );
    }

    #[test]
    fn severities_in_every_usual_spelling() {
        for (cell, expected) in [
            ("中等症Ⅰ", Severity::ModerateI),
            ("中等症1", Severity::ModerateI),
            ("中等症Ｉ", Severity::ModerateI),
            ("中等症Ⅱ", Severity::ModerateII),
            ("中等症２", Severity::ModerateII),
            ("中等症 II", Severity::ModerateII),
            ("moderate_ii", Severity::ModerateII),
            ("無症状", Severity::Asymptomatic),
        ] {
            assert_eq!(severity(cell), Ok(expected), "{cell}");
        }
        assert!(severity("中等症3").is_err());
    }

    #[test]
    fn every_bad_cell_is_named_by_line_and_column() {
        let columns = Columns::of(&record(HEADER), &Mapping::new()).unwrap();
        let errors = row(
            &columns,
            &record(&[
                "HS-0002",
                "",
                "",
                "昭和64年2月1日",
                "?",
                "",
                "防府市",
                "どこか",
                "軽症",
                "花粉症",
            ]),
            7,
            &hofu,
        )
        .unwrap_err();
        let named: Vec<(u64, usize, &str)> =
            errors.iter().map(|e| (e.line, e.column, e.field)).collect();
        assert_eq!(
            named,
            vec![
                (7, 2, "name"),
                (7, 4, "birth_date"),
                (7, 5, "sex"),
                (7, 8, "municipality"),
                (7, 10, "risk_factors"),
            ]
        );
    }

    #[test]
    fn a_short_row_names_its_missing_cells_and_a_mapping_reads_other_layouts() {
        let header = record(&[
            "患者ID",
            "name",
            "birth_date",
            "sex",
            "address",
            "municipality",
            "severity",
        ]);
        assert!(matches!(
            Columns::of(&header, &Mapping::new()),
            Err(HeaderError::Missing { ref missing, .. }) if missing == "external_ref"
        ));
        let mapping = Mapping::from([("患者ID".to_owned(), Field::ExternalRef)]);
        let columns = Columns::of(&header, &mapping).unwrap();
        let errors = row(
            &columns,
            &record(&["P-1", "宇部 太郎", "1950-01-02"]),
            3,
            &hofu,
        )
        .unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.column).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        assert!(errors[0].message.contains("3 of 7"), "{errors:?}");
        assert!(matches!(
            Columns::of(&record(&["氏名", "患者氏名"]), &Mapping::new()),
            Err(HeaderError::Twice {
                field: "name",
                first: 1,
                second: 2
            })
        ));
    }
}

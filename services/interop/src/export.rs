//! CSV for people who open it in Excel: UTF-8 with a BOM (so that Japanese shows as
//! Japanese), or Shift_JIS on request; a cell that a spreadsheet would run as a formula
//! is written as text.

use encoding_rs::SHIFT_JIS;

use crate::text::Encoding;

/// The encoding of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutEncoding {
    #[default]
    Utf8Bom,
    ShiftJis,
}

impl OutEncoding {
    /// `utf-8` (the default) or `shift_jis`, by the names imports take
    /// ([`Encoding::parse`]); `auto` names no encoding to write in.
    pub fn parse(name: &str) -> Option<Self> {
        match Encoding::parse(name)? {
            Encoding::Utf8 => Some(Self::Utf8Bom),
            Encoding::ShiftJis => Some(Self::ShiftJis),
            Encoding::Auto if name.is_empty() => Some(Self::Utf8Bom),
            Encoding::Auto => None,
        }
    }

    /// The `Content-Type` of a file in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Utf8Bom => "text/csv; charset=utf-8",
            Self::ShiftJis => "text/csv; charset=shift_jis",
        }
    }
}

/// A CSV table, built in memory (exports are views' sizes, not logs').
#[derive(Debug)]
pub struct Table {
    writer: csv::Writer<Vec<u8>>,
}

/// One cell: text is neutralised, numbers are written as they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Count(u64),
    Empty,
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<u64> for Cell {
    fn from(count: u64) -> Self {
        Self::Count(count)
    }
}

impl From<u32> for Cell {
    fn from(count: u32) -> Self {
        Self::Count(u64::from(count))
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Empty, Into::into)
    }
}

/// Text a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, a tab or a carriage
/// return first) gets a leading apostrophe, as OWASP advises against CSV injection.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '＝' | '＋' | '－' | '＠') => {
            format!("'{text}").into()
        }
        _ => text.into(),
    }
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        // Writing to memory does not fail.
        let _ = writer.write_record(headers);
        Self { writer }
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = Cell>) {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|cell| match cell {
                Cell::Text(text) => neutralise(&text).into_owned(),
                Cell::Number(n) => format!("{n:.1}"),
                Cell::Count(n) => n.to_string(),
                Cell::Empty => String::new(),
            })
            .collect();
        let _ = self.writer.write_record(&cells);
    }

    /// The file's bytes. Shift_JIS cannot write every character: one it cannot is
    /// written as `&#NNNN;` (as browsers do), never dropped.
    pub fn finish(self, encoding: OutEncoding) -> Vec<u8> {
        let text = self.writer.into_inner().unwrap_or_default();
        match encoding {
            OutEncoding::Utf8Bom => {
                let mut bytes = vec![0xEF, 0xBB, 0xBF];
                bytes.extend_from_slice(&text);
                bytes
            }
            OutEncoding::ShiftJis => {
                let text = String::from_utf8_lossy(&text);
                let (bytes, _, _) = SHIFT_JIS.encode(&text);
                bytes.into_owned()
            }
        }
    }
}

/// The JIS X 0401 prefecture name of `code` (`35` → 山口県).
pub fn prefecture_name(code: &str) -> Option<&'static str> {
    const NAMES: [&str; 47] = [
        "北海道",
        "青森県",
        "岩手県",
        "宮城県",
        "秋田県",
        "山形県",
        "福島県",
        "茨城県",
        "栃木県",
        "群馬県",
        "埼玉県",
        "千葉県",
        "東京都",
        "神奈川県",
        "新潟県",
        "富山県",
        "石川県",
        "福井県",
        "山梨県",
        "長野県",
        "岐阜県",
        "静岡県",
        "愛知県",
        "三重県",
        "滋賀県",
        "京都府",
        "大阪府",
        "兵庫県",
        "奈良県",
        "和歌山県",
        "鳥取県",
        "島根県",
        "岡山県",
        "広島県",
        "山口県",
        "徳島県",
        "香川県",
        "愛媛県",
        "高知県",
        "福岡県",
        "佐賀県",
        "長崎県",
        "熊本県",
        "大分県",
        "宮崎県",
        "鹿児島県",
        "沖縄県",
    ];
    let index: usize = code.parse().ok()?;
    NAMES.get(index.checked_sub(1)?).copied()
}

/// The 全国地方公共団体コード of a prefecture (`35` → `350001`).
pub fn prefecture_local_government_code(code: &str) -> String {
    let five = format!("{code}000");
    format!("{five}{}", crate::cases::check_digit(&five))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text_and_japanese_survives_both_encodings() {
        let mut table = Table::new(&["氏名", "数"]);
        table.row([Cell::from("=HYPERLINK(\"http://x\",\"y\")"), Cell::Count(3)]);
        table.row([Cell::from("防府 花子"), Cell::Empty]);
        table.row([Cell::from("-1+2"), Cell::from("@SUM(A1)")]);
        let utf8 = table.finish(OutEncoding::Utf8Bom);
        assert!(utf8.starts_with(&[0xEF, 0xBB, 0xBF]));
        let text = String::from_utf8(utf8[3..].to_vec()).unwrap();
        assert_eq!(
            text,
            "氏名,数\r\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",3\r\n防府 花子,\r\n'-1+2,'@SUM(A1)\r\n"
        );
        let mut table = Table::new(&["氏名"]);
        table.row([Cell::from("防府 花子")]);
        let sjis = table.finish(OutEncoding::ShiftJis);
        let (decoded, _, bad) = SHIFT_JIS.decode(&sjis);
        assert!(!bad);
        assert_eq!(decoded, "氏名\r\n防府 花子\r\n");
    }

    #[test]
    fn exports_are_written_in_utf8_unless_shift_jis_is_asked_for() {
        for (name, expected) in [
            ("", Some(OutEncoding::Utf8Bom)),
            ("utf-8", Some(OutEncoding::Utf8Bom)),
            ("Shift_JIS", Some(OutEncoding::ShiftJis)),
            ("cp932", Some(OutEncoding::ShiftJis)),
            ("auto", None),
            ("latin1", None),
        ] {
            assert_eq!(OutEncoding::parse(name), expected, "{name:?}");
        }
    }

    #[test]
    fn prefectures_by_code() {
        assert_eq!(prefecture_name("35"), Some("山口県"));
        assert_eq!(prefecture_name("13"), Some("東京都"));
        assert_eq!(prefecture_name("48"), None);
        assert_eq!(prefecture_local_government_code("35"), "350001");
        assert_eq!(prefecture_local_government_code("13"), "130001");
    }
}

//! What every imported file shares: a header row naming its columns (documented headers,
//! or a mapping for other layouts), and rows whose cells are checked one by one, each
//! error named by line and column.

use std::collections::BTreeMap;
use std::io::Read;

/// The fields of one kind of row (a case, a capacity declaration).
pub trait RowField: Copy + Ord + 'static {
    const ALL: &'static [Self];
    /// Its name in the API and in mapping files.
    fn as_str(self) -> &'static str;
    fn required(self) -> bool;
    /// The headers read as this field without a mapping.
    fn headers(self) -> &'static [&'static str];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.as_str() == name)
    }
}

/// Headers of another layout, each the field it holds (a mapping file's `[columns]`).
pub type Mapping<F> = BTreeMap<String, F>;

/// A header (or a short value) compared as people type it: no spaces, half-width
/// brackets, letters and digits, upper case.
pub(crate) fn normal(header: &str) -> String {
    header
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '０'..='９' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Why the header row cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the header has no column for {missing} (found: {found})")]
    Missing { missing: String, found: String },
    #[error("columns {first} and {second} both hold {field}")]
    Twice {
        field: &'static str,
        first: usize,
        second: usize,
    },
}

/// Which column holds which field.
#[derive(Debug, Clone)]
pub struct Columns<F> {
    by_field: BTreeMap<F, usize>,
    headers: Vec<String>,
    /// Columns that hold no field, by header: reported, not read.
    pub ignored: Vec<String>,
}

impl<F: RowField> Columns<F> {
    /// The columns of `header`, by `mapping` first, then by the documented headers (and the
    /// field names themselves).
    pub fn of(header: &csv::StringRecord, mapping: &Mapping<F>) -> Result<Self, HeaderError> {
        let mapping: BTreeMap<String, F> = mapping.iter().map(|(h, f)| (normal(h), *f)).collect();
        let mut by_field = BTreeMap::new();
        let mut ignored = Vec::new();
        for (index, cell) in header.iter().enumerate() {
            let key = normal(cell);
            let field = mapping.get(&key).copied().or_else(|| {
                F::ALL.iter().copied().find(|f| {
                    key == f.as_str().to_ascii_uppercase()
                        || f.headers().iter().any(|h| normal(h) == key)
                })
            });
            match field {
                Some(field) => {
                    if let Some(&first) = by_field.get(&field) {
                        return Err(HeaderError::Twice {
                            field: field.as_str(),
                            first: first + 1,
                            second: index + 1,
                        });
                    }
                    by_field.insert(field, index);
                }
                None if !cell.trim().is_empty() => ignored.push(cell.trim().to_owned()),
                None => {}
            }
        }
        let missing: Vec<&str> = F::ALL
            .iter()
            .filter(|f| f.required() && !by_field.contains_key(f))
            .map(|f| f.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(HeaderError::Missing {
                missing: missing.join(", "),
                found: header.iter().map(str::trim).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(Self {
            by_field,
            headers: header.iter().map(|h| h.trim().to_owned()).collect(),
            ignored,
        })
    }
}

/// An error in one cell: its line (1 = the header), column (1 = the first) and field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CellError {
    pub line: u64,
    pub column: usize,
    pub header: String,
    pub field: &'static str,
    pub message: String,
}

/// A row's cells by field, and the errors found in them so far.
#[derive(Debug)]
pub struct Cells<'a, F> {
    columns: &'a Columns<F>,
    line: u64,
    values: BTreeMap<F, (usize, &'a str)>,
    pub errors: Vec<CellError>,
}

impl<'a, F: RowField> Cells<'a, F> {
    /// The cells of `record` at `line`: a missing cell, one with bytes that were not text,
    /// and an empty required one are errors.
    pub fn read(columns: &'a Columns<F>, record: &'a csv::StringRecord, line: u64) -> Self {
        let mut cells = Self {
            columns,
            line,
            values: BTreeMap::new(),
            errors: Vec::new(),
        };
        for &field in F::ALL {
            let Some(&index) = columns.by_field.get(&field) else {
                continue;
            };
            match record.get(index).map(str::trim) {
                None => cells.fail(
                    field,
                    index,
                    format!(
                        "missing: the row has {} of {} columns",
                        record.len(),
                        columns.headers.len()
                    ),
                ),
                Some(value) if value.contains('\u{FFFD}') => cells.fail(
                    field,
                    index,
                    "holds bytes that are not text in the file's encoding".into(),
                ),
                Some("") if field.required() => cells.fail(field, index, "is required".into()),
                Some(value) => {
                    cells.values.insert(field, (index, value));
                }
            }
        }
        cells
    }

    fn fail(&mut self, field: F, index: usize, message: String) {
        self.errors.push(CellError {
            line: self.line,
            column: index + 1,
            header: self.columns.headers[index].clone(),
            field: field.as_str(),
            message,
        });
    }

    /// The cell of `field`, if the row has it (empty for an empty optional one).
    pub fn text(&self, field: F) -> Option<&'a str> {
        self.values.get(&field).map(|&(_, v)| v)
    }

    /// Parses the cell of `field` (if any) with `parse`, recording its error.
    pub fn parse<T>(
        &mut self,
        field: F,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let &(index, value) = self.values.get(&field)?;
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.fail(field, index, message);
                None
            }
        }
    }

    /// The errors, by column, when there are any.
    pub fn finish(mut self) -> Result<(), Vec<CellError>> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|e| e.column);
        Err(self.errors)
    }
}

/// A file's rows, read in constant memory from decoded text.
pub fn reader<R: Read>(text: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(text)
}

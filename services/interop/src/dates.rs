//! Dates as Japanese files write them: 西暦 (`1958/04/01`, `1958-4-1`, `1958年4月1日`,
//! `19580401`) and 和暦 (`昭和33年4月1日`, `S33.4.1`, `平成元年1月8日`, `R5/6/7`), in
//! half- or full-width digits.

use time::{Date, Month};

/// An era: its names and the first day of its first year.
struct Era {
    names: &'static [&'static str],
    first_day: (i32, u8, u8),
}

/// The modern eras, oldest first; each ends the day before the next begins.
const ERAS: &[Era] = &[
    Era {
        names: &["明治", "明", "M"],
        first_day: (1868, 1, 25),
    },
    Era {
        names: &["大正", "大", "T"],
        first_day: (1912, 7, 30),
    },
    Era {
        names: &["昭和", "昭", "S"],
        first_day: (1926, 12, 25),
    },
    Era {
        names: &["平成", "平", "H"],
        first_day: (1989, 1, 8),
    },
    Era {
        names: &["令和", "令", "R"],
        first_day: (2019, 5, 1),
    },
];

/// Why a cell is not a date, in the words a row report shows.
pub type DateError = String;

/// Parses a date in 西暦 or 和暦.
pub fn parse(cell: &str) -> Result<Date, DateError> {
    let text = half_width(cell.trim());
    if text.is_empty() {
        return Err("is empty".into());
    }
    let upper = text.to_uppercase();
    for (index, era) in ERAS.iter().enumerate() {
        if let Some(rest) = era.names.iter().find_map(|name| upper.strip_prefix(name)) {
            return in_era(index, era, rest.trim_start_matches(['.', ' ']), cell);
        }
    }
    if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
        let (y, md) = text.split_at(4);
        let (m, d) = md.split_at(2);
        return ymd(number(y)?, number(m)?, number(d)?, cell);
    }
    let [y, m, d] = parts(&text).ok_or_else(|| format!("{cell:?} is not a date"))?;
    ymd(number(y)?, number(m)?, number(d)?, cell)
}

/// `rest` is `33年4月1日`, `33.4.1`, `元年1月8日`, …, in the era `index`.
fn in_era(index: usize, era: &Era, rest: &str, cell: &str) -> Result<Date, DateError> {
    let rest = rest.replacen("元", "1", 1);
    let [y, m, d] = parts(&rest).ok_or_else(|| format!("{cell:?} is not a date"))?;
    let year_of_era = number(y)?;
    if year_of_era < 1 {
        return Err(format!("{cell:?}: an era's years start at 1 (元年)"));
    }
    let date = ymd(
        era.first_day.0 + year_of_era - 1,
        number(m)?,
        number(d)?,
        cell,
    )?;
    let start = first_day(era);
    let end = ERAS.get(index + 1).map(first_day);
    if date < start || end.is_some_and(|end| date >= end) {
        return Err(format!(
            "{cell:?} is outside the era {} ({start}{})",
            era.names[0],
            end.map(|e| format!(" to {}", e.previous_day().unwrap_or(e)))
                .unwrap_or_else(|| " onwards".into())
        ));
    }
    Ok(date)
}

fn first_day(era: &Era) -> Date {
    let (y, m, d) = era.first_day;
    Date::from_calendar_date(y, Month::try_from(m).unwrap_or(Month::January), d)
        .unwrap_or(Date::MIN)
}

/// Year, month and day split at `/`, `-`, `.`, `年`, `月` (and a closing `日`).
fn parts(text: &str) -> Option<[&str; 3]> {
    let text = text.strip_suffix('日').unwrap_or(text);
    let mut split = text.split(['/', '-', '.', '年', '月']).map(str::trim);
    let parts = [split.next()?, split.next()?, split.next()?];
    (split.next().is_none() && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

fn number(text: &str) -> Result<i32, DateError> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a number"));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

fn ymd(year: i32, month: i32, day: i32, cell: &str) -> Result<Date, DateError> {
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| format!("{cell:?}: no month {month}"))?;
    let day = u8::try_from(day).map_err(|_| format!("{cell:?}: no day {day}"))?;
    Date::from_calendar_date(year, month, day)
        .map_err(|_| format!("{cell:?} is not a day of the calendar"))
}

/// Full-width digits, letters and separators as their ASCII forms.
fn half_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '／' | '－' | '．' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            '　' => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn western_dates_in_every_shape_read_the_same() {
        for cell in [
            "1958/04/01",
            "1958-4-1",
            "1958年4月1日",
            "19580401",
            "１９５８／０４／０１",
            " 1958.4.1 ",
        ] {
            assert_eq!(parse(cell), Ok(date!(1958 - 04 - 01)), "{cell}");
        }
    }

    #[test]
    fn japanese_era_dates_follow_their_era() {
        for (cell, expected) in [
            ("昭和33年4月1日", date!(1958 - 04 - 01)),
            ("S33.4.1", date!(1958 - 04 - 01)),
            ("s33/4/1", date!(1958 - 04 - 01)),
            ("Ｓ３３．４．１", date!(1958 - 04 - 01)),
            ("平成元年1月8日", date!(1989 - 01 - 08)),
            ("H31.4.30", date!(2019 - 04 - 30)),
            ("令和元年5月1日", date!(2019 - 05 - 01)),
            ("R5/6/7", date!(2023 - 06 - 07)),
            ("大正15年12月24日", date!(1926 - 12 - 24)),
            ("明治45年7月29日", date!(1912 - 07 - 29)),
            ("昭和64年1月7日", date!(1989 - 01 - 07)),
        ] {
            assert_eq!(parse(cell), Ok(expected), "{cell}");
        }
    }

    #[test]
    fn dates_that_do_not_exist_are_refused_with_their_reason() {
        for (cell, reason) in [
            ("昭和64年1月8日", "outside the era 昭和"),
            ("平成31年5月1日", "outside the era 平成"),
            ("令和0年1月1日", "start at 1"),
            ("2023/2/29", "not a day"),
            ("2023/13/1", "no month 13"),
            ("yesterday", "not a date"),
            ("", "empty"),
            ("1958/4", "not a date"),
            ("=HYPERLINK(\"x\")", "not a date"),
        ] {
            let error = parse(cell).unwrap_err();
            assert!(error.contains(reason), "{cell}: {error}");
        }
    }
}

//! Paging, and the dates of patients as views show them.

use noroshi_domain::Violations;
use time::{Date, OffsetDateTime, UtcOffset};

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most rows one page may hold.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Japan Standard Time, in which ages and dates are reckoned.
const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// A page: how many rows, and where to start (an opaque token from the previous page).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub size: u32,
    pub token: Option<String>,
}

impl Page {
    /// Checks the size against [`MAX_PAGE_SIZE`]; 0 means the default.
    pub fn parse(size: u32, token: &str, violations: &mut Violations) -> Self {
        if size > MAX_PAGE_SIZE {
            violations.add(
                "page_size",
                format!("must be at most {MAX_PAGE_SIZE}, was {size}"),
            );
        }
        let token = (!token.is_empty()).then(|| token.to_owned());
        if token.as_deref().is_some_and(|t| decode_token(t).is_none()) {
            violations.add("page_token", "is not a token this API returned");
        }
        Self { size, token }
    }

    pub(crate) fn limit(&self) -> i64 {
        i64::from(if self.size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.size.min(MAX_PAGE_SIZE)
        })
    }

    pub(crate) fn start(&self) -> i64 {
        self.token.as_deref().and_then(decode_token).unwrap_or(0)
    }
}

/// Page tokens carry a number (an offset or a position), marked so that a mistyped token
/// is refused rather than read as a different page.
pub(crate) fn encode_token(value: i64) -> String {
    format!("p{value}")
}

fn decode_token(token: &str) -> Option<i64> {
    token
        .strip_prefix('p')?
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
}

/// Whole years from `birth` to `today`.
pub fn age_on(birth: Date, today: Date) -> u32 {
    let years = today.year() - birth.year();
    let before_birthday = (today.month() as u8, today.day()) < (birth.month() as u8, birth.day());
    u32::try_from(years - i32::from(before_birthday)).unwrap_or(0)
}

/// The ten-year band an offer shows instead of a birth date: `"40-49"`, or `"90+"`.
pub fn age_band(age: u32) -> String {
    if age >= 90 {
        "90+".to_owned()
    } else {
        let low = age / 10 * 10;
        format!("{low}-{}", low + 9)
    }
}

/// The date in Japan, where ages and dates are reckoned, at `now`.
pub(crate) fn today_at(now: OffsetDateTime) -> Date {
    now.to_offset(JST).date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn ages_count_whole_years_and_bands_hide_the_birth_date() {
        assert_eq!(age_on(date!(1950 - 03 - 15), date!(2026 - 03 - 14)), 75);
        assert_eq!(age_on(date!(1950 - 03 - 15), date!(2026 - 03 - 15)), 76);
        assert_eq!(age_band(0), "0-9");
        assert_eq!(age_band(47), "40-49");
        assert_eq!(age_band(89), "80-89");
        assert_eq!(age_band(90), "90+");
        assert_eq!(age_band(104), "90+");
    }

    #[test]
    fn page_sizes_are_bounded_and_tokens_checked() {
        let mut v = Violations::new();
        let page = Page::parse(0, "", &mut v);
        assert!(v.is_empty());
        assert_eq!(
            (page.limit(), page.start()),
            (i64::from(DEFAULT_PAGE_SIZE), 0)
        );
        let page = Page::parse(MAX_PAGE_SIZE, "p200", &mut v);
        assert!(v.is_empty());
        assert_eq!(page.start(), 200);
        Page::parse(MAX_PAGE_SIZE + 1, "200", &mut v);
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }
}

//! Query-string filters shared by the list pages, exports and the API: parsed strictly, 400 when wrong.
use std::collections::BTreeMap;

use crate::error::AppError;

/// The query string as name → value (the last of repeated names wins).
pub fn params(raw: Option<&str>) -> Result<BTreeMap<String, String>, AppError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| {
            AppError::BadRequest("The address has a query string that cannot be read.".into())
        })?;
    Ok(pairs.into_iter().collect())
}

fn bad(message: String) -> AppError {
    AppError::BadRequest(message)
}

/// A page number: 1 when absent.
pub fn page(params: &BTreeMap<String, String>) -> Result<u64, AppError> {
    match params
        .get("page")
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        None => Ok(1),
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| bad(format!("page must be a whole number from 1, not `{p}`."))),
    }
}

pub const DEFAULT_PER_PAGE: u64 = 50;
pub const MAX_PER_PAGE: u64 = 200;

/// Rows per page: 1 to 200, 50 when absent.
pub fn per_page(value: Option<&str>) -> Result<u64, AppError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_PER_PAGE),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_PER_PAGE).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "per_page must be a whole number from 1 to {MAX_PER_PAGE}, not `{v}`."
                ))
            }),
    }
}

/// Free text: trimmed, at most `max` characters.
pub fn text(params: &BTreeMap<String, String>, name: &str, max: usize) -> Result<String, AppError> {
    let value = params
        .get(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    if value.chars().count() > max {
        return Err(bad(format!("{name} has at most {max} characters.")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(format!("{name} cannot contain control characters.")));
    }
    Ok(value)
}

/// One of `allowed` (or empty).
pub fn choice(
    params: &BTreeMap<String, String>,
    name: &str,
    allowed: &[&str],
) -> Result<String, AppError> {
    let value = params
        .get(name)
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if value.is_empty() || allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(bad(format!(
            "{name} must be one of {}, not `{value}`.",
            allowed.join(", ")
        )))
    }
}

/// `name=value&…` for links, leaving out empty values.
pub fn encode(pairs: &[(&str, String)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// Page links for a list: numbers around the current page.
#[derive(serde::Serialize)]
pub struct Pager {
    pub page: u64,
    pub pages: u64,
    pub total: u64,
    pub first_row: u64,
    pub last_row: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `link(page)` builds the address of a page.
    pub fn new(page: u64, per_page: u64, total: u64, link: impl Fn(u64) -> String) -> Self {
        let pages = total.div_ceil(per_page).max(1);
        let first_row = if total == 0 {
            0
        } else {
            (page - 1) * per_page + 1
        };
        Pager {
            page,
            pages,
            total,
            first_row,
            last_row: (page * per_page).min(total),
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_numbers() {
        let p = |s: &str| params(Some(s)).unwrap();
        assert_eq!(page(&p("")).unwrap(), 1);
        assert_eq!(page(&p("page=3")).unwrap(), 3);
        assert!(page(&p("page=0")).is_err());
        assert!(page(&p("page=abc")).is_err());
        assert_eq!(per_page(None).unwrap(), 50);
        assert!(per_page(Some("201")).is_err());
        assert!(per_page(Some("-1")).is_err());
    }

    #[test]
    fn choices_and_links() {
        let p = params(Some("sort=Balance&dir=up")).unwrap();
        assert_eq!(choice(&p, "sort", &["name", "balance"]).unwrap(), "balance");
        assert!(choice(&p, "dir", &["asc", "desc"]).is_err());
        assert_eq!(
            encode(&[("q", "a b&c".into()), ("x", String::new())]),
            "q=a+b%26c"
        );
    }
}

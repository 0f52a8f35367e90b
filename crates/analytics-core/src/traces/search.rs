//! The argument rules of the search functions (`analytics.search_spans`, written in Rust, and
//! `analytics.search_traces`, written in PL/pgSQL): one owner for each rule, so both functions accept and refuse
//! exactly the same filters, pages and cursors with the same messages.

use super::ingest::{OPERATION_TYPES, STATUSES};
use crate::errors::AnalyticsError;

/// The largest page a search returns.
pub const MAX_PAGE_SIZE: i32 = 1000;

fn shown(v: Option<i32>) -> String {
    v.map_or_else(|| "NULL".to_string(), |v| v.to_string())
}

/// `limit` (1..=1000) and `offset` (0 or more), both required; returns them when valid.
pub fn check_page(limit: Option<i32>, offset: Option<i32>) -> Result<(i32, i32), AnalyticsError> {
    let limit = limit
        .filter(|l| (1..=MAX_PAGE_SIZE).contains(l))
        .ok_or_else(|| AnalyticsError::invalid(format!("limit: must be between 1 and {MAX_PAGE_SIZE}, got {}", shown(limit))))?;
    let offset = offset
        .filter(|o| *o >= 0)
        .ok_or_else(|| AnalyticsError::invalid(format!("offset: must be 0 or more, got {}", shown(offset))))?;
    Ok((limit, offset))
}

/// The enumerated filters: an `operation_type` and a `status` must be stored values (canonical names, no aliases:
/// a filter compares with what is stored).
pub fn check_filters(operation_type: Option<&str>, status: Option<&str>) -> Result<(), AnalyticsError> {
    if let Some(op) = operation_type {
        if !OPERATION_TYPES.contains(&op) {
            return Err(AnalyticsError::invalid(format!("operation_type: unknown value \"{op}\"")));
        }
    }
    if let Some(st) = status {
        if !STATUSES.contains(&st) {
            return Err(AnalyticsError::invalid(format!("status: unknown value \"{st}\"; allowed: {}", STATUSES.join(", "))));
        }
    }
    Ok(())
}

/// A keyset cursor `"<start_time>,<key>"` (the last row of the previous page) split into its timestamp text and
/// its key (everything after the first comma, trimmed). The timestamp text is parsed by Postgres, which reports
/// [`cursor_time_error`] when it does not parse.
pub fn split_cursor(after: &str) -> Result<(&str, &str), AnalyticsError> {
    match after.split_once(',') {
        Some((time, key)) if !key.trim().is_empty() => Ok((time.trim(), key.trim())),
        _ => Err(AnalyticsError::invalid(format!(
            "after: must be \"<start_time>,<id>\" of the last row of the previous page, got \"{after}\""
        ))),
    }
}

/// The error for a cursor whose first part is not a timestamp.
pub fn cursor_time_error(after: &str) -> AnalyticsError {
    AnalyticsError::invalid(format!("after: \"{after}\" does not start with a timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorKind;

    #[test]
    fn pages_inside_the_bounds_pass() {
        assert_eq!(check_page(Some(1), Some(0)), Ok((1, 0)));
        assert_eq!(check_page(Some(1000), Some(5)), Ok((1000, 5)));
    }

    #[test]
    fn pages_outside_the_bounds_name_the_argument() {
        for (limit, offset, msg) in [
            (Some(0), Some(0), "limit: must be between 1 and 1000, got 0"),
            (Some(1001), Some(0), "limit: must be between 1 and 1000, got 1001"),
            (None, Some(0), "limit: must be between 1 and 1000, got NULL"),
            (Some(10), Some(-1), "offset: must be 0 or more, got -1"),
            (Some(10), None, "offset: must be 0 or more, got NULL"),
        ] {
            let e = check_page(limit, offset).unwrap_err();
            assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidParameter, msg));
        }
    }

    #[test]
    fn filters_take_stored_values_only() {
        assert!(check_filters(Some("chat"), Some("error")).is_ok());
        assert!(check_filters(None, None).is_ok());
        let e = check_filters(Some("llm"), None).unwrap_err();
        assert_eq!(e.message, "operation_type: unknown value \"llm\"");
        let e = check_filters(None, Some("failed")).unwrap_err();
        assert_eq!(e.message, "status: unknown value \"failed\"; allowed: ok, error, unset");
    }

    #[test]
    fn cursors_split_at_the_first_comma() {
        assert_eq!(split_cursor("2026-11-20T09:00:00Z,abc"), Ok(("2026-11-20T09:00:00Z", "abc")));
        assert_eq!(split_cursor("2026-11-20 09:00:00+00, a,b "), Ok(("2026-11-20 09:00:00+00", "a,b")));
        for bad in ["no-comma", "2026-11-20T09:00:00Z,", "2026-11-20T09:00:00Z, "] {
            let e = split_cursor(bad).unwrap_err();
            assert!(e.message.starts_with("after: must be \"<start_time>,<id>\""), "{bad}: {}", e.message);
        }
        assert_eq!(cursor_time_error("x,1").message, "after: \"x,1\" does not start with a timestamp");
    }
}

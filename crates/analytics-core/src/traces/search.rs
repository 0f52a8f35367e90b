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

/// How many partitions of a time-partitioned span table a newest-first page reads in its first query. A query over
/// a partitioned table locks, on every call, the table, each partition in its plan and the index it scans in each;
/// PostgreSQL 15 takes the first 16 of a transaction's relation locks in its fast path and the rest through the shared
/// lock table, which made an unbounded page over 16 monthly partitions ~20% slower than over one table (34 locks).
/// Six partitions: 13 locks.
pub const WINDOW_PARTITIONS: usize = 6;

/// The partition-aligned time bounds a search of spans adds to its query (as literals, so the planner keeps only
/// those partitions in the plan, which is kept and reused), given the finite bounds of the table's range partitions
/// (ascending, microseconds) and the search's own limits on start_time: `from` (>=), `to` (<) and a keyset cursor's
/// time (<=). Each bound added is implied by the search's limits, so no span the search selects is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionWindow {
    /// start_time >= lower: the partition bound at or below `from`
    pub lower: Option<i64>,
    /// start_time < upper: the first partition bound above the page's newest possible span
    pub upper: Option<i64>,
    /// when the range spans more than WINDOW_PARTITIONS partitions (and the page has no offset): the page is read
    /// from [split, upper) first and, only when that does not fill it, from [lower, split)
    pub split: Option<i64>,
}

/// The window of a newest-first search (see PartitionWindow); `bounds` empty (an unpartitioned table) gives none.
pub fn partition_window(bounds: &[i64], from: Option<i64>, to: Option<i64>, cursor: Option<i64>, offset: i32) -> PartitionWindow {
    let lower = from.and_then(|f| bounds.iter().rev().find(|&&b| b <= f).copied());
    let above_to = to.and_then(|t| bounds.iter().find(|&&b| b >= t).copied());
    let above_cursor = cursor.and_then(|c| bounds.iter().find(|&&b| b > c).copied());
    let upper = match (above_to, above_cursor) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // the bounds inside the searched range: each starts one more partition the page may have to read
    let inside: Vec<i64> = bounds
        .iter()
        .copied()
        .filter(|&b| from.is_none_or(|f| b > f) && to.is_none_or(|t| b < t) && cursor.is_none_or(|c| b <= c))
        .collect();
    let split = (offset == 0 && inside.len() + 1 > WINDOW_PARTITIONS).then(|| inside[inside.len() - WINDOW_PARTITIONS]);
    PartitionWindow { lower, upper, split }
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

    #[test]
    fn windows_add_only_bounds_the_search_implies() {
        // monthly-like bounds 10, 20, ..., 160 (16 partitions between them, plus the ends)
        let bounds: Vec<i64> = (1..=16).map(|k| k * 10).collect();
        // unpartitioned: nothing added
        assert_eq!(partition_window(&[], Some(5), Some(50), Some(40), 0), PartitionWindow::default());
        // a month: the bounds around it, no split
        assert_eq!(
            partition_window(&bounds, Some(60), Some(70), None, 0),
            PartitionWindow { lower: Some(60), upper: Some(70), split: None }
        );
        // inside a partition: the partition's own bounds
        assert_eq!(
            partition_window(&bounds, Some(63), Some(67), None, 0),
            PartitionWindow { lower: Some(60), upper: Some(70), split: None }
        );
        // before the first bound and after the last: nothing below / above to add
        assert_eq!(partition_window(&bounds, Some(3), Some(7), None, 0), PartitionWindow { lower: None, upper: Some(10), split: None });
        assert_eq!(partition_window(&bounds, Some(163), Some(170), None, 0), PartitionWindow { lower: Some(160), upper: None, split: None });
        // a cursor on a bound: its partition holds it (start_time <= cursor), so the upper bound is the next one
        assert_eq!(partition_window(&bounds, None, None, Some(60), 0).upper, Some(70));
        assert_eq!(partition_window(&bounds, None, None, Some(65), 0).upper, Some(70));
        // to_time on a bound: start_time < 60 stays below it
        assert_eq!(partition_window(&bounds, None, Some(60), None, 0).upper, Some(60));
        // both: the tighter
        assert_eq!(partition_window(&bounds, None, Some(100), Some(65), 0).upper, Some(70));
        assert_eq!(partition_window(&bounds, None, Some(62), Some(95), 0).upper, Some(70));
    }

    #[test]
    fn long_ranges_are_read_newest_window_first() {
        let bounds: Vec<i64> = (1..=16).map(|k| k * 10).collect();
        // unbounded: the newest six partitions are [110, 120) .. [160, inf): split at 110
        assert_eq!(partition_window(&bounds, None, None, None, 0), PartitionWindow { lower: None, upper: None, split: Some(110) });
        // a keyset page at 65: [60, 70) and the five before it: split at 10
        assert_eq!(partition_window(&bounds, None, None, Some(65), 0), PartitionWindow { lower: None, upper: Some(70), split: Some(10) });
        // six partitions exactly: one query
        assert_eq!(partition_window(&bounds, Some(10), Some(70), None, 0).split, None);
        assert_eq!(partition_window(&bounds, Some(10), Some(71), None, 0).split, Some(20));
        // an offset page is read in one query (the rows skipped would have to be counted across the split)
        assert_eq!(partition_window(&bounds, None, None, None, 50).split, None);
        // the split is always strictly inside the searched range
        for from in [None, Some(5), Some(40)] {
            for cursor in [None, Some(95), Some(160), Some(200)] {
                if let Some(s) = partition_window(&bounds, from, None, cursor, 0).split {
                    assert!(from.is_none_or(|f| s > f) && cursor.is_none_or(|c| s <= c), "{from:?} {cursor:?} {s}");
                }
            }
        }
    }
}

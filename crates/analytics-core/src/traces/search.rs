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

/// How many partitions of a time-partitioned span table a newest-first page reads in its first query, and in its
/// second when the first did not fill it; a third reads the rest of the range. Each partition in a query's plan costs
/// every call its initialisation and locks (PostgreSQL 15 keeps a plan's partitions and initialises each, ~1.7 µs,
/// and takes a transaction's first 16 relation locks in its fast path, the rest through the shared lock table):
/// a page of an owner with rows in every month is full from the month it starts in, and reads two (a page may
/// straddle a partition bound); an owner with few spans reads 8 partitions in two queries before the rest. Up to
/// [`AHEAD_IN_FIRST_WINDOW`] partitions that start after the moment of the search come with the first window besides.
pub const WINDOW_PARTITIONS: [usize; 2] = [2, 6];

/// How many partitions that start after the moment of the search a first window reads besides its own: the periods
/// `maintain_span_partitions` makes ahead (3 by default) and the after partition, empty unless spans are dated ahead.
pub const AHEAD_IN_FIRST_WINDOW: usize = 4;

/// The partition-aligned time bounds a search of spans adds to its query (as literals, so the planner keeps only
/// those partitions in the plan, which is kept and reused), given the finite bounds of the table's range partitions
/// (ascending, microseconds) and the search's own limits on start_time: `from` (>=), `to` (<) and a keyset cursor's
/// time (<=). Each bound added is implied by the search's limits, so no span the search selects is left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionWindow {
    /// start_time >= lower: the partition bound at or below `from`
    pub lower: Option<i64>,
    /// start_time < upper: the first partition bound above the page's newest possible span
    pub upper: Option<i64>,
    /// when the range spans more partitions than the first window (and the page has no offset), descending: the page
    /// is read from [splits[0], upper) first, then [splits[1], splits[0]), ..., and [lower, last split), each only
    /// while the page is not full
    pub splits: Vec<i64>,
}

/// The window of a newest-first search at time `now` (see PartitionWindow); `bounds` empty (an unpartitioned table)
/// gives none.
pub fn partition_window(bounds: &[i64], from: Option<i64>, to: Option<i64>, cursor: Option<i64>, offset: i32, now: i64) -> PartitionWindow {
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
    // each bound inside the range starts a partition; those after `now` (up to AHEAD_IN_FIRST_WINDOW) come free
    let ahead = inside.iter().filter(|&&b| b > now).count().min(AHEAD_IN_FIRST_WINDOW);
    let mut splits = Vec::new();
    if offset == 0 {
        let mut newest = ahead;
        for w in WINDOW_PARTITIONS {
            newest += w;
            if inside.len() + 1 > newest {
                splits.push(inside[inside.len() - newest]);
            }
        }
    }
    PartitionWindow { lower, upper, splits }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a moment after every bound of the tests: every partition has started
    const NOW: i64 = 1_000;
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
        assert_eq!(partition_window(&[], Some(5), Some(50), Some(40), 0, NOW), PartitionWindow::default());
        // a month: the bounds around it, no split
        assert_eq!(
            partition_window(&bounds, Some(60), Some(70), None, 0, NOW),
            PartitionWindow { lower: Some(60), upper: Some(70), splits: vec![] }
        );
        // inside a partition: the partition's own bounds
        assert_eq!(
            partition_window(&bounds, Some(63), Some(67), None, 0, NOW),
            PartitionWindow { lower: Some(60), upper: Some(70), splits: vec![] }
        );
        // before the first bound and after the last: nothing below / above to add
        assert_eq!(partition_window(&bounds, Some(3), Some(7), None, 0, NOW), PartitionWindow { lower: None, upper: Some(10), splits: vec![] });
        assert_eq!(partition_window(&bounds, Some(163), Some(170), None, 0, NOW), PartitionWindow { lower: Some(160), upper: None, splits: vec![] });
        // a cursor on a bound: its partition holds it (start_time <= cursor), so the upper bound is the next one
        assert_eq!(partition_window(&bounds, None, None, Some(60), 0, NOW).upper, Some(70));
        assert_eq!(partition_window(&bounds, None, None, Some(65), 0, NOW).upper, Some(70));
        // to_time on a bound: start_time < 60 stays below it
        assert_eq!(partition_window(&bounds, None, Some(60), None, 0, NOW).upper, Some(60));
        // both: the tighter
        assert_eq!(partition_window(&bounds, None, Some(100), Some(65), 0, NOW).upper, Some(70));
        assert_eq!(partition_window(&bounds, None, Some(62), Some(95), 0, NOW).upper, Some(70));
    }

    #[test]
    fn long_ranges_are_read_newest_window_first() {
        let bounds: Vec<i64> = (1..=16).map(|k| k * 10).collect();
        // unbounded: the newest two partitions are [150, 160) and [160, inf), the next six [90, 100) .. [140, 150)
        assert_eq!(
            partition_window(&bounds, None, None, None, 0, NOW),
            PartitionWindow { lower: None, upper: None, splits: vec![150, 90] }
        );
        // a keyset page at 65: [60, 70) and [50, 60) first, then the five below (seven partitions in all: two queries)
        assert_eq!(
            partition_window(&bounds, None, None, Some(65), 0, NOW),
            PartitionWindow { lower: None, upper: Some(70), splits: vec![50] }
        );
        // at 95: ten partitions, three queries
        assert_eq!(partition_window(&bounds, None, None, Some(95), 0, NOW).splits, vec![80, 20]);
        // two partitions exactly: one query; three: two; eight: two; nine: three
        assert_eq!(partition_window(&bounds, Some(10), Some(30), None, 0, NOW).splits, Vec::<i64>::new());
        assert_eq!(partition_window(&bounds, Some(10), Some(31), None, 0, NOW).splits, vec![20]);
        assert_eq!(partition_window(&bounds, Some(10), Some(90), None, 0, NOW).splits, vec![70]);
        assert_eq!(partition_window(&bounds, Some(10), Some(91), None, 0, NOW).splits, vec![80, 20]);
        // an offset page is read in one query (the rows skipped would have to be counted across the splits)
        assert!(partition_window(&bounds, None, None, None, 50, NOW).splits.is_empty());
        // the splits are strictly inside the searched range, descending
        for from in [None, Some(5), Some(40)] {
            for cursor in [None, Some(95), Some(160), Some(200)] {
                let w = partition_window(&bounds, from, None, cursor, 0, NOW);
                assert!(w.splits.windows(2).all(|p| p[0] > p[1]), "{from:?} {cursor:?} {w:?}");
                for s in w.splits {
                    assert!(from.is_none_or(|f| s > f) && cursor.is_none_or(|c| s <= c), "{from:?} {cursor:?} {s}");
                }
            }
        }
    }

    #[test]
    fn partitions_that_start_after_now_come_with_the_first_window() {
        let bounds: Vec<i64> = (1..=16).map(|k| k * 10).collect();
        // at 135: [140, 150), [150, 160) and [160, inf) are ahead; the first window is [120, 130), [130, 140) and them
        assert_eq!(partition_window(&bounds, None, None, None, 0, 135).splits, vec![120, 60]);
        // on a bound: the partition that starts then has started
        assert_eq!(partition_window(&bounds, None, None, None, 0, 140).splits, vec![130, 70]);
        // at most four ahead come free: at 95 (seven ahead), the first window is the newest six, all ahead
        assert_eq!(partition_window(&bounds, None, None, None, 0, 95).splits, vec![110, 50]);
        // a keyset page below now: as without
        assert_eq!(partition_window(&bounds, None, None, Some(65), 0, 135).splits, vec![50]);
        assert_eq!(partition_window(&bounds, None, None, Some(65), 0, 135), partition_window(&bounds, None, None, Some(65), 0, NOW));
    }
}

//! The rate limiter's window arithmetic (`analytics_core::rate_window`) for SQL. Declared in
//! sql/040_rate_limits.sql (`sql = false` here), where `analytics.check_rate_limit` uses them: the admission check
//! and the new window are one comparison and one copy of the sorted times, inside the single UPDATE that records an
//! admission, instead of a PL/pgSQL loop over the window.

use pgrx::prelude::*;

use analytics_core::rate_window;

use crate::bind::{AnalyticsError, Raise};

/// The admission times as microseconds (an `admitted` window has no NULL element; one is refused, not skipped).
fn times(admitted: &Array<'_, TimestampWithTimeZone>) -> Vec<i64> {
    admitted
        .iter()
        .map(|t| {
            t.map(TimestampWithTimeZone::into_inner).unwrap_or_else(|| {
                AnalyticsError::invalid("admitted: a rate-limit window has no NULL times").raise()
            })
        })
        .collect()
}

fn window_us(per: &Interval) -> i64 {
    rate_window::window_us(per.months(), per.days(), per.micros())
}

fn timestamp(us: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(us)
        .unwrap_or_else(|_| AnalyticsError::invalid("admitted: a time is out of range").raise())
}

/// `analytics._rate_window_room(admitted timestamptz[], t timestamptz, per interval, max_calls integer) boolean`:
/// whether a call at `t` fits under `max_calls` per `per`.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
pub fn rate_window_room(
    admitted: Array<'_, TimestampWithTimeZone>,
    t: TimestampWithTimeZone,
    per: Interval,
    max_calls: i32,
) -> bool {
    rate_window::has_room(&times(&admitted), t.into_inner(), window_us(&per), i64::from(max_calls))
}

/// `analytics._rate_window_admit(admitted timestamptz[], t timestamptz, per interval) timestamptz[]`: the window
/// after admitting a call at `t` (the admissions still in it, then the call's time).
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
pub fn rate_window_admit(
    admitted: Array<'_, TimestampWithTimeZone>,
    t: TimestampWithTimeZone,
    per: Interval,
) -> Vec<TimestampWithTimeZone> {
    rate_window::admit(&times(&admitted), t.into_inner(), window_us(&per)).into_iter().map(timestamp).collect()
}

/// `analytics._rate_window_used(admitted timestamptz[], t timestamptz, per interval) integer`: the admissions in
/// the window at `t`.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
pub fn rate_window_used(admitted: Array<'_, TimestampWithTimeZone>, t: TimestampWithTimeZone, per: Interval) -> i32 {
    rate_window::used(&times(&admitted), t.into_inner(), window_us(&per)) as i32
}

/// `analytics._rate_window_retry(admitted timestamptz[], t timestamptz, per interval, max_calls integer) integer`:
/// whole seconds until a call refused at `t` would be admitted (0 when it would be now).
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
pub fn rate_window_retry(
    admitted: Array<'_, TimestampWithTimeZone>,
    t: TimestampWithTimeZone,
    per: Interval,
    max_calls: i32,
) -> i32 {
    let secs =
        rate_window::retry_after_seconds(&times(&admitted), t.into_inner(), window_us(&per), i64::from(max_calls));
    secs.min(i64::from(i32::MAX)) as i32
}

/// `analytics._rate_window_reset(admitted timestamptz[], t timestamptz, per interval) timestamptz`: when the oldest
/// admission in the window at `t` leaves it (a call's worth of quota comes back); NULL when the window is empty.
#[pg_extern(immutable, strict, parallel_safe, sql = false)]
pub fn rate_window_reset(
    admitted: Array<'_, TimestampWithTimeZone>,
    t: TimestampWithTimeZone,
    per: Interval,
) -> Option<TimestampWithTimeZone> {
    let times = times(&admitted);
    let per = window_us(&per);
    let used = rate_window::used(&times, t.into_inner(), per);
    (used > 0).then(|| timestamp(times[times.len() - used].saturating_add(per)))
}

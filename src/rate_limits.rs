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
    if max_calls < 1 {
        AnalyticsError::invalid(format!("max_calls: must be at least 1, got {max_calls}")).raise();
    }
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

unsafe extern "C-unwind" {
    /// Postgres's `hashtext(text)` as a `PGFunction` (pgrx binds it as a Rust function, which
    /// `DirectFunctionCall1Coll` does not take); called with a collation, which hashing text needs.
    fn hashtext(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// `analytics._rate_limit_lock(owner uuid, action text, always boolean) timestamptz`: the start of an admission.
/// Takes the transaction-level advisory lock of the owner's window for the action — every writer of that window
/// takes it first, so one admission at a time per owner and action, and a concurrent call counts this one once it
/// commits (or not at all if it rolls back) — and then reads the clock (`analytics._clock('analytics.rate_limit_clock')`),
/// so the time of the call is never earlier than the admission it waited for. With `always` false it does neither
/// and answers NULL unless the caller is an API caller whose call can be recorded: a READ ONLY transaction only
/// checks, and a superuser or BYPASSRLS role takes the lookup of its limit (it may be exempt). One call from
/// `analytics.check_rate_limit` instead of three expressions (the role check, the lock, the clock): each PL/pgSQL
/// expression is set up again in every transaction. The lock key is `(1634628204, hashtext(owner::text || action))`,
/// what `pg_advisory_xact_lock(1634628204, pg_catalog.hashtext(owner::text || action))` takes.
#[pg_extern(volatile, strict, sql = false)]
pub fn rate_limit_lock(owner: pgrx::Uuid, action: &str, always: bool) -> Option<TimestampWithTimeZone> {
    if !always && (unsafe { pg_sys::XactReadOnly } || crate::identity::caller_is_privileged()) {
        return None;
    }
    // owner::text || action (the uuid's canonical text written by the core: format! of a uuid was a tenth of the
    // lock's cost)
    let mut key = analytics_core::textfmt::uuid_text(owner.as_bytes());
    key.push_str(action);
    let key = key.into_datum().expect("text is never NULL");
    unsafe {
        // (hashes the bytes under any deterministic collation: "C" is one)
        let hash = pg_sys::DirectFunctionCall1Coll(Some(hashtext), pg_sys::C_COLLATION_OID, key);
        pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::pg_advisory_xact_lock_int4,
            &[Some(pg_sys::Datum::from(1634628204i32)), Some(hash)],
        );
    }
    Some(crate::identity::clock("analytics.rate_limit_clock"))
}


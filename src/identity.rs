//! `analytics.current_user_id()` and `analytics.current_role_claim()`: the calling user's JWT claims, with exactly
//! the semantics of Supabase's `auth.uid()` / `auth.role()`:
//!
//! ```sql
//! coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
//!          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
//! ```
//!
//! Written in Rust rather than SQL because every row-level-security policy calls it: a SQL function with a
//! `SET search_path` clause cannot be inlined, so Postgres parsed and planned its body again in every query
//! (about 40 us, measured), which on small API queries was most of the cost of RLS. This version calls the same
//! Postgres functions the SQL does (`jsonb_in`, `->>`, `uuid_in`), so results and errors (22P02) are identical;
//! the regression test `identity` pins them. The claims JSON is parsed once per distinct claims text (a request
//! keeps one for its whole transaction). The SQL declarations are in `sql/001_identity.sql`.

use std::ffi::{CStr, CString};

use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::bind::{AnalyticsError, ErrorKind, Raise};

/// A setting's value; None when it is unset or empty (`nullif(current_setting(name, true), '')`).
fn setting(name: &CStr) -> Option<CString> {
    unsafe {
        let value = pg_sys::GetConfigOptionByName(name.as_ptr(), std::ptr::null_mut(), true);
        if value.is_null() {
            return None;
        }
        let v = CStr::from_ptr(value);
        (!v.is_empty()).then(|| v.to_owned())
    }
}

/// `(claims::jsonb ->> claim)` of a non-empty claims text (jsonb_in raises 22P02 on malformed JSON, as the cast does)
fn claim_from_claims_json(claims: &CStr, claim: &str) -> Option<CString> {
    unsafe {
        let jsonb = direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(claims.as_ptr()))])?;
        let key = claim.into_datum();
        let text = direct_function_call_as_datum(pg_sys::jsonb_object_field_text, &[Some(jsonb), key])?;
        let cstr = direct_function_call_as_datum(pg_sys::textout, &[Some(text)])?;
        Some(CStr::from_ptr(cstr.cast_mut_ptr::<std::ffi::c_char>()).to_owned())
    }
}

/// The text of a claim in the claims JSON, parsed once per distinct claims text: every policy of every query asks
/// for the `sub`, and a PostgREST request keeps one claims text for its whole transaction (jsonb_in was most of the
/// function's cost). Keyed by the claim and the exact claims text, so a changed setting is parsed again; a claims
/// text that does not parse raises every time, as the SQL does (nothing is remembered for it).
fn claim_from_claims_json_cached(claim: &'static str) -> Option<CString> {
    let claims = setting(c"request.jwt.claims")?;
    CLAIMS_CACHE.with(|cache| {
        if let Some((_, _, value)) = cache.borrow().iter().find(|(c, text, _)| *c == claim && *text == claims) {
            return value.clone();
        }
        let value = claim_from_claims_json(&claims, claim);
        let mut cache = cache.borrow_mut();
        if cache.len() >= 4 {
            cache.remove(0);
        }
        cache.push((claim, claims, value.clone()));
        value
    })
}

/// (claim, claims text, the claim's text in it)
type ClaimsCacheEntry = (&'static str, CString, Option<CString>);

thread_local! {
    /// The last claims texts seen and the claims read from them (a backend runs one thread).
    static CLAIMS_CACHE: std::cell::RefCell<Vec<ClaimsCacheEntry>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The text of a claim: the legacy per-claim setting `request.jwt.claim.<name>` first, then the claims JSON.
fn claim_text(legacy: &CStr, claim: &'static str) -> Option<CString> {
    if let Some(v) = setting(legacy) {
        return Some(v);
    }
    claim_from_claims_json_cached(claim)
}

/// Declared in sql/001_identity.sql as `analytics.current_user_id() RETURNS uuid`.
#[pg_extern(stable, parallel_safe, sql = false)]
pub fn current_user_id() -> Option<pgrx::Uuid> {
    let sub = claim_text(c"request.jwt.claim.sub", "sub")?;
    unsafe {
        // uuid_in raises 22P02 "invalid input syntax for type uuid" exactly like the ::uuid cast
        let d = direct_function_call_as_datum(pg_sys::uuid_in, &[Some(pg_sys::Datum::from(sub.as_ptr()))])?;
        let bytes = std::slice::from_raw_parts(d.cast_mut_ptr::<u8>() as *const u8, 16);
        pgrx::Uuid::from_slice(bytes).ok()
    }
}

/// Declared in sql/001_identity.sql as `analytics.current_role_claim() RETURNS text`.
#[pg_extern(stable, parallel_safe, sql = false)]
pub fn current_role_claim() -> Option<String> {
    claim_text(c"request.jwt.claim.role", "role").map(|c| c.to_string_lossy().into_owned())
}

/// The caller's id as text (`analytics.current_user_id()`), or None without one. Calls the identity function
/// directly, not through SPI.
pub fn caller_id() -> Option<String> {
    current_user_id().map(|u| u.to_string())
}

/// The owner whose rows a read function looks at: the `user_id` argument, else the caller; 42501 without either.
pub fn resolve_owner(user_id: Option<pgrx::Uuid>) -> String {
    match user_id {
        Some(u) => u.to_string(),
        None => caller_id().unwrap_or_else(|| {
            AnalyticsError::new(
                ErrorKind::InsufficientPrivilege,
                "no user: call with a JWT whose claims have a sub (request.jwt.claims), or pass user_id",
            )
            .raise()
        }),
    }
}

/// Declared in sql/040_rate_limits.sql as `analytics._caller_is_privileged()`: whether the role a call runs as is a
/// superuser or has BYPASSRLS — the role `SET ROLE` chose (PostgREST's `set local role`), else the session user;
/// never the owner of a SECURITY DEFINER function the call is in (Postgres's "outer" user id). The same answer as
/// `select rolsuper or rolbypassrls from pg_roles where rolname = coalesce(nullif(current_setting('role'), 'none'),
/// session_user)`, from the role cache instead of a query: the limiter and the result cache ask on every call.
#[pg_extern(stable, parallel_safe, sql = false)]
pub fn caller_is_privileged() -> bool {
    unsafe {
        let role = pg_sys::GetOuterUserId();
        pg_sys::superuser_arg(role) || pg_sys::has_bypassrls_privilege(role)
    }
}

/// Declared in sql/040_rate_limits.sql as `analytics._clock(setting text)`: the clock of the rate limiter and the
/// result cache. `clock_timestamp()`, or the time written in the setting (tests move time without sleeping), which
/// only a session whose login role is a superuser may use: an API caller (PostgREST logs in as `authenticator`)
/// cannot move its own limits' clock. A setting that is not a time raises as `::timestamptz` does (22007).
#[pg_extern(volatile, parallel_safe, sql = false)]
pub fn clock(setting_name: &str) -> TimestampWithTimeZone {
    let name = CString::new(setting_name).unwrap_or_else(|_| {
        AnalyticsError::new(ErrorKind::InvalidParameter, "setting: must not contain a NUL byte").raise()
    });
    let raw = match setting(&name) {
        None => unsafe { pg_sys::Datum::from(pg_sys::GetCurrentTimestamp()) },
        Some(text) => {
            if !unsafe { pg_sys::superuser_arg(pg_sys::GetSessionUserId()) } {
                AnalyticsError::new(
                    ErrorKind::InsufficientPrivilege,
                    format!("{setting_name}: the test clock may only be set in a superuser's session"),
                )
                .raise()
            }
            unsafe {
                direct_function_call_as_datum(
                    pg_sys::timestamptz_in,
                    &[
                        Some(pg_sys::Datum::from(text.as_ptr())),
                        Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                        Some(pg_sys::Datum::from(-1i32)),
                    ],
                )
                // (timestamptz_in either returns a value or raises 22007 itself)
                .unwrap_or_else(|| {
                    AnalyticsError::new(ErrorKind::InvalidDatetime, format!("{setting_name}: is not a time")).raise()
                })
            }
        }
    };
    // (in range: both sources produce valid timestamps)
    TimestampWithTimeZone::try_from(raw).unwrap_or_else(|_| {
        AnalyticsError::new(ErrorKind::InvalidDatetime, format!("{setting_name}: is out of range")).raise()
    })
}

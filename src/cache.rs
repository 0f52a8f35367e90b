//! The result cache's per-connection tally of hits and misses (`analytics_core::cache::Tally`), behind
//! `analytics._cache_count`, `_cache_drain` and `_cache_pending`. The cache itself is SQL (sql/041_cache.sql); these
//! are called only from its SECURITY DEFINER functions (API roles may not execute them): the owner counted is
//! always the JWT's sub, never an argument.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Instant;

use analytics_core::cache::{Counts, Tally};
use pgrx::prelude::*;

use crate::identity::caller_id;

thread_local! {
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn rows(v: Vec<(String, String, Counts)>) -> impl Iterator<Item = (String, String, i64, i64)> {
    v.into_iter().map(|(o, f, c)| (o, f, c.hits, c.misses))
}

/// `analytics._cache_count(fn text, hit boolean) returns boolean`: counts one call of fn by the caller (JWT sub;
/// nothing without one) and answers whether this connection's tally is due to be written (`_cache_drain`).
#[pg_extern(name = "_cache_count", volatile, parallel_unsafe)]
pub fn cache_count(function: &str, hit: bool) -> bool {
    match caller_id() {
        Some(owner) => TALLY.with(|t| t.borrow_mut().record(&owner, function, hit, now_ms())),
        None => false,
    }
}

/// `analytics._cache_drain() returns table(user_id text, function_name text, hits bigint, misses bigint)`: takes this
/// connection's tally for writing.
#[pg_extern(name = "_cache_drain", volatile, parallel_unsafe)]
pub fn cache_drain(
) -> TableIterator<'static, (name!(user_id, String), name!(function_name, String), name!(hits, i64), name!(misses, i64))> {
    TableIterator::new(rows(TALLY.with(|t| t.borrow_mut().drain(now_ms()))))
}

/// `analytics._cache_pending() returns table(...)`: this connection's tally not yet written, left in place.
#[pg_extern(name = "_cache_pending", volatile, parallel_unsafe)]
pub fn cache_pending(
) -> TableIterator<'static, (name!(user_id, String), name!(function_name, String), name!(hits, i64), name!(misses, i64))> {
    TableIterator::new(rows(TALLY.with(|t| t.borrow().pending())))
}

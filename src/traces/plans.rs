//! Kept plans of the statements that read `llm_traces` by time range, run as their generic plans.
//!
//! llm_traces is partitioned by start_time: a generic plan prunes the partitions outside a time range when it starts,
//! but its estimated cost counts every partition, so the plan cache would plan each call anew (a custom plan).
//! Custom plans also see the range's values, which can make an index on (user_id, start_time) look cheaper than a
//! unique key for a point lookup when many spans share a start time; the generic plan's estimate of a range does not
//! depend on its values.

use pgrx::pg_sys;

/// Runs kept plans as their generic plans while it lives: `plan_cache_mode` is set for the execution only and put
/// back when the guard goes, also when the statement raises an error (the error unwinds through Rust frames). A
/// custom plan of search_spans costs about 0.15 ms, more than the search.
pub(crate) struct GenericPlan(std::ffi::c_int);

impl GenericPlan {
    pub(crate) fn force() -> Self {
        // SAFETY: a backend-local global of the plan cache, read when a kept plan is executed
        unsafe {
            let previous = pg_sys::plan_cache_mode;
            pg_sys::plan_cache_mode = pg_sys::PlanCacheMode::PLAN_CACHE_MODE_FORCE_GENERIC_PLAN as std::ffi::c_int;
            GenericPlan(previous)
        }
    }
}

impl Drop for GenericPlan {
    fn drop(&mut self) {
        // SAFETY: as above
        unsafe { pg_sys::plan_cache_mode = self.0 }
    }
}

/// Plans the statements run while it lives with nested loops only (no hash, merge or memoize joins), and puts the
/// settings back when it goes, also on an error. For ingest's update of the stored spans of a batch, a join of the
/// batch with the table by each span's exact key: the planner counts every partition's rows on the inner side (it
/// cannot know that each probe is pruned to one partition) and would otherwise hash the whole table: a sequential
/// scan of every partition for a re-sent batch that needs one index probe per span. (The triggers that fire within
/// it, the cache's and the usage log's, plan no join.)
pub(crate) struct NestedLoops([bool; 3]);

impl NestedLoops {
    pub(crate) fn force() -> Self {
        // SAFETY: backend-local planner settings (GUC variables), read when a statement is planned
        unsafe {
            let previous = [pg_sys::enable_hashjoin, pg_sys::enable_mergejoin, pg_sys::enable_memoize];
            pg_sys::enable_hashjoin = false;
            pg_sys::enable_mergejoin = false;
            pg_sys::enable_memoize = false;
            NestedLoops(previous)
        }
    }
}

impl Drop for NestedLoops {
    fn drop(&mut self) {
        // SAFETY: as above
        unsafe {
            [pg_sys::enable_hashjoin, pg_sys::enable_mergejoin, pg_sys::enable_memoize] = self.0;
        }
    }
}

thread_local! {
    /// Kept plans of fixed statements (ingest's lookups), by their text.
    static KEPT: std::cell::RefCell<std::collections::HashMap<&'static str, pgrx::spi::OwnedPreparedStatement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Runs a fixed SELECT through its kept plan (prepared on first use), as the generic plan.
fn with_kept<R>(
    client: &mut pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[pgrx::PgOid],
    run: impl FnOnce(&mut pgrx::spi::SpiClient<'_>, &pgrx::spi::OwnedPreparedStatement) -> Result<R, pgrx::spi::Error>,
) -> Result<R, pgrx::spi::Error> {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if !kept.contains_key(sql) {
            let plan = client.prepare(sql, types)?.keep();
            kept.insert(sql, plan);
        }
        let _generic = GenericPlan::force();
        run(client, &kept[sql])
    })
}

/// The first column of the first row of a fixed SELECT (see `with_kept`).
pub(crate) fn select_one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    client: &mut pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[pgrx::PgOid],
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<Option<T>, pgrx::spi::Error> {
    with_kept(client, sql, types, |client, plan| client.select(plan, Some(1), args)?.first().get_one::<T>())
}

/// The first two columns of the first row of a fixed SELECT (see `with_kept`).
pub(crate) fn select_two<A: pgrx::FromDatum + pgrx::IntoDatum, B: pgrx::FromDatum + pgrx::IntoDatum>(
    client: &mut pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[pgrx::PgOid],
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<(Option<A>, Option<B>), pgrx::spi::Error> {
    with_kept(client, sql, types, |client, plan| client.select(plan, Some(1), args)?.first().get_two::<A, B>())
}

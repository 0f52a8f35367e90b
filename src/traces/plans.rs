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

/// Plans the statements run while it lives as index probes: no sequential or bitmap scans, sorts, hash, merge or
/// memoize joins (each still chosen where nothing else can run the statement), and no JIT compilation (the probes'
/// estimated cost counts every partition for each span and passed the JIT thresholds: compiling the update of a
/// re-send over 67 partitions took 7 s); puts the settings back when it goes, also on an error. For ingest's statements, which look up or update the stored spans of a batch one span or
/// one trace at a time: the update of a re-sent batch joins it with the table by each span's exact key, and the
/// planner, which counts every partition's rows on the inner side (it cannot know that each probe is pruned to one
/// partition), hashed the whole table, a sequential scan of every partition for a batch that needs one index probe
/// per span. (The triggers that fire meanwhile, the result cache's and the usage log's, plan no join and scan no
/// table.) Statistics that call a partition empty still leave the choice of index to chance: see `Planning`.
pub(crate) struct IndexProbes([bool; 7]);

impl IndexProbes {
    pub(crate) fn force() -> Self {
        IndexProbes(Self::set([false; 7]))
    }

    /// Sets enable_seqscan, enable_bitmapscan, enable_sort, enable_hashjoin, enable_mergejoin, enable_memoize and
    /// jit; returns what they were.
    fn set(values: [bool; 7]) -> [bool; 7] {
        // SAFETY: backend-local planner settings (GUC variables), read when a statement is planned; written through
        // raw pointers, no reference to a static is made
        unsafe {
            let settings = [
                &raw mut pg_sys::enable_seqscan,
                &raw mut pg_sys::enable_bitmapscan,
                &raw mut pg_sys::enable_sort,
                &raw mut pg_sys::enable_hashjoin,
                &raw mut pg_sys::enable_mergejoin,
                &raw mut pg_sys::enable_memoize,
                &raw mut pg_sys::jit_enabled,
            ];
            let mut previous = [false; 7];
            for (k, setting) in settings.into_iter().enumerate() {
                previous[k] = std::ptr::replace(setting, values[k]);
            }
            previous
        }
    }
}

impl Drop for IndexProbes {
    fn drop(&mut self) {
        Self::set(self.0);
    }
}

thread_local! {
    /// Kept plans of fixed statements (ingest's lookups), by their text.
    static KEPT: std::cell::RefCell<std::collections::HashMap<&'static str, pgrx::spi::OwnedPreparedStatement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Runs a fixed SELECT through its kept plan (prepared on first use), as the generic plan made of index probes
/// (`IndexProbes`: the plan is made, and made again after an invalidation, when it runs).
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
        let _probes = IndexProbes::force();
        run(client, &kept[sql])
    })
}

/// How a lookup of ingest is planned: through its kept generic plan, or anew for this call (a custom plan, which sees
/// the partitions' current size). A kept plan made while a partition was empty (made ahead by maintenance, or emptied
/// and vacuumed) reads that partition as if it were, through whichever index leads with user_id (or a sequential
/// scan), until an ANALYZE of the partition makes the plan anew: a re-send of 100,000 spans right after they arrived
/// spent 16-24 s in the first and last start time of its 1,000 traces alone. A large batch therefore plans its lookups anew (planning is a
/// millisecond or two, against seconds of work); a small one keeps them (a plan per call would cost a single span
/// more than its lookups), and pays for a stale plan only on the few spans it has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planning {
    Kept,
    PerCall,
}

/// The first row of a fixed SELECT, read by `get`, planned as `planning` says (see `with_kept` and `Planning`).
fn select_first<R>(
    client: &mut pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[pgrx::PgOid],
    args: &[pgrx::datum::DatumWithOid<'_>],
    planning: Planning,
    get: impl for<'t> FnOnce(pgrx::spi::SpiTupleTable<'t>) -> Result<R, pgrx::spi::Error>,
) -> Result<R, pgrx::spi::Error> {
    if planning == Planning::PerCall {
        let _probes = IndexProbes::force();
        return get(client.select(sql, Some(1), args)?);
    }
    with_kept(client, sql, types, |client, plan| get(client.select(plan, Some(1), args)?))
}

/// The first column of the first row of a fixed SELECT (see `select_first`).
pub(crate) fn select_one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    client: &mut pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[pgrx::PgOid],
    args: &[pgrx::datum::DatumWithOid<'_>],
    planning: Planning,
) -> Result<Option<T>, pgrx::spi::Error> {
    select_first(client, sql, types, args, planning, |table| table.first().get_one::<T>())
}

/// The first two columns of the first row of a fixed SELECT (see `select_first`).
pub(crate) fn select_two<A: pgrx::FromDatum + pgrx::IntoDatum, B: pgrx::FromDatum + pgrx::IntoDatum>(
    client: &mut pgrx::spi::SpiClient<'_>,
    sql: &'static str,
    types: &[pgrx::PgOid],
    args: &[pgrx::datum::DatumWithOid<'_>],
    planning: Planning,
) -> Result<(Option<A>, Option<B>), pgrx::spi::Error> {
    select_first(client, sql, types, args, planning, |table| table.first().get_two::<A, B>())
}

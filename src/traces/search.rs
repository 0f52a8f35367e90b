//! `analytics.search_spans`: spans matching filters, newest first, keyset or offset pages, with a kept plan per
//! combination of filters. The argument rules (page bounds, enumerated filters, cursors) are the core's
//! (`analytics_core::traces::search`), shared with the PL/pgSQL `analytics.search_traces` through the
//! `_check_page` / `_check_span_filters` / `_cursor_*` functions below.

use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};

use super::ingest;
use analytics_core::traces::search;
use crate::bind::{AnalyticsError, OrRaise, Raise};
use crate::identity::caller_id;

// ---- search_spans ----------------------------------------------------------------------------------------------

thread_local! {
    /// Kept plans of search_spans, by query text (one text per combination of filters, page size and offset).
    static SEARCH_PLANS: std::cell::RefCell<std::collections::HashMap<String, pgrx::spi::OwnedPreparedStatement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}
const MAX_KEPT_SEARCH_PLANS: usize = 256;

/// The WHERE clause of a search and its parameters, built filter by filter.
#[derive(Default)]
struct SearchQuery {
    preds: Vec<String>,
    args: Vec<pgrx::datum::DatumWithOid<'static>>,
    types: Vec<pgrx::PgOid>,
}

impl SearchQuery {
    /// Adds a predicate whose `?`s stand for the given values, in order.
    fn param(&mut self, pred: &str, values: Vec<pgrx::datum::DatumWithOid<'static>>) {
        let base = self.args.len();
        let mut text = String::new();
        for (k, piece) in pred.split('?').enumerate() {
            if k > 0 {
                text.push_str(&format!("${}", base + k));
            }
            text.push_str(piece);
        }
        self.preds.push(text);
        for v in values {
            self.types.push(pgrx::PgOid::from(v.oid()));
            self.args.push(v);
        }
    }
}

/// A timestamp given as text, parsed by Postgres (any format timestamptz accepts); None when it does not parse.
fn pg_timestamptz(text: &str) -> Option<TimestampWithTimeZone> {
    let c = std::ffi::CString::new(text).ok()?;
    PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call::<TimestampWithTimeZone>(
            pg_sys::timestamptz_in,
            &[Some(pg_sys::Datum::from(c.as_ptr())), Some(pg_sys::Datum::from(pg_sys::InvalidOid)), Some(pg_sys::Datum::from(-1i32))],
        )
    })
    .catch_others(|_| None)
    .execute()
}

/// A keyset cursor: its time (parsed by Postgres, any format timestamptz accepts) and its key. Raises the core's
/// errors (22023 naming `after`).
fn parse_cursor(after: &str) -> (TimestampWithTimeZone, String) {
    let (time, key) = search::split_cursor(after).or_raise();
    let time = pg_timestamptz(time).unwrap_or_else(|| search::cursor_time_error(after).raise());
    (time, key.to_string())
}

/// `analytics._check_page(page_limit int, page_offset int) returns void`: the page rule of the search functions,
/// for `search_traces` (PL/pgSQL). 22023 naming `limit` or `offset`.
#[pg_extern(immutable, parallel_safe, name = "_check_page")]
pub fn check_page(page_limit: Option<i32>, page_offset: Option<i32>) {
    search::check_page(page_limit, page_offset).or_raise();
}

/// `analytics._check_span_filters(operation_type text, status text) returns void`: the enumerated filters of the
/// search functions, for `search_traces` (PL/pgSQL). 22023 naming the filter.
#[pg_extern(immutable, parallel_safe, name = "_check_span_filters")]
pub fn check_span_filters(operation_type: Option<&str>, status: Option<&str>) {
    search::check_filters(operation_type, status).or_raise();
}

/// `analytics._cursor_time(after text) returns timestamptz`: the time of a keyset cursor (NULL for NULL).
#[pg_extern(stable, parallel_safe, name = "_cursor_time")]
pub fn cursor_time(after: Option<&str>) -> Option<TimestampWithTimeZone> {
    after.map(|a| parse_cursor(a).0)
}

/// `analytics._cursor_key(after text) returns text`: the key of a keyset cursor (NULL for NULL).
#[pg_extern(stable, parallel_safe, name = "_cursor_key")]
pub fn cursor_key(after: Option<&str>) -> Option<String> {
    after.map(|a| parse_cursor(a).1)
}

/// `analytics._search_spans(trace_id, conversation_id, message_id, session_id, operation_type, status, model,
/// from_time, to_time, min_duration_ms, tag, after, "limit" = 50, "offset" = 0, user_id) returns setof llm_traces`,
/// behind the cached PL/pgSQL `analytics.search_spans` (sql/041_cache.sql; the symbol is 0.1.0's)
///
/// Spans matching every filter given, newest first (start_time desc, id desc), with keyset pagination (`after` =
/// `'<start_time>,<id>'` of the last row of the previous page) or `"offset"`. Each combination of filters (with its
/// page size and offset) is planned once per session and the plan kept (SPI_keepplan): under row-level security
/// planning a query also plans its policies, and on small API queries re-planning was most of what RLS cost.
/// Postgres re-plans kept plans by itself when the role or the schema changes.
#[pg_extern(name = "_search_spans", stable, parallel_safe, requires = ["traces_tables"])]
#[allow(clippy::too_many_arguments)]
pub fn search_spans(
    trace_id: default!(Option<&str>, "NULL"),
    conversation_id: default!(Option<&str>, "NULL"),
    message_id: default!(Option<&str>, "NULL"),
    session_id: default!(Option<&str>, "NULL"),
    operation_type: default!(Option<&str>, "NULL"),
    status: default!(Option<&str>, "NULL"),
    model: default!(Option<&str>, "NULL"),
    from_time: default!(Option<TimestampWithTimeZone>, "NULL"),
    to_time: default!(Option<TimestampWithTimeZone>, "NULL"),
    min_duration_ms: default!(Option<f64>, "NULL"),
    tag: default!(Option<&str>, "NULL"),
    after: default!(Option<&str>, "NULL"),
    limit: default!(Option<i32>, 50),
    offset: default!(Option<i32>, 0),
    user_id: default!(Option<Uuid>, "NULL"),
) -> SetOfIterator<'static, pgrx::composite_type!('static, "llm_traces")> {
    fn invalid<T>(msg: String) -> T {
        AnalyticsError::invalid(msg).raise()
    }
    let (limit, offset) = search::check_page(limit, offset).or_raise();
    search::check_filters(operation_type, status).or_raise();
    let cursor = after.map(|a| {
        let (time, id) = parse_cursor(a);
        if !ingest::is_uuid(&id) {
            invalid::<()>(format!("after: must be \"<start_time>,<id>\" with the uuid id of the last span, got \"{a}\""));
        }
        (time, id)
    });
    let owner = user_id.map(|u| u.to_string()).or_else(caller_id);

    // the query: exact predicates for the filters given; the literal 'error' lets it use the partial index
    let mut q = SearchQuery::default();
    if let Some(o) = owner {
        q.param("s.user_id = ?::uuid", vec![o.into()]);
    }
    let texts = [("s.trace_id = ?", trace_id), ("s.conversation_id = ?", conversation_id), ("s.message_id = ?", message_id),
        ("s.session_id = ?", session_id), ("s.operation_type = ?", operation_type), ("s.model = ?", model),
        ("s.tags @> array[?]", tag)];
    for (pred, value) in texts {
        if let Some(v) = value {
            q.param(pred, vec![v.to_string().into()]);
        }
    }
    match status {
        Some("error") => q.param("s.status = 'error'", vec![]),
        Some(st) => q.param("s.status = ?", vec![st.to_string().into()]),
        None => {}
    }
    if let Some(t) = from_time {
        q.param("s.start_time >= ?", vec![t.into()]);
    }
    if let Some(t) = to_time {
        q.param("s.start_time < ?", vec![t.into()]);
    }
    if let Some(d) = min_duration_ms {
        q.param("s.duration_ms >= ?", vec![d.into()]);
    }
    let cursor_time = cursor.as_ref().map(|(time, _)| pg_sys::TimestampTz::from(*time));
    if let Some((time, id)) = cursor {
        // the row comparison alone prunes no partition: the bound on start_time it implies does, when the plan starts
        q.param("s.start_time <= ? and (s.start_time, s.id) < (?, ?::uuid)", vec![time.into(), time.into(), id.into()]);
    }
    // on a time-partitioned table: the partition bounds around the searched range, as literals, so that the kept plan
    // holds (and each call locks) only those partitions, and a long range read newest partitions first
    // SAFETY: reads the start time of the current transaction
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let window = search::partition_window(
        &partition_bounds(),
        from_time.map(pg_sys::TimestampTz::from),
        to_time.map(pg_sys::TimestampTz::from),
        cursor_time,
        offset,
        now,
    );
    if let Some(b) = window.lower {
        q.param(&format!("s.start_time >= {}", time_literal(b)), vec![]);
    }
    if let Some(b) = window.upper {
        q.param(&format!("s.start_time < {}", time_literal(b)), vec![]);
    }
    let query = |extra: Vec<String>| {
        let preds: Vec<&str> = q.preds.iter().chain(extra.iter()).map(String::as_str).collect();
        let where_clause = if preds.is_empty() { "true".to_string() } else { preds.join(" and ") };
        format!("select s from analytics.llm_traces s where {where_clause} order by s.start_time desc, s.id desc limit {limit} offset {offset}")
    };
    // the query of window k, newest first: [splits[0], upper), [splits[1], splits[0]), ..., [lower, last split)
    let window_query = |k: usize| {
        let below = k.checked_sub(1).map(|j| format!("s.start_time < {}", time_literal(window.splits[j])));
        let above = window.splits.get(k).map(|&b| format!("s.start_time >= {}", time_literal(b)));
        query(below.into_iter().chain(above).collect())
    };
    let SearchQuery { args, types, .. } = q;

    let rows = Spi::connect(|client| {
        SEARCH_PLANS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let mut run = |query: &str, rows: Option<i64>| {
                if !cache.contains_key(query) {
                    if cache.len() >= MAX_KEPT_SEARCH_PLANS {
                        cache.clear();
                    }
                    let plan = client.prepare(query, &types).unwrap_or_else(|e| invalid(format!("search_spans: {e}")));
                    cache.insert(query.to_string(), plan.keep());
                }
                let plan = &cache[query];
                let _generic = super::plans::GenericPlan::force();
                let table = client.select(plan, rows, &args).unwrap_or_else(|e| invalid(format!("search_spans: {e}")));
                table
                    .map(|row| row.get::<pgrx::composite_type!('static, "llm_traces")>(1).expect("a span row").expect("not null"))
                    .collect::<Vec<_>>()
            };
            let mut page = run(&window_query(0), None);
            // the newest partitions did not fill the page: the older ones give the rest (each window's query written
            // only when it is read)
            for k in 1..=window.splits.len() {
                if page.len() >= limit as usize {
                    break;
                }
                let more = run(&window_query(k), Some((limit as usize - page.len()) as i64));
                page.extend(more);
            }
            page
        })
    });
    SetOfIterator::new(rows)
}

/// A start time (microseconds since 2000-01-01, Postgres' epoch) as a timestamptz literal, e.g.
/// `'2026-06-01T00:00:00.000000Z'::timestamptz`.
fn time_literal(pg_us: i64) -> String {
    format!("'{}'::timestamptz", super::rows::ts_text(pg_us))
}

/// The finite bounds of analytics.llm_traces' range partitions, ascending (microseconds since 2000-01-01); none when
/// the table is not partitioned (a database at 0.1.0, whose SQL runs this same function) or not by range. Read from
/// the partition descriptor the relation cache keeps for the planner: no query, and current after every ATTACH,
/// DETACH, CREATE or DROP of a partition.
fn partition_bounds() -> Vec<i64> {
    // years 1 to 9999: bounds a literal can spell (a bound outside is not used; the search's own predicates hold)
    const FIRST: i64 = -63_082_281_600_000_000; // 0001-01-01 in microseconds since 2000-01-01
    const LAST: i64 = 252_455_615_999_999_999; // 9999-12-31 23:59:59.999999
    let mut bounds = Vec::new();
    let table = super::rows::span_table();
    // SAFETY: a catalog cache lookup; the relation is opened with the lock the search's query takes anyway (and keeps
    // until the transaction ends, as a query does); the partition descriptor and its bound arrays belong to the
    // relation cache entry, read while the relation is open and not kept
    unsafe {
        if table == pg_sys::InvalidOid || pg_sys::get_rel_relkind(table) as u8 != pg_sys::RELKIND_PARTITIONED_TABLE {
            return bounds;
        }
        let rel = pg_sys::relation_open(table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let desc = pg_sys::RelationGetPartitionDesc(rel, true);
        if !desc.is_null() && !(*desc).boundinfo.is_null() {
            let info = &*(*desc).boundinfo;
            if info.strategy as u8 == pg_sys::PARTITION_STRATEGY_RANGE && !info.kind.is_null() {
                for i in 0..info.ndatums.max(0) as usize {
                    // one partition key column (start_time): the first datum of each bound
                    if **info.kind.add(i) == pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_VALUE {
                        let us = (**info.datums.add(i)).value() as i64;
                        if (FIRST..=LAST).contains(&us) {
                            bounds.push(us);
                        }
                    }
                }
            }
        }
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
    bounds
}


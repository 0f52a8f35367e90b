//! SQL bindings of the traces capability. Thin: parsing, validation and tree logic live in the pure modules.
//!
//! Every function here is SECURITY INVOKER: it reads and writes `analytics.llm_traces` with the caller's rights,
//! so row-level security decides what it sees. Read functions take an optional `user_id` (default: the caller);
//! under RLS, naming another user's id returns nothing, exactly like an id that does not exist.

use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts, Uuid};
use serde_json::json;

use super::{ingest, otlp, svg};
use super::tree::{SpanInfo, SpanTree};
use crate::errors::{AnalyticsError, ErrorKind, OrRaise};
use crate::jsonb::{JsonbBuilder, JsonbText, RawJsonb};

/// Largest `max_depth` of `get_trace_tree` (Postgres limits the nesting depth of a jsonb document).
pub const MAX_TREE_DEPTH: i32 = 1000;
pub const MAX_TREE_SPANS: i32 = 1_000_000;

pub(crate) fn caller_id() -> Option<String> {
    Spi::get_one::<String>("select analytics.current_user_id()::text").unwrap_or(None)
}

/// The owner whose rows a read function looks at: the `user_id` argument, else the caller.
pub(crate) fn resolve_owner(user_id: Option<Uuid>) -> String {
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

pub(crate) fn required<T>(value: Option<T>, name: &str) -> T {
    value.unwrap_or_else(|| AnalyticsError::new(ErrorKind::NullValue, format!("{name}: is required")).raise())
}

// ---- ingest ---------------------------------------------------------------------------------------------------

const UPSERT_SPANS: &str = r#"
with incoming as (
    select * from jsonb_to_recordset($1::jsonb) as r(
        user_id uuid, trace_id text, span_id text, parent_span_id text, conversation_id text, message_id text,
        session_id text, name text, operation_type text, status text, status_message text, level text,
        start_time timestamptz, end_time timestamptz, completion_start_time timestamptz, provider text, model text,
        input_tokens bigint, output_tokens bigint, total_tokens bigint, cache_read_tokens bigint,
        cache_write_tokens bigint, reasoning_tokens bigint, cost_usd double precision,
        input jsonb, output jsonb, metadata jsonb, tags text[])
), stored as (
    insert into analytics.llm_traces as t (
        user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type,
        status, status_message, level, start_time, end_time, completion_start_time, provider, model,
        input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
        cost_usd, input, output, metadata, tags)
    select user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name,
           coalesce(operation_type, 'unknown'), coalesce(status, 'unset'), status_message, coalesce(level, 'default'),
           start_time, end_time, completion_start_time, provider, model,
           input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
           cost_usd, input, output, coalesce(metadata, '{}'::jsonb), coalesce(tags, '{}'::text[])
    from incoming
    on conflict (user_id, trace_id, span_id) do update set
        parent_span_id        = coalesce(excluded.parent_span_id, t.parent_span_id),
        conversation_id       = coalesce(excluded.conversation_id, t.conversation_id),
        message_id            = coalesce(excluded.message_id, t.message_id),
        session_id            = coalesce(excluded.session_id, t.session_id),
        name                  = excluded.name,
        operation_type        = case when excluded.operation_type = 'unknown' then t.operation_type else excluded.operation_type end,
        status                = case when excluded.status = 'unset' then t.status else excluded.status end,
        status_message        = coalesce(excluded.status_message, t.status_message),
        level                 = case when excluded.level = 'default' then t.level else excluded.level end,
        start_time            = excluded.start_time,
        end_time              = coalesce(excluded.end_time, t.end_time),
        completion_start_time = coalesce(excluded.completion_start_time, t.completion_start_time),
        provider              = coalesce(excluded.provider, t.provider),
        model                 = coalesce(excluded.model, t.model),
        input_tokens          = coalesce(excluded.input_tokens, t.input_tokens),
        output_tokens         = coalesce(excluded.output_tokens, t.output_tokens),
        total_tokens          = coalesce(excluded.total_tokens, t.total_tokens),
        cache_read_tokens     = coalesce(excluded.cache_read_tokens, t.cache_read_tokens),
        cache_write_tokens    = coalesce(excluded.cache_write_tokens, t.cache_write_tokens),
        reasoning_tokens      = coalesce(excluded.reasoning_tokens, t.reasoning_tokens),
        cost_usd              = coalesce(excluded.cost_usd, t.cost_usd),
        input                 = coalesce(excluded.input, t.input),
        output                = coalesce(excluded.output, t.output),
        metadata              = t.metadata || excluded.metadata,
        tags                  = case when cardinality(excluded.tags) = 0 then t.tags else excluded.tags end
    returning (xmax = 0) as inserted, trace_id
)
select count(*) filter (where inserted), count(*) filter (where not inserted), count(distinct trace_id)
from stored
"#;

/// Stores a parsed batch with one INSERT ... ON CONFLICT DO UPDATE; returns the summary jsonb.
pub(crate) fn store_batch(batch: ingest::Batch) -> pgrx::JsonB {
    let payload = serde_json::to_string(&batch.spans).expect("validated spans serialise");
    let (inserted, updated, traces) = if batch.spans.is_empty() {
        (Some(0), Some(0), Some(0))
    } else {
        Spi::connect_mut(|client| {
            client.update(UPSERT_SPANS, None, &[payload.into()])?.first().get_three::<i64, i64, i64>()
        })
        .unwrap_or_else(|e| AnalyticsError::new(ErrorKind::InvalidParameter, format!("spans: {e}")).raise())
    };
    pgrx::JsonB(json!({
        "received": batch.received,
        "stored": batch.spans.len(),
        "inserted": inserted.unwrap_or(0),
        "updated": updated.unwrap_or(0),
        "merged_duplicates": batch.merged_duplicates,
        "traces": traces.unwrap_or(0),
    }))
}

/// `analytics.ingest_spans(spans jsonb) returns jsonb`
///
/// Stores a batch of spans (a JSON array of span objects, up to 100,000) in one statement: all or nothing.
/// Re-sending a span (same owner, trace_id, span_id) updates it; children may arrive before their parents.
/// Returns `{"received", "stored", "inserted", "updated", "merged_duplicates", "traces"}`.
#[pg_extern(volatile, parallel_unsafe)]
pub fn ingest_spans(spans: Option<JsonbText>) -> pgrx::JsonB {
    let text = required(spans, "spans").0;
    let caller = caller_id();
    let batch = ingest::parse_batch(&text, caller.as_deref()).or_raise();
    store_batch(batch)
}

/// `analytics.ingest_otlp(payload jsonb) returns jsonb`
///
/// Stores the spans of an OpenTelemetry OTLP/JSON `ExportTraceServiceRequest`, mapping `gen_ai.*` (and
/// OpenInference) attributes to columns and keeping the rest in `metadata.otel`. Same rules and result as
/// `ingest_spans`.
#[pg_extern(volatile, parallel_unsafe)]
pub fn ingest_otlp(payload: Option<JsonbText>) -> pgrx::JsonB {
    let text = required(payload, "payload").0;
    let batch = otlp::parse_otlp(&text, caller_id().as_deref()).or_raise();
    store_batch(batch)
}

// ---- reading one trace ----------------------------------------------------------------------------------------

/// The rows of one trace, as the tree needs them, plus display fields. Times are Postgres timestamptz
/// microseconds (since 2000-01-01).
struct TraceRows {
    spans: Vec<SpanInfo>,
    name: Vec<String>,
    operation_type: Vec<String>,
    status: Vec<String>,
    model: Vec<Option<String>>,
    duration_ms: Vec<Option<f64>>,
    /// a jsonb document per span (only when asked for), valid while the SPI connection is open
    doc: Vec<pg_sys::Datum>,
}

const TRACE_COLUMNS: &str = "t.span_id, t.parent_span_id, t.start_time, t.end_time, coalesce(t.total_tokens, 0), \
     coalesce(t.cost_usd, 0), t.status, t.name, t.operation_type, t.model, t.duration_ms";

/// Loads the spans of `trace_id` owned by `owner` and hands them to `f` while the SPI connection is still open
/// (so jsonb documents can be spliced in binary form). `doc_sql` is a SQL expression over `t` giving each span's
/// jsonb document, or None.
fn with_trace_rows<R>(owner: &str, trace_id: &str, doc_sql: Option<&str>, f: impl FnOnce(TraceRows) -> R) -> R {
    let doc_col = doc_sql.map(|d| format!(", {d}")).unwrap_or_default();
    let query = format!(
        "select {TRACE_COLUMNS}{doc_col} from analytics.llm_traces t where t.user_id = $1::uuid and t.trace_id = $2"
    );
    Spi::connect(|client| {
        let rows = client.select(&query, None, &[owner.into(), trace_id.into()]).unwrap_or_else(|e| {
            AnalyticsError::new(ErrorKind::InvalidParameter, format!("trace_id: {e}")).raise()
        });
        let n = rows.len();
        let mut t = TraceRows {
            spans: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            operation_type: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            duration_ms: Vec::with_capacity(n),
            doc: Vec::with_capacity(if doc_sql.is_some() { n } else { 0 }),
        };
        for row in rows {
            let get_ts = |i: usize| -> Option<i64> {
                row.get::<TimestampWithTimeZone>(i).expect("timestamptz column").map(pg_sys::TimestampTz::from)
            };
            let status: String = row.get(7).expect("status").unwrap_or_default();
            t.spans.push(SpanInfo {
                span_id: row.get(1).expect("span_id").unwrap_or_default(),
                parent_span_id: row.get(2).expect("parent_span_id"),
                start_us: get_ts(3).unwrap_or(0),
                end_us: get_ts(4),
                total_tokens: row.get(5).expect("tokens").unwrap_or(0),
                cost_usd: row.get(6).expect("cost").unwrap_or(0.0),
                is_error: status == "error",
            });
            t.status.push(status);
            t.name.push(row.get(8).expect("name").unwrap_or_default());
            t.operation_type.push(row.get(9).expect("operation_type").unwrap_or_default());
            t.model.push(row.get(10).expect("model"));
            t.duration_ms.push(row.get(11).expect("duration_ms"));
            if doc_sql.is_some() {
                let doc = row.get::<RawJsonb>(12).expect("jsonb document").expect("row document is not null");
                t.doc.push(doc.into_datum().expect("jsonb datum"));
            }
        }
        f(t)
    })
}

fn ts(us: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(us).expect("timestamp from the table is in range")
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// `analytics.get_trace_tree(trace_id text, max_depth int = 100, max_spans int = 10000, include_io bool = true,
/// user_id uuid = NULL) returns jsonb`
///
/// The trace as a nested document: `{"trace_id", "span_count", "returned_spans", "truncated", "roots": [span...]}`
/// where every span carries its columns, `depth`, `self_ms`, `orphan`, `cycle`, a `subtree` rollup and its
/// `children` (sorted by start time). NULL when the trace does not exist or is not the caller's.
#[pg_extern(stable, parallel_safe)]
pub fn get_trace_tree(
    trace_id: Option<&str>,
    max_depth: default!(i32, 100),
    max_spans: default!(i32, 10000),
    include_io: default!(bool, true),
    user_id: default!(Option<Uuid>, "NULL"),
) -> Option<RawJsonb> {
    let trace_id = required(trace_id, "trace_id");
    if !(0..=MAX_TREE_DEPTH).contains(&max_depth) {
        AnalyticsError::invalid(format!("max_depth: must be between 0 and {MAX_TREE_DEPTH}, got {max_depth}")).raise();
    }
    if !(1..=MAX_TREE_SPANS).contains(&max_spans) {
        AnalyticsError::invalid(format!("max_spans: must be between 1 and {MAX_TREE_SPANS}, got {max_spans}")).raise();
    }
    let owner = resolve_owner(user_id);
    let io_columns = if include_io { ", t.input, t.output" } else { "" };
    let doc_sql = format!(
        "(select to_jsonb(r) from (select t.id, t.trace_id, t.span_id, t.parent_span_id, t.conversation_id, \
         t.message_id, t.session_id, t.name, t.operation_type, t.status, t.status_message, t.level, t.start_time, \
         t.end_time, t.completion_start_time, t.duration_ms, t.provider, t.model, t.input_tokens, t.output_tokens, \
         t.total_tokens, t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens, t.cost_usd, t.metadata, \
         t.tags{io_columns}) r)"
    );
    // the result must outlive the SPI connection: build it in the caller's memory context
    let outer = unsafe { pg_sys::CurrentMemoryContext };
    with_trace_rows(&owner, trace_id, Some(&doc_sql), |rows| {
        if rows.spans.is_empty() {
            return None;
        }
        let tree = SpanTree::build(&rows.spans);
        Some(unsafe { PgMemoryContexts::For(outer).switch_to(|_| build_tree_jsonb(trace_id, &rows, &tree, max_depth, max_spans)) })
    })
}

fn build_tree_jsonb(trace_id: &str, rows: &TraceRows, tree: &SpanTree, max_depth: i32, max_spans: i32) -> RawJsonb {
    let n = rows.spans.len();
    // keep the shallowest spans first (breadth-first by depth, then pre-order), so what is kept stays connected
    let mut by_level: Vec<usize> = tree.preorder.iter().copied().filter(|&i| tree.depth[i] <= max_depth as usize).collect();
    by_level.sort_by_key(|&i| (tree.depth[i], tree.ordinal[i]));
    by_level.truncate(max_spans as usize);
    let mut included = vec![false; n];
    for &i in &by_level {
        included[i] = true;
    }
    let returned = by_level.len();

    let first_start = tree.roots.iter().map(|&r| tree.rollup[r].start_us).min().unwrap_or(0);
    let last_end = tree.roots.iter().map(|&r| tree.rollup[r].end_us).max().unwrap_or(0);
    let sum = |f: &dyn Fn(usize) -> f64| tree.roots.iter().map(|&r| f(r)).sum::<f64>();

    let mut b = JsonbBuilder::new();
    b.begin_object();
    b.key_string("trace_id", trace_id);
    b.key_i64("span_count", n as i64);
    b.key_i64("returned_spans", returned as i64);
    b.key_bool("truncated", returned < n);
    b.key_i64("orphan_count", tree.orphan.iter().filter(|&&o| o).count() as i64);
    b.key_i64("cycle_count", tree.cycle.iter().filter(|&&c| c).count() as i64);
    b.key_string("start_time", &ts_text(first_start));
    b.key_string("end_time", &ts_text(last_end));
    b.key_f64("duration_ms", ms(last_end - first_start));
    b.key_f64("total_tokens", sum(&|r| tree.rollup[r].total_tokens as f64));
    b.key_f64("cost_usd", sum(&|r| tree.rollup[r].cost_usd));
    b.key_f64("error_count", sum(&|r| tree.rollup[r].error_count as f64));
    b.key("roots");
    b.begin_array();
    // pre-order walk; `open` holds the spans whose children array is still open
    let mut open: Vec<usize> = Vec::new();
    for &i in tree.preorder.iter().filter(|&&i| included[i]) {
        while let Some(&top) = open.last() {
            if Some(top) == tree.parent[i] {
                break;
            }
            open.pop();
            b.end_array();
            b.end_object();
        }
        b.begin_object();
        unsafe { b.fields_of(rows.doc[i], |_| false) };
        b.key_i64("depth", tree.depth[i] as i64);
        b.key_f64("self_ms", ms(tree.self_us[i]));
        b.key_bool("orphan", tree.orphan[i]);
        b.key_bool("cycle", tree.cycle[i]);
        b.key_bool("on_critical_path", tree.on_critical_path[i]);
        let r = tree.rollup[i];
        b.key("subtree");
        b.begin_object();
        b.key_i64("span_count", r.span_count as i64);
        b.key_i64("error_count", r.error_count as i64);
        b.key_i64("total_tokens", r.total_tokens);
        b.key_f64("cost_usd", r.cost_usd);
        b.key_f64("duration_ms", ms(r.duration_us()));
        b.end_object();
        let hidden = tree.children[i].iter().filter(|&&c| !included[c]).count();
        b.key_i64("children_truncated", hidden as i64);
        b.key("children");
        b.begin_array();
        open.push(i);
    }
    while open.pop().is_some() {
        b.end_array();
        b.end_object();
    }
    b.end_array();
    b.end_object();
    b.finish()
}

/// RFC 3339 text of a Postgres timestamptz (microseconds since 2000-01-01 UTC).
fn ts_text(pg_us: i64) -> String {
    const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
    chrono::DateTime::from_timestamp_micros(pg_us + PG_EPOCH_OFFSET_US)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}


/// One row of `trace_spans` / `span_subtree` (the `#[pg_extern]` signatures spell the same tuple out).
type SpanRow = (
    i32, i32, Vec<String>, String, Option<String>, String, String, String, Option<String>, TimestampWithTimeZone,
    Option<TimestampWithTimeZone>, f64, Option<f64>, f64, bool, bool, i64, i64, i64, f64,
);

fn span_rows(rows: &TraceRows, tree: &SpanTree, which: &[usize], depth_base: usize) -> Vec<SpanRow> {
    let trace_start = tree.roots.iter().map(|&r| tree.rollup[r].start_us).min().unwrap_or(0);
    which
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let s = &rows.spans[i];
            let r = tree.rollup[i];
            (
                k as i32,
                (tree.depth[i] - depth_base) as i32,
                tree.path(&rows.spans, i),
                s.span_id.clone(),
                s.parent_span_id.clone(),
                rows.name[i].clone(),
                rows.operation_type[i].clone(),
                rows.status[i].clone(),
                rows.model[i].clone(),
                ts(s.start_us),
                s.end_us.map(ts),
                ms(s.start_us - trace_start),
                rows.duration_ms[i],
                ms(tree.self_us[i]),
                tree.orphan[i],
                tree.cycle[i],
                r.span_count as i64,
                r.error_count as i64,
                r.total_tokens,
                r.cost_usd,
            )
        })
        .collect()
}

/// `analytics.trace_spans(trace_id text, user_id uuid = NULL) returns table(...)`
///
/// The trace as flat rows in depth-first order (`ordinal`), with `depth`, `path` (span ids from the root),
/// parent, offset from the trace start, self time and subtree rollups. For SQL clients and BI tools.
#[pg_extern(stable, parallel_safe)]
pub fn trace_spans(
    trace_id: Option<&str>,
    user_id: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ordinal, i32),
        name!(depth, i32),
        name!(path, Vec<String>),
        name!(span_id, String),
        name!(parent_span_id, Option<String>),
        name!(name, String),
        name!(operation_type, String),
        name!(status, String),
        name!(model, Option<String>),
        name!(start_time, TimestampWithTimeZone),
        name!(end_time, Option<TimestampWithTimeZone>),
        name!(offset_ms, f64),
        name!(duration_ms, Option<f64>),
        name!(self_ms, f64),
        name!(is_orphan, bool),
        name!(in_cycle, bool),
        name!(subtree_span_count, i64),
        name!(subtree_error_count, i64),
        name!(subtree_tokens, i64),
        name!(subtree_cost_usd, f64),
    ),
> {
    let trace_id = required(trace_id, "trace_id");
    let owner = resolve_owner(user_id);
    let out = with_trace_rows(&owner, trace_id, None, |rows| {
        let tree = SpanTree::build(&rows.spans);
        span_rows(&rows, &tree, &tree.preorder, 0)
    });
    TableIterator::new(out)
}

fn find_span(rows: &TraceRows, span_id: &str) -> Option<usize> {
    rows.spans.iter().position(|s| s.span_id == span_id)
}

/// `analytics.span_subtree(trace_id text, span_id text, user_id uuid = NULL) returns table(...)`
///
/// A span and everything below it, in depth-first order, with `depth` counted from that span (0). Same columns
/// as `trace_spans`. No rows when the span does not exist or is not the caller's.
#[pg_extern(stable, parallel_safe)]
pub fn span_subtree(
    trace_id: Option<&str>,
    span_id: Option<&str>,
    user_id: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ordinal, i32),
        name!(depth, i32),
        name!(path, Vec<String>),
        name!(span_id, String),
        name!(parent_span_id, Option<String>),
        name!(name, String),
        name!(operation_type, String),
        name!(status, String),
        name!(model, Option<String>),
        name!(start_time, TimestampWithTimeZone),
        name!(end_time, Option<TimestampWithTimeZone>),
        name!(offset_ms, f64),
        name!(duration_ms, Option<f64>),
        name!(self_ms, f64),
        name!(is_orphan, bool),
        name!(in_cycle, bool),
        name!(subtree_span_count, i64),
        name!(subtree_error_count, i64),
        name!(subtree_tokens, i64),
        name!(subtree_cost_usd, f64),
    ),
> {
    let trace_id = required(trace_id, "trace_id");
    let span_id = required(span_id, "span_id");
    let owner = resolve_owner(user_id);
    let out = with_trace_rows(&owner, trace_id, None, |rows| {
        let tree = SpanTree::build(&rows.spans);
        match find_span(&rows, span_id) {
            Some(i) => span_rows(&rows, &tree, &tree.subtree(i), tree.depth[i]),
            None => Vec::new(),
        }
    });
    TableIterator::new(out)
}

/// `analytics.span_ancestors(trace_id text, span_id text, user_id uuid = NULL) returns table(...)`
///
/// The chain above a span, nearest first: `distance` 1 is its parent, the last row is its root. Cycles were
/// broken when the tree was built, so this always ends.
#[pg_extern(stable, parallel_safe)]
pub fn span_ancestors(
    trace_id: Option<&str>,
    span_id: Option<&str>,
    user_id: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(distance, i32),
        name!(span_id, String),
        name!(parent_span_id, Option<String>),
        name!(name, String),
        name!(operation_type, String),
        name!(status, String),
        name!(depth, i32),
        name!(start_time, TimestampWithTimeZone),
        name!(end_time, Option<TimestampWithTimeZone>),
        name!(duration_ms, Option<f64>),
    ),
> {
    let trace_id = required(trace_id, "trace_id");
    let span_id = required(span_id, "span_id");
    let owner = resolve_owner(user_id);
    let out = with_trace_rows(&owner, trace_id, None, |rows| {
        let tree = SpanTree::build(&rows.spans);
        let Some(i) = find_span(&rows, span_id) else { return Vec::new() };
        tree.ancestors(i)
            .into_iter()
            .enumerate()
            .map(|(k, a)| {
                let s = &rows.spans[a];
                (
                    k as i32 + 1,
                    s.span_id.clone(),
                    s.parent_span_id.clone(),
                    rows.name[a].clone(),
                    rows.operation_type[a].clone(),
                    rows.status[a].clone(),
                    tree.depth[a] as i32,
                    ts(s.start_us),
                    s.end_us.map(ts),
                    rows.duration_ms[a],
                )
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(out)
}

/// `analytics.trace_waterfall(trace_id text, user_id uuid = NULL) returns table(...)`
///
/// One row per span in display order: offset from the trace start, duration and self time in milliseconds,
/// depth, and whether the span is on the critical path (the chain of spans that determined the trace's end).
#[pg_extern(stable, parallel_safe)]
pub fn trace_waterfall(
    trace_id: Option<&str>,
    user_id: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ordinal, i32),
        name!(depth, i32),
        name!(span_id, String),
        name!(parent_span_id, Option<String>),
        name!(name, String),
        name!(operation_type, String),
        name!(status, String),
        name!(model, Option<String>),
        name!(offset_ms, f64),
        name!(duration_ms, f64),
        name!(self_ms, f64),
        name!(on_critical_path, bool),
    ),
> {
    let trace_id = required(trace_id, "trace_id");
    let owner = resolve_owner(user_id);
    let out = with_trace_rows(&owner, trace_id, None, |rows| {
        let tree = SpanTree::build(&rows.spans);
        let trace_start = tree.roots.iter().map(|&r| tree.rollup[r].start_us).min().unwrap_or(0);
        tree.preorder
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let s = &rows.spans[i];
                (
                    k as i32,
                    tree.depth[i] as i32,
                    s.span_id.clone(),
                    s.parent_span_id.clone(),
                    rows.name[i].clone(),
                    rows.operation_type[i].clone(),
                    rows.status[i].clone(),
                    rows.model[i].clone(),
                    ms(s.start_us - trace_start),
                    ms(tree.effective_end_us[i] - s.start_us),
                    ms(tree.self_us[i]),
                    tree.on_critical_path[i],
                )
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(out)
}

/// `analytics.trace_waterfall_svg(trace_id text, max_spans int = 2000, user_id uuid = NULL) returns text`
///
/// The waterfall as a self-contained SVG document: one bar per span on a shared time axis, indented by depth,
/// coloured by operation type, failed spans red, critical path outlined, a tooltip per bar. At most `max_spans`
/// rows (1..10000); NULL when the trace does not exist or is not the caller's.
#[pg_extern(stable, parallel_safe)]
pub fn trace_waterfall_svg(
    trace_id: Option<&str>,
    max_spans: default!(i32, 2000),
    user_id: default!(Option<Uuid>, "NULL"),
) -> Option<String> {
    let trace_id = required(trace_id, "trace_id");
    if !(1..=10_000).contains(&max_spans) {
        AnalyticsError::invalid(format!("max_spans: must be between 1 and 10000, got {max_spans}")).raise();
    }
    let owner = resolve_owner(user_id);
    with_trace_rows(&owner, trace_id, None, |rows| {
        if rows.spans.is_empty() {
            return None;
        }
        let tree = SpanTree::build(&rows.spans);
        let trace_start = tree.roots.iter().map(|&r| tree.rollup[r].start_us).min().unwrap_or(0);
        let trace_end = tree.roots.iter().map(|&r| tree.rollup[r].end_us).max().unwrap_or(0);
        let shown = tree.preorder.len().min(max_spans as usize);
        let bars: Vec<svg::Bar> = tree.preorder[..shown]
            .iter()
            .map(|&i| svg::Bar {
                name: &rows.name[i],
                depth: tree.depth[i],
                offset_us: rows.spans[i].start_us - trace_start,
                duration_us: tree.effective_end_us[i] - rows.spans[i].start_us,
                status: &rows.status[i],
                operation_type: &rows.operation_type[i],
                model: rows.model[i].as_deref(),
                on_critical_path: tree.on_critical_path[i],
            })
            .collect();
        Some(svg::render(trace_id, &bars, trace_end - trace_start, tree.preorder.len() - shown))
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value;

    const A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

    fn as_user(uid: &str) {
        Spi::run(&format!(
            "select set_config('request.jwt.claims', '{{\"sub\":\"{uid}\",\"role\":\"authenticated\"}}', true)"
        ))
        .unwrap();
    }

    fn ingest(spans: &str) -> Value {
        Spi::get_one::<pgrx::JsonB>(&format!("select analytics.ingest_spans($${spans}$$::jsonb)")).unwrap().unwrap().0
    }

    fn tree(trace: &str) -> Value {
        Spi::get_one::<pgrx::JsonB>(&format!("select analytics.get_trace_tree('{trace}')")).unwrap().unwrap().0
    }

    const RAG: &str = r#"[
        {"trace_id":"t1","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat",
         "start_time":"2026-11-20T09:00:01Z","end_time":"2026-11-20T09:00:04Z","model":"gpt-4o",
         "input_tokens":100,"output_tokens":20,"cost_usd":0.01,"input":{"q":"hi"}},
        {"trace_id":"t1","span_id":"root","name":"agent","operation_type":"agent",
         "start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T09:00:05Z"},
        {"trace_id":"t1","span_id":"kb","parent_span_id":"root","name":"search","operation_type":"retriever",
         "status":"error","start_time":"2026-11-20T09:00:00.100Z","end_time":"2026-11-20T09:00:00.900Z"}
    ]"#;

    #[pg_test]
    fn ingest_then_tree_nests_children_and_rolls_up() {
        as_user(A);
        let r = ingest(RAG);
        assert_eq!(r["inserted"], 3);
        assert_eq!(r["traces"], 1);
        let t = tree("t1");
        assert_eq!(t["span_count"], 3);
        assert_eq!(t["truncated"], false);
        let root = &t["roots"][0];
        assert_eq!(root["span_id"], "root");
        assert_eq!(root["operation_type"], "invoke_agent");
        assert_eq!(root["subtree"]["span_count"], 3);
        assert_eq!(root["subtree"]["error_count"], 1);
        assert_eq!(root["subtree"]["total_tokens"], 120);
        assert_eq!(root["subtree"]["duration_ms"].as_f64(), Some(5000.0));
        let kids: Vec<&str> = root["children"].as_array().unwrap().iter().map(|c| c["span_id"].as_str().unwrap()).collect();
        assert_eq!(kids, ["kb", "llm"]);
        assert_eq!(root["children"][1]["input"]["q"], "hi");
        // 5 s minus the children's 0.8 s and 3 s
        assert_eq!(root["self_ms"].as_f64(), Some(1200.0));
    }

    #[pg_test]
    fn resending_a_span_updates_it() {
        as_user(A);
        ingest(r#"[{"trace_id":"t2","span_id":"s","name":"call","start_time":"2026-11-20T09:00:00Z","status":"error","metadata":{"a":1}}]"#);
        let r = ingest(r#"[{"trace_id":"t2","span_id":"s","name":"call","start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T09:00:02Z","metadata":{"b":2}}]"#);
        assert_eq!((r["inserted"].as_i64(), r["updated"].as_i64()), (Some(0), Some(1)));
        let (n, dur, status) = Spi::get_three::<i64, f64, String>(
            "select count(*) over (), duration_ms, status from analytics.llm_traces where trace_id = 't2'",
        )
        .unwrap();
        assert_eq!((n, dur, status.as_deref()), (Some(1), Some(2000.0), Some("error")));
        let meta = Spi::get_one::<pgrx::JsonB>("select metadata from analytics.llm_traces where trace_id = 't2'").unwrap();
        assert_eq!(meta.unwrap().0, serde_json::json!({"a": 1, "b": 2}));
    }

    #[pg_test]
    fn a_bad_element_stores_nothing_and_is_named() {
        as_user(A);
        let bad = r#"[{"trace_id":"t3","span_id":"a","name":"x","start_time":"2026-11-20T09:00:00Z"},
                      {"trace_id":"t3","span_id":"b","name":"x","start_time":"2026-11-20T09:00:00Z","input_tokens":-5}]"#;
        let err = PgTryBuilder::new(|| {
            ingest(bad);
            None
        })
        .catch_others(|e| match e {
            pgrx::pg_sys::panic::CaughtError::PostgresError(r) => Some((r.sql_error_code(), r.message().to_string())),
            _ => None,
        })
        .execute();
        let (code, msg) = err.expect("the batch must be refused");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert_eq!(msg, "spans[1].input_tokens: must not be negative, got -5");
        assert_eq!(Spi::get_one::<i64>("select count(*) from analytics.llm_traces where trace_id = 't3'").unwrap(), Some(0));
    }

    #[pg_test]
    fn cycles_and_orphans_are_flagged_not_fatal() {
        as_user(A);
        // A and B are each other's parent; C's parent never arrived
        ingest(r#"[{"trace_id":"t4","span_id":"A","parent_span_id":"B","name":"a","start_time":"2026-11-20T09:00:00Z"},
                   {"trace_id":"t4","span_id":"B","parent_span_id":"A","name":"b","start_time":"2026-11-20T09:00:01Z"},
                   {"trace_id":"t4","span_id":"C","parent_span_id":"gone","name":"c","start_time":"2026-11-20T09:00:02Z"}]"#);
        let t = tree("t4");
        assert_eq!(t["cycle_count"], 1);
        assert_eq!(t["orphan_count"], 1);
        assert_eq!(t["roots"][0]["span_id"], "A");
        assert_eq!(t["roots"][0]["cycle"], true);
        assert_eq!(t["roots"][0]["children"][0]["span_id"], "B");
        assert_eq!(t["roots"][1]["orphan"], true);
        let n = Spi::get_one::<i64>("select count(*) from analytics.trace_spans('t4')").unwrap();
        assert_eq!(n, Some(3));
    }

    #[pg_test]
    fn tree_caps_depth_and_spans_with_flags() {
        as_user(A);
        let chain: Vec<String> = (0..50)
            .map(|i| {
                let parent = if i == 0 { String::new() } else { format!(r#","parent_span_id":"s{}""#, i - 1) };
                format!(r#"{{"trace_id":"deep","span_id":"s{i}"{parent},"name":"n","start_time":"2026-11-20T09:00:00Z"}}"#)
            })
            .collect();
        ingest(&format!("[{}]", chain.join(",")));
        let t = Spi::get_one::<pgrx::JsonB>("select analytics.get_trace_tree('deep', max_depth => 3)").unwrap().unwrap().0;
        assert_eq!(t["returned_spans"], 4);
        assert_eq!(t["truncated"], true);
        let level3 = &t["roots"][0]["children"][0]["children"][0]["children"][0];
        assert_eq!(level3["span_id"], "s3");
        assert_eq!(level3["children_truncated"], 1);
        assert_eq!(level3["subtree"]["span_count"], 47);
        let t = Spi::get_one::<pgrx::JsonB>("select analytics.get_trace_tree('deep', max_spans => 2, include_io => false)").unwrap().unwrap().0;
        assert_eq!(t["returned_spans"], 2);
    }

    #[pg_test]
    fn another_users_trace_is_simply_absent() {
        as_user(A);
        ingest(RAG);
        as_user("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb");
        // the test runs as superuser, which bypasses RLS: the functions still look only at the caller's own rows
        assert_eq!(Spi::get_one::<pgrx::JsonB>("select analytics.get_trace_tree('t1')").unwrap().map(|j| j.0), None);
        assert_eq!(Spi::get_one::<i64>("select count(*) from analytics.trace_spans('t1')").unwrap(), Some(0));
    }

    #[pg_test]
    fn waterfall_svg_has_a_bar_per_span() {
        as_user(A);
        ingest(RAG);
        let svg = Spi::get_one::<String>("select analytics.trace_waterfall_svg('t1')").unwrap().unwrap();
        assert!(svg.starts_with("<?xml"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert_eq!(Spi::get_one::<String>("select analytics.trace_waterfall_svg('nope')").unwrap(), None);
    }

    #[pg_test]
    fn otlp_request_is_stored_as_a_tree() {
        as_user(A);
        let payload = include_str!("../../tests/fixtures/otlp_agent_run.json");
        let r = Spi::get_one_with_args::<pgrx::JsonB>("select analytics.ingest_otlp($1::jsonb)", &[payload.into()])
            .unwrap()
            .unwrap()
            .0;
        assert_eq!((r["inserted"].as_i64(), r["traces"].as_i64()), (Some(3), Some(1)));
        let t = tree("5b8efff798038103d269b633813fc60c");
        let root = &t["roots"][0];
        assert_eq!(root["name"], "invoke_agent support");
        assert_eq!(root["subtree"]["total_tokens"], 1970);
        assert_eq!(root["subtree"]["error_count"], 1);
        let chat = &root["children"][1];
        assert_eq!((chat["model"].as_str(), chat["provider"].as_str()), (Some("gpt-4o-2024-08-06"), Some("openai")));
        assert_eq!(chat["metadata"]["otel"]["resource"]["service.name"], "support-bot");
        // re-sending the same export updates instead of duplicating
        let r = Spi::get_one_with_args::<pgrx::JsonB>("select analytics.ingest_otlp($1::jsonb)", &[payload.into()])
            .unwrap()
            .unwrap()
            .0;
        assert_eq!((r["inserted"].as_i64(), r["updated"].as_i64()), (Some(0), Some(3)));
    }

    #[pg_test]
    fn subtree_ancestors_and_waterfall() {
        as_user(A);
        ingest(RAG);
        let names: Vec<String> = Spi::connect(|c| {
            c.select("select span_id from analytics.span_subtree('t1', 'root') order by ordinal", None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        });
        assert_eq!(names, ["root", "kb", "llm"]);
        let (d, id) = Spi::get_two::<i32, String>("select distance, span_id from analytics.span_ancestors('t1', 'llm')").unwrap();
        assert_eq!((d, id.as_deref()), (Some(1), Some("root")));
        let crit = Spi::get_one::<String>(
            "select string_agg(span_id, ',' order by ordinal) from analytics.trace_waterfall('t1') where on_critical_path",
        )
        .unwrap();
        // kb (0.1-0.9 s) finishes before llm (1-4 s) starts: both are on the path to the root's end
        assert_eq!(crit.as_deref(), Some("root,kb,llm"));
    }
}

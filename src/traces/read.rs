//! Reading one trace: `get_trace_tree`, `trace_spans`, `span_subtree`, `span_ancestors`, `trace_waterfall`,
//! `trace_waterfall_svg` and the HTML `trace_view`. Rows are read once through SPI; the tree, rollups and critical
//! path are the core's (`analytics_core::traces::tree`), the SVG and the HTML too (`svg`,
//! `analytics_core::views::trace`); the nested jsonb document is written by `tree_jsonb`.
//!
//! SECURITY INVOKER: each function reads `analytics.llm_traces` with the caller's rights, so row-level security
//! decides what it sees. Read functions take an optional `user_id` (default: the caller); under RLS, naming
//! another user's id returns nothing, exactly like an id that does not exist.

use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts, Uuid};

use super::rows::{ms, ts, with_trace_rows, Kind, TraceRows, DOC_COLUMNS, IO_COLUMNS, PG_EPOCH_OFFSET_US};
use super::svg;
use super::tree::SpanTree;
use super::tree_jsonb::build_tree_jsonb;
use crate::bind::{required, AnalyticsError, Raise};
use crate::identity::resolve_owner;
use crate::jsonb::RawJsonb;
use analytics_core::views::trace::{self as trace_html, SpanDisplay};

/// Largest `max_depth` of `get_trace_tree` (Postgres limits the nesting depth of a jsonb document).
pub const MAX_TREE_DEPTH: i32 = 1000;
pub const MAX_TREE_SPANS: i32 = 1_000_000;

/// `analytics._get_trace_tree(trace_id text, max_depth int = 100, max_spans int = 10000, include_io bool = true,
/// user_id uuid = NULL) returns jsonb`, behind the cached PL/pgSQL `analytics.get_trace_tree` (sql/041_cache.sql)
///
/// The trace as a nested document: `{"trace_id", "span_count", "returned_spans", "truncated", "roots": [span...]}`
/// where every span carries its columns, `depth`, `self_ms`, `orphan`, `cycle`, a `subtree` rollup and its
/// `children` (sorted by start time). NULL when the trace does not exist or is not the caller's. The SQL name
/// changed in 0.2.0; the symbol (`get_trace_tree_wrapper`) did not, so 0.1.0's SQL still finds it.
#[pg_extern(name = "_get_trace_tree", stable, parallel_safe)]
pub fn get_trace_tree(
    trace_id: Option<&str>,
    max_depth: default!(Option<i32>, 100),
    max_spans: default!(Option<i32>, 10000),
    include_io: default!(Option<bool>, true),
    user_id: default!(Option<Uuid>, "NULL"),
) -> Option<RawJsonb> {
    let trace_id = required(trace_id, "trace_id");
    let (max_depth, max_spans) = (required(max_depth, "max_depth"), required(max_spans, "max_spans"));
    let include_io = required(include_io, "include_io");
    if !(0..=MAX_TREE_DEPTH).contains(&max_depth) {
        AnalyticsError::invalid(format!("max_depth: must be between 0 and {MAX_TREE_DEPTH}, got {max_depth}")).raise();
    }
    if !(1..=MAX_TREE_SPANS).contains(&max_spans) {
        AnalyticsError::invalid(format!("max_spans: must be between 1 and {MAX_TREE_SPANS}, got {max_spans}")).raise();
    }
    let owner = resolve_owner(user_id);
    let columns: Vec<(&str, &str, Kind)> = DOC_COLUMNS.iter().chain(if include_io { IO_COLUMNS } else { &[] }).copied().collect();
    // the result must outlive the SPI connection: build it in the caller's memory context
    let outer = unsafe { pg_sys::CurrentMemoryContext };
    with_trace_rows(&owner, trace_id, &columns, |rows| {
        if rows.spans.is_empty() {
            return None;
        }
        let tree = SpanTree::build(&rows.spans);
        Some(unsafe {
            PgMemoryContexts::For(outer).switch_to(|_| build_tree_jsonb(trace_id, &rows, &columns, &tree, max_depth, max_spans))
        })
    })
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
    let out = with_trace_rows(&owner, trace_id, &[], |rows| {
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
    let out = with_trace_rows(&owner, trace_id, &[], |rows| {
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
    let out = with_trace_rows(&owner, trace_id, &[], |rows| {
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
    let out = with_trace_rows(&owner, trace_id, &[], |rows| {
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
    max_spans: default!(Option<i32>, 2000),
    user_id: default!(Option<Uuid>, "NULL"),
) -> Option<String> {
    let trace_id = required(trace_id, "trace_id");
    let max_spans = required(max_spans, "max_spans");
    if !(1..=10_000).contains(&max_spans) {
        AnalyticsError::invalid(format!("max_spans: must be between 1 and 10000, got {max_spans}")).raise();
    }
    let owner = resolve_owner(user_id);
    with_trace_rows(&owner, trace_id, &[], |rows| {
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

/// Largest `max_spans` of `trace_view`.
pub const MAX_VIEW_SPANS: i32 = 100_000;

/// The columns `trace_view` shows beyond the tree's, each as text or as an integer (see `trace_view`).
const VIEW_COLUMNS: &[(&str, &str, Kind)] = &[
    ("status_message", "t.status_message", Kind::Text),
    ("level", "t.level", Kind::Text),
    ("provider", "t.provider", Kind::Text),
    ("input_tokens", "t.input_tokens", Kind::Int8),
    ("output_tokens", "t.output_tokens", Kind::Int8),
    ("completion_start_time", "t.completion_start_time", Kind::Timestamp),
    ("input", "t.input::text", Kind::Text),
    ("output", "t.output::text", Kind::Text),
    ("metadata", "t.metadata::text", Kind::Text),
    ("tags", "to_json(t.tags)::text", Kind::Text),
];

/// `analytics._trace_view(trace_id text, max_spans int = 20000, user_id uuid = NULL) returns text`, behind
/// `analytics.trace_view`, which returns it as the domain `analytics."text/html"` (sql/050_views.sql)
///
/// One trace as a self-contained HTML document (`analytics_core::views::trace`). NULL when the trace does not
/// exist or is not the caller's.
#[pg_extern(name = "_trace_view", stable, parallel_safe)]
pub fn trace_view(
    trace_id: Option<&str>,
    max_spans: default!(Option<i32>, 20000),
    user_id: default!(Option<Uuid>, "NULL"),
) -> Option<String> {
    let trace_id = required(trace_id, "trace_id");
    let max_spans = required(max_spans, "max_spans");
    if !(1..=MAX_VIEW_SPANS).contains(&max_spans) {
        AnalyticsError::invalid(format!("max_spans: must be between 1 and {MAX_VIEW_SPANS}, got {max_spans}")).raise();
    }
    let owner = resolve_owner(user_id);
    with_trace_rows(&owner, trace_id, VIEW_COLUMNS, |rows| {
        if rows.spans.is_empty() {
            return None;
        }
        let display: Vec<SpanDisplay> = (0..rows.spans.len())
            .map(|i| SpanDisplay {
                name: rows.name[i].clone(),
                operation_type: rows.operation_type[i].clone(),
                status: rows.status[i].clone(),
                status_message: rows.doc_text(i, 0),
                level: rows.doc_text(i, 1),
                provider: rows.doc_text(i, 2),
                model: rows.model[i].clone(),
                input_tokens: rows.doc_int(i, 3),
                output_tokens: rows.doc_int(i, 4),
                first_token_us: rows.doc_int(i, 5).map(|t| t - rows.spans[i].start_us),
                input: rows.doc_text(i, 6),
                output: rows.doc_text(i, 7),
                metadata: rows.doc_text(i, 8),
                tags: rows.doc_text(i, 9),
            })
            .collect();
        let tree = SpanTree::build(&rows.spans);
        Some(trace_html::render(trace_id, &rows.spans, &display, &tree, PG_EPOCH_OFFSET_US, max_spans as usize))
    })
}

//! The rows of one trace, read once through SPI for every function that reads a trace: the columns the tree
//! needs, display fields, and the document columns of `get_trace_tree` as datums that stay valid while the SPI
//! connection is open (so they can be spliced into jsonb in place). Shared by `read` and `tree_jsonb`.

use pgrx::prelude::*;
use pgrx::pg_sys;

use super::tree::SpanInfo;
use crate::bind::{AnalyticsError, ErrorKind, Raise};

/// The rows of one trace, as the tree needs them, plus display fields. Times are Postgres timestamptz
/// microseconds (since 2000-01-01).
pub(super) struct TraceRows {
    pub(super) spans: Vec<SpanInfo>,
    pub(super) name: Vec<String>,
    pub(super) operation_type: Vec<String>,
    pub(super) status: Vec<String>,
    pub(super) model: Vec<Option<String>>,
    pub(super) duration_ms: Vec<Option<f64>>,
    /// values of the document columns, row-major (`doc_width` per span); valid while the SPI connection is open
    pub(super) doc: Vec<(pg_sys::Datum, bool)>,
    pub(super) doc_width: usize,
}

impl TraceRows {
    /// The value of document column `col` of span `row` as text (a text column, or any column cast to text in
    /// its SQL expression). Valid while the SPI connection is open, like `doc`.
    pub(super) fn doc_text(&self, row: usize, col: usize) -> Option<String> {
        let (d, null) = self.doc[row * self.doc_width + col];
        // SAFETY: the column's SQL expression has type text (the caller's column list says so)
        (!null).then(|| unsafe { text_of(d) })
    }

    /// The value of an int8 or timestamptz document column (by value: the integer, or microseconds).
    pub(super) fn doc_int(&self, row: usize, col: usize) -> Option<i64> {
        let (d, null) = self.doc[row * self.doc_width + col];
        (!null).then(|| d.value() as i64)
    }
}

/// How a column of a span document is written into jsonb.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Text,
    Uuid,
    Timestamp,
    Int8,
    Float8,
    Jsonb,
    TextArray,
}

/// The columns of each span in `get_trace_tree`: (key, SQL expression over `t`, kind). `user_id` is left out
/// (the caller knows it); `input` and `output` follow when asked for.
pub(super) const DOC_COLUMNS: &[(&str, &str, Kind)] = &[
    ("id", "t.id", Kind::Uuid),
    ("trace_id", "t.trace_id", Kind::Text),
    ("span_id", "t.span_id", Kind::Text),
    ("parent_span_id", "t.parent_span_id", Kind::Text),
    ("conversation_id", "t.conversation_id", Kind::Text),
    ("message_id", "t.message_id", Kind::Text),
    ("session_id", "t.session_id", Kind::Text),
    ("end_user_id", "t.end_user_id", Kind::Text),
    ("name", "t.name", Kind::Text),
    ("operation_type", "t.operation_type", Kind::Text),
    ("status", "t.status", Kind::Text),
    ("status_message", "t.status_message", Kind::Text),
    ("level", "t.level", Kind::Text),
    ("start_time", "t.start_time", Kind::Timestamp),
    ("end_time", "t.end_time", Kind::Timestamp),
    ("completion_start_time", "t.completion_start_time", Kind::Timestamp),
    ("duration_ms", "t.duration_ms", Kind::Float8),
    ("provider", "t.provider", Kind::Text),
    ("model", "t.model", Kind::Text),
    ("input_tokens", "t.input_tokens", Kind::Int8),
    ("output_tokens", "t.output_tokens", Kind::Int8),
    ("total_tokens", "t.total_tokens", Kind::Int8),
    ("cache_read_tokens", "t.cache_read_tokens", Kind::Int8),
    ("cache_write_tokens", "t.cache_write_tokens", Kind::Int8),
    ("reasoning_tokens", "t.reasoning_tokens", Kind::Int8),
    ("cost_usd", "t.cost_usd", Kind::Float8),
    ("metadata", "t.metadata", Kind::Jsonb),
    ("tags", "t.tags", Kind::TextArray),
];
pub(super) const IO_COLUMNS: &[(&str, &str, Kind)] = &[("input", "t.input", Kind::Jsonb), ("output", "t.output", Kind::Jsonb)];

/// The columns every reader needs, before the document columns.
const BASE_COLUMNS: &str = "t.span_id, t.parent_span_id, t.start_time, t.end_time, coalesce(t.total_tokens, 0), \
     coalesce(t.cost_usd, 0), t.status, t.name, t.operation_type, t.model, t.duration_ms";
const BASE_WIDTH: usize = 11;

/// The text of a text datum (detoasted if needed; checked UTF-8, converted lossily otherwise). Safety: a valid
/// text datum.
unsafe fn text_of(d: pg_sys::Datum) -> String {
    unsafe {
        let t = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        let bytes = std::slice::from_raw_parts(pgrx::vardata_any(t) as *const u8, pgrx::varsize_any_exhdr(t));
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// The OID of `analytics.llm_traces` (syscache lookups by name, no query); InvalidOid when there is none.
pub(super) fn span_table() -> pg_sys::Oid {
    // SAFETY: catalog cache lookups by name; a missing schema or table gives InvalidOid
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"analytics".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        pg_sys::get_relname_relid(c"llm_traces".as_ptr(), schema)
    }
}

/// Whether `analytics.llm_traces` has the column (syscache lookups, no query): 0.1.0's table lacks the columns 0.2.0
/// added, and a database not yet updated runs this library through the 0.1.0 symbols.
fn table_has_column(column: &std::ffi::CStr) -> bool {
    let table = span_table();
    // SAFETY: a catalog cache lookup by name; a missing column gives 0
    table != pg_sys::InvalidOid && unsafe { pg_sys::get_attnum(table, column.as_ptr()) } != 0
}

/// Loads the spans of `trace_id` owned by `owner` and hands them to `f` while the SPI connection is still open
/// (so document values can be spliced into jsonb in place). Reads the SPI result directly: one
/// `heap_deform_tuple` per row, no per-value conversions beyond what the tree needs.
pub(super) fn with_trace_rows<R>(owner: &str, trace_id: &str, doc: &[(&str, &str, Kind)], f: impl FnOnce(TraceRows) -> R) -> R {
    // a database still at 0.1.0 runs get_trace_tree through the same symbol, over a table without end_user_id
    let has_end_user = !doc.iter().any(|(key, _, _)| *key == "end_user_id") || table_has_column(c"end_user_id");
    let doc_sql: String = doc
        .iter()
        .map(|(key, expr, _)| if *key == "end_user_id" && !has_end_user { ", null::text".to_string() } else { format!(", {expr}") })
        .collect();
    let query = format!(
        "select {BASE_COLUMNS}{doc_sql} from analytics.llm_traces t where t.user_id = $1::uuid and t.trace_id = $2"
    );
    Spi::connect(|client| {
        let table = client.select(&query, None, &[owner.into(), trace_id.into()]).unwrap_or_else(|e| {
            AnalyticsError::new(ErrorKind::InvalidParameter, format!("trace_id: {e}")).raise()
        });
        let n = table.len();
        let width = BASE_WIDTH + doc.len();
        let mut t = TraceRows {
            spans: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            operation_type: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            duration_ms: Vec::with_capacity(n),
            doc: Vec::with_capacity(n * doc.len()),
            doc_width: doc.len(),
        };
        let mut values = vec![pg_sys::Datum::from(0usize); width];
        let mut nulls = vec![false; width];
        // SAFETY: `table` keeps the SPI result alive; the query's column types are fixed by BASE_COLUMNS and `doc`.
        unsafe {
            let tt = pg_sys::SPI_tuptable;
            let tuples: &[pg_sys::HeapTuple] = if n == 0 { &[] } else { std::slice::from_raw_parts((*tt).vals, n) };
            for &tuple in tuples {
                pg_sys::heap_deform_tuple(tuple, (*tt).tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
                let text = |k: usize| (!nulls[k]).then(|| text_of(values[k]));
                let int = |k: usize| (!nulls[k]).then(|| values[k].value() as i64);
                let float = |k: usize| (!nulls[k]).then(|| f64::from_bits(values[k].value() as u64));
                let status = text(6).unwrap_or_default();
                t.spans.push(SpanInfo {
                    span_id: text(0).unwrap_or_default(),
                    parent_span_id: text(1),
                    start_us: int(2).unwrap_or(0),
                    end_us: int(3),
                    total_tokens: int(4).unwrap_or(0),
                    cost_usd: float(5).unwrap_or(0.0),
                    is_error: status == "error",
                });
                t.status.push(status);
                t.name.push(text(7).unwrap_or_default());
                t.operation_type.push(text(8).unwrap_or_default());
                t.model.push(text(9));
                t.duration_ms.push(float(10));
                t.doc.extend((BASE_WIDTH..width).map(|k| (values[k], nulls[k])));
            }
        }
        let out = f(t);
        drop(table);
        out
    })
}

pub(super) fn ts(us: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(us).expect("timestamp from the table is in range")
}

pub(super) fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Microseconds from the Unix epoch to Postgres' (2000-01-01 UTC).
pub(super) const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// RFC 3339 text of a Postgres timestamptz (microseconds since 2000-01-01 UTC).
pub(super) fn ts_text(pg_us: i64) -> String {
    analytics_core::textfmt::rfc3339_micros(pg_us.saturating_add(PG_EPOCH_OFFSET_US))
}

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
use crate::jsonb::{varlena_array, JsonbBuilder, JsonbText, RawDatum, RawJsonb};

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

/// One row per span from typed arrays (no JSON or timestamp text is parsed).
const INSERT_SPANS: &str = r#"
    insert into analytics.llm_traces as t (
        user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type,
        status, status_message, level, start_time, end_time, completion_start_time, provider, model,
        input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
        cost_usd, input, output, metadata, tags)
    select r.user_id, r.trace_id, r.span_id, r.parent_span_id, r.conversation_id, r.message_id, r.session_id,
           r.name, coalesce(r.operation_type, 'unknown'), coalesce(r.status, 'unset'), r.status_message,
           coalesce(r.level, 'default'), r.start_time, r.end_time, r.completion_start_time, r.provider, r.model,
           r.input_tokens, r.output_tokens, r.total_tokens, r.cache_read_tokens, r.cache_write_tokens,
           r.reasoning_tokens, r.cost_usd, r.input, r.output, coalesce(r.metadata, '{}'::jsonb),
           coalesce(r.tags::text[], '{}'::text[])
    from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[],
                $15::timestamptz[], $16::text[], $17::text[], $18::bigint[], $19::bigint[], $20::bigint[],
                $21::bigint[], $22::bigint[], $23::bigint[], $24::double precision[], $25::jsonb[], $26::jsonb[],
                $27::jsonb[], $28::text[])
         as r(user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name,
              operation_type, status, status_message, level, start_time, end_time, completion_start_time, provider,
              model, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens,
              reasoning_tokens, cost_usd, input, output, metadata, tags)
"#;

/// ...merged into existing rows: fields sent win, fields not sent keep their value, metadata objects merge.
const ON_CONFLICT_MERGE: &str = r#"
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
"#;

/// Does any (owner, trace) of the batch already have spans? If not, no span can conflict (barring a concurrent
/// insert of the same spans, which the fast path detects) and a plain INSERT does.
const ANY_TRACE_STORED: &str = r#"
select exists (select 1 from unnest($1::uuid[], $2::text[]) as k(user_id, trace_id)
               join analytics.llm_traces s on s.user_id = k.user_id and s.trace_id = k.trace_id)
"#;

/// Runs a plain INSERT in a subtransaction; None when it hit a unique violation (another session stored one of
/// the same spans meanwhile), after rolling the subtransaction back. Any other error propagates. This is the
/// pattern PL/pgSQL uses for its exception blocks.
fn try_plain_insert(client: &mut pgrx::spi::SpiClient<'_>, sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Option<u64> {
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        let restore = move || {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        };
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
            client.update(sql, None, args).unwrap_or_else(|e| AnalyticsError::invalid(format!("spans: {e}")).raise());
            let stored = pg_sys::SPI_processed;
            pg_sys::ReleaseCurrentSubTransaction();
            restore();
            Some(stored)
        }))
        .catch_when(PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION, move |_| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            restore();
            None
        })
        .catch_others(move |e| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            restore();
            e.rethrow()
        })
        .execute()
    }
}

/// A Postgres array literal ('{"a","b\\"c"}') of tags, cast to text[] by the insert.
fn tags_literal(tags: &[String]) -> String {
    let quoted: Vec<String> =
        tags.iter().map(|t| format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", quoted.join(","))
}

/// A uuid from its canonical text (validated by ingest), or None.
fn uuid_from_text(s: &str) -> Option<Uuid> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let mut bytes = [0u8; 16];
    for (k, pair) in hex.chunks(2).enumerate().take(16) {
        bytes[k] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    (hex.len() == 32).then(|| Uuid::from_bytes(bytes))
}

fn pg_timestamp(t: ingest::Timestamp) -> TimestampWithTimeZone {
    const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
    TimestampWithTimeZone::try_from(t.0 - PG_EPOCH_OFFSET_US).expect("validated timestamps are in range")
}

/// The owners' model prices, when some span of the batch lacks a cost but has a model (one small query).
fn load_prices(spans: &[ingest::Span]) -> Vec<super::pricing::Price> {
    let owners: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| s.cost_usd.is_none() && s.model.is_some())
        .filter_map(|s| s.user_id.as_deref())
        .collect();
    if owners.is_empty() {
        return Vec::new();
    }
    let owners: Vec<Option<Uuid>> = owners.into_iter().map(uuid_from_text).collect();
    const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
    Spi::connect(|client| {
        let rows = client.select(
            "select user_id::text, model, provider, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, \
                    cache_write_usd_per_mtok, effective_from from analytics.model_prices where user_id = any($1)",
            None,
            &[owners.into()],
        )?;
        rows.map(|r| {
            let from: Option<TimestampWithTimeZone> = r.get(8)?;
            Ok(super::pricing::Price {
                user_id: r.get(1)?.unwrap_or_default(),
                model: r.get(2)?.unwrap_or_default(),
                provider: r.get(3)?,
                input_usd_per_mtok: r.get(4)?.unwrap_or(0.0),
                output_usd_per_mtok: r.get(5)?.unwrap_or(0.0),
                cache_read_usd_per_mtok: r.get(6)?,
                cache_write_usd_per_mtok: r.get(7)?,
                effective_from_us: match from {
                    Some(t) if t.is_infinity() => i64::MAX, // never
                    Some(t) if t.is_finite() => pg_sys::TimestampTz::from(t) + PG_EPOCH_OFFSET_US,
                    _ => i64::MIN, // -infinity: always
                },
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| AnalyticsError::invalid(format!("model_prices: {e}")).raise())
}

/// Stores a parsed batch with one INSERT ... ON CONFLICT DO UPDATE over typed arrays; returns the summary.
/// Blobs that point into a jsonb argument must still be alive.
pub(crate) fn store_batch(mut batch: ingest::Batch) -> pgrx::JsonB {
    let prices = load_prices(&batch.spans);
    super::pricing::fill_costs(&mut batch.spans, &prices);
    let spans = &batch.spans;
    let traces: std::collections::HashSet<(&str, &str)> =
        spans.iter().map(|s| (s.user_id.as_deref().unwrap_or_default(), s.trace_id.as_str())).collect();
    let mut stored = 0u64;
    if !spans.is_empty() {
        // text and jsonb columns are written straight into array memory; the insert unnests them
        // A column that is NULL in every span is passed as a NULL array: unnest pads it with NULLs.
        let array_arg = |oid: pg_sys::Oid, array_oid: pg_sys::Oid, items: Vec<Option<&[u8]>>| unsafe {
            if items.iter().all(Option::is_none) {
                pgrx::datum::DatumWithOid::null_oid(array_oid)
            } else {
                pgrx::datum::DatumWithOid::new(RawDatum(varlena_array(oid, &items)), array_oid)
            }
        };
        fn values<'a, T: IntoDatum>(items: Vec<Option<T>>) -> pgrx::datum::DatumWithOid<'a> {
            if items.iter().all(Option::is_none) {
                pgrx::datum::DatumWithOid::null::<Vec<Option<T>>>()
            } else {
                items.into()
            }
        }
        let texts = |f: fn(&ingest::Span) -> Option<&str>| {
            array_arg(pg_sys::TEXTOID, pg_sys::TEXTARRAYOID, spans.iter().map(|s| f(s).map(str::as_bytes)).collect())
        };
        let times = |f: fn(&ingest::Span) -> Option<ingest::Timestamp>| values(spans.iter().map(|s| f(s).map(pg_timestamp)).collect());
        let counts = |f: fn(&ingest::Span) -> Option<i64>| values(spans.iter().map(f).collect());
        let owners: Vec<Option<Uuid>> = spans.iter().map(|s| s.user_id.as_deref().and_then(uuid_from_text)).collect();
        // jsonb blobs: a binary container is copied as is; text (OpenTelemetry) and merged metadata become jsonb first
        let blob_bytes = |b: &ingest::Blob| -> &[u8] {
            unsafe {
                match b {
                    ingest::Blob::Binary { address, len, .. } => std::slice::from_raw_parts(*address as *const u8, *len),
                    other => {
                        let d = super::jsonb_spans::blob_datum(other).cast_mut_ptr::<pg_sys::varlena>();
                        std::slice::from_raw_parts(pgrx::vardata_any(d) as *const u8, pgrx::varsize_any_exhdr(d))
                    }
                }
            }
        };
        let blobs = |f: fn(&ingest::Span) -> Option<&ingest::Blob>| {
            array_arg(pg_sys::JSONBOID, pg_sys::JSONBARRAYOID, spans.iter().map(|s| f(s).map(blob_bytes)).collect())
        };
        let tag_literals: Vec<Option<String>> = spans.iter().map(|s| s.tags.as_deref().map(tags_literal)).collect();
        let args = [
            owners.into(),
            texts(|s| Some(s.trace_id.as_str())),
            texts(|s| Some(s.span_id.as_str())),
            texts(|s| s.parent_span_id.as_deref()),
            texts(|s| s.conversation_id.as_deref()),
            texts(|s| s.message_id.as_deref()),
            texts(|s| s.session_id.as_deref()),
            texts(|s| Some(s.name.as_str())),
            texts(|s| s.operation_type),
            texts(|s| s.status),
            texts(|s| s.status_message.as_deref()),
            texts(|s| s.level),
            times(|s| Some(s.start_time)),
            times(|s| s.end_time),
            times(|s| s.completion_start_time),
            texts(|s| s.provider.as_deref()),
            texts(|s| s.model.as_deref()),
            counts(|s| s.input_tokens),
            counts(|s| s.output_tokens),
            counts(|s| s.total_tokens),
            counts(|s| s.cache_read_tokens),
            counts(|s| s.cache_write_tokens),
            counts(|s| s.reasoning_tokens),
            values(spans.iter().map(|s| s.cost_usd).collect::<Vec<Option<f64>>>()),
            blobs(|s| s.input.as_ref()),
            blobs(|s| s.output.as_ref()),
            blobs(|s| s.metadata.as_ref()),
            array_arg(pg_sys::TEXTOID, pg_sys::TEXTARRAYOID, tag_literals.iter().map(|t| t.as_deref().map(str::as_bytes)).collect()),
        ];
        let pair_owners: Vec<Option<Uuid>> = traces.iter().map(|(u, _)| uuid_from_text(u)).collect();
        let pair_traces: Vec<Option<String>> = traces.iter().map(|(_, t)| Some(t.to_string())).collect();
        // every span is inserted or updated: a violated rule raises an error and the whole batch is rolled back
        stored = Spi::connect_mut(|client| {
            let seen = client.select(ANY_TRACE_STORED, Some(1), &[pair_owners.into(), pair_traces.into()])?.first().get_one::<bool>()?;
            if seen == Some(false) {
                // new traces only: a plain INSERT, without ON CONFLICT's per-row speculative insertion
                if let Some(n) = try_plain_insert(client, INSERT_SPANS, &args) {
                    return Ok(n);
                }
            }
            let upsert = format!("{INSERT_SPANS}{ON_CONFLICT_MERGE}");
            client.update(upsert.as_str(), None, &args).map(|_| unsafe { pg_sys::SPI_processed })
        })
        .unwrap_or_else(|e: pgrx::spi::Error| AnalyticsError::new(ErrorKind::InvalidParameter, format!("spans: {e}")).raise());
    }
    pgrx::JsonB(json!({
        "received": batch.received,
        "stored": stored,
        "merged_duplicates": batch.merged_duplicates,
        "traces": traces.len(),
    }))
}

/// `analytics.ingest_spans(spans jsonb) returns jsonb`
///
/// Stores a batch of spans (a JSON array of span objects, up to 100,000) in one statement: all or nothing.
/// Re-sending a span (same owner, trace_id, span_id) updates it; children may arrive before their parents.
/// Returns `{"received", "stored", "merged_duplicates", "traces"}` (`stored`: rows inserted or updated). The argument is read
/// in its binary form (see `jsonb_spans`): no JSON text is produced or parsed.
#[pg_extern(volatile, parallel_unsafe)]
pub fn ingest_spans(spans: Option<RawJsonb>) -> pgrx::JsonB {
    let datum = required(spans, "spans").into_datum().expect("a jsonb datum");
    let caller = caller_id();
    // SAFETY: the argument (and its detoasted copy) lives until this function returns, after the insert
    let raw = unsafe { super::jsonb_spans::raw_spans(datum) }.or_raise();
    let batch = ingest::build_batch(raw.into_iter().enumerate().map(|(i, r)| (ingest::SpanAt(i), r)), caller.as_deref()).or_raise();
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
    /// values of the document columns, row-major (`doc_width` per span); valid while the SPI connection is open
    doc: Vec<(pg_sys::Datum, bool)>,
    doc_width: usize,
}

/// How a column of a span document is written into jsonb.
#[derive(Clone, Copy)]
enum Kind {
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
const DOC_COLUMNS: &[(&str, &str, Kind)] = &[
    ("id", "t.id", Kind::Uuid),
    ("trace_id", "t.trace_id", Kind::Text),
    ("span_id", "t.span_id", Kind::Text),
    ("parent_span_id", "t.parent_span_id", Kind::Text),
    ("conversation_id", "t.conversation_id", Kind::Text),
    ("message_id", "t.message_id", Kind::Text),
    ("session_id", "t.session_id", Kind::Text),
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
const IO_COLUMNS: &[(&str, &str, Kind)] = &[("input", "t.input", Kind::Jsonb), ("output", "t.output", Kind::Jsonb)];

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

/// Loads the spans of `trace_id` owned by `owner` and hands them to `f` while the SPI connection is still open
/// (so document values can be spliced into jsonb in place). Reads the SPI result directly: one
/// `heap_deform_tuple` per row, no per-value conversions beyond what the tree needs.
fn with_trace_rows<R>(owner: &str, trace_id: &str, doc: &[(&str, &str, Kind)], f: impl FnOnce(TraceRows) -> R) -> R {
    let doc_sql: String = doc.iter().map(|(_, expr, _)| format!(", {expr}")).collect();
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

/// Writes one document column of span `i` (key and value) into the object being built.
///
/// # Safety
/// The datums of `rows.doc` must still be valid (the SPI connection open).
unsafe fn push_doc_column(b: &mut JsonbBuilder, key: &'static str, kind: Kind, value: (pg_sys::Datum, bool)) {
    b.key(key);
    let (d, is_null) = value;
    if is_null {
        return b.null();
    }
    unsafe {
        match kind {
            Kind::Text => b.text(d),
            Kind::Jsonb => b.jsonb(d),
            Kind::Int8 => b.i64(d.value() as i64),
            Kind::Float8 => b.f64(f64::from_bits(d.value() as u64)),
            Kind::Timestamp => b.string(&ts_text(d.value() as i64)),
            Kind::TextArray => {
                let array = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
                let (mut elems, mut elem_nulls, mut count) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
                pg_sys::deconstruct_array(array, pg_sys::TEXTOID, -1, false, b'i' as std::ffi::c_char, &mut elems, &mut elem_nulls, &mut count);
                b.begin_array();
                for k in 0..count as usize {
                    if *elem_nulls.add(k) {
                        b.null();
                    } else {
                        b.text(*elems.add(k));
                    }
                }
                b.end_array();
            }
            Kind::Uuid => {
                let bytes = std::slice::from_raw_parts(d.cast_mut_ptr::<u8>() as *const u8, 16);
                b.string(&crate::textfmt::uuid_text(bytes));
            }
        }
    }
}

/// A key of a span object in the tree document.
#[derive(Clone, Copy)]
enum Field {
    Doc(usize),
    Depth,
    SelfMs,
    Orphan,
    Cycle,
    OnCriticalPath,
    Subtree,
    ChildrenTruncated,
    Children,
}

/// jsonb's own key order: shorter keys first, then bytewise. Postgres sorts every object's keys into this order
/// when the object is closed; its sort returns at once on presorted input, so we emit keys already in order.
fn jsonb_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// The keys of a span object in jsonb order, split at "children": the keys before it, and those after it (which are
/// written when the span's children array has been closed).
fn span_fields(columns: &[(&'static str, &str, Kind)]) -> (Vec<Field>, Vec<Field>) {
    let key = |f: &Field| match *f {
        Field::Doc(c) => columns[c].0,
        Field::Depth => "depth",
        Field::SelfMs => "self_ms",
        Field::Orphan => "orphan",
        Field::Cycle => "cycle",
        Field::OnCriticalPath => "on_critical_path",
        Field::Subtree => "subtree",
        Field::ChildrenTruncated => "children_truncated",
        Field::Children => "children",
    };
    let mut fields: Vec<Field> = (0..columns.len()).map(Field::Doc).collect();
    fields.extend([
        Field::Depth,
        Field::SelfMs,
        Field::Orphan,
        Field::Cycle,
        Field::OnCriticalPath,
        Field::Subtree,
        Field::ChildrenTruncated,
        Field::Children,
    ]);
    fields.sort_by(|a, b| jsonb_key_order(key(a), key(b)));
    let at = fields.iter().position(|f| matches!(f, Field::Children)).expect("children is a field");
    let after = fields.split_off(at + 1);
    fields.pop(); // "children" itself is written by the walk
    (fields, after)
}

fn build_tree_jsonb(
    trace_id: &str,
    rows: &TraceRows,
    columns: &[(&'static str, &str, Kind)],
    tree: &SpanTree,
    max_depth: i32,
    max_spans: i32,
) -> RawJsonb {
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
    let (before_children, after_children) = span_fields(columns);

    let push_field = |b: &mut JsonbBuilder, i: usize, field: Field| match field {
        Field::Doc(c) => {
            let (key, _, kind) = columns[c];
            // SAFETY: called inside with_trace_rows, while the row datums are alive
            unsafe { push_doc_column(b, key, kind, rows.doc[i * rows.doc_width + c]) }
        }
        Field::Depth => b.key_i64("depth", tree.depth[i] as i64),
        Field::SelfMs => b.key_f64("self_ms", ms(tree.self_us[i])),
        Field::Orphan => b.key_bool("orphan", tree.orphan[i]),
        Field::Cycle => b.key_bool("cycle", tree.cycle[i]),
        Field::OnCriticalPath => b.key_bool("on_critical_path", tree.on_critical_path[i]),
        Field::Subtree => {
            let r = tree.rollup[i];
            b.key("subtree");
            b.begin_object(); // keys in jsonb order
            b.key_f64("cost_usd", r.cost_usd);
            b.key_i64("span_count", r.span_count as i64);
            b.key_f64("duration_ms", ms(r.duration_us()));
            b.key_i64("error_count", r.error_count as i64);
            b.key_i64("total_tokens", r.total_tokens);
            b.end_object();
        }
        Field::ChildrenTruncated => {
            let hidden = tree.children[i].iter().filter(|&&c| !included[c]).count();
            b.key_i64("children_truncated", hidden as i64);
        }
        Field::Children => unreachable!("children are written by the walk"),
    };
    let close = |b: &mut JsonbBuilder, i: usize| {
        b.end_array();
        for &f in &after_children {
            push_field(b, i, f);
        }
        b.end_object();
    };

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
            close(&mut b, top);
        }
        b.begin_object();
        for &f in &before_children {
            push_field(&mut b, i, f);
        }
        b.key("children");
        b.begin_array();
        open.push(i);
    }
    while let Some(top) = open.pop() {
        close(&mut b, top);
    }
    b.end_array();
    b.end_object();
    b.finish()
}

/// RFC 3339 text of a Postgres timestamptz (microseconds since 2000-01-01 UTC).
fn ts_text(pg_us: i64) -> String {
    const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
    crate::textfmt::rfc3339_micros(pg_us + PG_EPOCH_OFFSET_US)
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
    max_spans: default!(i32, 2000),
    user_id: default!(Option<Uuid>, "NULL"),
) -> Option<String> {
    let trace_id = required(trace_id, "trace_id");
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

/// `analytics.search_spans(trace_id, conversation_id, message_id, session_id, operation_type, status, model,
/// from_time, to_time, min_duration_ms, tag, after, "limit" = 50, "offset" = 0, user_id) returns setof llm_traces`
///
/// Spans matching every filter given, newest first (start_time desc, id desc), with keyset pagination (`after` =
/// `'<start_time>,<id>'` of the last row of the previous page) or `"offset"`. Each combination of filters (with its
/// page size and offset) is planned once per session and the plan kept (SPI_keepplan): under row-level security
/// planning a query also plans its policies, and on small API queries re-planning was most of what RLS cost.
/// Postgres re-plans kept plans by itself when the role or the schema changes.
#[pg_extern(stable, parallel_safe, requires = ["traces_tables"])]
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
    let show = |v: Option<i32>| v.map_or("NULL".to_string(), |v| v.to_string());
    let limit = limit.filter(|l| (1..=1000).contains(l)).unwrap_or_else(|| invalid(format!("limit: must be between 1 and 1000, got {}", show(limit))));
    let offset = offset.filter(|o| *o >= 0).unwrap_or_else(|| invalid(format!("offset: must be 0 or more, got {}", show(offset))));
    if let Some(op) = operation_type {
        if !ingest::OPERATION_TYPES.contains(&op) {
            invalid::<()>(format!("operation_type: unknown value \"{op}\""));
        }
    }
    if let Some(st) = status {
        if !ingest::STATUSES.contains(&st) {
            invalid::<()>(format!("status: unknown value \"{st}\"; allowed: ok, error, unset"));
        }
    }
    let cursor = after.map(|a| {
        let Some((at, id)) = a.split_once(',') else {
            invalid(format!("after: must be \"<start_time>,<id>\" of the last row of the previous page, got \"{a}\""))
        };
        let time = pg_timestamptz(at).unwrap_or_else(|| invalid(format!("after: \"{a}\" does not start with a timestamp")));
        if !ingest::is_uuid(id.trim()) {
            invalid::<()>(format!("after: must be \"<start_time>,<id>\" with the uuid id of the last span, got \"{a}\""));
        }
        (time, id.trim().to_string())
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
    if let Some((time, id)) = cursor {
        q.param("(s.start_time, s.id) < (?, ?::uuid)", vec![time.into(), id.into()]);
    }
    let where_clause = if q.preds.is_empty() { "true".to_string() } else { q.preds.join(" and ") };
    let query = format!(
        "select s from analytics.llm_traces s where {where_clause} order by s.start_time desc, s.id desc limit {limit} offset {offset}"
    );
    let SearchQuery { args, types, .. } = q;

    let rows = Spi::connect(|client| {
        SEARCH_PLANS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if !cache.contains_key(&query) {
                if cache.len() >= MAX_KEPT_SEARCH_PLANS {
                    cache.clear();
                }
                let plan = client.prepare(query.as_str(), &types).unwrap_or_else(|e| invalid(format!("search_spans: {e}")));
                cache.insert(query.clone(), plan.keep());
            }
            let plan = &cache[&query];
            let table = client.select(plan, None, &args).unwrap_or_else(|e| invalid(format!("search_spans: {e}")));
            table
                .map(|row| row.get::<pgrx::composite_type!('static, "llm_traces")>(1).expect("a span row").expect("not null"))
                .collect::<Vec<_>>()
        })
    });
    SetOfIterator::new(rows)
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
        assert_eq!(r["stored"], 3);
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
        assert_eq!(r["stored"].as_i64(), Some(1));
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
    fn cost_is_computed_from_the_owners_prices_when_not_sent() {
        as_user(A);
        Spi::run("insert into analytics.model_prices (model, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok)
                  values ('gpt-4o*', 2.5, 10.0, 1.25)").unwrap();
        // another owner's price for the same model must not be used
        Spi::run("insert into analytics.model_prices (user_id, model, input_usd_per_mtok, output_usd_per_mtok)
                  values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'gpt-4o', 1000, 1000)").unwrap();
        ingest(r#"[{"trace_id":"cost","span_id":"a","name":"n","start_time":"2026-11-20T09:00:00Z","model":"gpt-4o-2024-08-06",
                    "input_tokens":1000,"cache_read_tokens":400,"output_tokens":100},
                   {"trace_id":"cost","span_id":"b","name":"n","start_time":"2026-11-20T09:00:00Z","model":"gpt-4o","input_tokens":10,"cost_usd":0.5},
                   {"trace_id":"cost","span_id":"c","name":"n","start_time":"2026-11-20T09:00:00Z","model":"llama-3","input_tokens":10}]"#);
        let costs = Spi::get_one::<String>(
            "select string_agg(span_id || '=' || coalesce(cost_usd::text, 'null'), ' ' order by span_id) from analytics.llm_traces where trace_id = 'cost'",
        )
        .unwrap();
        // a: (600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6 = 0.003
        assert_eq!(costs.as_deref(), Some("a=0.003 b=0.5 c=null"));
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
        assert_eq!((r["stored"].as_i64(), r["traces"].as_i64()), (Some(3), Some(1)));
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
        assert_eq!(r["stored"].as_i64(), Some(3));
        let n = Spi::get_one::<i64>("select count(*) from analytics.llm_traces where trace_id = '5b8efff798038103d269b633813fc60c'");
        assert_eq!(n.unwrap(), Some(3));
    }

    #[pg_test]
    fn record_span_returns_the_stored_row() {
        as_user(A);
        let (span, total, owner) = Spi::get_three::<String, i64, String>(
            "select span_id, total_tokens, user_id::text from analytics.record_span(trace_id => 'r', span_id => 's', name => 'n',
                start_time => '2026-11-20 09:00+00', input_tokens => 7, output_tokens => 3)",
        )
        .unwrap();
        assert_eq!((span.as_deref(), total, owner.as_deref()), (Some("s"), Some(10), Some(A)));
    }

    #[pg_test]
    fn search_spans_filters_and_pages_with_a_cursor() {
        as_user(A);
        ingest(RAG);
        let ids = |q: &str| -> Vec<String> {
            Spi::connect(|c| c.select(q, None, &[]).unwrap().map(|r| r.get::<String>(1).unwrap().unwrap()).collect())
        };
        assert_eq!(ids("select span_id from analytics.search_spans(trace_id => 't1')"), ["llm", "kb", "root"]);
        assert_eq!(ids("select span_id from analytics.search_spans(status => 'error')"), ["kb"]);
        assert_eq!(ids("select span_id from analytics.search_spans(model => 'gpt-4o', min_duration_ms => 1000)"), ["llm"]);
        let cursor = Spi::get_one::<String>(
            "select to_char(start_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || ',' || id
             from analytics.search_spans(trace_id => 't1', \"limit\" => 1)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ids(&format!("select span_id from analytics.search_spans(trace_id => 't1', after => '{cursor}')")), ["kb", "root"]);
        // the same filters twice use the kept plan; the results do not change
        assert_eq!(ids("select span_id from analytics.search_spans(status => 'error')"), ["kb"]);
    }

    #[pg_test(error = "limit: must be between 1 and 1000, got 0")]
    fn search_spans_rejects_a_bad_limit() {
        as_user(A);
        Spi::run("select * from analytics.search_spans(\"limit\" => 0)").unwrap();
    }

    #[pg_test]
    fn search_traces_lists_traces_with_rollups() {
        as_user(A);
        ingest(RAG);
        let (trace, spans, errors) = Spi::get_three::<String, i64, i64>(
            "select trace_id, span_count, error_count from analytics.search_traces(operation_type => 'chat')",
        )
        .unwrap();
        assert_eq!((trace.as_deref(), spans, errors), (Some("t1"), Some(3), Some(1)));
    }

    #[pg_test]
    fn trace_metrics_counts_and_exact_percentiles() {
        as_user(A);
        ingest(RAG);
        let (n, p50, errors) = Spi::get_three::<i64, f64, i64>(
            "select request_count, latency_p50_ms, error_count from analytics.trace_metrics('1 day', '2026-11-20', '2026-11-21')",
        )
        .unwrap();
        // durations 5000, 800, 3000 ms: the exact median is 3000
        assert_eq!((n, p50, errors), (Some(3), Some(3000.0), Some(1)));
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

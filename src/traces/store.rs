//! Writing spans: `analytics.ingest_spans` and `analytics.ingest_otlp` (and, through them, the PL/pgSQL
//! `analytics.record_span`). Validation and batch building are the core's (`analytics_core::traces::ingest`,
//! `otlp`, `pricing`); this module reads the argument, loads prices and writes the batch in one statement (under
//! the locks of its traces: one row per span across the partitions of `llm_traces`).
//!
//! SECURITY INVOKER: row-level security decides which owners the caller may write for.

use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};
use serde_json::json;

use super::rows::PG_EPOCH_OFFSET_US;
use super::{ingest, otlp};
use crate::bind::{AnalyticsError, ErrorKind, OrRaise, Raise};
use crate::identity::caller_id;
use crate::jsonb::{varlena_array, JsonbText, RawDatum, RawJsonb};

// ---- ingest ---------------------------------------------------------------------------------------------------

/// The batch as rows, from typed arrays (no JSON or timestamp text is parsed); alias r.
macro_rules! span_rows {
    () => {
        span_rows!("", "", "")
    };
    // with one more column: its select expression, its array argument and its name (each after a comma)
    ($select:literal, $argument:literal, $column:literal) => {
        concat!(
            r#"
    select r.user_id, r.trace_id, r.span_id, r.parent_span_id, r.conversation_id, r.message_id, r.session_id,
           r.name, coalesce(r.operation_type, 'unknown') as operation_type, coalesce(r.status, 'unset') as status,
           r.status_message, coalesce(r.level, 'default') as level, r.start_time, r.end_time, r.completion_start_time,
           r.provider, r.model, r.input_tokens, r.output_tokens, r.total_tokens, r.cache_read_tokens,
           r.cache_write_tokens, r.reasoning_tokens, r.cost_usd, r.input, r.output,
           coalesce(r.metadata, '{}'::jsonb) as metadata, coalesce(r.tags::text[], '{}'::text[]) as tags"#,
            $select,
            r#"
    from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[],
                $15::timestamptz[], $16::text[], $17::text[], $18::bigint[], $19::bigint[], $20::bigint[],
                $21::bigint[], $22::bigint[], $23::bigint[], $24::double precision[], $25::jsonb[], $26::jsonb[],
                $27::jsonb[], $28::text[]"#,
            $argument,
            r#")
         as r(user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name,
              operation_type, status, status_message, level, start_time, end_time, completion_start_time, provider,
              model, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens,
              reasoning_tokens, cost_usd, input, output, metadata, tags"#,
            $column,
            ")\n"
        )
    };
}

/// The INSERT of the batch's rows.
macro_rules! insert_spans {
    () => {
        r#"
    insert into analytics.llm_traces as t (
        user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type,
        status, status_message, level, start_time, end_time, completion_start_time, provider, model,
        input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
        cost_usd, input, output, metadata, tags"#
    };
}

/// One row per span of the batch (0.1.0's table).
const INSERT_SPANS_0_1_0: &str = concat!(insert_spans!(), ")", span_rows!());

/// One row per span of the batch, with `end_user_id` ($29) and `cost_computed` ($30), which 0.1.0's table lacks.
const INSERT_SPANS: &str = concat!(
    insert_spans!(),
    ", end_user_id, cost_computed)",
    span_rows!(", r.end_user_id, coalesce(r.cost_computed, false)", ", $29::text[], $30::boolean[]", ", end_user_id, cost_computed")
);

/// ...merged into existing rows: fields sent win, fields not sent keep their value, metadata objects merge.
const MERGE_SET: &str = r#"
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

/// 0.1.0's unpartitioned table: one INSERT ... ON CONFLICT on its unique key (user_id, trace_id, span_id).
fn upsert_unpartitioned() -> String {
    format!("{INSERT_SPANS_0_1_0}\n    on conflict (user_id, trace_id, span_id) do update set{MERGE_SET}")
}

/// The partitioned table has no unique index across partitions for ON CONFLICT to use. Under the locks of the
/// batch's spans, `STORED_STARTS` finds where each span of the batch is stored (its start_time, NULL if it is not),
/// and one statement updates the stored ones, merging them with the batch (the rules of `MERGE_SET`) and taking
/// the new start_time (so moving a span to its partition when a re-send changed it), and inserts the others.
/// $29 is `end_user_id`, $30 `cost_computed` and $31 `STORED_STARTS`' array, in the batch's order; returns the number of spans written. With `new_spans` false
/// (every span of the batch is stored: a re-send) the statement is the UPDATE alone, which reads the batch once.
///
/// Each stored span is found by its exact key, (user_id, trace_id, span_id, start_time): a join planned as index
/// probes (`IndexProbes`), one per span in the one partition of that start_time. (With a range of start times
/// instead, it could take the range's index as the outer side and scan every span of the range for each batch.)
fn merge_spans(new_spans: bool) -> String {
    let rows = span_rows!(
        ", r.end_user_id, coalesce(r.cost_computed, false) as cost_computed, r.stored_start",
        ", $29::text[], $30::boolean[], $31::timestamptz[]",
        ", end_user_id, cost_computed, stored_start"
    );
    let update = format!(
        "update analytics.llm_traces t set{set},
        end_user_id           = coalesce(r.end_user_id, t.end_user_id),
        cost_computed         = case when r.cost_usd is null or {keep_sent} then t.cost_computed else r.cost_computed end
    from ({rows}) r
        where r.stored_start is not null
          and t.user_id = r.user_id and t.trace_id = r.trace_id and t.span_id = r.span_id and t.start_time = r.stored_start
        returning 1",
        set = MERGE_SET.replace("excluded.", "r.").replace(
            "cost_usd              = coalesce(r.cost_usd, t.cost_usd)",
            &format!("cost_usd              = case when {KEEP_SENT_COST} then t.cost_usd else coalesce(r.cost_usd, t.cost_usd) end")
        ),
        keep_sent = KEEP_SENT_COST
    );
    if !new_spans {
        return format!("with updated as ({update})\n    select count(*) from updated");
    }
    format!(
        "with updated as ({update}),
    inserted as ({insert}
        select r.user_id, r.trace_id, r.span_id, r.parent_span_id, r.conversation_id, r.message_id, r.session_id, r.name,
               r.operation_type, r.status, r.status_message, r.level, r.start_time, r.end_time, r.completion_start_time,
               r.provider, r.model, r.input_tokens, r.output_tokens, r.total_tokens, r.cache_read_tokens,
               r.cache_write_tokens, r.reasoning_tokens, r.cost_usd, r.input, r.output, r.metadata, r.tags,
               r.end_user_id, r.cost_computed
        from ({rows}) r
        where r.stored_start is null
        returning 1)
    select (select count(*) from updated) + (select count(*) from inserted)",
        insert = concat!(insert_spans!(), ", end_user_id, cost_computed)")
    )
}

/// A cost the client sent is kept when a re-send without one gets a cost computed from its tokens.
const KEEP_SENT_COST: &str = "(r.cost_computed and t.cost_usd is not null and not t.cost_computed)";

/// Where each span of the batch is stored: its start_time, or NULL. $4 and $5 bound the start times of the stored
/// spans of the batch's traces (`TRACE_TIMES`), so only the partitions of that range are searched; the LATERAL ...
/// LIMIT 1 makes it one probe of a partition's unique index (user_id, trace_id, span_id) per span.
///
/// The bounds are written so that they prune partitions (when the plan starts) but cannot be an index condition:
/// as one, they made the (user_id, trace_id, start_time) index look as good as the unique key, and the planner took
/// it and read every span of the trace in the range for each span (50 rows per probe in a trace of 100 spans, 3-4
/// times slower). `start_time is null` never holds (the column is NOT NULL) and prunes every range partition (a range
/// partition holds no NULL; a default partition, where one is attached, is kept), so the OR prunes as the range does.
const STORED_STARTS: &str = r#"
select array_agg(x.start_time order by r.ord)
from unnest($1::uuid[], $2::text[], $3::text[]) with ordinality as r(user_id, trace_id, span_id, ord)
left join lateral (select t.start_time from analytics.llm_traces t
                   where t.user_id = r.user_id and t.trace_id = r.trace_id and t.span_id = r.span_id
                     and (t.start_time >= $4 and t.start_time <= $5 or t.start_time is null)
                   limit 1) x on true
"#;

/// The earliest and latest start time of the stored spans of the batch's traces (NULL: none is stored), from the
/// partitions' (user_id, trace_id, start_time) indexes: the first and the last entry per trace and partition.
const TRACE_TIMES: &str = r#"
select min(x.earliest), max(x.latest)
from unnest($1::uuid[], $2::text[]) as k(user_id, trace_id),
     lateral (select (select s.start_time from analytics.llm_traces s
                      where s.user_id = k.user_id and s.trace_id = k.trace_id order by s.start_time limit 1) as earliest,
                     (select s.start_time from analytics.llm_traces s
                      where s.user_id = k.user_id and s.trace_id = k.trace_id order by s.start_time desc limit 1) as latest) x
"#;

/// From this many spans, a batch plans its lookups of stored spans for itself (see `plans::Planning`).
const PLAN_PER_CALL_SPANS: usize = 1000;

/// Which table the SQL calling us has: the 0.1.0 install script's unpartitioned `llm_traces` (a database not yet
/// updated runs this library through the 0.1.0 symbols) or the partitioned one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Partitioned,
    Unpartitioned,
}

/// The locks of the batch's spans (sql/013_partitions.sql), and the setting that tells the trigger checking plain
/// SQL writes that this writer checks its own; `CHECKS_DONE` clears it once the batch is stored.
/// $4 and $5: the batch's distinct spans and traces with an owner (counted here, where the batch is at hand).
const LOCK_SPANS: &str = "select analytics._lock_spans($1::uuid[], $2::text[], $3::text[], span_count => $4, trace_count => $5), \
     pg_catalog.set_config('analytics.spans_checked', 'on', true)";
const CHECKS_DONE: &str = "select pg_catalog.set_config('analytics.spans_checked', '', true)";

/// (0.1.0's table) Does any (owner, trace) of the batch already have spans? If not, no span can conflict (barring a concurrent
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
pub(crate) fn uuid_from_text(s: &str) -> Option<Uuid> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let mut bytes = [0u8; 16];
    for (k, pair) in hex.chunks(2).enumerate().take(16) {
        bytes[k] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    (hex.len() == 32).then(|| Uuid::from_bytes(bytes))
}

fn oid(o: pg_sys::Oid) -> pgrx::PgOid {
    pgrx::PgOid::from(o)
}

fn pg_timestamp(t: ingest::Timestamp) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(t.0 - PG_EPOCH_OFFSET_US).expect("validated timestamps are in range")
}

/// The owners' model prices, when some span of the batch lacks a cost but has a model (one small query), and whether
/// the built-in list applies (the setting `analytics.builtin_prices`, on unless 'off'). 0.1.0's SQL (the
/// unpartitioned layout) has no reasoning price and no built-in list: its behaviour is kept.
fn load_prices(spans: &[ingest::Span], layout: Layout) -> (Vec<super::pricing::Price>, bool) {
    let owners: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| s.cost_usd.is_none() && s.model.is_some())
        .filter_map(|s| s.user_id.as_deref())
        .collect();
    if owners.is_empty() {
        return (Vec::new(), false);
    }
    let builtin = layout == Layout::Partitioned && builtin_prices_on();
    let owners: Vec<Option<Uuid>> = owners.into_iter().map(uuid_from_text).collect();
    (super::costs::read_prices(Some(owners), layout == Layout::Partitioned), builtin)
}

/// The setting `analytics.builtin_prices`: the built-in price list applies unless it is 'off' (or 'false', '0').
pub(crate) fn builtin_prices_on() -> bool {
    let setting = Spi::get_one::<String>("select current_setting('analytics.builtin_prices', true)").ok().flatten();
    !matches!(setting.as_deref().map(str::trim).map(str::to_ascii_lowercase).as_deref(), Some("off" | "false" | "0" | "no"))
}

/// A timestamptz as microseconds since the Unix epoch; NULL and -infinity as i64::MIN, infinity as i64::MAX (and the
/// last 10,957 days Postgres can hold, which are beyond i64 from the Unix epoch, as i64::MAX too).
pub(crate) fn micros(t: Option<TimestampWithTimeZone>) -> i64 {
    match t {
        Some(t) if t.is_infinity() => i64::MAX, // never
        Some(t) if t.is_finite() => pg_sys::TimestampTz::from(t).saturating_add(PG_EPOCH_OFFSET_US),
        _ => i64::MIN, // -infinity: always
    }
}

/// Stores a parsed batch with one statement over typed arrays (a plain INSERT when none of its traces is stored,
/// else the merge of `merge_spans`, or 0.1.0's INSERT ... ON CONFLICT for 0.1.0's table); returns the summary.
/// Blobs that point into a jsonb argument must still be alive.
pub(crate) fn store_batch(mut batch: ingest::Batch, layout: Layout) -> pgrx::JsonB {
    let (prices, builtin) = load_prices(&batch.spans, layout);
    let computed = super::pricing::fill_costs(&mut batch.spans, &prices, builtin);
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
        let mut args = vec![
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
        let lock_owners: Vec<Option<Uuid>> = spans.iter().map(|s| s.user_id.as_deref().and_then(uuid_from_text)).collect();
        let lock_traces: Vec<Option<&str>> = spans.iter().map(|s| Some(s.trace_id.as_str())).collect();
        let lock_spans: Vec<Option<&str>> = spans.iter().map(|s| Some(s.span_id.as_str())).collect();
        let pair_owners: Vec<Option<Uuid>> = traces.iter().map(|(u, _)| uuid_from_text(u)).collect();
        let pair_traces: Vec<Option<String>> = traces.iter().map(|(_, t)| Some(t.to_string())).collect();
        // every span is inserted or updated: a violated rule raises an error and the whole batch is rolled back
        stored = Spi::connect_mut(|client| match layout {
            Layout::Partitioned => {
                // one row per span across partitions: under the locks of the batch's spans (taken in one order by
                // every writer), stored spans are updated and the rest inserted; the statement trigger that checks
                // plain SQL writes for the same is told this batch was checked
                let span_count = lock_owners
                    .iter()
                    .zip(&lock_traces)
                    .zip(&lock_spans)
                    .filter(|((o, _), _)| o.is_some())
                    .map(|((o, t), s)| (*o, *t, *s))
                    .collect::<std::collections::HashSet<_>>()
                    .len() as i32;
                let trace_count = pair_owners.iter().filter(|o| o.is_some()).count() as i32;
                client.update(
                    LOCK_SPANS,
                    None,
                    &[
                        lock_owners.clone().into(),
                        lock_traces.clone().into(),
                        lock_spans.clone().into(),
                        span_count.into(),
                        trace_count.into(),
                    ],
                )?;
                args.push(texts(|s| s.end_user_id.as_deref()));
                args.push(computed.iter().map(|c| Some(*c)).collect::<Vec<Option<bool>>>().into());
                // a batch of this many spans plans its lookups anew (`plans::Planning`)
                let planning = if spans.len() >= PLAN_PER_CALL_SPANS { super::plans::Planning::PerCall } else { super::plans::Planning::Kept };
                let traces_arg = || [pair_owners.clone().into(), pair_traces.clone().into()];
                let trace_times = |client: &mut pgrx::spi::SpiClient<'_>| {
                    super::plans::select_two::<TimestampWithTimeZone, TimestampWithTimeZone>(
                        client,
                        TRACE_TIMES,
                        &[oid(pg_sys::UUIDARRAYOID), oid(pg_sys::TEXTARRAYOID)],
                        &traces_arg(),
                        planning,
                    )
                };
                let mut times = trace_times(client)?;
                let mut stored = None;
                if times.0.is_none() {
                    // new traces only: a plain INSERT (it fails only if a plain SQL write stored one of the spans
                    // meanwhile, without these locks; then the merge below reads it)
                    stored = try_plain_insert(client, INSERT_SPANS, &args);
                    if stored.is_none() {
                        times = trace_times(client)?;
                    }
                }
                if stored.is_none() {
                    let (earliest, latest) = match times {
                        (Some(a), Some(b)) => (a, b),
                        _ => (TimestampWithTimeZone::negative_infinity(), TimestampWithTimeZone::positive_infinity()),
                    };
                    let stored_starts = super::plans::select_one::<Vec<Option<TimestampWithTimeZone>>>(
                        client,
                        STORED_STARTS,
                        &[
                            oid(pg_sys::UUIDARRAYOID),
                            oid(pg_sys::TEXTARRAYOID),
                            oid(pg_sys::TEXTARRAYOID),
                            oid(pg_sys::TIMESTAMPTZOID),
                            oid(pg_sys::TIMESTAMPTZOID),
                        ],
                        &[
                            lock_owners.clone().into(),
                            lock_traces.clone().into(),
                            lock_spans.clone().into(),
                            earliest.into(),
                            latest.into(),
                        ],
                        planning,
                    )?
                    .unwrap_or_default();
                    let new_spans = stored_starts.len() < spans.len() || stored_starts.iter().any(Option::is_none);
                    args.push(stored_starts.into());
                    let written = {
                        let _probes = super::plans::IndexProbes::force();
                        client.update(merge_spans(new_spans).as_str(), Some(1), &args)?.first().get_one::<i64>()?
                    };
                    let written = written.unwrap_or_default() as u64;
                    if written != spans.len() as u64 {
                        // a stored span was deleted (retention, a DBA) between finding it and updating it, which
                        // span locks do not hold off: nothing of the batch is kept rather than a span silently lost
                        pgrx::ereport!(
                            pgrx::PgLogLevel::ERROR,
                            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                            format!("spans: {} of the batch's {} spans were deleted by another transaction while this call wrote them; retry the call",
                                    spans.len() as u64 - written.min(spans.len() as u64), spans.len())
                        );
                    }
                    stored = Some(written);
                }
                client.update(CHECKS_DONE, None, &[])?;
                Ok(stored.unwrap_or_default())
            }
            Layout::Unpartitioned => {
                // 0.1.0's table has no end_user_id column: a span naming one is refused, not stored without it
                if let Some(i) = spans.iter().position(|s| s.end_user_id.is_some()) {
                    AnalyticsError::new(
                        ErrorKind::WrongState,
                        format!("spans[{i}].end_user_id: needs analytics_ext 0.2.0 (run ALTER EXTENSION analytics_ext UPDATE)"),
                    )
                    .raise();
                }
                let seen = client.select(ANY_TRACE_STORED, Some(1), &[pair_owners.into(), pair_traces.into()])?.first().get_one::<bool>()?;
                if seen == Some(false) {
                    // new traces only: a plain INSERT, without ON CONFLICT's per-row speculative insertion
                    if let Some(n) = try_plain_insert(client, INSERT_SPANS_0_1_0, &args) {
                        return Ok(n);
                    }
                }
                client.update(upsert_unpartitioned().as_str(), None, &args)?;
                Ok(unsafe { pg_sys::SPI_processed })
            }
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

/// `analytics._ingest_spans(spans jsonb) returns jsonb`, behind the PL/pgSQL `analytics.ingest_spans`
///
/// Stores a batch of spans (a JSON array of span objects, up to 100,000) in one statement: all or nothing.
/// Re-sending a span (same owner, trace_id, span_id) updates it; children may arrive before their parents.
/// Returns `{"received", "stored", "merged_duplicates", "traces"}` (`stored`: rows inserted or updated). The argument is read
/// in its binary form (see `jsonb_spans`): no JSON text is produced or parsed. Runs only once
/// `analytics.check_rate_limit('ingest')` has admitted the call (see `take_admission`).
///
/// A batch that fails validation (nothing written yet) is not raised but handed back as
/// `{"error": {"code": SQLSTATE, "message"}}`, so that the wrapper can record the failure and answer it
/// (`analytics._ingest_failed`, sql/042_ingest_failures.sql).
#[pg_extern(name = "_ingest_spans", volatile, parallel_unsafe)]
pub fn ingest_spans_admitted(spans: Option<RawJsonb>) -> pgrx::JsonB {
    take_admission("ingest", "analytics._ingest_spans", "analytics.ingest_spans");
    match spans_batch(spans) {
        Ok(batch) => store_batch(batch, Layout::Partitioned),
        Err(e) => rejected(&e),
    }
}

/// `analytics._ingest_otlp(payload jsonb) returns jsonb`, behind the PL/pgSQL `analytics.ingest_otlp`
///
/// Stores the spans of an OpenTelemetry OTLP/JSON `ExportTraceServiceRequest`, mapping `gen_ai.*` (and
/// OpenInference) attributes to columns and keeping the rest in `metadata.otel`. Same rules and result as
/// `ingest_spans`.
#[pg_extern(name = "_ingest_otlp", volatile, parallel_unsafe)]
pub fn ingest_otlp_admitted(payload: Option<JsonbText>) -> pgrx::JsonB {
    take_admission("ingest", "analytics._ingest_otlp", "analytics.ingest_otlp");
    match otlp_batch(payload) {
        Ok(batch) => store_batch(batch, Layout::Partitioned),
        Err(e) => rejected(&e),
    }
}

/// A batch refused before any write, as data: `{"error": {"code", "message"}}`.
fn rejected(e: &AnalyticsError) -> pgrx::JsonB {
    pgrx::JsonB(json!({"error": {"code": e.kind.sqlstate(), "message": e.message}}))
}

/// The 0.1.0 SQL's `analytics.ingest_spans` (symbol `ingest_spans_wrapper`): kept, without SQL of its own, so that a
/// database still at 0.1.0 works with this library (docs/upgrading.md). 0.1.0 has no rate limits and an
/// unpartitioned table.
#[pg_extern(sql = false, volatile, parallel_unsafe)]
pub fn ingest_spans(spans: Option<RawJsonb>) -> pgrx::JsonB {
    store_spans(spans, Layout::Unpartitioned)
}

fn store_spans(spans: Option<RawJsonb>, layout: Layout) -> pgrx::JsonB {
    store_batch(spans_batch(spans).or_raise(), layout)
}

/// The validated batch of a `spans` argument, or the first error found (nothing is written here).
fn spans_batch(spans: Option<RawJsonb>) -> Result<ingest::Batch, AnalyticsError> {
    let spans = spans.ok_or_else(|| AnalyticsError::new(ErrorKind::NullValue, "spans: is required"))?;
    let datum = spans.into_datum().expect("a jsonb datum");
    let caller = caller_id();
    // SAFETY: the argument (and its detoasted copy) lives until the calling function returns, after the insert
    let raw = unsafe { super::jsonb_spans::raw_spans(datum) }?;
    ingest::build_batch(raw.into_iter().enumerate().map(|(i, r)| (ingest::SpanAt(i), r)), caller.as_deref())
}

/// The 0.1.0 SQL's `analytics.ingest_otlp` (symbol `ingest_otlp_wrapper`), kept like `ingest_spans`.
#[pg_extern(sql = false, volatile, parallel_unsafe)]
pub fn ingest_otlp(payload: Option<JsonbText>) -> pgrx::JsonB {
    store_otlp(payload, Layout::Unpartitioned)
}

fn store_otlp(payload: Option<JsonbText>, layout: Layout) -> pgrx::JsonB {
    store_batch(otlp_batch(payload).or_raise(), layout)
}

fn otlp_batch(payload: Option<JsonbText>) -> Result<ingest::Batch, AnalyticsError> {
    let text = payload.ok_or_else(|| AnalyticsError::new(ErrorKind::NullValue, "payload: is required"))?.0;
    otlp::parse_otlp(&text, caller_id().as_deref())
}

/// The setting through which `analytics.check_rate_limit(action)` (PL/pgSQL, sql/040_rate_limits.sql) tells the
/// writing function it guards that the call was admitted, for this transaction. PostgREST gives its callers no way
/// to set it, so calling `analytics._ingest_spans` directly through the API cannot skip the limit.
const ADMITTED: &std::ffi::CStr = c"analytics.rate_limit_admitted";

/// Consumes the admission of `action` (one admission lets one call through); 42501 naming the public function
/// when there is none.
fn take_admission(action: &str, internal: &str, public: &str) {
    // SAFETY: GetConfigOption returns NULL or a string owned by the GUC machinery, read before any other GUC call;
    // set_config_option copies its arguments
    let admitted = unsafe {
        let value = pg_sys::GetConfigOption(ADMITTED.as_ptr(), true, false);
        !value.is_null() && std::ffi::CStr::from_ptr(value).to_bytes() == action.as_bytes()
    };
    if !admitted {
        AnalyticsError::new(
            ErrorKind::InsufficientPrivilege,
            format!("{internal} is internal: call {public}, which applies the caller's rate limit first"),
        )
        .raise();
    }
    unsafe {
        pg_sys::set_config_option(
            ADMITTED.as_ptr(),
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}

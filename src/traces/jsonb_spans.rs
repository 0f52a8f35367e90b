//! Reads the spans of `analytics.ingest_spans` straight from its binary jsonb argument, without turning it into
//! text: one pass of Postgres' `JsonbIterator` over the top-level array and each span object. Scalars become the
//! `serde_json::Value`s that `ingest::RawSpan` holds (so validation is the same, unit-tested code as for JSON
//! text); `input`, `output` and `metadata` are not read at all: they become `Blob::Binary`, an address into the
//! argument that the insert copies as is.

use pgrx::pg_sys::{self, jbvType, JsonbIteratorToken as Tok};
use pgrx::fcinfo::direct_function_call_as_datum;
use serde_json::{Map, Number, Value};

use super::ingest::{describe, Blob, RawSpan, MAX_SPANS_PER_CALL, SPAN_FIELDS};
use crate::bind::{AnalyticsError, ErrorKind};

unsafe fn container_header(v: &pg_sys::JsonbValue) -> u32 {
    unsafe { (*v.val.binary.data).header }
}

/// The text of a jsonb string value, in place when it is UTF-8 (always, in a UTF-8 database), else converted
/// lossily. Safety: `v` is a jbvString of a live jsonb.
unsafe fn str_of<'a>(v: &pg_sys::JsonbValue) -> std::borrow::Cow<'a, str> {
    unsafe {
        let bytes = std::slice::from_raw_parts(v.val.string.val as *const u8, v.val.string.len as usize);
        String::from_utf8_lossy(bytes)
    }
}

/// A scalar as a serde value; containers become empty placeholders (only their kind matters to validation).
unsafe fn scalar(v: &pg_sys::JsonbValue) -> Value {
    unsafe {
        match v.type_ {
            jbvType::jbvNull => Value::Null,
            jbvType::jbvBool => Value::Bool(v.val.boolean),
            jbvType::jbvString => Value::String(str_of(v).into_owned()),
            jbvType::jbvNumeric => numeric(pg_sys::Datum::from(v.val.numeric)),
            jbvType::jbvBinary if container_header(v) & pg_sys::JB_FOBJECT != 0 => Value::Object(Map::new()),
            _ => Value::Array(Vec::new()),
        }
    }
}

/// A jsonb number as a serde number. Whole numbers (scale 0, the token counts) are read directly; others through
/// their text, exactly as written.
unsafe fn numeric(n: pg_sys::Datum) -> Value {
    unsafe {
        let scale = direct_function_call_as_datum(pg_sys::numeric_scale, &[Some(n)]).map(|d| d.value() as i32);
        if scale == Some(0) {
            let int = pgrx::PgTryBuilder::new(|| direct_function_call_as_datum(pg_sys::numeric_int8, &[Some(n)]))
                .catch_others(|_| None) // beyond bigint: fall through to the text, validation reports it
                .execute();
            if let Some(i) = int {
                return Value::from(i.value() as i64);
            }
        }
        let text = direct_function_call_as_datum(pg_sys::numeric_out, &[Some(n)]).expect("numeric_out returns text");
        let s = std::ffi::CStr::from_ptr(text.cast_mut_ptr::<std::ffi::c_char>()).to_string_lossy();
        s.parse::<Number>().map(Value::Number).unwrap_or_else(|_| Value::String(s.into_owned()))
    }
}

/// An array of scalars (the `tags` field) as a serde value.
unsafe fn array_of_scalars(v: &pg_sys::JsonbValue) -> Value {
    unsafe {
        if v.type_ != jbvType::jbvBinary || container_header(v) & pg_sys::JB_FARRAY == 0 {
            return scalar(v);
        }
        let mut it = pg_sys::JsonbIteratorInit(v.val.binary.data);
        let mut e = pg_sys::JsonbValue::default();
        let mut items = Vec::new();
        loop {
            match pg_sys::JsonbIteratorNext(&mut it, &mut e, true) {
                Tok::WJB_ELEM => items.push(scalar(&e)),
                Tok::WJB_DONE => break,
                _ => {}
            }
        }
        Value::Array(items)
    }
}

/// A JSON column value: containers by address, scalars (rare here) as JSON text.
unsafe fn blob(v: &pg_sys::JsonbValue) -> Option<Blob> {
    unsafe {
        match v.type_ {
            jbvType::jbvNull => None,
            jbvType::jbvBinary => Some(Blob::Binary {
                address: v.val.binary.data as usize,
                len: v.val.binary.len as usize,
                is_object: container_header(v) & pg_sys::JB_FOBJECT != 0,
            }),
            _ => Some(Blob::Text(serde_json::value::to_raw_value(&scalar(v)).expect("a scalar serialises"))),
        }
    }
}

unsafe fn read_span(v: &pg_sys::JsonbValue, i: usize) -> Result<RawSpan, AnalyticsError> {
    unsafe {
        if v.type_ != jbvType::jbvBinary || container_header(v) & pg_sys::JB_FOBJECT == 0 {
            return Err(AnalyticsError::invalid(format!("spans[{i}]: must be a span object, got {}", describe(&scalar(v)))));
        }
        let mut span = RawSpan::default();
        let mut it = pg_sys::JsonbIteratorInit(v.val.binary.data);
        let mut kv = pg_sys::JsonbValue::default();
        let mut key = std::borrow::Cow::Borrowed("");
        loop {
            match pg_sys::JsonbIteratorNext(&mut it, &mut kv, true) {
                Tok::WJB_KEY => key = str_of(&kv),
                Tok::WJB_VALUE => {
                    let slot = match key.as_ref() {
                        "input" => {
                            span.input = blob(&kv);
                            continue;
                        }
                        "output" => {
                            span.output = blob(&kv);
                            continue;
                        }
                        "metadata" => {
                            span.metadata = blob(&kv);
                            continue;
                        }
                        "tags" => {
                            span.tags = Some(array_of_scalars(&kv));
                            continue;
                        }
                        "user_id" => &mut span.user_id,
                        "trace_id" => &mut span.trace_id,
                        "span_id" => &mut span.span_id,
                        "parent_span_id" => &mut span.parent_span_id,
                        "conversation_id" => &mut span.conversation_id,
                        "message_id" => &mut span.message_id,
                        "session_id" => &mut span.session_id,
                        "end_user_id" => &mut span.end_user_id,
                        "name" => &mut span.name,
                        "operation_type" => &mut span.operation_type,
                        "status" => &mut span.status,
                        "status_message" => &mut span.status_message,
                        "level" => &mut span.level,
                        "start_time" => &mut span.start_time,
                        "end_time" => &mut span.end_time,
                        "completion_start_time" => &mut span.completion_start_time,
                        "provider" => &mut span.provider,
                        "model" => &mut span.model,
                        "input_tokens" => &mut span.input_tokens,
                        "output_tokens" => &mut span.output_tokens,
                        "total_tokens" => &mut span.total_tokens,
                        "cache_read_tokens" => &mut span.cache_read_tokens,
                        "cache_write_tokens" => &mut span.cache_write_tokens,
                        "reasoning_tokens" => &mut span.reasoning_tokens,
                        "cost_usd" => &mut span.cost_usd,
                        other => {
                            return Err(AnalyticsError::invalid(format!(
                                "spans[{i}]: unknown field `{other}`, expected one of {}",
                                SPAN_FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                            )));
                        }
                    };
                    *slot = Some(scalar(&kv));
                }
                Tok::WJB_DONE => break,
                _ => {}
            }
        }
        Ok(span)
    }
}

/// The elements of the `spans` argument as raw spans.
///
/// # Safety
/// `datum` must be a jsonb datum that stays alive (with its detoasted copy) until the spans are stored: the
/// `Blob::Binary` values point into it.
pub unsafe fn raw_spans(datum: pg_sys::Datum) -> Result<Vec<RawSpan>, AnalyticsError> {
    unsafe {
        let jb = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::Jsonb;
        let root = &mut (*jb).root;
        let header = root.header;
        if header & pg_sys::JB_FARRAY == 0 || header & pg_sys::JB_FSCALAR != 0 {
            let got = if header & pg_sys::JB_FOBJECT != 0 { "an object" } else { "a scalar" };
            return Err(AnalyticsError::invalid(format!("spans: must be a JSON array of span objects, got {got}")));
        }
        let count = (header & pg_sys::JB_CMASK) as usize;
        if count > MAX_SPANS_PER_CALL {
            return Err(AnalyticsError::new(
                ErrorKind::LimitExceeded,
                format!("spans: a batch holds at most {MAX_SPANS_PER_CALL} spans, got {count}; split it into several calls"),
            ));
        }
        let mut out = Vec::with_capacity(count);
        let mut it = pg_sys::JsonbIteratorInit(root);
        let mut v = pg_sys::JsonbValue::default();
        loop {
            match pg_sys::JsonbIteratorNext(&mut it, &mut v, true) {
                Tok::WJB_ELEM => {
                    let i = out.len();
                    out.push(read_span(&v, i)?);
                }
                Tok::WJB_DONE => break,
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A jsonb datum for a blob (binary containers are copied out of the argument as they are).
///
/// # Safety
/// A `Blob::Binary` must point into a jsonb that is still alive.
pub unsafe fn blob_datum(b: &Blob) -> pg_sys::Datum {
    unsafe {
        match b {
            Blob::Text(t) => {
                let c = std::ffi::CString::new(t.get()).expect("JSON text has no NUL byte");
                direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(c.as_ptr()))]).expect("jsonb_in")
            }
            Blob::Binary { address, len, .. } => {
                let mut v = pg_sys::JsonbValue { type_: jbvType::jbvBinary, ..Default::default() };
                v.val.binary.data = *address as *mut pg_sys::JsonbContainer;
                v.val.binary.len = *len as i32;
                pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(&mut v))
            }
            Blob::Merged(a, b) => {
                direct_function_call_as_datum(pg_sys::jsonb_concat, &[Some(blob_datum(a)), Some(blob_datum(b))]).expect("jsonb_concat")
            }
        }
    }
}

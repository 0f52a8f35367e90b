//! Parsing and validation of spans sent for ingest (`analytics.ingest_spans`, `analytics.record_span`, and the
//! spans mapped from OpenTelemetry by `otlp.rs`). Plain Rust, no database.
//!
//! A batch is all-or-nothing: the first bad element stops the batch with an error that names the element and the
//! field (`spans[17].end_time: ...`). Valid spans are normalised (canonical operation types, UTC timestamps,
//! computed totals) and spans repeated within one batch are merged, later fields winning, so that the single
//! `INSERT ... ON CONFLICT DO UPDATE` that stores them never meets the same row twice.
//!
//! Spans arrive either as JSON text (parsed here with serde: unit tests, OpenTelemetry) or straight from the
//! binary jsonb argument of `analytics.ingest_spans` (walked by `jsonb_spans.rs`, which fills the same
//! [`RawSpan`]). The JSON columns `input`, `output` and `metadata` are never parsed: they travel as a [`Blob`].

use std::collections::HashMap;
use std::fmt;

use chrono::DateTime;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::errors::{AnalyticsError, ErrorKind};

/// Most spans one call may carry (larger batches: split them; each call is one transaction).
pub const MAX_SPANS_PER_CALL: usize = 100_000;
/// Largest `input`, `output` or `metadata` of one span, as JSON text.
pub const MAX_JSON_FIELD_BYTES: usize = 1024 * 1024;
pub const MAX_ID_CHARS: usize = 256;
pub const MAX_NAME_CHARS: usize = 1000;
pub const MAX_TEXT_CHARS: usize = 10_000;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_CHARS: usize = 200;

/// The operation types a span may have (enforced by a CHECK on `analytics.llm_traces` too): OpenTelemetry GenAI
/// operation names plus the OpenInference kinds without a GenAI equivalent.
pub const OPERATION_TYPES: [&str; 13] = [
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "execute_tool",
    "create_agent",
    "invoke_agent",
    "retrieval",
    "rerank",
    "chain",
    "guardrail",
    "evaluator",
    "unknown",
];

/// Maps an operation type or a known alias (OpenInference span kinds, common spellings) to its canonical name.
pub fn canonical_operation_type(value: &str) -> Option<&'static str> {
    let v = value.trim().to_ascii_lowercase();
    if let Some(&known) = OPERATION_TYPES.iter().find(|&&t| t == v) {
        return Some(known);
    }
    Some(match v.as_str() {
        "llm" | "completion_chat" => "chat",
        "completion" => "text_completion",
        "embedding" => "embeddings",
        "tool" | "tool_call" | "function" => "execute_tool",
        "agent" => "invoke_agent",
        "retriever" => "retrieval",
        "reranker" => "rerank",
        "eval" | "evaluation" => "evaluator",
        "guard" => "guardrail",
        "workflow" | "pipeline" => "chain",
        "span" | "" => "unknown",
        _ => return None,
    })
}

pub const STATUSES: [&str; 3] = ["ok", "error", "unset"];
pub const LEVELS: [&str; 4] = ["debug", "default", "warning", "error"];

/// A validated, normalised span, ready for the insert statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// the owner: the span's own user_id field, else the caller's id (filled in by `parse_batch`)
    pub user_id: Option<String>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    /// the traced application's end user (Langfuse `userId`, OpenTelemetry `enduser.id`), not the owner
    pub end_user_id: Option<String>,
    pub name: String,
    pub operation_type: Option<&'static str>,
    pub status: Option<&'static str>,
    pub status_message: Option<String>,
    pub level: Option<&'static str>,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub completion_start_time: Option<Timestamp>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub input: Option<Blob>,
    pub output: Option<Blob>,
    pub metadata: Option<Blob>,
    pub tags: Option<Vec<String>>,
}

/// Microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// A JSON value carried through ingest without being parsed.
#[derive(Debug, Clone)]
pub enum Blob {
    /// JSON text
    Text(Box<RawValue>),
    /// a container inside the binary jsonb argument: an opaque address (only the SQL binding dereferences it),
    /// its size in bytes, and whether it is an object
    Binary { address: usize, len: usize, is_object: bool },
    /// two objects merged, the second one's keys winning (`a || b`), from a span sent twice in one batch
    Merged(Box<Blob>, Box<Blob>),
}

impl Blob {
    pub fn len(&self) -> usize {
        match self {
            Blob::Text(t) => t.get().len(),
            Blob::Binary { len, .. } => *len,
            Blob::Merged(a, b) => a.len() + b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_object(&self) -> bool {
        match self {
            Blob::Text(t) => t.get().trim_start().starts_with('{'),
            Blob::Binary { is_object, .. } => *is_object,
            Blob::Merged(..) => true,
        }
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Blob::Text(a), Blob::Text(b)) => a.get() == b.get(),
            (Blob::Binary { address: a, .. }, Blob::Binary { address: b, .. }) => a == b,
            (Blob::Merged(a1, b1), Blob::Merged(a2, b2)) => a1 == a2 && b1 == b2,
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Blob::Text)
    }
}

/// The fields a span object may have.
pub const SPAN_FIELDS: [&str; 29] = [
    "user_id", "trace_id", "span_id", "parent_span_id", "conversation_id", "message_id", "session_id", "end_user_id", "name",
    "operation_type", "status", "status_message", "level", "start_time", "end_time", "completion_start_time",
    "provider", "model", "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "input", "output", "metadata", "tags",
];

/// One element as sent. Scalars arrive as `Value` so that a wrong type gets an error naming the field.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSpan {
    pub user_id: Option<Value>,
    pub trace_id: Option<Value>,
    pub span_id: Option<Value>,
    pub parent_span_id: Option<Value>,
    pub conversation_id: Option<Value>,
    pub message_id: Option<Value>,
    pub session_id: Option<Value>,
    pub end_user_id: Option<Value>,
    pub name: Option<Value>,
    pub operation_type: Option<Value>,
    pub status: Option<Value>,
    pub status_message: Option<Value>,
    pub level: Option<Value>,
    pub start_time: Option<Value>,
    pub end_time: Option<Value>,
    pub completion_start_time: Option<Value>,
    pub provider: Option<Value>,
    pub model: Option<Value>,
    pub input_tokens: Option<Value>,
    pub output_tokens: Option<Value>,
    pub total_tokens: Option<Value>,
    pub cache_read_tokens: Option<Value>,
    pub cache_write_tokens: Option<Value>,
    pub reasoning_tokens: Option<Value>,
    pub cost_usd: Option<Value>,
    pub input: Option<Blob>,
    pub output: Option<Blob>,
    pub metadata: Option<Blob>,
    pub tags: Option<Value>,
}

/// Where a value sits, e.g. `spans[3].end_time`; formatted only when an error is reported.
#[derive(Clone, Copy)]
struct Field<'a> {
    at: &'a dyn fmt::Display,
    name: &'a str,
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.at, self.name)
    }
}

fn err(kind: ErrorKind, field: impl fmt::Display, msg: impl fmt::Display) -> AnalyticsError {
    AnalyticsError::new(kind, format!("{field}: {msg}"))
}

/// How a JSON value is named in error messages ("a number", "an object", ...).
pub fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn opt_text(v: Option<Value>, field: Field<'_>, max_chars: usize) -> Result<Option<String>, AnalyticsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n > max_chars {
                Err(err(ErrorKind::LimitExceeded, field, format!("is {n} characters long; the limit is {max_chars}")))
            } else if s.contains('\0') {
                Err(err(ErrorKind::InvalidParameter, field, "must not contain NUL characters"))
            } else {
                Ok(Some(s))
            }
        }
        Some(other) => Err(err(ErrorKind::InvalidParameter, field, format!("must be a string, got {}", describe(&other)))),
    }
}

/// An identifier: a non-empty string (numbers are accepted and turned into their decimal text).
fn opt_id(v: Option<Value>, field: Field<'_>) -> Result<Option<String>, AnalyticsError> {
    let v = match v {
        Some(Value::Number(n)) => Some(Value::String(n.to_string())),
        other => other,
    };
    match opt_text(v, field, MAX_ID_CHARS)? {
        Some(s) if s.trim().is_empty() => Err(err(ErrorKind::InvalidParameter, field, "must not be empty")),
        other => Ok(other),
    }
}

fn required<T>(v: Option<T>, field: Field<'_>) -> Result<T, AnalyticsError> {
    v.ok_or_else(|| err(ErrorKind::NullValue, field, "is required"))
}

fn opt_enum(
    v: Option<Value>,
    field: Field<'_>,
    canonical: impl Fn(&str) -> Option<&'static str>,
    allowed: &[&str],
) -> Result<Option<&'static str>, AnalyticsError> {
    match opt_text(v, field, MAX_ID_CHARS)? {
        None => Ok(None),
        Some(s) => canonical(&s).map(Some).ok_or_else(|| {
            err(ErrorKind::InvalidParameter, field, format!("unknown value {s:?}; allowed: {}", allowed.join(", ")))
        }),
    }
}

fn lower_in(list: &'static [&'static str]) -> impl Fn(&str) -> Option<&'static str> {
    move |s: &str| {
        let l = s.trim().to_ascii_lowercase();
        list.iter().copied().find(|&x| x == l)
    }
}

/// Parses an RFC 3339 timestamp with offset ("2026-11-20T09:00:00.123Z", "2026-11-20 09:00:00+02:00").
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let dt = DateTime::parse_from_rfc3339(s.trim()).ok()?;
    let us = dt.timestamp_micros();
    // Postgres timestamptz covers 4713 BC .. 294276 AD; we accept years 1..9999
    let year_1 = -62_135_596_800_000_000i64;
    let year_10000 = 253_402_300_800_000_000i64;
    (year_1..year_10000).contains(&us).then_some(Timestamp(us))
}

fn opt_time(v: Option<Value>, field: Field<'_>) -> Result<Option<Timestamp>, AnalyticsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_timestamp(&s).map(Some).ok_or_else(|| {
            err(
                ErrorKind::InvalidDatetime,
                field,
                format!("{s:?} is not an RFC 3339 timestamp with a UTC offset between years 1 and 9999 (e.g. \"2026-11-20T09:00:00.250Z\")"),
            )
        }),
        Some(other) => Err(err(ErrorKind::InvalidParameter, field, format!("must be an RFC 3339 timestamp string, got {}", describe(&other)))),
    }
}

/// NaN and infinities cannot be JSON numbers, but arrive as strings from SQL (to_jsonb('NaN'::float8)).
fn non_finite_word(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "nan" | "infinity" | "+infinity" | "-infinity" | "inf" | "-inf")
}

/// A jsonb number beyond double precision (`1e400`) arrives as its digits in a string: serde cannot hold it.
fn overflowing_number(s: &str) -> bool {
    !non_finite_word(s) && s.parse::<f64>().is_ok_and(f64::is_infinite)
}

fn opt_count(v: Option<Value>, field: Field<'_>) -> Result<Option<i64>, AnalyticsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if i >= 0 => Ok(Some(i)),
            Some(i) => Err(err(ErrorKind::InvalidParameter, field, format!("must not be negative, got {i}"))),
            None => Err(err(ErrorKind::InvalidParameter, field, format!("must be a whole number of tokens, got {n}"))),
        },
        Some(Value::String(s)) if non_finite_word(&s) => {
            Err(err(ErrorKind::InvalidParameter, field, format!("must be a finite whole number, got {s}")))
        }
        Some(Value::String(s)) if overflowing_number(&s) => {
            Err(err(ErrorKind::InvalidParameter, field, format!("must be a finite whole number, got a number of {} digits", s.len())))
        }
        Some(other) => Err(err(ErrorKind::InvalidParameter, field, format!("must be a number, got {}", describe(&other)))),
    }
}

fn opt_cost(v: Option<Value>, field: Field<'_>) -> Result<Option<f64>, AnalyticsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() {
                Err(err(ErrorKind::InvalidParameter, field, format!("must be a finite number, got {n}")))
            } else if f < 0.0 {
                Err(err(ErrorKind::InvalidParameter, field, format!("must not be negative, got {f}")))
            } else {
                Ok(Some(f))
            }
        }
        Some(Value::String(s)) if non_finite_word(&s) => {
            Err(err(ErrorKind::InvalidParameter, field, format!("must be a finite number, got {s}")))
        }
        Some(Value::String(s)) if overflowing_number(&s) => Err(err(
            ErrorKind::InvalidParameter,
            field,
            format!("must be a finite number, got a number of {} digits, beyond double precision", s.len()),
        )),
        Some(other) => Err(err(ErrorKind::InvalidParameter, field, format!("must be a number, got {}", describe(&other)))),
    }
}

fn opt_json(v: Option<Blob>, field: Field<'_>, must_be_object: bool) -> Result<Option<Blob>, AnalyticsError> {
    let Some(blob) = v else { return Ok(None) };
    if blob.len() > MAX_JSON_FIELD_BYTES {
        return Err(err(
            ErrorKind::LimitExceeded,
            field,
            format!("is {} bytes of JSON; the limit is {MAX_JSON_FIELD_BYTES} bytes", blob.len()),
        ));
    }
    if must_be_object && !blob.is_object() {
        return Err(err(ErrorKind::InvalidParameter, field, "must be a JSON object"));
    }
    // Postgres jsonb cannot store \u0000 in strings (a binary jsonb never holds one)
    if let Blob::Text(t) = &blob {
        if t.get().contains("\\u0000") {
            return Err(err(ErrorKind::InvalidParameter, field, "must not contain \\u0000 (Postgres jsonb cannot store it)"));
        }
    }
    Ok(Some(blob))
}

fn opt_tags(v: Option<Value>, field: Field<'_>) -> Result<Option<Vec<String>>, AnalyticsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() > MAX_TAGS {
                return Err(err(ErrorKind::LimitExceeded, field, format!("has {} tags; the limit is {MAX_TAGS}", items.len())));
            }
            let mut tags: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let element = || format!("{field}[{i}]");
                match item {
                    Value::String(t) if !t.is_empty() && !t.contains('\0') => {
                        let n = t.chars().count();
                        if n > MAX_TAG_CHARS {
                            return Err(err(ErrorKind::LimitExceeded, element(), format!("is {n} characters long; the limit is {MAX_TAG_CHARS}")));
                        }
                        if !tags.contains(&t) {
                            tags.push(t)
                        }
                    }
                    _ => return Err(err(ErrorKind::InvalidParameter, element(), "must be a non-empty string")),
                }
            }
            Ok(Some(tags))
        }
        Some(other) => Err(err(ErrorKind::InvalidParameter, field, format!("must be an array of strings, got {}", describe(&other)))),
    }
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl RawSpan {
    /// Validates and normalises one span. `at` names it in errors, e.g. `spans[3]`.
    pub fn validate(self, at: &dyn fmt::Display) -> Result<Span, AnalyticsError> {
        let f = |name: &'static str| Field { at, name };
        let user_id = match opt_text(self.user_id, f("user_id"), 36)? {
            Some(u) if !is_uuid(&u) => {
                return Err(err(ErrorKind::InvalidText, f("user_id"), format!("{u:?} is not a uuid")));
            }
            other => other.map(|u| u.to_ascii_lowercase()),
        };
        let trace_id = required(opt_id(self.trace_id, f("trace_id"))?, f("trace_id"))?;
        let span_id = required(opt_id(self.span_id, f("span_id"))?, f("span_id"))?;
        // OpenTelemetry sends "" for "no parent"
        let parent_span_id = match self.parent_span_id {
            Some(Value::String(s)) if s.is_empty() => None,
            other => opt_id(other, f("parent_span_id"))?,
        };
        if parent_span_id.as_deref() == Some(span_id.as_str()) {
            return Err(err(ErrorKind::InvalidParameter, f("parent_span_id"), format!("a span cannot be its own parent ({span_id:?})")));
        }
        let name = required(opt_text(self.name, f("name"), MAX_NAME_CHARS)?, f("name"))?;
        if name.trim().is_empty() {
            return Err(err(ErrorKind::InvalidParameter, f("name"), "must not be empty"));
        }
        let start_time = required(opt_time(self.start_time, f("start_time"))?, f("start_time"))?;
        let end_time = opt_time(self.end_time, f("end_time"))?;
        let completion_start_time = opt_time(self.completion_start_time, f("completion_start_time"))?;
        let span = Span {
            user_id,
            trace_id,
            span_id,
            parent_span_id,
            conversation_id: opt_id(self.conversation_id, f("conversation_id"))?,
            message_id: opt_id(self.message_id, f("message_id"))?,
            session_id: opt_id(self.session_id, f("session_id"))?,
            end_user_id: opt_id(self.end_user_id, f("end_user_id"))?,
            name,
            operation_type: opt_enum(self.operation_type, f("operation_type"), canonical_operation_type, &OPERATION_TYPES)?,
            status: opt_enum(self.status, f("status"), lower_in(&STATUSES), &STATUSES)?,
            status_message: opt_text(self.status_message, f("status_message"), MAX_TEXT_CHARS)?,
            level: opt_enum(self.level, f("level"), lower_in(&LEVELS), &LEVELS)?,
            start_time,
            end_time,
            completion_start_time,
            provider: opt_text(self.provider, f("provider"), MAX_ID_CHARS)?,
            model: opt_text(self.model, f("model"), MAX_ID_CHARS)?,
            input_tokens: opt_count(self.input_tokens, f("input_tokens"))?,
            output_tokens: opt_count(self.output_tokens, f("output_tokens"))?,
            total_tokens: opt_count(self.total_tokens, f("total_tokens"))?,
            cache_read_tokens: opt_count(self.cache_read_tokens, f("cache_read_tokens"))?,
            cache_write_tokens: opt_count(self.cache_write_tokens, f("cache_write_tokens"))?,
            reasoning_tokens: opt_count(self.reasoning_tokens, f("reasoning_tokens"))?,
            cost_usd: opt_cost(self.cost_usd, f("cost_usd"))?,
            input: opt_json(self.input, f("input"), false)?,
            output: opt_json(self.output, f("output"), false)?,
            metadata: opt_json(self.metadata, f("metadata"), true)?,
            tags: opt_tags(self.tags, f("tags"))?,
        };
        span.check_consistency(at)?;
        Ok(span.with_computed_totals())
    }
}

impl Span {
    /// Rules between fields (checked again after duplicates are merged).
    fn check_consistency(&self, at: &dyn fmt::Display) -> Result<(), AnalyticsError> {
        if let Some(end) = self.end_time {
            if end < self.start_time {
                return Err(err(ErrorKind::InvalidParameter, format!("{at}.end_time"), "is before start_time"));
            }
        }
        if let Some(first) = self.completion_start_time {
            if first < self.start_time || self.end_time.is_some_and(|end| first > end) {
                return Err(err(
                    ErrorKind::InvalidParameter,
                    format!("{at}.completion_start_time"),
                    "must lie between start_time and end_time",
                ));
            }
        }
        Ok(())
    }

    /// `total_tokens = input_tokens + output_tokens` when the client did not send a total.
    fn with_computed_totals(mut self) -> Span {
        if self.total_tokens.is_none() && (self.input_tokens.is_some() || self.output_tokens.is_some()) {
            self.total_tokens = Some(self.input_tokens.unwrap_or(0).saturating_add(self.output_tokens.unwrap_or(0)));
        }
        self
    }

    /// Merges a later version of the same span into this one: fields it carries win, metadata objects are merged.
    fn merge(&mut self, later: Span) {
        macro_rules! take {
            ($($f:ident),*) => { $( if later.$f.is_some() { self.$f = later.$f; } )* };
        }
        take!(
            user_id, parent_span_id, conversation_id, message_id, session_id, end_user_id, operation_type, status, status_message,
            level, end_time, completion_start_time, provider, model, input_tokens, output_tokens, total_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, input, output, tags
        );
        self.name = later.name;
        self.start_time = later.start_time;
        self.metadata = match (self.metadata.take(), later.metadata) {
            (Some(a), Some(b)) => Some(Blob::Merged(Box::new(a), Box::new(b))),
            (a, b) => b.or(a),
        };
    }
}

/// Result of parsing a batch: the spans to store, and how many duplicates were merged away.
#[derive(Debug)]
pub struct Batch {
    pub spans: Vec<Span>,
    pub received: usize,
    pub merged_duplicates: usize,
}

/// Parses, validates and normalises a JSON array of spans (the argument of `analytics.ingest_spans`).
/// `caller` is the calling user's id (`analytics.current_user_id()`): it owns every span that names no user_id.
pub fn parse_batch(json: &str, caller: Option<&str>) -> Result<Batch, AnalyticsError> {
    let raw = parse_array(json)?;
    build_batch(raw.into_iter().enumerate().map(|(i, r)| (SpanAt(i), r)), caller)
}

/// `spans[i]`, the name of the i-th element of a batch in errors.
#[derive(Clone, Copy)]
pub struct SpanAt(pub usize);

impl fmt::Display for SpanAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spans[{}]", self.0)
    }
}

fn span_key(s: &Span) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (s.user_id.as_deref(), s.trace_id.as_str(), s.span_id.as_str()).hash(&mut h);
    h.finish()
}

fn same_span(a: &Span, b: &Span) -> bool {
    a.user_id == b.user_id && a.trace_id == b.trace_id && a.span_id == b.span_id
}

/// Validates spans (each with the name errors should use for it), fills in the owner, merges duplicates, and
/// orders the spans by their key (owner, trace_id, span_id). The insert writes rows in this order, so concurrent
/// batches that share spans take their row locks in one global order and cannot deadlock each other, whatever
/// order their clients sent the spans in.
pub fn build_batch<L: fmt::Display>(
    items: impl ExactSizeIterator<Item = (L, RawSpan)>,
    caller: Option<&str>,
) -> Result<Batch, AnalyticsError> {
    let received = items.len();
    let mut spans: Vec<Span> = Vec::with_capacity(received);
    // hash of (owner, trace_id, span_id) -> positions in `spans` (a list, in case two keys share a hash)
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(received);
    let mut merged_duplicates = 0;
    for (at, r) in items {
        let mut span = r.validate(&at)?;
        if span.user_id.is_none() {
            span.user_id = Some(caller.map(str::to_owned).ok_or_else(|| {
                AnalyticsError::new(
                    ErrorKind::InsufficientPrivilege,
                    format!("{at}: no owner: the caller is not signed in (request.jwt.claims has no sub) and the span names no user_id"),
                )
            })?);
        }
        let positions = seen.entry(span_key(&span)).or_default();
        match positions.iter().copied().find(|&p| same_span(&spans[p], &span)) {
            Some(pos) => {
                spans[pos].merge(span);
                spans[pos].check_consistency(&at)?;
                merged_duplicates += 1;
            }
            None => {
                positions.push(spans.len());
                spans.push(span);
            }
        }
    }
    spans.sort_unstable_by(|a, b| {
        (a.user_id.as_deref(), a.trace_id.as_str(), a.span_id.as_str()).cmp(&(b.user_id.as_deref(), b.trace_id.as_str(), b.span_id.as_str()))
    });
    Ok(Batch { spans, received, merged_duplicates })
}

/// Single-pass parse of the top-level array; a malformed element is reported with its index.
fn parse_array(json: &str) -> Result<Vec<RawSpan>, AnalyticsError> {
    struct Elements;
    impl<'de> Visitor<'de> for Elements {
        type Value = Vec<RawSpan>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON array of span objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_SPANS_PER_CALL));
            loop {
                let i = out.len();
                if i == MAX_SPANS_PER_CALL {
                    // one more element present means the batch is too large
                    return match seq.next_element::<de::IgnoredAny>()? {
                        Some(_) => Err(de::Error::custom(format!(
                            "LIMIT: a batch holds at most {MAX_SPANS_PER_CALL} spans; split it into several calls"
                        ))),
                        None => Ok(out),
                    };
                }
                match seq.next_element::<RawSpan>() {
                    Ok(Some(span)) => out.push(span),
                    Ok(None) => return Ok(out),
                    Err(e) => return Err(de::Error::custom(format!("spans[{i}]: {e}"))),
                }
            }
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = de.deserialize_seq(Elements).and_then(|v| de.end().map(|_| v));
    parsed.map_err(|e| {
        let msg = strip_position(&e.to_string());
        if let Some(rest) = msg.strip_prefix("LIMIT: ") {
            AnalyticsError::new(ErrorKind::LimitExceeded, format!("spans: {rest}"))
        } else if msg.starts_with("spans[") {
            AnalyticsError::new(ErrorKind::InvalidParameter, msg)
        } else {
            AnalyticsError::new(ErrorKind::InvalidParameter, format!("spans: must be a JSON array of span objects ({msg})"))
        }
    })
}

/// serde_json appends " at line 1 column 523" to its messages; inside one element that only confuses.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(pos) if msg[pos..].contains(" column ") => msg[..pos].to_string(),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

    fn one(span: &str) -> Result<Span, AnalyticsError> {
        parse_batch(&format!("[{span}]"), Some(CALLER)).map(|b| b.spans.into_iter().next().unwrap())
    }

    const OK: &str = r#"{"trace_id":"t1","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z"}"#;

    fn with(extra: &str) -> String {
        format!("{},{extra}}}", &OK[..OK.len() - 1])
    }

    fn fails(span: &str, kind: ErrorKind, needle: &str) {
        let e = one(span).expect_err("must be rejected");
        assert_eq!(e.kind, kind, "{}", e.message);
        assert!(e.message.contains(needle), "message {:?} should contain {:?}", e.message, needle);
    }

    #[test]
    fn minimal_span_is_normalised() {
        let s = one(&with(r#""end_time":"2026-11-20 10:00:00.5+01:00","operation_type":"LLM","input_tokens":10,"output_tokens":5"#)).unwrap();
        assert_eq!(s.operation_type, Some("chat"));
        assert_eq!(s.total_tokens, Some(15));
        assert_eq!(s.end_time.unwrap().0 - s.start_time.0, 500_000);
        assert_eq!(s.start_time, parse_timestamp("2026-11-20T09:00:00Z").unwrap());
    }

    #[test]
    fn missing_required_fields_are_named() {
        fails(r#"{"span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z"}"#, ErrorKind::NullValue, "spans[0].trace_id: is required");
        fails(r#"{"trace_id":"t","name":"n","start_time":"2026-11-20T09:00:00Z"}"#, ErrorKind::NullValue, "spans[0].span_id: is required");
        fails(r#"{"trace_id":"t","span_id":"s","start_time":"2026-11-20T09:00:00Z"}"#, ErrorKind::NullValue, "spans[0].name: is required");
        fails(r#"{"trace_id":"t","span_id":"s","name":"n"}"#, ErrorKind::NullValue, "spans[0].start_time: is required");
        fails(r#"{"trace_id":"","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z"}"#, ErrorKind::InvalidParameter, "trace_id: must not be empty");
    }

    #[test]
    fn bad_values_are_rejected_with_the_field_name() {
        fails(&with(r#""end_time":"2026-11-20T08:59:59Z""#), ErrorKind::InvalidParameter, "spans[0].end_time: is before start_time");
        fails(&with(r#""input_tokens":-1"#), ErrorKind::InvalidParameter, "input_tokens: must not be negative");
        fails(&with(r#""output_tokens":1.5"#), ErrorKind::InvalidParameter, "output_tokens: must be a whole number");
        fails(&with(r#""cost_usd":-0.01"#), ErrorKind::InvalidParameter, "cost_usd: must not be negative");
        fails(&with(r#""cost_usd":"NaN""#), ErrorKind::InvalidParameter, "cost_usd: must be a finite number, got NaN");
        fails(&with(r#""cost_usd":"Infinity""#), ErrorKind::InvalidParameter, "cost_usd: must be a finite number, got Infinity");
        fails(&with(r#""total_tokens":"-Infinity""#), ErrorKind::InvalidParameter, "total_tokens: must be a finite whole number");
        // jsonb's 1e400, which serde cannot hold, reaches the core as its 401 digits (src/traces/jsonb_spans.rs)
        let digits = format!("1{}", "0".repeat(400));
        fails(&with(&format!(r#""input_tokens":"{digits}""#)), ErrorKind::InvalidParameter, "input_tokens: must be a finite whole number, got a number of 401 digits");
        fails(&with(&format!(r#""cost_usd":"-{digits}""#)), ErrorKind::InvalidParameter, "cost_usd: must be a finite number, got a number of 402 digits, beyond double precision");
        fails(&with(r#""operation_type":"teleport""#), ErrorKind::InvalidParameter, "operation_type: unknown value \"teleport\"");
        fails(&with(r#""status":"maybe""#), ErrorKind::InvalidParameter, "status: unknown value");
        fails(&with(r#""level":"loud""#), ErrorKind::InvalidParameter, "level: unknown value");
        fails(&with(r#""parent_span_id":"s1""#), ErrorKind::InvalidParameter, "cannot be its own parent");
        fails(r#"{"trace_id":"t","span_id":"s","name":"n","start_time":"yesterday"}"#, ErrorKind::InvalidDatetime, "start_time: \"yesterday\" is not an RFC 3339");
        fails(&with(r#""end_time":"2026-11-20T09:00:00""#), ErrorKind::InvalidDatetime, "end_time");
        fails(&with(r#""metadata":[1,2]"#), ErrorKind::InvalidParameter, "metadata: must be a JSON object");
        fails(&with(r#""tags":["a",""]"#), ErrorKind::InvalidParameter, "tags[1]: must be a non-empty string");
        fails(&with(r#""tags":"a""#), ErrorKind::InvalidParameter, "tags: must be an array of strings");
        fails(&with(r#""name2":"x""#), ErrorKind::InvalidParameter, "spans[0]: unknown field `name2`");
        fails(&with(r#""user_id":"bob""#), ErrorKind::InvalidText, "user_id: \"bob\" is not a uuid");
        fails(&with(r#""completion_start_time":"2026-11-20T08:00:00Z""#), ErrorKind::InvalidParameter, "completion_start_time");
        fails(&with(r#""input":{"text":"a\u0000b"}"#), ErrorKind::InvalidParameter, "input: must not contain \\u0000");
        fails(&with(r#""model":7"#), ErrorKind::InvalidParameter, "model: must be a string, got a number");
    }

    #[test]
    fn oversized_payloads_hit_the_documented_limits() {
        let big = format!(r#""input":"{}""#, "x".repeat(MAX_JSON_FIELD_BYTES));
        fails(&with(&big), ErrorKind::LimitExceeded, "input: is 1048578 bytes of JSON; the limit is 1048576 bytes");
        let long_name = format!(r#"{{"trace_id":"t","span_id":"s","name":"{}","start_time":"2026-11-20T09:00:00Z"}}"#, "n".repeat(1001));
        fails(&long_name, ErrorKind::LimitExceeded, "name: is 1001 characters long");
        let many: Vec<String> = (0..=MAX_SPANS_PER_CALL).map(|_| "{}".to_string()).collect();
        let e = parse_batch(&format!("[{}]", many.join(",")), Some(CALLER)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert!(e.message.contains("at most 100000 spans"), "{}", e.message);
    }

    #[test]
    fn the_bad_element_of_a_batch_is_named() {
        let batch = format!("[{OK},{},{}]", OK.replace("s1", "s2"), OK.replace("\"name\":\"chat\",", ""));
        let e = parse_batch(&batch, Some(CALLER)).unwrap_err();
        assert_eq!(e.message, "spans[2].name: is required");
        let e = parse_batch(&format!("[{OK}, 42]"), Some(CALLER)).unwrap_err();
        assert!(e.message.starts_with("spans[1]: invalid type: integer `42`"), "{}", e.message);
        let e = parse_batch(r#"{"trace_id":"t"}"#, Some(CALLER)).unwrap_err();
        assert!(e.message.starts_with("spans: must be a JSON array"), "{}", e.message);
    }

    #[test]
    fn batches_are_ordered_by_owner_trace_and_span_whatever_the_input_order() {
        let b = parse_batch(
            r#"[{"trace_id":"t2","span_id":"b","name":"x","start_time":"2026-11-20T09:00:00Z"},
                {"trace_id":"t1","span_id":"z","name":"x","start_time":"2026-11-20T09:00:00Z","user_id":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"},
                {"trace_id":"t1","span_id":"b","name":"x","start_time":"2026-11-20T09:00:00Z"},
                {"trace_id":"t2","span_id":"a","name":"x","start_time":"2026-11-20T09:00:00Z"},
                {"trace_id":"t1","span_id":"a","name":"x","start_time":"2026-11-20T09:00:00Z"}]"#,
            Some(CALLER),
        )
        .unwrap();
        let keys: Vec<(String, &str, &str)> =
            b.spans.iter().map(|s| (s.user_id.clone().unwrap()[..1].to_string(), s.trace_id.as_str(), s.span_id.as_str())).collect();
        let want = [("a", "t1", "a"), ("a", "t1", "b"), ("a", "t2", "a"), ("a", "t2", "b"), ("b", "t1", "z")];
        assert_eq!(keys, want.map(|(u, t, s)| (u.to_string(), t, s)));
    }

    #[test]
    fn duplicates_in_one_batch_are_merged_later_fields_winning() {
        let first = with(r#""metadata":{"a":1,"b":1},"status":"error","tags":["x"]"#);
        let second = OK.replace("\"name\":\"chat\"", "\"name\":\"chat v2\"").replace('}', r#","end_time":"2026-11-20T09:00:02Z","metadata":{"b":2}}"#);
        let b = parse_batch(&format!("[{first},{second}]"), Some(CALLER)).unwrap();
        assert_eq!((b.received, b.spans.len(), b.merged_duplicates), (2, 1, 1));
        let s = &b.spans[0];
        assert_eq!(s.name, "chat v2");
        assert_eq!(s.status, Some("error"));
        assert!(s.end_time.is_some());
        match s.metadata.as_ref().unwrap() {
            Blob::Merged(a, b) => assert_eq!((a.len(), b.len()), (r#"{"a":1,"b":1}"#.len(), r#"{"b":2}"#.len())),
            other => panic!("metadata should be merged, got {other:?}"),
        }
        assert_eq!(s.tags.as_deref(), Some(&["x".to_string()][..]));
    }

    #[test]
    fn owner_is_the_caller_unless_the_span_names_one() {
        assert_eq!(one(OK).unwrap().user_id.as_deref(), Some(CALLER));
        let other = "BBBBBBBB-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
        let s = one(&with(&format!(r#""user_id":"{other}""#))).unwrap();
        assert_eq!(s.user_id.as_deref(), Some("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"));
        let e = parse_batch(&format!("[{OK}]"), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InsufficientPrivilege);
        assert!(e.message.starts_with("spans[0]: no owner"), "{}", e.message);
    }

    #[test]
    fn aliases_map_to_canonical_operation_types() {
        for (alias, canonical) in [("tool", "execute_tool"), ("AGENT", "invoke_agent"), ("retriever", "retrieval"), ("embedding", "embeddings"), ("reranker", "rerank"), ("chain", "chain")] {
            assert_eq!(canonical_operation_type(alias), Some(canonical));
        }
        assert_eq!(canonical_operation_type("warp"), None);
    }

    #[test]
    fn timestamps_accept_offsets_and_reject_naive_or_out_of_range() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(Timestamp(1_000_000)));
        assert_eq!(parse_timestamp("1970-01-01T01:00:01+01:00"), Some(Timestamp(1_000_000)));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.000001Z"), Some(Timestamp(1_000_001)));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01"), None);
        assert_eq!(parse_timestamp("0000-01-01T00:00:00Z"), None);
    }
}

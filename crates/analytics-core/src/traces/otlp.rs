//! OpenTelemetry: maps an OTLP/JSON `ExportTraceServiceRequest` (what an OTel exporter POSTs to `/v1/traces`) to
//! spans. Plain Rust, no database. The spans then go through the same validation as `analytics.ingest_spans`.
//!
//! OTLP/JSON: `resourceSpans[] -> scopeSpans[] -> spans[]`; trace and span ids are hex strings; times are unix
//! nanoseconds (strings or numbers); attributes are `[{"key": k, "value": {"stringValue"|"intValue"|...: v}}]`;
//! enums (status code, span kind) are integers, their names are accepted too.
//!
//! Mapped to columns (first attribute present wins), everything else kept in `metadata.otel`:
//!
//! | column | attributes |
//! |---|---|
//! | operation_type | `gen_ai.operation.name`, `openinference.span.kind` |
//! | provider | `gen_ai.provider.name`, `gen_ai.system`, `llm.provider`, `llm.system` |
//! | model | `gen_ai.response.model`, `gen_ai.request.model`, `llm.model_name` |
//! | input_tokens | `gen_ai.usage.input_tokens`, `gen_ai.usage.prompt_tokens`, `llm.token_count.prompt` |
//! | output_tokens | `gen_ai.usage.output_tokens`, `gen_ai.usage.completion_tokens`, `llm.token_count.completion` |
//! | total_tokens | `gen_ai.usage.total_tokens`, `llm.token_count.total` |
//! | cache_read_tokens | `gen_ai.usage.cache_read.input_tokens`, `llm.token_count.prompt_details.cache_read` |
//! | cache_write_tokens | `gen_ai.usage.cache_creation.input_tokens`, `llm.token_count.prompt_details.cache_write` |
//! | reasoning_tokens | `gen_ai.usage.reasoning.output_tokens`, `llm.token_count.completion_details.reasoning` |
//! | cost_usd | `gen_ai.usage.cost`, `llm.cost.total` |
//! | conversation_id | `gen_ai.conversation.id` |
//! | session_id | `session.id`, `langfuse.session.id` |
//! | end_user_id | `enduser.id`, `user.id`, `langfuse.user.id` (on the span, else on its resource) |
//! | input / output | `gen_ai.input.messages` / `gen_ai.output.messages`, `gen_ai.prompt` / `gen_ai.completion`, `input.value` / `output.value` (JSON text is parsed) |
//! | completion_start_time | `langfuse.observation.completion_start_time` |
//! | tags | `tag.tags`, `langfuse.trace.tags` |
//! | status, status_message | span `status.code` (0 unset, 1 ok, 2 error) and `status.message` |

use serde_json::{json, Map, Value};

use super::ingest::{build_batch, Batch, Blob, RawSpan};
use crate::errors::{AnalyticsError, ErrorKind};

const COLUMN_ATTRIBUTES: &[&str] = &[
    "gen_ai.operation.name",
    "openinference.span.kind",
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.provider",
    "llm.system",
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "gen_ai.usage.total_tokens",
    "llm.token_count.total",
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_creation.input_tokens",
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.cost",
    "llm.cost.total",
    "gen_ai.conversation.id",
    "session.id",
    "langfuse.session.id",
    "enduser.id",
    "user.id",
    "langfuse.user.id",
    "gen_ai.input.messages",
    "gen_ai.prompt",
    "input.value",
    "gen_ai.output.messages",
    "gen_ai.completion",
    "output.value",
    "langfuse.observation.completion_start_time",
    "tag.tags",
    "langfuse.trace.tags",
];

/// The traced application's end user: OpenTelemetry's `enduser.id` and `user.id`, Langfuse's `langfuse.user.id`.
const END_USER_ATTRIBUTES: &[&str] = &["enduser.id", "user.id", "langfuse.user.id"];

fn invalid(at: &str, msg: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::new(ErrorKind::InvalidParameter, format!("{at}: {msg}"))
}

/// An OTLP AnyValue as plain JSON (`{"intValue": "5"}` -> 5, `{"arrayValue": {"values": [...]}}` -> [...]).
pub fn any_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else { return Value::Null };
    let Some((kind, inner)) = obj.iter().next() else { return Value::Null };
    match kind.as_str() {
        "stringValue" | "bytesValue" => inner.clone(),
        "boolValue" => inner.clone(),
        "intValue" => match inner {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| inner.clone()),
            other => other.clone(),
        },
        "doubleValue" => match inner {
            Value::String(s) => s.parse::<f64>().ok().and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)).unwrap_or_else(|| inner.clone()),
            other => other.clone(),
        },
        "arrayValue" => Value::Array(inner.get("values").and_then(Value::as_array).map(|vs| vs.iter().map(any_value).collect()).unwrap_or_default()),
        "kvlistValue" => Value::Object(attributes(inner.get("values"))),
        _ => Value::Null,
    }
}

/// An OTLP attribute list as a JSON object.
pub fn attributes(list: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for kv in list.and_then(Value::as_array).into_iter().flatten() {
        if let Some(key) = kv.get("key").and_then(Value::as_str) {
            out.insert(key.to_string(), kv.get("value").map(any_value).unwrap_or(Value::Null));
        }
    }
    out
}

fn first<'a>(attrs: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| attrs.get(*k)).find(|v| !v.is_null())
}

/// Text that holds JSON (OTel carries structured messages as strings) becomes that JSON; other text stays text.
fn json_or_text(v: &Value) -> Value {
    match v {
        Value::String(s) if s.trim_start().starts_with(['{', '[']) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

fn hex_id(v: Option<&Value>, at: &str, len: usize) -> Result<Option<String>, AnalyticsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                if s.bytes().all(|b| b == b'0') {
                    Err(invalid(at, "must not be all zeros (an invalid OpenTelemetry id)"))
                } else {
                    Ok(Some(s.to_ascii_lowercase()))
                }
            } else {
                Err(invalid(at, format!("must be {len} hex characters, got {s:?}")))
            }
        }
        Some(other) => Err(invalid(at, format!("must be a hex string, got {other}"))),
    }
}

/// Unix nanoseconds (string or number) as an RFC 3339 string; 0 or absent means "not set".
fn nanos(v: Option<&Value>, at: &str) -> Result<Option<Value>, AnalyticsError> {
    let n: Option<i128> = match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().parse::<i128>().map_err(|_| invalid(at, format!("must be unix nanoseconds, got {s:?}")))?),
        Some(Value::Number(n)) => Some(n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).ok_or_else(|| invalid(at, format!("must be unix nanoseconds, got {n}")))?),
        Some(other) => return Err(invalid(at, format!("must be unix nanoseconds, got {other}"))),
    };
    match n {
        None | Some(0) => Ok(None),
        Some(n) if n < 0 => Err(invalid(at, format!("must not be negative, got {n}"))),
        Some(n) => {
            let micros = i64::try_from(n / 1000).map_err(|_| invalid(at, "is out of range"))?;
            let dt = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| invalid(at, "is out of range"))?;
            Ok(Some(Value::String(dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))))
        }
    }
}

fn status(span: &Value, at: &str) -> Result<(Option<Value>, Option<Value>), AnalyticsError> {
    let Some(st) = span.get("status").filter(|s| !s.is_null()) else { return Ok((None, None)) };
    let code = match st.get("code") {
        None | Some(Value::Null) => "unset",
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => "unset",
            Some(1) => "ok",
            Some(2) => "error",
            _ => return Err(invalid(&format!("{at}.status.code"), format!("must be 0, 1 or 2, got {n}"))),
        },
        Some(Value::String(s)) => match s.as_str() {
            "STATUS_CODE_UNSET" | "UNSET" => "unset",
            "STATUS_CODE_OK" | "OK" => "ok",
            "STATUS_CODE_ERROR" | "ERROR" => "error",
            _ => return Err(invalid(&format!("{at}.status.code"), format!("unknown status code {s:?}"))),
        },
        Some(other) => return Err(invalid(&format!("{at}.status.code"), format!("must be a number, got {other}"))),
    };
    let message = st.get("message").filter(|m| m.as_str().is_some_and(|s| !s.is_empty())).cloned();
    Ok((Some(Value::String(code.into())), message))
}

const SPAN_KINDS: [&str; 6] = ["unspecified", "internal", "server", "client", "producer", "consumer"];

fn span_kind(v: Option<&Value>) -> Option<&'static str> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|k| SPAN_KINDS.get(k as usize).copied()),
        Value::String(s) => {
            let name = s.trim_start_matches("SPAN_KIND_").to_ascii_lowercase();
            SPAN_KINDS.iter().copied().find(|k| *k == name)
        }
        _ => None,
    }
}

fn raw(v: Value) -> Option<Blob> {
    (!v.is_null()).then(|| Blob::Text(serde_json::value::to_raw_value(&v).expect("JSON values serialise")))
}

/// Maps one OTLP span (with its resource and scope) to the fields of an ingest span.
fn map_span(span: &Value, resource: &Map<String, Value>, scope: &Value, at: &str) -> Result<RawSpan, AnalyticsError> {
    if !span.is_object() {
        return Err(invalid(at, "must be an object"));
    }
    let attrs = attributes(span.get("attributes"));
    let (status, status_message) = status(span, at)?;
    let operation_type = first(&attrs, &["gen_ai.operation.name", "openinference.span.kind"]).cloned();
    let input = first(&attrs, &["gen_ai.input.messages", "gen_ai.prompt", "input.value"]).map(json_or_text);
    let output = first(&attrs, &["gen_ai.output.messages", "gen_ai.completion", "output.value"]).map(json_or_text);

    let mut other: Map<String, Value> = attrs.iter().filter(|(k, _)| !COLUMN_ATTRIBUTES.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let events: Vec<Value> = span
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            json!({
                "name": e.get("name").cloned().unwrap_or(Value::Null),
                "time": nanos(e.get("timeUnixNano"), &format!("{at}.events")).ok().flatten(),
                "attributes": attributes(e.get("attributes")),
            })
        })
        .collect();
    let mut otel = Map::new();
    if let Some(kind) = span_kind(span.get("kind")) {
        otel.insert("span_kind".into(), kind.into());
    }
    if !resource.is_empty() {
        otel.insert("resource".into(), Value::Object(resource.clone()));
    }
    if let Some(name) = scope.get("name").filter(|n| !n.is_null()) {
        otel.insert("scope".into(), json!({"name": name, "version": scope.get("version")}));
    }
    if !events.is_empty() {
        otel.insert("events".into(), Value::Array(events));
    }
    if let Some(links) = span.get("links").filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) {
        otel.insert("links".into(), links.clone());
    }
    if !other.is_empty() {
        otel.insert("attributes".into(), Value::Object(std::mem::take(&mut other)));
    }
    let level = (status.as_ref().and_then(Value::as_str) == Some("error")).then(|| Value::String("error".into()));

    Ok(RawSpan {
        trace_id: hex_id(span.get("traceId"), &format!("{at}.traceId"), 32)?.map(Value::String),
        span_id: hex_id(span.get("spanId"), &format!("{at}.spanId"), 16)?.map(Value::String),
        parent_span_id: hex_id(span.get("parentSpanId"), &format!("{at}.parentSpanId"), 16)?.map(Value::String),
        name: span.get("name").cloned(),
        start_time: nanos(span.get("startTimeUnixNano"), &format!("{at}.startTimeUnixNano"))?,
        end_time: nanos(span.get("endTimeUnixNano"), &format!("{at}.endTimeUnixNano"))?,
        status,
        status_message,
        level,
        operation_type,
        provider: first(&attrs, &["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"]).cloned(),
        model: first(&attrs, &["gen_ai.response.model", "gen_ai.request.model", "llm.model_name"]).cloned(),
        input_tokens: first(&attrs, &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"]).cloned(),
        output_tokens: first(&attrs, &["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"]).cloned(),
        total_tokens: first(&attrs, &["gen_ai.usage.total_tokens", "llm.token_count.total"]).cloned(),
        cache_read_tokens: first(&attrs, &["gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read"]).cloned(),
        cache_write_tokens: first(&attrs, &["gen_ai.usage.cache_creation.input_tokens", "llm.token_count.prompt_details.cache_write"]).cloned(),
        reasoning_tokens: first(&attrs, &["gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning"]).cloned(),
        cost_usd: first(&attrs, &["gen_ai.usage.cost", "llm.cost.total"]).cloned(),
        conversation_id: first(&attrs, &["gen_ai.conversation.id"]).cloned(),
        session_id: first(&attrs, &["session.id", "langfuse.session.id"]).cloned(),
        end_user_id: first(&attrs, END_USER_ATTRIBUTES).or_else(|| first(resource, END_USER_ATTRIBUTES)).cloned(),
        completion_start_time: first(&attrs, &["langfuse.observation.completion_start_time"]).cloned(),
        tags: first(&attrs, &["tag.tags", "langfuse.trace.tags"]).cloned(),
        input: input.and_then(raw),
        output: output.and_then(raw),
        metadata: raw(json!({ "otel": otel })),
        ..RawSpan::default()
    })
}

/// Parses an OTLP/JSON `ExportTraceServiceRequest` into a validated batch (see `ingest::build_batch`).
/// Errors name the span by its path, e.g. `resourceSpans[0].scopeSpans[1].spans[4].endTimeUnixNano`.
pub fn parse_otlp(json: &str, caller: Option<&str>) -> Result<Batch, AnalyticsError> {
    let payload = crate::errors::parse_json_arg(json, "payload")?;
    let resource_spans = payload
        .get("resourceSpans")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("payload", "must be an OTLP ExportTraceServiceRequest: {\"resourceSpans\": [...]}"))?;
    let mut items: Vec<(String, RawSpan)> = Vec::new();
    for (r, rs) in resource_spans.iter().enumerate() {
        let resource = attributes(rs.get("resource").and_then(|res| res.get("attributes")));
        for (s, ss) in rs.get("scopeSpans").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let scope = ss.get("scope").cloned().unwrap_or(Value::Null);
            for (i, span) in ss.get("spans").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let at = format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                if items.len() == super::ingest::MAX_SPANS_PER_CALL {
                    return Err(AnalyticsError::new(
                        ErrorKind::LimitExceeded,
                        format!("payload: holds more than {} spans; split it into several calls", super::ingest::MAX_SPANS_PER_CALL),
                    ));
                }
                items.push((at.clone(), map_span(span, &resource, &scope, &at)?));
            }
        }
    }
    build_batch(items.into_iter(), caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

    /// A request as an OpenTelemetry OTLP/HTTP JSON exporter sends it for an agent run with one chat call (GenAI
    /// semantic conventions, v1.37 names) and one failed tool call. Shared with the #[pg_test] of ingest_otlp.
    const AGENT_RUN: &str = include_str!("../../../../tests/fixtures/otlp_agent_run.json");

    fn text(blob: &Option<Blob>) -> Value {
        match blob {
            Some(Blob::Text(t)) => serde_json::from_str(t.get()).unwrap(),
            other => panic!("expected JSON text, got {other:?}"),
        }
    }

    #[test]
    fn maps_genai_attributes_to_columns() {
        let b = parse_otlp(AGENT_RUN, Some(CALLER)).unwrap();
        assert_eq!(b.spans.len(), 3);
        // the batch is ordered by span id (see build_batch), not as sent: find each span by its role
        let find = |op: &str| b.spans.iter().find(|s| s.operation_type == Some(op)).unwrap_or_else(|| panic!("no {op} span"));
        let root = find("invoke_agent");
        assert_eq!(root.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(root.span_id, "eee19b7ec3c1b174");
        assert_eq!(root.parent_span_id, None);
        assert_eq!(root.operation_type, Some("invoke_agent"));
        assert_eq!(root.status, Some("ok"));
        assert_eq!(root.conversation_id.as_deref(), Some("conv-17"));
        assert_eq!(root.end_time.unwrap().0 - root.start_time.0, 4_200_000);

        let chat = find("chat");
        assert_eq!(chat.parent_span_id.as_deref(), Some("eee19b7ec3c1b174"));
        assert_eq!(chat.operation_type, Some("chat"));
        assert_eq!(chat.provider.as_deref(), Some("openai"));
        assert_eq!(chat.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!((chat.input_tokens, chat.output_tokens, chat.total_tokens, chat.cache_read_tokens), (Some(1850), Some(120), Some(1970), Some(1024)));
        assert_eq!(chat.status, Some("unset"));
        let input = text(&chat.input);
        assert_eq!(input[0]["parts"][0]["content"], "Where is my order?");
        let meta = text(&chat.metadata);
        assert_eq!(meta["otel"]["span_kind"], "client");
        assert_eq!(meta["otel"]["attributes"]["gen_ai.request.temperature"], 0.2);
        assert_eq!(meta["otel"]["attributes"]["gen_ai.response.finish_reasons"], json!(["stop"]));
        assert_eq!(meta["otel"]["resource"]["service.name"], "support-bot");
        assert_eq!(meta["otel"]["scope"]["name"], "opentelemetry.instrumentation.openai_v2");
        assert_eq!(meta["otel"]["events"][0]["name"], "gen_ai.first_token");
        assert!(meta["otel"]["attributes"].get("gen_ai.usage.input_tokens").is_none(), "mapped attributes are not repeated");

        let tool = find("execute_tool");
        assert_eq!(tool.operation_type, Some("execute_tool"));
        assert_eq!((tool.status, tool.level), (Some("error"), Some("error")));
        assert_eq!(tool.status_message.as_deref(), Some("order service timed out"));
    }

    #[test]
    fn openinference_attributes_are_understood() {
        let payload = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef",
            "name":"ChatOpenAI","startTimeUnixNano":"1763629200000000000","endTimeUnixNano":"1763629201000000000",
            "attributes":[{"key":"openinference.span.kind","value":{"stringValue":"LLM"}},
                          {"key":"llm.model_name","value":{"stringValue":"gpt-4o-mini"}},
                          {"key":"llm.token_count.prompt","value":{"intValue":"12"}},
                          {"key":"llm.token_count.completion","value":{"intValue":"3"}},
                          {"key":"input.value","value":{"stringValue":"hello"}},
                          {"key":"session.id","value":{"stringValue":"sess-1"}},
                          {"key":"user.id","value":{"stringValue":"customer-7"}}]}]}]}]}"#;
        let s = &parse_otlp(payload, Some(CALLER)).unwrap().spans[0];
        assert_eq!((s.operation_type, s.model.as_deref(), s.total_tokens), (Some("chat"), Some("gpt-4o-mini"), Some(15)));
        assert_eq!(text(&s.input), Value::String("hello".into()));
        assert_eq!(s.session_id.as_deref(), Some("sess-1"));
        assert_eq!(s.end_user_id.as_deref(), Some("customer-7"));
        assert!(text(&s.metadata)["otel"].get("attributes").is_none(), "user.id is a column, not repeated in metadata");
    }

    #[test]
    fn end_user_comes_from_the_span_else_from_its_resource() {
        let payload = |span_attrs: &str| {
            format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"enduser.id","value":{{"intValue":"1001"}}}}]}},
                "scopeSpans":[{{"spans":[{{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef",
                "name":"chat","startTimeUnixNano":"1763629200000000000","attributes":[{span_attrs}]}}]}}]}}]}}"#
            )
        };
        let s = &parse_otlp(&payload(""), Some(CALLER)).unwrap().spans[0];
        assert_eq!(s.end_user_id.as_deref(), Some("1001"));
        let s = &parse_otlp(&payload(r#"{"key":"langfuse.user.id","value":{"stringValue":"alice@example.com"}}"#), Some(CALLER)).unwrap().spans[0];
        assert_eq!(s.end_user_id.as_deref(), Some("alice@example.com"));
        let e = parse_otlp(&payload(r#"{"key":"enduser.id","value":{"stringValue":" "}}"#), Some(CALLER)).unwrap_err();
        assert_eq!(e.message, "resourceSpans[0].scopeSpans[0].spans[0].end_user_id: must not be empty");
    }

    #[test]
    fn bad_otlp_is_rejected_with_its_path() {
        let e = parse_otlp(&AGENT_RUN.replace("EEE19B7EC3C1B174", "XYZ"), Some(CALLER)).unwrap_err();
        assert_eq!(e.message, "resourceSpans[0].scopeSpans[0].spans[0].spanId: must be 16 hex characters, got \"XYZ\"");
        let e = parse_otlp(&AGENT_RUN.replace("\"1763629200900000000\"", "\"1763629200000000000\""), Some(CALLER)).unwrap_err();
        assert_eq!(e.message, "resourceSpans[0].scopeSpans[0].spans[2].end_time: is before start_time");
        let e = parse_otlp(r#"{"spans": []}"#, Some(CALLER)).unwrap_err();
        assert!(e.message.starts_with("payload: must be an OTLP ExportTraceServiceRequest"), "{}", e.message);
        let e = parse_otlp(&AGENT_RUN.replace("\"code\": 1", "\"code\": 7"), Some(CALLER)).unwrap_err();
        assert_eq!(e.message, "resourceSpans[0].scopeSpans[0].spans[0].status.code: must be 0, 1 or 2, got 7");
        let e = parse_otlp(&AGENT_RUN.replace("5B8EFFF798038103D269B633813FC60C", "00000000000000000000000000000000"), Some(CALLER)).unwrap_err();
        assert!(e.message.ends_with("traceId: must not be all zeros (an invalid OpenTelemetry id)"), "{}", e.message);
    }

    #[test]
    fn empty_request_is_an_empty_batch() {
        let b = parse_otlp(r#"{"resourceSpans": []}"#, Some(CALLER)).unwrap();
        assert_eq!(b.spans.len(), 0);
    }
}

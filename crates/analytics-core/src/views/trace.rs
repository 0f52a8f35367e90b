//! The trace view (`analytics.trace_view`): one trace as a self-contained HTML document. The span tree beside the
//! waterfall (latency, self time, critical path, tokens and cost per span, failed spans in red), a detail panel
//! with the selected span's inputs, outputs, metadata and timing, collapsible subtrees, keyboard navigation, and
//! rendering a window of rows at a time so a 20,000-span trace stays readable. Plain Rust, no database.
//!
//! The spans travel as JSON in depth-first order; each carries its depth, its parent's position and the size of
//! its subtree (which is contiguous in that order), so the script finds what to hide under a collapsed span
//! without walking the tree.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::page::{document, escape, json_string, thousands};
use crate::traces::svg::{colour, format_duration};
use crate::traces::tree::{SpanInfo, SpanTree};

pub const STYLE: &str = include_str!("trace.css");
pub const SCRIPT: &str = include_str!("trace.js");

/// What the view shows of a span beyond what the tree needs (`SpanInfo`). JSON columns arrive as JSON text.
#[derive(Debug, Clone, Default)]
pub struct SpanDisplay {
    pub name: String,
    pub operation_type: String,
    pub status: String,
    pub status_message: Option<String>,
    pub level: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// time to the first token, microseconds since the span's start
    pub first_token_us: Option<i64>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub metadata: Option<String>,
    pub tags: Option<String>,
}

/// A finite number as JSON (milliseconds rounded to the microsecond), `null` otherwise.
fn num(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{}", (v * 1000.0).round() / 1000.0);
    } else {
        out.push_str("null");
    }
}

/// A finite number as JSON at full precision (costs), `null` otherwise.
fn exact(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str("null");
    }
}

fn opt_str(out: &mut String, v: Option<&str>) {
    match v {
        Some(s) => out.push_str(&json_string(s)),
        None => out.push_str("null"),
    }
}

fn opt_int(out: &mut String, v: Option<i64>) {
    match v {
        Some(x) => {
            let _ = write!(out, "{x}");
        }
        None => out.push_str("null"),
    }
}

/// JSON text from the database is written as it is; anything that is not JSON becomes a string (never breaks
/// the document).
fn raw_json(out: &mut String, v: Option<&str>) {
    match v {
        Some(s) if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() => out.push_str(s),
        Some(s) => out.push_str(&json_string(s)),
        None => out.push_str("null"),
    }
}

/// The document of one trace. `spans`, `display` and `tree` are index-aligned; `unix_offset_us` is added to the
/// span times to make them Unix microseconds; at most `max_spans` spans are shown (depth-first order).
pub fn render(trace_id: &str, spans: &[SpanInfo], display: &[SpanDisplay], tree: &SpanTree, unix_offset_us: i64, max_spans: usize) -> String {
    assert_eq!(spans.len(), display.len(), "one display row per span");
    let trace_start = tree.roots.iter().map(|&r| tree.rollup[r].start_us).min().unwrap_or(0);
    let trace_end = tree.roots.iter().map(|&r| tree.rollup[r].end_us).max().unwrap_or(trace_start);
    let shown = tree.preorder.len().min(max_spans);
    let errors = spans.iter().filter(|s| s.is_error).count();
    let tokens: i64 = spans.iter().map(|s| s.total_tokens).sum();
    let cost: f64 = spans.iter().map(|s| s.cost_usd).sum();
    let mut colours: BTreeMap<&str, &str> = BTreeMap::new();

    let mut json = String::with_capacity(512 * shown + 256);
    json.push_str("{\"trace_id\":");
    json.push_str(&json_string(trace_id));
    let _ = write!(json, ",\"span_count\":{},\"shown\":{shown},\"start_unix_ms\":", spans.len());
    num(&mut json, trace_start.saturating_add(unix_offset_us) as f64 / 1000.0);
    json.push_str(",\"duration_ms\":");
    num(&mut json, (trace_end - trace_start) as f64 / 1000.0);
    json.push_str(",\"spans\":[");
    for (k, &i) in tree.preorder[..shown].iter().enumerate() {
        let s = &spans[i];
        let d = &display[i];
        let r = tree.rollup[i];
        colours.entry(d.operation_type.as_str()).or_insert_with(|| colour(&d.operation_type));
        if k > 0 {
            json.push(',');
        }
        json.push_str("{\"span_id\":");
        json.push_str(&json_string(&s.span_id));
        json.push_str(",\"parent_span_id\":");
        opt_str(&mut json, s.parent_span_id.as_deref());
        let parent = tree.parent[i].map(|p| tree.ordinal[p] as i64).unwrap_or(-1);
        let size = (r.span_count as usize).min(shown - k).max(1);
        let _ = write!(json, ",\"parent\":{parent},\"depth\":{},\"size\":{size},\"name\":", tree.depth[i]);
        json.push_str(&json_string(&d.name));
        json.push_str(",\"operation_type\":");
        json.push_str(&json_string(&d.operation_type));
        json.push_str(",\"status\":");
        json.push_str(&json_string(&d.status));
        json.push_str(",\"status_message\":");
        opt_str(&mut json, d.status_message.as_deref());
        json.push_str(",\"level\":");
        opt_str(&mut json, d.level.as_deref());
        json.push_str(",\"provider\":");
        opt_str(&mut json, d.provider.as_deref());
        json.push_str(",\"model\":");
        opt_str(&mut json, d.model.as_deref());
        json.push_str(",\"offset_ms\":");
        num(&mut json, (s.start_us - trace_start) as f64 / 1000.0);
        json.push_str(",\"duration_ms\":");
        num(&mut json, (tree.effective_end_us[i] - s.start_us) as f64 / 1000.0);
        json.push_str(",\"self_ms\":");
        num(&mut json, tree.self_us[i] as f64 / 1000.0);
        json.push_str(",\"first_token_ms\":");
        match d.first_token_us {
            Some(us) => num(&mut json, us as f64 / 1000.0),
            None => json.push_str("null"),
        }
        let _ = write!(
            json,
            ",\"open\":{},\"critical\":{},\"orphan\":{},\"cycle\":{},\"input_tokens\":",
            s.end_us.is_none(),
            tree.on_critical_path[i],
            tree.orphan[i],
            tree.cycle[i]
        );
        opt_int(&mut json, d.input_tokens);
        json.push_str(",\"output_tokens\":");
        opt_int(&mut json, d.output_tokens);
        let _ = write!(json, ",\"total_tokens\":{},\"cost_usd\":", s.total_tokens);
        exact(&mut json, s.cost_usd);
        let _ = write!(
            json,
            ",\"subtree_spans\":{},\"subtree_errors\":{},\"subtree_tokens\":{},\"subtree_cost_usd\":",
            r.span_count, r.error_count, r.total_tokens
        );
        exact(&mut json, r.cost_usd);
        json.push_str(",\"input\":");
        raw_json(&mut json, d.input.as_deref());
        json.push_str(",\"output\":");
        raw_json(&mut json, d.output.as_deref());
        json.push_str(",\"metadata\":");
        raw_json(&mut json, d.metadata.as_deref());
        json.push_str(",\"tags\":");
        raw_json(&mut json, d.tags.as_deref());
        json.push('}');
    }
    json.push_str("],\"colours\":{");
    for (k, (op, c)) in colours.iter().enumerate() {
        if k > 0 {
            json.push(',');
        }
        let _ = write!(json, "{}:\"{c}\"", json_string(op));
    }
    json.push_str("}}");

    let root_name = tree.roots.first().map(|&r| display[r].name.as_str()).unwrap_or("");
    let mut body = String::with_capacity(2048);
    let _ = write!(
        body,
        "<header class=\"top\"><h1>{}</h1><div class=\"chips\"><span>trace <b>{}</b></span><span><b>{}</b> spans</span>\
         <span><b class=\"{}\">{}</b> errors</span><span><b>{}</b></span><span><b>{}</b> tokens</span>\
         <span><b>${:.4}</b></span></div></header>",
        escape(root_name),
        escape(trace_id),
        spans.len(),
        if errors > 0 { "err" } else { "" },
        errors,
        format_duration(trace_end - trace_start),
        thousands(tokens),
        cost
    );
    if shown < spans.len() {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">Showing the first {shown} of {} spans (depth-first). Raise max_spans to see more.</p>",
            spans.len()
        );
    }
    body.push_str(
        "<main class=\"layout\"><section class=\"spans\" aria-label=\"Spans\">\
         <div class=\"find\"><input type=\"search\" id=\"find\" placeholder=\"Find a span: name, model, id or error text (Enter: next, Shift+Enter: previous)\" \
         aria-label=\"Find a span\" aria-describedby=\"find-count\" autocomplete=\"off\"><span id=\"find-count\" role=\"status\"></span></div>\
         <div class=\"cols\" aria-hidden=\"true\"><span>Span</span><span class=\"axis\" id=\"axis\"></span><span>Duration</span></div>\
         <div id=\"viewport\" role=\"tree\" aria-label=\"Span tree; arrow keys move, left and right collapse and expand\" tabindex=\"0\">\
         <div id=\"spacer\"><div id=\"rows\"></div></div></div>\
         <div class=\"legend\" aria-hidden=\"true\">",
    );
    for op in colours.keys() {
        // the operation types come from the table's CHECK list; escaped all the same
        let _ = write!(body, "<span><i class=\"op-{}\"></i>{}</span>", colours_class(op), escape(op));
    }
    body.push_str(
        "<span><i class=\"crit\"></i>critical path</span></div></section>\
         <aside id=\"detail\" aria-label=\"Selected span\" aria-live=\"polite\"><p class=\"muted\">Select a span.</p></aside></main>\
         <noscript><p class=\"notice\">This view needs JavaScript to draw the spans.</p></noscript>",
    );
    let mut style = String::from(STYLE);
    for (op, c) in &colours {
        let _ = write!(style, ".legend i.op-{}{{background:{c}}}", colours_class(op));
    }
    let title = format!("Trace {trace_id}");
    document(&title, &style, &body, &json, SCRIPT)
}

/// A CSS class name from an operation type (letters, digits and `_` kept, the rest `-`).
fn colours_class(op: &str) -> String {
    op.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: i64, end: Option<i64>, error: bool) -> SpanInfo {
        SpanInfo {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            start_us: start,
            end_us: end,
            total_tokens: 10,
            cost_usd: 0.5,
            is_error: error,
        }
    }

    fn show(name: &str, op: &str) -> SpanDisplay {
        SpanDisplay { name: name.into(), operation_type: op.into(), status: "ok".into(), ..Default::default() }
    }

    fn data_of(doc: &str) -> serde_json::Value {
        let start = doc.find("id=\"view-data\">").unwrap() + "id=\"view-data\">".len();
        let end = start + doc[start..].find("</script>").unwrap();
        serde_json::from_str(&doc[start..end]).unwrap()
    }

    fn sample() -> (Vec<SpanInfo>, Vec<SpanDisplay>) {
        let mut spans = vec![
            span("c", Some("root"), 2_000, Some(5_000), false),
            span("root", None, 0, Some(10_000), false),
            span("b", Some("root"), 1_000, None, true),
            span("b1", Some("b"), 1_500, Some(3_000), false),
        ];
        let mut display = vec![show("tool", "execute_tool"), show("agent", "invoke_agent"), show("llm", "chat"), show("retrieve", "retrieval")];
        display[2].status = "error".into();
        display[2].input = Some(r#"{"messages": [{"role": "user", "content": "hi"}]}"#.into());
        display[2].tags = Some(r#"["a", "b"]"#.into());
        spans[2].cost_usd = 0.005825;
        (spans, display)
    }

    #[test]
    fn spans_in_depth_first_order_with_parent_depth_and_subtree_size() {
        let (spans, display) = sample();
        let tree = SpanTree::build(&spans);
        let doc = render("t-1", &spans, &display, &tree, 0, 100);
        let d = data_of(&doc);
        let ids: Vec<&str> = d["spans"].as_array().unwrap().iter().map(|s| s["span_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["root", "b", "b1", "c"]);
        let field = |k: &str| d["spans"].as_array().unwrap().iter().map(|s| s[k].as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(field("parent"), [-1, 0, 1, 0]);
        assert_eq!(field("depth"), [0, 1, 2, 1]);
        assert_eq!(field("size"), [4, 2, 1, 1]);
        assert_eq!(d["span_count"], 4);
        assert_eq!(d["duration_ms"], 10.0);
        let b = &d["spans"][1];
        assert_eq!(b["offset_ms"], 1.0);
        assert_eq!(b["duration_ms"], 2.0, "an open span ends with its last child");
        assert_eq!(b["open"], true);
        assert_eq!(b["status"], "error");
        assert_eq!(b["input"]["messages"][0]["content"], "hi");
        assert_eq!(b["tags"][1], "b");
        assert_eq!(b["cost_usd"], 0.005825, "costs are not rounded");
        assert_eq!(d["spans"][0]["critical"], true);
        assert_eq!(d["spans"][0]["subtree_tokens"], 40);
        assert_eq!(d["colours"]["chat"], "#4f7cff");
        assert!(doc.contains("<b class=\"err\">1</b> errors"));
    }

    #[test]
    fn truncation_clips_subtree_sizes_and_says_so() {
        let (spans, display) = sample();
        let tree = SpanTree::build(&spans);
        let doc = render("t-1", &spans, &display, &tree, 0, 2);
        let d = data_of(&doc);
        assert_eq!(d["shown"], 2);
        assert_eq!(d["spans"].as_array().unwrap().len(), 2);
        assert_eq!(d["spans"][0]["size"], 2);
        assert_eq!(d["spans"][1]["size"], 1);
        assert!(doc.contains("Showing the first 2 of 4 spans"));
    }

    #[test]
    fn user_text_never_becomes_markup() {
        let spans = vec![span("<s>", None, 0, Some(1), false)];
        let mut display = vec![show("<script>window.__xss=1</script>", "chat")];
        display[0].input = Some(r#""\"><img src=x onerror=alert(1)>""#.into());
        display[0].metadata = Some("not json </script><script>x()</script>".into());
        display[0].model = Some("javascript:alert(1)".into());
        let tree = SpanTree::build(&spans);
        let doc = render("</title><script>t()</script>", &spans, &display, &tree, 0, 10);
        // the only script and style elements are the document's own
        assert_eq!(doc.matches("<script").count(), 2);
        assert_eq!(doc.matches("</script>").count(), 2);
        assert!(!doc.contains("<img"));
        assert!(doc.contains("<h1>&lt;script&gt;window.__xss=1&lt;/script&gt;</h1>"));
        assert!(doc.contains("<title>Trace &lt;/title&gt;&lt;script&gt;t()&lt;/script&gt;</title>"));
        let d = data_of(&doc);
        assert_eq!(d["spans"][0]["name"], "<script>window.__xss=1</script>");
        assert_eq!(d["spans"][0]["input"], "\"><img src=x onerror=alert(1)>");
        assert_eq!(d["spans"][0]["metadata"], "not json </script><script>x()</script>");
        assert_eq!(d["trace_id"], "</title><script>t()</script>");
    }

    #[test]
    fn script_and_style_match_the_policy() {
        let (spans, display) = sample();
        let tree = SpanTree::build(&spans);
        let doc = render("t", &spans, &display, &tree, 0, 100);
        let start = doc.find("<style>").unwrap() + 7;
        let style = &doc[start..start + doc[start..].find("</style>").unwrap()];
        assert!(doc.contains(&format!("style-src {}", super::super::page::csp_hash(style))));
        assert!(doc.contains(&format!("script-src {}", super::super::page::csp_hash(SCRIPT))));
        assert!(doc.contains(&format!("<script>{SCRIPT}</script>")));
    }

    #[test]
    fn a_long_chain_renders() {
        let spans: Vec<SpanInfo> = (0..20_000)
            .map(|k| span(&format!("s{k}"), (k > 0).then(|| format!("s{}", k - 1)).as_deref(), k, Some(40_000 - k), false))
            .collect();
        let display: Vec<SpanDisplay> = (0..20_000).map(|k| show(&format!("step {k}"), "chain")).collect();
        let tree = SpanTree::build(&spans);
        let d = data_of(&render("deep", &spans, &display, &tree, 0, 20_000));
        assert_eq!(d["spans"][19_999]["depth"], 19_999);
        assert_eq!(d["spans"][0]["size"], 20_000);
    }
}

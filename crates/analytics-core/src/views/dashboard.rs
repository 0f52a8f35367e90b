//! The dashboard (`analytics.dashboard_view`): an owner's LLM application over a time range as a self-contained
//! HTML document. Totals; requests, error rate, p50/p95 latency, tokens and cost per bucket as SVG charts, with
//! the anomalies not yet resolved marked on the chart of their metric (each marker links to the anomaly's row);
//! the top models and operations; the anomalies; running experiments; recent traces and traces with errors. Plain
//! Rust, no database: it takes the document `analytics._dashboard_view_data` assembles.

use std::fmt::Write;

use serde_json::Value;

use super::page::{document, escape, number, thousands, RENDERED_SCRIPT};
use crate::traces::svg::format_duration;

pub const STYLE: &str = include_str!("dashboard.css");

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// A count as the page shows it: 1234567.0 -> "1,234,567".
pub fn int(v: f64) -> String {
    thousands(v.round() as i64)
}

pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v.abs() < 0.01 {
        format!("${v:.5}")
    } else {
        format!("${v:.2}")
    }
}

fn ms(v: f64) -> String {
    format_duration((v * 1000.0).round() as i64)
}

/// The smallest 1, 2, 2.5 or 5 times a power of ten at or above `v` (> 0): the top of a chart's axis.
pub fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v * (1.0 - 1e-12)).unwrap_or(10.0 * p)
}

/// "1 week", "1 day", "6 hours", "5 minutes", "30 seconds".
pub fn bucket_label(seconds: f64) -> String {
    let s = seconds.round() as i64;
    for (unit, n) in [("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)] {
        if s >= n && s % n == 0 {
            let k = s / n;
            return format!("{k} {unit}{}", if k == 1 { "" } else { "s" });
        }
    }
    format!("{s} seconds")
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Which chart an anomaly's metric is drawn on (anomaly metrics: latency_p95, error_rate, cost, tokens,
/// request_count, or custom names, which are listed but not drawn).
pub fn chart_of(metric: &str) -> Option<&'static str> {
    match metric {
        "request_count" | "requests" => Some("requests"),
        "error_rate" | "errors" | "error_count" => Some("errors"),
        m if m.starts_with("latency") => Some("latency"),
        "tokens" | "total_tokens" | "input_tokens" | "output_tokens" => Some("tokens"),
        "cost" | "cost_usd" => Some("cost"),
        _ => None,
    }
}

struct Line<'a> {
    label: &'a str,
    colour: &'a str,
    /// (bucket start in epoch seconds, value)
    points: Vec<(f64, f64)>,
    bars: bool,
}

struct Marker {
    t: f64,
    anchor: String,
    label: String,
}

const W: f64 = 520.0;
const H: f64 = 190.0;
const PAD_L: f64 = 84.0;
const PAD_R: f64 = 10.0;
const PAD_T: f64 = 14.0;
const PAD_B: f64 = 24.0;

/// The time label of an epoch second: "MM-DD HH:MM" (UTC), or "YYYY-MM-DD" for ranges of days.
fn time_label(t: f64, days: bool) -> String {
    let text = crate::textfmt::rfc3339_micros((t * 1e6) as i64);
    if days {
        text[..10].to_string()
    } else {
        format!("{} {}", &text[5..10], &text[11..16])
    }
}

#[allow(clippy::too_many_arguments)]
fn chart(out: &mut String, id: &str, title: &str, range: (f64, f64), bucket_s: f64, lines: &[Line], fmt: fn(f64) -> String, markers: &[Marker]) {
    let (t0, t1) = range;
    let max = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { nice_ceiling(max * 1.05) } else { 1.0 };
    let x = |t: f64| PAD_L + (t - t0) / (t1 - t0) * (W - PAD_L - PAD_R);
    let y = |v: f64| PAD_T + (1.0 - v / top) * (H - PAD_T - PAD_B);
    let days = t1 - t0 > 3.0 * 86400.0;
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"chart-{id}\" data-chart=\"{id}\"><figcaption>{}</figcaption>\
         <svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
         <line class=\"axis\" x1=\"{PAD_L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>\
         <text class=\"tick\" x=\"{PAD_L}\" y=\"{:.1}\">{}</text><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        escape(title),
        escape(title),
        W - PAD_R,
        y(0.0),
        y(0.0),
        PAD_L - 6.0,
        y(top) + 4.0,
        fmt(top),
        PAD_L - 6.0,
        y(0.0) + 4.0,
        H - 6.0,
        time_label(t0, days),
        W - PAD_R,
        H - 6.0,
        time_label(t1, days)
    );
    let bar_w = ((bucket_s / (t1 - t0)) * (W - PAD_L - PAD_R) - 1.0).max(1.0);
    for line in lines {
        if line.bars {
            for &(t, v) in &line.points {
                let _ = write!(
                    out,
                    "<rect class=\"bar\" fill=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\"><title>{} {}: {}</title></rect>",
                    line.colour,
                    x(t),
                    y(v),
                    (y(0.0) - y(v)).max(0.0),
                    escape(line.label),
                    time_label(t, false),
                    fmt(v)
                );
            }
        } else if !line.points.is_empty() {
            // one polyline per run of consecutive buckets: a bucket without data is a gap, not a slope
            let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
            for &(t, v) in &line.points {
                match runs.last_mut() {
                    Some(run) if t - run[run.len() - 1].0 <= bucket_s * 1.5 => run.push((t, v)),
                    _ => runs.push(vec![(t, v)]),
                }
            }
            for run in runs.iter().filter(|r| r.len() > 1) {
                let pts: Vec<String> = run.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t + bucket_s / 2.0), y(v))).collect();
                let _ = write!(out, "<polyline class=\"line\" stroke=\"{}\" points=\"{}\"/>", line.colour, pts.join(" "));
            }
            for &(t, v) in &line.points {
                let _ = write!(
                    out,
                    "<circle class=\"pt\" fill=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"><title>{} {}: {}</title></circle>",
                    line.colour,
                    x(t + bucket_s / 2.0),
                    y(v),
                    escape(line.label),
                    time_label(t, false),
                    fmt(v)
                );
            }
        }
    }
    for m in markers {
        let mx = x(m.t + bucket_s / 2.0).clamp(PAD_L, W - PAD_R);
        let _ = write!(
            out,
            "<a href=\"#{}\" class=\"anomaly-link\"><g class=\"anomaly-marker\"><line x1=\"{mx:.1}\" x2=\"{mx:.1}\" y1=\"{PAD_T}\" y2=\"{:.1}\"/>\
             <path d=\"M{:.1},{:.1} l5,-9 l-10,0 z\"/><title>{}</title></g></a>",
            escape(&m.anchor),
            y(0.0),
            mx,
            PAD_T + 1.0,
            escape(&m.label)
        );
    }
    out.push_str("</svg>");
    if lines.len() > 1 {
        out.push_str("<div class=\"legend\">");
        for l in lines {
            let _ = write!(out, "<span><i data-colour=\"{}\"></i>{}</span>", l.colour, escape(l.label));
        }
        out.push_str("</div>");
    }
    out.push_str("</figure>");
}

fn series(rows: &[Value], key: &str) -> Vec<(f64, f64)> {
    rows.iter().filter_map(|r| Some((number(r, "t")?, number(r, key)?))).collect()
}

fn trace_table(out: &mut String, id: &str, title: &str, rows: &[Value], empty: &str) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}</p></section>", escape(empty));
        return;
    }
    out.push_str("<table class=\"grid\"><thead><tr><th>Trace</th><th>Root span</th><th>Start (UTC)</th><th>Duration</th><th>Spans</th><th>Errors</th><th>Cost</th></tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            out,
            "<tr data-trace-id=\"{0}\"><td><code>{0}</code></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td class=\"{5}\">{6}</td><td>{7}</td></tr>",
            escape(s(r, "trace_id")),
            escape(s(r, "name")),
            escape(s(r, "start")),
            number(r, "duration_ms").map(ms).unwrap_or_else(|| "\u{2013}".into()),
            number(r, "spans").map(int).unwrap_or_default(),
            if number(r, "errors").unwrap_or(0.0) > 0.0 { "err" } else { "" },
            number(r, "errors").map(int).unwrap_or_default(),
            usd(number(r, "cost_usd").unwrap_or(0.0))
        );
    }
    out.push_str("</tbody></table></section>");
}

fn breakdown(out: &mut String, id: &str, title: &str, rows: &[Value], what: &str) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">None in this range.</p></section>");
        return;
    }
    let max = rows.iter().filter_map(|r| number(r, "calls")).fold(0.0_f64, f64::max).max(1.0);
    let _ = write!(out, "<table class=\"grid\"><thead><tr><th>{}</th><th>Spans</th><th></th><th>Errors</th><th>p95</th><th>Tokens</th><th>Cost</th></tr></thead><tbody>", escape(what));
    for r in rows {
        let calls = number(r, "calls").unwrap_or(0.0);
        let errors = number(r, "errors").unwrap_or(0.0);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><svg class=\"share\" width=\"120\" height=\"10\" role=\"img\" aria-label=\"{:.0}% of the busiest\"><rect width=\"{:.1}\" height=\"10\" rx=\"2\"/></svg></td>\
             <td class=\"{}\">{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(s(r, "name")),
            int(calls),
            calls / max * 100.0,
            calls / max * 120.0,
            if errors > 0.0 { "err" } else { "" },
            int(errors),
            pct(if calls > 0.0 { errors / calls } else { 0.0 }),
            number(r, "p95_ms").map(ms).unwrap_or_else(|| "\u{2013}".into()),
            int(number(r, "tokens").unwrap_or(0.0)),
            usd(number(r, "cost_usd").unwrap_or(0.0))
        );
    }
    out.push_str("</tbody></table></section>");
}

/// The dashboard document.
pub fn render(data: &Value) -> String {
    let range = (number(data, "from_epoch").unwrap_or(0.0), number(data, "to_epoch").unwrap_or(1.0));
    let bucket_s = number(data, "bucket_seconds").unwrap_or(3600.0);
    let totals = data.get("totals").cloned().unwrap_or(Value::Null);
    let requests = number(&totals, "requests").unwrap_or(0.0);
    let errors = number(&totals, "errors").unwrap_or(0.0);
    let anomalies = arr(data, "anomalies");
    let mut body = String::with_capacity(64 * 1024);
    let _ = write!(
        body,
        "<header class=\"top\"><h1>Dashboard</h1><div class=\"chips\"><span><b>{}</b> \u{2192} <b>{}</b> (UTC)</span>\
         <span>bucket <b>{}</b></span></div>\
         <nav aria-label=\"Sections\"><a href=\"#charts\">Charts</a><a href=\"#models\">Models</a><a href=\"#operations\">Operations</a>\
         <a href=\"#anomalies\">Anomalies ({})</a><a href=\"#experiments\">Experiments</a><a href=\"#failed-traces\">Traces with errors</a>\
         <a href=\"#recent-traces\">Recent traces</a></nav></header><main class=\"page\">",
        escape(s(data, "from")),
        escape(s(data, "to")),
        bucket_label(bucket_s),
        anomalies.len()
    );
    let _ = write!(
        body,
        "<section class=\"totals\" aria-label=\"Totals\"><div><span>Requests</span><b>{}</b></div><div><span>Error rate</span><b class=\"{}\">{}</b></div>\
         <div><span>Latency p50</span><b>{}</b></div><div><span>Latency p95</span><b>{}</b></div><div><span>Tokens</span><b>{}</b></div>\
         <div><span>Cost</span><b>{}</b></div><div><span>Open anomalies</span><b class=\"{}\">{}</b></div></section>",
        int(requests),
        if errors > 0.0 { "err" } else { "" },
        if requests > 0.0 { pct(errors / requests) } else { "\u{2013}".into() },
        number(&totals, "latency_p50_ms").map(ms).unwrap_or_else(|| "\u{2013}".into()),
        number(&totals, "latency_p95_ms").map(ms).unwrap_or_else(|| "\u{2013}".into()),
        int(number(&totals, "total_tokens").unwrap_or(0.0)),
        usd(number(&totals, "cost_usd").unwrap_or(0.0)),
        if anomalies.is_empty() { "" } else { "err" },
        anomalies.len()
    );

    // anomalies per chart
    let markers_of = |chart_id: &str| -> Vec<Marker> {
        anomalies
            .iter()
            .enumerate()
            .filter(|(_, a)| chart_of(s(a, "metric")) == Some(chart_id))
            .filter_map(|(k, a)| {
                Some(Marker {
                    t: number(a, "t")?,
                    anchor: format!("anomaly-{}", k + 1),
                    label: format!(
                        "{} anomaly, {}: {} at {}",
                        s(a, "severity"),
                        s(a, "metric"),
                        number(a, "observed").map(|v| format!("{v:.4}")).unwrap_or_default(),
                        s(a, "bucket_start")
                    ),
                })
            })
            .collect()
    };
    let req = arr(data, "requests");
    let usage = arr(data, "usage");
    body.push_str("<section id=\"charts\" class=\"charts\">");
    chart(
        &mut body,
        "requests",
        "Requests (traces) per bucket",
        range,
        bucket_s,
        &[Line { label: "requests", colour: "#4f7cff", points: series(req, "requests"), bars: true }],
        int,
        &markers_of("requests"),
    );
    chart(
        &mut body,
        "errors",
        "Error rate of requests",
        range,
        bucket_s,
        &[Line { label: "error rate", colour: "#d62828", points: series(req, "error_rate"), bars: false }],
        pct,
        &markers_of("errors"),
    );
    chart(
        &mut body,
        "latency",
        "Latency of requests: p50 and p95",
        range,
        bucket_s,
        &[
            Line { label: "p50", colour: "#20a39e", points: series(req, "p50"), bars: false },
            Line { label: "p95", colour: "#e8590c", points: series(req, "p95"), bars: false },
        ],
        ms,
        &markers_of("latency"),
    );
    chart(
        &mut body,
        "tokens",
        "Tokens (every span)",
        range,
        bucket_s,
        &[Line { label: "tokens", colour: "#9b59d0", points: series(usage, "tokens"), bars: true }],
        int,
        &markers_of("tokens"),
    );
    chart(
        &mut body,
        "cost",
        "Cost (every span)",
        range,
        bucket_s,
        &[Line { label: "cost", colour: "#2b8a3e", points: series(usage, "cost"), bars: true }],
        usd,
        &markers_of("cost"),
    );
    body.push_str("</section>");
    breakdown(&mut body, "models", "Top models", arr(data, "models"), "Model");
    breakdown(&mut body, "operations", "Top operations", arr(data, "operations"), "Operation");

    body.push_str("<section id=\"anomalies\"><h2>Anomalies not yet resolved</h2>");
    if anomalies.is_empty() {
        body.push_str("<p class=\"muted\">None in this range.</p>");
    } else {
        body.push_str("<table class=\"grid\"><thead><tr><th>Metric</th><th>Dimension</th><th>Bucket (UTC)</th><th>Observed</th><th>Expected</th><th>Severity</th><th>Status</th><th>Detector</th></tr></thead><tbody>");
        for (k, a) in anomalies.iter().enumerate() {
            let dim = a.get("dimension").filter(|d| d.as_object().map(|o| !o.is_empty()).unwrap_or(false)).map(Value::to_string).unwrap_or_default();
            let _ = write!(
                body,
                "<tr id=\"anomaly-{}\" class=\"severity-{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                k + 1,
                escape(s(a, "severity")),
                escape(s(a, "metric")),
                escape(&dim),
                escape(s(a, "bucket_start")),
                number(a, "observed").map(|v| format!("{v:.4}")).unwrap_or_default(),
                number(a, "expected").map(|v| format!("{v:.4}")).unwrap_or_else(|| "\u{2013}".into()),
                escape(s(a, "severity")),
                escape(s(a, "status")),
                escape(s(a, "method"))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section id=\"experiments\"><h2>Running experiments</h2>");
    let experiments = arr(data, "experiments");
    if experiments.is_empty() {
        body.push_str("<p class=\"muted\">None running.</p>");
    } else {
        body.push_str("<table class=\"grid\"><thead><tr><th>Experiment</th><th>Name</th><th>Since (UTC)</th><th>Variants</th><th>Units</th><th>Primary metric</th></tr></thead><tbody>");
        for e in experiments {
            let _ = write!(
                body,
                "<tr data-experiment=\"{0}\"><td><code>{0}</code></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td></tr>",
                escape(s(e, "key")),
                escape(s(e, "name")),
                escape(s(e, "started_at")),
                number(e, "variants").map(int).unwrap_or_default(),
                number(e, "units").map(int).unwrap_or_default(),
                escape(s(e, "primary_metric"))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    trace_table(&mut body, "failed-traces", "Traces with errors", arr(data, "failed_traces"), "No trace with an error in this range.");
    trace_table(&mut body, "recent-traces", "Recent traces", arr(data, "recent_traces"), "No trace in this range.");
    body.push_str("</main>");
    let mut style = String::from(STYLE);
    for c in ["#4f7cff", "#d62828", "#20a39e", "#e8590c", "#9b59d0", "#2b8a3e"] {
        let _ = write!(style, ".legend i[data-colour=\"{c}\"]{{background:{c}}}");
    }
    document("Dashboard", &style, &body, "{}", RENDERED_SCRIPT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z", "from_epoch": 1795132800.0, "to_epoch": 1795219200.0,
            "bucket_seconds": 3600.0,
            "totals": {"requests": 120, "errors": 6, "latency_p50_ms": 800.0, "latency_p95_ms": 4200.0, "total_tokens": 150000, "cost_usd": 1.25},
            "requests": [{"t": 1795132800.0, "requests": 10, "errors": 1, "error_rate": 0.1, "p50": 700.0, "p95": 3000.0},
                         {"t": 1795136400.0, "requests": 20, "errors": 0, "error_rate": 0.0, "p50": 900.0, "p95": 5000.0}],
            "usage": [{"t": 1795132800.0, "tokens": 1000, "cost": 0.5}],
            "models": [{"name": "gpt-4o", "calls": 50, "errors": 2, "tokens": 100000, "cost_usd": 1.0, "p95_ms": 3000.0}],
            "operations": [],
            "anomalies": [{"metric": "latency_p95", "dimension": {}, "t": 1795136400.0, "bucket_start": "2026-11-20 01:00 UTC",
                           "observed": 5000.0, "expected": 3000.0, "severity": "warning", "status": "open", "method": "surprise"},
                          {"metric": "<custom>", "dimension": {"model": "<x>"}, "t": 1795136400.0, "bucket_start": "2026-11-20 01:00 UTC",
                           "observed": 1.0, "severity": "info", "status": "acknowledged", "method": "zscore"}],
            "experiments": [{"key": "cta", "name": "<i>CTA</i>", "started_at": "2026-11-19 10:00 UTC", "variants": 2, "units": 1200, "primary_metric": "signup"}],
            "failed_traces": [{"trace_id": "t-<1>", "name": "agent", "start": "2026-11-20 00:10:00", "duration_ms": 1200.0, "spans": 4, "errors": 1, "cost_usd": 0.01}],
            "recent_traces": []
        })
    }

    #[test]
    fn anomalies_are_marked_on_their_chart_and_linked_to_their_row() {
        let doc = render(&data());
        let latency = &doc[doc.find("id=\"chart-latency\"").unwrap()..];
        let latency = &latency[..latency.find("</figure>").unwrap()];
        assert_eq!(latency.matches("class=\"anomaly-marker\"").count(), 1);
        assert!(latency.contains("<a href=\"#anomaly-1\""));
        assert!(doc.contains("<tr id=\"anomaly-1\""));
        // a custom metric is listed, not drawn
        assert_eq!(doc.matches("class=\"anomaly-marker\"").count(), 1);
        assert!(doc.contains("<tr id=\"anomaly-2\""));
        assert!(doc.contains("&lt;custom&gt;"));
        assert!(doc.contains("Anomalies (2)"));
    }

    #[test]
    fn charts_totals_and_tables() {
        let doc = render(&data());
        for id in ["requests", "errors", "latency", "tokens", "cost"] {
            assert!(doc.contains(&format!("id=\"chart-{id}\"")), "{id}");
        }
        assert_eq!(doc.matches("<rect class=\"bar\"").count(), 2 + 1 + 1);
        assert!(doc.contains("<b class=\"err\">5.0%</b>"));
        assert!(doc.contains("<b>150,000</b>"));
        assert!(doc.contains("<td>&lt;i&gt;CTA&lt;/i&gt;</td>"));
        assert!(doc.contains("<code>t-&lt;1&gt;</code>"));
        assert!(doc.contains("No trace in this range."));
        assert_eq!(doc.matches("<script").count(), 2);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(int(1234567.0), "1,234,567");
        assert_eq!(int(0.0), "0");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.0042), "$0.00420");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(chart_of("latency_p95"), Some("latency"));
        assert_eq!(bucket_label(86400.0), "1 day");
        assert_eq!(nice_ceiling(231000.0), 250000.0);
        assert_eq!(nice_ceiling(0.55), 1.0);
        assert_eq!(nice_ceiling(158.0), 200.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(bucket_label(900.0), "15 minutes");
        assert_eq!(bucket_label(5400.0), "90 minutes");
        assert_eq!(chart_of("signups"), None);
        assert_eq!(time_label(1795132800.0, false), "11-20 00:00");
        assert_eq!(time_label(1795132800.0, true), "2026-11-20");
    }
}

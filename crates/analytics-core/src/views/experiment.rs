//! The experiment view (`analytics.experiment_view`): an experiment's results page as a self-contained HTML
//! document. Variants with their units and the sample-ratio check, every goal metric with its value, effect and
//! interval bar, p-value and chance to win, the guardrails, and the cumulative effect over time. Plain Rust, no
//! database: it takes the document `analytics._experiment_view_data` assembles (the experiment, its planned
//! weights, `experiment_report`, and per goal metric the moments of the units assigned on each day).
//!
//! The cumulative effect on day D compares the variants over the units assigned up to D (their metric to date),
//! as GrowthBook's cumulative date results do: the per-day moments are summed in date order and compared with the
//! same test as the results table (`analysis::compare`), so the last point equals the table's effect. Quantile
//! metrics (whose order statistics cannot be summed) get no chart; the chart is without CUPED and capping.
//!
//! Everything is drawn here as inline SVG and tables; the page's script only marks when it has rendered.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;
use serde_json::Value;

use super::page::{document, escape, number, RENDERED_SCRIPT};
use crate::errors::AnalyticsError;
use crate::experiments::analysis::{self, Alternative, CompareOptions, MetricType, Moments};

pub const STYLE: &str = include_str!("experiment.css");

#[derive(Debug, Deserialize)]
pub struct ViewData {
    pub experiment: ExperimentInfo,
    #[serde(default)]
    pub variants: Vec<PlannedVariant>,
    pub report: Value,
    #[serde(default)]
    pub series: Vec<Series>,
    /// metric name -> whether lower is better (goals and guardrails; absent: higher is better)
    #[serde(default)]
    pub lower_is_better: BTreeMap<String, bool>,
}

#[derive(Debug, Deserialize)]
pub struct ExperimentInfo {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub hypothesis: Option<String>,
    pub status: String,
    #[serde(default)]
    pub phase: i64,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub winner_variant_key: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PlannedVariant {
    pub key: String,
    pub weight: f64,
    pub is_control: bool,
}

/// One goal metric's moments per day of assignment.
#[derive(Debug, Deserialize)]
pub struct Series {
    pub metric: String,
    /// binomial, mean, ratio (quantile metrics come with no days and a note)
    pub kind: String,
    #[serde(default)]
    pub lower_is_better: bool,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub days: Vec<Day>,
}

#[derive(Debug, Deserialize)]
pub struct Day {
    /// the UTC day of assignment, YYYY-MM-DD
    pub dimension: String,
    pub groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
pub struct Group {
    pub key: String,
    pub is_control: bool,
    pub moments: Moments,
}

/// One point of the cumulative chart: a treatment against the control over the units assigned up to `day`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub day: String,
    pub units: f64,
    pub effect: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
}

/// The moments of two groups together (every sum added). Quantile moments cannot be added.
pub fn add_moments(a: &Moments, b: &Moments) -> Result<Moments, AnalyticsError> {
    if a.quantile_level.is_some() || b.quantile_level.is_some() {
        return Err(AnalyticsError::invalid("moments: the order statistics of a quantile metric cannot be summed"));
    }
    let opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
    };
    Ok(Moments {
        n: a.n + b.n,
        sum: a.sum + b.sum,
        sum_squares: a.sum_squares + b.sum_squares,
        den_sum: opt(a.den_sum, b.den_sum),
        den_sum_squares: opt(a.den_sum_squares, b.den_sum_squares),
        cross_sum: opt(a.cross_sum, b.cross_sum),
        pre_sum: opt(a.pre_sum, b.pre_sum),
        pre_sum_squares: opt(a.pre_sum_squares, b.pre_sum_squares),
        pre_cross_sum: opt(a.pre_cross_sum, b.pre_cross_sum),
        pre_den_sum: opt(a.pre_den_sum, b.pre_den_sum),
        pre_den_sum_squares: opt(a.pre_den_sum_squares, b.pre_den_sum_squares),
        pre_den_cross_sum: opt(a.pre_den_cross_sum, b.pre_den_cross_sum),
        pre_ratio_cross_sum: opt(a.pre_ratio_cross_sum, b.pre_ratio_cross_sum),
        post_num_pre_den_sum: opt(a.post_num_pre_den_sum, b.post_num_pre_den_sum),
        pre_num_post_den_sum: opt(a.pre_num_post_den_sum, b.pre_num_post_den_sum),
        ..Default::default()
    })
}

/// The cumulative effect of every treatment over the days of `series`: variant key -> points in date order.
pub fn cumulative(series: &Series, relative: bool, alpha: f64) -> Result<BTreeMap<String, Vec<Point>>, AnalyticsError> {
    let options = CompareOptions {
        metric_type: MetricType::parse(&series.kind)?,
        relative,
        alpha,
        cuped: false,
        sequential_tuning: 5000.0,
        lower_is_better: series.lower_is_better,
        prior: None,
        alternative: Alternative::TwoSided,
    };
    let mut days: Vec<&Day> = series.days.iter().collect();
    days.sort_by(|a, b| a.dimension.cmp(&b.dimension));
    let mut totals: BTreeMap<&str, (bool, Moments)> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for day in days {
        for g in &day.groups {
            let entry = totals.entry(g.key.as_str()).or_insert((g.is_control, Moments::default()));
            entry.1 = add_moments(&entry.1, &g.moments)?;
        }
        let Some((_, control)) = totals.values().find(|(c, _)| *c) else { continue };
        for (key, (is_control, m)) in &totals {
            if *is_control {
                continue;
            }
            // a day whose moments the test refuses (it cannot happen with the moments SQL sums, but the chart must
            // not take the page down with it) is a gap in the chart
            let c = analysis::compare(control, m, &options).ok();
            out.entry(key.to_string()).or_default().push(Point {
                day: day.dimension.clone(),
                units: m.n + control.n,
                effect: c.as_ref().and_then(|c| c.test.effect),
                ci_lower: c.as_ref().and_then(|c| c.test.ci_lower),
                ci_upper: c.as_ref().and_then(|c| c.test.ci_upper),
            });
        }
    }
    Ok(out)
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// An effect as the page shows it: "+12.3%" for a relative lift, "+0.0123" for a difference.
pub fn fmt_effect(x: f64, relative: bool) -> String {
    if relative {
        format!("{}{:.1}%", if x > 0.0 { "+" } else if x < 0.0 { "\u{2212}" } else { "" }, (x * 100.0).abs())
    } else {
        let sign = if x > 0.0 { "+" } else if x < 0.0 { "\u{2212}" } else { "" };
        format!("{sign}{}", fmt_num(x.abs()))
    }
}

/// A metric value with about four significant digits.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        let digits = (3 - x.abs().log10().floor() as i32).clamp(3, 8) as usize;
        format!("{x:.digits$}")
    }
}

fn fmt_p(p: f64) -> String {
    if p < 0.0001 {
        "< 0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// The interval bar of one variant: the axis [lo, hi], a zero line, the interval and the effect.
fn interval_bar(out: &mut String, effect: Option<f64>, lower: Option<f64>, upper: Option<f64>, axis: (f64, f64), class: &str, label: &str) {
    const W: f64 = 240.0;
    let x = |v: f64| ((v - axis.0) / (axis.1 - axis.0) * W).clamp(0.0, W);
    let _ = write!(out, "<svg class=\"ci-bar\" width=\"{W}\" height=\"22\" viewBox=\"0 0 {W} 22\" role=\"img\" aria-label=\"{}\">", escape(label));
    let _ = write!(out, "<line class=\"zero\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"1\" y2=\"21\"/>", x(0.0));
    if let Some(e) = effect {
        let lo = lower.map(x).unwrap_or(0.0);
        let hi = upper.map(x).unwrap_or(W);
        let _ = write!(
            out,
            "<rect class=\"ci {class}\" x=\"{lo:.1}\" y=\"6\" width=\"{:.1}\" height=\"10\" rx=\"2\"><title>{}</title></rect>\
             <circle class=\"effect {class}\" cx=\"{:.1}\" cy=\"11\" r=\"4\"/>",
            (hi - lo).max(1.0),
            escape(label),
            x(e)
        );
    }
    out.push_str("</svg>");
}

/// The shared axis of a metric's interval bars: every finite end and 0, padded by 10%.
fn axis_of(rows: &[&Value], lower_key: &str, upper_key: &str) -> (f64, f64) {
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for r in rows {
        for k in [lower_key, upper_key, "effect"] {
            if let Some(v) = number(r, k) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if hi - lo < 1e-12 {
        return (-1.0, 1.0);
    }
    let pad = (hi - lo) * 0.1;
    (lo - pad, hi + pad)
}

fn verdict(r: &Value, lower_is_better: bool) -> &'static str {
    match number(r, "effect") {
        Some(e) if b(r, "significant") && ((e > 0.0) != lower_is_better) => "better",
        Some(e) if b(r, "significant") && e != 0.0 => "worse",
        _ => "flat",
    }
}

/// The table of one metric (goal or guardrail).
fn metric_table(out: &mut String, metric: &Value, relative: bool, alpha: f64, corrected: bool, lower_is_better: bool, guardrail: bool) {
    let name = s(metric, "metric").unwrap_or("");
    let rows: Vec<&Value> = metric.get("results").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let (lo_key, hi_key) = if corrected { ("ci_lower_adjusted", "ci_upper_adjusted") } else { ("ci_lower", "ci_upper") };
    let treatments: Vec<&Value> = rows.iter().copied().filter(|r| !b(r, "is_control")).collect();
    let axis = axis_of(&treatments, lo_key, hi_key);
    let _ = write!(
        out,
        "<section class=\"metric\" data-metric=\"{0}\"><h2>{0}{1}</h2><table class=\"grid\"><thead><tr><th>Variant</th><th>Units</th>\
         <th>Value</th><th>{2}</th><th class=\"bar-head\"><div><span>{3}</span><span>{4}</span></div></th><th>{5}</th>{6}</tr></thead><tbody>",
        escape(name),
        if lower_is_better { " <span class=\"muted\">(lower is better)</span>" } else { "" },
        if relative { "Lift" } else { "Change" },
        fmt_effect(axis.0, relative),
        fmt_effect(axis.1, relative),
        if corrected { "p (adjusted)" } else { "p-value" },
        if guardrail { "<th>Status</th>" } else { "<th>Chance to win</th>" }
    );
    for r in &rows {
        let key = s(r, "variant_key").unwrap_or("");
        let control = b(r, "is_control");
        let v = verdict(r, lower_is_better);
        let _ = write!(
            out,
            "<tr data-variant=\"{}\" class=\"{}\"><td>{}{}</td><td>{}</td><td>{}</td>",
            escape(key),
            if control { "control" } else { v },
            escape(key),
            if control { " <span class=\"muted\">(control)</span>" } else { "" },
            r.get("units").and_then(Value::as_i64).map(|u| u.to_string()).unwrap_or_default(),
            number(r, "value").map(fmt_num).unwrap_or_else(|| "\u{2013}".into())
        );
        if control {
            out.push_str("<td></td><td></td><td></td><td></td></tr>");
            continue;
        }
        let effect = number(r, "effect");
        let (lo, hi) = (number(r, lo_key), number(r, hi_key));
        let label = match effect {
            Some(e) => format!(
                "{key}: {} ({}% interval {} to {})",
                fmt_effect(e, relative),
                ((1.0 - alpha) * 100.0).round(),
                lo.map(|x| fmt_effect(x, relative)).unwrap_or_else(|| "\u{2212}\u{221e}".into()),
                hi.map(|x| fmt_effect(x, relative)).unwrap_or_else(|| "+\u{221e}".into())
            ),
            None => format!("{key}: no result{}", s(r, "note").map(|n| format!(" ({n})")).unwrap_or_default()),
        };
        let _ = write!(out, "<td class=\"effect-cell {v}\">{}</td><td>", effect.map(|e| fmt_effect(e, relative)).unwrap_or_else(|| "\u{2013}".into()));
        interval_bar(out, effect, lo, hi, axis, v, &label);
        let p = if corrected { number(r, "adjusted_p_value") } else { number(r, "p_value") };
        let _ = write!(out, "</td><td>{}</td>", p.map(fmt_p).unwrap_or_else(|| "\u{2013}".into()));
        if guardrail {
            let status = s(r, "status").unwrap_or("ok");
            let _ = write!(out, "<td class=\"status-{0}\">{0}</td></tr>", escape(status));
        } else {
            let _ = write!(
                out,
                "<td>{}</td></tr>",
                number(r, "chance_to_beat_control").map(|c| format!("{:.1}%", c * 100.0)).unwrap_or_else(|| "\u{2013}".into())
            );
        }
    }
    out.push_str("</tbody></table>");
    if let Some(note) = rows.iter().find_map(|r| s(r, "note").filter(|_| !b(r, "is_control"))) {
        let _ = write!(out, "<p class=\"muted\">{}</p>", escape(note));
    }
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 220.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 30.0;
const PALETTE: [&str; 6] = ["#4f7cff", "#e8590c", "#2b8a3e", "#9c36b5", "#c2255c", "#1098ad"];

/// The cumulative effect chart of one goal metric: a band for each treatment's interval, a line for its effect.
fn chart(out: &mut String, metric: &str, points: &BTreeMap<String, Vec<Point>>, relative: bool) {
    let all: Vec<&Point> = points.values().flatten().collect();
    let days: Vec<&str> = {
        let mut d: Vec<&str> = all.iter().map(|p| p.day.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        d
    };
    if days.is_empty() {
        return;
    }
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for p in &all {
        for v in [p.effect, p.ci_lower, p.ci_upper].into_iter().flatten().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if hi - lo < 1e-12 {
        lo = -1.0;
        hi = 1.0;
    }
    let pad = (hi - lo) * 0.08;
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |day: &str| {
        let i = days.iter().position(|d| *d == day).unwrap_or(0) as f64;
        let span = (days.len().max(2) - 1) as f64;
        PAD_L + i / span * (CHART_W - PAD_L - PAD_R)
    };
    let y = |v: f64| PAD_T + (hi - v.clamp(lo, hi)) / (hi - lo) * (CHART_H - PAD_T - PAD_B);
    let _ = write!(
        out,
        "<figure class=\"chart\" data-metric=\"{0}\"><figcaption>Cumulative {1} of {0} by day of assignment (units assigned up to each day; \
         shaded: the interval)</figcaption><svg width=\"{CHART_W}\" height=\"{CHART_H}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"Cumulative {1} of {0} over {2} days\">",
        escape(metric),
        if relative { "lift" } else { "change" },
        days.len()
    );
    // axes: zero line, the y range, first and last day
    let (x_end, y0, tick_x, base) = (CHART_W - PAD_R, y(0.0), PAD_L - 6.0, CHART_H - 8.0);
    let _ = write!(
        out,
        "<line class=\"zero\" x1=\"{PAD_L}\" x2=\"{x_end:.1}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\"/>\
         <text class=\"tick\" x=\"{tick_x:.1}\" y=\"{y0:.1}\" dy=\"4\" text-anchor=\"end\">0</text>\
         <text class=\"tick\" x=\"{tick_x:.1}\" y=\"{y_hi:.1}\" dy=\"4\" text-anchor=\"end\">{hi_label}</text>\
         <text class=\"tick\" x=\"{tick_x:.1}\" y=\"{y_lo:.1}\" dy=\"4\" text-anchor=\"end\">{lo_label}</text>\
         <text class=\"tick\" x=\"{PAD_L}\" y=\"{base:.1}\">{first}</text>\
         <text class=\"tick\" x=\"{x_end:.1}\" y=\"{base:.1}\" text-anchor=\"end\">{last}</text>",
        y_hi = y(hi),
        hi_label = fmt_effect(hi, relative),
        y_lo = y(lo),
        lo_label = fmt_effect(lo, relative),
        first = escape(days[0]),
        last = escape(days[days.len() - 1])
    );
    for (k, (variant, pts)) in points.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let banded: Vec<&Point> = pts.iter().filter(|p| p.ci_lower.is_some() && p.ci_upper.is_some()).collect();
        if banded.len() > 1 {
            let mut poly = String::new();
            for p in &banded {
                let _ = write!(poly, "{:.1},{:.1} ", x(&p.day), y(p.ci_upper.unwrap_or(hi)));
            }
            for p in banded.iter().rev() {
                let _ = write!(poly, "{:.1},{:.1} ", x(&p.day), y(p.ci_lower.unwrap_or(lo)));
            }
            let _ = write!(out, "<polygon class=\"band\" data-variant=\"{}\" fill=\"{colour}\" points=\"{}\"/>", escape(variant), poly.trim_end());
        }
        let line: Vec<String> = pts.iter().filter_map(|p| p.effect.map(|e| format!("{:.1},{:.1}", x(&p.day), y(e)))).collect();
        if !line.is_empty() {
            let _ = write!(
                out,
                "<polyline class=\"line\" data-variant=\"{}\" stroke=\"{colour}\" points=\"{}\"/>",
                escape(variant),
                line.join(" ")
            );
        }
        for p in pts {
            if let Some(e) = p.effect {
                let _ = write!(
                    out,
                    "<circle class=\"pt\" fill=\"{colour}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{} {}: {} ({} units)</title></circle>",
                    x(&p.day),
                    y(e),
                    escape(variant),
                    escape(&p.day),
                    fmt_effect(e, relative),
                    p.units
                );
            }
        }
    }
    out.push_str("</svg><div class=\"legend\">");
    for (k, variant) in points.keys().enumerate() {
        let _ = write!(out, "<span><i data-colour=\"{k}\"></i>{}</span>", escape(variant));
    }
    out.push_str("</div></figure>");
}

/// The document of an experiment's results.
pub fn render(data: &ViewData) -> Result<String, AnalyticsError> {
    let report = &data.report;
    let relative = report.get("relative").and_then(Value::as_bool).unwrap_or(true);
    let alpha = number(report, "alpha").unwrap_or(0.05);
    let correction = s(report, "correction").unwrap_or("none");
    let corrected = correction != "none";
    let e = &data.experiment;
    let mut body = String::with_capacity(16 * 1024);
    let _ = write!(
        body,
        "<header class=\"top\"><h1>{}</h1><div class=\"chips\"><span>experiment <b>{}</b></span><span class=\"status status-{}\"><b>{}</b></span>\
         <span>phase <b>{}</b></span>",
        escape(&e.name),
        escape(&e.key),
        escape(&e.status),
        escape(&e.status),
        e.phase
    );
    if let Some(t) = &e.started_at {
        let _ = write!(body, "<span>started <b>{}</b></span>", escape(t));
    }
    if let Some(t) = &e.ended_at {
        let _ = write!(body, "<span>ended <b>{}</b></span>", escape(t));
    }
    if let Some(w) = &e.winner_variant_key {
        let _ = write!(body, "<span>winner <b>{}</b></span>", escape(w));
    }
    let _ = write!(
        body,
        "<span>{}% confidence{}</span></div></header><main class=\"page\">",
        ((1.0 - alpha) * 100.0).round(),
        if corrected { format!(", {} correction", escape(correction)) } else { String::new() }
    );
    if let Some(h) = e.hypothesis.as_deref().filter(|h| !h.is_empty()) {
        let _ = write!(body, "<p class=\"hypothesis\"><b>Hypothesis:</b> {}</p>", escape(h));
    }

    // variants and the sample-ratio check
    let srm = report.get("srm").cloned().unwrap_or(Value::Null);
    if b(&srm, "srm") {
        let _ = write!(
            body,
            "<p class=\"srm-warning\" role=\"alert\"><b>Sample ratio mismatch</b> (p = {}): the units are not split as planned, so \
             the assignment is likely broken and the results below may be biased. Find the cause before trusting them.</p>",
            number(&srm, "p_value").map(fmt_p).unwrap_or_default()
        );
    }
    let units: Vec<(&str, i64)> = report
        .get("variants")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| (s(v, "key").unwrap_or(""), v.get("units").and_then(Value::as_i64).unwrap_or(0))).collect())
        .unwrap_or_default();
    let total_units: i64 = units.iter().map(|(_, u)| u).sum();
    let total_weight: f64 = data.variants.iter().map(|v| v.weight).sum();
    body.push_str("<section class=\"variants\"><h2>Variants</h2><table class=\"grid\"><thead><tr><th>Variant</th><th>Units</th><th>Share</th><th>Planned</th></tr></thead><tbody>");
    for (key, n) in &units {
        let planned = data.variants.iter().find(|v| v.key == *key);
        let _ = write!(
            body,
            "<tr data-variant=\"{}\"><td>{}{}</td><td>{n}</td><td>{}</td><td>{}</td></tr>",
            escape(key),
            escape(key),
            if planned.map(|p| p.is_control).unwrap_or(false) { " <span class=\"muted\">(control)</span>" } else { "" },
            if total_units > 0 { format!("{:.1}%", *n as f64 * 100.0 / total_units as f64) } else { "\u{2013}".into() },
            planned.filter(|_| total_weight > 0.0).map(|p| format!("{:.1}%", p.weight * 100.0 / total_weight)).unwrap_or_else(|| "\u{2013}".into())
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p class=\"muted\">Sample ratio check: p = {}{}.</p></section>",
        number(&srm, "p_value").map(fmt_p).unwrap_or_else(|| "\u{2013}".into()),
        if b(&srm, "srm") { " (mismatch)" } else { " (as planned)" }
    );

    let lower_of = |metric: &str| data.lower_is_better.get(metric).copied().unwrap_or(false);
    body.push_str("<h2 class=\"part\">Goal metrics</h2>");
    for goal in report.get("goals").and_then(Value::as_array).into_iter().flatten() {
        let name = s(goal, "metric").unwrap_or("");
        metric_table(&mut body, goal, relative, alpha, corrected, lower_of(name), false);
        if let Some(series) = data.series.iter().find(|s| s.metric == name) {
            if let Some(note) = &series.note {
                let _ = write!(body, "<p class=\"muted\">{}</p>", escape(note));
            } else {
                chart(&mut body, name, &cumulative(series, relative, alpha)?, relative);
            }
        }
        body.push_str("</section>");
    }
    let guardrails: Vec<&Value> = report.get("guardrails").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    if !guardrails.is_empty() {
        body.push_str("<h2 class=\"part\">Guardrails</h2>");
        for g in guardrails {
            let failing = g.get("results").and_then(Value::as_array).map(|rs| rs.iter().any(|r| s(r, "status") == Some("failing"))).unwrap_or(false);
            metric_table(&mut body, g, relative, alpha, false, lower_of(s(g, "metric").unwrap_or("")), true);
            if failing {
                body.push_str("<p class=\"srm-warning\">A guardrail is failing: a variant is significantly worse on it.</p>");
            }
            body.push_str("</section>");
        }
    }
    body.push_str("</main>");
    let mut style = String::from(STYLE);
    for (k, c) in PALETTE.iter().enumerate() {
        let _ = write!(style, ".legend i[data-colour=\"{k}\"]{{background:{c}}}");
    }
    Ok(document(&format!("Experiment {}", e.key), &style, &body, "{}", RENDERED_SCRIPT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(n: f64, sum: f64) -> Value {
        json!({"n": n, "sum": sum, "sum_squares": sum})
    }

    fn series() -> Series {
        serde_json::from_value(json!({
            "metric": "signup", "kind": "binomial",
            "days": [
                {"dimension": "2026-11-21", "groups": [{"key": "control", "is_control": true, "moments": m(100.0, 10.0)},
                                                        {"key": "b", "is_control": false, "moments": m(100.0, 14.0)}]},
                {"dimension": "2026-11-20", "groups": [{"key": "control", "is_control": true, "moments": m(200.0, 20.0)},
                                                        {"key": "b", "is_control": false, "moments": m(200.0, 30.0)}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn cumulative_sums_the_days_in_date_order_and_ends_at_the_whole() {
        let s = series();
        let c = cumulative(&s, true, 0.05).unwrap();
        let pts = &c["b"];
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].day, "2026-11-20");
        // day 1: 30/200 vs 20/200: +50%
        assert!((pts[0].effect.unwrap() - 0.5).abs() < 1e-12);
        // up to day 2: 44/300 vs 30/300, the same test as over all units at once
        let whole = analysis::compare(
            &serde_json::from_value(m(300.0, 30.0)).unwrap(),
            &serde_json::from_value(m(300.0, 44.0)).unwrap(),
            &CompareOptions {
                metric_type: MetricType::Binomial,
                relative: true,
                alpha: 0.05,
                cuped: false,
                sequential_tuning: 5000.0,
                lower_is_better: false,
                prior: None,
                alternative: Alternative::TwoSided,
            },
        )
        .unwrap();
        assert_eq!(pts[1].effect, whole.test.effect);
        assert_eq!(pts[1].ci_lower, whole.test.ci_lower);
        assert_eq!(pts[1].units, 600.0);
    }

    #[test]
    fn a_day_the_test_refuses_is_a_gap_not_an_error() {
        let mut s = series();
        // 300 conversions among 20 units on the first day: not a binomial sample, then or summed with the next day
        s.days[1].groups[1].moments = serde_json::from_value(m(20.0, 300.0)).unwrap();
        let c = cumulative(&s, true, 0.05).unwrap();
        assert_eq!(c["b"].len(), 2);
        assert!(c["b"].iter().all(|p| p.effect.is_none()), "{:?}", c["b"]);
    }

    #[test]
    fn quantile_moments_are_not_summed() {
        let q: Moments = serde_json::from_value(json!({"n": 10, "sum": 0, "sum_squares": 0, "quantile_level": 0.9})).unwrap();
        assert!(add_moments(&q, &Moments::default()).is_err());
    }

    fn data() -> ViewData {
        let row = |key: &str, control: bool, effect: Value, lo: Value, hi: Value, sig: bool| {
            json!({"variant_key": key, "is_control": control, "units": 300, "value": 0.1, "effect": effect,
                   "ci_lower": lo, "ci_upper": hi, "p_value": 0.01, "significant": sig, "chance_to_beat_control": 0.97})
        };
        serde_json::from_value(json!({
            "experiment": {"key": "cta", "name": "<b>CTA</b> test", "hypothesis": "<script>x()</script>", "status": "running", "phase": 0},
            "variants": [{"key": "control", "weight": 0.5, "is_control": true}, {"key": "b", "weight": 0.5, "is_control": false}],
            "report": {"relative": true, "alpha": 0.05, "correction": "none", "srm": {"p_value": 0.0001, "srm": true},
                       "variants": [{"key": "control", "units": 300}, {"key": "b", "units": 300}],
                       "goals": [{"metric": "signup", "results": [row("control", true, Value::Null, Value::Null, Value::Null, false),
                                                                  row("b", false, json!(0.4), json!(0.1), json!(0.7), true)]}],
                       "guardrails": [{"metric": "latency_ms", "results": [row("control", true, Value::Null, Value::Null, Value::Null, false),
                                        {"variant_key": "b", "is_control": false, "units": 300, "effect": 0.2, "ci_lower": 0.05,
                                         "ci_upper": 0.35, "p_value": 0.01, "significant": true, "status": "failing"}]}]},
            "lower_is_better": {"latency_ms": true},
            "series": [serde_json::to_value(json!({"metric": "signup", "kind": "binomial", "days": [
                {"dimension": "2026-11-20", "groups": [{"key": "control", "is_control": true, "moments": m(200.0, 20.0)},
                                                        {"key": "b", "is_control": false, "moments": m(200.0, 30.0)}]},
                {"dimension": "2026-11-21", "groups": [{"key": "control", "is_control": true, "moments": m(100.0, 10.0)},
                                                        {"key": "b", "is_control": false, "moments": m(100.0, 14.0)}]}]})).unwrap()]
        }))
        .unwrap()
    }

    #[test]
    fn page_has_interval_bars_srm_warning_guardrails_and_chart() {
        let doc = render(&data()).unwrap();
        assert!(doc.contains("<h1>&lt;b&gt;CTA&lt;/b&gt; test</h1>"));
        assert!(doc.contains("&lt;script&gt;x()&lt;/script&gt;"));
        assert_eq!(doc.matches("<script").count(), 2, "only the page's own script and its (empty) data");
        assert!(doc.contains("Sample ratio mismatch"));
        assert_eq!(doc.matches("class=\"ci better\"").count(), 1, "one treatment, one significant better bar");
        assert!(doc.contains("+40.0%"));
        assert!(doc.contains("class=\"status-failing\""));
        assert!(doc.contains("<td class=\"effect-cell worse\">+20.0%</td>"), "latency up is worse");
        assert!(doc.contains("<polyline class=\"line\" data-variant=\"b\""));
        assert!(doc.contains("<polygon class=\"band\" data-variant=\"b\""));
    }

    #[test]
    fn effects_format_as_a_reader_expects() {
        assert_eq!(fmt_effect(0.1234, true), "+12.3%");
        assert_eq!(fmt_effect(-0.05, true), "\u{2212}5.0%");
        assert_eq!(fmt_effect(0.0, true), "0.0%");
        assert_eq!(fmt_effect(-12.5, false), "\u{2212}12.50");
        assert_eq!(fmt_num(0.012345), "0.01235");
        assert_eq!(fmt_num(1234.5), "1234");
    }
}

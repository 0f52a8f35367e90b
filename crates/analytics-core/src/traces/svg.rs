//! The waterfall of a trace as a self-contained SVG document (no scripts, no external fonts or styles), for
//! `analytics.trace_waterfall_svg`. Plain Rust, no database.
//!
//! One row per span in depth-first order: the label (name, indented by depth, and model) on the left, a bar on a
//! shared time axis on the right, coloured by operation type; failed spans are red, spans on the critical path
//! have a dark outline, and every bar has a tooltip (`<title>`) with its details.

use std::fmt::Write;

/// One span of the waterfall. Times in microseconds from the start of the trace.
#[derive(Debug, Clone)]
pub struct Bar<'a> {
    pub name: &'a str,
    pub depth: usize,
    pub offset_us: i64,
    pub duration_us: i64,
    pub status: &'a str,
    pub operation_type: &'a str,
    pub model: Option<&'a str>,
    pub on_critical_path: bool,
}

const WIDTH: i64 = 1200;
const LABEL_WIDTH: i64 = 380;
const TIMELINE_X0: i64 = LABEL_WIDTH + 10;
const TIMELINE_X1: i64 = WIDTH - 80;
const ROW: i64 = 24;
const HEADER: i64 = 64;
const INDENT: i64 = 14;
const MAX_INDENT_LEVELS: usize = 16;
const ERROR_COLOUR: &str = "#d62828";

/// Fill colour of a bar by operation type.
pub fn colour(operation_type: &str) -> &'static str {
    match operation_type {
        "chat" | "text_completion" | "generate_content" => "#4f7cff",
        "embeddings" => "#9b59d0",
        "execute_tool" => "#f0a020",
        "invoke_agent" | "create_agent" => "#20a39e",
        "retrieval" | "rerank" => "#6ab04c",
        "guardrail" | "evaluator" => "#e84393",
        "chain" => "#7f8fa6",
        _ => "#adb5bd",
    }
}

/// "0.4 ms", "300 ms", "12.1 s", "2 min 3 s".
pub fn format_duration(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as i64;
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// XML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten, in microseconds) giving at most about `max_ticks` ticks.
pub fn tick_step(total_us: i64, max_ticks: i64) -> i64 {
    let raw = (total_us.max(1) as f64 / max_ticks as f64).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&s| s >= raw).unwrap_or(10.0 * magnitude);
    step.round() as i64
}

/// Renders the waterfall. `hidden` is the number of spans left out (noted under the last row).
pub fn render(trace_id: &str, bars: &[Bar], total_us: i64, hidden: usize) -> String {
    let total_us = total_us.max(1);
    let scale = (TIMELINE_X1 - TIMELINE_X0) as f64 / total_us as f64;
    let x_of = |us: i64| TIMELINE_X0 as f64 + us as f64 * scale;
    let footer = 44 + if hidden > 0 { 18 } else { 0 };
    let height = HEADER + ROW * bars.len() as i64 + footer;
    let errors = bars.iter().filter(|b| b.status == "error").count();

    let mut s = String::with_capacity(512 + bars.len() * 600);
    let _ = write!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>
<text x="10" y="22" font-size="15" font-weight="bold" fill="#1d2939">Trace {}</text>
<text x="10" y="40" fill="#475467">{} spans · {} · {} error{}</text>
"##,
        escape(trace_id),
        bars.len() + hidden,
        format_duration(total_us),
        errors,
        if errors == 1 { "" } else { "s" },
    );

    // time axis: grid lines and labels
    let step = tick_step(total_us, 8);
    let mut t = 0;
    while t <= total_us {
        let x = x_of(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#e4e7ec" stroke-width="1"/>
<text x="{x:.1}" y="{ty}" fill="#667085" font-size="11" text-anchor="middle">{label}</text>
"##,
            y0 = HEADER - 8,
            y1 = HEADER + ROW * bars.len() as i64,
            ty = HEADER - 12,
            label = if t == 0 { "0".to_string() } else { format_duration(t) },
        );
        t += step;
    }

    for (i, b) in bars.iter().enumerate() {
        let y = HEADER + ROW * i as i64;
        if i % 2 == 1 {
            let _ = writeln!(s, r##"<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="#f9fafb"/>"##);
        }
        let indent = 10 + INDENT * b.depth.min(MAX_INDENT_LEVELS) as i64;
        let label_chars = ((LABEL_WIDTH - indent) / 7).max(4) as usize;
        let name = truncate(b.name, label_chars);
        let model = b.model.map(|m| truncate(m, label_chars.saturating_sub(name.chars().count() + 2))).filter(|m| m.chars().count() > 1);
        let text_colour = if b.status == "error" { ERROR_COLOUR } else { "#1d2939" };
        let _ = write!(s, r##"<text x="{indent}" y="{}" fill="{text_colour}">{}"##, y + 16, escape(&name));
        if let Some(m) = model {
            let _ = write!(s, r##"<tspan fill="#98a2b3">  {}</tspan>"##, escape(&m));
        }
        s.push_str("</text>\n");

        let x = x_of(b.offset_us);
        let w = (b.duration_us as f64 * scale).max(2.0);
        let fill = if b.status == "error" { ERROR_COLOUR } else { colour(b.operation_type) };
        let stroke = if b.on_critical_path { r##" stroke="#101828" stroke-width="1.5""## } else { "" };
        let tooltip = format!(
            "{} ({}{}) · starts at {} · {} · {}{}",
            b.name,
            b.operation_type,
            b.model.map(|m| format!(", {m}")).unwrap_or_default(),
            format_duration(b.offset_us),
            format_duration(b.duration_us),
            b.status,
            if b.on_critical_path { " · critical path" } else { "" },
        );
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{}" width="{w:.1}" height="14" rx="2" fill="{fill}"{stroke}><title>{}</title></rect>
<text x="{:.1}" y="{}" fill="#475467" font-size="11">{}</text>
"##,
            y + 5,
            escape(&tooltip),
            (x + w + 4.0).min((WIDTH - 76) as f64),
            y + 16,
            format_duration(b.duration_us),
        );
    }

    // legend
    let mut ly = HEADER + ROW * bars.len() as i64 + 22;
    if hidden > 0 {
        let _ = writeln!(s, r##"<text x="10" y="{ly}" fill="#667085" font-style="italic">… {hidden} more spans not shown</text>"##);
        ly += 18;
    }
    let mut lx = 10;
    let mut seen: Vec<&str> = Vec::new();
    for b in bars {
        let c = colour(b.operation_type);
        if !seen.contains(&c) {
            seen.push(c);
            let _ = write!(
                s,
                r##"<rect x="{lx}" y="{}" width="12" height="12" rx="2" fill="{c}"/><text x="{}" y="{ly}" fill="#475467" font-size="11">{}</text>
"##,
                ly - 10,
                lx + 16,
                escape(b.operation_type)
            );
            lx += 28 + 7 * b.operation_type.len() as i64;
        }
    }
    let _ = write!(
        s,
        r##"<rect x="{lx}" y="{}" width="12" height="12" rx="2" fill="{ERROR_COLOUR}"/><text x="{}" y="{ly}" fill="#475467" font-size="11">error</text>
<rect x="{}" y="{}" width="12" height="12" rx="2" fill="#ffffff" stroke="#101828" stroke-width="1.5"/><text x="{}" y="{ly}" fill="#475467" font-size="11">critical path</text>
</svg>
"##,
        ly - 10,
        lx + 16,
        lx + 66,
        ly - 10,
        lx + 82
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar<'a>(name: &'a str, depth: usize, offset_ms: i64, dur_ms: i64, status: &'a str, op: &'a str) -> Bar<'a> {
        Bar { name, depth, offset_us: offset_ms * 1000, duration_us: dur_ms * 1000, status, operation_type: op, model: None, on_critical_path: depth == 0 }
    }

    #[test]
    fn renders_one_bar_per_span_with_escaped_labels() {
        let bars = vec![
            bar("agent <main> & co", 0, 0, 4000, "ok", "invoke_agent"),
            Bar { model: Some("gpt-4o"), ..bar("answer", 1, 1000, 3000, "ok", "chat") },
            bar("lookup", 1, 100, 500, "error", "execute_tool"),
        ];
        let svg = render("t\"1", &bars, 4_000_000, 0);
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("agent &lt;main&gt; &amp; co"));
        assert!(svg.contains("Trace t&quot;1"));
        assert!(svg.contains(r##"fill="#d62828""##), "failed span is red");
        assert!(svg.contains("gpt-4o"));
        assert!(svg.contains("3 spans · 4.0 s · 1 error<"));
        // the bar of "answer" starts a quarter into the timeline and spans three quarters of it
        let x0 = TIMELINE_X0 as f64 + (TIMELINE_X1 - TIMELINE_X0) as f64 * 0.25;
        assert!(svg.contains(&format!(r#"<rect x="{x0:.1}" y="{}""#, HEADER + ROW + 5)), "{svg}");
    }

    #[test]
    fn tick_steps_are_round_numbers() {
        assert_eq!(tick_step(23_500_000, 8), 5_000_000);
        assert_eq!(tick_step(4_200_000, 8), 1_000_000);
        assert_eq!(tick_step(300, 8), 50);
        assert_eq!(tick_step(0, 8), 1);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(400), "0.40 ms");
        assert_eq!(format_duration(300_000), "300 ms");
        assert_eq!(format_duration(12_100_000), "12.1 s");
        assert_eq!(format_duration(123_000_000), "2 min 3 s");
    }

    #[test]
    fn long_names_are_cut_and_deep_spans_indent_at_most_sixteen_levels() {
        let long = "x".repeat(500);
        let svg = render("t", &[bar(&long, 100, 0, 1, "ok", "chain")], 1000, 7);
        assert!(svg.contains('…'));
        assert!(svg.contains(&format!(r#"<text x="{}""#, 10 + 14 * 16)));
        assert!(svg.contains("… 7 more spans not shown"));
    }
}

//! The nested jsonb document of `get_trace_tree`, written straight into Postgres' binary jsonb form (no JSON
//! text, no `serde_json::Value`): keys emitted in jsonb's own order, column values spliced in place.

use pgrx::pg_sys;

use super::tree::SpanTree;
use crate::jsonb::{JsonbBuilder, RawJsonb};
use super::rows::{ms, ts_text, Kind, TraceRows};

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
                b.string(&analytics_core::textfmt::uuid_text(bytes));
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

pub(super) fn build_tree_jsonb(
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


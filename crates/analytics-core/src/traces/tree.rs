//! Builds the span tree of one trace from flat rows: parent links, orphans, cycles, depth, pre-order, subtree
//! rollups, self time and the critical path. Plain Rust, no database.
//!
//! Every walk is iterative (explicit stacks, reverse pre-order passes), so a chain of 10,000 or 1,000,000 nested
//! spans cannot overflow the stack, and every pass is O(n) after one O(n log n) sort of the children.
//!
//! Rules:
//! - Children are ordered by start time, ties broken by span id (deterministic).
//! - A span whose parent id is not among the rows is an **orphan**: it becomes an extra root, flagged.
//! - A span that is its own parent, or a loop A -> B -> A, is a **cycle**: the loop is broken at its earliest span
//!   (by start time, then id), which becomes a root, flagged `cycle`. Nothing hangs or recurses forever.
//! - Roots are ordered by start time, then span id.
//! - A span without an end time ends when its last descendant ends (or at its start if it has none).

use std::collections::HashMap;

/// The fields of a span the tree needs. Times are microseconds on any common epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanInfo {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub start_us: i64,
    pub end_us: Option<i64>,
    pub total_tokens: i64,
    pub cost_usd: f64,
    pub is_error: bool,
}

/// Aggregates over a span and all its descendants.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rollup {
    pub span_count: u64,
    pub error_count: u64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    /// earliest start and latest (effective) end in the subtree
    pub start_us: i64,
    pub end_us: i64,
}

impl Rollup {
    pub fn duration_us(&self) -> i64 {
        self.end_us - self.start_us
    }
}

#[derive(Debug, Clone)]
pub struct SpanTree {
    /// resolved parent index (None for roots, orphans and spans where a cycle was broken)
    pub parent: Vec<Option<usize>>,
    /// children indices, ordered by (start, span id)
    pub children: Vec<Vec<usize>>,
    /// root indices, ordered by (start, span id)
    pub roots: Vec<usize>,
    /// all indices in depth-first pre-order (roots in order, each followed by its subtree)
    pub preorder: Vec<usize>,
    /// position of each span in `preorder`
    pub ordinal: Vec<usize>,
    pub depth: Vec<usize>,
    pub orphan: Vec<bool>,
    pub cycle: Vec<bool>,
    /// end time used for the span: its own end, or else the latest end below it, or else its start
    pub effective_end_us: Vec<i64>,
    pub rollup: Vec<Rollup>,
    /// time of the span not covered by any child (children clipped to the span)
    pub self_us: Vec<i64>,
    pub on_critical_path: Vec<bool>,
}

fn order_key(spans: &[SpanInfo], i: usize) -> (i64, &str) {
    (spans[i].start_us, spans[i].span_id.as_str())
}

impl SpanTree {
    pub fn build(spans: &[SpanInfo]) -> SpanTree {
        let n = spans.len();
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, s) in spans.iter().enumerate() {
            index.entry(s.span_id.as_str()).or_insert(i);
        }

        let mut orphan = vec![false; n];
        let mut cycle = vec![false; n];
        let mut parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| match s.parent_span_id.as_deref() {
                None => None,
                Some(p) => match index.get(p) {
                    Some(&pi) => Some(pi),
                    None => {
                        orphan[i] = true;
                        None
                    }
                },
            })
            .collect();

        break_cycles(spans, &mut parent, &mut cycle);

        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for i in 0..n {
            match parent[i] {
                Some(p) => children[p].push(i),
                None => roots.push(i),
            }
        }
        for c in children.iter_mut() {
            c.sort_by(|&a, &b| order_key(spans, a).cmp(&order_key(spans, b)));
        }
        roots.sort_by(|&a, &b| order_key(spans, a).cmp(&order_key(spans, b)));

        // pre-order with an explicit stack (children pushed in reverse so the first child pops first)
        let mut preorder = Vec::with_capacity(n);
        let mut depth = vec![0usize; n];
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            preorder.push(i);
            for &c in children[i].iter().rev() {
                depth[c] = depth[i] + 1;
                stack.push(c);
            }
        }
        debug_assert_eq!(preorder.len(), n, "every span is reachable once cycles are broken");
        let mut ordinal = vec![0usize; n];
        for (pos, &i) in preorder.iter().enumerate() {
            ordinal[i] = pos;
        }

        // rollups and effective ends: children before parents (reverse pre-order)
        let mut effective_end_us: Vec<i64> = spans.iter().map(|s| s.end_us.unwrap_or(s.start_us)).collect();
        let mut rollup: Vec<Rollup> = spans
            .iter()
            .map(|s| Rollup {
                span_count: 1,
                error_count: u64::from(s.is_error),
                total_tokens: s.total_tokens,
                cost_usd: s.cost_usd,
                start_us: s.start_us,
                end_us: s.end_us.unwrap_or(s.start_us),
            })
            .collect();
        for &i in preorder.iter().rev() {
            if spans[i].end_us.is_none() {
                let latest_child = children[i].iter().map(|&c| effective_end_us[c]).max();
                effective_end_us[i] = latest_child.map_or(spans[i].start_us, |e| e.max(spans[i].start_us));
            }
            rollup[i].end_us = rollup[i].end_us.max(effective_end_us[i]);
            if let Some(p) = parent[i] {
                let child = rollup[i];
                let r = &mut rollup[p];
                r.span_count += child.span_count;
                r.error_count += child.error_count;
                r.total_tokens = r.total_tokens.saturating_add(child.total_tokens);
                r.cost_usd += child.cost_usd;
                r.start_us = r.start_us.min(child.start_us);
                r.end_us = r.end_us.max(child.end_us);
            }
        }

        let self_us = (0..n)
            .map(|i| self_time(spans[i].start_us, effective_end_us[i], &children[i], spans, &effective_end_us))
            .collect();
        let on_critical_path = critical_path(spans, &roots, &children, &effective_end_us);

        SpanTree {
            parent,
            children,
            roots,
            preorder,
            ordinal,
            depth,
            orphan,
            cycle,
            effective_end_us,
            rollup,
            self_us,
            on_critical_path,
        }
    }

    /// Indices of the subtree rooted at `root`, in pre-order.
    pub fn subtree(&self, root: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            out.push(i);
            stack.extend(self.children[i].iter().rev());
        }
        out
    }

    /// Ancestors of `i`, nearest first (parent, grandparent, ... root). Cycles were broken at build time, so this
    /// always ends.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cur = self.parent[i];
        while let Some(p) = cur {
            out.push(p);
            cur = self.parent[p];
        }
        out
    }

    /// The ids on the path from the root down to `i` (inclusive).
    pub fn path(&self, spans: &[SpanInfo], i: usize) -> Vec<String> {
        let mut ids: Vec<String> = self.ancestors(i).into_iter().rev().map(|a| spans[a].span_id.clone()).collect();
        ids.push(spans[i].span_id.clone());
        ids
    }
}

/// Cuts one parent link in every loop. A walk up from each span either reaches a root, a span already known to
/// be fine, or a span seen earlier on the same walk: then the spans from there on form a loop.
fn break_cycles(spans: &[SpanInfo], parent: &mut [Option<usize>], cycle: &mut [bool]) {
    const UNSEEN: usize = usize::MAX;
    const DONE: usize = usize::MAX - 1;
    let n = spans.len();
    // state[i]: UNSEEN, DONE, or the walk number that is visiting it
    let mut state = vec![UNSEEN; n];
    let mut path = Vec::new();
    for start in 0..n {
        if state[start] != UNSEEN {
            continue;
        }
        path.clear();
        let mut cur = start;
        loop {
            if state[cur] == start {
                // loop found: the spans of `path` from `cur` on
                let pos = path.iter().position(|&p| p == cur).expect("cur is on the path");
                let members = &path[pos..];
                let cut = *members
                    .iter()
                    .min_by(|&&a, &&b| order_key(spans, a).cmp(&order_key(spans, b)))
                    .expect("a loop has members");
                parent[cut] = None;
                cycle[cut] = true;
                break;
            }
            if state[cur] != UNSEEN {
                break; // DONE, or finished by an earlier walk
            }
            state[cur] = start;
            path.push(cur);
            match parent[cur] {
                Some(p) => cur = p,
                None => break,
            }
        }
        for &p in &path {
            state[p] = DONE;
        }
    }
}

/// Time in [start, end] not covered by any child interval (children clipped to the span).
fn self_time(start: i64, end: i64, children: &[usize], spans: &[SpanInfo], eff_end: &[i64]) -> i64 {
    let total = (end - start).max(0);
    // children are sorted by start: one sweep merges overlapping intervals
    let mut covered = 0i64;
    let mut cur: Option<(i64, i64)> = None;
    for &c in children {
        let s = spans[c].start_us.clamp(start, end);
        let e = eff_end[c].clamp(start, end);
        if e <= s {
            continue;
        }
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                covered += ce - cs;
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = cur {
        covered += ce - cs;
    }
    total - covered
}

/// The critical path, as in Jaeger: from the end of a span, walk back through the child that finished last before
/// the current point, descend into it, continue from its start. Every root is on the path of its own trace part.
fn critical_path(spans: &[SpanInfo], roots: &[usize], children: &[Vec<usize>], eff_end: &[i64]) -> Vec<bool> {
    let mut on = vec![false; spans.len()];
    let mut stack: Vec<(usize, i64)> = roots.iter().map(|&r| (r, eff_end[r])).collect();
    let mut by_end: Vec<usize> = Vec::new();
    while let Some((i, limit)) = stack.pop() {
        on[i] = true;
        let mut cursor = eff_end[i].min(limit);
        by_end.clear();
        by_end.extend_from_slice(&children[i]);
        by_end.sort_by(|&a, &b| eff_end[b].cmp(&eff_end[a]).then_with(|| spans[a].span_id.cmp(&spans[b].span_id)));
        for &c in &by_end {
            if spans[c].start_us >= cursor {
                continue; // starts after the point we are explaining: not on the path
            }
            stack.push((c, cursor));
            cursor = spans[c].start_us;
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: i64, end: Option<i64>) -> SpanInfo {
        SpanInfo {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            start_us: start,
            end_us: end,
            total_tokens: 10,
            cost_usd: 0.5,
            is_error: false,
        }
    }

    fn ids(spans: &[SpanInfo], idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| spans[i].span_id.clone()).collect()
    }

    #[test]
    fn builds_nested_tree_in_start_order() {
        let spans = vec![
            span("llm", Some("root"), 30, Some(90)),
            span("root", None, 0, Some(100)),
            span("retrieve", Some("root"), 5, Some(25)),
            span("embed", Some("retrieve"), 6, Some(10)),
        ];
        let t = SpanTree::build(&spans);
        assert_eq!(ids(&spans, &t.preorder), ["root", "retrieve", "embed", "llm"]);
        assert_eq!(ids(&spans, &t.roots), ["root"]);
        assert_eq!(t.depth[3], 2);
        assert_eq!(t.path(&spans, 3), ["root", "retrieve", "embed"]);
        let root = t.rollup[1];
        assert_eq!((root.span_count, root.total_tokens, root.duration_us()), (4, 40, 100));
        assert!((root.cost_usd - 2.0).abs() < 1e-12);
        // root covers 0..100, children cover 5..25 and 30..90: 20 us of its own
        assert_eq!(t.self_us[1], 20);
        assert_eq!(t.self_us[2], 16);
        assert!(!t.orphan.iter().any(|&o| o) && !t.cycle.iter().any(|&c| c));
    }

    #[test]
    fn ties_in_start_time_are_broken_by_span_id() {
        let spans = vec![
            span("root", None, 0, Some(10)),
            span("b", Some("root"), 1, Some(2)),
            span("a", Some("root"), 1, Some(3)),
            span("c", Some("root"), 1, Some(2)),
        ];
        let t = SpanTree::build(&spans);
        assert_eq!(ids(&spans, &t.preorder), ["root", "a", "b", "c"]);
    }

    #[test]
    fn orphans_become_flagged_roots() {
        let spans = vec![
            span("root", None, 0, Some(10)),
            span("lost", Some("never-arrived"), 5, Some(6)),
            span("lost-child", Some("lost"), 5, Some(6)),
        ];
        let t = SpanTree::build(&spans);
        assert_eq!(ids(&spans, &t.roots), ["root", "lost"]);
        assert_eq!(t.orphan, [false, true, false]);
        assert_eq!(t.depth[2], 1);
        assert_eq!(t.rollup[1].span_count, 2);
    }

    #[test]
    fn self_parent_is_broken_and_flagged() {
        let spans = vec![span("x", Some("x"), 0, Some(1))];
        let t = SpanTree::build(&spans);
        assert_eq!(t.roots, [0]);
        assert!(t.cycle[0]);
        assert_eq!(t.preorder, [0]);
    }

    #[test]
    fn two_and_three_span_loops_are_broken_at_the_earliest_span() {
        let spans = vec![span("a", Some("b"), 10, Some(20)), span("b", Some("a"), 5, Some(30))];
        let t = SpanTree::build(&spans);
        assert_eq!(ids(&spans, &t.roots), ["b"]);
        assert_eq!(t.cycle, [false, true]);
        assert_eq!(ids(&spans, &t.preorder), ["b", "a"]);

        let spans = vec![
            span("root", None, 0, Some(100)),
            span("a", Some("c"), 3, Some(4)),
            span("b", Some("a"), 1, Some(4)),
            span("c", Some("b"), 2, Some(4)),
            span("tail", Some("c"), 3, Some(4)),
        ];
        let t = SpanTree::build(&spans);
        assert_eq!(ids(&spans, &t.roots), ["root", "b"]);
        assert_eq!(ids(&spans, &t.preorder), ["root", "b", "c", "a", "tail"]);
        assert_eq!(t.cycle.iter().filter(|&&c| c).count(), 1);
    }

    #[test]
    fn deep_chain_of_ten_thousand_levels_does_not_overflow_the_stack() {
        let n = 10_000;
        let spans: Vec<SpanInfo> = (0..n)
            .map(|i| {
                let parent = if i == 0 { None } else { Some(format!("s{}", i - 1)) };
                SpanInfo {
                    span_id: format!("s{i}"),
                    parent_span_id: parent,
                    start_us: i as i64,
                    end_us: Some(2 * n as i64 - i as i64),
                    total_tokens: 1,
                    cost_usd: 0.0,
                    is_error: i % 1000 == 0,
                }
            })
            .collect();
        // run on a small thread stack: recursion would overflow it long before 10k levels
        let t = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let t = SpanTree::build(&spans);
                (t.depth[n - 1], t.rollup[0].span_count, t.rollup[0].error_count, t.ancestors(n - 1).len())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(t, (n - 1, n as u64, 10, n - 1));
    }

    #[test]
    fn long_loop_of_ten_thousand_spans_terminates() {
        let n = 10_000;
        let spans: Vec<SpanInfo> =
            (0..n).map(|i| span(&format!("s{i}"), Some(&format!("s{}", (i + 1) % n)), i as i64, Some(i as i64 + 1))).collect();
        let t = SpanTree::build(&spans);
        assert_eq!(t.roots.len(), 1);
        assert_eq!(t.cycle.iter().filter(|&&c| c).count(), 1);
        assert_eq!(t.preorder.len(), n);
    }

    #[test]
    fn missing_end_time_extends_to_last_descendant() {
        let spans = vec![span("root", None, 0, None), span("child", Some("root"), 10, Some(50))];
        let t = SpanTree::build(&spans);
        assert_eq!(t.effective_end_us[0], 50);
        assert_eq!(t.rollup[0].duration_us(), 50);
        assert_eq!(t.self_us[0], 10);
    }

    #[test]
    fn overlapping_children_are_not_double_counted_in_self_time() {
        let spans = vec![
            span("root", None, 0, Some(100)),
            span("a", Some("root"), 10, Some(60)),
            span("b", Some("root"), 40, Some(80)),
            span("late", Some("root"), 90, Some(150)), // runs past its parent: clipped
        ];
        let t = SpanTree::build(&spans);
        assert_eq!(t.self_us[0], 100 - 70 - 10);
    }

    #[test]
    fn critical_path_follows_the_last_finishing_children() {
        // root 0..100: a 0..40, b 10..30 (overlaps a, finishes earlier), c 45..95 with c1 50..60 and c2 60..90
        let spans = vec![
            span("root", None, 0, Some(100)),
            span("a", Some("root"), 0, Some(40)),
            span("b", Some("root"), 10, Some(30)),
            span("c", Some("root"), 45, Some(95)),
            span("c1", Some("c"), 50, Some(60)),
            span("c2", Some("c"), 60, Some(90)),
        ];
        let t = SpanTree::build(&spans);
        let on: Vec<String> = (0..spans.len()).filter(|&i| t.on_critical_path[i]).map(|i| spans[i].span_id.clone()).collect();
        assert_eq!(on, ["root", "a", "c", "c1", "c2"]);
    }

    #[test]
    fn empty_input_gives_empty_tree() {
        let t = SpanTree::build(&[]);
        assert!(t.roots.is_empty() && t.preorder.is_empty());
    }
}

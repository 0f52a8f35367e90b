#!/usr/bin/env bash
# The HTML views. Targets (issue #16): the trace view of a 10,000-span trace is generated in at most twice the time
# of get_trace_tree for the same trace, and its first render in Chromium takes under 1 s.
#   * generation: analytics.trace_view vs analytics.get_trace_tree (uncached; and as text, which is what a client
#     receives of it), median of 15, the same trace (bench/common.sql's agent-run shape, ~500 bytes of input and
#     output per span), in the same run; the same for 1,000 and 20,000 spans;
#   * first render: the saved document opened in headless Chromium (chromedriver), time from navigation start to
#     the end of the view's first drawing (document.body.dataset.rendered), median of 5 loads, against the time to
#     load an empty page in the same browser;
#   * the dashboard over the same spans, against one trace_metrics call over the same range (for scale).
set -euo pipefail
db=$1
cd "$(dirname "$0")/.."
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
out=$(mktemp -d /tmp/analytics_ext_bench_views.XXXXXX)
q <<'SQL'
\i bench/common.sql
select pg_temp.make_trace('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'trace-' || n, n) from unnest(array[1000, 10000, 20000]) n;
vacuum analyze analytics.llm_traces;
\pset footer off
\pset format aligned
\pset tuples_only off
\echo '== generation: trace_view vs get_trace_tree of the same trace (median ms of 15)'
with r as (
    select n,
           pg_temp.bench(format($$select analytics.trace_view(%L, max_spans => 100000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$, 'trace-' || n), 15) as view_ms,
           pg_temp.bench(format($$select analytics.get_trace_tree(%L, max_depth => 1000, max_spans => 1000000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', cache => false)$$, 'trace-' || n), 15) as tree_ms,
           pg_temp.bench(format($$select analytics.get_trace_tree(%L, max_depth => 1000, max_spans => 1000000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', cache => false)::text$$, 'trace-' || n), 15) as tree_text_ms
    from unnest(array[1000, 10000, 20000]) n)
select n as spans, round(view_ms::numeric, 1) as trace_view_ms, round(tree_ms::numeric, 1) as get_trace_tree_ms,
       round((view_ms / tree_ms)::numeric, 2) as ratio, round(tree_text_ms::numeric, 1) as tree_as_text_ms,
       round((view_ms / tree_text_ms)::numeric, 2) as ratio_to_text
from r order by n;
select n as spans, pg_size_pretty(octet_length(analytics.trace_view('trace-' || n, max_spans => 100000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'))::bigint) as document,
       pg_size_pretty(octet_length(analytics.get_trace_tree('trace-' || n, max_depth => 1000, max_spans => 1000000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', cache => false)::text)::bigint) as tree_json
from unnest(array[1000, 10000, 20000]) n;
\echo '== the dashboard over the same 31,000 spans (median ms of 15), against trace_metrics alone (uncached)'
select round(pg_temp.bench($$select analytics.dashboard_view('2026-11-20 00:00+00', '2026-11-21 00:00+00', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$, 15)::numeric, 1) as dashboard_view_ms,
       round(pg_temp.bench($$select count(*) from analytics.trace_metrics('15 minutes', '2026-11-20 00:00+00', '2026-11-21 00:00+00', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', cache => false)$$, 15)::numeric, 1) as trace_metrics_ms;
SQL
for n in 1000 10000 20000; do
    q -c "select analytics.trace_view('trace-$n', max_spans => 100000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')" > "$out/trace-$n.html"
done
echo '== first render in headless Chromium (ms from navigation start, median of 5 loads)'
python3 - "$out" <<'PY'
import os, statistics, sys
sys.path.insert(0, "tests/integration")
from webdriver import Browser
out = sys.argv[1]
with open(os.path.join(out, "empty.html"), "w") as f:
    f.write("<!doctype html><title>empty</title><body><script>document.body.dataset.rendered = performance.now().toFixed(1)</script>")
# the empty page's script is inline, no policy: a baseline of what any page costs to load and run here
with Browser(1400, 900) as b:
    def load(name):
        b.open("file://" + os.path.join(out, name))
        return float(b.wait_for("return document.body.dataset.rendered"))
    base = statistics.median([load("empty.html") for _ in range(5)])
    print(f"{'page':>12} {'bytes':>10} {'first render ms':>16} {'empty page ms':>14} {'rows in DOM':>12}")
    for n in (1000, 10000, 20000):
        name = f"trace-{n}.html"
        times = [load(name) for _ in range(5)]
        rows = b.count(".row")
        print(f"{name:>12} {os.path.getsize(os.path.join(out, name)):>10} {statistics.median(times):>16.1f} {base:>14.1f} {rows:>12}"
              f"   (loads: {', '.join(f'{t:.0f}' for t in times)})")
PY
rm -rf "$out"

#!/usr/bin/env bash
# What the rate limiter adds to the calls it guards. One client (pgbench), one call per transaction as PostgREST
# runs it (role authenticated, JWT claims), the test clock advancing 0.6 s per call so that every call finds the
# window of the built-in limit (100 per minute) full of earlier calls, as a client at the limit does, and is
# admitted. Each call is measured twice in the same run, alternating, in 20 short rounds (medians, and the spread of
# the round-by-round difference):
#   with the limiter     analytics.ingest_spans(...)  = check_rate_limit('ingest') + analytics._ingest_spans(...)
#   without it           analytics._ingest_spans(...) with the admission set by hand (what the function does after
#                        the limiter; an API caller cannot set it, a benchmark can)
# for one span (what record_span stores) and for 1,000 spans; and record_span itself, for reference. The limiter's
# own cost does not depend on the batch (it never reads the spans), so it is also measured alone, with many more
# calls than a 1,000-span call allows: the same transaction (role, claims, an xid) with and without
# check_rate_limit('ingest'), and set against the 1,000-span call.
set -euo pipefail
db=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create table payload as
select jsonb_agg(jsonb_build_object('trace_id', 'bulk-' || (i / 100), 'span_id', 's' || i, 'name', 'step ' || i,
    'operation_type', 'chat', 'start_time', '2026-11-20T09:00:00Z', 'end_time', '2026-11-20T09:00:01Z',
    'model', 'gpt-4o', 'input_tokens', 120, 'output_tokens', 40,
    'input', jsonb_build_object('text', repeat('what is the shipping status of my order? ', 5)))) as j
from generate_series(0, 999) i;
grant select on payload to authenticated;
SQL
cat > "$dir/prelude" <<'SQL'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-000000000000","role":"authenticated"}', true);
select set_config('analytics.rate_limit_clock', (timestamptz '2026-11-20 00:00+00' + txid_current() * interval '0.6 s')::text, true);
SQL
one='[{"trace_id":"one","span_id":"s","name":"step","start_time":"2026-11-20T09:00:00Z"}]'
admit="select set_config('analytics.rate_limit_admitted', 'ingest', true);"
{ cat "$dir/prelude"; echo "select analytics.ingest_spans('$one');"; echo "commit;"; } > "$dir/one_limited.sql"
{ cat "$dir/prelude"; echo "$admit"; echo "select analytics._ingest_spans('$one');"; echo "commit;"; } > "$dir/one_bare.sql"
{ cat "$dir/prelude"; echo "select analytics.ingest_spans(j) from payload;"; echo "commit;"; } > "$dir/bulk_limited.sql"
{ cat "$dir/prelude"; echo "$admit"; echo "select analytics._ingest_spans(j) from payload;"; echo "commit;"; } > "$dir/bulk_bare.sql"
{ cat "$dir/prelude"; echo "select analytics.record_span('one', 's', 'step', '2026-11-20 09:00+00');"; echo "commit;"; } > "$dir/record_span.sql"
{ cat "$dir/prelude"; echo "select txid_current();"; echo "select analytics.check_rate_limit('ingest');"; echo "commit;"; } > "$dir/check.sql"
{ cat "$dir/prelude"; echo "select txid_current();"; echo "select null::jsonb;"; echo "commit;"; } > "$dir/nocheck.sql"
lat() { pgbench -n -c 1 -t "$2" -f "$dir/$1.sql" "$db" 2>&1 | awk '/^latency average/ {print $4}'; }
# many short rounds, alternating which goes first, so that what changes under the runs (the re-sent spans are
# updates; autovacuum comes and goes) falls on both sides alike
for round in $(seq 1 20); do
    if [ $((round % 2)) = 1 ]; then order="limited bare"; checks="check nocheck"; else order="bare limited"; checks="nocheck check"; fi
    for o in $order; do echo "one_$o $(lat one_$o 1000)" >> "$dir/runs"; done
    echo "record_span $(lat record_span 1000)" >> "$dir/runs"
    for o in $order; do echo "bulk_$o $(lat bulk_$o 12)" >> "$dir/runs"; done
    for c in $checks; do echo "$c $(lat $c 3000)" >> "$dir/runs"; done
done
python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in runs.items()}
def spread(a, b):
    d = sorted(1000 * (x - y) for x, y in zip(runs[a], runs[b]))
    return d[0], d[len(d) // 4], statistics.median(d), d[(3 * len(d)) // 4], d[-1]
print(" call (one per transaction, 20 rounds)     | with limiter ms | without ms | limiter adds (median of the rounds' differences)")
print("-------------------------------------------+-----------------+------------+--------------------------------------------------")
for k, label in (("one", "ingest_spans, 1 span"), ("bulk", "ingest_spans, 1,000 spans")):
    w, wo = m[k + "_limited"], m[k + "_bare"]
    lo, q1, med, q3, hi = spread(k + "_limited", k + "_bare")
    print(f" {label:<41} | {w:15.3f} | {wo:10.3f} | {med:6.0f} us = {100 * med / 1000 / wo:5.1f}%"
          f" (middle half {q1:.0f}..{q3:.0f} us, all {lo:.0f}..{hi:.0f})")
print(f" {'record_span (1 span, limiter included)':<41} | {m['record_span']:15.3f} |            |")
lo, q1, med, q3, hi = spread("check", "nocheck")
bulk = m["bulk_bare"]
print()
print(f" the limiter alone (check_rate_limit in a transaction against the same transaction without it, 20 x 3,000 calls):"
      f" {med:.0f} us (middle half {q1:.0f}..{q3:.0f} us, all {lo:.0f}..{hi:.0f})")
print(f"   = {100 * med / 1000 / m['one_bare']:.1f}% of a 1-span ingest_spans ({m['one_bare']:.3f} ms),"
      f" {100 * med / 1000 / bulk:.2f}% of a 1,000-span ingest_spans ({bulk:.1f} ms)")
PY

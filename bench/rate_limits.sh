#!/usr/bin/env bash
# What the rate limiter adds to the calls it guards. One client (pgbench), one call per transaction as PostgREST
# runs it (role authenticated, JWT claims), the test clock advancing 0.6 s per call so that every call finds the
# window of the built-in limit (100 per minute) full of earlier calls, as a client at the limit does, and is
# admitted. Each call is measured twice in the same run, alternating, median of 10 short rounds:
#   with the limiter     analytics.ingest_spans(...)  = check_rate_limit('ingest') + analytics._ingest_spans(...)
#   without it           analytics._ingest_spans(...) with the admission set by hand (what the function does after
#                        the limiter; an API caller cannot set it, a benchmark can)
# for one span (what record_span stores) and for 1,000 spans; and record_span itself, for reference.
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
lat() { pgbench -n -c 1 -t "$2" -f "$dir/$1.sql" "$db" 2>&1 | awk '/^latency average/ {print $4}'; }
# many short rounds, alternating which goes first, so that what changes under the runs (the re-sent spans are
# updates; autovacuum comes and goes) falls on both sides alike; the median of the rounds
for round in $(seq 1 10); do
    if [ $((round % 2)) = 1 ]; then order="limited bare"; else order="bare limited"; fi
    for o in $order; do echo "one_$o $(lat one_$o 1000)" >> "$dir/runs"; done
    echo "record_span $(lat record_span 1000)" >> "$dir/runs"
    for o in $order; do echo "bulk_$o $(lat bulk_$o 12)" >> "$dir/runs"; done
done
python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in runs.items()}
print(" call (one per transaction, median of 10)   | with limiter ms | without ms | limiter adds")
print("-------------------------------------------+-----------------+------------+--------------------")
for k, label in (("one", "ingest_spans, 1 span"), ("bulk", "ingest_spans, 1,000 spans")):
    w, wo = m[k + "_limited"], m[k + "_bare"]
    print(f" {label:<41} | {w:15.3f} | {wo:10.3f} | {1000 * (w - wo):6.0f} us = {100 * (w - wo) / wo:5.1f}%")
print(f" {'record_span (1 span, limiter included)':<41} | {m['record_span']:15.3f} |            |")
PY

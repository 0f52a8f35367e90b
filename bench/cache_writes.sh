#!/usr/bin/env bash
# What recording writes for the result cache (sql/041_cache.sql: statement triggers on every data table) adds to
# ingest. One client (pgbench), one call per transaction as PostgREST runs it (role authenticated, JWT claims, no
# rate limit), the same calls with the four llm_traces_cache_* triggers enabled and disabled, alternating, median of
# 10 short rounds: ingest_spans with 1 span and with 1,000 spans (re-sent: inserts the first time, updates after).
set -euo pipefail
db=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
insert into analytics.rate_limits (action, max_calls, per) values ('ingest', null, '1 minute');
create table payload as
select jsonb_agg(jsonb_build_object('trace_id', 'bulk-' || (i / 100), 'span_id', 's' || i, 'name', 'step ' || i,
    'operation_type', 'chat', 'start_time', '2026-11-20T09:00:00Z', 'end_time', '2026-11-20T09:00:01Z',
    'model', 'gpt-4o', 'input_tokens', 120, 'output_tokens', 40,
    'input', jsonb_build_object('text', repeat('what is the shipping status of my order? ', 5)))) as j
from generate_series(0, 999) i;
grant select on payload to authenticated;
SQL
prelude="begin; set local role authenticated;
select set_config('request.jwt.claims', '{\"sub\":\"aaaaaaaa-0000-4000-8000-000000000000\",\"role\":\"authenticated\"}', true);"
{ echo "$prelude"; echo "select analytics.ingest_spans('[{\"trace_id\":\"one\",\"span_id\":\"s\",\"name\":\"step\",\"start_time\":\"2026-11-20T09:00:00Z\"}]');"; echo "commit;"; } > "$dir/one.sql"
{ echo "$prelude"; echo "select analytics.ingest_spans(j) from payload;"; echo "commit;"; } > "$dir/bulk.sql"
triggers() {  # enable|disable
    for op in insert update delete truncate; do
        echo "alter table analytics.llm_traces $1 trigger llm_traces_cache_$op;"
    done | psql -X -q -v ON_ERROR_STOP=1 -d "$db"
}
lat() { pgbench -n -c 1 -t "$2" -f "$dir/$1.sql" "$db" 2>&1 | awk '/^latency average/ {print $4}'; }
for round in $(seq 1 10); do
    if [ $((round % 2)) = 1 ]; then order="enable disable"; else order="disable enable"; fi
    for o in $order; do
        triggers "$o"
        echo "one_$o $(lat one 1000)" >> "$dir/runs"
        echo "bulk_$o $(lat bulk 12)" >> "$dir/runs"
    done
done
triggers enable
python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in runs.items()}
print(" call (one per transaction, median of 10)   | recording ms | without ms | recording adds")
print("-------------------------------------------+--------------+------------+--------------------")
for k, label in (("one", "ingest_spans, 1 span"), ("bulk", "ingest_spans, 1,000 spans")):
    w, wo = m[k + "_enable"], m[k + "_disable"]
    print(f" {label:<41} | {w:12.3f} | {wo:10.3f} | {1000 * (w - wo):6.0f} us = {100 * (w - wo) / wo:5.1f}%")
PY

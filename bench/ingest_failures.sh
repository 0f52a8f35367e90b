#!/usr/bin/env bash
# What recording refused batches and counting accepted ones (sql/042_ingest_failures.sql) cost a call that succeeds.
# The ingest wrappers now look at the result of analytics._ingest_spans for an "error" key and count the call in
# analytics.ingest_stats before returning it; the version before both changes
# (check_rate_limit + return _ingest_spans(...)) is recreated here as bench_before.ingest_spans and both are
# called in the same run, one call per transaction as PostgREST runs it (role authenticated, JWT claims,
# request.method set), alternating which goes first, median of 20 short rounds, and the round-by-round spread of
# the difference; for one span and for 1,000 spans.
# The owner's ingest limit is lifted (unlimited plan) so that neither side is refused. Run by scripts/bench.sh.
set -euo pipefail
db=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create schema bench_before;
create function bench_before.ingest_spans(spans jsonb) returns jsonb
language plpgsql volatile security invoker set search_path = '' as $$
begin
    perform analytics.check_rate_limit('ingest');
    return analytics._ingest_spans(spans);
end
$$;
grant usage on schema bench_before to authenticated;
grant execute on function bench_before.ingest_spans(jsonb) to authenticated;
insert into analytics.rate_limits (user_id, action, max_calls, per)
values ('aaaaaaaa-0000-4000-8000-000000000000', 'ingest', null, '1 minute');
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
select set_config('request.method', 'POST', true);
SQL
one='[{"trace_id":"one","span_id":"s","name":"step","start_time":"2026-11-20T09:00:00Z"}]'
for side in now:analytics before:bench_before; do
    name=${side%%:*} schema=${side#*:}
    { cat "$dir/prelude"; echo "select $schema.ingest_spans('$one');"; echo "commit;"; } > "$dir/one_$name.sql"
    { cat "$dir/prelude"; echo "select $schema.ingest_spans(j) from payload;"; echo "commit;"; } > "$dir/bulk_$name.sql"
done
lat() { pgbench -n -c 1 -t "$2" -f "$dir/$1.sql" "$db" 2>&1 | awk '/^latency average/ {print $4}'; }
for round in $(seq 1 20); do
    if [ $((round % 2)) = 1 ]; then order="now before"; else order="before now"; fi
    for o in $order; do echo "one_$o $(lat one_$o 1000)" >> "$dir/runs"; done
    for o in $order; do echo "bulk_$o $(lat bulk_$o 12)" >> "$dir/runs"; done
done
python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in runs.items()}
print(" call (one per transaction, median of 20)   | now ms  | before ms | difference")
print("-------------------------------------------+---------+-----------+--------------------")
for k, label in (("one", "ingest_spans, 1 span"), ("bulk", "ingest_spans, 1,000 spans")):
    a, b = m[k + "_now"], m[k + "_before"]
    print(f" {label:<41} | {a:7.3f} | {b:9.3f} | {1000 * (a - b):6.0f} us = {100 * (a - b) / b:5.1f}%")
# the noise: the same difference round by round (each round measures both sides back to back)
print()
for k, label in (("one", "1 span"), ("bulk", "1,000 spans")):
    d = sorted(100 * (x - y) / y for x, y in zip(runs[k + "_now"], runs[k + "_before"]))
    q1, q3 = d[len(d) // 4], d[(3 * len(d)) // 4]
    verdict = "within noise" if q1 <= 0 <= q3 else ("slower" if q1 > 0 else "faster")
    print(f" {label}: now vs before round by round {d[0]:+.1f}% .. {d[-1]:+.1f}% (middle half {q1:+.1f}% .. {q3:+.1f}%): {verdict}")
PY

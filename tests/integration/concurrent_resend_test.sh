#!/usr/bin/env bash
# Retrying exporters re-send overlapping batches of the same traces in any order. 8 clients (pgbench) for 10 s each
# re-send 100-span batches drawn from the same 2,000 stored spans (20 traces of 100) in shuffled order, as PostgREST would
# run them (role authenticated, JWT claims, one call per transaction). Ingest takes its locks in one order (the
# batch's span locks by key, then rows sorted by owner, trace_id, span_id; duplicates in a batch merged first), so the
# load must end with no failed call at all, no deadlock (40P01) in particular, and exactly the 2,000 distinct spans
# stored.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=concurrent_resend
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create extension analytics_ext;
-- the pool of spans the exporters draw from, as JSON objects
create table resend_pool as
select t, s, jsonb_build_object(
    'trace_id', 'trace-' || t, 'span_id', 'span-' || s,
    'parent_span_id', case when s = 0 then null else 'span-0' end, 'name', 'step ' || s,
    'start_time', '2026-11-20T09:00:00Z', 'end_time', '2026-11-20T09:00:01Z', 'input_tokens', s) as span
from generate_series(0, 19) t, generate_series(0, 99) s;
grant select on resend_pool to authenticated;
-- this test is about locks, not rate limits: the owner's plan is unlimited (tests/integration/rate_limit_race_test.sh
-- races the limiter)
insert into analytics.rate_limits (user_id, action, max_calls, per)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest', null, '1 minute');
-- the spans are stored once (and the table analyzed, as autovacuum would within a minute), so every call of the race
-- re-sends stored spans: updates racing updates
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true);
select analytics.ingest_spans((select jsonb_agg(span) from resend_pool));
commit;
analyze analytics.llm_traces;
SQL

# each call: 100 spans of 5 random traces (20 from each), in random order
cat > "$dir/resend.sql" <<'SQL'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true);
select analytics.ingest_spans((
    select jsonb_agg(p.span order by random())
    from (select t from generate_series(0, 19) t order by random() limit 5) pick
    join lateral (select span from resend_pool r where r.t = pick.t order by random() limit 20) p on true));
commit;
SQL

pgbench -n -c 8 -j 2 -T 10 --failures-detailed -f "$dir/resend.sql" "$db" > "$dir/pgbench.txt" 2>&1 || true
grep -E "number of (transactions actually processed|failed transactions|deadlock failures|serialization failures)" "$dir/pgbench.txt" || true
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$dir/pgbench.txt")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$dir/pgbench.txt")
aborted=$(grep -c "aborted in command\|client .* aborted" "$dir/pgbench.txt" || true)
if [ -z "$processed" ] || [ "$processed" -lt 100 ] || [ "${failed:-0}" -ne 0 ] || [ "$aborted" -ne 0 ]; then
    echo "FAIL: processed=${processed:-?} failed=${failed:-?} aborted clients=$aborted"
    cat "$dir/pgbench.txt"
    exit 1
fi

stored=$(psql -X -At -d "$db" -c "select count(*) || '/' || count(distinct (trace_id, span_id)) from analytics.llm_traces")
echo "calls: $processed, failed: 0; spans stored (rows/distinct): $stored, expected 2000/2000"
[ "$stored" = "2000/2000" ]

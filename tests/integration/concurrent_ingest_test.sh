#!/usr/bin/env bash
# Concurrent batch ingest loses no span: 6 sessions (3 per user) each send 20 batches of 500 spans at the same
# time. Batches of the same user overlap by half (the same span ids re-sent), so sessions race on the same rows
# through INSERT ... ON CONFLICT DO UPDATE. Afterwards every user must have exactly the distinct spans sent.
set -euo pipefail
cd "$(dirname "$0")/../.."

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database concurrent_ingest'
psql -X -q -v ON_ERROR_STOP=1 -d concurrent_ingest -c 'create extension analytics_ext'

worker() { # user, worker number
    local user=$1 w=$2
    psql -X -q -v ON_ERROR_STOP=1 -d concurrent_ingest <<SQL >/dev/null
do \$\$
declare
    b int;
begin
    for b in 0..19 loop
        perform set_config('request.jwt.claims', '{"sub":"$user","role":"authenticated"}', true);
        -- batch b of worker w covers spans [(w*20+b)*250, (w*20+b)*250 + 500): half of it overlaps the next batch
        perform analytics.ingest_spans((
            select jsonb_agg(jsonb_build_object(
                'trace_id', 'trace-' || (i / 100), 'span_id', 'span-' || i,
                'parent_span_id', case when i % 100 = 0 then null else 'span-' || (i - i % 100) end,
                'name', 'step ' || i, 'start_time', '2026-11-20T09:00:00Z', 'end_time', '2026-11-20T09:00:01Z',
                'input_tokens', $w, 'metadata', jsonb_build_object('worker', $w, 'batch', b)))
            from generate_series(($w * 20 + b) * 250, ($w * 20 + b) * 250 + 499) i));
    end loop;
end
\$\$;
SQL
}

A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
pids=()
for w in 0 1 2; do
    worker $A $w & pids+=($!)
    worker $B $w & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

# worker w sends spans (w*20)*250 .. (w*20+19)*250+499, so all workers together send 0 .. 15249
expected=15250
result=$(psql -X -At -d concurrent_ingest -c "select string_agg(user_id || '=' || n || '/' || d, ' ' order by user_id)
    from (select user_id, count(*) n, count(distinct span_id) d from analytics.llm_traces group by user_id) t")
echo "spans per user (rows/distinct): $result; expected $expected each"
[ "$result" = "$A=$expected/$expected $B=$expected/$expected" ]
# every span's metadata is one worker's complete version (no torn writes): worker and tokens agree
torn=$(psql -X -At -d concurrent_ingest -c "select count(*) from analytics.llm_traces where (metadata->>'worker')::int <> input_tokens")
echo "rows whose columns come from different writers: $torn"
[ "$torn" = 0 ]

# The race the fast path must survive: session 1 stores new spans and keeps its transaction open; session 2 sends
# the same spans, sees no stored trace (session 1 has not committed), tries a plain INSERT, waits on the unique
# index, gets a unique violation when session 1 commits, and must fall back to the merge: both succeed, no
# duplicate, session 2's later fields win.
race='[{"trace_id":"race","span_id":"s1","name":"first","start_time":"2026-11-20T09:00:00Z"},
       {"trace_id":"race","span_id":"s2","name":"first","start_time":"2026-11-20T09:00:00Z"}]'
psql -X -q -v ON_ERROR_STOP=1 -d concurrent_ingest >/dev/null <<SQL &
begin;
select set_config('request.jwt.claims', '{"sub":"$A"}', true);
select analytics.ingest_spans('$race');
select pg_sleep(2);
commit;
SQL
first=$!
sleep 0.7
psql -X -q -v ON_ERROR_STOP=1 -d concurrent_ingest >/dev/null <<SQL
begin;
select set_config('request.jwt.claims', '{"sub":"$A"}', true);
select analytics.ingest_spans('$(echo "$race" | sed 's/"first"/"second"/g')');
commit;
SQL
wait "$first"
raced=$(psql -X -At -d concurrent_ingest -c "select count(*) || ' ' || string_agg(distinct name, ',') from analytics.llm_traces where trace_id = 'race'")
echo "racing sessions stored: $raced (expected: 2 second)"
[ "$raced" = "2 second" ]

#!/usr/bin/env bash
# evaluate_alert_rules announces a new alert episode with pg_notify('analytics_alerts', json): a session that LISTENs
# (a worker, or Supabase Realtime on the analytics.alerts rows) receives one notification when the ingest failure rate
# crosses the rule's threshold, none while the same episode goes on (the failures continue for three windows), none
# when it resolves, and one again for a new episode after the cooldown.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=alert_notify_test
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create extension analytics_ext;
-- an accepted call of one span every minute from 12:00 to 12:59 and a refused batch of 2 spans every minute from 12:00 to 12:14 (three
-- 5-minute windows: failure rate 10 / (10 + 5) = 0.67), then only spans, then refused batches again from 12:40
insert into analytics.ingest_failures (user_id, failed_at, function, sqlstate, message, payload_bytes)
select 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'::uuid, timestamptz '2026-11-20 12:00+00' + make_interval(mins => m),
       'ingest_spans', '22023', 'spans[0].name: is required', 50
from generate_series(0, 14) m union all
select 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', timestamptz '2026-11-20 12:40+00' + make_interval(mins => m),
       'ingest_spans', '22023', 'spans[0].name: is required', 50
from generate_series(0, 4) m;
update analytics.ingest_failures set batch_size = 2;
-- the accepted calls, as the ingest functions count them (one call of one span a minute)
insert into analytics.ingest_stats (user_id, bucket_start, function, backend_pid, calls, spans, bytes)
select 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', timestamptz '2026-11-20 12:00+00' + make_interval(mins => m), 'ingest_spans', 4242, 1, 1, 120
from generate_series(0, 59) m;
insert into analytics.alert_rules (user_id, key, metric, operator, threshold, window_length, cooldown)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest-failing', 'ingest_failure_rate', '>', 0.5, '5 minutes', '10 minutes');
SQL
# one evaluation as the owner would run it through PostgREST, in its own session that LISTENs
evaluate() {
    psql -X -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<SQL
listen analytics_alerts;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null;
select count(*) as changed from analytics.evaluate_alert_rules('$1');
commit;
select 1 as flush;
SQL
}
notifications() { grep -c 'Asynchronous notification "analytics_alerts"' <<< "$1" || true; }
out=$(evaluate '2026-11-20 12:05:00+00')
[ "$(notifications "$out")" -eq 1 ] || { echo "$out"; echo "expected one notification when the episode opens"; exit 1; }
grep 'Asynchronous notification' <<< "$out" | grep -q '"rule": "ingest-failing"' || { echo "$out"; echo "payload lacks the rule"; exit 1; }
grep 'Asynchronous notification' <<< "$out" | grep -q '"value": 0.666' || { echo "$out"; echo "payload lacks the value"; exit 1; }
for t in '2026-11-20 12:05:30+00' '2026-11-20 12:10:00+00' '2026-11-20 12:15:00+00' '2026-11-20 12:20:00+00' '2026-11-20 12:30:00+00'; do
    out=$(evaluate "$t")
    [ "$(notifications "$out")" -eq 0 ] || { echo "$out"; echo "announced again at $t"; exit 1; }
done
out=$(evaluate '2026-11-20 12:45:00+00')
[ "$(notifications "$out")" -eq 1 ] || { echo "$out"; echo "expected one notification for the new episode"; exit 1; }
rows=$(psql -X -At -d "$db" -c "select string_agg(status || ' ' || to_char(fired_at at time zone 'UTC', 'HH24:MI') || '-' || coalesce(to_char(resolved_at at time zone 'UTC', 'HH24:MI'), ''), ', ' order by fired_at) from analytics.alerts")
[ "$rows" = "resolved 12:05-12:20, firing 12:45-" ] || { echo "unexpected episodes: $rows"; exit 1; }
psql -X -q -d postgres -c "drop database $db"
echo "one notification per episode (12:05 and 12:45), none while it lasted, when it resolved or in the cooldown: $rows"

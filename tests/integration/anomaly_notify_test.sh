#!/usr/bin/env bash
# run_anomaly_detection announces new warning/critical findings with pg_notify('analytics_anomalies', json): a session
# that LISTENs (as a Supabase Realtime or a worker would) receives one notification per new finding, and a re-run
# that only updates the same findings announces nothing; with a cooldown, an episode of anomalies is announced once.
set -euo pipefail
cd "$(dirname "$0")/../.."
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database notify_test'
psql -X -q -v ON_ERROR_STOP=1 -d notify_test -c 'create extension analytics_ext'
run() {
    psql -X -v ON_ERROR_STOP=1 -d notify_test 2>&1 <<'SQL'
listen analytics_anomalies;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true);
insert into analytics.llm_traces (trace_id, span_id, name, start_time, end_time)
select 't-' || h || '-' || k, 's', 'chat', timestamptz '2026-11-20 00:00+00' + make_interval(hours => h, mins => k),
       timestamptz '2026-11-20 00:00+00' + make_interval(hours => h, mins => k, secs => case when h = 40 then 9 else 1 end)
from generate_series(0, 47) h, generate_series(0, 3) k
on conflict do nothing;
select count(*) as findings from analytics.run_anomaly_detection('latency_p95', '1 hour', '2 days', method => 'mad',
    params => '{"window": 12}', end_time => '2026-11-22 00:00+00');
commit;
select 1 as flush;
SQL
}
first=$(run)
echo "$first"
echo "$first" | grep -q 'Asynchronous notification "analytics_anomalies" with payload' || { echo "no notification received"; exit 1; }
echo "$first" | grep 'Asynchronous notification' | grep -q '"severity": "critical"' || { echo "payload lacks the severity"; exit 1; }
echo "$first" | grep 'Asynchronous notification' | grep -q '"metric": "latency_p95"' || { echo "payload lacks the metric"; exit 1; }
[ "$(echo "$first" | grep -c 'Asynchronous notification')" -eq 1 ] || { echo "expected exactly one notification"; exit 1; }
second=$(run)
if echo "$second" | grep -q 'Asynchronous notification'; then echo "a re-run announced an already recorded finding"; exit 1; fi
rows=$(psql -X -At -d notify_test -c "select count(*) from analytics.anomaly_detections")
[ "$rows" -eq 1 ] || { echo "expected one recorded finding, found $rows"; exit 1; }

# an episode: Bob's latency is high for three hours in a row; with a cooldown all three are recorded, but only the
# first is announced (the alert), as a pager would want
episode=$(psql -X -v ON_ERROR_STOP=1 -d notify_test 2>&1 <<'SQL'
set timezone = 'UTC';
listen analytics_anomalies;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true);
insert into analytics.llm_traces (trace_id, span_id, name, start_time, end_time)
select 't-' || h || '-' || k, 's', 'chat', timestamptz '2026-11-20 00:00+00' + make_interval(hours => h, mins => k),
       timestamptz '2026-11-20 00:00+00' + make_interval(hours => h, mins => k, secs => case when h between 40 and 42 then 9 else 1 end)
from generate_series(0, 47) h, generate_series(0, 3) k;
select count(*) as findings from analytics.run_anomaly_detection('latency_p95', '1 hour', '2 days', method => 'mad',
    params => '{"window": 12, "cooldown": 3}', end_time => '2026-11-22 00:00+00');
commit;
select 1 as flush;
SQL
)
echo "$episode"
echo "$episode" | grep -A2 findings | grep -q ' 3$' || { echo "expected three findings in the episode"; exit 1; }
[ "$(echo "$episode" | grep -c 'Asynchronous notification')" -eq 1 ] || { echo "expected one notification for the episode"; exit 1; }
echo "$episode" | grep 'Asynchronous notification' | grep -q '"bucket_start": "2026-11-21T16:00:00+00:00"' || { echo "the alert is not the episode's first hour"; exit 1; }
echo "one notification for one new finding; none on the re-run; one row recorded; one for a three-hour episode"

#!/usr/bin/env bash
# evaluate_budgets announces each threshold of a budget with pg_notify('analytics_alerts', json) once per period: a
# session that LISTENs receives the 80 % notification exactly once while the spend climbs through 30 %, 85 %, 90 %
# and 120 % of the budget (ingested between evaluations, as an app would), and again in the next period only.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=budget_notify_test
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create extension analytics_ext;
insert into analytics.budgets (user_id, key, amount_usd, period)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'daily', 10, 'day');
SQL
# as the owner through PostgREST: ingest one span of `cost` at `time`, then evaluate at `time`, in a session that LISTENs
spend_and_evaluate() {  # SPAN_ID COST TIME
    psql -X -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<SQL
listen analytics_alerts;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null;
select analytics.ingest_spans(jsonb_build_array(jsonb_build_object('trace_id', 't', 'span_id', '$1', 'name', 'chat',
       'start_time', '$3', 'model', 'gpt-4o', 'cost_usd', $2))) is not null;
select count(*) as fired from analytics.evaluate_budgets('$3');
commit;
select 1 as flush;
SQL
}
at80() { grep 'Asynchronous notification "analytics_alerts"' <<< "$1" | grep -c '"threshold_percent": 80' || true; }
all() { grep -c 'Asynchronous notification "analytics_alerts"' <<< "$1" || true; }

out=$(spend_and_evaluate a 3 '2026-11-20T09:00:00Z') || { echo "$out"; exit 1; }     # 30 %: nothing
[ "$(all "$out")" -eq 0 ] || { echo "$out"; echo "announced below every threshold"; exit 1; }
out=$(spend_and_evaluate b 5.5 '2026-11-20T10:00:00Z') || { echo "$out"; exit 1; }   # 85 %: 50 and 80 cross now
[ "$(at80 "$out")" -eq 1 ] && [ "$(all "$out")" -eq 2 ] || { echo "$out"; echo "expected the 50 % and 80 % notifications"; exit 1; }
grep 'Asynchronous notification' <<< "$out" | grep '"threshold_percent": 80' | grep -q '"kind": "budget"' \
    && grep 'Asynchronous notification' <<< "$out" | grep '"threshold_percent": 80' | grep -q '"budget": "daily"' \
    || { echo "$out"; echo "payload lacks kind or budget"; exit 1; }
out=$(spend_and_evaluate c 0.5 '2026-11-20T11:00:00Z') || { echo "$out"; exit 1; }   # 90 %: 80 again? no
[ "$(all "$out")" -eq 0 ] || { echo "$out"; echo "announced 80 % a second time"; exit 1; }
out=$(spend_and_evaluate d 3 '2026-11-20T12:00:00Z') || { echo "$out"; exit 1; }     # 120 %: only 100 is new
[ "$(all "$out")" -eq 1 ] && [ "$(at80 "$out")" -eq 0 ] || { echo "$out"; echo "expected only the 100 % notification"; exit 1; }
out=$(spend_and_evaluate e 9 '2026-11-21T10:00:00Z') || { echo "$out"; exit 1; }     # next day: 90 %, a new period
[ "$(at80 "$out")" -eq 1 ] || { echo "$out"; echo "expected the 80 % notification of the new day"; exit 1; }
rows=$(psql -X -At -d "$db" -c "select string_agg(to_char(period_start at time zone 'UTC', 'MM-DD') || ' ' || threshold, ', '
       order by period_start, threshold) from analytics.budget_alerts")
[ "$rows" = "11-20 50, 11-20 80, 11-20 100, 11-21 50, 11-21 80" ] || { echo "unexpected alerts: $rows"; exit 1; }
psql -X -q -d postgres -c "drop database $db"
echo "the 80 % threshold announced once per period while the spend went 30 -> 85 -> 90 -> 120 % (and once the next day): $rows"

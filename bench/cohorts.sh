#!/usr/bin/env bash
# Cohorts and retention at scale: one owner with 10M spans of 1M end users over 12 weeks (another owner with 2M spans
# beside them), each figure against a plain-SQL baseline measured in the same run:
#   * retention: analytics.retention over the 12 weekly cohorts (first-seen, calendar weeks, n_day, 12 periods) vs a
#     hand-written query computing the same counts (checked equal);
#   * dynamic refresh of a behavioural cohort ("chatted at least 3 times in the last 30 days"): the first refresh
#     (every member enters), and the next day's (only the change is written), vs the plain query of the same set;
#   * a refresh of a cohort of the other owner (2M spans): its cost follows that owner's data, not the table's.
set -euo pipefail
db=$1
spans=${BENCH_COHORT_SPANS:-10000000}   # (smaller for a quick check of the script)
users=$((spans / 10))
A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$@"; }

q "$db" -c "select count(*) from generate_series(timestamptz '2026-09-01', '2026-12-15', '1 month') m,
            lateral analytics.maintain_span_partitions(premake => 0, as_of => m)" > /dev/null
# Each end user u comes first on day first(u) of the 84 days from Monday 2026-09-07, then returns: their j-th span
# is j²·(u mod 5 + 1) mod 60 days later (some come back daily, some monthly, some never past the first weeks); every
# fourth span is a retrieval, the others chats.
echo "loading $spans spans of $users end users (owner A) and $((spans / 5)) spans (owner B)"
t0=$(date +%s)
q "$db" <<SQL > /dev/null
set analytics.spans_checked = 'on';
set maintenance_work_mem = '1GB';
insert into analytics.llm_traces (user_id, trace_id, span_id, name, operation_type, start_time, end_time, model,
                                  total_tokens, cost_usd, end_user_id)
select '$A', 't-' || i, 's', case when i / $users % 4 = 0 then 'search' else 'chat' end,
       case when i / $users % 4 = 0 then 'retrieval' else 'chat' end, t, t + interval '1 second', 'gpt-4o-mini', 150, 0.0002,
       'user-' || (i % $users)
from generate_series(0::bigint, $spans - 1) i,
     lateral (select timestamptz '2026-09-07' + make_interval(days => least(83, ((i % $users) * 48271) % 84
                       + ((i / $users) * (i / $users) * ((i % $users) % 5 + 1)) % 60)::int,
                                                           secs => (((i % $users) * 37) % 86400)::int) as t) x;
insert into analytics.llm_traces (user_id, trace_id, span_id, name, operation_type, start_time, end_time, end_user_id)
select '$B', 'b-' || i, 's', 'chat', 'chat', timestamptz '2026-09-07' + make_interval(secs => (i * 3.6)::int),
       timestamptz '2026-09-07' + make_interval(secs => (i * 3.6)::int + 1), 'visitor-' || (i % 200000)
from generate_series(0, $spans / 5 - 1) i;
vacuum analyze analytics.llm_traces;
SQL
t1=$(date +%s)
echo "  loaded in $((t1 - t0)) s"
q "$db" -c "select partition, spans_estimate, pg_size_pretty(bytes) from analytics.span_partitions() where spans_estimate > 0"

cat > /tmp/cohort_bench_common.sql <<SQL
\\i bench/common.sql
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"$A","role":"authenticated"}', false) is null;
SQL

retention="select * from analytics.retention('2026-09-07', '2026-11-30', period => 'week', periods => 12, as_of => '2026-12-01')"
# the same counts by hand: each end user's first span (their cohort week), the weeks they came back in, counted
baseline="with anchors as (
    select end_user_id, min(start_time) as anchor from analytics.llm_traces
    where user_id = '$A' and end_user_id is not null and start_time < '2026-12-01' group by end_user_id
    having min(start_time) >= '2026-09-07' and min(start_time) < '2026-11-30'),
  weeks as (
    select distinct a.end_user_id, date_trunc('week', a.anchor at time zone 'UTC') as cohort,
           ((date_trunc('week', s.start_time at time zone 'UTC')::date - date_trunc('week', a.anchor at time zone 'UTC')::date) / 7) as k
    from anchors a join analytics.llm_traces s on s.user_id = '$A' and s.end_user_id = a.end_user_id
    where s.start_time >= a.anchor and s.start_time < '2026-12-01')
  select to_char(cohort, 'YYYY-MM-DD') as cohort, k, count(*) as returned from weeks where k between 0 and 12 group by 1, 2"

echo
echo "retention, 12 weekly cohorts x 12 periods over $spans spans / $users end users (3 runs each, median):"
same=$(q "$db" -f /tmp/cohort_bench_common.sql -c "
    select count(*) = 0 from (
        (select cohort, period_number, returned from ($retention) r where returned > 0
         except select cohort, k, returned from ($baseline) b)
        union all
        (select cohort, k, returned from ($baseline) b
         except select cohort, period_number, returned from ($retention) r)) d" | tail -1)
echo "  the same counts as the plain query: $same"
r=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select round(pg_temp.bench(\$q\$$retention\$q\$, 3)::numeric)" | tail -1)
b=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select round(pg_temp.bench(\$q\$$baseline\$q\$, 1)::numeric)" | tail -1)
echo "  analytics.retention (median of 3): $r ms   plain SQL (1 run): $b ms   ratio $(python3 -c "print(round($r / $b, 2))")   (target < 3000 ms)"
rolling="select * from analytics.retention('2026-09-07', '2026-11-30', period => 'week', periods => 12, calendar => false, as_of => '2026-12-01')"
rl=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select round(pg_temp.bench(\$q\$$rolling\$q\$, 1)::numeric)" | tail -1)
echo "  the same with rolling 7-day periods (the general query, 1 run): $rl ms"

rule='{"performed": {"operation_type": "chat"}, "at_least": 3, "within": "30 days"}'
plain="select end_user_id from analytics.llm_traces where user_id = '$A' and end_user_id is not null and operation_type = 'chat'
       and start_time >= timestamptz '2026-11-30' - interval '30 days' and start_time < '2026-11-30'
       group by end_user_id having count(*) >= 3"
echo
echo "dynamic refresh of \"chatted at least 3 times in the last 30 days\" over the same data:"
first=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select analytics.create_cohort('chatty', rule => '$rule', at => null) is null" \
    -c "select extract(epoch from clock_timestamp() - t0) * 1000 || ' ' || (r->>'entered')
        from (select clock_timestamp() as t0) s, lateral (select analytics.refresh_cohort('chatty', '2026-11-30') as r) x" | tail -1)
p=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select round(pg_temp.bench(\$q\$select count(*) from ($plain) x\$q\$, 3)::numeric)" | tail -1)
echo "  first refresh: $(printf '%.0f' "${first% *}") ms, ${first#* } end users entered   plain query of the set: $p ms   (target < 5000 ms)"
next=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select extract(epoch from clock_timestamp() - t0) * 1000 || ' ' || (r->>'entered') || ' ' || (r->>'exited')
        from (select clock_timestamp() as t0) s, lateral (select analytics.refresh_cohort('chatty', '2026-12-01') as r) x" | tail -1)
set -- $next
echo "  next day's refresh: $(printf '%.0f' "$1") ms ($2 entered, $3 exited)"
count=$(q "$db" -f /tmp/cohort_bench_common.sql -c "select count(*) = (select count(*) from ($plain) x) from analytics.cohort_members('chatty', '2026-11-30T12:00:00Z')" | tail -1)
echo "  members at Nov 30 equal the plain query's set: $count"

echo
echo "the other owner's cohort (B: $((spans / 5)) spans of 200,000 visitors), same rule:"
bq=$(q "$db" -c "\\i bench/common.sql" -c "set role authenticated" \
    -c "select set_config('request.jwt.claims', '{\"sub\":\"$B\",\"role\":\"authenticated\"}', false) is null" \
    -c "select analytics.create_cohort('chatty', rule => '$rule', at => null) is null" \
    -c "select round(extract(epoch from clock_timestamp() - t0)::numeric * 1000) || ' ' || (r->>'entered')
        from (select clock_timestamp() as t0) s, lateral (select analytics.refresh_cohort('chatty', '2026-11-30') as r) x" | tail -1)
echo "  first refresh: ${bq% *} ms, ${bq#* } visitors entered (A's: $(printf '%.0f' "${first% *}") ms over 5x the spans)"

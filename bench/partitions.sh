#!/usr/bin/env bash
# Time-partitioned spans against the unpartitioned table, in one run: the database given (current version: monthly
# partitions) and a second one created at version 0.1.0 (its unpartitioned llm_traces, run by the same library through
# its 0.1.0 symbols), loaded with the same rows:
#   * 10,000,000 spans of one owner in January 2026, and 12 months of another owner's spans (240,000) plus a
#     10,000-span agent trace in November 2026;
#   * tree of the 10k-span trace, search_spans pages (newest first, deep keyset page, a month, a month and a model),
#     ingest of 100,000 new spans and their re-send (updates), each the median of alternating runs;
#   * retention: dropping January (10M spans) with maintain_span_partitions vs DELETE of the same rows.
set -euo pipefail
db=$1
old="${db}_unpartitioned"
psql -X -q -d postgres -c "drop database if exists $old" -c "create database $old"
psql -X -q -d "$old" -c "create extension analytics_ext version '0.1.0'"
jan=${BENCH_JANUARY_SPANS:-10000000}  # (a smaller figure for a quick check of the script)
A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$@"; }

# monthly partitions from December 2025 to January 2027 (empty), made ahead as a pg_cron job would
q "$db" -c "select count(*) from generate_series(timestamptz '2025-12-15', '2027-01-15', '1 month') m,
            lateral analytics.maintain_span_partitions(premake => 0, as_of => m)" > /dev/null
load="
-- bulk loading as the DBA: the spans are unique by construction (the one-row-per-span check of plain INSERTs is
-- skipped, as ingest skips it)
set analytics.spans_checked = 'on';
insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, name, operation_type, status, start_time,
    end_time, model, input_tokens, output_tokens, cost_usd, metadata)
select '$B', 'jan-' || (i / 100), 's' || (i % 100), case when i % 100 > 0 then 's0' end, 'step', 'chat', 'ok',
       timestamptz '2026-01-01' + make_interval(secs => i * 2678400.0 / $jan), timestamptz '2026-01-01' + make_interval(secs => i * 2678400.0 / $jan + 0.4),
       'gpt-4o-mini', 100, 30, 0.0001, '{}'
from generate_series(0, $jan - 1) i;
insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, name, operation_type, status, start_time,
    end_time, model, input_tokens, output_tokens, cost_usd, input, output, metadata)
select '$A', 'bg-' || (i / 20), 's' || (i % 20), case when i % 20 > 0 then 's0' end, 'step ' || (i % 20),
       case when i % 20 = 3 then 'execute_tool' else 'chat' end, case when i % 97 = 0 then 'error' else 'ok' end,
       timestamptz '2025-12-01' + make_interval(secs => i * 131.4), timestamptz '2025-12-01' + make_interval(secs => i * 131.4 + 0.8),
       case when i % 3 = 0 then 'gpt-4o' else 'claude-sonnet-4' end, 120, 40, 0.0007,
       jsonb_build_object('text', 'question ' || i), jsonb_build_object('text', 'answer ' || i), '{}'
from generate_series(0, 239999) i;
\\i bench/common.sql
select pg_temp.make_trace('$A', 'trace-10k', 10000);
vacuum analyze analytics.llm_traces;
"
echo "loading $jan + 250,000 spans into each database"
t0=$(date +%s); q "$db" -f - <<< "$load" > /dev/null; t1=$(date +%s); q "$old" -f - <<< "$load" > /dev/null; t2=$(date +%s)
echo "  loaded: partitioned $((t1 - t0)) s, unpartitioned $((t2 - t1)) s"
q "$db" -c "select partition, spans_estimate, pg_size_pretty(bytes) from analytics.span_partitions() where spans_estimate > 0"

echo
echo "time-bounded searches read only the partitions of their range (plan of search_spans' query for June):"
psql -X -q -d "$db" -c "explain (costs off) select s from analytics.llm_traces s where s.user_id = '$A'
    and s.start_time >= '2026-06-01' and s.start_time < '2026-07-01' order by s.start_time desc, s.id desc limit 50"

# measure NAME SQL_PARTITIONED SQL_UNPARTITIONED RUNS: median ms of RUNS runs, rounds alternating between databases
results=$(mktemp)
measure() {
    local name=$1 new_sql=$2 old_sql=$3 runs=$4 a b
    for round in 1 2 3; do
        a=$(q "$db" -c "\\i bench/common.sql" -c "select pg_temp.bench(\$q\$$new_sql\$q\$, $runs)")
        b=$(q "$old" -c "\\i bench/common.sql" -c "select pg_temp.bench(\$q\$$old_sql\$q\$, $runs)")
        echo "$name|$a|$b" >> "$results"
    done
}
tree="('trace-10k', 1000, 1000000, true, '$A')"
measure "tree of a 10k-span trace" "select analytics._get_trace_tree$tree" "select analytics.get_trace_tree$tree" 9
# pages take ~0.1 ms: 2001 calls a round (21 left the median at the mercy of a few slow calls)
page="user_id => '$A', \"limit\" => 50"
measure "search_spans: newest page" "select count(*) from analytics._search_spans($page)" "select count(*) from analytics.search_spans($page)" 2001
deep="$page, after => '2026-06-15T00:00:00.000000Z,ffffffff-ffff-4fff-bfff-ffffffffffff'"
measure "search_spans: keyset page in June" "select count(*) from analytics._search_spans($deep)" "select count(*) from analytics.search_spans($deep)" 2001
month="$page, from_time => '2026-06-01', to_time => '2026-07-01'"
measure "search_spans: one month" "select count(*) from analytics._search_spans($month)" "select count(*) from analytics.search_spans($month)" 2001
model="$page, model => 'gpt-4o', from_time => '2026-06-01', to_time => '2026-07-01'"
measure "search_spans: a model in a month" "select count(*) from analytics._search_spans($model)" "select count(*) from analytics.search_spans($model)" 2001

# ingest: 100,000 new spans (1,000 traces) into a table that holds 10M, then the same batch again (every span updated)
payload="select jsonb_agg(jsonb_build_object('trace_id', 'ing-' || (i / 100), 'span_id', 's' || i,
    'parent_span_id', case when i % 100 > 0 then 's' || (i - i % 100) end, 'name', 'step ' || i, 'operation_type', 'chat',
    'status', 'ok', 'start_time', timestamptz '2026-11-21 09:00+00' + make_interval(secs => i * 0.001),
    'end_time', timestamptz '2026-11-21 09:00+00' + make_interval(secs => i * 0.001 + 0.5), 'model', 'gpt-4o',
    'input_tokens', 120, 'output_tokens', 40, 'cost_usd', 0.0007,
    'input', jsonb_build_object('text', 'Question ' || i || ': ' || repeat('what is the shipping status of my order? ', 5)),
    'output', jsonb_build_object('text', 'Answer ' || i), 'metadata', jsonb_build_object('env', 'bench'))) as j
from generate_series(0, 99999) i"
for d in "$db" "$old"; do q "$d" -c "create table bench_payload as $payload" > /dev/null; done
claims="select set_config('request.jwt.claims', '{\"sub\":\"$A\",\"role\":\"authenticated\"}', false);"
q "$db" -c "insert into analytics.rate_limits (action, max_calls, per) values ('ingest', null, '1 minute')" > /dev/null
ingest_round() {  # DB: ms of a first ingest and of the re-send, after removing the batch's spans
    q "$1" -c "delete from analytics.llm_traces where trace_id like 'ing-%'" -c "vacuum analyze analytics.llm_traces" > /dev/null
    q "$1" -c "$claims" -c "\\i bench/common.sql" \
        -c "select pg_temp.bench('select analytics.ingest_spans(j) from bench_payload', 1) || '|' || pg_temp.bench('select analytics.ingest_spans(j) from bench_payload', 1)" | tail -1
}
for round in 1 2 3; do
    a=$(ingest_round "$db"); b=$(ingest_round "$old")
    echo "ingest 100k new spans|${a%%|*}|${b%%|*}" >> "$results"
    echo "re-send 100k spans (updates)|${a##*|}|${b##*|}" >> "$results"
done
[ "$(q "$db" -c "select count(*) from analytics.llm_traces where trace_id like 'ing-%'")" = 100000 ]
[ "$(q "$old" -c "select count(*) from analytics.llm_traces where trace_id like 'ing-%'")" = 100000 ]

# retention: January 2026 (10,000,000 spans) goes
# (and December 2025, 20,000 spans: everything before 2026-02-01)
before=$(q "$old" -c "select count(*) from analytics.llm_traces where start_time < '2026-02-01'")
a=$(q "$db" -c "\\i bench/common.sql" -c "select pg_temp.bench(\$q\$select * from analytics.maintain_span_partitions(premake => 0, retain => '1 year', as_of => '2027-02-01')\$q\$, 1)")
b=$(q "$old" -c "\\i bench/common.sql" -c "select pg_temp.bench(\$q\$delete from analytics.llm_traces where start_time < '2026-02-01'\$q\$, 1)")
echo "retention: $before spans before February 2026|$a|$b" >> "$results"
[ "$(q "$db" -c "select count(*) from analytics.llm_traces where start_time < '2026-02-01'")" = 0 ]
[ "$(q "$old" -c "select count(*) from analytics.llm_traces where start_time < '2026-02-01'")" = 0 ]
[ "$(q "$db" -c "select count(*) from analytics.llm_traces")" = "$(q "$old" -c "select count(*) from analytics.llm_traces")" ]

echo
echo "median ms (runs alternate between the databases; ratio = partitioned / unpartitioned)"
psql -X -q -v ON_ERROR_STOP=1 -P footer=off -d "$db" -c "create temp table r (seq serial, name text, partitioned double precision, unpartitioned double precision)" \
    -c "\\copy r (name, partitioned, unpartitioned) from '$results' with (format csv, delimiter '|')" \
    -c "select name as benchmark, round(percentile_cont(0.5) within group (order by partitioned)::numeric, 3) as partitioned_ms,
               round(percentile_cont(0.5) within group (order by unpartitioned)::numeric, 3) as unpartitioned_ms,
               round((percentile_cont(0.5) within group (order by partitioned) / percentile_cont(0.5) within group (order by unpartitioned))::numeric, 3) as ratio
        from r group by name order by min(seq)"
rm -f "$results"
psql -X -q -d postgres -c "drop database $old"

#!/usr/bin/env bash
# The daily usage snapshot (analytics.snapshot_usage, sql/046_usage.sql) over 10,000,000 spans of 1,000 owners in
# one month (target: < 10 s), against a bare full scan of the same table (select count(*)) in the same run; also
# storage_summary (every owner) and one owner's cost report for the month. Median of 3 runs each, as the DBA (a pg_cron
# job: no JWT, every owner). Loading the spans takes about 50 minutes on 2 cores; BENCH_USAGE_SPANS sets a smaller figure
# for a quick check of the script.
set -euo pipefail
db=$1
n=${BENCH_USAGE_SPANS:-10000000}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
q -c "select count(*) from analytics.maintain_span_partitions(premake => 0, as_of => '2026-11-15')" > /dev/null
echo "[usage] loading $n spans of 1,000 owners over November 2026"
q <<SQL
-- bulk loading as the DBA: spans unique by construction (the one-row-per-span check of plain INSERTs skipped)
set analytics.spans_checked = 'on';
insert into analytics.llm_traces (user_id, trace_id, span_id, name, operation_type, status, start_time, end_time,
    provider, model, input_tokens, output_tokens, cache_read_tokens, cost_usd, metadata)
select ('00000000-0000-4000-8000-' || lpad((i % 1000)::text, 12, '0'))::uuid, 't' || (i / 1000 / 8), 's' || (i / 1000 % 8),
       'step', 'chat', 'ok',
       timestamptz '2026-11-01' + make_interval(secs => i * 2592000.0 / $n),
       timestamptz '2026-11-01' + make_interval(secs => i * 2592000.0 / $n + 0.7),
       case when i % 3 = 0 then 'openai' else 'anthropic' end, case when i % 3 = 0 then 'gpt-4o-mini' else 'claude-haiku-4-5' end,
       200 + i % 100, 40 + i % 20, i % 64, 0.0002, '{}'
from generate_series(0, $n - 1) i;
SQL
q -c "vacuum analyze analytics.llm_traces"
echo "[usage] $(q -c "select pg_size_pretty(sum(pg_total_relation_size(relid))) from pg_partition_tree('analytics.llm_traces') where isleaf") in the span partitions"

ms() {  # SQL: milliseconds of one run
    local t0 t1
    t0=$(date +%s%N); q -c "$1" > /dev/null; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
scan=$(median3 "$(ms 'select count(*) from analytics.llm_traces')" "$(ms 'select count(*) from analytics.llm_traces')" "$(ms 'select count(*) from analytics.llm_traces')")
snap=$(median3 "$(ms "select analytics.snapshot_usage('2026-11-30')")" "$(ms "select analytics.snapshot_usage('2026-11-30')")" "$(ms "select analytics.snapshot_usage('2026-11-30')")")
summary=$(median3 "$(ms 'select count(*) from analytics.storage_summary()')" "$(ms 'select count(*) from analytics.storage_summary()')" "$(ms 'select count(*) from analytics.storage_summary()')")
report="select count(*) from analytics.cost_report('2026-11-01', '2026-12-01', '{day,model}') where true"
owner="select set_config('request.jwt.claims', '{\"sub\":\"00000000-0000-4000-8000-000000000007\"}', false)"
one=$(median3 "$(ms "$owner; set role authenticated; $report")" "$(ms "$owner; set role authenticated; $report")" "$(ms "$owner; set role authenticated; $report")")
owners=$(q -c "select count(*) from analytics.usage_snapshots where day = '2026-11-30'")
measured=$(q -c "select round(sum(total_bytes) / max(table_total_bytes), 3) from analytics.storage_summary()")
printf ' %-52s | %9s | %s\n' "call ($n spans, 1,000 owners; median of 3)" "ms" "vs select count(*)"
printf ' %-52s-+-%9s-+-%s\n' "----------------------------------------------------" "---------" "-------------------"
printf ' %-52s | %9s | %s\n' "select count(*) from analytics.llm_traces (baseline)" "$scan" "1.00x"
printf ' %-52s | %9s | %s\n' "snapshot_usage(day), $owners owners written" "$snap" "$(python3 -c "print(f'{$snap / $scan:.2f}x')")"
printf ' %-52s | %9s | %s\n' "storage_summary(), every owner" "$summary" "$(python3 -c "print(f'{$summary / $scan:.2f}x')")"
printf ' %-52s | %9s | %s\n' "cost_report(month, {day,model}), one owner (JWT)" "$one" "$(python3 -c "print(f'{$one / $scan:.2f}x')")"
echo " measured bytes of every owner / pg_total_relation_size of the partitions: $measured"
[ "$snap" -lt 10000 ] && echo " target: snapshot < 10 s: met" || echo " target: snapshot < 10 s: NOT met"

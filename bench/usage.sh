#!/usr/bin/env bash
# The daily usage snapshot (analytics.snapshot_usage, sql/046_usage.sql) over 10,000,000 spans of 1,000 owners spread
# over the 365 days before now, in monthly partitions, as a pg_cron job runs it every night (no JWT, every owner;
# target: < 10 s), against a bare full scan of the same table (select count(*)) in the same run:
#   * the first snapshot, which measures every settled day once and keeps it in the cache (usage_cache_days);
#   * the nightly snapshot (median of 3): before each, 300 spans of three old days are re-sent and 1,000 new spans of
#     the last hour arrive, so each run measures again the days written since the last one, plus the last day;
#   * the snapshot as it was before the cache (commit f2dc0a2, recreated here as bench_before.snapshot_usage), which
#     measured every row every night (median of 3);
#   * what a live write pays for the trigger that logs late writes: ingest_spans of 1,000 new spans with and without
#     the trigger, alternating, median of 20 and the round-by-round spread;
#   * storage_summary (every owner) and one owner's cost report for 30 days.
# Loading the spans (two loaders, triggers off as for a bulk load) takes about 20 minutes on 2 cores;
# BENCH_USAGE_SPANS sets a smaller figure for a quick check of the script.
set -euo pipefail
db=$1
n=${BENCH_USAGE_SPANS:-10000000}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now=$(q -c "select date_trunc('hour', now())")
# monthly partitions over the year, as the maintenance job makes them
q -c "select count(*) from generate_series(timestamptz '$now' - interval '366 days', timestamptz '$now' + interval '1 month', '1 month') m,
      lateral analytics.maintain_span_partitions(premake => 0, as_of => m)" > /dev/null
echo "[usage] loading $n spans of 1,000 owners over the 365 days before $now"
load() {  # $1: which half of the rows (0 or 1)
    q <<SQL
-- a bulk load by the DBA: spans unique by construction, triggers off (the late-write log, the one-row-per-span check)
set session_replication_role = replica;
insert into analytics.llm_traces (user_id, trace_id, span_id, name, operation_type, status, start_time, end_time,
    provider, model, input_tokens, output_tokens, cache_read_tokens, cost_usd, metadata)
select ('00000000-0000-4000-8000-' || lpad((i % 1000)::text, 12, '0'))::uuid, 't' || (i / 1000 / 8), 's' || (i / 1000 % 8),
       'step', 'chat', 'ok',
       timestamptz '$now' - interval '365 days' + make_interval(secs => i * 31536000.0 / $n),
       timestamptz '$now' - interval '365 days' + make_interval(secs => i * 31536000.0 / $n + 0.7),
       case when i % 3 = 0 then 'openai' else 'anthropic' end, case when i % 3 = 0 then 'gpt-4o-mini' else 'claude-haiku-4-5' end,
       200 + i % 100, 40 + i % 20, i % 64, 0.0002, '{}'
from generate_series(0, $n - 1) i
where (i / 100000) % 2 = $1;
SQL
}
load 0 & load 1 & wait
q -c "vacuum analyze analytics.llm_traces"
echo "[usage] $(q -c "select pg_size_pretty(sum(pg_total_relation_size(relid))) from pg_partition_tree('analytics.llm_traces') where isleaf") in $(q -c "select count(*) from analytics.span_partitions() where spans_estimate > 0") partitions"

ms() {  # SQL: milliseconds of one run
    local t0 t1
    t0=$(date +%s%N); q -c "$1" > /dev/null; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
scan=$(median3 "$(ms 'select count(*) from analytics.llm_traces')" "$(ms 'select count(*) from analytics.llm_traces')" "$(ms 'select count(*) from analytics.llm_traces')")
first=$(ms "select analytics.snapshot_usage()")
cached_days=$(q -c "select count(distinct (relid, day)) from analytics.usage_cache_days")
nightly() {  # $1: the night. Re-send the spans of one owner over three old days, add 1,000 spans of the last hour, snapshot
    q > /dev/null <<SQL
update analytics.llm_traces set output_tokens = output_tokens + 1
where user_id = '00000000-0000-4000-8000-000000000007'
  and start_time >= timestamptz '$now' - interval '$((30 * $1)) days' and start_time < timestamptz '$now' - interval '$((30 * $1 - 3)) days';
insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time, model, input_tokens, output_tokens, cost_usd)
select ('00000000-0000-4000-8000-' || lpad((i % 1000)::text, 12, '0'))::uuid, 'new-$1-' || i, 's', 'chat',
       now() - make_interval(secs => i * 3.6), 'gpt-4o-mini', 100, 20, 0.0001
from generate_series(1, 1000) i;
SQL
    ms "select analytics.snapshot_usage()"
}
snap=$(median3 "$(nightly 1)" "$(nightly 2)" "$(nightly 3)")
remeasured=$(q -c "select count(*) from analytics.usage_cache_changes")
q > /dev/null <<'SQL'
create schema bench_before;
create function bench_before.snapshot_usage(
    day     date DEFAULT ((now() AT TIME ZONE 'UTC')::date - 1),
    user_id uuid DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    day_start timestamptz;
    day_end timestamptz;
    sz record;
    written integer;
begin
    if snapshot_usage.day is null then
        raise exception 'day: is required' using errcode = '22004';
    end if;
    day_start := snapshot_usage.day::timestamp AT TIME ZONE 'UTC';
    day_end := day_start + interval '1 day';
    select * into sz from analytics._span_relation_sizes();
    -- every owner the caller may read (a job: all of them), or one
    with stored as (
        select t.user_id as owner, count(*) as n, sum(analytics._span_bytes(t)) as rb
        from analytics.llm_traces t
        where t.start_time < day_end and (snapshot_usage.user_id is null or t.user_id = snapshot_usage.user_id)
        group by t.user_id
    ), total as (
        select greatest(sz.rows_estimate, coalesce(sum(stored.n), 0), 1) as n from stored
    ), active as (
        select t.user_id as owner, count(*) as spans, count(distinct t.trace_id) as traces,
               sum(t.input_tokens)::bigint as input_tokens, sum(t.output_tokens)::bigint as output_tokens,
               sum(t.cache_read_tokens)::bigint as cache_read_tokens, sum(t.cache_write_tokens)::bigint as cache_write_tokens,
               sum(t.reasoning_tokens)::bigint as reasoning_tokens, sum(t.cost_usd) as cost_usd
        from analytics.llm_traces t
        where t.start_time >= day_start and t.start_time < day_end
          and (snapshot_usage.user_id is null or t.user_id = snapshot_usage.user_id)
        group by t.user_id
    )
    insert into analytics.usage_snapshots as u (user_id, day, spans_stored, bytes_stored, spans, traces, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, taken_at)
    select s.owner, snapshot_usage.day, s.n, (s.rb + sz.index_bytes::numeric * s.n / total.n)::bigint,
           coalesce(d.spans, 0), coalesce(d.traces, 0), coalesce(d.input_tokens, 0), coalesce(d.output_tokens, 0),
           coalesce(d.cache_read_tokens, 0), coalesce(d.cache_write_tokens, 0), coalesce(d.reasoning_tokens, 0),
           coalesce(d.cost_usd, 0), now()
    from stored s cross join total left join active d on d.owner = s.owner
    on conflict (user_id, day) do update set
        spans_stored = excluded.spans_stored, bytes_stored = excluded.bytes_stored, spans = excluded.spans,
        traces = excluded.traces, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
        cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens,
        reasoning_tokens = excluded.reasoning_tokens, cost_usd = excluded.cost_usd, taken_at = excluded.taken_at;
    get diagnostics written = row_count;
    return written;
end
$$;
SQL
every=$(median3 "$(ms "select bench_before.snapshot_usage()")" "$(ms "select bench_before.snapshot_usage()")" "$(ms "select bench_before.snapshot_usage()")")
agree=$(q -c "select count(*) = 0 from (
    (select s.user_id, s.spans, s.row_bytes from analytics._stored_by_owner((now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC', null) s
     except select t.user_id, count(*), sum(analytics._span_bytes(t)) from analytics.llm_traces t
            where t.start_time < (now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' group by 1)) x")
summary=$(median3 "$(ms 'select count(*) from analytics.storage_summary()')" "$(ms 'select count(*) from analytics.storage_summary()')" "$(ms 'select count(*) from analytics.storage_summary()')")
report="select count(*) from analytics.cost_report(now() - interval '30 days', now(), '{day,model}') where true"
owner="select set_config('request.jwt.claims', '{\"sub\":\"00000000-0000-4000-8000-000000000007\"}', false)"
one=$(median3 "$(ms "$owner; set role authenticated; $report")" "$(ms "$owner; set role authenticated; $report")" "$(ms "$owner; set role authenticated; $report")")
owners=$(q -c "select count(*) from analytics.usage_snapshots where day = (now() AT TIME ZONE 'UTC')::date - 1")
measured=$(q -c "select round(sum(total_bytes) / max(table_total_bytes), 3) from analytics.storage_summary()")

# the trigger's cost on a live write: 1,000 new spans per call, through ingest_spans as PostgREST calls it
q > /dev/null <<'SQL'
insert into analytics.rate_limits (user_id, action, max_calls, per)
values ('00000000-0000-4000-8000-000000000001', 'ingest', null, '1 minute');
SQL
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/ingest.sql" <<'SQL'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-000000000001","role":"authenticated"}', true);
select set_config('request.method', 'POST', true);
select analytics.ingest_spans(jsonb_agg(jsonb_build_object('trace_id', 'live-' || txid_current() || '-' || (i / 100),
    'span_id', 's' || i, 'name', 'step', 'start_time', now() - make_interval(secs => i), 'model', 'gpt-4o-mini',
    'input_tokens', 100, 'output_tokens', 20))) from generate_series(1, 1000) i;
commit;
SQL
trig() { q -c "alter table analytics.llm_traces $1 trigger llm_traces_usage_insert"; }
for round in $(seq 1 20); do
    if [ $((round % 2)) = 1 ]; then order="with without"; else order="without with"; fi
    for o in $order; do
        if [ "$o" = with ]; then trig enable; else trig disable; fi
        echo "$o $(pgbench -n -c 1 -t 10 -f "$dir/ingest.sql" "$db" 2>&1 | awk '/^latency average/ {print $4}')" >> "$dir/runs"
    done
done
trig enable
spread=$(python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
w, wo = statistics.median(runs["with"]), statistics.median(runs["without"])
d = sorted(100 * (x - y) / y for x, y in zip(runs["with"], runs["without"]))
q1, q3 = d[len(d) // 4], d[(3 * len(d)) // 4]
verdict = "within noise" if q1 <= 0 <= q3 else ("slower" if q1 > 0 else "faster")
print(f"{w:.1f} ms with the late-write trigger, {wo:.1f} ms without ({100 * (w - wo) / wo:+.1f}%; round by round "
      f"{d[0]:+.1f}% .. {d[-1]:+.1f}%, middle half {q1:+.1f}% .. {q3:+.1f}%: {verdict})")
PY
)
x() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
printf ' %-62s | %9s | %s\n' "call ($n spans, 1,000 owners, 12 months; median of 3)" "ms" "vs select count(*)"
printf ' %-62s-+-%9s-+-%s\n' "--------------------------------------------------------------" "---------" "-------------------"
printf ' %-62s | %9s | %s\n' "select count(*) from analytics.llm_traces (baseline)" "$scan" "1.00x"
printf ' %-62s | %9s | %s\n' "first snapshot_usage(): measures and caches $cached_days settled days" "$first" "$(x "$first" "$scan")"
printf ' %-62s | %9s | %s\n' "nightly snapshot_usage(), $owners owners (3 days re-measured)" "$snap" "$(x "$snap" "$scan")"
printf ' %-62s | %9s | %s\n' "snapshot_usage() before the cache (every row measured)" "$every" "$(x "$every" "$scan")"
printf ' %-62s | %9s | %s\n' "storage_summary(), every owner" "$summary" "$(x "$summary" "$scan")"
printf ' %-62s | %9s | %s\n' "cost_report(30 days, {day,model}), one owner (JWT)" "$one" "$(x "$one" "$scan")"
echo " cached figures equal a measurement of every row: $agree (days logged and not yet measured again: $remeasured)"
echo " measured bytes of every owner / pg_total_relation_size of the partitions: $measured"
echo " ingest_spans of 1,000 new spans (median of 20): $spread"
[ "$snap" -lt 10000 ] && echo " target: nightly snapshot < 10 s: met" || echo " target: nightly snapshot < 10 s: NOT met"

-- Storage and usage (sql/046_usage.sql): measured storage per owner and trace agrees with the tables' sizes,
-- daily snapshots are idempotent and per owner, projections reproduce a known linear trend within their interval,
-- and the cost report groups as asked — for two owners who see only their own.
\pset null '·'
set timezone = 'UTC';
delete from analytics.usage_snapshots;
-- (truncated, not deleted: the spans of earlier tests must not leave dead rows and free space in the partitions, which
-- the 10 % comparison with pg_total_relation_size below would count)
truncate analytics.llm_traces;
-- the spans below live in a monthly partition (the DBA's maintenance makes it; tests/pg_regress/sql/partitions.sql may
-- have already), as they would in production
select count(*) >= 0 as maintained from analytics.maintain_span_partitions(premake => 0, as_of => '2026-11-15');
select count(*) as november_partition from analytics.span_partitions() where from_time <= '2026-11-18' and to_time >= '2026-11-21';

-- Alice: 3,000 spans over three days, every 50th with a large output (stored out of line in TOAST); Bob: 1,000
insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time, end_time, model, provider, operation_type,
                                  input_tokens, output_tokens, cost_usd, input, output)
select case when i <= 3000 then 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa' else 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb' end::uuid,
       'trace-' || (i / 10), 's' || (i % 10), 'chat',
       timestamptz '2026-11-18 00:00+00' + make_interval(secs => (i % 3000) * 86), timestamptz '2026-11-18 00:00+00' + make_interval(secs => (i % 3000) * 86 + 2),
       case when i % 3 = 0 then 'gpt-4o-mini' else 'claude-haiku-4-5' end,
       case when i % 3 = 0 then 'openai' else 'anthropic' end,
       case when i % 7 = 0 then 'embeddings' else 'chat' end,
       100 + i % 50, 20 + i % 10, case when i % 11 = 0 then null else 0.0001 * (1 + i % 5) end,
       jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question ' || i))),
       case when i % 50 = 0
            then jsonb_build_object('text', (select string_agg(md5(i::text || ':' || k), '') from generate_series(1, 200) k))
            else jsonb_build_object('text', 'answer ' || i) end
from generate_series(1, 4000) i;
vacuum analyze analytics.llm_traces;

-- the DBA's view (every owner): measured figures within 10 % of pg_total_relation_size of every partition
select s.user_id, s.spans, s.traces, s.row_bytes > 0 as measured, s.index_bytes > 0 as index_share
from analytics.storage_summary() s order by s.user_id;
select round((sum(s.total_bytes) / max(s.table_total_bytes))::numeric, 2) between 0.90 and 1.10 as within_10_percent,
       max(s.table_total_bytes) = (select sum(pg_total_relation_size(p.relid)) from pg_partition_tree('analytics.llm_traces') p where p.isleaf) as table_total
from analytics.storage_summary() s;
-- the index share follows the row count: Alice has three times Bob's spans
select round((max(index_bytes) filter (where spans = 3000))::numeric / (max(index_bytes) filter (where spans = 1000)), 1) as alice_to_bob
from analytics.storage_summary();

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- Alice sees her own row only; her biggest traces are the ones holding a large output
select user_id, spans, traces from analytics.storage_summary();
select trace_id, spans, output_bytes > 1000 as large_output, abs(total_bytes - row_bytes - index_bytes) <= 1 as adds_up
from analytics.storage_by_trace('2026-11-18', '2026-11-21', 3);
select regress.attempt($$select * from analytics.storage_by_trace('2026-11-21', '2026-11-18')$$) as backwards,
       regress.attempt($$select * from analytics.storage_by_trace("limit" => 0)$$) as no_limit;
-- naming Bob shows nothing of his
select count(*) as bobs_traces from analytics.storage_by_trace('2026-11-18', '2026-11-21', 10, 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb');
commit;

-- ---- snapshots: the job (no JWT, every owner), one row per owner and day, idempotent ---------------------------------
select analytics.snapshot_usage(d::date) as owners from generate_series(date '2026-11-18', date '2026-11-20', '1 day') d;
select user_id, day, spans_stored, spans, traces, input_tokens, round(cost_usd::numeric, 4) as cost_usd, bytes_stored > 0 as bytes
from analytics.usage_snapshots order by user_id, day;
create temporary table snapshot_before as select user_id, day, spans_stored, bytes_stored, spans, cost_usd from analytics.usage_snapshots;
select analytics.snapshot_usage('2026-11-19') as again;
select count(*) as changed from (select user_id, day, spans_stored, bytes_stored, spans, cost_usd from analytics.usage_snapshots
                                 except select * from snapshot_before) x;
-- the last day's stored figures agree with storage_summary
select s.user_id, s.bytes_stored = (select m.total_bytes from analytics.storage_summary() m where m.user_id = s.user_id) as same_bytes
from analytics.usage_snapshots s where s.day = '2026-11-20' order by 1;

-- ---- the snapshot's cache of settled days ------------------------------------------------------------------------
-- The job above read every owner and pg_stat_activity, so it measured the settled days (all three: they ended more
-- than a day ago) once and kept them; stored figures from the cache equal a direct measurement of every row
create function pg_temp.measured(until timestamptz) returns table (user_id uuid, spans bigint, row_bytes numeric)
language sql as $$
    select t.user_id, count(*), sum(analytics._span_bytes(t)) from analytics.llm_traces t where t.start_time < until group by 1
$$;
create function pg_temp.cache_agrees(until timestamptz) returns boolean language sql as $$
    select not exists (select * from analytics._stored_by_owner(until, null) except select * from pg_temp.measured(until))
       and not exists (select * from pg_temp.measured(until) except select * from analytics._stored_by_owner(until, null))
$$;
select count(distinct day) as days_cached, count(distinct user_id) as owners, sum(spans) as spans
from analytics.usage_cache_days;
select pg_temp.cache_agrees('2026-11-21') as all_days, pg_temp.cache_agrees('2026-11-19') as first_day;
select count(*) as nothing_logged from analytics.usage_cache_changes where day >= '2026-11-01' and day < '2026-12-01';

-- A late span of Bob's on 2026-11-19 sent through PostgREST (the day is settled: the trigger logs it, once), a span of
-- Alice's moved from the 18th to the 20th by a re-send, and one of Alice's deleted: each changed day is measured again
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select set_config('request.method', 'POST', true) is not null as post;
select analytics.ingest_spans('[{"trace_id":"late","span_id":"a","name":"chat","start_time":"2026-11-19T12:00:00Z"},
                                {"trace_id":"late","span_id":"b","name":"chat","start_time":"2026-11-19T12:00:01Z"}]')->>'stored' as stored;
-- the log is not Bob's to read, nor to write, nor is the cache
select regress.attempt($$select * from analytics.usage_cache_changes$$) as read_log,
       regress.attempt($$insert into analytics.usage_cache_changes (day) values ('2026-11-19')$$) as write_log,
       regress.attempt($$select * from analytics.usage_cache_days$$) as read_cache;
commit;
select day, count(*) as logged from analytics.usage_cache_changes where day >= '2026-11-01' and day < '2026-12-01' group by 1 order by 1;
select pg_temp.cache_agrees('2026-11-21') as after_late_span;
update analytics.llm_traces set start_time = start_time + interval '2 days', end_time = end_time + interval '2 days'
where user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa' and trace_id = 'trace-5' and span_id = 's0';
delete from analytics.llm_traces where user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa' and trace_id = 'trace-250' and span_id = 's3';
select day, count(*) as logged from analytics.usage_cache_changes where day >= '2026-11-01' and day < '2026-12-01' group by 1 order by 1;
select pg_temp.cache_agrees('2026-11-19') as after_move, pg_temp.cache_agrees('2026-11-21') as after_move_all;
select count(*) as log_emptied from analytics.usage_cache_changes where day >= '2026-11-01' and day < '2026-12-01';
select analytics.snapshot_usage('2026-11-20') as owners;
select user_id, spans_stored, spans_stored = (select m.spans from pg_temp.measured('2026-11-21') m where m.user_id = s.user_id) as measured
from analytics.usage_snapshots s where day = '2026-11-20' order by 1;
-- a span that started within the last day is not logged (the statement trigger finds no late span)
insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time)
values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'live', 'a', 'chat', now() - interval '1 hour');
select count(*) as live_not_logged from analytics.usage_cache_changes where day >= current_date - 1;
delete from analytics.llm_traces where trace_id = 'live';
-- VACUUM FULL gives the partition a new file node: its cache is dropped and measured again, with the same figures
create temporary table cached_before as select relid, day, user_id, spans, row_bytes from analytics.usage_cache_days;
select format('vacuum full %s', partition) from analytics.span_partitions() where from_time <= '2026-11-18' and to_time >= '2026-11-21' \gexec
select pg_temp.cache_agrees('2026-11-21') as after_vacuum_full,
       (select count(*) from (select * from cached_before except select relid, day, user_id, spans, row_bytes from analytics.usage_cache_days) x) as changed;
select bool_and(s.relfilenode = c.relfilenode) as on_the_new_file_node, count(*) > 0 as cached
from analytics.usage_cache_partitions s join pg_class c on c.oid = s.relid;

-- ---- projections --------------------------------------------------------------------------------------------------
-- Alice's spend follows a known line, 2 + 0.5 x USD per day (x = day number), with a deterministic scatter of ±0.3:
-- the 30-day projection must hold the line's true total, and bytes stored (exactly linear) project exactly
delete from analytics.usage_snapshots where user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
insert into analytics.usage_snapshots (user_id, day, spans_stored, bytes_stored, spans, traces, input_tokens, output_tokens,
                                       cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd)
select 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', date '2026-10-01' + x, 1000 * x, 1000000 + 50000 * x, 100, 10, 0, 0, 0, 0, 0,
       2 + 0.5 * x + 0.3 * sin(x * 1.7)
from generate_series(0, 59) x;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- the true total of days 60..89: sum of 2 + 0.5 x = 30 * 2 + 0.5 * (60 + ... + 89) = 1177.5
select horizon_days, until_day, round(projected::numeric, 1) as projected, lower_bound <= 1177.5 and 1177.5 <= upper_bound as holds_truth,
       round(slope_per_day::numeric, 2) as slope, round(r_squared::numeric, 3) as r_squared, days_fitted
from analytics.usage_projection('cost_usd', '{30}', history => 90, as_of => '2026-11-30');
select horizon_days, until_day, round(projected) as projected, round(lower_bound) as lower_bound, round(upper_bound) as upper_bound
from analytics.usage_projection('bytes_stored', '{30,90,365}', as_of => '2026-11-30');
-- bad input names its field
select regress.attempt($$select * from analytics.usage_projection('latency')$$) as metric,
       regress.attempt($$select * from analytics.usage_projection('cost_usd', '{0}', as_of => '2026-11-30')$$) as horizon,
       regress.attempt($$select * from analytics.usage_projection('cost_usd', '{30}', level => 1.5, as_of => '2026-11-30')$$) as level,
       regress.attempt($$select * from analytics.usage_projection('cost_usd', as_of => '2026-01-01')$$) as no_history;
commit;
-- Bob's own snapshots: three days, so a trend he may project; Alice's are not his
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select count(*) as snapshots from analytics.usage_snapshots;
select horizon_days, days_fitted from analytics.usage_projection('spans', '{7}', as_of => '2026-11-21');
select regress.attempt($$select * from analytics.usage_projection(as_of => '2026-11-30', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$) as alices;
-- a user's own snapshot job writes only their row
select analytics.snapshot_usage('2026-11-20') as written;
commit;

-- ---- cost report --------------------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select model, spans, input_tokens, round(cost_usd::numeric, 4) as cost_usd, unpriced_spans
from analytics.cost_report('2026-11-18', '2026-11-21', '{model}');
select day, provider, operation_type, spans, round(cost_usd::numeric, 4) as cost_usd
from analytics.cost_report('2026-11-18', '2026-11-21', '{day,provider,operation_type}');
select spans, round(cost_usd::numeric, 4) as cost_usd from analytics.cost_report('2026-11-18', '2026-11-21', '{}');
select regress.attempt($$select * from analytics.cost_report(group_by => '{customer}')$$) as bad_group,
       regress.attempt($$select * from analytics.cost_report(group_by => null)$$) as no_group;
commit;

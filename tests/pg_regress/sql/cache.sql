-- Result caches (sql/041_cache.sql): per owner, served until their TTL and only while no write to the owner's data
-- committed after the snapshot they were computed under. Sessions behave like PostgREST (role authenticated + JWT
-- claims, one statement = one request = one transaction); a second session (dblink) writes concurrently. Time moves
-- with the test clock analytics.cache_clock (honoured in a superuser's session only), never with sleeps.
\pset null '·'
create extension if not exists dblink;
delete from analytics.cache_entries;
delete from analytics.cache_events;
delete from analytics.cache_counters;

-- regress.calls(fn): hits and misses of the caller's fn so far (cache_stats)
create function regress.calls(fn text) returns text
language sql as $$
    select coalesce((select format('%s hits, %s misses', s.hits, s.misses) from analytics.cache_stats() s
                     where s.function_name = fn and s.user_id = analytics.current_user_id()), '0 hits, 0 misses')
$$;
grant execute on function regress.calls(text) to authenticated;
-- regress.result(): Alice's conversion rate per variant and the treatment's p-value, as one line
create function regress.result(use_cache boolean default true) returns text
language sql as $$
    select string_agg(format('%s %s/%s', r.variant_key, round(r.value::numeric, 4), r.units), ', ' order by r.variant_key)
    from analytics.experiment_results('cached', 'signup', cache => use_cache) r
$$;
grant execute on function regress.result(boolean) to authenticated;
-- regress.writer: a second session, signed in as Alice, whose transactions stay open between statements
create function regress.writer(stmt text) returns text
language plpgsql security definer as $$
begin
    if not ('writer' = any (coalesce(dblink_get_connections(), '{}'))) then
        perform dblink_connect('writer', format('dbname=%s port=%s host=%s user=%s', current_database(),
            current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1), session_user));
        perform dblink_exec('writer', 'set role authenticated');
        perform dblink_exec('writer', $q$set request.jwt.claims = '{"sub":"a1a1a1a1-a1a1-4a1a-8a1a-a1a1a1a1a1a1","role":"authenticated"}'$q$);
    end if;
    return dblink_exec('writer', stmt);
end
$$;

-- Alice's experiment: 200 units, a signup from the units whose number ends in 0 or 5
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"a1a1a1a1-a1a1-4a1a-8a1a-a1a1a1a1a1a1","role":"authenticated"}', false) is not null as alice;
select key from analytics.create_experiment('cached', 'Cached', '[{"key":"control"},{"key":"treatment"}]');
select status from analytics.start_experiment('cached');
select count(*) as assigned from generate_series(1, 200) i, analytics.assign_variant('cached', 'u' || i) a where a.in_experiment;
insert into analytics.ab_experiment_events (unit_id, metric)
select a.unit_id, 'signup' from analytics.ab_experiment_assignments a where a.unit_id ~ '^u[0-9]*[05]$';
select (analytics.record_span('t1', 'root', 'chat', '2026-11-20 10:00+00', '2026-11-20 10:00:02+00', model => 'gpt-4o')).span_id;
insert into analytics.anomaly_detections (metric, bucket_start, bucket_width, observed, method, severity)
values ('error_rate', '2026-11-20 10:00+00', '1 hour', 0.4, 'mad', 'critical');

-- the first call computes (a miss), the next one is served from the cache (a hit) with the same rows
select regress.result() as first, regress.calls('experiment_results') as stats;
select regress.result() as second, regress.calls('experiment_results') as stats;
-- identical to the computation, column for column, for every cached function (a hit each time)
select (select array_agg(r::text) from analytics.experiment_results('cached', 'signup') r)
     = (select array_agg(r::text) from analytics.experiment_results('cached', 'signup', cache => false) r) as experiment_results_same,
       (select array_agg(r::text) from analytics.experiment_results('cached', 'signup') r)
     = (select array_agg(r::text) from analytics._experiment_results('cached', 'signup') r) as same_as_internal;
select (select array_agg(r::text) from analytics.trace_metrics('1 hour', '2026-11-20', '2026-11-21', '{model}') r)
     = (select array_agg(r::text) from analytics.trace_metrics('1 hour', '2026-11-20', '2026-11-21', '{model}', cache => false) r) as miss_same,
       (select array_agg(r::text) from analytics.trace_metrics('1 hour', '2026-11-20', '2026-11-21', '{model}') r)
     = (select array_agg(r::text) from analytics.trace_metrics('1 hour', '2026-11-20', '2026-11-21', '{model}', cache => false) r) as hit_same;
select analytics.get_trace_tree('t1') = analytics.get_trace_tree('t1', cache => false) as tree_miss_same,
       analytics.get_trace_tree('t1') = analytics.get_trace_tree('t1', cache => false) as tree_hit_same,
       analytics.get_trace_tree('no-such-trace') is null and analytics.get_trace_tree('no-such-trace') is null as missing_is_null;
select (select array_agg(r::text) from analytics.search_spans() r) = (select array_agg(r::text) from analytics.search_spans(cache => false) r)
       and (select array_agg(r::text) from analytics.search_spans() r) = (select array_agg(r::text) from analytics.search_spans(cache => false) r) as spans_same,
       (select array_agg(r::text) from analytics.search_traces() r) = (select array_agg(r::text) from analytics.search_traces(cache => false) r)
       and (select array_agg(r::text) from analytics.search_traces() r) = (select array_agg(r::text) from analytics.search_traces(cache => false) r) as traces_same,
       (select array_agg(r::text) from analytics.anomaly_summary('2026-11-01') r) = (select array_agg(r::text) from analytics.anomaly_summary('2026-11-01', cache => false) r)
       and (select array_agg(r::text) from analytics.anomaly_summary('2026-11-01') r) = (select array_agg(r::text) from analytics.anomaly_summary('2026-11-01', cache => false) r) as anomalies_same;
select metric, anomalies, open, critical, methods from analytics.anomaly_summary('2026-11-01');
select function_name, entries, live_entries, bytes > 0 as has_bytes, hits, misses, round(hit_rate::numeric, 3) as hit_rate
from analytics.cache_stats() order by function_name;

-- Alice's next event makes her cached result stale at once (not after 5 minutes)
insert into analytics.ab_experiment_events (unit_id, metric) values ('u1', 'signup');
select regress.result() as after_insert, regress.calls('experiment_results') as stats;
select regress.result() as cached_again, regress.calls('experiment_results') as stats;
-- so do an update and a delete through the table API
update analytics.ab_experiment_events set value = 1 where unit_id = 'u1';
select regress.calls('experiment_results') as before, regress.result() as after_update, regress.calls('experiment_results') as stats;
delete from analytics.ab_experiment_events where unit_id = 'u1';
select regress.result() as after_delete, regress.calls('experiment_results') as stats;
-- a span (ingest) makes her trace reads stale
select name from analytics.search_spans(trace_id => 't1');
select (analytics.record_span('t1', 'llm', 'generate', '2026-11-20 10:00:01+00', parent_span_id => 'root')).span_id;
select name from analytics.search_spans(trace_id => 't1');

-- inside one transaction: a call sees the transaction's own writes, and stores nothing while they are uncommitted
begin;
insert into analytics.ab_experiment_events (unit_id, metric) values ('u2', 'signup');
select regress.calls('experiment_results') as before, regress.result() as own_uncommitted_write,
       regress.calls('experiment_results') as after;
select entries as entries_unchanged from analytics.cache_stats() where function_name = 'experiment_results';
rollback;
select regress.result() as after_rollback;
-- a result computed (and stored) in a transaction that writes afterwards is stale once that transaction commits
-- (its own transaction id is not in its own snapshot's in-progress list, so the entry records who filled it)
select analytics.purge_cache(expired_only => false)->'entries_removed' as alice_clears_her_cache;
begin;
select regress.result() as computed_first, regress.calls('experiment_results') as stats;
select entries as stored from analytics.cache_stats() where function_name = 'experiment_results';
insert into analytics.ab_experiment_events (unit_id, metric) values ('u2', 'signup');
commit;
select regress.result() as after_commit, regress.result(use_cache => false) as computed;

-- Concurrency: a write in progress elsewhere is not visible, so the result computed meanwhile is right, and it must go
-- stale when that write commits, even if writes commit out of order (a version counter would miss that)
select regress.writer('begin') as w, regress.writer($$insert into analytics.ab_experiment_events (unit_id, metric) values ('u4', 'signup')$$) as w_insert;
insert into analytics.ab_experiment_events (unit_id, metric) values ('u6', 'signup');  -- a later write, committed first
select regress.result() as while_writing, regress.calls('experiment_results') as stats;
select regress.result() as cached_while_writing, regress.calls('experiment_results') as stats;
select regress.writer('commit') as w_commit;
select regress.result() as after_concurrent_commit, regress.result(use_cache => false) as computed;
select dblink_disconnect('writer');

-- READ ONLY (PostgREST GET, a read replica): served from the cache and counted (in the connection's tally), never
-- stored; the call answers
select regress.calls('experiment_results') as before;
begin read only;
select regress.result() as read_only_hit;
select regress.result(use_cache => false) is not null as read_only_computes;
select count(*) as read_only_miss from analytics.trace_metrics('1 day', '2026-11-19', '2026-11-21', '{status}');
commit;
select regress.calls('experiment_results') as after, regress.calls('trace_metrics') as trace_metrics,
       (select entries from analytics.cache_stats() where function_name = 'trace_metrics') as trace_metrics_entries;

-- TTL: trace reads live 1 minute, analytics 5 minutes (Alice starts from an empty cache: purge_cache clears hers)
select analytics.purge_cache(expired_only => false)->'entries_removed' as alice_clears_her_cache;
reset role;
set analytics.cache_clock = '2026-11-20 12:00:00+00';
set role authenticated;
select name from analytics.search_spans(trace_id => 't1');
select regress.calls('search_spans') as stats;
reset role;
set analytics.cache_clock = '2026-11-20 12:00:59+00';
set role authenticated;
select count(*) from analytics.search_spans(trace_id => 't1');
select regress.calls('search_spans') as at_59_s;
reset role;
set analytics.cache_clock = '2026-11-20 12:01:01+00';
set role authenticated;
select count(*) from analytics.search_spans(trace_id => 't1');
select regress.calls('search_spans') as at_61_s;
reset role;
set analytics.cache_clock = '2026-11-20 12:00:00+00';
set role authenticated;
select regress.result() as computed_at_noon, regress.calls('experiment_results') as stats;
reset role;
set analytics.cache_clock = '2026-11-20 12:04:59+00';
set role authenticated;
select regress.calls('experiment_results') as before, regress.result() is not null as at_4_59, regress.calls('experiment_results') as after;
reset role;
set analytics.cache_clock = '2026-11-20 12:05:01+00';
set role authenticated;
select regress.calls('experiment_results') as before, regress.result() is not null as at_5_01, regress.calls('experiment_results') as after;
reset role;
reset analytics.cache_clock;

-- Bob: the same call on his own experiment of the same name gets his own numbers, never Alice's cached ones
select set_config('request.jwt.claims', '{"sub":"b0b0b0b0-b0b0-4b0b-8b0b-b0b0b0b0b0b0","role":"authenticated"}', false) is not null as bob;
set role authenticated;
select key from analytics.create_experiment('cached', 'Bob''s', '[{"key":"control"},{"key":"treatment"}]');
select status from analytics.start_experiment('cached');
select count(*) as assigned from generate_series(1, 40) i, analytics.assign_variant('cached', 'b' || i) a where a.in_experiment;
select regress.result() as bob_first, regress.calls('experiment_results') as bob_stats;
select regress.result() as bob_second, regress.calls('experiment_results') as bob_stats;
-- he sees only his own statistics, cannot read or write the cache's tables, and cannot store a result of his choice:
-- _cache_put takes only the lookup _cache_get returned in the same transaction (a PostgREST request is one call)
select count(distinct user_id) as owners_bob_sees from analytics.cache_stats();
select regress.attempt('select count(*) from analytics.cache_entries') as read_entries,
       regress.attempt($$insert into analytics.cache_writes values ('a1a1a1a1-a1a1-4a1a-8a1a-a1a1a1a1a1a1', '1')$$) as write_log,
       regress.attempt($$select analytics._cache_current('a1a1a1a1-a1a1-4a1a-8a1a-a1a1a1a1a1a1', pg_current_snapshot(), '1')$$) as current_fn;
select regress.attempt($$select analytics._cache_put(('experiment_results', '["cached","signup",null,true,0.05,"holm",null,"events","metadata",null,false,"14 days",5000,null]',
    false, true, '[{"variant_key":"control","value":0.99,"units":1}]', pg_current_snapshot(), now())::analytics.cache_lookup)$$) as forged_put;
-- in psql, with a genuine lookup (a miss) in one statement, he can store a result of his choice: in his own cache only
select analytics.purge_cache(expired_only => false)->'entries_removed' as bob_purges_his_own;
with x as materialized (
    -- the arguments exactly as experiment_results' defaults give them (in this session's IntervalStyle)
    select analytics._cache_get('experiment_results', jsonb_build_array('cached'::text, 'signup'::text, null::text,
        true, 0.05::float8, 'none'::text, null::integer, 'events'::text, 'metadata'::text, null::text, false,
        interval '14 days', 5000::float8, null::boolean, false, null::float8, null::float8, null::text, null::float8,
        false, null::float8, false, null::text, 20, 'two-sided'::text)) as l)
select analytics._cache_put(row((l).fn, (l).args, (l).hit, (l).fill, '[{"variant_key":"control","value":0.99,"units":1}]',
                                (l).snap, (l).computed_at)::analytics.cache_lookup) as stored
from x;
select regress.result() as bob_fooled_himself;
select analytics.purge_cache(expired_only => false)->'entries_removed' as bob_purges_his_own;
reset role;
select set_config('request.jwt.claims', '{"sub":"a1a1a1a1-a1a1-4a1a-8a1a-a1a1a1a1a1a1","role":"authenticated"}', false) is not null as alice;
set role authenticated;
select regress.result() as alice_still_hits, regress.calls('experiment_results') as alice_stats;

-- not cached: calls that see more than one owner's rows (superuser, service_role) and calls without a JWT sub
reset role;
select count(*) as entries_before from analytics.cache_entries;
select count(*) from analytics.experiment_results('cached', 'signup', cache => true) where false;
set role service_role;
select count(*) from analytics.search_spans();
reset role;
select set_config('request.jwt.claims', '', false) is not null as anonymous_session;
set role authenticated;
select count(*) from analytics.search_spans();
reset role;
select count(*) as entries_after from analytics.cache_entries;
-- analytics.cache = off turns it off for a session, a role or a database
select set_config('request.jwt.claims', '{"sub":"a1a1a1a1-a1a1-4a1a-8a1a-a1a1a1a1a1a1","role":"authenticated"}', false) is not null as alice;
set analytics.cache = off;
set role authenticated;
select regress.calls('experiment_results') as before, regress.result() as cache_off, regress.calls('experiment_results') as after;
reset role;
reset analytics.cache;

-- a TRUNCATE (a DBA's) makes every owner's entries stale
select count(*) as stale_before from analytics.cache_entries e where not analytics._cache_current(e.user_id, e.snap, e.filler_xid);
truncate analytics.model_prices;
select count(*) as stale_after, (select count(*) from analytics.cache_entries) as entries
from analytics.cache_entries e where not analytics._cache_current(e.user_id, e.snap, e.filler_xid);

-- purge_cache: expired entries go, the hit/miss log is folded into the counters (the totals do not change), and
-- write records go once no entry can need them (10 minutes after they were seen committed)
select sum(hits) as hits, sum(misses) as misses, (select count(*) from analytics.cache_events) > 0 as log_has_rows
from analytics.cache_stats();
select (analytics.purge_cache()->>'entries_removed')::int as expired_removed;  -- the 1-minute entry of the test clock
select (select count(*) from analytics.cache_entries) as entries_left, (select count(*) from analytics.cache_events) as log_left,
       (select count(*) from analytics.cache_writes) > 0 as write_records_kept,
       (select count(*) from analytics.cache_writes where committed_by is null) as write_records_unmarked;
select sum(hits) as hits, sum(misses) as misses from analytics.cache_stats();
select set_config('analytics.cache_clock', (clock_timestamp() + interval '5 minutes')::text, false) is not null as plus_5_min;
select analytics.purge_cache() - 'bytes_removed' as at_plus_5_min;
select count(*) as entries_left from analytics.cache_entries;
select set_config('analytics.cache_clock', (clock_timestamp() + interval '7 minutes')::text, false) is not null as plus_7_min;
select (analytics.purge_cache()->>'write_records_removed')::int > 0 as write_records_removed;
select count(*) as write_records_left, (select count(*) from analytics.cache_entries) as entries_left from analytics.cache_writes;
reset analytics.cache_clock;
select regress.attempt('select analytics.purge_cache(null)') as null_argument;
set role authenticated;
select set_config('request.jwt.claims', '', false) is not null as anonymous_session;
select regress.attempt('select analytics.purge_cache()') as purge_without_sub,
       regress.attempt('select * from analytics.cache_stats()') as stats_without_sub;
select regress.attempt($$select analytics._cache_get('trace_spans', '[]')$$) as not_a_cached_function;
reset role;

-- every table that holds an owner's data records its writes (insert, update, delete, truncate); nothing else does
select c.relname, count(t.tgname) as cache_triggers
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join pg_trigger t on t.tgrelid = c.oid and t.tgfoid = 'analytics._cache_note_writes()'::regprocedure
where n.nspname = 'analytics' and c.relkind in ('r', 'p')
group by 1 order by 1;

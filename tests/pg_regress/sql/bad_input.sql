-- Bad input never gets an internal error: every public function of analytics_ext, called as PostgREST calls it (role
-- authenticated, a user's claims), with sane arguments (by argument name where one needs a meaningful value: a method,
-- a period, a series long enough for a detector, ...) and then each argument in turn replaced by NULL and by edge
-- values of its type (empty and 100,000-character text, JSON that serde cannot hold, extreme integers and floats,
-- infinite timestamps, odd arrays and intervals). Every error must carry one of the SQLSTATEs analytics_ext raises
-- (docs/security.md): a Rust panic (XX000), a PostgreSQL error our checks should have caught first (22008 for an
-- infinite time, 22003, ...) or a timeout is listed below and fails the test. Found, before the fix: jsonb numbers
-- beyond double precision and deep nesting panicked in pgrx's JsonB (XX000), NULL for a non-null Rust argument
-- (XX000), equal_weights(2147483647) (XX000, a 16 GB allocation), a relative Welch test over a control mean of 5e-324
-- (XX000, statrs on a NaN t), trace_metrics and dashboard_view over an infinite range (22008), budget_status in the
-- year 294276 (22008), detect_series_anomalies with a 1-microsecond bucket over 60 hours (a 212-billion-point grid:
-- the timeout), model_price at a year-294276 time (an i64 overflow: XX000 in the debug build CI runs), create_experiment
-- without a key (23502), maintain_span_partitions with a retain of 1,000,000 years or an as_of in the year 294276
-- (22008), retention with an as_of in the year 294276 (22008). The sweep runs as authenticated over the functions it
-- may execute (with a running experiment, a static cohort and a trace of the caller's, so that sane calls get past
-- the lookup of what they name), then as the DBA over those no API role may execute. Internal functions (named _...)
-- are swept too: PostgREST exposes every function an API role may execute, and the SECURITY INVOKER functions need
-- their helpers executable (found: _rate_window_retry with max_calls 0, a Rust panic (XX000); _experiment_event_cap
-- with a percentile of NaN, 22003; _experiment_event_nth with a negative offset, 2201X; _alert_metric over an infinite
-- range, 22008; _ingest_succeeded(NULL, ...), 23502; _ingest_failed with an error whose code is no SQLSTATE, 42704, or
-- without a message, 22004 from RAISE; _secure_span_partition(NULL), 42601). Everything runs in one
-- transaction, rolled back at the end.
-- the SQLSTATEs analytics_ext raises for bad input (docs/security.md)
create function pg_temp.ours(state text) returns boolean language sql immutable as $$
    select state in ('22023', '22004', '22P02', '22007', '54000', '23505', '23514', '42501', 'P0002', '55000')
$$;
create function pg_temp.sweep(dba_only boolean) returns text language plpgsql as $sweep$
declare
    r record;
    state text;
    message text;
    calls integer := 0;
    unexpected text[] := '{}';
    functions integer;
    -- the functions swept: every function of the schema this pass may call (not triggers)
    targets oid[] := array(
        select p.oid from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'analytics' and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
          and p.proname <> '_make_span_partition'
          and case when dba_only then not has_function_privilege('authenticated', p.oid, 'execute')
                   else has_function_privilege(p.oid, 'execute') end);
    called oid[] := '{}';
begin
    for r in
        with sane(t, v) as (values
            ('text', $$'prompt-test'$$), ('jsonb', $$'{}'::jsonb$$), ('integer', '5'), ('bigint', '5'),
            ('double precision', '0.5'), ('timestamp with time zone', $$'2026-01-01 10:00+00'::timestamptz$$),
            ('uuid', $$'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'::uuid$$), ('boolean', 'true'), ('text[]', $$array['a']$$),
            ('interval', $$'1 hour'::interval$$), ('date', $$'2026-01-01'::date$$),
            ('double precision[]', 'array[1.0, 2.0]::float8[]'), ('integer[]', 'array[1]'),
            ('timestamp with time zone[]', $$array['2026-01-01 10:00+00'::timestamptz]$$), ('anyelement', $$'x'$$)),
        specific(f, n, v) as (values
            ('adjust_p_values', 'method', $$'holm'$$), ('sample_size', 'method', $$'growthbook'$$),
            ('minimum_detectable_effect', 'method', $$'growthbook'$$), ('power_analysis', 'engine', $$'frequentist'$$),
            ('anomaly_summary', 'status', $$'open'$$), ('usage_projection', 'metric', $$'spans'$$),
            ('compare_groups', 'cuped', 'false'), ('retention', 'brackets', 'NULL'), ('remove_cohort_members', 'key', $$'static'$$),
            ('add_cohort_members', 'key', $$'static'$$), ('cohort_members', 'key', $$'static'$$),
            ('experiment_results', 'dimension', 'NULL'), ('experiment_report', 'dimension', 'NULL'),
            ('experiment_results', 'metric_source', $$'events'$$), ('experiment_results', 'unit_source', 'NULL')),
        named(n, t, v) as (values
            ('action', 'text', $$'ingest'$$), ('alternative', 'text', $$'two-sided'$$), ('method', 'text', $$'mad'$$),
            ('metric_type', 'text', $$'mean'$$), ('mode', 'text', $$'n_day'$$), ('period', 'text', $$'week'$$),
            ('time_zone', 'text', $$'UTC'$$), ('operation_type', 'text', $$'chat'$$), ('status', 'text', $$'ok'$$),
            ('correction', 'text', $$'holm'$$), ('level', 'text', $$'DEFAULT'$$), ('provider', 'text', $$'openai'$$),
            ('model', 'text', $$'gpt-4o-mini'$$), ('trace_id', 'text', $$'trace-1'$$), ('span_id', 'text', $$'span-1'$$),
            ('key', 'text', $$'power-users'$$), ('unit_id', 'text', $$'visitor-0-1'$$), ('winner', 'text', $$'control'$$),
            ('after', 'text', 'NULL'), ('parent_span_id', 'text', 'NULL'), ('primary_metric', 'text', $$'revenue'$$),
            ('end_user_id', 'text', $$'visitor-1'$$), ('metric', 'text', $$'latency_p95'$$),
            ('spans', 'jsonb', $$'[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-01-01T00:00:00Z"}]'$$),
            ('payload', 'jsonb', $$'{"resourceSpans":[]}'$$),
            ('variants', 'jsonb', $$'[{"key":"control","weight":0.5},{"key":"treatment","weight":0.5}]'$$),
            ('rule', 'jsonb', $$'{"performed": {}, "at_least": 1}'$$), ('members', 'jsonb', $$'["visitor-1"]'$$),
            ('properties', 'jsonb', $$'{"plan": "pro"}'$$), ('control', 'jsonb', $$'{"n": 10, "sum": 5, "sum_squares": 4}'$$),
            ('treatment', 'jsonb', $$'{"n": 10, "sum": 6, "sum_squares": 5}'$$), ('brackets', 'jsonb', $$'[[1, 1], [2, 3]]'$$),
            ('goal_metrics', 'jsonb', $$'["revenue"]'$$), ('guardrail_metrics', 'jsonb', $$'[]'$$),
            ('alpha', 'double precision', '0.05'), ('power', 'double precision', '0.8'), ('baseline', 'double precision', '0.1'),
            ('std_dev', 'double precision', '1.0'), ('effect', 'double precision', '0.05'), ('mde', 'double precision', '0.05'),
            ('coverage', 'double precision', '1.0'), ('level', 'double precision', '0.9'), ('sequential_tuning', 'double precision', '5000'),
            ('prior_mean', 'double precision', 'NULL'), ('prior_variance', 'double precision', 'NULL'),
            ('prior_std_dev', 'double precision', 'NULL'), ('cap_value', 'double precision', 'NULL'),
            ('namespace_start', 'double precision', '0'), ('namespace_end', 'double precision', '1'),
            ('mean1', 'double precision', '1.0'), ('mean2', 'double precision', '1.1'), ('var1', 'double precision', '1.0'),
            ('var2', 'double precision', '1.2'), ('min_duration_ms', 'double precision', 'NULL'),
            ('periods', 'integer', '4'), ('limit', 'integer', '10'), ('offset', 'integer', '0'), ('n', 'integer', '2'),
            ('version', 'integer', '2'), ('hash_version', 'integer', '2'), ('variants', 'integer', '2'), ('phase', 'integer', 'NULL'),
            ('premake', 'integer', '1'), ('history', 'integer', '7'), ('max_depth', 'integer', '10'), ('max_spans', 'integer', '100'),
            ('default_keep_days', 'integer', '30'),
            ('n1', 'bigint', '100'), ('n2', 'bigint', '100'), ('x1', 'bigint', '10'), ('x2', 'bigint', '12'), ('units', 'bigint', '1000'),
            ('units_per_variant', 'bigint', '1000'),
            ('values', 'double precision[]', 'array(select (i % 7)::float8 from generate_series(1, 60) i)'),
            ('observations', 'double precision[]', 'array(select (i % 7)::float8 from generate_series(1, 60) i)'),
            ('timestamps', 'timestamp with time zone[]', $$array(select timestamptz '2026-01-01' + i * interval '1 hour' from generate_series(1, 60) i)$$),
            ('p_values', 'double precision[]', 'array[0.01, 0.04]::float8[]'), ('weights', 'double precision[]', 'array[0.5, 0.5]::float8[]'),
            ('observed', 'integer[]', 'array[100, 103]'), ('ranges', 'double precision[]', $$'{{0,0.5},{0.5,1}}'::float8[]$$),
            ('horizons', 'integer[]', 'array[7]'), ('group_by', 'text[]', $$array['model']$$), ('cohorts', 'text[]', 'NULL'),
            ('bucket', 'interval', $$'1 hour'::interval$$), ('lookback', 'interval', $$'7 days'::interval$$),
            ('retain', 'interval', $$'90 days'::interval$$), ('cuped_lookback', 'interval', $$'14 days'::interval$$),
            ('to_time', 'timestamp with time zone', $$'2026-01-02 00:00+00'::timestamptz$$),
            ('as_of', 'timestamp with time zone', $$'2026-01-02 00:00+00'::timestamptz$$),
            ('at', 'timestamp with time zone', $$'2026-01-02 00:00+00'::timestamptz$$),
            ('end_time', 'timestamp with time zone', $$'2026-01-01 10:00:01+00'::timestamptz$$),
            ('completion_start_time', 'timestamp with time zone', 'NULL'), ('as_of', 'date', $$'2026-01-02'::date$$)),
        edge(t, v) as (values
            ('text', $$''$$), ('text', $$repeat('x', 100000)$$), ('text', $$'%s\'$$), ('text', $$'{"a":'$$),
            ('text', $$'ü😀'$$), ('text', $$'-1'$$),
            ('jsonb', $$'[]'::jsonb$$), ('jsonb', $$'null'::jsonb$$), ('jsonb', $$'1e400'::jsonb$$),
            ('jsonb', $$'"s"'::jsonb$$), ('jsonb', $$'{"a":{"b":[1,{"c":null}]}}'::jsonb$$),
            ('jsonb', $$'[{"trace_id":1}]'::jsonb$$), ('jsonb', $$'{"x":1e400}'::jsonb$$), ('jsonb', $$'{"":""}'::jsonb$$),
            ('jsonb', $$(repeat('[', 200) || repeat(']', 200))::jsonb$$),
            ('integer', '0'), ('integer', '-1'), ('integer', '2147483647'), ('integer', '(-2147483648)'),
            ('bigint', '0'), ('bigint', '(-1)'), ('bigint', '9223372036854775807'), ('bigint', '(-9223372036854775808)'),
            ('double precision', $$'NaN'::float8$$), ('double precision', $$'Infinity'::float8$$),
            ('double precision', $$'-Infinity'::float8$$), ('double precision', '(-1.0)'), ('double precision', '0'),
            ('double precision', '1e308'), ('double precision', '5e-324'),
            ('timestamp with time zone', $$'infinity'::timestamptz$$), ('timestamp with time zone', $$'-infinity'::timestamptz$$),
            ('timestamp with time zone', $$'4713-01-01 00:00+00 BC'::timestamptz$$),
            ('timestamp with time zone', $$'294276-12-31 23:00+00'::timestamptz$$),
            ('uuid', $$'00000000-0000-0000-0000-000000000000'::uuid$$), ('uuid', $$'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'::uuid$$),
            ('text[]', $$'{}'::text[]$$), ('text[]', $$array[null]::text[]$$), ('text[]', $$array['']$$),
            ('text[]', $$array['a', 'a']$$), ('text[]', $$'{{a,b},{c,d}}'::text[]$$),
            ('interval', $$'0'::interval$$), ('interval', $$'-1 hour'::interval$$), ('interval', $$'1000000 years'::interval$$),
            ('interval', $$'1 month'::interval$$), ('interval', $$'1 microsecond'::interval$$),
            ('double precision[]', $$'{}'::float8[]$$), ('double precision[]', $$array['NaN', 'Infinity']::float8[]$$),
            ('double precision[]', $$array[null]::float8[]$$), ('boolean', 'false'),
            ('timestamp with time zone[]', $$'{}'::timestamptz[]$$), ('timestamp with time zone[]', $$array[null]::timestamptz[]$$),
            ('timestamp with time zone[]', $$array['infinity', '2026-01-01 10:00+00']::timestamptz[]$$),
            ('timestamp with time zone[]', $$array['2026-01-01 10:00+00', '2026-01-01 10:00+00']::timestamptz[]$$),
            ('integer[]', $$'{}'::integer[]$$), ('integer[]', 'array[-1, 2147483647]'), ('integer[]', $$array[null]::integer[]$$)),
        f as (
            select p.oid, p.proname, p.pronargs,
                   coalesce((select array_agg(format_type(t, null) order by o) from unnest(p.proargtypes) with ordinality a(t, o)), '{}') as types,
                   coalesce(p.proargnames[1:p.pronargs], '{}') as names
            from pg_proc p where p.oid = any (targets)),
        calls as (
            select f.oid, f.proname, f.types, f.names, null::integer as pos, null::text as val from f
            union all
            select f.oid, f.proname, f.types, f.names, i, 'NULL' from f, generate_series(1, f.pronargs) i
            union all
            select f.oid, f.proname, f.types, f.names, i, e.v from f cross join generate_series(1, f.pronargs) i join edge e on e.t = f.types[i])
        select c.oid, c.proname, c.pos, c.val,
               format('select count(*) from analytics.%I(%s)', c.proname,
                      coalesce((select string_agg(case when i = c.pos then c.val else coalesce((select v from specific where specific.f = c.proname and specific.n = c.names[i]),
                                                                                    (select v from named where named.n = c.names[i] and named.t = tt.t),
                                                                                    (select v from sane where sane.t = tt.t), 'NULL') end
                                                  || case when tt.t = 'anyelement' then '::text' else '::' || tt.t end, ', ' order by i)
                                from unnest(c.types) with ordinality tt(t, i)), '')) as stmt
        from calls c order by c.proname, c.pos nulls first, c.val
    loop
        calls := calls + 1;
        called := called || r.oid;
        begin
            execute r.stmt;
        exception when others then
            get stacked diagnostics state = returned_sqlstate, message = message_text;
            if not pg_temp.ours(state) then
                unexpected := unexpected || format('%s(argument %s = %s): %s %s', r.proname, coalesce(r.pos::text, '-'),
                                                   left(coalesce(r.val, 'sane'), 40), state, left(message, 120));
            end if;
        end;
    end loop;
    select count(*) into functions from unnest(targets) t where not t = any (called);
    return format('calls: %s; functions not called: %s; unexpected errors: %s',
                  case when calls > 2000 then 'over 2000' when calls > 30 then 'over 30' else calls::text end, functions,
                  coalesce(nullif(array_to_string(unexpected, E'\n'), ''), 'none'));
end
$sweep$;

begin;
set local statement_timeout = '120s';
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is null;
-- what the sane arguments name: a running experiment, a static cohort, a trace of the caller's
select (analytics.create_experiment('prompt-test', 'Prompt test', '[{"key": "control"}, {"key": "treatment"}]')).key;
select (analytics.start_experiment('prompt-test')).status;
select (analytics.create_cohort('static', 'Static')).key;
select analytics.ingest_spans('[{"trace_id": "trace-1", "span_id": "span-1", "name": "n", "start_time": "2026-01-01T10:00:00Z",
                                 "end_time": "2026-01-01T10:00:01Z", "model": "gpt-4o-mini", "end_user_id": "visitor-1"}]')->>'stored' as stored;
-- as PostgREST's authenticated role: the functions it may execute
select pg_temp.sweep(false);
-- as the DBA: the functions no API role may execute (partition maintenance, retention, rebuilds)
reset role;
select pg_temp.sweep(true);
set local role authenticated;


-- Inside the jsonb arguments: a field of a cohort rule, a detector's params, an experiment's variants, a group's
-- moments, a retention event, an end user's properties, assignment attributes set to each edge value (found: a
-- variant weight of 1e400 or 1e-400, 22003 from a cast to double precision).
do $f$
declare
    tmpl text; e text; state text; msg text; bad text[] := '{}'; n int := 0; stmt text;
begin
    foreach tmpl in array array[
        $$select * from analytics.preview_cohort('{"performed": {"operation_type": "chat"}, "at_least": %s, "within": "7 days"}')$$,
        $$select * from analytics.preview_cohort('{"performed": {"name": %s}, "at_least": 1}')$$,
        $$select * from analytics.preview_cohort('{"performed": {}, "at_least": 1, "within": %s}')$$,
        $$select * from analytics.preview_cohort('{"property": "plan", "eq": %s}')$$,
        $$select * from analytics.preview_cohort('{"property": "plan", "gt": %s}')$$,
        $$select * from analytics.preview_cohort('{"property": %s, "exists": true}')$$,
        $$select * from analytics.preview_cohort('{"first_seen": {"after": %s}}')$$,
        $$select * from analytics.preview_cohort('{"cost": {"gt": %s}, "within": "30 days"}')$$,
        $$select * from analytics.preview_cohort('{"and": %s}')$$,
        $$select * from analytics.preview_cohort('{"not": %s}')$$,
        $$select * from analytics.preview_cohort('{"in_cohort": %s}')$$,
        $$select * from analytics.preview_cohort('{"assigned": {"experiment": %s, "variant": "a"}}')$$,
        $$select * from analytics.detect_anomalies(array(select (i % 7)::float8 from generate_series(1, 60) i), 'mad', '{"threshold": %s}')$$,
        $$select * from analytics.detect_anomalies(array(select (i % 7)::float8 from generate_series(1, 60) i), 'seasonal', '{"period": %s}')$$,
        $$select * from analytics.detect_anomalies(array(select (i % 7)::float8 from generate_series(1, 60) i), 'ewma', '{"alpha": %s}')$$,
        $$select * from analytics.detect_anomalies(array(select (i % 7)::float8 from generate_series(1, 60) i), 'surprise', '{"window": %s}')$$,
        $$select * from analytics.detect_anomalies(array(select (i % 7)::float8 from generate_series(1, 60) i), 'likelihood', '{"base": %s}')$$,
        $$select * from analytics.detect_anomalies(array(select (i % 7)::float8 from generate_series(1, 60) i), 'cusum', '{"cooldown": %s}')$$,
        $$select analytics.create_experiment('fz', 'fz', '[{"key": "a", "weight": %s}, {"key": "b", "weight": 0.5}]')$$,
        $$select analytics.create_experiment('fz', 'fz', '[{"key": %s}, {"key": "b"}]')$$,
        $$select analytics.create_experiment('fz', 'fz', '%s')$$,
        $$select analytics.compare_groups('{"n": %s, "sum": 5, "sum_squares": 4}', '{"n": 10, "sum": 6, "sum_squares": 5}')$$,
        $$select analytics.compare_groups('{"n": 10, "sum": %s, "sum_squares": 4}', '{"n": 10, "sum": 6, "sum_squares": 5}', 'ratio')$$,
        $$select analytics.compare_groups('{"n": 10, "sum": 5, "sum_squares": %s}', '{"n": 10, "sum": 6, "sum_squares": 5}', cuped => true)$$,
        $$select * from analytics.retention('2026-01-01', '2026-02-01', start_event => '{"operation_type": %s}')$$,
        $$select * from analytics.retention('2026-01-01', '2026-02-01', mode => 'brackets', brackets => '[[1, %s]]')$$,
        $$select * from analytics.retention('2026-01-01', '2026-02-01', return_event => '{"event": %s}')$$,
        $$select analytics.identify_end_user('u1', '{"plan": %s}')$$,
        $$select analytics.add_cohort_members('static-fz', '[%s]')$$,
        $$select analytics.experiment_report('prompt-test', goal_metrics => '[{"metric": %s}]')$$,
        $$select analytics.assign_variant('prompt-test', 'u1', attributes => '{"country": %s}')$$
    ] loop
        foreach e in array array['null','true','0','-1','1e400','-1e400','1.5','9223372036854775808','"NaN"','"Infinity"',
            '""','"x"','[]','{}','[1,[2]]','{"a":1e400}', '"' || repeat('x', 100000) || '"', '"2026-13-45"',
            '"294276-12-31T23:00:00Z"', '"-1 days"', '"1000000 years"', '"0 seconds"', '12345678901234567890123456789',
            '[null]', '"ü😀"', '"%s''"', '1e-400', '"99999999999 days"'] loop
            n := n + 1;
            stmt := replace(tmpl, '%s', replace(e, '''', ''''''));
            begin
                execute stmt;
            exception when others then
                get stacked diagnostics state = returned_sqlstate, msg = message_text;
                if not pg_temp.ours(state) then
                    bad := bad || format('%s  <= %s: %s %s', left(stmt, 90), left(e, 30), state, left(msg, 150));
                end if;
            end;
        end loop;
    end loop;
    raise notice 'more than 800 cases: %; unexpected errors: %', n > 800, coalesce(nullif(array_to_string(bad, E'\n'), ''), 'none');
end
$f$;

-- the errors the sweep found, as a caller now sees them
select regress.attempt($$select analytics.preview_cohort('{"performed": {}, "at_least": 1e400}')$$);
select regress.attempt($$select analytics.preview_cohort((repeat('{"not": ', 200) || '{}' || repeat('}', 200))::jsonb)$$);
select regress.attempt($$select * from analytics.detect_anomalies(array[1.0, 2.0, 3.0], 'zscore', '{"threshold": 1e400}')$$);
select regress.attempt($$select analytics.compare_groups('{"n": 1e400, "sum": 1, "sum_squares": 1}', '{"n": 10, "sum": 1, "sum_squares": 1}')$$);
select regress.attempt($$select analytics.get_trace_tree('t', max_depth => null)$$);
select regress.attempt($$select analytics.trace_waterfall_svg('t', max_spans => null)$$);
select regress.attempt($$select analytics.bucket_ranges(null)$$);
select regress.attempt($$select analytics.equal_weights(2147483647)$$);
select regress.attempt($$select analytics.welch_t_test(5, 5e-324, 0.5, 5, 0.5, 0.5, true)$$);
select regress.attempt($$select * from analytics.trace_metrics('1 hour', '-infinity', '2026-01-01')$$);
select regress.attempt($$select analytics.dashboard_view('2026-01-01', 'infinity')$$);
select regress.attempt($$select analytics.ingest_spans('[{"trace_id": "t", "span_id": "s", "name": "n", "start_time": "2026-01-01T00:00:00Z", "input_tokens": 1e400}]')$$);
select regress.attempt($$select count(*) from analytics.detect_series_anomalies(array(select timestamptz '2026-01-01' + i * interval '1 hour' from generate_series(1, 60) i), array(select (i % 7)::float8 from generate_series(1, 60) i), 'mad', '{}', '1 microsecond')$$);
select regress.attempt($$select count(*) from analytics.detect_series_anomalies(array['2026-01-01', 'infinity']::timestamptz[], array[1.0, 2.0])$$);
select regress.attempt($$select count(*) from analytics.model_price('gpt-4o-mini', at => '294276-12-31 23:00+00')$$);
select regress.attempt($$select analytics.create_experiment(null, 'Prompt test', '[{"key": "a"}, {"key": "b"}]')$$);
select regress.attempt($$select count(*) from analytics.run_anomaly_detection('latency_p95', lookback => '1000000 years')$$);
select regress.attempt($$select analytics.create_experiment('w', 'w', '[{"key": "a", "weight": 1e400}, {"key": "b", "weight": 0}]')$$);
select (analytics.create_experiment('w', 'w', '[{"key": "a", "weight": 1e-400}, {"key": "b", "weight": 1}]')).key;
select key, weight from analytics.ab_experiment_variants where experiment_id = (select id from analytics.ab_experiments where key = 'w') order by position;
-- internal functions an API role may execute (PostgREST exposes them as /rpc/_...: the callers' helpers)
select regress.attempt($$select analytics._rate_window_retry(array['2026-01-01 10:00+00']::timestamptz[], '2026-01-01 10:00:01+00', '1 minute', 0)$$);
select regress.attempt($$select analytics._experiment_event_cap((select id from analytics.ab_experiments where key = 'prompt-test'), 1, 'revenue', 'NaN', false)$$);
select regress.attempt($$select analytics._experiment_event_nth((select id from analytics.ab_experiments where key = 'prompt-test'), 1, 'revenue', 0, -1, 0)$$);
select analytics._experiment_event_nth((select id from analytics.ab_experiments where key = 'prompt-test'), 1, 'revenue', 5, 9223372036854775807, 9223372036854775807);
select regress.attempt($$select analytics._alert_metric('error_rate', null, '2026-01-01', 'infinity')$$);
select regress.attempt($$select analytics._ingest_succeeded(null, '{"stored": 1}', '[]')$$);
select regress.attempt($$select analytics._ingest_failed('ingest_spans', '{"code": "zz", "message": "m"}', '[]')$$);
select regress.attempt($$select analytics._ingest_failed('ingest_spans', '{"code": "22023"}', '[]')$$);
-- and the partition maker, which only maintain_span_partitions calls (no API role may): a sane call outside it would
-- overlap the partitions in place, so the sweep leaves it to these
reset role;
select regress.attempt($$select analytics._make_span_partition('', '2030-01-01', '2030-02-01', null)$$);
select regress.attempt($$select analytics._make_span_partition('llm_traces_p20300101', '2030-01-01', 'infinity', null)$$);
select regress.attempt($$select analytics._make_span_partition('llm_traces_p20300101', '2030-02-01', '2030-01-01', null)$$);
select regress.attempt($$select analytics._secure_span_partition(null)$$);
rollback;

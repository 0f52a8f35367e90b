-- Row-level-security overhead on analytics.search_spans: one user among 1,000 users and 300,000 spans, three query
-- shapes, run as role authenticated with the user's JWT claims, with RLS enabled vs disabled (same role, same
-- function, same plan apart from the policy). Interleaved rounds; medians of 200 calls per shape and round. The
-- computation analytics._search_spans is called, not the cached analytics.search_spans (whose hits read no spans).
\set ON_ERROR_STOP 1
\pset footer off
\i bench/common.sql
insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, conversation_id, name, operation_type,
                                  status, start_time, end_time, model, total_tokens)
select ('00000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, 'trace-' || (i / 10), 's' || i,
       case when i % 10 = 0 then null else 's' || (i - i % 10) end, 'conv-' || (i / 30), 'step', 'chat',
       case when i % 50 = 0 then 'error' else 'ok' end,
       timestamptz '2026-11-01 00:00+00' + make_interval(mins => i * 7 + u),
       timestamptz '2026-11-01 00:00+00' + make_interval(mins => i * 7 + u, secs => 2), 'gpt-4o', 300
from generate_series(1, 1000) u, generate_series(0, 299) i;
vacuum analyze analytics.llm_traces;
select count(*) as spans, count(distinct user_id) as users from analytics.llm_traces;

create temp table rls_runs (round int, rls text, shape text, ms double precision);
grant all on rls_runs to authenticated;
do $$
declare
    shapes text[] := array[
        $q$select * from analytics._search_spans()$q$,
        $q$select * from analytics._search_spans(status => 'error')$q$,
        $q$select * from analytics._search_spans(conversation_id => 'conv-3')$q$];
    s text;
begin
    for round in 1..4 loop
        for mode in 1..2 loop
            if mode = 1 then
                alter table analytics.llm_traces enable row level security;
            else
                alter table analytics.llm_traces disable row level security;
            end if;
            set local role authenticated;
            perform set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-000000000500","role":"authenticated"}', true);
            foreach s in array shapes loop
                insert into rls_runs values (round, case mode when 1 then 'on' else 'off' end, s, pg_temp.bench(s, 200));
            end loop;
            reset role;
        end loop;
    end loop;
    alter table analytics.llm_traces enable row level security;
end
$$;
select shape, round(percentile_cont(0.5) within group (order by ms) filter (where rls = 'on')::numeric, 3) as rls_on_ms,
       round(percentile_cont(0.5) within group (order by ms) filter (where rls = 'off')::numeric, 3) as rls_off_ms
from rls_runs group by shape order by shape;
select round((sum(ms) filter (where rls = 'on') / sum(ms) filter (where rls = 'off') - 1)::numeric * 100, 1) as rls_overhead_percent
from rls_runs;

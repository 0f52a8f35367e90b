-- Time partitions of analytics.llm_traces: made ahead and from the default partition's rows by
-- analytics.maintain_span_partitions (the DBA's pg_cron job), which replaces the default partition by before/after/gap
-- partitions covering the rest of the time line; each secured like the parent, one row per span across partitions,
-- keyset pages across them, newest-first pages reading the newest partitions only, pruning of time-bounded searches,
-- retention by dropping a partition.
-- Sessions act like PostgREST where a user acts.
\pset null '·'
set timezone = 'UTC';
\set A '''aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'''
\set B '''bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'''
delete from analytics.llm_traces;
delete from analytics.retention_policies;

-- a fresh install has the default partition only
select partition, from_time, to_time from analytics.span_partitions();

-- bad arguments name the argument (22023); API roles may not call it (42501)
select regress.attempt($$select * from analytics.maintain_span_partitions(period => 'year')$$) as period,
       regress.attempt($$select * from analytics.maintain_span_partitions(premake => -1)$$) as premake,
       regress.attempt($$select * from analytics.maintain_span_partitions(retain => '-1 day')$$) as retain,
       regress.attempt($$select * from analytics.maintain_span_partitions(as_of => 'infinity')$$) as as_of;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select regress.attempt($$select * from analytics.maintain_span_partitions()$$, null, false) as maintain,
       regress.attempt($$select * from analytics.span_partitions()$$, null, false) as list;
commit;

-- spans before any maintenance land in the default partition
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.ingest_spans(jsonb_build_array(
    jsonb_build_object('trace_id', 'old', 'span_id', 'root', 'name', 'backfill', 'start_time', '2026-06-15T08:00:00Z'),
    jsonb_build_object('trace_id', 'old', 'span_id', 'child', 'parent_span_id', 'root', 'name', 'step',
                       'start_time', '2026-06-15T08:00:01Z')));
commit;
select tableoid::regclass as partition, count(*) from analytics.llm_traces group by 1;

-- the DBA's maintenance: this month and 2 ahead, and June (moved out of the default partition); the rest of the
-- time line in before/after/gap partitions, so that no default partition is left
select * from analytics.maintain_span_partitions(period => 'month', premake => 2, as_of => '2026-11-20');
select partition, from_time, to_time from analytics.span_partitions();
select tableoid::regclass as partition, count(*) from analytics.llm_traces group by 1;
-- the default partition stays, detached, empty and a member of the extension (a restore recreates it attached)
select c.relispartition as attached, (select count(*) from analytics_partitions.llm_traces_default) as spans,
       exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e') as member
from pg_class c where c.oid = 'analytics_partitions.llm_traces_default'::regclass;
-- running it again changes nothing
select * from analytics.maintain_span_partitions(period => 'month', premake => 2, as_of => '2026-11-20');

-- every partition: row-level security enabled and forced, the parent's policies, no privilege for API roles
select c.oid::regclass as partition, c.relrowsecurity as rls, c.relforcerowsecurity as forced,
       (select array_agg(p.polname || ':' || p.polcmd::text || ':' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ':'
                         || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') order by p.polname)
        from pg_policy p where p.polrelid = c.oid)
     = (select array_agg(p.polname || ':' || p.polcmd::text || ':' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ':'
                         || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') order by p.polname)
        from pg_policy p where p.polrelid = 'analytics.llm_traces'::regclass) as parent_policies,
       not has_table_privilege('anon', c.oid, 'select, insert, update, delete')
       and not has_table_privilege('authenticated', c.oid, 'select, insert, update, delete')
       and not has_table_privilege('service_role', c.oid, 'select, insert, update, delete') as no_api_privilege
from pg_inherits i join pg_class c on c.oid = i.inhrelid
where i.inhparent = 'analytics.llm_traces'::regclass
order by 1;
select has_schema_privilege('anon', 'analytics_partitions', 'usage') as anon_usage,
       has_schema_privilege('authenticated', 'analytics_partitions', 'usage') as authenticated_usage,
       has_schema_privilege('service_role', 'analytics_partitions', 'usage') as service_role_usage;

-- Bob tries to read Alice's spans through each partition, as PostgREST would: refused (42501)
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select p.partition, regress.attempt(format('select * from %s', p.partition), null, false) as bob_reads
from (select c.oid::regclass::text as partition from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'analytics.llm_traces'::regclass) p
order by 1;
commit;
-- even after a DBA's stray grants, the partitions' own policies show Bob none of Alice's rows
grant usage on schema analytics_partitions to authenticated;
do $$ declare p text; begin
    for p in select c.oid::regclass::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
             where i.inhparent = 'analytics.llm_traces'::regclass loop
        execute format('grant select, update, delete on %s to authenticated', p);
    end loop;
end $$;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select p.partition, regress.attempt(format('select * from %s', p.partition)) as bob_reads,
       regress.attempt(format('delete from %s', p.partition)) as bob_deletes
from (select c.oid::regclass::text as partition from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'analytics.llm_traces'::regclass) p
order by 1;
commit;
do $$ declare p text; begin
    for p in select c.oid::regclass::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
             where i.inhparent = 'analytics.llm_traces'::regclass loop
        execute format('revoke all on %s from authenticated', p);
    end loop;
end $$;
revoke usage on schema analytics_partitions from authenticated;
select count(*) as alice_spans_kept from analytics.llm_traces where user_id = :A;

-- one row per span across partitions
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.ingest_spans(jsonb_build_array(
    jsonb_build_object('trace_id', 'moving', 'span_id', 'root', 'name', 'agent', 'start_time', '2026-11-30T23:59:59Z',
                       'metadata', jsonb_build_object('first', 1), 'model', 'gpt-4o')));
-- re-sent with a start_time in the next month (a clock corrected): the span moves, its fields merge
select analytics.ingest_spans(jsonb_build_array(
    jsonb_build_object('trace_id', 'moving', 'span_id', 'root', 'name', 'agent', 'start_time', '2026-12-01T00:00:01Z',
                       'end_time', '2026-12-01T00:00:03Z', 'metadata', jsonb_build_object('second', 2))));
select tableoid::regclass as partition, start_time, end_time, model, metadata from analytics.llm_traces where trace_id = 'moving';
-- OpenTelemetry: the same span re-sent with another start time moves too
select analytics.ingest_otlp(jsonb_build_object('resourceSpans', jsonb_build_array(jsonb_build_object('scopeSpans',
    jsonb_build_array(jsonb_build_object('spans', jsonb_build_array(jsonb_build_object(
        'traceId', '5b8efff798038103d269b633813fc60c', 'spanId', 'eee19b7ec3c1b174', 'name', 'chat',
        'startTimeUnixNano', '1764547200000000000', 'endTimeUnixNano', '1764547201000000000')))))))) ->> 'stored' as otlp_first;
select analytics.ingest_otlp(jsonb_build_object('resourceSpans', jsonb_build_array(jsonb_build_object('scopeSpans',
    jsonb_build_array(jsonb_build_object('spans', jsonb_build_array(jsonb_build_object(
        'traceId', '5b8efff798038103d269b633813fc60c', 'spanId', 'eee19b7ec3c1b174', 'name', 'chat',
        'startTimeUnixNano', '1764460800000000000', 'endTimeUnixNano', '1764460801000000000')))))))) ->> 'stored' as otlp_again;
select tableoid::regclass as partition, start_time from analytics.llm_traces where span_id = 'eee19b7ec3c1b174';
-- a plain INSERT of a second row of a stored span is refused, whatever its start_time (23505)
select regress.attempt($$insert into analytics.llm_traces (trace_id, span_id, name, start_time)
                         values ('moving', 'root', 'copy', '2026-11-02')$$) as insert_other_start,
       regress.attempt($$insert into analytics.llm_traces (trace_id, span_id, name, start_time)
                         values ('moving', 'root', 'copy', '2026-12-01T00:00:01Z')$$, null, false) as insert_same_start;
-- an UPDATE of start_time moves the row
update analytics.llm_traces set start_time = '2026-11-29', end_time = null where trace_id = 'moving';
select tableoid::regclass as partition, start_time from analytics.llm_traces where trace_id = 'moving';
commit;
-- Bob's span with the same ids is his own row
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select analytics.ingest_spans('[{"trace_id": "moving", "span_id": "root", "name": "his", "start_time": "2026-12-10T00:00:00Z"}]') ->> 'stored' as bob_stored;
select count(*) as bob_sees from analytics.llm_traces;
commit;
select user_id = :A as alice, count(*) from analytics.llm_traces where trace_id = 'moving' group by 1 order by 1;

-- keyset pages across partitions: 30 spans from October to January (children before parents, any order), pages of 7
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.ingest_spans(jsonb_agg(jsonb_build_object('trace_id', 'pages', 'span_id', 's' || i,
           'parent_span_id', case when i > 0 then 's0' end, 'name', 'step',
           'start_time', timestamptz '2026-10-20' + make_interval(days => i * 3)) order by -i)) ->> 'stored' as stored
from generate_series(0, 29) i;
create temp table pages (page int, n int, first_span text, last_span text);
do $$
declare
    after text;
    page int := 0;
    got int;
    first_span text;
    last_span text;
    last_cursor text;
begin
    loop
        page := page + 1;
        select count(*), (array_agg(s.span_id order by s.start_time desc, s.id desc))[1],
               (array_agg(s.span_id order by s.start_time desc, s.id desc))[count(*)],
               (array_agg(to_char(s.start_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ',' || s.id
                          order by s.start_time desc, s.id desc))[count(*)]
          into got, first_span, last_span, last_cursor
        from analytics.search_spans(trace_id => 'pages', after => after, "limit" => 7, cache => false) s;
        exit when got = 0;
        insert into pages values (page, got, first_span, last_span);
        after := last_cursor;
    end loop;
end $$;
select * from pages order by page;
select sum(n) as spans_paged, count(distinct first_span) as pages from pages;

-- without a default partition the partitions are ordered by time: Alice's newest page without a time bound reads the
-- after partition, January and December (where its 7 spans are) and no other partition (an ordered Append; on
-- partitions this small the planner would rather sort their few rows, so sorting is off for this check). The
-- partitions whose indexes were scanned in the transaction (executor scans; planning reads no index this way; the
-- counts are those pending since the last flush of the statistics, which is forced when the previous statement ends):
commit;
create temp view partitions_scanned as
select c.oid::regclass as partition,
       coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)), 0) > 0 as indexes_scanned
from pg_inherits h join pg_class c on c.oid = h.inhrelid left join pg_index i on i.indrelid = c.oid
where h.inhparent = 'analytics.llm_traces'::regclass
group by 1;
select pg_stat_force_next_flush();
begin;
set local enable_sort = off;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select count(*) as newest_page, min(start_time), max(start_time) from analytics.search_spans("limit" => 7, cache => false);
reset role;
select * from partitions_scanned order by 1;

-- a time-bounded search reads only the partitions of its range (pruning): November's spans of the trace
commit;
select pg_stat_force_next_flush();
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select count(*) as november_spans
from analytics.search_spans(trace_id => 'pages', from_time => '2026-11-01', to_time => '2026-11-30', "limit" => 100, cache => false);
-- (search_spans runs its kept plan as the generic plan, which prunes when it starts, and leaves the setting as it was)
select current_setting('plan_cache_mode') as plan_cache_mode_after_search;
reset role;
select * from partitions_scanned order by 1;
commit;
explain (costs off)
select * from analytics.llm_traces
where user_id = :A and start_time >= '2026-11-01' and start_time < '2026-11-30' order by start_time desc, id desc limit 7;

-- retention: period partitions that end more than 4 months before as_of are dropped, older spans of the before
-- partition deleted, and the before partition extended to the first period kept; A's policy of 30 days applies on
-- top. A span far ahead, in the after partition, gets a period partition of its own (and a gap partition before it)
insert into analytics.retention_policies (user_id, keep_days) values (:A, 30);
insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time)
values (:B, 'ancient', 's', 'step', '2001-01-01'), (:B, 'ahead', 's', 'step', '2031-05-05');
select trace_id, tableoid::regclass as partition from analytics.llm_traces where trace_id in ('ancient', 'ahead') order by 1;
select action, partition, from_time, to_time, spans
from analytics.maintain_span_partitions(premake => 2, retain => '4 months', as_of => '2026-11-20')
order by action, partition;
select partition, from_time, to_time from analytics.span_partitions();
select user_id = :A as alice, min(start_time), count(*) from analytics.llm_traces group by 1 order by 1;

-- periods of other sizes fill the gaps between existing partitions: days after the last month, then weeks after them
select action, partition, from_time, to_time
from analytics.maintain_span_partitions(period => 'day', premake => 2, as_of => '2027-01-31')
where action = 'created';
select action, partition, from_time, to_time
from analytics.maintain_span_partitions(period => 'week', premake => 1, as_of => '2027-02-01')
where action = 'created';

select trace_id, tableoid::regclass as partition from analytics.llm_traces where trace_id = 'ahead';

-- a search over many partitions (months, days, weeks, before and after: more than 6) reads the newest 6 of its range
-- first and the older ones only when they do not fill the page; its pages are those of the plain query, keyset pages
-- (walked to the end), the newest page, an offset page and a bounded range alike
insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time)
select :A, 'many', 's' || i, 'step', timestamptz '2026-12-20' + make_interval(hours => i * 19) from generate_series(0, 79) i;
select count(*) as partitions_holding_many from (select distinct tableoid from analytics.llm_traces where trace_id = 'many') p;
create function pg_temp.walk(lim int, f timestamptz, t timestamptz) returns table (same_as_plain boolean, pages int, spans int)
language plpgsql as $$
declare
    after text;
    got text[] := '{}';
    page text[];
    cursors text[];
    n int := 0;
begin
    loop
        select array_agg(s.span_id order by s.start_time desc, s.id desc),
               array_agg(to_char(s.start_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ',' || s.id order by s.start_time desc, s.id desc)
          into page, cursors
        from analytics.search_spans(trace_id => 'many', from_time => f, to_time => t, after => after, "limit" => lim, cache => false) s;
        exit when page is null;
        n := n + 1;
        got := got || page;
        after := cursors[cardinality(cursors)];
    end loop;
    return query select got = coalesce((select array_agg(s.span_id order by s.start_time desc, s.id desc) from analytics.llm_traces s
                                        where s.trace_id = 'many' and (f is null or s.start_time >= f) and (t is null or s.start_time < t)), '{}'),
                        n, cardinality(got);
end $$;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select * from pg_temp.walk(7, null, null);
select * from pg_temp.walk(3, '2027-01-05', '2027-02-20');
select * from pg_temp.walk(100, '2026-12-01', null);
select (select array_agg(span_id) from analytics.search_spans(trace_id => 'many', "limit" => 5, "offset" => 40, cache => false))
     = (select array_agg(span_id) from (select span_id from analytics.llm_traces where trace_id = 'many'
                                       order by start_time desc, id desc limit 5 offset 40) x) as offset_page_same;
commit;
-- what a page locks: the table, the partitions of its window and their indexes (the plan is kept; a first call plans
-- it), not every partition: PostgreSQL 15 takes a transaction's first 16 relation locks in its fast path
select count(*) from analytics.search_spans(trace_id => 'many', "limit" => 7, cache => false);
begin;
select count(*) as newest_page from analytics.search_spans(trace_id => 'many', "limit" => 7, cache => false);
select (select count(*) from analytics.span_partitions()) as partitions,
       count(*) filter (where c.relkind = 'r') as partitions_locked,
       count(*) filter (where c.relkind = 'i') as indexes_locked
from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
where l.pid = pg_backend_pid() and l.locktype = 'relation' and n.nspname = 'analytics_partitions';
commit;

-- leave the database as the other tests expect it: the default partition only
delete from analytics.llm_traces;
delete from analytics.retention_policies;
do $$ declare p text; begin
    for p in select partition from analytics.span_partitions() where partition <> 'analytics_partitions.llm_traces_default' loop
        execute format('drop table %s', p);
    end loop;
end $$;
alter table analytics.llm_traces attach partition analytics_partitions.llm_traces_default default;
select partition from analytics.span_partitions();

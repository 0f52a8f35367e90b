-- Retention: per-owner policies (a plan's limit) applied by analytics.apply_retention(); owners read their own
-- policy and cannot change it; applying is the DBA's job. Sessions behave like PostgREST where a user acts.
\pset null '·'
\set A '''aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'''
\set B '''bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'''
\set C '''cccccccc-cccc-4ccc-8ccc-cccccccccccc'''
delete from analytics.llm_traces;
delete from analytics.retention_policies;

-- spans 1, 10, 40 and 400 days before 2026-11-20 for three owners (written by the DBA, who bypasses RLS)
insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time)
select u, 'age-' || d, 's', 'step', timestamptz '2026-11-20 12:00+00' - make_interval(days => d)
from (values (:A::uuid), (:B::uuid), (:C::uuid)) v(u), unnest(array[1, 10, 40, 400]) d;
-- A's plan keeps 7 days, B's 365; C has no policy
insert into analytics.retention_policies (user_id, keep_days) values (:A, 7), (:B, 365);

-- the owners read their own policy, and cannot change it (42501), nor give themselves one
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select user_id, keep_days from analytics.retention_policies;
select regress.attempt($$update analytics.retention_policies set keep_days = 36500$$) as raise_own_limit,
       regress.attempt($$delete from analytics.retention_policies$$) as drop_own_limit,
       regress.attempt($$select * from analytics.apply_retention()$$) as apply;
commit;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"cccccccc-cccc-4ccc-8ccc-cccccccccccc","role":"authenticated"}', true) is not null as carol;
select count(*) as policies_carol_sees from analytics.retention_policies;
select regress.attempt($$insert into analytics.retention_policies (user_id, keep_days) values ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 36500)$$) as give_herself_one;
commit;

-- the DBA (a pg_cron job) applies them: without a default, C's spans are kept
select * from analytics.apply_retention(as_of => '2026-11-20 12:00+00');
select user_id = :A as a, string_agg(trace_id, ',' order by start_time desc) as kept
from analytics.llm_traces group by user_id order by user_id;
-- with a default of 30 days for owners without a policy; running again deletes nothing more
select * from analytics.apply_retention(default_keep_days => 30, as_of => '2026-11-20 12:00+00');
select * from analytics.apply_retention(default_keep_days => 30, as_of => '2026-11-20 12:00+00');
select user_id, string_agg(trace_id, ',' order by start_time desc) as kept
from analytics.llm_traces group by user_id order by user_id;

-- bad input names the argument; policies are checked by the table
select regress.attempt($$select * from analytics.apply_retention(default_keep_days => 0)$$) as zero_days,
       regress.attempt($$select * from analytics.apply_retention(as_of => NULL)$$) as no_time,
       regress.attempt($$insert into analytics.retention_policies (user_id, keep_days) values ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 0)$$) as zero_policy;
delete from analytics.llm_traces;
delete from analytics.retention_policies;

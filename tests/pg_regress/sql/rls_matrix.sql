-- Row-level security matrix: every table x every command x every kind of caller, done the way PostgREST does it:
-- inside a transaction, `set local role <role>` and the JWT claims in request.jwt.claims.
-- User A must never see, change or delete B's rows; A cannot write a row owned by B (42501); anon sees nothing;
-- service_role (BYPASSRLS on Supabase) sees everything.
\set A '''aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'''
\set B '''bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'''

-- One row of every table for each of A and B, written by the superuser (who bypasses RLS).
insert into analytics.llm_traces (user_id, trace_id, span_id, name, operation_type, start_time, end_time)
select u, 'trace-1', 'span-1', 'chat', 'chat', '2026-01-01 10:00+00', '2026-01-01 10:00:01+00'
from (values (:A::uuid), (:B::uuid)) v(u);
insert into analytics.ab_experiments (id, user_id, key, name)
values ('a0000000-0000-4000-8000-000000000001', :A, 'prompt-test', 'Prompt test'),
       ('b0000000-0000-4000-8000-000000000001', :B, 'prompt-test', 'Prompt test');
insert into analytics.ab_experiment_variants (id, user_id, experiment_id, key, position, weight, is_control)
values ('a0000000-0000-4000-8000-000000000002', :A, 'a0000000-0000-4000-8000-000000000001', 'control', 0, 0.5, true),
       ('b0000000-0000-4000-8000-000000000002', :B, 'b0000000-0000-4000-8000-000000000001', 'control', 0, 0.5, true);
insert into analytics.ab_experiment_assignments (user_id, experiment_id, variant_id, unit_id)
values (:A, 'a0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000002', 'visitor-1'),
       (:B, 'b0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000002', 'visitor-1');
insert into analytics.ab_experiment_events (user_id, experiment_id, unit_id, metric)
values (:A, 'a0000000-0000-4000-8000-000000000001', 'visitor-1', 'signup'),
       (:B, 'b0000000-0000-4000-8000-000000000001', 'visitor-1', 'signup');
insert into analytics.anomaly_detections (user_id, metric, bucket_start, bucket_width, observed, method)
select u, 'latency_p95', '2026-01-01 10:00+00', '1 hour', 1234, 'mad' from (values (:A::uuid), (:B::uuid)) v(u);
insert into analytics.user_cohorts (id, user_id, key, name)
values ('a0000000-0000-4000-8000-000000000003', :A, 'power-users', 'Power users'),
       ('b0000000-0000-4000-8000-000000000003', :B, 'power-users', 'Power users');
insert into analytics.user_cohort_members (user_id, cohort_id, member_id)
values (:A, 'a0000000-0000-4000-8000-000000000003', 'visitor-1'),
       (:B, 'b0000000-0000-4000-8000-000000000003', 'visitor-1');
insert into analytics.model_prices (user_id, model, input_usd_per_mtok, output_usd_per_mtok)
values (:A, 'gpt-4o', 2.5, 10), (:B, 'gpt-4o', 2.5, 10);

-- matrix(me, other): for every table of the extension, what the current caller can do to its own rows and to
-- the other user's rows. Inserts copy a row the caller can see, with its client-chosen key changed.
create function pg_temp.matrix(me uuid, other uuid)
returns table (tbl text, sees_own bigint, sees_other bigint, update_other text, delete_other text,
               insert_own text, insert_as_other text, give_row_to_other text)
language plpgsql as $$
declare
    cols text;
    template jsonb;
    rename jsonb;
begin
    for tbl, rename in
        select * from (values
            ('llm_traces', '{"span_id": "copied"}'::jsonb),
            ('model_prices', '{"model": "copied"}'),
            ('ab_experiments', '{"key": "copied"}'),
            ('ab_experiment_variants', '{"key": "copied", "position": 9, "is_control": false}'),
            ('ab_experiment_assignments', '{"unit_id": "copied"}'),
            ('ab_experiment_events', '{}'),
            ('anomaly_detections', '{"metric": "copied"}'),
            ('user_cohorts', '{"key": "copied"}'),
            ('user_cohort_members', '{"member_id": "copied"}')) t
        order by 1
    loop
        select string_agg(quote_ident(attname), ', ' order by attnum) into cols
        from pg_attribute
        where attrelid = ('analytics.' || tbl)::regclass and attnum > 0 and not attisdropped and attgenerated = '';
        begin
            execute format('select count(*) filter (where user_id = $1), count(*) filter (where user_id <> $1) from analytics.%I', tbl)
                into sees_own, sees_other using me;
            execute format('select to_jsonb(t) from analytics.%I t limit 1', tbl) into template;
        exception when others then
            sees_own := null; sees_other := null; template := null;
            insert_own := sqlstate;
        end;
        update_other := regress.attempt(with_message => false, stmt => format('update analytics.%I set user_id = user_id where user_id = %L', tbl, other));
        delete_other := regress.attempt(with_message => false, stmt => format('delete from analytics.%I where user_id = %L', tbl, other));
        template := coalesce(template, '{}') || rename || jsonb_build_object('id', gen_random_uuid());
        insert_own := regress.attempt(with_message => false, stmt =>
            format('insert into analytics.%I (%s) select %s from jsonb_populate_record(null::analytics.%I, $1)', tbl, cols, cols, tbl),
            args => template || jsonb_build_object('user_id', me));
        insert_as_other := regress.attempt(with_message => false, stmt =>
            format('insert into analytics.%I (%s) select %s from jsonb_populate_record(null::analytics.%I, $1)', tbl, cols, cols, tbl),
            args => template || jsonb_build_object('user_id', other, 'id', gen_random_uuid()));
        give_row_to_other := regress.attempt(with_message => false, stmt => format('update analytics.%I set user_id = %L where user_id = %L', tbl, other, me));
        return next;
    end loop;
end
$$;

-- User A, as PostgREST runs a request with A's JWT
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as claims_set;
select * from pg_temp.matrix(:A, :B);
rollback;

-- User B
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as claims_set;
select * from pg_temp.matrix(:B, :A);
rollback;

-- authenticated but without a sub claim: owns nothing, sees nothing, writes nothing
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"role":"authenticated"}', true) is not null as claims_set;
select * from pg_temp.matrix(:A, :B);
rollback;

-- anon: no table privileges at all (42501), whatever the claims say
begin;
set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true) is not null as claims_set;
select * from pg_temp.matrix(:A, :B);
rollback;

-- service_role keeps Supabase's BYPASSRLS: a trusted back-end sees and manages every owner's rows
begin;
set local role service_role;
select set_config('request.jwt.claims', '{"role":"service_role"}', true) is not null as claims_set;
select tbl, sees_own, sees_other, update_other, delete_other from pg_temp.matrix(:A, :B);
rollback;

-- Nothing above changed anything: every owner still has exactly its one row in every table.
select 'llm_traces' as tbl, count(*) filter (where user_id = :A) as a_rows, count(*) filter (where user_id = :B) as b_rows from analytics.llm_traces
union all select 'ab_experiments', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.ab_experiments
union all select 'ab_experiment_variants', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.ab_experiment_variants
union all select 'ab_experiment_assignments', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.ab_experiment_assignments
union all select 'ab_experiment_events', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.ab_experiment_events
union all select 'anomaly_detections', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.anomaly_detections
union all select 'user_cohorts', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.user_cohorts
union all select 'user_cohort_members', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.user_cohort_members
union all select 'model_prices', count(*) filter (where user_id = :A), count(*) filter (where user_id = :B) from analytics.model_prices;

-- A child row can only hang off a parent of the same owner: A cannot attach a variant to B's experiment even when
-- it knows B's experiment id, and the error (23503) is the same as for an id that does not exist.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as claims_set;
select regress.attempt(with_message => false, stmt => $$insert into analytics.ab_experiment_variants (experiment_id, key, position, weight)
                         values ('b0000000-0000-4000-8000-000000000001', 'sneaky', 5, 0.1)$$) as attach_to_b;
select regress.attempt(with_message => false, stmt => $$insert into analytics.ab_experiment_variants (experiment_id, key, position, weight)
                         values ('c0000000-0000-4000-8000-000000000009', 'sneaky', 5, 0.1)$$) as attach_to_missing;
-- B's experiment key is free for A too: unique keys are scoped per owner, so nobody can block another's key.
-- (A renames its own 'prompt-test' away, then takes the key again while B still holds 'prompt-test'.)
update analytics.ab_experiments set key = 'prompt-test-old';
select regress.attempt(with_message => false, stmt => $$insert into analytics.ab_experiments (key, name) values ('prompt-test', 'x')$$) as same_key_as_b;
select key, user_id = analytics.current_user_id() as mine from analytics.ab_experiments order by key;
rollback;

-- Deleting an experiment removes its variants, assignments and events together.
begin;
delete from analytics.ab_experiments where user_id = :A;
select (select count(*) from analytics.ab_experiment_variants where user_id = :A) as variants,
       (select count(*) from analytics.ab_experiment_assignments where user_id = :A) as assignments,
       (select count(*) from analytics.ab_experiment_events where user_id = :A) as events;
rollback;

-- ...while deleting a variant that still has assignments is refused (the history would be lost).
select regress.attempt(with_message => false, stmt => $$delete from analytics.ab_experiment_variants where id = 'a0000000-0000-4000-8000-000000000002'$$) as delete_assigned_variant;

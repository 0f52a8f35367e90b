-- Experiments, per-unit event totals (sql/023_experiment_totals.sql): after every kind of write to events and
-- assignments, the totals the triggers keep give the same per-variant moments as the plain join of assignments and
-- events (analytics._experiment_moments), for binomial and mean metrics; users read but cannot write them; another
-- owner's events never reach them. Sessions behave like PostgREST: role authenticated + JWT claims.

-- the check: moments from the totals equal moments from the plain join (to 1e-9), for both metric types, uncapped and
-- capped, overall and per dimension value (the UTC day of assignment and an attribute, copied into the totals; every
-- dimension value present on both sides)
create function regress.totals_agree(experiment_key text, metric text) returns boolean
language sql as $$
    with cases as (
        select e.id, e.key, e.phase, kind, cap, d.dimension
        from analytics.ab_experiments e cross join unnest(array['binomial', 'mean']) kind
        cross join (values (null::double precision), (2.0)) c(cap)  -- uncapped, and values capped at 2 (metric capping)
        cross join (values (null::text), ('assigned_date'), ('attribute.plan')) d(dimension)
        where e.key = totals_agree.experiment_key
    ), from_totals as (
        select c.kind, coalesce(c.cap, -1) as cap, coalesce(c.dimension, '') as dimension,
               coalesce(x->>'dimension', '') as value, g->>'key' as variant, k, (g->'moments'->>k)::float8 as v
        from cases c
        cross join lateral analytics._experiment_event_moments(c.id, c.phase, totals_agree.metric, c.kind, c.cap,
                                                               c.dimension) x
        cross join lateral jsonb_array_elements(x->'groups') g cross join unnest(array['n', 'sum', 'sum_squares']) k
    ), from_join as (
        select c.kind, coalesce(c.cap, -1) as cap, coalesce(c.dimension, '') as dimension,
               coalesce(x->>'dimension', '') as value, g->>'key' as variant, k, (g->'moments'->>k)::float8 as v
        from cases c
        cross join lateral analytics._experiment_moments(c.id, c.key, c.phase, totals_agree.metric, c.kind, 'events',
                                                         'metadata', null, '0', c.cap, c.dimension) x
        cross join lateral jsonb_array_elements(x->'groups') g cross join unnest(array['n', 'sum', 'sum_squares']) k
    )
    select bool_and(coalesce(abs(t.v - j.v) <= 1e-9 * greatest(1, abs(j.v)), false))
    from from_totals t full join from_join j using (kind, cap, dimension, value, variant, k)
$$;
grant execute on function regress.totals_agree(text, text) to authenticated;

-- the unit counts the triggers keep (summed over shards) equal the assignments counted per experiment, phase, variant,
-- UTC day and attributes; no row is left at 0
create function regress.counts_agree() returns boolean
language sql as $$
    with c as (
        select experiment_id, phase, variant_id, assigned_on, attributes, sum(units) as units
        from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5 having sum(units) <> 0
    ), a as (
        select experiment_id, phase, variant_id, (assigned_at at time zone 'UTC')::date, attributes, count(*)
        from analytics.ab_experiment_assignments group by 1, 2, 3, 4, 5
    )
    select not exists (select * from c except select * from a) and not exists (select * from a except select * from c)
       and not exists (select 1 from analytics.ab_experiment_unit_counts where units = 0)
       and exists (select 1 from a)
$$;
grant execute on function regress.counts_agree() to authenticated;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('totals', 'Totals', '[{"key":"control"},{"key":"treatment"}]');
select key from analytics.create_experiment('other', 'Another experiment', '[{"key":"a"},{"key":"b"}]');
select status from analytics.start_experiment('totals');
select status from analytics.start_experiment('other');
-- with a plan attribute (none for every fifth unit), for the breakdowns by attribute
select count(*) as assigned from generate_series(1, 300) i,
       analytics.assign_variant('totals', 'u' || i, case when i % 5 = 0 then '{}'
                                                         else jsonb_build_object('plan', case when i % 3 = 0 then 'pro' else 'free' end) end) a
where a.in_experiment;
select count(*) as assigned_other from generate_series(1, 100) i, analytics.assign_variant('other', 'u' || i) a where a.in_experiment;
-- events: tied to this experiment, to none (count for every experiment of the unit), to the other experiment (do
-- not count here), one before assignment (does not count), and events of units never assigned
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select case i % 3 when 0 then (select id from analytics.ab_experiments where key = 'totals')
                  when 1 then null else (select id from analytics.ab_experiments where key = 'other') end,
       'u' || (i % 400), 'purchase', 5 + i % 17, now() + make_interval(secs => i)
from generate_series(1, 900) i;
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
values (null, 'u7', 'purchase', 1000, now() - interval '1 day');
select count(*) as total_rows, sum(events) as counted_events from analytics.ab_experiment_unit_totals
where experiment_id = (select id from analytics.ab_experiments where key = 'totals');
select regress.totals_agree('totals', 'purchase') as after_insert, regress.totals_agree('other', 'purchase') as other_after_insert,
       regress.counts_agree() as counts_after_insert;
select count(*) as count_rows, sum(units) as counted_units from analytics.ab_experiment_unit_counts
where experiment_id = (select id from analytics.ab_experiments where key = 'totals');
-- the values experiment_results reports come from the totals
select variant_key, units, round(value::numeric, 4) as purchase_per_unit from analytics.experiment_results('totals', 'purchase', metric_type => 'mean');
-- updates: a value changes, an event moves before its assignment, an event moves to another unit
update analytics.ab_experiment_events set value = value * 2 where unit_id in ('u10', 'u11');
update analytics.ab_experiment_events set occurred_at = now() - interval '2 days' where unit_id = 'u12';
update analytics.ab_experiment_events set unit_id = 'u13' where unit_id = 'u14';
select regress.totals_agree('totals', 'purchase') as after_updates;
-- deletes: some events, then every event of a unit (its totals row goes)
delete from analytics.ab_experiment_events where unit_id = 'u20' and value > 10;
delete from analytics.ab_experiment_events where unit_id = 'u21';
select count(*) as u21_rows from analytics.ab_experiment_unit_totals t
join analytics.ab_experiment_assignments a on a.id = t.assignment_id where a.unit_id = 'u21';
select regress.totals_agree('totals', 'purchase') as after_deletes;
-- an assignment stored after its unit's events (events of u350 exist; it is assigned now, events are later)
select a.in_experiment from analytics.assign_variant('totals', 'u350') a;
select t.events > 0 as late_assignment_counted from analytics.ab_experiment_unit_totals t
join analytics.ab_experiment_assignments a on a.id = t.assignment_id where a.unit_id = 'u350';
-- an assignment's time or attributes change: its totals are recomputed (the copies of both included)
update analytics.ab_experiment_assignments set assigned_at = now() + interval '1 hour' where unit_id = 'u30';
update analytics.ab_experiment_assignments set attributes = '{"plan": "enterprise"}' where unit_id in ('u31', 'u32');
select regress.totals_agree('totals', 'purchase') as after_assignment_changes, regress.counts_agree() as counts_after_changes;
-- an update that changes no counted column leaves the counts as they are
select count(*) as rows_before from analytics.ab_experiment_unit_counts \gset
update analytics.ab_experiment_assignments set hash_value = hash_value where unit_id like 'u4%';
select count(*) = :rows_before as same_rows, regress.counts_agree() as counts_after_noop_update from analytics.ab_experiment_unit_counts;
-- an assignment deleted: its totals go with it
delete from analytics.ab_experiment_assignments where unit_id = 'u31' and experiment_id = (select id from analytics.ab_experiments where key = 'totals');
select regress.totals_agree('totals', 'purchase') as after_assignment_delete, regress.counts_agree() as counts_after_delete;
-- the last 'enterprise' unit leaves that value: its count row is deleted, not kept at 0
update analytics.ab_experiment_assignments set attributes = '{}' where unit_id = 'u32';
select count(*) as enterprise_rows, regress.counts_agree() as counts_after_last_leaves
from analytics.ab_experiment_unit_counts
where attributes = '{"plan": "enterprise"}' and experiment_id = (select id from analytics.ab_experiments where key = 'totals');
-- a deleted experiment's counts go with it (its assignments by the foreign key's cascade)
select key from analytics.create_experiment('doomed', 'Deleted below', '[{"key":"a"},{"key":"b"}]');
select status from analytics.start_experiment('doomed');
select count(*) as assigned_doomed from generate_series(1, 40) i, analytics.assign_variant('doomed', 'd' || i, jsonb_build_object('n', i % 4)) a;
select count(*) > 0 as doomed_counted from analytics.ab_experiment_unit_counts c join analytics.ab_experiments e on e.id = c.experiment_id where e.key = 'doomed';
-- (first its id changes: the counts move to the new key, none are left under the old one)
select id as doomed_old_id from analytics.ab_experiments where key = 'doomed' \gset
update analytics.ab_experiments set id = gen_random_uuid() where key = 'doomed';
select count(*) as rows_under_old_id, regress.counts_agree() as counts_after_id_change
from analytics.ab_experiment_unit_counts where experiment_id = :'doomed_old_id';
select id as doomed_id from analytics.ab_experiments where key = 'doomed' \gset
delete from analytics.ab_experiments where key = 'doomed';
select count(*) as doomed_count_rows, regress.counts_agree() as counts_after_experiment_delete
from analytics.ab_experiment_unit_counts where experiment_id = :'doomed_id';
-- a percentile cap from the totals (zeros of the units without events counted, not stored) equals percentile_cont
-- over every unit's value from the plain join, for a metric with negative, zero and positive totals and units
-- without events, at quantiles that fall on the negatives, the zeros and the positives
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select null, 'u' || i, 'balance', case i % 5 when 0 then -7.5 when 1 then 0 when 2 then 3 else i % 50 + 1 end, now() + interval '1 minute'
from generate_series(1, 240) i where i % 7 <> 0;
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select null, 'u' || i, 'balance', -i, now() + interval '2 minutes' from generate_series(1, 40) i where i % 2 = 0;
select q, ignore_zeros, analytics._experiment_event_cap(e.id, e.phase, 'balance', q, ignore_zeros) = (
           select percentile_cont(q) within group (order by u.y)
           from analytics._experiment_unit_values(e.id, e.key, e.phase, 'balance', 'mean', 'events', 'metadata', null, '0') u
           where not ignore_zeros or u.y <> 0) as cap_from_totals_equals_join
from analytics.ab_experiments e, unnest(array[0.01, 0.05, 0.3, 0.5, 0.77, 0.99]) q, unnest(array[false, true]) ignore_zeros
where e.key = 'totals'
order by ignore_zeros, q;
commit;

-- ---- Bob: the same unit ids, his own events; he sees none of Alice's totals and cannot write any ----------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select count(*) as alice_totals_seen_by_bob from analytics.ab_experiment_unit_totals;
select count(*) as alice_counts_seen_by_bob from analytics.ab_experiment_unit_counts;
insert into analytics.ab_experiment_events (unit_id, metric, value, occurred_at)
select 'u' || i, 'purchase', 99, now() + interval '1 minute' from generate_series(1, 300) i;
select count(*) as bob_totals from analytics.ab_experiment_unit_totals;
select regress.attempt($$insert into analytics.ab_experiment_unit_totals select * from analytics.ab_experiment_unit_totals$$) as bob_writes_totals;
select regress.attempt($$update analytics.ab_experiment_unit_counts set units = units + 1$$) as bob_writes_counts;
select regress.attempt($$select analytics.rebuild_experiment_totals()$$) as bob_rebuilds;
commit;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select regress.totals_agree('totals', 'purchase') as alice_unchanged_by_bob, regress.counts_agree() as alice_counts_unchanged,
       (select count(*) from analytics.ab_experiment_unit_totals where total >= 99 and events = 1) as bob_values_in_alice_totals;
commit;

-- ---- a DBA's rebuild gives the same rows; TRUNCATE empties them --------------------------------------------------
create temp table kept as select * from analytics.ab_experiment_unit_totals;
create temp table kept_counts as select * from analytics.ab_experiment_unit_counts;
select analytics.rebuild_experiment_totals() = (select count(*) from kept) as rebuilt_same_count;
select count(*) as rows_differing from (
    select assignment_id, metric, events, round(total::numeric, 6) from kept
    except
    select assignment_id, metric, events, round(total::numeric, 6) from analytics.ab_experiment_unit_totals) d;
-- (the rebuild writes one shard; the sums over shards are the same)
select count(*) as count_rows_differing from (
    (select experiment_id, phase, variant_id, assigned_on, attributes_key, user_id, attributes, sum(units)
     from kept_counts group by 1, 2, 3, 4, 5, 6, 7
     except
     select experiment_id, phase, variant_id, assigned_on, attributes_key, user_id, attributes, sum(units)
     from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5, 6, 7)
    union all
    (select experiment_id, phase, variant_id, assigned_on, attributes_key, user_id, attributes, sum(units)
     from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5, 6, 7
     except
     select experiment_id, phase, variant_id, assigned_on, attributes_key, user_id, attributes, sum(units)
     from kept_counts group by 1, 2, 3, 4, 5, 6, 7)) d;
truncate analytics.ab_experiment_events;
select count(*) as after_truncate from analytics.ab_experiment_unit_totals;
truncate analytics.ab_experiment_assignments cascade;
select count(*) as counts_after_truncate from analytics.ab_experiment_unit_counts;

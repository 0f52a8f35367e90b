-- experiment_results at scale: one experiment with 10,000,000 assigned units (two variants) and 10,000,000 events
-- (a third of the units with three events each), read by its owner as role authenticated with RLS on. Compared with
-- the hand-written query an analyst would write for the same per-variant sums (join, group by unit, group by
-- variant) without any statistics, in the same run. Medians of 3 runs. Set :units for a smaller run (psql -v units=…).
-- experiment_results reads the per-unit totals its triggers keep (sql/023_experiment_totals.sql); the hand-written
-- query joins the raw tables. The cost moved to write time is measured at the end.
\set ON_ERROR_STOP 1
\pset footer off
\if :{?units}
\else
\set units 10000000
\endif
\i bench/common.sql
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000a","role":"authenticated"}', false) is not null as owner;
select key from analytics.create_experiment('bench-checkout', 'Checkout at scale', '[{"key":"control"},{"key":"treatment"}]');
select status from analytics.start_experiment('bench-checkout');
\timing on
-- (bulk loads: the totals triggers run once per statement, joining the loaded rows with the other table)
-- assignments as assign_variant stores them (its variant by GrowthBook hash; bulk-loaded here for time)
-- with a country attribute (one of 8) for the dimension breakdown
insert into analytics.ab_experiment_assignments (id, user_id, experiment_id, variant_id, unit_id, phase, hash_value, assigned_at,
                                                 attributes)
select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, e.user_id, e.id,
       case when h < 0.5 then c.id else t.id end, 'unit-' || i, e.phase, h,
       timestamptz '2026-11-01 00:00+00' + make_interval(secs => i % 86400),
       jsonb_build_object('country', (array['US', 'DE', 'FR', 'GB', 'IN', 'BR', 'JP', 'CA'])[1 + (i * 7) % 8])
from analytics.ab_experiments e
join analytics.ab_experiment_variants c on c.experiment_id = e.id and c.key = 'control'
join analytics.ab_experiment_variants t on t.experiment_id = e.id and t.key = 'treatment'
cross join generate_series(1, :units) i
cross join lateral (select analytics.gb_hash(coalesce(nullif(e.seed, ''), e.key), 'unit-' || i, 2) as h) x
where e.key = 'bench-checkout';
insert into analytics.ab_experiment_events (id, user_id, experiment_id, unit_id, metric, value, occurred_at)
select ('00000000-0000-4000-9000-' || lpad(to_hex(i * 3 + k), 12, '0'))::uuid, e.user_id,
       case when k = 0 then e.id end, 'unit-' || (i * 3), 'purchase', 5 + (i * 7 + k) % 40,
       timestamptz '2026-11-01 00:00+00' + make_interval(secs => (i * 3) % 86400 + 60 + k)
from analytics.ab_experiments e cross join generate_series(1, :units / 3) i cross join generate_series(0, 2) k
where e.key = 'bench-checkout';
\timing off
vacuum analyze analytics.ab_experiment_assignments, analytics.ab_experiment_events, analytics.ab_experiment_unit_totals;
select (select count(*) from analytics.ab_experiment_assignments) as assignments,
       (select count(*) from analytics.ab_experiment_events) as events;

set role authenticated;
create temp table results as
select pg_temp.bench($$select * from analytics.experiment_results('bench-checkout', 'purchase', cache => false)$$, 3) as binomial_ms,
       pg_temp.bench($$select * from analytics.experiment_results('bench-checkout', 'purchase', metric_type => 'mean', cache => false)$$, 3) as mean_ms,
       pg_temp.bench($$select v.key, count(*), count(*) filter (where p.events > 0), sum(p.total), sum(p.total * p.total)
                       from (select a.variant_id, count(ev.id) as events, coalesce(sum(ev.value), 0) as total
                             from analytics.ab_experiment_assignments a
                             left join analytics.ab_experiment_events ev
                                    on ev.user_id = a.user_id and ev.unit_id = a.unit_id and ev.metric = 'purchase'
                                   and (ev.experiment_id = a.experiment_id or ev.experiment_id is null)
                                   and ev.occurred_at >= a.assigned_at
                             where a.experiment_id = (select id from analytics.ab_experiments where key = 'bench-checkout')
                             group by a.id, a.variant_id) p
                       join analytics.ab_experiment_variants v on v.id = p.variant_id
                       group by v.key$$, 3) as hand_written_ms;
select round(binomial_ms) as experiment_results_binomial_ms, round(mean_ms) as experiment_results_mean_ms,
       round(hand_written_ms) as hand_written_sums_ms, round((binomial_ms / hand_written_ms)::numeric, 2) as ratio
from results;

-- GrowthBook's results page at this scale: a dimension breakdown (8 countries), and the whole report with a goal
-- metric and a guardrail, broken down by country; against the same calls without a dimension, in the same run
create temp table dimensions as
select pg_temp.bench($$select * from analytics.experiment_results('bench-checkout', 'purchase', dimension => 'attribute.country', cache => false)$$, 3) as by_country_ms,
       pg_temp.bench($$select * from analytics.experiment_results('bench-checkout', 'purchase', cache => false)$$, 3) as overall_ms,
       pg_temp.bench($$select analytics.experiment_report('bench-checkout', '["purchase"]', '[{"metric": "purchase", "type": "mean", "lower_is_better": true}]',
                                                          dimension => 'attribute.country', cache => false)$$, 3) as report_by_country_ms,
       pg_temp.bench($$select analytics.experiment_report('bench-checkout', '["purchase"]', '[{"metric": "purchase", "type": "mean", "lower_is_better": true}]',
                                                          cache => false)$$, 3) as report_ms;
select round(by_country_ms) as results_by_country_ms, round(overall_ms) as results_overall_ms,
       round(report_by_country_ms) as report_goal_guardrail_by_country_ms, round(report_ms) as report_goal_guardrail_ms,
       report_by_country_ms < 2000 as report_by_country_within_2_s
from dimensions;
select dimension, variant_key, units, round(value::numeric, 4) as rate, round(effect::numeric, 4) as lift,
       round(p_value::numeric, 4) as p, round(adjusted_p_value::numeric, 4) as holm, srm
from analytics.experiment_results('bench-checkout', 'purchase', dimension => 'attribute.country', correction => 'holm', cache => false);
select variant_key, units, round(value::numeric, 4) as rate, round(effect::numeric, 4) as lift, round(p_value::numeric, 4) as p,
       round(chance_to_beat_control::numeric, 3) as chance, srm
from analytics.experiment_results('bench-checkout', 'purchase', cache => false);

-- The result cache (sql/041_cache.sql): each call in a transaction of its own, as PostgREST runs a request. The first
-- call computes and stores the result (a miss); the next ones read it (hits, median of 200); against the
-- computation alone (cache => false, median of 3), in the same run.
call pg_temp.bench_requests($$select * from analytics.experiment_results('bench-checkout', 'purchase', cache => false)$$, 3) \gset uncached_
call pg_temp.bench_requests($$select * from analytics.experiment_results('bench-checkout', 'purchase')$$, 1) \gset miss_
call pg_temp.bench_requests($$select * from analytics.experiment_results('bench-checkout', 'purchase')$$, 200) \gset hit_
select round(:uncached_median_ms::numeric, 1) as computed_ms, round(:miss_median_ms::numeric, 1) as miss_and_store_ms,
       round(:hit_median_ms::numeric, 3) as cache_hit_ms,
       round((:uncached_median_ms / :hit_median_ms)::numeric) as hit_is_times_faster,
       :hit_median_ms <= 5 as hit_within_5_ms;
select function_name, entries, bytes, hits, misses from analytics.cache_stats();
reset role;

-- what the per-unit totals cost at write time: batches of 10,000 events of assigned units (a third tied to the
-- experiment, the rest to none) into ab_experiment_events (its triggers update ab_experiment_unit_totals) against
-- the same batches into a copy of the table without triggers (same indexes and constraints). Medians of 5.
create table plain_events (like analytics.ab_experiment_events including all);
select set_config('bench.units', :'units', false) is not null as units_set;
create temp table ingest as
select pg_temp.bench($$insert into analytics.ab_experiment_events (user_id, experiment_id, unit_id, metric, value, occurred_at)
                       select e.user_id, case when i % 3 = 0 then e.id end, 'unit-' || (1 + (i * 7919 + extract(epoch from clock_timestamp())::int) % current_setting('bench.units')::int),
                              'signup', 1, timestamptz '2026-11-02 00:00+00'
                       from analytics.ab_experiments e cross join generate_series(1, 10000) i where e.key = 'bench-checkout'$$, 5) as with_totals_ms,
       pg_temp.bench($$insert into plain_events (user_id, experiment_id, unit_id, metric, value, occurred_at)
                       select e.user_id, case when i % 3 = 0 then e.id end, 'unit-' || (1 + (i * 7919 + extract(epoch from clock_timestamp())::int) % current_setting('bench.units')::int),
                              'signup', 1, timestamptz '2026-11-02 00:00+00'
                       from analytics.ab_experiments e cross join generate_series(1, 10000) i where e.key = 'bench-checkout'$$, 5) as plain_ms;
select round(with_totals_ms) as insert_10k_events_ms, round(plain_ms) as insert_10k_events_without_triggers_ms,
       round((with_totals_ms / plain_ms)::numeric, 2) as ratio
from ingest;

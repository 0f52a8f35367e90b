-- Quantile metrics (GrowthBook's quantile metrics; gbstats' QuantileStatistic and QuantileClusteredStatistic, whose
-- statistics crates/analytics-core checks against gbstats itself): experiment_results with metric_type 'quantile' (a
-- quantile of the units' values) or 'quantile_event' (of every event's or span's value, clustered in units). Here the
-- SQL side is checked against an independent computation: percentile_cont by hand at levels written out by hand, n*
-- chosen by hand, the clusters counted by hand, and the same statistics asked of compare_groups. Sessions as
-- PostgREST runs them (role authenticated + JWT claims); rolled back at the end.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('reply-speed', 'Faster replies', '[{"key":"control"},{"key":"fast"}]');
select status from analytics.start_experiment('reply-speed');
select count(*) as assigned from generate_series(1, 600) i, analytics.assign_variant('reply-speed', 'user-' || i) a where a.in_experiment;
-- 1 to 5 replies per unit after its assignment (none for every 7th unit), a slow tail every 23rd reply; the fast
-- variant 15% quicker
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'reply_ms',
       (300 + (u.n * 37 + k * 53) % 500 + case when (u.n * k) % 23 = 0 then 2000 else 0 end)
       * case v.key when 'fast' then 0.85 else 1 end,
       a.assigned_at + k * interval '1 minute'
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select substr(a.unit_id, 6)::int as n) u
cross join lateral generate_series(1, case when u.n % 7 = 0 then 0 else 1 + u.n % 5 end) k
where a.experiment_id = (select id from analytics.ab_experiments where key = 'reply-speed');

-- the p95 of every reply, each variant's: value is percentile_cont over the variant's events (a 15% lower p95, not
-- yet significant: the slow tail of every 23rd reply sits right at it; lower is better for a reply time)
create temp table replies on commit drop as
select v.key as variant_key, a.id as unit, e.value
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
left join analytics.ab_experiment_events e on e.unit_id = a.unit_id and e.metric = 'reply_ms' and e.occurred_at >= a.assigned_at
where a.experiment_id = (select id from analytics.ab_experiments where key = 'reply-speed');
select r.variant_key, r.units, round(r.value::numeric, 2) as p95_ms, r.value = h.q as is_percentile_cont,
       round(r.effect::numeric, 4) as lift, r.significant, round(r.chance_to_beat_control::numeric, 4) as chance_to_beat_control
from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile_event', quantile => 0.95,
                                  lower_is_better => true) r
join (select variant_key, percentile_cont(0.95) within group (order by value) as q from replies group by 1) h using (variant_key)
order by r.is_control desc;

-- the same statistics from moments computed by hand: n* = the largest of 100, 200, 400, ... below the number of
-- replies; the bounds at 0.95 -/+ 1.959963984540054 sqrt(0.95 * 0.05 / n*); per unit, its replies at or below the
-- variant's p95 (b) and its replies (c)
create temp table hand on commit drop as
with counts as (
    select variant_key, count(value) as n, percentile_cont(0.95) within group (order by value) as q
    from replies group by 1
), nstar as (
    select c.*, (select max(100 * 2 ^ k) from generate_series(0, 19) k where 100 * 2 ^ k < c.n) as nstar from counts c
), bounds as (
    select s.*, (select percentile_cont(0.95 - 1.959963984540054 * sqrt(0.95 * 0.05 / s.nstar)) within group (order by r.value)
                 from replies r where r.variant_key = s.variant_key) as lower,
                (select percentile_cont(0.95 + 1.959963984540054 * sqrt(0.95 * 0.05 / s.nstar)) within group (order by r.value)
                 from replies r where r.variant_key = s.variant_key) as upper
    from nstar s
), units as (
    select r.variant_key, r.unit, count(r.value) filter (where r.value <= b.q) as b, count(r.value) as c
    from replies r join bounds b using (variant_key) group by 1, 2
)
select b.variant_key, jsonb_build_object('n', count(*), 'sum', sum(u.b), 'sum_squares', sum(u.b * u.b),
           'den_sum', sum(u.c), 'den_sum_squares', sum(u.c * u.c), 'cross_sum', sum(u.b * u.c),
           'quantile_level', 0.95, 'quantile_n', b.n, 'quantile_nstar', b.nstar, 'quantile', b.q,
           'quantile_lower', b.lower, 'quantile_upper', b.upper) as moments
from bounds b join units u using (variant_key)
group by b.variant_key, b.n, b.nstar, b.q, b.lower, b.upper;
select h.moments->'quantile_n' as replies, h.moments->'quantile_nstar' as nstar from hand h order by variant_key;
select abs(r.p_value - (t->>'p_value')::double precision) < 1e-12 as same_p_value,
       abs(r.ci_lower - (t->>'ci_lower')::double precision) < 1e-12 as same_ci_lower,
       abs(r.chance_to_beat_control - (t->>'chance_to_beat_control')::double precision) < 1e-12 as same_chance
from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile_event', quantile => 0.95) r,
     lateral analytics.compare_groups((select moments from hand where variant_key = 'control'),
                                      (select moments from hand where variant_key = 'fast'), 'quantile_event') t
where not r.is_control;

-- a quantile of the units' values (each unit's total; the 7th units' 0 included, or left out with
-- quantile_ignore_zeros): the median
select r.variant_key, round(r.value::numeric, 2) as median_total, r.value = h.q as is_percentile_cont,
       round(z.value::numeric, 2) as median_total_without_zeros, z.value = h.q_nonzero as without_zeros_is_percentile_cont
from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile', quantile => 0.5) r
join analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile', quantile => 0.5,
                                  quantile_ignore_zeros => true) z using (variant_key)
join (select variant_key, percentile_cont(0.5) within group (order by total) as q,
             percentile_cont(0.5) within group (order by total) filter (where total <> 0) as q_nonzero
      from (select variant_key, unit, coalesce(sum(value), 0) as total from replies group by 1, 2) t group by 1) h using (variant_key)
order by r.is_control desc;

-- in a results page: a quantile goal metric
select m->>'metric' as metric, (m->'results'->1->>'p_value')::double precision
         = (select p_value from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile_event', quantile => 0.95)
            where not is_control) as same_as_experiment_results
from jsonb_array_elements(analytics.experiment_report('reply-speed',
         '[{"metric": "reply_ms", "type": "quantile_event", "quantile": 0.95}]')->'goals') m;

-- spans: the p90 of every chat span's latency, per model
select key from analytics.create_experiment('model-latency', 'Model latency', '[{"key":"large"},{"key":"small"}]');
select status from analytics.start_experiment('model-latency');
select count(*) as assigned from generate_series(1, 200) i, analytics.assign_variant('model-latency', 'chat-' || i) a where a.in_experiment;
select (analytics.ingest_spans(jsonb_agg(jsonb_build_object(
    'trace_id', 'lt-' || a.unit_id || '-' || k, 'span_id', 's', 'name', 'chat', 'operation_type', 'chat',
    'start_time', a.assigned_at + make_interval(mins => k),
    'end_time', a.assigned_at + make_interval(mins => k)
                + make_interval(secs => (case v.key when 'large' then 900 else 500 end + (u.n * 31 + k * 17) % 400) / 1000.0),
    'metadata', jsonb_build_object('unit_id', a.unit_id)))))->>'stored' as stored
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select substr(a.unit_id, 6)::int as n) u
cross join generate_series(1, 3) k
where a.experiment_id = (select id from analytics.ab_experiments where key = 'model-latency');
select r.variant_key, r.units, round(r.value::numeric, 1) as p90_latency_ms, r.value = h.q as is_percentile_cont,
       r.significant
from analytics.experiment_results('model-latency', 'latency_ms', metric_source => 'traces',
                                  metric_type => 'quantile_event', quantile => 0.9) r
join (select v.key as variant_key, percentile_cont(0.9) within group (order by s.duration_ms) as q
      from analytics.ab_experiment_assignments a
      join analytics.ab_experiment_variants v on v.id = a.variant_id
      join analytics.llm_traces s on s.metadata->>'unit_id' = a.unit_id
      where a.experiment_id = (select id from analytics.ab_experiments where key = 'model-latency') group by 1) h
  using (variant_key)
order by r.is_control desc;

-- bad parameters name the argument (22023)
select regress.attempt(stmt) as outcome from (values
  ($$select * from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile')$$),
  ($$select * from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile', quantile => 1.5)$$),
  ($$select * from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'mean', quantile => 0.5)$$),
  ($$select * from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'mean', quantile_ignore_zeros => true)$$),
  ($$select * from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile', quantile => 0.5, cuped => true)$$),
  ($$select * from analytics.experiment_results('model-latency', 'error_rate', metric_source => 'traces', metric_type => 'quantile_event', quantile => 0.9)$$),
  ($$select analytics.experiment_report('reply-speed', '[{"metric": "reply_ms", "type": "quantile_event", "quantile": 0}]')$$)
) v(stmt);

-- too few values for a p99's interval: GrowthBook's "no result" (p = 1, chance 0.5, and why)
select variant_key, p_value, chance_to_beat_control, note
from analytics.experiment_results('model-latency', 'latency_ms', metric_source => 'traces',
                                  metric_type => 'quantile_event', quantile => 0.99)
where not is_control;

-- Bob sees none of it: Alice's experiment is not his
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select regress.attempt($$select * from analytics.experiment_results('reply-speed', 'reply_ms', metric_type => 'quantile_event', quantile => 0.95)$$) as bob_reads_alices_p95;
rollback;

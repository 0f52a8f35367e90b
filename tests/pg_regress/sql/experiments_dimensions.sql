-- Dimension breakdowns (GrowthBook's dimensions): experiment_results(..., dimension => ...) and experiment_report with
-- a dimension. Each value's rows are checked against an independent computation: per-unit values by a plain query,
-- grouped by the value by hand, and the same statistics asked of compare_groups / srm_check / adjust_p_values. The
-- correction covers variants x dimension values (x goal metrics in the report); beyond max_dimensions the rest is
-- merged into '(other)' (left out for quantile metrics), as gbstats' reduce_dimensionality. Sessions as PostgREST runs
-- them (role authenticated + JWT claims), for two users; Alice's rows are committed (Bob must not see them) and removed
-- at the end.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('onboarding', 'Onboarding', '[{"key":"control"},{"key":"guided"},{"key":"video"}]');
select status from analytics.start_experiment('onboarding');
-- 900 units with a country attribute (every 9th without one): DE, US, FR, BR in shrinking numbers
select count(*) as assigned from generate_series(1, 900) i,
       analytics.assign_variant('onboarding', 'user-' || i,
                                case when i % 9 = 0 then null
                                     else jsonb_build_object('country', case when i % 10 < 4 then 'DE' when i % 10 < 7 then 'US'
                                                                             when i % 10 < 9 then 'FR' else 'BR' end, 'plan', 'free') end) a
where a.in_experiment;
-- attributes are kept from the first assignment: a later call with others does not change them
select (analytics.assign_variant('onboarding', 'user-1', '{"country": "JP"}')).stored as again,
       (select attributes from analytics.ab_experiment_assignments where unit_id = 'user-1') as kept;
-- activation events (guided converts more in DE) and a revenue value; every 13th unit has a pre-period purchase (CUPED)
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'activated', 1, a.assigned_at + interval '1 minute'
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select substr(a.unit_id, 6)::int as n) u
where a.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding')
  and (u.n * 7919) % 97 % 10 < case when v.key = 'guided' and a.attributes->>'country' = 'DE' then 7 else 4 end;
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'revenue', 5 + (u.n * 13) % 40 + case v.key when 'video' then 3 else 0 end,
       a.assigned_at + interval '2 minutes'
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select substr(a.unit_id, 6)::int as n) u
where a.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding') and u.n % 3 <> 0;
insert into analytics.ab_experiment_events (unit_id, metric, value, occurred_at)
select a.unit_id, 'revenue', 10 + substr(a.unit_id, 6)::int % 20, a.assigned_at - interval '3 days'
from analytics.ab_experiment_assignments a
where a.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding') and substr(a.unit_id, 6)::int % 13 = 0;

-- by hand: every unit's country and values, and per (country, variant) the moments compare_groups takes
create temp table units on commit drop as
select v.key as variant_key, v.position, coalesce(a.attributes->>'country', '(none)') as country,
       (select count(*) > 0 from analytics.ab_experiment_events e
        where e.unit_id = a.unit_id and e.metric = 'activated' and e.occurred_at >= a.assigned_at)::int::float8 as activated,
       coalesce((select sum(e.value) from analytics.ab_experiment_events e
                 where e.unit_id = a.unit_id and e.metric = 'revenue' and e.occurred_at >= a.assigned_at), 0) as revenue
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
where a.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding');
create temp table hand on commit drop as
with m as (
    select country, variant_key, position, count(*) as n,
           jsonb_build_object('n', count(*), 'sum', sum(activated), 'sum_squares', sum(activated * activated)) as moments
    from units group by 1, 2, 3
)
select t.country, t.variant_key,
       analytics.compare_groups(c.moments, t.moments, 'binomial') as test,
       (select analytics.srm_check(array_agg(x.n::int order by x.position), array_agg(v.weight order by x.position))
        from m x join analytics.ab_experiment_variants v on v.key = x.variant_key
        where x.country = t.country and v.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding')) as srm
from m t join m c on c.country = t.country and c.variant_key = 'control'
where t.variant_key <> 'control';

-- by country: the countries by units, most first, '(none)' for units without the attribute; every figure equals the
-- computation by hand; Holm over all 2 variants x 5 countries together (10 p-values)
select r.dimension, r.variant_key, r.units, round(r.value::numeric, 4) as rate, round(r.effect::numeric, 4) as lift,
       round(r.p_value::numeric, 4) as p, round(r.adjusted_p_value::numeric, 4) as holm, r.significant,
       abs(r.p_value - (h.test->>'p_value')::float8) < 1e-12 and abs(r.effect - (h.test->>'effect')::float8) < 1e-12
           and abs(r.ci_lower - (h.test->>'ci_lower')::float8) < 1e-12
           and abs(r.chance_to_beat_control - (h.test->>'chance_to_beat_control')::float8) < 1e-12 as as_by_hand,
       r.srm_p_value = (h.srm->>'p_value')::float8 as srm_as_by_hand
from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country', correction => 'holm') with ordinality r
left join hand h on h.country = r.dimension and h.variant_key = r.variant_key
order by r.ordinality;
select array_agg(round(a::numeric, 12) order by a) = (
           select array_agg(round(x::numeric, 12) order by x)
           from unnest(analytics.adjust_p_values((select array_agg((test->>'p_value')::float8 order by country, variant_key) from hand), 'holm')) x)
       as holm_over_variants_and_countries
from (select adjusted_p_value as a from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country',
                                                                     correction => 'holm') where not is_control) r;
-- the units in the breakdown add up to the experiment's
select (select sum(units) from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country')) as by_country,
       (select sum(units) from analytics.experiment_results('onboarding', 'activated')) as overall;

-- max_dimensions => 3: the two largest values, then '(other)' with the rest summed (gbstats' reduce_dimensionality);
-- its statistics are those of the merged units, computed by hand
select r.dimension, r.variant_key, r.units, round(r.value::numeric, 4) as rate,
       case when not r.is_control
            then abs(r.p_value - (analytics.compare_groups(c.moments, t.moments, 'binomial')->>'p_value')::float8) < 1e-12 end as as_by_hand
from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country', max_dimensions => 3) with ordinality r
left join lateral (
    select jsonb_build_object('n', count(*), 'sum', sum(activated), 'sum_squares', sum(activated)) as moments
    from units u where u.variant_key = 'control' and (u.country = r.dimension or (r.dimension = '(other)' and u.country not in ('DE', 'US')))
) c on not r.is_control
left join lateral (
    select jsonb_build_object('n', count(*), 'sum', sum(activated), 'sum_squares', sum(activated)) as moments
    from units u where u.variant_key = r.variant_key and (u.country = r.dimension or (r.dimension = '(other)' and u.country not in ('DE', 'US')))
) t on not r.is_control
order by r.ordinality;
-- a quantile metric keeps the largest values and leaves the rest out (order statistics cannot be summed)
select dimension, count(*) as variants, sum(units) as units
from analytics.experiment_results('onboarding', 'revenue', metric_type => 'quantile', quantile => 0.5, dimension => 'attribute.country',
                                  max_dimensions => 2)
group by 1 order by 1;

-- a mean metric with CUPED per country: the same as compare_groups over the moments of the units in that country
select r.dimension, r.variant_key, round(r.effect::numeric, 4) as lift, round(r.variance_reduction::numeric, 4) as variance_reduction,
       abs(r.p_value - (analytics.compare_groups(c.m, t.m, 'mean', cuped => true)->>'p_value')::float8) < 1e-12 as as_by_hand
from analytics.experiment_results('onboarding', 'revenue', metric_type => 'mean', cuped => true, dimension => 'attribute.country') r
cross join lateral (
    select jsonb_object_agg(v.key, jsonb_build_object('n', count, 'sum', sy, 'sum_squares', syy, 'pre_sum', sx, 'pre_sum_squares', sxx,
                                                      'pre_cross_sum', sxy)) as per_variant
    from (select v.key, count(*), sum(y) as sy, sum(y * y) as syy, sum(x) as sx, sum(x * x) as sxx, sum(x * y) as sxy
          from (select a.variant_id, coalesce(a.attributes->>'country', '(none)') as country,
                       coalesce((select sum(e.value) from analytics.ab_experiment_events e where e.unit_id = a.unit_id and e.metric = 'revenue'
                                 and e.occurred_at >= a.assigned_at), 0) as y,
                       coalesce((select sum(e.value) from analytics.ab_experiment_events e where e.unit_id = a.unit_id and e.metric = 'revenue'
                                 and e.occurred_at < a.assigned_at and e.occurred_at >= a.assigned_at - interval '14 days'), 0) as x
                from analytics.ab_experiment_assignments a
                where a.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding')) u
          join analytics.ab_experiment_variants v on v.id = u.variant_id
          where u.country = r.dimension group by v.key) v
) p
cross join lateral (select p.per_variant->'control' as m) c
cross join lateral (select p.per_variant->r.variant_key as m) t
where not r.is_control and r.dimension in ('DE', 'US')
order by 1, 2;

-- by the day of assignment (UTC): units assigned on two days
update analytics.ab_experiment_assignments set assigned_at = timestamptz '2026-11-02 23:30+00'
where experiment_id = (select id from analytics.ab_experiments where key = 'onboarding') and substr(unit_id, 6)::int % 4 = 0;
update analytics.ab_experiment_assignments set assigned_at = timestamptz '2026-11-03 00:30+00'
where experiment_id = (select id from analytics.ab_experiments where key = 'onboarding') and substr(unit_id, 6)::int % 4 <> 0;
select dimension, variant_key, units
from analytics.experiment_results('onboarding', 'activated', dimension => 'assigned_date');

-- by the model of the unit's first span after assignment (a trace dimension), for a trace metric and for an event
-- metric: units whose first chat ran on each model; a unit without spans is in '(none)'
select (analytics.ingest_spans(jsonb_agg(jsonb_build_object(
    'trace_id', 'ob-' || a.unit_id || '-' || k, 'span_id', 's', 'name', 'chat', 'operation_type', 'chat',
    'model', case when k = 1 then case when u.n % 2 = 0 then 'gpt-4o' else 'claude-sonnet' end else 'gpt-4o-mini' end,
    'start_time', a.assigned_at + make_interval(mins => k),
    'end_time', a.assigned_at + make_interval(mins => k) + make_interval(secs => (400 + (u.n * 31 + k * 17) % 300) / 1000.0),
    'cost_usd', 0.001 * (1 + u.n % 5),
    'metadata', jsonb_build_object('unit_id', a.unit_id)))))->>'stored' as stored
from analytics.ab_experiment_assignments a
cross join lateral (select substr(a.unit_id, 6)::int as n) u
cross join generate_series(1, 2) k
where a.experiment_id = (select id from analytics.ab_experiments where key = 'onboarding') and u.n % 5 <> 0;
select dimension, variant_key, units, round(value::numeric, 5) as cost_per_unit
from analytics.experiment_results('onboarding', 'cost_usd', metric_source => 'traces', dimension => 'model');
select dimension, sum(units) as units, (select count(*) from units) as all_units
from analytics.experiment_results('onboarding', 'activated', dimension => 'model')
group by 1 order by 1;

-- experiment_report with a dimension: every metric broken down, one correction over variants x goal metrics x values,
-- the guardrail per value, and the whole experiment's units and sample ratio check at the top
select r->>'dimension' as dimension, r->'variants' as variants, r->'srm' = jsonb_build_object(
           'p_value', (select srm_p_value from analytics.experiment_results('onboarding', 'activated') limit 1),
           'srm', (select srm from analytics.experiment_results('onboarding', 'activated') limit 1)) as srm_of_the_whole,
       (select count(*) from jsonb_array_elements(r->'goals'->0->'results')) as goal_rows,
       (select string_agg(x->>'dimension' || ':' || (x->>'variant_key') || '=' || (x->>'status'), ' ' order by x->>'dimension', x->>'variant_key')
        from jsonb_array_elements(r->'guardrails'->0->'results') x where not (x->>'is_control')::boolean) as guardrail
from analytics.experiment_report('onboarding', '["activated", {"metric": "revenue", "type": "mean"}]',
                                 '[{"metric": "cost_usd", "source": "traces"}]', correction => 'holm',
                                 dimension => 'attribute.country') r;
select (select array_agg(round((x->>'adjusted_p_value')::numeric, 12) order by (x->>'adjusted_p_value')::float8)
        from analytics.experiment_report('onboarding', '["activated", {"metric": "revenue", "type": "mean"}]', correction => 'bh',
                                         dimension => 'attribute.country') r,
             jsonb_array_elements(r->'goals') g, jsonb_array_elements(g->'results') x
        where not (x->>'is_control')::boolean)
     = (select array_agg(round(a::numeric, 12) order by a)
        from unnest(analytics.adjust_p_values(array(
            select p_value from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country') where not is_control
            union all
            select p_value from analytics.experiment_results('onboarding', 'revenue', metric_type => 'mean', dimension => 'attribute.country')
            where not is_control), 'bh')) a) as bh_over_variants_metrics_and_countries;

-- bad input: 22023 naming the argument
select regress.attempt($$select * from analytics.experiment_results('onboarding', 'activated', dimension => 'country')$$) as unknown_dimension,
       regress.attempt($$select * from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.')$$) as empty_attribute,
       regress.attempt($$select * from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country', max_dimensions => 0)$$) as max_dimensions;
select regress.attempt($$select analytics.experiment_report('onboarding', '["activated"]', dimension => 'browser')$$) as report_dimension,
       regress.attempt($$select * from analytics.experiment_results('onboarding', 'cost_usd', metric_source => 'traces', unit_source => 'user', dimension => 'model')$$) as unit_source,
       regress.attempt($$select analytics.assign_variant('onboarding', 'user-9999', '["DE"]')$$) as attributes_not_object;
commit;

-- Bob: Alice's experiment does not exist for him; his own breakdown sees only his units
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select regress.attempt($$select * from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country')$$) as alices_experiment;
select key from analytics.create_experiment('onboarding', 'Bob''s onboarding', '[{"key":"control"},{"key":"guided"}]');
select status from analytics.start_experiment('onboarding');
select count(*) as assigned from generate_series(1, 20) i, analytics.assign_variant('onboarding', 'user-' || i, '{"country": "NL"}') a;
select dimension, sum(units) as units from analytics.experiment_results('onboarding', 'activated', dimension => 'attribute.country') group by 1;
select count(*) as alices_assignments_visible from analytics.ab_experiment_assignments where attributes->>'country' <> 'NL';
rollback;

-- clean up Alice's experiment (its rows were committed above)
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
delete from analytics.llm_traces where trace_id like 'ob-%';
delete from analytics.ab_experiment_events
where unit_id in (select unit_id from analytics.ab_experiment_assignments
                  where experiment_id = (select id from analytics.ab_experiments where key = 'onboarding'));
delete from analytics.ab_experiments where key = 'onboarding';
commit;

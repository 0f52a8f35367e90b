-- Experiments, analysis: metrics from traces, CUPED, the Bayesian and sequential views, planning (sample size, MDE),
-- the pure comparison function, bad input and RLS. Sessions behave like PostgREST: role authenticated + JWT claims.

-- ---- metrics from traces: compare two models on latency, errors, cost and tokens ----------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('model-swap', 'gpt-4o vs mini',
    '[{"key":"gpt-4o","weight":0.5},{"key":"mini","weight":0.5}]');
select status from analytics.start_experiment('model-swap');
select count(*) as assigned from generate_series(1, 400) i, analytics.assign_variant('model-swap', 'visitor-' || i) a where a.in_experiment;
-- two chat spans per unit after assignment, tied to the unit by metadata.unit_id: gpt-4o slower and dearer, mini
-- failing more often; one span before assignment (pre-period, counted only by CUPED), and one span of another
-- experiment that must not count
select (analytics.ingest_spans(jsonb_agg(jsonb_build_object(
    'trace_id', 'tr-' || a.unit_id || '-' || k, 'span_id', 's' || k, 'name', 'chat', 'operation_type', 'chat',
    'model', v.key,
    'start_time', a.assigned_at + make_interval(mins => k),
    'end_time', a.assigned_at + make_interval(mins => k)
                + make_interval(secs => (case v.key when 'gpt-4o' then 1000 + (n % 7) * 10 else 600 + (n % 5) * 10 end) / 1000.0),
    'status', case when k > 0 and n % (case v.key when 'mini' then 10 else 25 end) = 0 then 'error' else 'ok' end,
    'total_tokens', case v.key when 'gpt-4o' then 500 + n % 11 else 450 + n % 13 end,
    'cost_usd', case when k < 0 then 0.004 + (n % 3) * 0.001   -- before assignment: the unit's habit, whatever its variant
                     when v.key = 'gpt-4o' then 0.01 + (n % 3) * 0.001 else 0.002 + (n % 3) * 0.0002 end,
    'metadata', case when k = 3 then jsonb_build_object('unit_id', a.unit_id, 'experiment', 'another-test')
                     else jsonb_build_object('unit_id', a.unit_id, 'experiment', 'model-swap') end))))->>'stored' as stored
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select substr(a.unit_id, 9)::int as n) u
cross join unnest(array[-1440, 1, 2, 3]) k
where a.experiment_id = (select id from analytics.ab_experiments where key = 'model-swap');
select variant_key, units, round(value::numeric, 2) as latency_ms, round(effect::numeric, 4) as lift,
       p_value < 1e-10 as clearly_faster, significant, round(chance_to_beat_control::numeric, 4) as chance_to_beat_control
from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces');
-- the values are those of the spans themselves: per-span mean latency, error share, cost and tokens per unit
with spans as (
    select v.key, s.duration_ms, s.status, s.cost_usd, s.total_tokens, a.unit_id
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_variants v on v.id = a.variant_id
    join analytics.llm_traces s on s.metadata->>'unit_id' = a.unit_id and s.start_time >= a.assigned_at
                               and s.metadata->>'experiment' = 'model-swap'
    where a.experiment_id = (select id from analytics.ab_experiments where key = 'model-swap')
)
select r.metric, r.variant_key, abs(r.value - d.expected) < 1e-9 * greatest(1, abs(d.expected)) as matches_spans
from (select 'latency_ms' as metric, * from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces')
      union all select 'error_rate', * from analytics.experiment_results('model-swap', 'error_rate', metric_source => 'traces')
      union all select 'cost_usd', * from analytics.experiment_results('model-swap', 'cost_usd', metric_source => 'traces')
      union all select 'total_tokens', * from analytics.experiment_results('model-swap', 'total_tokens', metric_source => 'traces')
      union all select 'request_count', * from analytics.experiment_results('model-swap', 'request_count', metric_source => 'traces')) r
join (select key, 'latency_ms' as metric, avg(duration_ms) as expected from spans group by key
      union all select key, 'error_rate', avg((status = 'error')::int) from spans group by key
      union all select key, 'cost_usd', sum(cost_usd) / count(distinct unit_id) from spans group by key
      union all select key, 'total_tokens', sum(total_tokens)::float8 / count(distinct unit_id) from spans group by key
      union all select key, 'request_count', count(*)::float8 / count(distinct unit_id) from spans group by key) d
  on d.key = r.variant_key and d.metric = r.metric
order by 1, 2;
select variant_key, round(value::numeric, 4) as error_rate, round(effect::numeric, 4) as lift, significant,
       round(sequential_p_value::numeric, 4) >= round(p_value::numeric, 4) as sequential_p_not_smaller,
       sequential_ci_lower <= ci_lower and sequential_ci_upper >= ci_upper as sequence_covers_interval
from analytics.experiment_results('model-swap', 'error_rate', metric_source => 'traces');
select variant_key, round(value::numeric, 5) as cost_per_unit, round(effect::numeric, 4) as lift,
       round(chance_to_beat_control::numeric, 4) as chance_cheaper, round(expected_loss::numeric, 4) as expected_loss
from analytics.experiment_results('model-swap', 'cost_usd', metric_source => 'traces', operation_type => 'chat');
-- the same with "higher is better" spelled out: the test is the same, the Bayesian view flips
select variant_key, round(effect::numeric, 4) as lift, round(chance_to_beat_control::numeric, 4) as chance_dearer,
       round(expected_loss::numeric, 4) as expected_loss
from analytics.experiment_results('model-swap', 'cost_usd', metric_source => 'traces', lower_is_better => false);
-- another operation type has no spans: units are there, the ratio is undefined and says so
select variant_key, units, value, p_value, note
from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces', operation_type => 'embeddings');
-- spans may name their unit by session instead: one span for each of ten units, found by unit_source => 'session_id'
select (analytics.ingest_spans(jsonb_agg(jsonb_build_object('trace_id', 'by-session-' || i, 'span_id', 's', 'name', 'chat',
        'session_id', 'visitor-' || i, 'start_time', now() + interval '1 hour'))))->>'stored' as session_spans
from generate_series(1, 10) i;
select sum(units) as units, round(sum(value * units)) as spans_found
from analytics.experiment_results('model-swap', 'request_count', metric_source => 'traces', unit_source => 'session_id');
-- CUPED on a trace metric: the pre-period spans (one a day before assignment) explain part of the variance; the
-- lift is the adjusted difference over the control's unadjusted mean, as GrowthBook (issue #12, item 3)
select variant_key, round(effect::numeric, 4) as lift, variance_reduction > 0 as variance_reduced
from analytics.experiment_results('model-swap', 'cost_usd', metric_source => 'traces', cuped => true, cuped_lookback => '2 days');
commit;

-- ---- CUPED on events: a pre-period value that predicts the outcome narrows the interval -------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('checkout-cta', 'Checkout button', '[{"key":"grey"},{"key":"green"}]');
select status from analytics.start_experiment('checkout-cta');
select count(*) as assigned from generate_series(1, 1000) i, analytics.assign_variant('checkout-cta', 'buyer-' || i) a where a.in_experiment;
-- spend before assignment is habit (i % 17 * 3); after assignment the same habit, noise (i % 5) and +2 for green
insert into analytics.ab_experiment_events (unit_id, metric, value, occurred_at)
select a.unit_id, 'spend', h.habit, a.assigned_at - interval '3 days'
from analytics.ab_experiment_assignments a cross join lateral (select substr(a.unit_id, 7)::int % 17 * 3.0 as habit) h
where a.experiment_id = (select id from analytics.ab_experiments where key = 'checkout-cta');
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'spend',
       substr(a.unit_id, 7)::int % 17 * 3.0 + substr(a.unit_id, 7)::int % 5 + case v.key when 'green' then 2 else 0 end,
       a.assigned_at + interval '1 hour'
from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
where a.experiment_id = (select id from analytics.ab_experiments where key = 'checkout-cta');
select c.variant_key, round(p.effect::numeric, 3) as plain_difference, round(c.effect::numeric, 3) as cuped_difference,
       (c.ci_upper - c.ci_lower) < (p.ci_upper - p.ci_lower) / 3 as cuped_interval_3x_narrower,
       round(c.variance_reduction::numeric, 3) as variance_reduction, p.significant as plain_significant,
       c.significant as cuped_significant
from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', relative => false) p
join analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', relative => false, cuped => true) c
  using (variant_key)
where not c.is_control;
-- without CUPED the pre-period events are not counted at all
select variant_key, round(value::numeric, 3) as spend_per_unit
from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean') order by 1;
-- sequential testing on (GrowthBook's setting): p_value and the interval are the always-valid ones, wider than the
-- fixed-horizon ones, and significance follows them (issue #12, item 5)
-- (a signup for the grey buyers whose number is a multiple of 10 and the green ones' multiple of 6: 10% vs 17%)
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, occurred_at)
select a.experiment_id, a.unit_id, 'signup', a.assigned_at + interval '1 hour'
from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
where a.experiment_id = (select id from analytics.ab_experiments where key = 'checkout-cta')
  and substr(a.unit_id, 7)::int % case v.key when 'grey' then 10 else 6 end = 0;
select f.variant_key, round(f.p_value::numeric, 4) as fixed_p, f.significant as fixed_significant,
       round(s.p_value::numeric, 4) as sequential_p, s.significant as sequential_significant,
       s.p_value = f.sequential_p_value and s.ci_lower = f.sequential_ci_lower and s.ci_upper = f.sequential_ci_upper
           as replaced, (s.ci_upper - s.ci_lower) > (f.ci_upper - f.ci_lower) as wider
from analytics.experiment_results('checkout-cta', 'signup') f
join analytics.experiment_results('checkout-cta', 'signup', sequential => true) s using (variant_key)
where not f.is_control;
select regress.attempt($$select * from analytics.experiment_results('checkout-cta', 'spend', sequential => null)$$) as sequential_null;
-- the prior in experiment_results: the chance to beat control is the posterior's
select f.variant_key, round(f.chance_to_beat_control::numeric, 4) as flat_chance,
       round(p.chance_to_beat_control::numeric, 4) as prior_chance
from analytics.experiment_results('checkout-cta', 'signup') f
join analytics.experiment_results('checkout-cta', 'signup', prior_mean => 0, prior_variance => 0.0025) p using (variant_key)
where not f.is_control;
select regress.attempt($$select * from analytics.experiment_results('checkout-cta', 'signup', prior_variance => -1, prior_mean => 0)$$) as negative_prior_variance;
-- the whole results page in one document: two goal metrics corrected together (Holm over 2 tests: the adjusted
-- p-values are adjust_p_values of the two raw ones), a guardrail that is not corrected and does not fail
with r as (select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "type": "mean"}]',
                                              guardrail_metrics => '[{"metric": "spend", "type": "mean", "lower_is_better": true}]',
                                              correction => 'holm') as doc)
select g->>'metric' as goal, x->>'variant_key' as variant, round((x->>'p_value')::numeric, 4) as p,
       round((x->>'adjusted_p_value')::numeric, 4) as holm_p, x->>'significant' as significant,
       (x->>'ci_lower_adjusted')::float8 <= (x->>'ci_lower')::float8 as wider
from r, jsonb_array_elements(r.doc->'goals') g, jsonb_array_elements(g->'results') x
where not (x->>'is_control')::boolean order by 1;
select round(p::numeric, 4) as holm_of_the_two
from unnest(analytics.adjust_p_values(array(
    select p_value from analytics.experiment_results('checkout-cta', 'signup') where not is_control
    union all
    select p_value from analytics.experiment_results('checkout-cta', 'spend', 'mean') where not is_control), 'holm')) p;
-- a guardrail fails when a variant is significantly worse: with CUPED green's +2 spend is significant, and here more
-- spend is worse
select d->'variants' as variants, d->'srm' as srm, d->'guardrails'->0->>'metric' as guardrail,
       d->'guardrails'->0->'results'->1->>'status' as guardrail_status, d->>'correction' as correction
from (select analytics.experiment_report('checkout-cta', '["signup"]',
        '[{"metric": "spend", "type": "mean", "lower_is_better": true, "cuped": true}]') as d) x;
select regress.attempt(stmt) as bad_report from (values
  ($$select analytics.experiment_report('checkout-cta', '[]')$$),
  ($$select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "typ": "mean"}]')$$),
  ($$select analytics.experiment_report('checkout-cta', '["signup"]', '[{"metric": "spend", "type": "median"}]')$$),
  ($$select analytics.experiment_report('checkout-cta', '["signup"]', correction => 'bonferroni')$$),
  ($$select analytics.experiment_report('no-such-experiment', '["signup"]')$$)
) v(stmt);
commit;

-- ---- pure functions: compare_groups, sample_size, minimum_detectable_effect ---------------------------------------
select jsonb_pretty(jsonb_build_object(k, round(v::numeric, 6))) as compare_binomial
from jsonb_each_text(analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}',
                                              'binomial', relative => false)) e(k, v)
where k in ('effect', 'p_value', 'chance_to_beat_control', 'expected_loss', 'sequential_p_value');
-- a relative lift over a negative control mean has the sign of the change: -1.0 -> -0.8 is +20% (issue #12, item 1)
select round((c->>'effect')::numeric, 6) as lift, round((c->>'chance_to_beat_control')::numeric, 3) as chance
from (select analytics.compare_groups('{"n":100,"sum":-100,"sum_squares":523.1359}', '{"n":100,"sum":-80,"sum_squares":487.1359}', 'mean') as c) x;
-- GrowthBook's informative Gaussian prior on the lift: 100/1000 against 120/1000 with N(0, 0.1²) shrinks the lift of
-- +20% to +6.0% (gbstats 0.8.0: expected 0.0597, chance to win 0.7619); the flat prior keeps the measured lift
select p as prior, round((c->>'effect')::numeric, 4) as lift, round((c->>'posterior_mean')::numeric, 4) as posterior_lift,
       round((c->>'posterior_ci_lower')::numeric, 4) as lower, round((c->>'posterior_ci_upper')::numeric, 4) as upper,
       round((c->>'chance_to_beat_control')::numeric, 4) as chance
from (values ('flat', null::float8, null::float8), ('N(0, 0.01)', 0.0, 0.01)) v(p, m, var),
     lateral (select analytics.compare_groups('{"n":1000,"sum":100,"sum_squares":100}', '{"n":1000,"sum":120,"sum_squares":120}',
                                              'binomial', prior_mean => v.m, prior_variance => v.var) as c) x;
select regress.attempt(stmt) as bad_prior from (values
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1}', '{"n":10,"sum":2,"sum_squares":2}', 'binomial', prior_mean => 0, prior_variance => 0)$$),
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1}', '{"n":10,"sum":2,"sum_squares":2}', 'binomial', prior_mean => 0.1)$$),
  ($$select analytics.compare_groups(null, '{"n":10,"sum":2,"sum_squares":2}')$$)
) v(stmt);
-- power as GrowthBook's calculator (the default) and as statsmodels: 10% baseline, +5% (issue #12, item 7)
select m as method, analytics.sample_size(baseline => 0.10, mde => 0.05, method => m) - 'per_variant_exact' - 'treatment_value' as relative_5pct,
       analytics.sample_size(12.5, 0.03, 'mean', std_dev => 8, variants => 3, method => m) - 'per_variant_exact' - 'treatment_value' as mean_three_variants,
       round((analytics.minimum_detectable_effect(0.10, 59409, method => m)->>'effect')::numeric, 4) as mde_of_59409
from unnest(array['growthbook', 'statsmodels']) m;
select (analytics.sample_size(0.10, 0.02, relative => false, method => 'statsmodels')->>'per_variant')::int as units_per_variant_textbook,
       round((analytics.minimum_detectable_effect(0.10, 3841, relative => false, method => 'statsmodels')->>'effect')::numeric, 4) as mde_back;
select regress.attempt(stmt) as outcome from (values
  ($$select analytics.compare_groups('{"n":10,"sum":11,"sum_squares":11}', '{"n":10,"sum":1,"sum_squares":1}', 'binomial')$$),
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1,"average":3}', '{"n":10,"sum":1,"sum_squares":1}')$$),
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1}', '{"n":10,"sum":1,"sum_squares":1}', 'ratio')$$),
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1}', '{"n":10,"sum":1,"sum_squares":1}', 'median')$$),
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1}', '{"n":10,"sum":1,"sum_squares":1}', cuped => true)$$),
  ($$select analytics.compare_groups('{"n":10,"sum":1,"sum_squares":1}', '{"n":10,"sum":1,"sum_squares":1}', sequential_tuning => 0)$$),
  ($$select analytics.sample_size(12.5, 0.03, 'mean')$$),
  ($$select analytics.sample_size(0.9, 0.2)$$),
  ($$select analytics.sample_size(0.1, 0.02, power => 1)$$),
  ($$select analytics.sample_size(0.1, null)$$),
  ($$select analytics.sample_size(0.1, 0.02, variants => 1)$$),
  ($$select analytics.sample_size(0.1, 0.02, 'ratio')$$),
  ($$select analytics.minimum_detectable_effect(0.1, 1)$$),
  ($$select analytics.minimum_detectable_effect(0.1, 50)$$),
  ($$select analytics.sample_size(0.1, 0.02, method => 'bayes')$$)
) v(stmt);
-- GrowthBook's power calculator through SQL: its published figures (packages/shared/test/power.test.ts), to 5
-- decimals: a mean of 10 with variance 3909.9997749994377, +5%, 400,000 units over 3 variations
select e.engine, round((p->>'power')::numeric, 5) as power, round((p->>'mde')::numeric, 5) as mde,
       round((p->>'units_per_variant')::numeric, 1) as units_per_variant
from (values ('fixed horizon', null::float8), ('sequential 5000', 5000)) e(engine, tuning),
     analytics.power_analysis(10, 0.05, 400000, 'mean', std_dev => sqrt(3909.9997749994377), variants => 3,
                              sequential_tuning => e.tuning) p;
-- an anonymous caller may plan too (a pure function, as sample_size); too few units: no MDE, and why
set role anon;
select p->'mde' as mde, p->>'note' as note from analytics.power_analysis(0.10, 0.05, 40) p;
reset role;
select regress.attempt(stmt) as outcome from (values
  ($$select analytics.power_analysis(0.10, 0.05, 1000, engine => 'bandit')$$),
  ($$select analytics.power_analysis(0.10, 0.05, 1000, engine => 'bayesian', prior_mean => 0.1)$$),
  ($$select analytics.power_analysis(0.10, 0.05, 1000, engine => 'bayesian', sequential_tuning => 5000)$$),
  ($$select analytics.power_analysis(0.10, 0.05, 1000, prior_mean => 0, prior_std_dev => 1)$$),
  ($$select analytics.power_analysis(0.10, 0.05, 1000, sequential_tuning => -1)$$),
  ($$select analytics.power_analysis(0.10, 0.05, 1000, engine => 'bayesian', prior_mean => 0, prior_std_dev => 0)$$),
  ($$select analytics.power_analysis(0.10, 0.05, 3)$$),
  ($$select analytics.power_analysis(0.10, null, 1000)$$),
  ($$select analytics.power_analysis(1.5, 0.05, 1000)$$),
  ($$select analytics.power_analysis(10, 0.05, 1000, 'mean')$$)
) v(stmt);

-- ---- bad parameters of experiment_results ------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select regress.attempt(stmt) as outcome from (values
  ($$select * from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'logs')$$),
  ($$select * from analytics.experiment_results('model-swap', 'latency_p95', metric_source => 'traces')$$),
  ($$select * from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces', unit_source => 'user')$$),
  ($$select * from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces', metric_type => 'mean')$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', cuped => true, cuped_lookback => '-1 day')$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'ratio')$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', sequential_tuning => -5)$$)
) v(stmt);
commit;

-- ---- RLS: Bob neither reads Alice's results nor moves them with spans of his own ----------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select regress.attempt($$select * from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces')$$) as bob_reads_alices_results;
-- Bob's spans name Alice's units and experiment, and are very slow
select (analytics.ingest_spans(jsonb_agg(jsonb_build_object('trace_id', 'bob-' || i, 'span_id', 's', 'name', 'chat',
        'start_time', now() + interval '1 hour', 'end_time', now() + interval '2 hours',
        'metadata', jsonb_build_object('unit_id', 'visitor-' || i, 'experiment', 'model-swap')))))->>'stored' as bob_spans
from generate_series(1, 400) i;
commit;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select variant_key, round(value::numeric, 2) as latency_ms_unchanged
from analytics.experiment_results('model-swap', 'latency_ms', metric_source => 'traces') order by 1;
commit;

-- ---- metric capping (GrowthBook's capping settings): every figure against the capped values computed here --------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- a whale: the first grey buyer spends 10,000 after assignment, which swamps green's +2
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'spend', 10000, a.assigned_at + interval '2 hours'
from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
where a.experiment_id = (select id from analytics.ab_experiments where key = 'checkout-cta') and v.key = 'grey'
order by a.unit_id limit 1;
-- each unit's spend after assignment (y) and in the 14 days before it (x), by hand
create temp table unit_spend on commit drop as
select v.is_control, a.unit_id,
       coalesce(sum(ev.value) filter (where ev.occurred_at >= a.assigned_at), 0)::double precision as y,
       coalesce(sum(ev.value) filter (where ev.occurred_at < a.assigned_at), 0)::double precision as x
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
left join analytics.ab_experiment_events ev
       on ev.unit_id = a.unit_id and ev.metric = 'spend' and (ev.experiment_id = a.experiment_id or ev.experiment_id is null)
      and ev.occurred_at >= a.assigned_at - interval '14 days'
where a.experiment_id = (select id from analytics.ab_experiments where key = 'checkout-cta')
group by v.is_control, a.unit_id;
create temp table caps on commit drop as
select * from (values
    ('absolute', 60::double precision, false, 60::double precision),
    ('percentile', 0.99, false, (select percentile_cont(0.99) within group (order by y) from unit_spend)),
    ('percentile', 0.5, true, (select percentile_cont(0.5) within group (order by y) from unit_spend where y <> 0))
) c(capping, cap_value, ignore_zeros, cap);
-- the moments of the capped values, as compare_groups takes them, per cap and group
create temp table capped_moments on commit drop as
select c.capping, c.cap_value, c.ignore_zeros, u.is_control,
       jsonb_build_object('n', count(*), 'sum', sum(least(u.y, c.cap)), 'sum_squares', sum(least(u.y, c.cap) ^ 2),
                          'pre_sum', sum(least(u.x, c.cap)), 'pre_sum_squares', sum(least(u.x, c.cap) ^ 2),
                          'pre_cross_sum', sum(least(u.x, c.cap) * least(u.y, c.cap))) as m
from caps c cross join unit_spend u
group by 1, 2, 3, 4;
select c.capping, c.cap_value, c.ignore_zeros, round(c.cap::numeric, 6) as cap_by_hand, r.capped_at = c.cap as capped_at_matches, cuped,
       round(r.effect::numeric, 3) as difference, r.significant,
       abs(r.effect - (t->>'effect')::double precision) < 1e-9 and abs(r.p_value - (t->>'p_value')::double precision) < 1e-9
           and abs(r.ci_lower - (t->>'ci_lower')::double precision) < 1e-9
           and abs(r.std_error - (t->>'std_error')::double precision) < 1e-9
           and abs(r.control_risk - (t->>'control_risk')::double precision) < 1e-9
           -- the two risks differ by the effect: E[max(0, d)] - E[max(0, -d)] = E[d]
           and abs(r.control_risk - r.expected_loss - r.effect) < 1e-9 as matches_compare_groups
from caps c cross join (values (false), (true)) k(cuped)
cross join lateral analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', relative => false,
    cuped => k.cuped, capping => c.capping, cap_value => c.cap_value, cap_ignore_zeros => c.ignore_zeros) r
cross join lateral analytics.compare_groups(
    (select m from capped_moments cm where (cm.capping, cm.cap_value, cm.ignore_zeros) = (c.capping, c.cap_value, c.ignore_zeros) and cm.is_control),
    (select m from capped_moments cm where (cm.capping, cm.cap_value, cm.ignore_zeros) = (c.capping, c.cap_value, c.ignore_zeros) and not cm.is_control),
    'mean', false, cuped => k.cuped) t
where not r.is_control
order by 1, 2, 3, cuped;
-- without capping the whale hides green's lift
select round(effect::numeric, 3) as uncapped_difference, significant, capped_at
from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', relative => false) where not is_control;
-- per metric in experiment_report
select x->>'capped_at' as capped_at, x->>'significant' as significant
from (select analytics.experiment_report('checkout-cta', '[{"metric": "spend", "type": "mean", "capping": "absolute", "cap_value": 60}]',
          relative => false) as doc) r, jsonb_array_elements(r.doc->'goals'->0->'results') x
where not (x->>'is_control')::boolean;
-- capping a trace metric (per-unit cost): no unit's capped cost exceeds the cap, so neither does a variant's mean
-- (but for the last bits of a floating-point sum)
select bool_and(value <= capped_at * (1 + 1e-12)) as means_within_cap, count(*) as variants
from analytics.experiment_results('model-swap', 'cost_usd', metric_source => 'traces', capping => 'percentile', cap_value => 0.5);
-- bad capping settings
select regress.attempt(stmt) as outcome from (values
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', capping => 'winsorize', cap_value => 5)$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', capping => 'absolute', cap_value => 5)$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', capping => 'absolute', cap_value => -5)$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', capping => 'absolute')$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', capping => 'absolute', cap_value => 'NaN')$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', capping => 'percentile', cap_value => 99)$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', cap_value => 99)$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'mean', capping => 'absolute', cap_value => 5, cap_ignore_zeros => true)$$),
  ($$select * from analytics.experiment_results('checkout-cta', 'spend', metric_type => 'quantile', quantile => 0.5, capping => 'absolute', cap_value => 5)$$),
  ($$select analytics.experiment_report('checkout-cta', '[{"metric": "spend", "type": "mean", "capping": "absolute", "cap_value": "lots"}]')$$)
) v(stmt);
commit;

-- ---- CUPED of a ratio metric (gbstats' RegressionAdjustedRatioStatistic, GrowthBook's main branch): latency per
-- span with the unit's spans in the lookback before assignment as covariate. The figures equal compare_groups over
-- the ten sums computed by hand from each unit's (y, d, x, e): latency and spans after and before its assignment
-- (the statistics themselves are checked against GrowthBook's published case in crates/analytics-core) --------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('prompt-cache', 'Prompt caching', '[{"key":"off"},{"key":"on"}]');
select status from analytics.start_experiment('prompt-cache');
select count(*) as assigned from generate_series(1, 300) i, analytics.assign_variant('prompt-cache', 'app-' || i) a where a.in_experiment;
-- each unit has its own speed (slow units stay slow): 1-4 spans in the week before its assignment and 1-4 after;
-- with caching on, spans after assignment are 8% quicker
select (analytics.ingest_spans(jsonb_agg(jsonb_build_object(
    'trace_id', 'pc-' || a.unit_id || '-' || k, 'span_id', 's', 'name', 'chat', 'operation_type', 'chat',
    'start_time', a.assigned_at + make_interval(hours => case when k <= 4 then -24 * k else k end),
    'end_time', a.assigned_at + make_interval(hours => case when k <= 4 then -24 * k else k end)
                + make_interval(secs => (300 + (u.n * 37) % 900 + (u.n * k * 13) % 120)
                                        * case when k > 4 and v.key = 'on' then 0.92 else 1 end / 1000.0),
    'metadata', jsonb_build_object('unit_id', a.unit_id)))))->>'stored' as stored
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select substr(a.unit_id, 5)::int as n) u
cross join generate_series(1, 8) k
where a.experiment_id = (select id from analytics.ab_experiments where key = 'prompt-cache')
  and (k <= 4 and k <= 1 + u.n % 4 or k > 4 and k - 4 <= 1 + (u.n * 3) % 4);
create temp table ratio_units on commit drop as
select v.key as variant_key,
       coalesce(sum(s.duration_ms) filter (where s.start_time >= a.assigned_at), 0) as y,
       count(s.duration_ms) filter (where s.start_time >= a.assigned_at)::float8 as d,
       coalesce(sum(s.duration_ms) filter (where s.start_time < a.assigned_at), 0) as x,
       count(s.duration_ms) filter (where s.start_time < a.assigned_at)::float8 as e
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
left join analytics.llm_traces s on s.metadata->>'unit_id' = a.unit_id and s.start_time >= a.assigned_at - interval '14 days'
where a.experiment_id = (select id from analytics.ab_experiments where key = 'prompt-cache')
group by a.id, v.key;
create temp table ratio_hand on commit drop as
select variant_key, jsonb_build_object('n', count(*), 'sum', sum(y), 'sum_squares', sum(y * y), 'den_sum', sum(d),
           'den_sum_squares', sum(d * d), 'cross_sum', sum(y * d), 'pre_sum', sum(x), 'pre_sum_squares', sum(x * x),
           'pre_cross_sum', sum(x * y), 'pre_den_sum', sum(e), 'pre_den_sum_squares', sum(e * e),
           'pre_den_cross_sum', sum(e * d), 'pre_ratio_cross_sum', sum(x * e), 'post_num_pre_den_sum', sum(y * e),
           'pre_num_post_den_sum', sum(x * d)) as m
from ratio_units group by 1;
select r.variant_key, r.cuped, round(r.effect::numeric, 4) as lift, round(r.std_error::numeric, 5) as std_error,
       round(r.p_value::numeric, 4) as p, r.significant, round(r.variance_reduction::numeric, 3) as variance_reduction,
       abs(r.effect - (h->>'effect')::float8) < 1e-12 and abs(r.std_error - (h->>'std_error')::float8) < 1e-12
           and abs(r.p_value - (h->>'p_value')::float8) < 1e-12 as as_by_hand
from (select false as cuped, * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces')
      union all
      select true, * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', cuped => true)) r
cross join lateral (select analytics.compare_groups((select m from ratio_hand where variant_key = 'off'),
                                                   (select m from ratio_hand where variant_key = 'on'),
                                                   'ratio', cuped => r.cuped, lower_is_better => true) as h) x
where not r.is_control
order by r.cuped;
-- capping a ratio metric caps its numerator (each unit's total latency, as GrowthBook applies the numerator metric's
-- capping; the spans are not capped), with CUPED's pre-period numerator capped alike: as compare_groups over the sums
-- of the capped values, absolute and at the 90th percentile of every unit's total
with caps(capping, cap) as (
    values ('absolute', 2000::float8), ('percentile', (select percentile_cont(0.9) within group (order by y) from ratio_units))
), capped as (
    select c.capping, u.variant_key,
           jsonb_build_object('n', count(*), 'sum', sum(least(y, c.cap)), 'sum_squares', sum(least(y, c.cap) ^ 2), 'den_sum', sum(d),
               'den_sum_squares', sum(d * d), 'cross_sum', sum(least(y, c.cap) * d), 'pre_sum', sum(least(x, c.cap)),
               'pre_sum_squares', sum(least(x, c.cap) ^ 2), 'pre_cross_sum', sum(least(x, c.cap) * least(y, c.cap)),
               'pre_den_sum', sum(e), 'pre_den_sum_squares', sum(e * e), 'pre_den_cross_sum', sum(e * d),
               'pre_ratio_cross_sum', sum(least(x, c.cap) * e), 'post_num_pre_den_sum', sum(least(y, c.cap) * e),
               'pre_num_post_den_sum', sum(least(x, c.cap) * d)) as m
    from ratio_units u cross join caps c
    group by 1, 2
)
select r.capping, round(r.capped_at::numeric, 1) as capped_at, abs(r.capped_at - (select cap from caps where caps.capping = r.capping)) <= 1e-9 * r.capped_at as cap_as_by_hand,
       round(r.effect::numeric, 4) as lift,
       abs(r.p_value - (analytics.compare_groups(
           (select m from capped where capped.variant_key = 'off' and capped.capping = r.capping),
           (select m from capped where capped.variant_key = 'on' and capped.capping = r.capping),
           'ratio', cuped => true, lower_is_better => true)->>'p_value')::float8) < 1e-12 as as_by_hand
from (select 'absolute' as capping, * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', cuped => true,
                                                                          capping => 'absolute', cap_value => 2000)
      union all
      select 'percentile', * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', cuped => true,
                                                               capping => 'percentile', cap_value => 0.9)) r
where not r.is_control
order by 1;
-- absolute, and in experiment_report
select round(effect::numeric, 2) as difference_ms, round(p_value::numeric, 4) as p
from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', cuped => true, relative => false)
where not is_control;
select x->>'variance_reduction' is not null as reduced, x->>'significant' as significant
from (select analytics.experiment_report('prompt-cache', '[{"metric": "latency_ms", "source": "traces", "cuped": true}]') as doc) r,
     jsonb_array_elements(r.doc->'goals'->0->'results') x
where not (x->>'is_control')::boolean;
-- one-sided tests (GrowthBook's one-sided t-tests): "caching makes it quicker" is alternative => 'less'; with the
-- effect negative its p-value is half the two-sided one and 'greater' has the rest (the t distribution is
-- symmetric); the interval is open at one end (NULL), and the sequential view is one-sided too
select r.alternative, abs(r.p_value - case r.alternative when 'less' then t.p_value / 2 else 1 - t.p_value / 2 end) < 1e-12 as p_from_two_sided,
       r.ci_lower is null as open_below, r.ci_upper is null as open_above, r.significant,
       (r.sequential_ci_lower is null) = (r.ci_lower is null) and (r.sequential_ci_upper is null) = (r.ci_upper is null) as sequential_one_sided
from (select 'less' as alternative, * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', alternative => 'less')
      union all
      select 'greater', * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', alternative => 'greater')) r
cross join (select p_value from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces') where not is_control) t
where not r.is_control
order by 1;
select r.doc->>'alternative' as alternative, x->>'ci_lower' as ci_lower, x->>'significant' as significant
from (select analytics.experiment_report('prompt-cache', '[{"metric": "latency_ms", "source": "traces", "cuped": true}]',
                                         alternative => 'less') as doc) r,
     jsonb_array_elements(r.doc->'goals'->0->'results') x
where not (x->>'is_control')::boolean;
-- a one-sided test's adjusted interval (GrowthBook's ciAdjusted widens only when both ends move out, so never an
-- open interval): the interval itself, or the whole line when the corrected p-value is 1 (here: b and c convert less
-- than a, 'greater' has p near 1, Holm over the two makes it 1; 'less' is significant and keeps its interval)
select key from analytics.create_experiment('one-sided-adjusted', 'One-sided, corrected', '[{"key":"a"},{"key":"b"},{"key":"c"}]');
select status from analytics.start_experiment('one-sided-adjusted');
select count(*) as assigned from generate_series(1, 3000) i, analytics.assign_variant('one-sided-adjusted', 'os' || i) a;
insert into analytics.ab_experiment_events (unit_id, metric, value, occurred_at)
select a.unit_id, 'signup', 1, now() + interval '1 minute'
from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
where v.experiment_id = (select id from analytics.ab_experiments where key = 'one-sided-adjusted')
  and substr(a.unit_id, 3)::int % 10 < case v.key when 'a' then 5 when 'b' then 2 else 4 end;
select r.alternative, r.variant_key, r.adjusted_p_value = 1 as corrected_p_is_1,
       case when r.adjusted_p_value = 1 then r.ci_lower_adjusted = '-Infinity' and r.ci_upper_adjusted = 'Infinity'
            else r.ci_lower_adjusted is not distinct from r.ci_lower and r.ci_upper_adjusted is not distinct from r.ci_upper
       end as adjusted_as_growthbook,
       (d.x->>'ci_lower_adjusted')::double precision is not distinct from r.ci_lower_adjusted
       and (d.x->>'ci_upper_adjusted')::double precision is not distinct from r.ci_upper_adjusted as report_agrees
from (select 'greater' as alternative, * from analytics.experiment_results('one-sided-adjusted', 'signup', alternative => 'greater', correction => 'holm')
      union all
      select 'less', * from analytics.experiment_results('one-sided-adjusted', 'signup', alternative => 'less', correction => 'holm')) r
join lateral (select x from jsonb_array_elements(analytics.experiment_report('one-sided-adjusted', '["signup"]', alternative => r.alternative,
                                                                            correction => 'holm')->'goals'->0->'results') x
              where x->>'variant_key' = r.variant_key) d on true
where not r.is_control
order by 1, 2;
select regress.attempt($$select * from analytics.experiment_results('prompt-cache', 'latency_ms', metric_source => 'traces', alternative => 'lower')$$) as bad_alternative,
       regress.attempt($$select analytics.compare_groups('{"n": 10, "sum": 5, "sum_squares": 5}', '{"n": 10, "sum": 6, "sum_squares": 6}', 'binomial', alternative => null)$$) as null_alternative;
rollback;

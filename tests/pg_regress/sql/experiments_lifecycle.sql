-- Experiment lifecycle and sticky assignment, as PostgREST calls them with the owning account's JWT.
\pset null '·'
-- start without experiments (earlier tests in this database left some)
delete from analytics.ab_experiments;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key, status, phase, hash_version, coverage
from analytics.create_experiment('checkout-button', 'Green checkout button',
    '[{"key":"control","name":"Blue","weight":0.5,"payload":{"color":"blue"}},
      {"key":"green","name":"Green","weight":0.5,"payload":{"color":"green"}}]',
    hypothesis => 'A green button converts better');
select key, position, weight, is_control, payload from analytics.ab_experiment_variants order by position;

-- not running yet: nobody is in the experiment
select in_experiment, variant_key, stored from analytics.assign_variant('checkout-button', 'visitor-1');
select status, started_at is not null as started from analytics.start_experiment('checkout-button');

-- assignment: GrowthBook's hash of the unit picks the variant; the first assignment is stored
select unit, a.in_experiment, a.variant_key, a.variation, a.payload, a.hash_value,
       a.hash_value = analytics.gb_hash('checkout-button', unit, 2) as growthbook_hash, a.stored
from unnest(array['visitor-1', 'visitor-2', 'visitor-3', 'visitor-4']) unit, analytics.assign_variant('checkout-button', unit) a;
select count(*) as stored_assignments from analytics.ab_experiment_assignments;
-- peek does not store
select variant_key, stored from analytics.peek_variant('checkout-button', 'visitor-99');
select count(*) as stored_assignments from analytics.ab_experiment_assignments;

-- sticky: weights cannot change under running units without a new phase...
select regress.attempt($$select analytics.update_experiment_variants('checkout-button', '[{"key":"control","weight":0},{"key":"green","weight":1}]')$$) as change_weights;
-- ...and a stored unit keeps its variant when the weights change within the phase (here, written directly):
-- visitor-3 stays on control although all traffic now goes to green; a new visitor gets green
update analytics.ab_experiment_variants set weight = case when key = 'green' then 1 else 0 end;
select unit, a.variant_key, a.stored from unnest(array['visitor-3', 'visitor-5']) unit, analytics.assign_variant('checkout-button', unit) a;
-- a new phase assigns afresh: with all traffic on green, visitor-3 is green in phase 1
select phase from analytics.update_experiment_variants('checkout-button', '[{"key":"control","weight":0},{"key":"green","weight":1}]', new_phase => true);
select unit, a.variant_key, a.phase, a.stored from unnest(array['visitor-3']) unit, analytics.assign_variant('checkout-button', unit) a;
select phase, count(*) as assignments from analytics.ab_experiment_assignments group by phase order by phase;

-- pause: nobody is in; complete with a winner: everybody gets the winner
select status from analytics.pause_experiment('checkout-button');
select in_experiment, variant_key from analytics.assign_variant('checkout-button', 'visitor-1');
select status, winner_variant_key, ended_at is not null as ended from analytics.complete_experiment('checkout-button', winner => 'green');
select in_experiment, variant_key, payload from analytics.assign_variant('checkout-button', 'visitor-7');

-- illegal transitions and bad input: SQLSTATE and message
select regress.attempt(stmt) as outcome from (values
  ($$select analytics.start_experiment('checkout-button')$$),
  ($$select analytics.pause_experiment('checkout-button')$$),
  ($$select analytics.update_experiment_variants('checkout-button', '[{"key":"a"},{"key":"b"}]', new_phase => true)$$),
  ($$select analytics.complete_experiment('checkout-button')$$),
  ($$select analytics.start_experiment('no-such-experiment')$$),
  ($$select analytics.assign_variant('checkout-button', '')$$),
  ($$select analytics.create_experiment('checkout-button', 'again', '[{"key":"a"},{"key":"b"}]')$$),
  ($$select analytics.create_experiment('x1', 'x', '[{"key":"only"}]')$$),
  ($$select analytics.create_experiment('x2', 'x', '[{"key":"a","weight":0.5},{"key":"b","weight":0.4}]')$$),
  ($$select analytics.create_experiment('x3', 'x', '[{"key":"a","weight":-0.5},{"key":"b","weight":1.5}]')$$),
  ($$select analytics.create_experiment('x4', 'x', '[{"key":"a","is_control":true},{"key":"b","is_control":true}]')$$),
  ($$select analytics.create_experiment('x5', 'x', '[{"key":"a"},{"key":"a"}]')$$),
  ($$select analytics.create_experiment('x6', 'x', '[{"key":"a","weight":1},{"key":"b"}]')$$),
  ($$select analytics.create_experiment('x7', 'x', '[{"key":"a"},{"key":"b"}]', coverage => 1.5)$$),
  ($$select analytics.create_experiment('x8', 'x', '[{"key":"a"},{"key":"b"}]', hash_version => 3)$$),
  ($$select analytics.create_experiment('x9', 'x', '{"key":"a"}')$$)
) v(stmt);
select status from analytics.archive_experiment('checkout-button');
-- none flagged: the first variant is the control; no weights: equal weights
select key, status from analytics.create_experiment('three-way', 'Three prompts', '[{"key":"a"},{"key":"b"},{"key":"c"}]');
select v.key, v.weight, v.is_control from analytics.ab_experiment_variants v
join analytics.ab_experiments e on e.id = v.experiment_id
where e.key = 'three-way'
order by v.position;
commit;

-- Bob cannot see, start or assign Alice's experiments: they do not exist for him
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select regress.attempt($$select analytics.start_experiment('three-way')$$) as start,
       regress.attempt($$select analytics.assign_variant('three-way', 'visitor-1')$$) as assign,
       (select count(*) from analytics.ab_experiments) as experiments_visible,
       (select count(*) from analytics.ab_experiment_assignments) as assignments_visible;
-- and his own experiment may use the same key
select key from analytics.create_experiment('three-way', 'Bob''s test', '[{"key":"a"},{"key":"b"}]');
commit;

-- ---- results: every variant against the control --------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('pricing-copy', 'Pricing page copy',
    '[{"key":"control","weight":0.34},{"key":"short","weight":0.33},{"key":"long","weight":0.33}]');
select status from analytics.start_experiment('pricing-copy');
select count(*) as assigned from generate_series(1, 3000) i, analytics.assign_variant('pricing-copy', 'u' || i) a where a.in_experiment;
-- deterministic outcomes: every 8th unit of control converts, every 6th of "short", every 8th of "long"; revenue
-- per purchase 10; one event before assignment that must not count
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'purchase', 10, a.assigned_at + interval '1 minute'
from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
join analytics.ab_experiments x on x.id = a.experiment_id and x.key = 'pricing-copy'
where substr(a.unit_id, 2)::int % (case v.key when 'short' then 6 else 8 end) = 0;
insert into analytics.ab_experiment_events (experiment_id, unit_id, metric, value, occurred_at)
select a.experiment_id, a.unit_id, 'purchase', 1000, a.assigned_at - interval '1 day'
from analytics.ab_experiment_assignments a join analytics.ab_experiments x on x.id = a.experiment_id and x.key = 'pricing-copy'
where a.unit_id = 'u1';
select variant_key, is_control, units, round(value::numeric, 4) as rate, round(effect::numeric, 4) as lift,
       round(p_value::numeric, 4) as p, round(adjusted_p_value::numeric, 4) as holm_p, significant, srm
from analytics.experiment_results('pricing-copy', 'purchase', correction => 'holm');
-- the Holm interval widens with the corrected p-value, as GrowthBook's ciAdjusted (issue #12, item 6); without a
-- correction (GrowthBook's default) the adjusted p-value and interval are the plain ones
select h.variant_key, round(h.ci_lower::numeric, 4) as ci_lower, round(h.ci_upper::numeric, 4) as ci_upper,
       round(h.ci_lower_adjusted::numeric, 4) as holm_ci_lower, round(h.ci_upper_adjusted::numeric, 4) as holm_ci_upper,
       n.adjusted_p_value = n.p_value and n.ci_lower_adjusted = n.ci_lower and n.ci_upper_adjusted = n.ci_upper
           as none_is_plain
from analytics.experiment_results('pricing-copy', 'purchase', correction => 'holm') h
join analytics.experiment_results('pricing-copy', 'purchase') n using (variant_key)
where not h.is_control order by 1;
-- experiment_report with one goal metric gives experiment_results' Holm correction, variant by variant
select x->>'variant_key' as variant, (x->>'adjusted_p_value')::float8 = r.adjusted_p_value as same_holm_p,
       (x->>'ci_lower_adjusted')::float8 = r.ci_lower_adjusted and (x->>'ci_upper_adjusted')::float8 = r.ci_upper_adjusted
           as same_interval
from jsonb_array_elements(analytics.experiment_report('pricing-copy', '["purchase"]', correction => 'holm')->'goals'->0->'results') x
join analytics.experiment_results('pricing-copy', 'purchase', correction => 'holm') r on r.variant_key = x->>'variant_key'
where not r.is_control order by 1;
-- the same numbers as compare_groups gives on the counts (GrowthBook's binomial t-test)
select r.variant_key, r.p_value = (analytics.compare_groups(jsonb_build_object('n', c.n, 'sum', c.x, 'sum_squares', c.x),
                                                             jsonb_build_object('n', t.n, 'sum', t.x, 'sum_squares', t.x),
                                                             'binomial')->>'p_value')::float8 as same_p
from analytics.experiment_results('pricing-copy', 'purchase') r,
     lateral (select count(*) n, count(*) filter (where substr(a.unit_id, 2)::int % 8 = 0) x
              from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
              where v.key = 'control' and v.experiment_id = (select id from analytics.ab_experiments where key = 'pricing-copy')) c,
     lateral (select count(*) n, count(*) filter (where substr(a.unit_id, 2)::int % (case r.variant_key when 'short' then 6 else 8 end) = 0) x
              from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
              where v.key = r.variant_key and v.experiment_id = (select id from analytics.ab_experiments where key = 'pricing-copy')) t
where not r.is_control;
-- revenue per unit (mean metric), as a difference
select variant_key, round(value::numeric, 4) as revenue_per_unit, round(effect::numeric, 4) as difference,
       round(ci_lower::numeric, 4) as ci_lower, round(ci_upper::numeric, 4) as ci_upper, significant
from analytics.experiment_results('pricing-copy', 'purchase', metric_type => 'mean', relative => false, correction => 'bh');
-- a broken split shows as a sample ratio mismatch
delete from analytics.ab_experiment_assignments a using analytics.ab_experiment_variants v, analytics.ab_experiments x
where v.id = a.variant_id and x.id = a.experiment_id and x.key = 'pricing-copy' and v.key = 'long'
  and substr(a.unit_id, 2)::int % 3 = 0;
select variant_key, units, round(srm_p_value::numeric, 6) as srm_p, srm from analytics.experiment_results('pricing-copy', 'purchase');
select regress.attempt(stmt) as outcome from (values
  ($$select * from analytics.experiment_results('pricing-copy', 'purchase', metric_type => 'median')$$),
  ($$select * from analytics.experiment_results('pricing-copy', 'purchase', correction => 'bonferroni')$$),
  ($$select * from analytics.experiment_results('pricing-copy', null)$$),
  ($$select * from analytics.experiment_results('nope', 'purchase')$$)
) v(stmt);
commit;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select regress.attempt($$select * from analytics.experiment_results('pricing-copy', 'purchase')$$) as bob_reads_alices_results;
commit;

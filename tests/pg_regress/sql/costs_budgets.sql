-- LLM costs (sql/044_costs.sql) and budgets (sql/045_budgets.sql): the built-in price list and owner overrides,
-- reasoning tokens, recomputation when prices change, budgets with thresholds fired once per period, and
-- check_budget's HTTP 429 — each for two owners who cannot see each other's prices, spans, budgets or alerts.
\pset null '·'
set timezone = 'UTC';
delete from analytics.budgets;
delete from analytics.model_prices;
delete from analytics.llm_traces;

-- the built-in list: every provider the docs promise, prices per million tokens
select provider, count(*) > 0 as listed, bool_and(input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0) as sane
from analytics.builtin_model_prices() group by provider order by provider;
select model, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, cache_write_usd_per_mtok
from analytics.builtin_model_prices() where model in ('gpt-4o-mini', 'claude-sonnet-4-5', 'gemini-2.5-flash') order by model;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- Alice: no prices of her own, so the built-in list prices her spans; a cost she sends is kept
select analytics.ingest_spans($$[
  {"trace_id":"c1","span_id":"mini","name":"chat","start_time":"2026-12-01T10:00:00Z","model":"openai/gpt-4o-mini",
   "input_tokens":1000000,"cache_read_tokens":400000,"output_tokens":100000},
  {"trace_id":"c1","span_id":"o3","name":"chat","start_time":"2026-12-01T10:00:01Z","model":"o3",
   "input_tokens":0,"output_tokens":1000000,"reasoning_tokens":900000},
  {"trace_id":"c1","span_id":"sent","name":"chat","start_time":"2026-12-01T10:00:02Z","model":"gpt-4o",
   "input_tokens":1000,"output_tokens":1000,"cost_usd":0.5},
  {"trace_id":"c1","span_id":"own","name":"chat","start_time":"2026-12-01T10:00:03Z","model":"my-finetune",
   "input_tokens":1000}
]$$::jsonb) ->> 'stored' as stored;
select span_id, cost_usd, cost_computed from analytics.llm_traces order by span_id;
-- her own prices: a reasoning price for o3 and a price for her fine-tune; model_price says which applies
insert into analytics.model_prices (model, input_usd_per_mtok, output_usd_per_mtok, reasoning_usd_per_mtok)
values ('o3', 2, 8, 4), ('my-finetune', 1, 1, null);
select origin, price_model, input_usd_per_mtok, output_usd_per_mtok, reasoning_usd_per_mtok from analytics.model_price('o3');
select origin, input_usd_per_mtok, cache_read_usd_per_mtok from analytics.model_price('GPT-4o-mini', 'azure');
select count(*) as no_price from analytics.model_price('nobody-knows');
-- recomputation: computed and missing costs follow the new prices; the sent one is kept unless asked
select * from analytics.recompute_costs('2026-12-01', '2026-12-02');
select span_id, cost_usd, cost_computed from analytics.llm_traces order by span_id;
select spans_examined, spans_updated from analytics.recompute_costs('2026-12-01', '2026-12-02', model => 'gpt-4o', include_sent => true);
select span_id, cost_usd, cost_computed from analytics.llm_traces where span_id = 'sent';
-- a re-send without a cost keeps the stored cost and how it was obtained; one with a cost replaces both
select analytics.ingest_spans('[{"trace_id":"c1","span_id":"own","name":"chat again","start_time":"2026-12-01T10:00:03Z"}]') ->> 'stored' as resent;
select analytics.ingest_spans('[{"trace_id":"c1","span_id":"o3","name":"chat","start_time":"2026-12-01T10:00:01Z","cost_usd":1.25}]') ->> 'stored' as resent;
select span_id, name, cost_usd, cost_computed from analytics.llm_traces where span_id in ('own', 'o3') order by span_id;
-- a sent cost is not replaced by one computed for a re-send that carries tokens but no cost
select analytics.ingest_spans('[{"trace_id":"c1","span_id":"paid","name":"chat","start_time":"2026-12-01T10:00:04Z","model":"gpt-4o","input_tokens":10,"cost_usd":0.7}]') ->> 'stored' as sent;
select analytics.ingest_spans('[{"trace_id":"c1","span_id":"paid","name":"chat","start_time":"2026-12-01T10:00:04Z","model":"gpt-4o","input_tokens":2000,"output_tokens":100}]') ->> 'stored' as resent;
select span_id, input_tokens, cost_usd, cost_computed from analytics.llm_traces where span_id = 'paid';
delete from analytics.llm_traces where span_id = 'paid';
-- bad input names its field
select regress.attempt($$select * from analytics.recompute_costs('2026-12-02', '2026-12-01')$$) as backwards,
       regress.attempt($$select * from analytics.recompute_costs(null, '2026-12-01')$$) as no_from,
       regress.attempt($$select * from analytics.model_price(null)$$) as no_model,
       regress.attempt($$insert into analytics.model_prices (model, input_usd_per_mtok, output_usd_per_mtok, reasoning_usd_per_mtok) values ('x', 1, 1, -1)$$) as negative;
commit;

-- the setting analytics.builtin_prices = off: only owner prices apply
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
set local analytics.builtin_prices = off;
select analytics.ingest_spans('[{"trace_id":"c2","span_id":"x","name":"chat","start_time":"2026-12-01T11:00:00Z","model":"gpt-4o","input_tokens":10}]') ->> 'stored' as stored;
select span_id, cost_usd, cost_computed from analytics.llm_traces where trace_id = 'c2';
select count(*) as builtin_off from analytics.model_price('gpt-4o');
rollback;

-- Bob: sees none of Alice's prices or spans; recomputing touches only his (none)
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select (select count(*) from analytics.model_prices) as prices, (select count(*) from analytics.llm_traces) as spans;
select origin, input_usd_per_mtok from analytics.model_price('o3');
select spans_examined from analytics.recompute_costs('2026-01-01', '2027-01-01', include_sent => true);
-- naming Alice does not lend him her prices
select origin from analytics.model_price('my-finetune', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa');
commit;
select span_id, cost_usd from analytics.llm_traces where span_id = 'sent';

-- ---- budgets --------------------------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
insert into analytics.budgets (key, amount_usd, period, hard) values ('monthly', 10, 'month', true);
insert into analytics.budgets (key, amount_usd, period, model, thresholds) values ('mini-daily', 0.015, 'day', 'gpt-4o*', '{80}');
select regress.attempt($$insert into analytics.budgets (key, amount_usd, period) values ('w', 1, 'week')$$) as period,
       regress.attempt($$insert into analytics.budgets (key, amount_usd) values ('z', 0)$$) as amount,
       regress.attempt($$insert into analytics.budgets (key, amount_usd, thresholds) values ('t', 1, '{0}')$$) as thresholds,
       regress.attempt($$insert into analytics.budgets (key, amount_usd) values ('Bad Key', 1)$$) as key;
-- December 1st: the spans above (10:00); status at 12:00 on that day (a budget's model matches the model as stored:
-- 'openai/gpt-4o-mini' is not gpt-4o*)
-- (sums of double precision: rounded, their last bits depend on the order the rows are added in)
select budget_key, period_start, period_end, round(spent_usd::numeric, 12) as spent_usd,
       round(remaining_usd::numeric, 12) as remaining_usd, round(used_percent::numeric, 2) as used_percent,
       round(projected_usd::numeric, 4) as projected_usd, exceeded, thresholds_crossed
from analytics.budget_status('2026-12-01 12:00+00');
-- the gpt-4o* day budget crossed 80 %: one alert, once
select budget_key, period_start, threshold, spent_usd from analytics.evaluate_budgets('2026-12-01 12:00+00');
select count(*) as again from analytics.evaluate_budgets('2026-12-01 13:00+00');
-- the next day is a new period: nothing spent yet, nothing fires; spending again fires again for that day
select count(*) as next_day from analytics.evaluate_budgets('2026-12-02 12:00+00');
select analytics.ingest_spans('[{"trace_id":"c3","span_id":"m","name":"chat","start_time":"2026-12-02T12:30:00Z","model":"gpt-4o-mini","input_tokens":2000000}]') ->> 'stored' as stored;
select budget_key, period_start, threshold from analytics.evaluate_budgets('2026-12-02 13:00+00');
select budget_key, period_start, threshold from analytics.budget_alerts order by period_start, budget_key, threshold;
commit;

-- check_budget (now): under the hard budget it answers; spent, it raises PostgREST's 429
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
delete from analytics.budgets where key = 'mini-daily';
select analytics.check_budget('gpt-4o') -> 'allowed' as allowed;
select analytics.ingest_spans(jsonb_build_array(jsonb_build_object('trace_id', 'now', 'span_id', 'big', 'name', 'chat',
       'start_time', now(), 'model', 'gpt-4o', 'cost_usd', 12))) ->> 'stored' as stored;
-- (messages hold the time left in the month: only their shape is shown)
select regress.attempt($$select analytics.check_budget('gpt-4o')$$, null, false) as over_budget,
       regress.attempt($$select analytics.check_budget('gpt-4o')$$) like 'PGRST: {"code": "budget_exceeded", %"message": "budget exceeded: monthly allows 10 USD per month, %' as shaped,
       regress.attempt($$select analytics.check_budget(provider => 'openai')$$, null, false) as any_model;
set local analytics.rate_limit_sqlstate = 'PT429';
select regress.attempt($$select analytics.check_budget()$$, null, false) as pt429;
rollback;

-- Bob has no budgets and sees none of Alice's alerts; his check_budget allows
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select (select count(*) from analytics.budgets) as budgets, (select count(*) from analytics.budget_alerts) as alerts,
       (select count(*) from analytics.budget_status('2026-12-01 12:00+00')) as status,
       (select count(*) from analytics.evaluate_budgets('2026-12-01 12:00+00', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')) as fired_for_alice,
       analytics.check_budget() as check;
commit;
-- without an identity (a cron job must name the owner)
select regress.attempt($$select * from analytics.budget_status()$$) as no_identity;

-- The HTML views as PostgREST calls them: two users, each in a transaction with `set local role authenticated` and
-- their JWT claims. The document's embedded data is read back as jsonb; its Content-Security-Policy is checked
-- against hashes Postgres computes itself. (tests/integration/views_test.sh drives the same documents in Chromium.)
\pset null '·'
delete from analytics.llm_traces;

-- what a view is served as: the media-type domain PostgREST looks for
select p.proname, format_type(p.prorettype, null) as returns, p.provolatile, p.prosecdef, p.proparallel
from pg_proc p where p.pronamespace = 'analytics'::regnamespace and p.proname in ('trace_view', '_trace_view')
order by 1;

-- the document's embedded data as jsonb, its script and its policy
create function regress.view_data(doc text) returns jsonb language sql immutable as $$
    select substring(doc from '<script type="application/json" id="view-data">(.*?)</script>')::jsonb $$;
create function regress.view_script(doc text) returns text language sql immutable as $$
    select substring(doc from '<script>(.*)</script>\s*</body>') $$;
create function regress.view_style(doc text) returns text language sql immutable as $$
    select substring(doc from '<style>(.*?)</style>') $$;
create function regress.view_policy(doc text) returns text language sql immutable as $$
    select substring(doc from 'http-equiv="Content-Security-Policy" content="([^"]*)"') $$;
grant execute on all functions in schema regress to public;

-- ---- Alice: a trace with a failing tool and hostile text ------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.ingest_spans($$[
  {"trace_id":"v-1","span_id":"root","name":"support-agent","operation_type":"agent","start_time":"2026-11-20T09:00:00Z",
   "end_time":"2026-11-20T09:00:04Z","input":{"question":"</script><script>alert(1)</script>"}},
  {"trace_id":"v-1","span_id":"tool","parent_span_id":"root","name":"<img src=x onerror=alert(2)>","operation_type":"tool",
   "status":"error","status_message":"timed out","start_time":"2026-11-20T09:00:00.100Z","end_time":"2026-11-20T09:00:02.100Z"},
  {"trace_id":"v-1","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat","model":"gpt-4o",
   "start_time":"2026-11-20T09:00:02.200Z","end_time":"2026-11-20T09:00:04Z","completion_start_time":"2026-11-20T09:00:02.500Z",
   "input_tokens":1000,"output_tokens":50,"cost_usd":0.003,"output":{"text":"done"},"tags":["prod"]}
]$$::jsonb);
select pg_typeof(analytics.trace_view('v-1')) as type, left(analytics.trace_view('v-1'), 15) as starts;
-- the spans, depth-first, with what the script needs to collapse a subtree (parent position, subtree size)
select s->>'span_id' as span, s->>'parent' as parent, s->>'depth' as depth, s->>'size' as size, s->>'name' as name,
       s->>'status' as status, s->>'offset_ms' as offset_ms, s->>'duration_ms' as ms, s->>'self_ms' as self_ms,
       s->>'first_token_ms' as ttft_ms, s->>'critical' as critical, s->>'cost_usd' as cost, s->'input' as input,
       s->'output' as output, s->'tags' as tags
from jsonb_array_elements(regress.view_data(analytics.trace_view('v-1'))->'spans') s;
select d->>'trace_id' as trace, d->>'span_count' as spans, d->>'shown' as shown, d->>'duration_ms' as ms, d->'colours' as colours
from regress.view_data(analytics.trace_view('v-1')) d;
-- hostile text is data, never markup: two script elements (the data and the view's own), no <img>, escaped heading
with doc as (select analytics.trace_view('v-1') as h)
select (length(h) - length(replace(h, '<script', ''))) / length('<script') as script_tags,
       strpos(h, '<img') = 0 as no_img, strpos(h, '</script><script>alert') = 0 as no_breakout,
       strpos(h, '<h1>support-agent</h1>') > 0 as heading
from doc;
-- the policy: nothing from the network, and only the script and style whose SHA-256 Postgres computes here
with doc as (select analytics.trace_view('v-1') as h)
select regress.view_policy(h) like 'default-src ''none''; script-src ''sha256-%''; style-src ''sha256-%''; img-src data:; base-uri ''none''; form-action ''none''' as shape,
       strpos(regress.view_policy(h), 'script-src ''sha256-' || encode(sha256(convert_to(regress.view_script(h), 'UTF8')), 'base64') || '''') > 0 as script_hash_matches,
       strpos(regress.view_policy(h), 'style-src ''sha256-' || encode(sha256(convert_to(regress.view_style(h), 'UTF8')), 'base64') || '''') > 0 as style_hash_matches,
       strpos(h, 'unsafe-inline') = 0 as no_unsafe_inline
from doc;
-- max_spans: the first spans depth-first, subtree sizes clipped, and the page says so
select d->>'shown' as shown, jsonb_array_length(d->'spans') as spans, d->'spans'->0->>'size' as root_size,
       strpos(analytics.trace_view('v-1', max_spans => 2), 'Showing the first 2 of 3 spans') > 0 as notice
from regress.view_data(analytics.trace_view('v-1', max_spans => 2)) d;
select analytics.trace_view('no-such-trace') is null as unknown_trace;
-- bad input: 22023 naming the argument
select regress.attempt('select analytics.trace_view(null)');
select regress.attempt('select analytics.trace_view(''v-1'', max_spans => 0)');
select regress.attempt('select analytics.trace_view(''v-1'', max_spans => 100001)');
commit;

-- ---- Bob sees none of it --------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select analytics.trace_view('v-1') is null as alices_trace,
       analytics.trace_view('v-1', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa') is null as naming_alice;
commit;

-- ---- anon: no access ------------------------------------------------------------------------------------------
begin;
set local role anon;
select regress.attempt('select analytics.trace_view(''v-1'')', null, false) as anon;
commit;

drop function regress.view_data(text), regress.view_script(text), regress.view_style(text), regress.view_policy(text);
delete from analytics.llm_traces;

-- ---- the experiment view ------------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key from analytics.create_experiment('v-exp', 'Button <i>text</i>', '[{"key":"control"},{"key":"short"}]',
                                            primary_metric => 'signup');
select status from analytics.start_experiment('v-exp');
select count(*) as assigned from generate_series(1, 600) i, analytics.assign_variant('v-exp', 'u-' || i) a where a.in_experiment;
commit;
-- three days of assignment; signup 10% vs 15%
update analytics.ab_experiment_assignments a set assigned_at = timestamptz '2026-11-10 08:00+00' + (substr(a.unit_id, 3)::int % 3) * interval '1 day'
where a.experiment_id = (select id from analytics.ab_experiments where key = 'v-exp');
insert into analytics.ab_experiment_events (user_id, experiment_id, unit_id, metric, value, occurred_at)
select a.user_id, a.experiment_id, a.unit_id, 'signup', 1, a.assigned_at + interval '1 hour'
from analytics.ab_experiment_assignments a join analytics.ab_experiment_variants v on v.id = a.variant_id
where a.experiment_id = (select id from analytics.ab_experiments where key = 'v-exp')
  and (substr(a.unit_id, 3)::int * 7919) % 100 < case v.key when 'short' then 15 else 10 end;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select pg_typeof(analytics.experiment_view('v-exp')) as type;
-- the data behind it: the report, and the moments of each day of assignment, which add up to the report's units
with d as (select analytics._experiment_view_data('v-exp', null, '[]', 'none', 0.05, null) as d)
select d->'experiment'->>'name' as name, d->'report'->'goals'->0->>'metric' as goal,
       jsonb_array_length(d->'series'->0->'days') as days,
       (select sum((g->'moments'->>'n')::int) from jsonb_array_elements(d->'series'->0->'days') day,
               jsonb_array_elements(day->'groups') g) as units_by_day,
       (select sum((v->>'units')::int) from jsonb_array_elements(d->'report'->'variants') v) as units
from d;
-- the page shows the report's lift and its interval bar, and the cumulative chart ends at the same lift
with r as (select * from analytics.experiment_results('v-exp', 'signup') where variant_key = 'short'),
     v as (select analytics.experiment_view('v-exp') as h)
select round(r.effect::numeric, 4) as effect,
       strpos(v.h, '<td class="effect-cell ' || case when r.significant then 'better' else 'flat' end || '">+'
                   || to_char(r.effect * 100, 'FM990.0') || '%</td>') > 0 as table_shows_it,
       (length(v.h) - length(replace(v.h, '<rect class="ci ', ''))) / length('<rect class="ci ') as interval_bars,
       strpos(v.h, 'short 2026-11-12: +' || to_char(r.effect * 100, 'FM990.0') || '%') > 0 as chart_ends_there,
       strpos(v.h, '<h1>Button &lt;i&gt;text&lt;/i&gt;</h1>') > 0 as name_escaped,
       strpos(v.h, 'Sample ratio mismatch') = 0 as no_srm_warning
from r, v;
-- bad input: the experiment_report messages, and goal metrics needed without a primary metric
select regress.attempt('select analytics.experiment_view(''v-exp'', ''[{"metric": "signup", "kind": "mean"}]'')');
select regress.attempt('select analytics.experiment_view(''v-exp'', correction => ''bonferroni'')');
select regress.attempt('select analytics.experiment_view(''no-such-experiment'')');
select regress.attempt('select analytics.experiment_view(null)');
update analytics.ab_experiments set primary_metric = null where key = 'v-exp';
select regress.attempt('select analytics.experiment_view(''v-exp'')');
commit;

-- Bob cannot view Alice's experiment
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select regress.attempt('select analytics.experiment_view(''v-exp'')');
commit;

delete from analytics.ab_experiments;
delete from analytics.ab_experiment_events;

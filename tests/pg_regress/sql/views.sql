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

-- ---- the dashboard --------------------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.ingest_spans($$[
  {"trace_id":"d-1","span_id":"root","name":"agent","operation_type":"agent","status":"ok","start_time":"2026-11-20T09:10:00Z","end_time":"2026-11-20T09:10:02Z"},
  {"trace_id":"d-1","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat","model":"gpt-4o","start_time":"2026-11-20T09:10:00.500Z",
   "end_time":"2026-11-20T09:10:02Z","input_tokens":1000,"output_tokens":100,"cost_usd":0.004},
  {"trace_id":"d-2","span_id":"root","name":"agent","operation_type":"agent","status":"error","start_time":"2026-11-20T11:30:00Z","end_time":"2026-11-20T11:30:08Z"},
  {"trace_id":"d-2","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat","model":"gpt-4o-mini","start_time":"2026-11-20T11:30:01Z",
   "end_time":"2026-11-20T11:30:08Z","input_tokens":500,"output_tokens":20,"cost_usd":0.0002}
]$$::jsonb) ->> 'stored' as stored;
select key from analytics.create_experiment('d-exp', 'Dashboard experiment', '[{"key":"a"},{"key":"b"}]');
select status from analytics.start_experiment('d-exp');
commit;
insert into analytics.anomaly_detections (user_id, metric, bucket_start, bucket_width, observed, expected, severity, method, status)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'latency_p95', '2026-11-20 11:00+00', '1 hour', 8000, 2000, 'critical', 'surprise', 'open'),
       ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'cost', '2026-11-20 09:00+00', '1 hour', 1, 0.1, 'warning', 'ewma', 'resolved'),
       ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'request_count', '2026-11-20 10:00+00', '1 hour', 90, 10, 'warning', 'surprise', 'open');

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- the data behind it: totals over root spans (requests) and every span (tokens, cost), buckets, top lists
with d as (select analytics._dashboard_view_data('2026-11-20 00:00+00', '2026-11-21 00:00+00', null, null) as d)
select d->>'bucket_seconds' as bucket_s, d->'totals' as totals,
       jsonb_array_length(d->'requests') as request_buckets, jsonb_array_length(d->'usage') as usage_buckets,
       (select string_agg(m->>'name' || ':' || (m->>'calls'), ', ') from jsonb_array_elements(d->'models') m) as models,
       (select string_agg(a->>'metric', ', ') from jsonb_array_elements(d->'anomalies') a) as open_anomalies,
       (select string_agg(e->>'key', ', ') from jsonb_array_elements(d->'experiments') e) as running,
       (select string_agg(t->>'trace_id', ', ') from jsonb_array_elements(d->'failed_traces') t) as failed,
       (select string_agg(t->>'trace_id', ', ') from jsonb_array_elements(d->'recent_traces') t) as recent
from d;
-- the page: five charts, the open anomaly marked on the latency chart and linked to its row
with v as (select analytics.dashboard_view('2026-11-20 00:00+00', '2026-11-21 00:00+00') as h)
select pg_typeof(v.h) as type,
       (length(h) - length(replace(h, '<figure class="chart"', ''))) / length('<figure class="chart"') as charts,
       (length(h) - length(replace(h, 'class="anomaly-marker"', ''))) / length('class="anomaly-marker"') as markers,
       substring(h from '<figure class="chart" id="chart-([a-z]+)"[^>]*>(?:(?!</figure>).)*class="anomaly-marker"') as marked_chart,
       strpos(h, '<a href="#anomaly-1" class="anomaly-link">') > 0 and strpos(h, '<tr id="anomaly-1"') > 0 as linked,
       strpos(h, 'data-trace-id="d-2"') > 0 as lists_failed_trace
from v;
-- bad input: 22023 naming the argument
select regress.attempt('select analytics.dashboard_view(''2026-11-21'', ''2026-11-20'')');
select regress.attempt('select analytics.dashboard_view(''2024-01-01'', ''2026-11-20'')');
select regress.attempt('select analytics.dashboard_view(''2026-11-20'', ''2026-11-21'', ''1 month'')');
select regress.attempt('select analytics.dashboard_view(''2026-11-20'', ''2026-11-21'', ''1 minute'')');
select regress.attempt('select analytics.dashboard_view(''2026-11-20'', ''2026-11-21'', ''-1 hour'')');
commit;

-- Bob's dashboard has his anomaly and none of Alice's rows
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
with d as (select analytics._dashboard_view_data('2026-11-20 00:00+00', '2026-11-21 00:00+00', null, null) as d)
select d->'totals'->>'requests' as requests, jsonb_array_length(d->'models') as models,
       (select string_agg(a->>'metric', ', ') from jsonb_array_elements(d->'anomalies') a) as anomalies,
       jsonb_array_length(d->'experiments') as experiments, jsonb_array_length(d->'recent_traces') as traces
from d;
select strpos(analytics.dashboard_view('2026-11-20 00:00+00', '2026-11-21 00:00+00',
                                       user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'), 'd-1') = 0 as naming_alice_shows_nothing_of_hers;
commit;

begin;
set local role anon;
select regress.attempt('select analytics.dashboard_view()', null, false) as anon;
commit;

delete from analytics.llm_traces;
delete from analytics.ab_experiments;
delete from analytics.anomaly_detections;

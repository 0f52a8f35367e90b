-- The demo's headline queries, each run the way PostgREST runs a request: in a transaction, as role
-- authenticated, with the caller's JWT claims in request.jwt.claims. Row-level security does the rest.
\pset footer off
\pset null '·'
\set alice 'select set_config(''request.jwt.claims'', ''{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}'', true) is null as _'
\set bob 'select set_config(''request.jwt.claims'', ''{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}'', true) is null as _'

\echo
\echo '== 1. Alice (JWT sub aaaaaaaa-…) lists the traces of her conversation conv-support-17: analytics.search_traces'
begin; set local role authenticated; :alice \gset
select trace_id, root_name, span_count, round(duration_ms) as ms, total_tokens as tokens, round(cost_usd::numeric, 6) as cost_usd,
       error_count as errors, models
from analytics.search_traces(conversation_id => 'conv-support-17');
commit;

\echo
\echo '== 2. Bob (JWT sub bbbbbbbb-…) asks for the same conversation and trace: row-level security shows him nothing'
begin; set local role authenticated; :bob \gset
select (select count(*) from analytics.search_traces(conversation_id => 'conv-support-17')) as traces_found,
       analytics.get_trace_tree('trace-rag-002') is null as tree_is_null;
commit;

\echo
\echo '== 3. Alice: the failing trace trace-rag-002, analytics.get_trace_tree (summary) and analytics.trace_waterfall'
begin; set local role authenticated; :alice \gset
select t->>'span_count' as spans, t->>'duration_ms' as ms, t->>'total_tokens' as tokens, t->>'cost_usd' as cost_usd,
       t->>'error_count' as errors, t->'roots'->0->'subtree' as root_rollup
from analytics.get_trace_tree('trace-rag-002', include_io => false) t;
select repeat('  ', depth) || name as span, operation_type as type, status, offset_ms, duration_ms, self_ms,
       case when on_critical_path then '◆' else '' end as critical, model
from analytics.trace_waterfall('trace-rag-002');
\pset tuples_only on
\pset format unaligned
\o /tmp/analytics_ext_demo_waterfall.svg
select analytics.trace_waterfall_svg('trace-rag-002');
\o
\pset format aligned
\pset tuples_only off
\echo '   (its SVG waterfall was written to /tmp/analytics_ext_demo_waterfall.svg)'
commit;

\echo
\echo '== 4. Bob: his agent run, sent as an OpenTelemetry OTLP/JSON export (analytics.ingest_otlp), as a tree'
begin; set local role authenticated; :bob \gset
select repeat('  ', depth) || name as span, operation_type as type, status, model, subtree_tokens as tokens, duration_ms
from analytics.trace_spans('5b8efff798038103d269b633813fc60c');
commit;

\echo
\echo '== 5. Alice: a new visitor arrives; analytics.assign_variant picks (and stores) the variant, GrowthBook-identical'
begin; set local role authenticated; :alice \gset
select unit, a.variant_key, a.payload->>'system_prompt' as system_prompt, a.hash_value, a.stored
from unnest(array['visitor-9001', 'visitor-9002']) unit, analytics.assign_variant('system-prompt-v2', unit) a;
\echo '   ...and asking again returns the same stored variant (sticky):'
select variant_key, stored from analytics.assign_variant('system-prompt-v2', 'visitor-9001');
\echo '   ...and the significance result so far, analytics.experiment_results (relative lift, the GrowthBook t-test, SRM check):'
select variant_key, is_control, units, round(value::numeric, 4) as thumbs_up_rate, round(effect::numeric, 4) as lift,
       round(ci_lower::numeric, 4) as ci_lower, round(ci_upper::numeric, 4) as ci_upper, round(p_value::numeric, 4) as p_value,
       significant, round(srm_p_value::numeric, 4) as srm_p_value, srm
from analytics.experiment_results('system-prompt-v2', 'thumbs_up');
commit;

\echo
\echo '== 6. Alice: hourly latency and errors of her model calls around the injected spike, analytics.trace_metrics'
begin; set local role authenticated; :alice \gset
select bucket_start, dimension->>'model' as model, request_count as calls, round(error_rate::numeric, 2) as error_rate,
       round(latency_p50_ms) as p50_ms, round(latency_p95_ms) as p95_ms, total_tokens as tokens
from analytics.trace_metrics('1 hour', '2026-11-18 11:00+00', '2026-11-18 18:00+00', group_by => '{model}', operation_type => 'chat');
commit;

\echo
\echo '== 7. Alice: the same data as pages a person looks at, analytics.trace_view / experiment_view / dashboard_view'
begin; set local role authenticated; :alice \gset
\pset tuples_only on
\pset format unaligned
\o /tmp/analytics_ext_demo_trace.html
select analytics.trace_view('trace-rag-002');
\o /tmp/analytics_ext_demo_experiment.html
select analytics.experiment_view('system-prompt-v2');
\o /tmp/analytics_ext_demo_dashboard.html
select analytics.dashboard_view('2026-11-13 00:00+00', '2026-11-21 00:00+00');
\o
\pset format aligned
\pset tuples_only off
commit;
\echo '   written to /tmp/analytics_ext_demo_trace.html, /tmp/analytics_ext_demo_experiment.html and'
\echo '   /tmp/analytics_ext_demo_dashboard.html: self-contained, open them in a browser (docs/views.md)'

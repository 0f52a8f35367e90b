-- The demo's headline queries, each run the way PostgREST runs a request: in a transaction, as role
-- authenticated, with the caller's JWT claims in request.jwt.claims. Row-level security does the rest.
\pset footer off
\pset null '·'

\echo
\echo '== 1. Alice (JWT sub aaaaaaaa-…) lists her traces of conversation conv-support-17'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) \gset
select trace_id,
       min(start_time)::time(0) as started,
       count(*) as spans,
       round(extract(epoch from max(end_time) - min(start_time))::numeric, 2) as seconds,
       sum(total_tokens) as tokens,
       round(sum(cost_usd)::numeric, 6) as cost_usd,
       count(*) filter (where status = 'error') as errors
from analytics.llm_traces
where conversation_id = 'conv-support-17'
group by trace_id order by started;
commit;

\echo
\echo '== 2. Bob (JWT sub bbbbbbbb-…) asks for the same conversation: RLS shows him nothing of Alice'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) \gset
select count(*) as spans_bob_sees_of_conv_support_17,
       (select count(*) from analytics.llm_traces) as spans_bob_sees_in_total
from analytics.llm_traces where conversation_id = 'conv-support-17';
commit;

\echo
\echo '== 3. Alice: the failing trace trace-rag-002 as a tree (error and slow span included)'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) \gset
with recursive tree as (
    select span_id, 0 as depth, array[start_time] as path from analytics.llm_traces
    where trace_id = 'trace-rag-002' and parent_span_id is null
    union all
    select s.span_id, t.depth + 1, t.path || s.start_time
    from analytics.llm_traces s join tree t on s.parent_span_id = t.span_id and s.trace_id = 'trace-rag-002'
)
select repeat('  ', t.depth) || s.name as span, s.operation_type as type, s.status,
       round(s.duration_ms::numeric) as ms, s.model, s.status_message
from tree t join analytics.llm_traces s on s.trace_id = 'trace-rag-002' and s.span_id = t.span_id
order by t.path;
commit;

\echo
\echo '== 4. Alice: her experiment system-prompt-v2, thumbs-up rate per variant'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) \gset
select v.key as variant, v.is_control, count(distinct a.unit_id) as units,
       count(distinct e.unit_id) as thumbs_up,
       round(count(distinct e.unit_id)::numeric / count(distinct a.unit_id), 4) as rate
from analytics.ab_experiments x
join analytics.ab_experiment_variants v on v.experiment_id = x.id
join analytics.ab_experiment_assignments a on a.variant_id = v.id
left join analytics.ab_experiment_events e on e.experiment_id = x.id and e.unit_id = a.unit_id and e.metric = 'thumbs_up'
where x.key = 'system-prompt-v2'
group by v.key, v.is_control, v.position order by v.position;
commit;

\echo
\echo '== 5. Alice: hourly p95 latency of her model calls around the injected spike (2026-11-18 14:00)'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) \gset
select date_trunc('hour', start_time) as hour, count(*) as calls,
       round(percentile_cont(0.95) within group (order by duration_ms)::numeric) as p95_ms,
       count(*) filter (where status = 'error') as errors
from analytics.llm_traces
where operation_type = 'chat' and start_time >= '2026-11-18 11:00+00' and start_time < '2026-11-18 18:00+00'
group by 1 order by 1;
commit;

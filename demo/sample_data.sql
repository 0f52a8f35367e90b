-- Sample data for the demo: three accounts of an LLM application, written by the superuser (who bypasses RLS),
-- then read back as each user would through PostgREST.
--   Alice  aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa  a support bot (RAG + tools), runs a prompt experiment
--   Bob    bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb  a coding assistant
--   Carol  cccccccc-cccc-4ccc-8ccc-cccccccccccc  an embeddings pipeline
-- Deterministic: setseed() makes every run print the same numbers.
select setseed(0.42);

-- Alice's app sends two traces of conversation "conv-support-17" through the API, as PostgREST would run
-- POST /rest/v1/rpc/ingest_spans with her JWT: a good answer, and one where the order lookup timed out and the
-- model took 12 s to recover. Children are sent before their parents; ingest does not care.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true);
select analytics.ingest_spans($$[
  {"trace_id":"trace-rag-001","span_id":"kb","parent_span_id":"root","conversation_id":"conv-support-17","message_id":"msg-1","session_id":"sess-9",
   "name":"search-knowledge-base","operation_type":"retrieval","status":"ok","tags":["prod"],
   "start_time":"2026-11-20T09:00:00.050Z","end_time":"2026-11-20T09:00:00.350Z","input":{"query":"order shipping status"},"output":{"documents":5}},
  {"trace_id":"trace-rag-001","span_id":"embed","parent_span_id":"kb","conversation_id":"conv-support-17","message_id":"msg-1","session_id":"sess-9",
   "name":"embed-query","operation_type":"embeddings","status":"ok","tags":["prod"],"provider":"openai","model":"text-embedding-3-small",
   "start_time":"2026-11-20T09:00:00.060Z","end_time":"2026-11-20T09:00:00.140Z","input_tokens":9,"output_tokens":0,"cost_usd":0.00000018},
  {"trace_id":"trace-rag-001","span_id":"tool","parent_span_id":"root","conversation_id":"conv-support-17","message_id":"msg-1","session_id":"sess-9",
   "name":"lookup_order","operation_type":"execute_tool","status":"ok","tags":["prod"],
   "start_time":"2026-11-20T09:00:00.400Z","end_time":"2026-11-20T09:00:00.900Z","input":{"order_id":8812},"output":{"status":"packed"}},
  {"trace_id":"trace-rag-001","span_id":"llm","parent_span_id":"root","conversation_id":"conv-support-17","message_id":"msg-1","session_id":"sess-9",
   "name":"answer","operation_type":"chat","status":"ok","tags":["prod"],"provider":"openai","model":"gpt-4o",
   "start_time":"2026-11-20T09:00:01.000Z","end_time":"2026-11-20T09:00:04.100Z","completion_start_time":"2026-11-20T09:00:01.450Z",
   "input_tokens":1850,"output_tokens":120,"cache_read_tokens":1024,"cost_usd":0.005825,
   "input":{"messages":4},"output":{"finish_reason":"stop"}},
  {"trace_id":"trace-rag-001","span_id":"root","conversation_id":"conv-support-17","message_id":"msg-1","session_id":"sess-9",
   "name":"support-agent","operation_type":"invoke_agent","status":"ok","tags":["prod","support"],
   "start_time":"2026-11-20T09:00:00.000Z","end_time":"2026-11-20T09:00:04.200Z","metadata":{"app_version":"2.3.1"},
   "input":{"question":"Where is my order #8812?"},"output":{"answer":"It ships tomorrow."}},

  {"trace_id":"trace-rag-002","span_id":"root","conversation_id":"conv-support-17","message_id":"msg-2","session_id":"sess-9",
   "name":"support-agent","operation_type":"invoke_agent","status":"error","status_message":"order service timed out","tags":["prod","support"],
   "start_time":"2026-11-20T09:01:10.000Z","end_time":"2026-11-20T09:01:33.500Z","metadata":{"app_version":"2.3.1"},
   "input":{"question":"Can I change the address?"}},
  {"trace_id":"trace-rag-002","span_id":"tool","parent_span_id":"root","conversation_id":"conv-support-17","message_id":"msg-2","session_id":"sess-9",
   "name":"lookup_order","operation_type":"execute_tool","status":"error","status_message":"timeout after 10s","tags":["prod"],
   "start_time":"2026-11-20T09:01:10.100Z","end_time":"2026-11-20T09:01:20.100Z","input":{"order_id":8812}},
  {"trace_id":"trace-rag-002","span_id":"retry","parent_span_id":"root","conversation_id":"conv-support-17","message_id":"msg-2","session_id":"sess-9",
   "name":"lookup_order (retry)","operation_type":"execute_tool","status":"ok","tags":["prod"],
   "start_time":"2026-11-20T09:01:20.200Z","end_time":"2026-11-20T09:01:21.100Z","input":{"order_id":8812},"output":{"status":"packed"}},
  {"trace_id":"trace-rag-002","span_id":"llm","parent_span_id":"root","conversation_id":"conv-support-17","message_id":"msg-2","session_id":"sess-9",
   "name":"answer","operation_type":"chat","status":"ok","tags":["prod","slow"],"provider":"openai","model":"gpt-4o",
   "start_time":"2026-11-20T09:01:21.300Z","end_time":"2026-11-20T09:01:33.400Z","completion_start_time":"2026-11-20T09:01:29.800Z",
   "input_tokens":2410,"output_tokens":310,"cache_read_tokens":0,"cost_usd":0.009125,"input":{"messages":6},"output":{"finish_reason":"stop"}}
]$$::jsonb);
-- one more span, with named arguments (POST /rest/v1/rpc/record_span)
select analytics.record_span(trace_id => 'trace-rag-002', span_id => 'guard', parent_span_id => 'llm', name => 'pii-filter',
    operation_type => 'guardrail', status => 'ok', conversation_id => 'conv-support-17', message_id => 'msg-2',
    session_id => 'sess-9', start_time => '2026-11-20 09:01:33.000+00', end_time => '2026-11-20 09:01:33.300+00',
    output => '{"redacted": 0}', tags => '{prod}');
commit;

-- Bob's agent is instrumented with OpenTelemetry: its exporter's OTLP/JSON request is stored as it is
-- (POST /rest/v1/rpc/ingest_otlp). The request is tests/fixtures/otlp_agent_run.json, read by the demo script.
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true);
select analytics.ingest_otlp(:'otlp_request'::jsonb);
commit;

-- A week of history for every account: six runs an hour per user (a root span and its model call), so the rollups
-- and detectors have a series to work on. From 2026-11-18 14:00 to 15:59 Alice's model calls slow down eightfold
-- and fail far more often: the injected spike.
insert into analytics.llm_traces
    (user_id, trace_id, span_id, parent_span_id, conversation_id, name, operation_type, status, start_time, end_time,
     provider, model, input_tokens, output_tokens, total_tokens, cost_usd, tags)
with runs as materialized (
    select u.id as user_id, u.model, h, k,
           timestamptz '2026-11-13 00:00+00' + make_interval(hours => h, mins => k * 10, secs => floor(random() * 540)::int) as t0,
           (u.id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa' and h between 5 * 24 + 14 and 5 * 24 + 15) as spike,
           random() as r_latency, random() as r_error, random() as r_in, random() as r_out
    from (values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'::uuid, 'gpt-4o'),
                 ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'claude-sonnet-4'),
                 ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'gpt-4o-mini')) u(id, model)
    cross join generate_series(0, 7 * 24 - 1) h
    cross join generate_series(0, 5) k
), calls as (
    select r.*, (0.8 + 0.6 * r_latency) * (case when spike then 8 else 1 end) as seconds,
           r_error < (case when spike then 0.5 else 0.02 end) as failed,
           (800 + floor(r_in * 400))::bigint as tin, (100 + floor(r_out * 200))::bigint as tout
    from runs r
)
select c.user_id, 'hist-' || c.h || '-' || c.k, s.span_id, s.parent, 'conv-hist-' || (c.h / 6), s.name, s.op,
       case when c.failed then 'error' else 'ok' end,
       c.t0 + make_interval(secs => s.offset_s), c.t0 + make_interval(secs => s.offset_s + c.seconds + s.extra_s),
       s.provider, s.model, s.tin, s.tout, s.tin + s.tout, (s.tin * 2.5 + s.tout * 10) / 1e6, '{prod}'
from calls c
cross join lateral (values
    ('root', null, 'handle-request', 'invoke_agent', 0.0, 0.05, null, null, null::bigint, null::bigint),
    ('llm', 'root', 'generate', 'chat', 0.02, 0.0, case when c.model like 'claude%' then 'anthropic' else 'openai' end,
     c.model, c.tin, c.tout)) s(span_id, parent, name, op, offset_s, extra_s, provider, model, tin, tout);

-- Alice's prompt experiment: does a concise system prompt get more thumbs-up? Created, started and assigned through
-- the API as Alice; 2,000 visitors get their variant from GrowthBook's hashing (sticky, stored).
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true);
select analytics.create_experiment('system-prompt-v2', 'Concise system prompt',
    '[{"key":"control","name":"Current prompt","weight":0.5,"payload":{"system_prompt":"You are a helpful, thorough support agent..."}},
      {"key":"concise","name":"Concise prompt","weight":0.5,"payload":{"system_prompt":"Answer in two sentences."}}]',
    hypothesis => 'A shorter, more direct system prompt raises the thumbs-up rate', primary_metric => 'thumbs_up');
select analytics.start_experiment('system-prompt-v2');
select analytics.assign_variant('system-prompt-v2', 'visitor-' || i) from generate_series(1, 2000) i;
commit;
-- outcomes: thumbs-up rate 11% on control, 13.5% on the concise prompt
-- (one random draw per assignment: in a plain WHERE the planner would evaluate random() once per variant)
insert into analytics.ab_experiment_events (user_id, experiment_id, unit_id, metric, value, occurred_at)
with draws as materialized (select a.*, random() as draw from analytics.ab_experiment_assignments a)
select a.user_id, a.experiment_id, a.unit_id, 'thumbs_up', 1, a.assigned_at + interval '3 minutes'
from draws a
join analytics.ab_experiment_variants v on v.id = a.variant_id
where a.draw < case when v.key = 'control' then 0.11 else 0.135 end;

-- Carol keeps a cohort of beta testers.
insert into analytics.user_cohorts (id, user_id, key, name, description)
values ('c0000000-0000-4000-8000-000000000001', 'cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'beta', 'Beta testers', 'Opted in to early features');
insert into analytics.user_cohort_members (user_id, cohort_id, member_id)
select 'cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'c0000000-0000-4000-8000-000000000001', 'visitor-' || i from generate_series(1, 25) i;

-- Data for views_test.sh: what Alice's and Bob's apps send through PostgREST (as role authenticated, with their
-- JWT claims), plus hostile text, plus a 20,000-span trace written by the superuser.
\set alice 'select set_config(''request.jwt.claims'', ''{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}'', true) is null as _'
\set bob 'select set_config(''request.jwt.claims'', ''{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}'', true) is null as _'

begin; set local role authenticated; :alice \gset
select count(*) from analytics.ingest_spans($$[
  {"trace_id":"view-1","span_id":"root","name":"support-agent","operation_type":"invoke_agent","status":"ok",
   "start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T09:00:06Z","input":{"question":"Where is my order 8812?"},
   "output":{"answer":"It ships today."},"metadata":{"app_version":"2.3.1"},"tags":["prod"]},
  {"trace_id":"view-1","span_id":"kb","parent_span_id":"root","name":"search-knowledge-base","operation_type":"retrieval",
   "status":"ok","start_time":"2026-11-20T09:00:00.100Z","end_time":"2026-11-20T09:00:00.700Z",
   "input":{"query":"order shipping status"},"output":{"documents":5}},
  {"trace_id":"view-1","span_id":"embed","parent_span_id":"kb","name":"embed-query","operation_type":"embeddings",
   "status":"ok","provider":"openai","model":"text-embedding-3-small","start_time":"2026-11-20T09:00:00.120Z",
   "end_time":"2026-11-20T09:00:00.200Z","input_tokens":9,"output_tokens":0},
  {"trace_id":"view-1","span_id":"tool","parent_span_id":"root","name":"lookup_order","operation_type":"execute_tool",
   "status":"error","status_message":"order service timed out","start_time":"2026-11-20T09:00:00.800Z",
   "end_time":"2026-11-20T09:00:02.800Z","input":{"order_id":8812}},
  {"trace_id":"view-1","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat","status":"ok",
   "provider":"openai","model":"gpt-4o","start_time":"2026-11-20T09:00:03Z","end_time":"2026-11-20T09:00:06Z",
   "completion_start_time":"2026-11-20T09:00:03.400Z","input_tokens":1850,"output_tokens":120,"cost_usd":0.005825,
   "input":{"messages":[{"role":"system","content":"You are a support agent."},{"role":"user","content":"Where is my order 8812?"}]},
   "output":{"role":"assistant","content":"Your order 8812 ships today."}}
]$$::jsonb);
select count(*) from analytics.ingest_spans($$[
  {"trace_id":"xss","span_id":"root","name":"<script>window.__xss=1</script>","operation_type":"chain","status":"ok",
   "start_time":"2026-11-20T10:00:00Z","end_time":"2026-11-20T10:00:01Z",
   "input":"\"><img src=x onerror=\"window.__xss=2\">","output":{"html":"</script><script>window.__xss=3</script>"},
   "metadata":{"link":"javascript:window.__xss=4","note":"<svg onload=window.__xss=5>"},"tags":["<b>bold</b>"]},
  {"trace_id":"xss","span_id":"child","parent_span_id":"root","name":"\"><img src=x onerror=window.__xss=6>",
   "operation_type":"chat","status":"error","status_message":"<iframe src=javascript:window.__xss=7>",
   "model":"<img src=x onerror=window.__xss=8>","start_time":"2026-11-20T10:00:00.100Z","end_time":"2026-11-20T10:00:00.900Z"}
]$$::jsonb);
commit;

begin; set local role authenticated; :bob \gset
select count(*) from analytics.ingest_spans($$[
  {"trace_id":"bob-1","span_id":"root","name":"bob-pipeline","operation_type":"chain","status":"ok",
   "start_time":"2026-11-20T11:00:00Z","end_time":"2026-11-20T11:00:01Z","input":{"secret":"bob's input"}}
]$$::jsonb);
commit;

-- 20,000 spans in one trace of Alice's: 200 agent steps of 99 tool / model calls each (the superuser writes them
-- directly, as a bulk import would). The spans are unique by construction, so the import skips the check that a
-- span has rows of one start time only (analytics.spans_checked; before the table's first ANALYZE that check reads
-- the whole trace per row: see sql/013_partitions.sql)
begin;
set local analytics.spans_checked = 'on';
insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, name, operation_type, status, start_time, end_time,
                                  model, input_tokens, output_tokens, total_tokens, input, output)
select 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'big', 's' || k,
       case when k = 0 then null when k % 100 = 0 then 's0' else 's' || (k / 100 * 100) end,
       case when k = 0 then 'batch-run' when k % 100 = 0 then 'step ' || k / 100 else 'call ' || k end,
       case when k = 0 then 'invoke_agent' when k % 100 = 0 then 'chain' when k % 2 = 0 then 'chat' else 'execute_tool' end,
       case when k % 997 = 5 then 'error' else 'ok' end,
       timestamptz '2026-11-21T00:00:00Z' + k * interval '10 ms',
       timestamptz '2026-11-21T00:00:00Z' + k * interval '10 ms' + case when k = 0 then interval '210 s' when k % 100 = 0 then interval '1 s' else interval '8 ms' end,
       case when k % 2 = 0 and k % 100 <> 0 then 'gpt-4o-mini' end,
       case when k % 2 = 0 and k % 100 <> 0 then 500 end, case when k % 2 = 0 and k % 100 <> 0 then 40 end,
       case when k % 2 = 0 and k % 100 <> 0 then 540 end,
       jsonb_build_object('k', k), jsonb_build_object('ok', true)
from generate_series(0, 19999) k;
commit;

-- Alice's checkout experiment: 1,200 units over six days of assignment, signup 10% (control) vs 14% (b), and a
-- guardrail (errors, lower is better) that b fails: 4% vs 9%.
begin; set local role authenticated; :alice \gset
select key from analytics.create_experiment('cta', 'Checkout <b>CTA</b>', '[{"key":"control"},{"key":"b"}]',
                                            hypothesis => 'A shorter button text makes more people sign up.');
select status from analytics.start_experiment('cta');
select count(*) from generate_series(1, 1200) i, analytics.assign_variant('cta', 'u-' || i) a where a.in_experiment;
commit;
update analytics.ab_experiment_assignments a set assigned_at = timestamptz '2026-11-15 12:00+00' + (substr(a.unit_id, 3)::int % 6) * interval '1 day'
where a.experiment_id = (select id from analytics.ab_experiments where key = 'cta');
insert into analytics.ab_experiment_events (user_id, experiment_id, unit_id, metric, value, occurred_at)
select a.user_id, a.experiment_id, a.unit_id, m.metric, 1, a.assigned_at + interval '1 minute'
from analytics.ab_experiment_assignments a
join analytics.ab_experiment_variants v on v.id = a.variant_id
cross join lateral (select (substr(a.unit_id, 3)::int * 7919) % 100 as r) u
cross join lateral (values ('signup', case v.key when 'b' then 14 else 10 end),
                           ('errors', case v.key when 'b' then 9 else 4 end)) m(metric, pct)
where a.experiment_id = (select id from analytics.ab_experiments where key = 'cta')
  and (case m.metric when 'signup' then u.r else (u.r * 31 + 7) % 100 end) < m.pct;

-- and one whose split is broken: half of b's units were recorded as control (sample ratio mismatch)
begin; set local role authenticated; :alice \gset
select key from analytics.create_experiment('skewed', 'Skewed split', '[{"key":"control"},{"key":"b"}]');
select status from analytics.start_experiment('skewed');
select count(*) from generate_series(1, 1000) i, analytics.assign_variant('skewed', 'u-' || i) a where a.in_experiment;
commit;
update analytics.ab_experiment_assignments a
set variant_id = (select v.id from analytics.ab_experiment_variants v where v.experiment_id = a.experiment_id and v.key = 'control')
where a.experiment_id = (select id from analytics.ab_experiments where key = 'skewed')
  and a.variant_id = (select v.id from analytics.ab_experiment_variants v where v.experiment_id = a.experiment_id and v.key = 'b')
  and substr(a.unit_id, 3)::int % 2 = 0;

-- anomalies recorded by the detectors (the superuser writes them as run_anomaly_detection would): two of Alice's
-- open ones on charted metrics, one on a metric no chart shows, one resolved (not shown); one of Bob's
insert into analytics.anomaly_detections (user_id, metric, bucket_start, bucket_width, observed, expected, severity, method, status)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'latency_p95', '2026-11-20 09:00+00', '1 hour', 6000, 900, 'critical', 'surprise', 'open'),
       ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'error_rate', '2026-11-20 10:00+00', '1 hour', 0.5, 0.02, 'warning', 'zscore', 'acknowledged'),
       ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'signups', '2026-11-21 02:00+00', '1 hour', 3, 40, 'info', 'mad', 'open'),
       ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'cost', '2026-11-21 03:00+00', '1 hour', 9, 1, 'warning', 'ewma', 'resolved'),
       ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'request_count', '2026-11-20 11:00+00', '1 hour', 90, 10, 'warning', 'surprise', 'open');

-- run_anomaly_detection over 30 days of traces for 1,000 users (one span every 30 minutes per user, two models:
-- 1,440,000 spans), hourly latency_p95 per model with the MAD detector, run for every user as a pg_cron job would
-- (as the job's owner, naming each user). Baseline in the same run: trace_metrics alone for every user (the rollup
-- the detection starts from).
\set ON_ERROR_STOP 1
\pset footer off
\i bench/common.sql
insert into analytics.llm_traces (user_id, trace_id, span_id, name, operation_type, model, status, start_time, end_time)
select ('00000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, 't' || i, 's', 'chat', 'chat',
       case when i % 2 = 0 then 'gpt-4o' else 'mini' end, 'ok',
       timestamptz '2026-10-25 00:00+00' + make_interval(mins => i * 30 + u % 30),
       timestamptz '2026-10-25 00:00+00' + make_interval(mins => i * 30 + u % 30,
           secs => 0.8 + (i * 7 + u) % 5 * 0.1 + case when (i + u) % 997 = 0 then 8 else 0 end)
from generate_series(1, 1000) u, generate_series(0, 30 * 48 - 1) i;
vacuum analyze analytics.llm_traces;
select count(*) as spans, count(distinct user_id) as users from analytics.llm_traces;
create temp table results as
select pg_temp.bench($$select count(*) from (select distinct user_id from analytics.llm_traces) u,
                       lateral analytics.trace_metrics('1 hour', timestamptz '2026-10-25 00:00+00', timestamptz '2026-11-24 00:00+00',
                                                       '{model}', user_id => u.user_id) m$$, 1) as rollup_ms,
       pg_temp.bench($$select count(*) from (select distinct user_id from analytics.llm_traces) u,
                       lateral analytics.run_anomaly_detection('latency_p95', '1 hour', '30 days', group_by => '{model}',
                                                               end_time => '2026-11-24 00:00+00', user_id => u.user_id) r$$, 1) as detection_ms;
select round(detection_ms) as run_anomaly_detection_all_users_ms, round((detection_ms / 1000)::numeric, 1) as ms_per_user,
       round(rollup_ms) as trace_metrics_all_users_ms, round((detection_ms / rollup_ms)::numeric, 2) as ratio,
       (select count(*) from analytics.anomaly_detections) as findings_recorded
from results;

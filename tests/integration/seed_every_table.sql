-- A few rows in every table of analytics_ext, for two owners (used by the pg_dump test).
insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, name, operation_type, status,
                                  start_time, end_time, model, input_tokens, output_tokens, cost_usd, input, metadata, tags)
select u, 'trace-' || t, 'span-' || s, case when s > 1 then 'span-1' end, 'step ' || s,
       case when s = 1 then 'invoke_agent' else 'chat' end, case when s = 3 then 'error' else 'ok' end,
       timestamptz '2026-01-01 10:00+00' + (t || ' minutes')::interval + (s || ' seconds')::interval,
       timestamptz '2026-01-01 10:00+00' + (t || ' minutes')::interval + (s * 2 || ' seconds')::interval,
       'gpt-4o-mini', 100 * s, 20 * s, 0.0001 * s, jsonb_build_object('prompt', 'hello ' || s), '{"env":"test"}', '{a,b}'
from (values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'::uuid), ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb')) v(u),
     generate_series(1, 3) t, generate_series(1, 3) s;
insert into analytics.ab_experiments (id, user_id, key, name, status, started_at)
values ('a0000000-0000-4000-8000-000000000001', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'prompt-test', 'Prompt test', 'running', now()),
       ('b0000000-0000-4000-8000-000000000001', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'prompt-test', 'Prompt test', 'draft', null);
insert into analytics.ab_experiment_variants (id, user_id, experiment_id, key, position, weight, is_control)
select gen_random_uuid(), e.user_id, e.id, v.key, v.pos, 0.5, v.pos = 0
from analytics.ab_experiments e, (values ('control', 0), ('treatment', 1)) v(key, pos);
insert into analytics.ab_experiment_assignments (user_id, experiment_id, variant_id, unit_id, hash_value)
select v.user_id, v.experiment_id, v.id, 'visitor-' || v.position || '-' || i, 0.5
from analytics.ab_experiment_variants v, generate_series(1, 5) i;
insert into analytics.ab_experiment_events (user_id, experiment_id, unit_id, metric, value)
select a.user_id, a.experiment_id, a.unit_id, 'revenue', 9.99 from analytics.ab_experiment_assignments a;
insert into analytics.anomaly_detections (user_id, metric, dimension, bucket_start, bucket_width, observed, expected,
                                          lower_bound, upper_bound, score, severity, method)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'latency_p95', '{"model":"gpt-4o-mini"}', '2026-01-01 10:00+00', '1 hour', 5300, 900, 500, 1300, 9.1, 'critical', 'mad'),
       ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'error_rate', '{}', '2026-01-01 10:00+00', '1 hour', 0.4, 0.01, 0, 0.05, 6.2, 'warning', 'zscore');
insert into analytics.user_cohorts (id, user_id, key, name, definition)
values ('a0000000-0000-4000-8000-000000000003', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'power-users', 'Power users', '{"performed": {}, "at_least": 10}'),
       ('b0000000-0000-4000-8000-000000000003', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'beta', 'Beta testers', null);
insert into analytics.user_cohort_members (user_id, cohort_id, member_id)
select c.user_id, c.id, 'visitor-' || i from analytics.user_cohorts c, generate_series(1, 3) i;
insert into analytics.model_prices (user_id, model, provider, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, effective_from)
values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'gpt-4o*', null, 2.5, 10, 1.25, '-infinity'),
       ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'gpt-4o-mini', 'openai', 0.15, 0.6, null, '2026-01-01'),
       ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'claude*', 'anthropic', 3, 15, 0.3, '-infinity');

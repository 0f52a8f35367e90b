-- Alert rules (sql/043_alert_rules.sql): thresholds over ingest failures and trace metrics, evaluated for the last
-- whole window before as_of; an episode opens once (pg_notify: tests/integration/alert_notify_test.sh), is updated
-- while the breach lasts, resolves at the first window without one, and the cooldown keeps the next one quiet.
\pset null '·'
delete from analytics.alert_rules;
delete from analytics.ingest_failures;
delete from analytics.llm_traces;

begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
insert into analytics.alert_rules (key, metric, operator, threshold, window_length, cooldown)
values ('ingest-failing', 'ingest_failures', '>=', 3, '5 minutes', '15 minutes'),
       ('slow', 'latency_p95', '>', 2000, '5 minutes', '0 s');
-- bad rules are refused, naming the constraint
select regress.attempt($$insert into analytics.alert_rules (key, metric, threshold) values ('x', 'latency_p42', 1)$$) as metric,
       regress.attempt($$insert into analytics.alert_rules (key, metric, operator, threshold) values ('y', 'cost', '!=', 1)$$) as operator,
       regress.attempt($$insert into analytics.alert_rules (key, metric, threshold, window_length) values ('z', 'cost', 1, '1 month')$$) as window_length,
       regress.attempt($$insert into analytics.alert_rules (key, metric, threshold) values ('n', 'cost', 'NaN')$$) as nan;
-- failures at 12:01-12:04 (4 in the window 12:00-12:05), spans of 3 s in the window 12:05-12:10, then calm
insert into analytics.ingest_failures (failed_at, function, sqlstate, message, payload_bytes)
select timestamptz '2026-11-20 12:00+00' + make_interval(mins => i), 'ingest_spans', '22023', 'spans[0].name: is required', 50
from generate_series(1, 4) i;
insert into analytics.llm_traces (trace_id, span_id, name, start_time, end_time)
select 't' || i, 's', 'chat', timestamptz '2026-11-20 12:05+00' + make_interval(secs => 10 * i),
       timestamptz '2026-11-20 12:05+00' + make_interval(secs => 10 * i + 3)
from generate_series(1, 20) i;
-- ...and the ingest calls that stored them (as ingest_spans counts them for ingest_failure_rate)
insert into analytics.ingest_stats (bucket_start, function, backend_pid, calls, spans, bytes)
values ('2026-11-20 12:06+00', 'ingest_spans', 1, 20, 20, 4000);

-- 12:05: the failures window breaches (4 >= 3): one episode opens
select rule_key, metric, value, status, fired_at from analytics.evaluate_alert_rules('2026-11-20 12:05:30+00');
-- the same time again: nothing new (the episode is open), no second alert
select count(*) as again from analytics.evaluate_alert_rules('2026-11-20 12:05:40+00');
-- 12:10: no failures in 12:05-12:10, so that episode resolves; p95 latency 3,000 ms > 2,000 opens 'slow'
select rule_key, value, status, resolved_at from analytics.evaluate_alert_rules('2026-11-20 12:10:00+00') order by rule_key;
-- 12:15: calm: 'slow' resolves
select rule_key, status from analytics.evaluate_alert_rules('2026-11-20 12:15:00+00');
-- new failures in 12:15-12:20: inside the 15-minute cooldown after 12:10, no new episode; after it, one
insert into analytics.ingest_failures (failed_at, function, sqlstate, message, payload_bytes)
select timestamptz '2026-11-20 12:15+00' + make_interval(mins => i), 'ingest_otlp', '22023', 'payload: bad', 50
from generate_series(0, 4) i;
insert into analytics.ingest_failures (failed_at, function, sqlstate, message, payload_bytes)
select timestamptz '2026-11-20 12:25+00' + make_interval(mins => i), 'ingest_otlp', '22023', 'payload: bad', 50
from generate_series(0, 4) i;
select count(*) as in_cooldown from analytics.evaluate_alert_rules('2026-11-20 12:20:00+00');
select rule_key, value, status from analytics.evaluate_alert_rules('2026-11-20 12:30:00+00');
select rule_key, status, fired_at, last_seen, resolved_at from analytics.alerts order by fired_at;
commit;

-- the failure rate: refused spans over refused + started spans of the window
select analytics._alert_metric('ingest_failure_rate', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-20 12:00+00', '2026-11-20 12:10+00') as failure_rate,
       analytics._alert_metric('error_rate', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-21 00:00+00', '2026-11-21 00:05+00') as no_data;

-- Bob sees neither Alice's rules nor her alerts, and evaluating his (none) finds nothing
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select (select count(*) from analytics.alert_rules) as rules, (select count(*) from analytics.alerts) as alerts,
       (select count(*) from analytics.evaluate_alert_rules('2026-11-20 12:10:00+00')) as fired;
-- naming Alice as the owner changes nothing: her rules are not his to read
select count(*) as fired_for_alice from analytics.evaluate_alert_rules('2026-11-20 12:40:00+00', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa');
commit;
-- a job without a JWT must name the owner
select regress.attempt($$select * from analytics.evaluate_alert_rules()$$) as no_identity;
delete from analytics.alert_rules;
delete from analytics.ingest_failures;
delete from analytics.llm_traces;

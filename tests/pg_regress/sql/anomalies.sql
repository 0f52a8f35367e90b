-- Anomaly detection: the detectors through SQL, series with timestamps and gaps, run_anomaly_detection over the
-- trace rollups (recorded once, re-runs update), acknowledge/resolve, bad input and RLS. The NOTIFY is checked by
-- tests/integration/anomaly_notify_test.sh (psql prints notifications with a process id).

-- ---- detectors on literal series --------------------------------------------------------------------------------
-- MAD, hand-computed: window [10,11,10,12,11] has median 11, MAD 1: 50 scores 0.6745 * 39 = 26.3055
select idx, value, round(score::numeric, 4) as score, expected, round(lower_bound::numeric, 4) as lower_bound
from analytics.detect_anomalies('{10,11,10,12,11,10,11,10,50,11}', 'mad', '{"window": 5}') where is_anomaly;
-- every method finds a spike of 60 in a gentle saw-tooth, and nothing else
select m as method, array_agg(idx order by idx) as anomalies
from unnest(array['zscore', 'mad', 'iqr', 'ewma', 'cusum']) m,
     analytics.detect_anomalies(array(select 100 + (i % 7)::float8 from generate_series(1, 80) i) || array[160::float8]
                                || array(select 100 + (i % 7)::float8 from generate_series(82, 90) i), m) d
where d.is_anomaly
group by m order by m;
-- seasonal: a 24-point cycle; at the peak hour of day 9 the value is the day's mean (100 instead of 150)
select idx, round(value::numeric) as value, round(expected::numeric) as expected, is_anomaly
from analytics.detect_anomalies(
    array(select case when i = 24 * 8 + 7 then 100 else 100 + 50 * sin(2 * pi() * (i - 1) / 24) end
          from generate_series(1, 24 * 10) i), 'seasonal') where is_anomaly;
-- gaps (NULL, NaN) get no score; a constant history makes a different value certain (infinite score)
select idx, value, score, is_anomaly
from analytics.detect_anomalies(array_fill(5::float8, array[30]) || array[null, 'NaN', 5, 7]::float8[], 'zscore', '{"window": 10}')
where idx > 30;
-- first points: never scored before min_history
select count(*) filter (where score is null) as unscored, count(*) as points
from analytics.detect_anomalies(array(select i::float8 from generate_series(1, 50) i), 'zscore', '{"window": 20}');
-- (ts, value) pairs on an hourly grid: the missing hour is a gap, the spike is found and dated
select ts, value, round(score::numeric, 2) as score
from analytics.detect_series_anomalies(
    array(select timestamptz '2026-11-20 00:00+00' + make_interval(hours => i) from generate_series(0, 47) i where i <> 30),
    array(select case when i = 40 then 90 else 20 + i % 4 end::float8 from generate_series(0, 47) i where i <> 30),
    'mad', '{"window": 12}', '1 hour')
where is_anomaly;
-- likelihood: a spike every 7th point is this series' normal (the base MAD flags every one of them); 20 points of
-- constant high level (points 350-369) are a change, and only that is flagged
with s as (
    select array(select 100 + (i % 3) + case when i % 7 = 0 or i between 350 and 369 then 15 else 0 end
                 from generate_series(1, 400) i)::float8[] as v
)
select m as method, count(*) filter (where d.is_anomaly and d.idx < 350) as before_change,
       min(d.idx) filter (where d.is_anomaly and d.idx >= 350) as change_found_at
from s, unnest(array['mad', 'likelihood']) m,
     analytics.detect_anomalies(s.v, m, case when m = 'likelihood' then '{"base": "mad"}' else '{}' end::jsonb) d
group by m order by m;
-- alerts: spikes at 50, 52, 55 are one episode with a cooldown of 3 points; 60 starts the next
select array_agg(idx order by idx) filter (where is_anomaly) as anomalies,
       array_agg(idx order by idx) filter (where alert) as alerts
from analytics.detect_anomalies(array(select case when i in (50, 52, 55, 60) then 100 else 10 + (i % 2) end
                                      from generate_series(1, 80) i)::float8[], 'mad', '{"cooldown": 3}');
select analytics.anomaly_params('ewma') as ewma_defaults;
select analytics.anomaly_params('likelihood') as likelihood_defaults;
select regress.attempt(stmt) as outcome from (values
  ($$select * from analytics.detect_anomalies('{1,2,3}', 'prophet')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3}', 'zscore', '{"window": -3}')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3,4,5}', 'zscore', '{"window": 10}')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3,4,5}', 'zscore', '{"window": 3, "treshold": 2}')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3,4,5}', 'ewma', '{"alpha": 2}')$$),
  ($$select * from analytics.detect_anomalies('{1,2,Infinity,4,5}', 'ewma')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3,4,5}', 'zscore', '[3]')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3,4,5}', 'likelihood', '{"base": "likelihood"}')$$),
  ($$select * from analytics.detect_anomalies('{1,2,3,4,5}', 'mad', '{"cooldown": 1.5}')$$),
  ($$select * from analytics.detect_series_anomalies('{2026-11-20 00:00+00,2026-11-20 01:00+00}', '{1}')$$),
  ($$select * from analytics.detect_series_anomalies('{2026-11-20 00:00+00,2026-11-20 00:00+00}', '{1,2}')$$),
  ($$select * from analytics.detect_series_anomalies('{2026-11-20 00:00+00,2026-11-20 01:30+00}', '{1,2}', bucket => '1 hour')$$),
  ($$select * from analytics.detect_series_anomalies('{2026-11-20 00:00+00,NULL}', '{1,2}')$$)
) v(stmt);

-- ---- run_anomaly_detection over Alice's spans ----------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- four days of hourly traffic on two models: 6 spans an hour each, latency 800-1100 ms; at 2026-11-22 14:00 the
-- gpt-4o spans take 6 s; at 2026-11-22 03:00 mini has no traffic at all (a gap for latency, 0 requests)
insert into analytics.llm_traces (trace_id, span_id, name, operation_type, model, status, start_time, end_time, total_tokens, cost_usd)
select 'anomaly-' || m || '-' || h || '-' || k, 's', 'chat', 'chat', m, 'ok',
       timestamptz '2026-11-19 00:00+00' + make_interval(hours => h, mins => k * 9),
       timestamptz '2026-11-19 00:00+00' + make_interval(hours => h, mins => k * 9)
           + make_interval(secs => case when m = 'gpt-4o' and h = 24 * 3 + 14 then 6 else 0.8 + ((h * 7 + k * 3) % 4) * 0.1 end),
       300, 0.001
from unnest(array['gpt-4o', 'mini']) m, generate_series(0, 24 * 4 - 1) h, generate_series(0, 5) k
where not (m = 'mini' and h = 24 * 3 + 3);
select metric, dimension, bucket_start, round(observed::numeric) as observed, round(expected::numeric) as expected,
       severity, method, status
from analytics.run_anomaly_detection('latency_p95', '1 hour', '3 days', group_by => '{model}', method => 'mad',
                                     params => '{"window": 24}', end_time => '2026-11-23 00:00+00');
select metric, dimension, bucket_start, observed, severity
from analytics.run_anomaly_detection('request_count', '1 hour', '3 days', group_by => '{model}', method => 'mad',
                                     params => '{"window": 24}', end_time => '2026-11-23 00:00+00');
-- a re-run records the same findings again: updated, not duplicated
select count(*) as recorded_again
from analytics.run_anomaly_detection('latency_p95', '1 hour', '3 days', group_by => '{model}', method => 'mad',
                                     params => '{"window": 24}', end_time => '2026-11-23 00:00+00');
select metric, count(*) as rows, count(distinct (dimension, bucket_start)) as distinct_findings
from analytics.anomaly_detections where dimension ? 'model' group by metric order by metric;
select id as spike from analytics.anomaly_detections where metric = 'latency_p95' and dimension ? 'model' \gset
-- acknowledge, resolve; both idempotent; a resolved one cannot be acknowledged again
select status, acknowledged_by = analytics.current_user_id() as by_alice, acknowledged_at is not null as acknowledged
from analytics.acknowledge_anomaly(:'spike');
select status from analytics.acknowledge_anomaly(:'spike');
-- a re-run keeps the acknowledgement
select status from analytics.run_anomaly_detection('latency_p95', '1 hour', '3 days', group_by => '{model}', method => 'mad',
                                                   params => '{"window": 24}', end_time => '2026-11-23 00:00+00');
select status, resolved_at is not null as resolved from analytics.resolve_anomaly(:'spike');
select status from analytics.resolve_anomaly(:'spike');
select regexp_replace(regress.attempt(stmt), '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>') as outcome from (values
  ($$select * from analytics.acknowledge_anomaly('$$ || :'spike' || $$')$$),
  ($$select * from analytics.acknowledge_anomaly('00000000-0000-4000-8000-000000000000')$$),
  ($$select * from analytics.run_anomaly_detection('latency_p42')$$),
  ($$select * from analytics.run_anomaly_detection('latency_p95', bucket => '-1 hour')$$),
  ($$select * from analytics.run_anomaly_detection('latency_p95', bucket => '1 month')$$),
  ($$select * from analytics.run_anomaly_detection('latency_p95', lookback => '30 minutes')$$),
  ($$select * from analytics.run_anomaly_detection('latency_p95', group_by => '{region}')$$),
  ($$select * from analytics.run_anomaly_detection('latency_p95', method => 'zscore', params => '{"window": 500}', end_time => '2026-11-23 00:00+00')$$)
) v(stmt);
commit;

-- ---- RLS: Bob sees none of it, changes none of it, and his detection runs on his own spans only --------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select count(*) as alices_findings_visible_to_bob from analytics.anomaly_detections where dimension ? 'model';
select regexp_replace(regress.attempt($$select * from analytics.resolve_anomaly('$$ || :'spike' || $$')$$),
                      '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>') as bob_resolves_alices;
select count(*) as bob_findings
from analytics.run_anomaly_detection('latency_p95', '1 hour', '3 days', group_by => '{model}', method => 'mad',
                                     params => '{"window": 24}', end_time => '2026-11-23 00:00+00');
commit;
-- without an identity a job must name the owner
select regress.attempt($$select * from analytics.run_anomaly_detection('latency_p95')$$) as no_identity;

-- anomaly_score: in [0, 1] for every method, higher for the injected spike than for any ordinary point; surprise
-- flags the spike alone
with s as (
    select array(select 100 + 3 * sin(i / 5.0) + (i * 7919 % 13) / 13.0 + case when i = 400 then 60 else 0 end
                 from generate_series(1, 500) i)::float8[] as v
)
select m as method,
       bool_and(d.anomaly_score between 0 and 1) filter (where d.anomaly_score is not null) as in_unit_interval,
       max(d.anomaly_score) filter (where d.idx = 400) > max(d.anomaly_score) filter (where d.idx <> 400) as spike_highest,
       array_agg(d.idx order by d.idx) filter (where d.is_anomaly and m = 'surprise') as surprise_anomalies
from s, unnest(array['zscore', 'mad', 'iqr', 'ewma', 'seasonal', 'cusum', 'likelihood', 'surprise']) m,
     analytics.detect_anomalies(s.v, m) d
group by m order by m;

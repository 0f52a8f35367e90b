-- detect_anomalies over 1,000,000 points (rolling z-score, window 30) against the equivalent SQL window-function
-- z-score query over the same series, in the same run; then MAD (median over the window), seasonal and likelihood
-- (over EWMA) for scale, and surprise (the best on NAB) against the same SQL baseline. Medians of 3.
\set ON_ERROR_STOP 1
\pset footer off
\i bench/common.sql
create table series as select i, 100 + 10 * sin(i / 50.0) + (i::bigint * 7919 % 13)
                     + case when i % 10007 = 0 then 80 else 0 end as v
from generate_series(1, 1000000) i;
vacuum analyze series;
create table series_array as select array_agg(v order by i) as v from series;
set max_parallel_workers_per_gather = 0;
create temp table results as
select pg_temp.bench($$select count(*) from series_array s, analytics.detect_anomalies(s.v, 'zscore', '{"window": 30}') d
                       where d.is_anomaly$$, 3) as detect_zscore_ms,
       pg_temp.bench($$select count(*) from (
                           select v, avg(v) over w as m, stddev_samp(v) over w as sd
                           from series window w as (order by i rows between 30 preceding and 1 preceding)) x
                       where sd > 0 and abs(v - m) / sd > 3$$, 3) as sql_window_ms,
       pg_temp.bench($$select count(*) from series_array s, analytics.detect_anomalies(s.v, 'mad', '{"window": 30}') d
                       where d.is_anomaly$$, 3) as detect_mad_ms,
       pg_temp.bench($$select count(*) from series_array s, analytics.detect_anomalies(s.v, 'seasonal', '{"period": 288}') d
                       where d.is_anomaly$$, 1) as detect_seasonal_ms,
       pg_temp.bench($$select count(*) from series_array s, analytics.detect_anomalies(s.v, 'likelihood') d
                       where d.is_anomaly$$, 3) as detect_likelihood_ms,
       pg_temp.bench($$select count(*) from series_array s, analytics.detect_anomalies(s.v, 'surprise') d
                       where d.is_anomaly$$, 3) as detect_surprise_ms;
select round(detect_zscore_ms) as detect_anomalies_zscore_ms, round(sql_window_ms) as sql_window_zscore_ms,
       round((detect_zscore_ms / sql_window_ms)::numeric, 2) as ratio,
       round(detect_mad_ms) as detect_anomalies_mad_ms, round(detect_seasonal_ms) as detect_anomalies_seasonal_ms,
       round(detect_likelihood_ms) as detect_anomalies_likelihood_ms,
       round(detect_surprise_ms) as detect_anomalies_surprise_ms,
       round((detect_surprise_ms / sql_window_ms)::numeric, 2) as surprise_ratio
from results;
-- both find the same anomalies (same definition: trailing 30 points, sample sd, |z| > 3; 99 spikes injected)
select (select count(*) from series_array s, analytics.detect_anomalies(s.v, 'zscore', '{"window": 30}') d where d.is_anomaly) as rust_found,
       (select count(*) from (select v, avg(v) over w as m, stddev_samp(v) over w as sd, count(*) over w as k
                              from series window w as (order by i rows between 30 preceding and 1 preceding)) x
        where k = 30 and sd > 0 and abs(v - m) / sd > 3) as sql_found;

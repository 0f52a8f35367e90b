-- GrowthBook assignment throughput: gb_hash + bucket for 2,000,000 units in one query on one core
-- (SELECT ... FROM generate_series), next to Postgres' built-in hashtext over the same strings as a baseline.
\set ON_ERROR_STOP 1
\pset footer off
\i bench/common.sql
set max_parallel_workers_per_gather = 0;
create temp table results as
select pg_temp.bench($$select count(*) from generate_series(1, 2000000) i
                       where analytics.choose_variation(analytics.gb_hash('checkout-test', 'user-' || i, 2),
                                                        analytics.bucket_ranges(2, 1, '{0.5,0.5}')) >= 0$$, 3) as gb_ms,
       pg_temp.bench($$select count(*) from generate_series(1, 2000000) i
                       where hashtext('checkout-test' || 'user-' || i) % 2 >= 0$$, 3) as baseline_ms;
select round(gb_ms) as gb_hash_and_bucket_ms, round(2000000 / (gb_ms / 1000)) as assignments_per_second,
       round(baseline_ms) as hashtext_ms, round((gb_ms / baseline_ms)::numeric, 2) as ratio_vs_hashtext
from results;

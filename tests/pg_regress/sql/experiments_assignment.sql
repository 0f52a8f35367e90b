-- GrowthBook's assignment primitives in SQL (each of GrowthBook's cross-SDK cases is checked in the Rust tests).
-- Pure functions: even an anonymous caller may use them.
begin;
set local role anon;
select analytics.gb_hash('', 'a', 1) as v1, analytics.gb_hash('seed', 'user-42', 2) as v2, analytics.gb_hash('a', 'b', 3) as unknown_version;
select analytics.equal_weights(3) as equal, analytics.equal_weights(0) as none;
select analytics.bucket_ranges(2) as even, analytics.bucket_ranges(3, 0.5, '{0.2,0.3,0.5}') as weighted_half_coverage;
-- weights that do not sum to 1 (or are of the wrong length) fall back to equal weights, as in every SDK
select analytics.bucket_ranges(2, 1, '{0.7,0.6}') as bad_sum, analytics.bucket_ranges(2, 1.5) as coverage_clamped;
-- a unit's variation: hash it, then find its range (-1: outside the coverage)
select unit, analytics.gb_hash('pricing-page', unit, 2) as hash,
       analytics.choose_variation(analytics.gb_hash('pricing-page', unit, 2), analytics.bucket_ranges(2, 0.8)) as variation,
       analytics.in_namespace(unit, 'checkout', 0, 0.5) as in_first_half_of_namespace
from unnest(array['user-1', 'user-2', 'user-3', 'user-4', 'user-5']) unit;
-- over 100,000 units the split follows the weights
select variation, count(*) from (
    select analytics.choose_variation(analytics.gb_hash('split-check', 'u' || i, 2), analytics.bucket_ranges(3, 1, '{0.5,0.25,0.25}')) as variation
    from generate_series(1, 100000) i) x
group by 1 order by 1;
commit;
\set VERBOSITY terse
select analytics.choose_variation(0.5, '{0, 0.5, 1}');
select analytics.bucket_ranges(20000);

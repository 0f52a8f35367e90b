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
\set VERBOSITY default

-- Statistics (pure functions too). GrowthBook's published Welch case, from sums and sums of squares:
select r->>'effect' as lift, r->>'ci_lower' as ci_lower, r->>'ci_upper' as ci_upper, r->>'p_value' as p_value, r->>'significant' as significant
from analytics.welch_t_test(3407, 1396.87 / 3407, (52377.9767 - 1396.87 ^ 2 / 3407) / 3406,
                            3461, 2422.7 / 3461, (134698.29 - 2422.7 ^ 2 / 3461) / 3460, relative => true) r;
select jsonb_pretty(analytics.two_proportion_z_test(116, 1000, 129, 1000));
select analytics.srm_check('{5060,4940}', '{0.5,0.5}')->>'p_value' as fine, analytics.srm_check('{5300,4700}', '{0.5,0.5}')->'srm' as mismatch;
-- units in a group planned to get none: skipped, as GrowthBook's check_srm does (gbstats 0.8.0: 0.19670560245894)
select analytics.srm_check('{10,5}', '{1,0}')->>'p_value' as zero_weight_group_skipped;
select analytics.adjust_p_values('{0.01,0.04,0.03,0.005,0.55,0.6}', 'holm') as holm,
       analytics.adjust_p_values('{0.898,0.138,0.007,0.964,0.538,0.006,0.138}', 'bh') as bh;
-- degenerate data: defined answers with a note, never NaN
select analytics.welch_t_test(1, 5, 0, 10, 6, 1) as too_few, analytics.two_proportion_z_test(0, 100, 0, 100) as no_conversions;
\set VERBOSITY terse
select analytics.welch_t_test(10, 1, -1, 10, 1, 1);
select analytics.two_proportion_z_test(11, 10, 1, 10);
select analytics.srm_check('{1,2}', '{1}');
select analytics.adjust_p_values('{0.1,1.5}');

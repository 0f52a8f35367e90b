-- analytics_ext 0.2.0 -> 0.1.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'): undoes
-- analytics_ext--0.1.0--0.2.0.sql, in reverse order. A step that would lose data (a column, table or setting that
-- 0.1.0 has no place for, holding values) refuses with an error naming what would be lost, before changing anything.
--
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'" to load this file. \quit

-- Retention policies (undone first: the steps are undone in reverse order). 0.1.0 has no place for them, so a
-- downgrade with policies in the table refuses, before changing anything.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.retention_policies);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % retention polic%: analytics.retention_policies does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN 'y' ELSE 'ies' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.retention_policies to ''policies.csv'' csv) and delete the rows, then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.apply_retention(integer, timestamptz);
ALTER EXTENSION analytics_ext DROP TABLE analytics.retention_policies;
DROP TABLE analytics.retention_policies;

-- Statistics as GrowthBook computes them: back to the 0.1.0 documentation (the library keeps its new behaviour:
-- there is one library for every version, see docs/upgrading.md).
COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true.
Returns the test (two-proportion z for binomial, Welch for mean, Welch on delta-method variances for ratio; relative lift by default) with control_value, treatment_value, chance_to_beat_control and expected_loss (Gaussian posterior, flat prior; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;
COMMENT ON FUNCTION analytics.srm_check(integer[], double precision[]) IS
$$Sample ratio mismatch: chi-square goodness of fit of observed group sizes to planned weights: {"chi_square", "df", "p_value", "expected", "srm"}; srm is true when p < 0.001.
Example: select analytics.srm_check('{5300,4700}', '{0.5,0.5}');$$;

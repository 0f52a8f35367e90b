-- Documentation of the experiment functions written in Rust (src/experiments/sql.rs).

COMMENT ON FUNCTION analytics.gb_hash(text, text, integer) IS
$$GrowthBook's hash of a unit into [0, 1), bit-for-bit as in every GrowthBook SDK: FNV-1a 32-bit; version 1: fnv32a(value || seed) % 1000 / 1000; version 2: fnv32a(text of fnv32a(seed || value)) % 10000 / 10000; NULL for other versions.
Hashes UTF-8 bytes (the JavaScript SDK hashes UTF-16 code units; they agree on ASCII).
Example: select analytics.gb_hash('my-test', 'user-42', 2);$$;

COMMENT ON FUNCTION analytics.equal_weights(integer) IS
$$n equal weights summing to 1 (GrowthBook's getEqualWeights); empty for n <= 0, at most 10000 (22023 above). Example: select analytics.equal_weights(3);$$;

COMMENT ON FUNCTION analytics.bucket_ranges(integer, double precision, double precision[]) IS
$$GrowthBook's getBucketRanges: an n x 2 array of [start, end) per variation (n at most 10000: 22023 above). Coverage is clamped to [0, 1]; weights missing, of the wrong length, or not summing to 1 within 0.01 become equal weights; lowering coverage never moves a unit to another variation.
Example: select analytics.bucket_ranges(3, 0.5, '{0.2,0.3,0.5}');$$;

COMMENT ON FUNCTION analytics.choose_variation(double precision, double precision[]) IS
$$GrowthBook's chooseVariation: the 0-based index of the range with start <= x < end, or -1 (not in the experiment).
Example: select analytics.choose_variation(analytics.gb_hash('my-test', 'user-42', 2), analytics.bucket_ranges(2));$$;

COMMENT ON FUNCTION analytics.in_namespace(text, text, double precision, double precision) IS
$$GrowthBook's inNamespace: whether the unit's hash with seed '__' || namespace (version 1) is in [range_start, range_end). Mutually exclusive experiments take disjoint slices of one namespace.
Example: select analytics.in_namespace('user-42', 'pricing', 0, 0.5);$$;

COMMENT ON FUNCTION analytics.welch_t_test(bigint, double precision, double precision, bigint, double precision, double precision, boolean, double precision) IS
$$Welch's t-test of the treatment (2) against the control (1) from sizes, means and sample variances: {"effect", "relative", "std_error", "statistic", "df", "p_value", "ci_lower", "ci_upper", "alpha", "significant", "note"}.
relative => true: the lift mean2/mean1 - 1 with a delta-method standard error (as GrowthBook). Degenerate data gives NULLs or exact answers with a note, never NaN.
Example: select analytics.welch_t_test(3407, 0.41, 15.21, 3461, 0.70, 38.44, relative => true);$$;

COMMENT ON FUNCTION analytics.two_proportion_z_test(bigint, bigint, bigint, bigint, boolean, double precision) IS
$$Conversion x2/n2 (treatment) against x1/n1 (control): pooled z-test as statsmodels' proportions_ztest, unpooled interval for the difference, or the relative lift with a delta-method interval. Same result shape as welch_t_test.
Example: select analytics.two_proportion_z_test(116, 1000, 129, 1000);$$;

COMMENT ON FUNCTION analytics.srm_check(integer[], double precision[]) IS
$$Sample ratio mismatch: chi-square goodness of fit of observed group sizes to planned weights, as GrowthBook's check_srm (a group with weight 0 is left out of the sum): {"chi_square", "df", "p_value", "expected", "srm"}; srm is true when p < 0.001.
Example: select analytics.srm_check('{5300,4700}', '{0.5,0.5}');$$;

COMMENT ON FUNCTION analytics.adjust_p_values(double precision[], text) IS
$$Multiple-comparison corrections in the input order: 'holm' (Holm-Bonferroni) or 'bh' (Benjamini-Hochberg).
Example: select analytics.adjust_p_values('{0.01,0.04,0.03,0.005,0.55,0.6}', 'holm');$$;

COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision, text) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true, and for cuped => true with 'ratio' (gbstats' RegressionAdjustedRatioStatistic) the pre-period denominator e's "pre_den_sum", "pre_den_sum_squares", "pre_den_cross_sum" (Σed), "pre_ratio_cross_sum" (Σxe), "post_num_pre_den_sum" (Σye), "pre_num_post_den_sum" (Σxd). For metric_type 'quantile' / 'quantile_event' (gbstats' QuantileStatistic / QuantileClusteredStatistic): "quantile_level", "quantile_n" (values), "quantile_nstar", "quantile", "quantile_lower", "quantile_upper" (the order statistics of GrowthBook's grid), and for 'quantile_event' n = units with sum, sum_squares, den_sum, den_sum_squares, cross_sum over units of their events at or below the quantile and of their events.
Returns the test (binomial: GrowthBook's t-test of the reported effect with variances p(1 - p) and Welch's df; mean: Welch; ratio: Welch on delta-method variances; relative lift by default) with control_value, treatment_value, chance_to_beat_control, expected_loss and control_risk (GrowthBook's risks of the treatment and of the control), posterior_mean and posterior_ci_lower/upper (Gaussian posterior: GrowthBook's flat prior, or its informative prior N(prior_mean, prior_variance) on the effect, both or neither; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. alternative 'greater' or 'less' makes the test and the sequential view one-sided (GrowthBook's one-sided t-tests and, as on its main branch, its sequential one-sided tests): the interval's open end is null. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;

COMMENT ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer, text) IS
$$Units per variant to detect an effect of mde (relative to the baseline by default: 0.05 = +5%; relative => false for an absolute change) with the given power in a two-sided test. std_dev of the per-unit value is required for metric_type 'mean'.
method 'growthbook' (default) computes as GrowthBook's power calculator: the delta-method error of the relative lift with the control's variance for both groups, both tails, alpha as given (variants only split the traffic): 10% baseline, +5% needs 59,409 per variant. method 'statsmodels': each group's own variance, the difference's error (statsmodels' NormalIndPower), alpha split over the comparisons with the control when variants > 2 (Bonferroni): 57,760.
Returns {"per_variant", "total", "per_variant_exact", "treatment_value", "alpha_per_comparison"}.
Example: select analytics.sample_size(baseline => 0.10, mde => 0.05);$$;

COMMENT ON FUNCTION analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer, text) IS
$$The smallest increase (relative by default) that a test with units_per_variant units in every variant detects with the given power; the inverse of sample_size, by the same method ('growthbook': GrowthBook's closed form; 'statsmodels'). Returns {"effect", "treatment_value", "alpha_per_comparison"}.
Example: select analytics.minimum_detectable_effect(baseline => 0.10, units_per_variant => 20000);$$;

COMMENT ON FUNCTION analytics.power_analysis(double precision, double precision, bigint, text, double precision, integer, double precision, double precision, text, double precision, double precision, double precision) IS
$$GrowthBook's power calculator for one metric: the power of an experiment with units in all (split evenly over variants) to detect the lift effect (0.05 = +5%) in a two-sided test, and the MDE, the smallest lift it detects with the given power. baseline is the control's conversion rate (metric_type 'binomial') or mean ('mean', with std_dev of the per-unit value); the control's variance is used for both groups, the lift's error by the delta method.
engine 'frequentist' (fixed horizon; sequential_tuning: GrowthBook's sequential testing, whose wider always-valid intervals lower the power) or 'bayesian' (flat prior, or the proper prior N(prior_mean, prior_std_dev²) on the lift; the MDE by GrowthBook's grid of 0.001 then 0.00001). Reproduces GrowthBook's own test figures to 5 decimals.
Returns {"power", "mde", "units_per_variant"}, with "mde": null and a "note" when no lift reaches the power.
Example: select analytics.power_analysis(baseline => 0.10, effect => 0.05, units => 100000);$$;

COMMENT ON FUNCTION analytics._adjusted_interval(double precision, double precision, double precision, double precision, double precision) IS
'Internal: the interval that goes with a corrected p-value, as GrowthBook''s ciAdjusted: effect ± z(1 - alpha/2)·|effect / z(1 - p_adjusted/2)| when that is wider than the interval given, the whole line when p_adjusted is 1; a one-sided interval (an end NULL: open) is kept but for the whole line, no interval stays NULL; {lower, upper}. Used by experiment_results and experiment_report.';

//! SQL bindings of the experiments capability: GrowthBook's assignment primitives. Pure functions (IMMUTABLE,
//! PARALLEL SAFE), safe for any caller; they read no table.

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{analysis, growthbook, power, stats};
use crate::bind::{required, AnalyticsError, OrRaise, Raise};
use crate::jsonb::JsonbText;

/// Bucket ranges as a two-dimensional `double precision[]` (n rows of [start, end]); n = 0 gives an empty array.
pub struct Ranges(Vec<(f64, f64)>);

impl IntoDatum for Ranges {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let mut elems: Vec<pg_sys::Datum> =
            self.0.iter().flat_map(|&(a, b)| [a.into_datum(), b.into_datum()]).map(|d| d.expect("float8")).collect();
        let mut dims = [self.0.len() as i32, 2];
        let mut lbs = [1, 1];
        let ndims = if self.0.is_empty() { 0 } else { 2 };
        unsafe {
            Some(pg_sys::Datum::from(pg_sys::construct_md_array(
                elems.as_mut_ptr(),
                std::ptr::null_mut(),
                ndims,
                dims.as_mut_ptr(),
                lbs.as_mut_ptr(),
                pg_sys::FLOAT8OID,
                8,
                true,
                b'd' as std::ffi::c_char,
            )))
        }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::FLOAT8ARRAYOID
    }
}

unsafe impl BoxRet for Ranges {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            Some(d) => unsafe { fcinfo.return_raw_datum(d) },
            None => fcinfo.return_null(),
        }
    }
}

impl_sql_translatable!(Ranges, "double precision[]");

/// `analytics.gb_hash(seed text, value text, version int) returns double precision`
///
/// GrowthBook's hash of a unit into [0, 1): FNV-1a 32-bit; version 1 `fnv32a(value || seed) % 1000 / 1000`,
/// version 2 `fnv32a(text of fnv32a(seed || value)) % 10000 / 10000`; NULL for any other version. Hashes UTF-8
/// bytes (the JavaScript SDK hashes UTF-16 code units; they agree on ASCII).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn gb_hash(seed: &str, value: &str, version: i32) -> Option<f64> {
    growthbook::hash(seed, value, version)
}

/// `analytics.equal_weights(n int) returns double precision[]`: n equal weights summing to 1 (empty for n <= 0; at most
/// 10000, as for bucket_ranges).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn equal_weights(n: i32) -> Vec<f64> {
    check_count(n);
    growthbook::equal_weights(n)
}

fn check_count(n: i32) {
    if n > 10_000 {
        AnalyticsError::invalid(format!("n: at most 10000 variations, got {n}")).raise();
    }
}

/// `analytics.bucket_ranges(n int, coverage float8 = 1, weights float8[] = NULL) returns double precision[]`
///
/// GrowthBook's getBucketRanges: one `[start, end)` pair per variation, as an n x 2 array. Coverage is clamped to
/// [0, 1]; weights missing, of the wrong length, or not summing to 1 within 0.01 are replaced by equal weights.
/// The result is a two-dimensional array, `ranges[i][1]` the start and `ranges[i][2]` the end of variation i-1.
#[pg_extern(immutable, parallel_safe)]
pub fn bucket_ranges(
    n: Option<i32>,
    coverage: default!(Option<f64>, 1.0),
    weights: default!(Option<Vec<Option<f64>>>, "NULL"),
) -> Ranges {
    let n = required(n, "n");
    check_count(n);
    // a NULL inside the weights makes them invalid, like a wrong length: equal weights
    let weights: Option<Vec<f64>> = weights.and_then(|w| w.into_iter().collect());
    Ranges(growthbook::bucket_ranges(n, coverage.unwrap_or(1.0), weights.as_deref()))
}

/// `analytics.choose_variation(x float8, ranges float8[][]) returns int`
///
/// GrowthBook's chooseVariation: the 0-based index of the range with `start <= x < end`, or -1.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn choose_variation(x: f64, ranges: pgrx::Array<'_, f64>) -> i32 {
    let flat: Vec<Option<f64>> = ranges.iter().collect();
    if flat.len() % 2 != 0 || flat.iter().any(Option::is_none) {
        AnalyticsError::invalid("ranges: must be an array of [start, end] pairs without NULLs").raise();
    }
    let pairs: Vec<(f64, f64)> = flat.chunks(2).map(|p| (p[0].unwrap_or(0.0), p[1].unwrap_or(0.0))).collect();
    growthbook::choose_variation(x, &pairs).map_or(-1, |i| i as i32)
}

/// `analytics.in_namespace(unit text, namespace text, range_start float8, range_end float8) returns boolean`
///
/// GrowthBook's inNamespace: whether the unit's hash with seed `'__' || namespace` (version 1) is in
/// `[range_start, range_end)`.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn in_namespace(unit: &str, namespace: &str, range_start: f64, range_end: f64) -> bool {
    growthbook::in_namespace(unit, namespace, range_start, range_end)
}

/// `analytics._gb_decide(experiment_key, seed, hash_version, variations, weights, coverage, namespace_name,
/// namespace_start, namespace_end, unit_id) returns table(variation int, hash_value float8)`
///
/// GrowthBook's decision for one unit (`analytics_core::experiments::growthbook::Assignment::decide`): one row
/// with the 0-based variation and the unit's hash, or no row when the unit is not in the experiment (fewer than
/// two variations, empty unit id, outside the namespace or the coverage, unknown hash version). The one
/// implementation of assignment: `analytics.assign_variant` / `peek_variant` call it through `_assignment`, and
/// GrowthBook's cross-SDK `run` cases are checked through it and through `peek_variant` (#[pg_test]s below).
#[pg_extern(immutable, parallel_safe, name = "_gb_decide")]
#[allow(clippy::too_many_arguments)]
pub fn gb_decide(
    experiment_key: Option<&str>,
    seed: Option<&str>,
    hash_version: Option<i32>,
    variations: Option<i32>,
    weights: Option<Vec<Option<f64>>>,
    coverage: Option<f64>,
    namespace_name: Option<&str>,
    namespace_start: Option<f64>,
    namespace_end: Option<f64>,
    unit_id: Option<&str>,
) -> TableIterator<'static, (name!(variation, i32), name!(hash_value, f64))> {
    let (experiment_key, unit_id) = (required(experiment_key, "experiment_key"), required(unit_id, "unit_id"));
    let (hash_version, variations) = (required(hash_version, "hash_version"), required(variations, "variations"));
    let coverage = required(coverage, "coverage");
    check_count(variations);
    // like bucket_ranges: weights with a NULL are invalid weights, and GrowthBook then uses equal weights
    let weights: Option<Vec<f64>> = weights.and_then(|w| w.into_iter().collect());
    let assignment = growthbook::Assignment {
        key: experiment_key,
        seed,
        hash_version,
        variations: variations.max(0) as usize,
        weights: weights.as_deref(),
        coverage,
        namespace: namespace_name.map(|n| (n, namespace_start.unwrap_or(0.0), namespace_end.unwrap_or(1.0))),
    };
    let decision = assignment.decide(unit_id);
    let row = match (decision.variation, decision.hash) {
        (Some(v), Some(h)) => Some((v as i32, h)),
        _ => None,
    };
    TableIterator::new(row)
}

/// The elements of an array argument, or an error naming the first NULL one (`name[i]: must not be NULL`).
fn no_nulls<T: Copy>(values: &[Option<T>], name: &str) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v.unwrap_or_else(|| AnalyticsError::invalid(format!("{name}[{i}]: must not be NULL")).raise()))
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> pgrx::JsonB {
    pgrx::JsonB(serde_json::to_value(v).expect("results serialise"))
}

/// `analytics.welch_t_test(n1, mean1, var1, n2, mean2, var2, relative = false, alpha = 0.05) returns jsonb`
///
/// Welch's t-test of the treatment (group 2) against the control (group 1) from group sizes, means and sample
/// variances: effect (difference, or relative lift `mean2/mean1 - 1` with a delta-method error), standard error,
/// t, Welch-Satterthwaite df, two-sided p-value, confidence interval at 1 - alpha, significance. Degenerate data
/// (n < 2, zero variance, a control mean of 0 for a lift) gives NULLs or exact answers with a `note`, never NaN.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn welch_t_test(
    n1: i64,
    mean1: f64,
    var1: f64,
    n2: i64,
    mean2: f64,
    var2: f64,
    relative: default!(bool, false),
    alpha: default!(f64, 0.05),
) -> pgrx::JsonB {
    json(&stats::welch_t_test(n1 as f64, mean1, var1, n2 as f64, mean2, var2, relative, alpha).or_raise())
}

/// `analytics.two_proportion_z_test(x1, n1, x2, n2, relative = false, alpha = 0.05) returns jsonb`
///
/// Conversion rates `x2/n2` (treatment) against `x1/n1` (control): pooled z-test (as statsmodels'
/// proportions_ztest), unpooled (Wald) interval for the difference, or the relative lift with a delta-method
/// interval.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn two_proportion_z_test(
    x1: i64,
    n1: i64,
    x2: i64,
    n2: i64,
    relative: default!(bool, false),
    alpha: default!(f64, 0.05),
) -> pgrx::JsonB {
    json(&stats::two_proportion_z_test(x1 as f64, n1 as f64, x2 as f64, n2 as f64, relative, alpha).or_raise())
}

/// `analytics.srm_check(observed int[], weights float8[]) returns jsonb`
///
/// Sample ratio mismatch: chi-square goodness of fit of the observed group sizes to the planned weights;
/// `srm` is true when p < 0.001.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn srm_check(observed: Vec<Option<i32>>, weights: Vec<Option<f64>>) -> pgrx::JsonB {
    let observed: Vec<f64> = no_nulls(&observed, "observed").into_iter().map(f64::from).collect();
    json(&stats::srm_check(&observed, &no_nulls(&weights, "weights")).or_raise())
}

/// `analytics.adjust_p_values(p_values float8[], method text = 'holm') returns float8[]`
///
/// Multiple-comparison corrections, in the input order: `'holm'` (Holm-Bonferroni, family-wise error) or `'bh'`
/// (Benjamini-Hochberg, false discovery rate).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn adjust_p_values(p_values: Vec<Option<f64>>, method: default!(&str, "'holm'")) -> Vec<f64> {
    let p = no_nulls(&p_values, "p_values");
    match method {
        "holm" => stats::holm(&p),
        "bh" | "benjamini_hochberg" => stats::benjamini_hochberg(&p),
        other => Err(AnalyticsError::invalid(format!("method: unknown correction \"{other}\"; allowed: holm, bh"))),
    }
    .or_raise()
}

/// `analytics._adjusted_interval(effect, ci_lower, ci_upper, adjusted_p_value, alpha) returns float8[]`
///
/// The interval that goes with a corrected p-value, as GrowthBook's `ciAdjusted` (`stats::adjusted_interval`):
/// `{lower, upper}`, an open end (a one-sided test's) NULL as given. NULL without an effect, a p-value or alpha.
/// Used by `experiment_results` and `experiment_report`.
#[pg_extern(name = "_adjusted_interval", immutable, parallel_safe)]
pub fn adjusted_interval(
    effect: Option<f64>,
    ci_lower: Option<f64>,
    ci_upper: Option<f64>,
    adjusted_p_value: Option<f64>,
    alpha: Option<f64>,
) -> Option<Vec<Option<f64>>> {
    let (lo, hi) = stats::adjusted_interval(effect?, ci_lower, ci_upper, adjusted_p_value?, alpha?).or_raise();
    Some(vec![lo, hi])
}

fn moments(v: serde_json::Value, name: &str) -> analysis::Moments {
    serde_json::from_value(v).unwrap_or_else(|e| {
        AnalyticsError::invalid(format!(
            "{name}: must be an object of numbers n, sum, sum_squares (and den_sum, den_sum_squares, cross_sum for a \
             ratio; pre_sum, pre_sum_squares, pre_cross_sum for CUPED, and pre_den_sum, pre_den_sum_squares, \
             pre_den_cross_sum, pre_ratio_cross_sum, post_num_pre_den_sum, pre_num_post_den_sum for CUPED of a ratio; \
             quantile_level, quantile_n, quantile_nstar, quantile, quantile_lower, quantile_upper for a quantile): {e}"
        ))
        .raise()
    })
}

/// `analytics.compare_groups(control jsonb, treatment jsonb, metric_type = 'mean', relative = true, alpha = 0.05,
/// cuped = false, sequential_tuning = 5000, lower_is_better = false, prior_mean = NULL, prior_variance = NULL,
/// alternative = 'two-sided') returns jsonb`
///
/// A treatment against its control from the moments of their per-unit values (`{"n", "sum", "sum_squares"}`,
/// plus `den_sum`, `den_sum_squares`, `cross_sum` for a ratio metric and `pre_sum`, `pre_sum_squares`,
/// `pre_cross_sum` of a pre-assignment covariate for CUPED, and for CUPED of a ratio the pre-period denominator's
/// `pre_den_sum`, `pre_den_sum_squares` and cross products): the frequentist test, the Bayesian view (chance to beat
/// control, expected loss, posterior mean and credible interval; GrowthBook's flat prior, or its informative
/// Gaussian prior N(prior_mean, prior_variance) on the effect), the always-valid sequential p-value and confidence
/// sequence, and CUPED's theta and variance reduction; `alternative` 'greater' or 'less' makes the frequentist and
/// sequential tests one-sided. This is what experiment_results computes for each variant.
/// The SQL signature is 0.2.0's (the prior, the alternative); 0.1.0's function keeps its symbol below.
#[pg_extern(name = "compare_groups", immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn compare_two_groups(
    control: Option<JsonbText>,
    treatment: Option<JsonbText>,
    metric_type: default!(Option<&str>, "'mean'"),
    relative: default!(Option<bool>, true),
    alpha: default!(Option<f64>, 0.05),
    cuped: default!(Option<bool>, false),
    sequential_tuning: default!(Option<f64>, 5000.0),
    lower_is_better: default!(Option<bool>, false),
    prior_mean: default!(Option<f64>, "NULL"),
    prior_variance: default!(Option<f64>, "NULL"),
    alternative: default!(Option<&str>, "'two-sided'"),
) -> pgrx::JsonB {
    let options = analysis::CompareOptions {
        metric_type: analysis::MetricType::parse(required(metric_type, "metric_type")).or_raise(),
        relative: required(relative, "relative"),
        alpha: required(alpha, "alpha"),
        cuped: required(cuped, "cuped"),
        sequential_tuning: required(sequential_tuning, "sequential_tuning"),
        lower_is_better: required(lower_is_better, "lower_is_better"),
        prior: analysis::GaussianPrior::from_args(prior_mean, prior_variance).or_raise(),
        alternative: analysis::Alternative::parse(required(alternative, "alternative")).or_raise(),
    };
    let (control, treatment) = (required(control, "control"), required(treatment, "treatment"));
    json(&analysis::compare(&moments(control.parse("control"), "control"), &moments(treatment.parse("treatment"), "treatment"), &options).or_raise())
}

/// The 0.1.0 SQL's `analytics.compare_groups` (symbol `compare_groups_wrapper`, STRICT, flat prior): kept, without
/// SQL of its own, so that a database still at 0.1.0 works with this library (docs/upgrading.md).
#[pg_extern(sql = false, immutable, strict, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn compare_groups(
    control: JsonbText,
    treatment: JsonbText,
    metric_type: &str,
    relative: bool,
    alpha: f64,
    cuped: bool,
    sequential_tuning: f64,
    lower_is_better: bool,
) -> pgrx::JsonB {
    compare_two_groups(Some(control), Some(treatment), Some(metric_type), Some(relative), Some(alpha), Some(cuped),
        Some(sequential_tuning), Some(lower_is_better), None, None, Some("two-sided"))
}

/// The plan of a test from the arguments sample_size and minimum_detectable_effect share; every one but std_dev
/// is required.
#[allow(clippy::too_many_arguments)]
fn plan(
    metric_type: Option<&str>,
    baseline: Option<f64>,
    std_dev: Option<f64>,
    relative: Option<bool>,
    alpha: Option<f64>,
    power: Option<f64>,
    variants: Option<i32>,
) -> power::Plan {
    let metric_type = match analysis::MetricType::parse(required(metric_type, "metric_type")).or_raise() {
        analysis::MetricType::Ratio => {
            AnalyticsError::invalid("metric_type: must be binomial or mean for planning, got \"ratio\"").raise()
        }
        t => t,
    };
    let baseline = required(baseline, "baseline");
    let (relative, alpha, power) = (required(relative, "relative"), required(alpha, "alpha"), required(power, "power"));
    let variants = required(variants, "variants");
    if variants < 2 {
        AnalyticsError::invalid(format!("variants: a test needs at least 2 variants (control included), got {variants}")).raise();
    }
    power::Plan { metric_type, baseline, std_dev, relative, alpha, power, variants: variants as u32, method: power::PowerMethod::Statsmodels }
}

fn method(method: Option<&str>) -> power::PowerMethod {
    power::PowerMethod::parse(required(method, "method")).or_raise()
}

/// `analytics.sample_size(baseline, mde, metric_type = 'binomial', std_dev = NULL, relative = true, alpha = 0.05,
/// power = 0.8, variants = 2, method = 'growthbook') returns jsonb`
///
/// Units per variant to detect `mde` (relative by default) with the given power: per_variant (rounded up), total,
/// per_variant_exact, treatment_value, alpha_per_comparison. `method`: `growthbook` (GrowthBook's calculator) or
/// `statsmodels` (`analytics_core::experiments::power`). The SQL name is new in 0.2.0's signature; the 0.1.0
/// function (statsmodels, no `method`) keeps its symbol below.
#[pg_extern(name = "sample_size", immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn plan_sample_size(
    baseline: Option<f64>,
    mde: Option<f64>,
    metric_type: default!(Option<&str>, "'binomial'"),
    std_dev: default!(Option<f64>, "NULL"),
    relative: default!(Option<bool>, true),
    alpha: default!(Option<f64>, 0.05),
    power: default!(Option<f64>, 0.8),
    variants: default!(Option<i32>, 2),
    method: default!(Option<&str>, "'growthbook'"),
) -> pgrx::JsonB {
    let p = power::Plan { method: self::method(method), ..plan(metric_type, baseline, std_dev, relative, alpha, power, variants) };
    json(&power::sample_size(&p, required(mde, "mde")).or_raise())
}

/// `analytics.minimum_detectable_effect(baseline, units_per_variant, metric_type = 'binomial', std_dev = NULL,
/// relative = true, alpha = 0.05, power = 0.8, variants = 2, method = 'growthbook') returns jsonb`
///
/// The smallest increase (relative by default) a test with `units_per_variant` units in each variant detects
/// with the given power: effect, treatment_value, alpha_per_comparison.
#[pg_extern(name = "minimum_detectable_effect", immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn plan_minimum_detectable_effect(
    baseline: Option<f64>,
    units_per_variant: Option<i64>,
    metric_type: default!(Option<&str>, "'binomial'"),
    std_dev: default!(Option<f64>, "NULL"),
    relative: default!(Option<bool>, true),
    alpha: default!(Option<f64>, 0.05),
    power: default!(Option<f64>, 0.8),
    variants: default!(Option<i32>, 2),
    method: default!(Option<&str>, "'growthbook'"),
) -> pgrx::JsonB {
    let p = power::Plan { method: self::method(method), ..plan(metric_type, baseline, std_dev, relative, alpha, power, variants) };
    json(&power::minimum_detectable_effect(&p, required(units_per_variant, "units_per_variant") as f64).or_raise())
}

/// `analytics.power_analysis(baseline, effect, units, metric_type = 'binomial', std_dev = NULL, variants = 2,
/// alpha = 0.05, power = 0.8, engine = 'frequentist', sequential_tuning = NULL, prior_mean = NULL,
/// prior_std_dev = NULL) returns jsonb`
///
/// GrowthBook's power calculator for one metric: the power of an experiment with `units` in all (split evenly over
/// `variants`) to detect the lift `effect`, and the MDE (the smallest lift) at `power`; frequentist (fixed horizon,
/// or sequential with `sequential_tuning`) or Bayesian (flat prior, or the proper prior N(prior_mean,
/// prior_std_dev²) on the lift). `analytics_core::experiments::power::power_analysis`.
#[pg_extern(immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn power_analysis(
    baseline: Option<f64>,
    effect: Option<f64>,
    units: Option<i64>,
    metric_type: default!(Option<&str>, "'binomial'"),
    std_dev: default!(Option<f64>, "NULL"),
    variants: default!(Option<i32>, 2),
    alpha: default!(Option<f64>, 0.05),
    power: default!(Option<f64>, 0.8),
    engine: default!(Option<&str>, "'frequentist'"),
    sequential_tuning: default!(Option<f64>, "NULL"),
    prior_mean: default!(Option<f64>, "NULL"),
    prior_std_dev: default!(Option<f64>, "NULL"),
) -> pgrx::JsonB {
    let p = plan(metric_type, baseline, std_dev, Some(true), alpha, power, variants);
    let engine = match required(engine, "engine") {
        "frequentist" => power::Engine::Frequentist { sequential_tuning },
        "bayesian" if sequential_tuning.is_some() => {
            AnalyticsError::invalid("sequential_tuning: applies to the frequentist engine (GrowthBook's sequential testing)").raise()
        }
        "bayesian" => power::Engine::Bayesian {
            prior: match (prior_mean, prior_std_dev) {
                (Some(m), Some(sd)) => Some((m, sd)),
                (None, None) => None,
                _ => AnalyticsError::invalid("prior_mean, prior_std_dev: give both (a proper prior on the lift) or neither (flat)").raise(),
            },
        },
        other => AnalyticsError::invalid(format!("engine: must be frequentist or bayesian, got \"{other}\"")).raise(),
    };
    if matches!(engine, power::Engine::Frequentist { .. }) && (prior_mean.is_some() || prior_std_dev.is_some()) {
        AnalyticsError::invalid("prior_mean, prior_std_dev: apply to the bayesian engine").raise();
    }
    let plan = power::PowerPlan {
        metric_type: p.metric_type,
        baseline: p.baseline,
        std_dev: p.std_dev,
        variants: p.variants,
        alpha: p.alpha,
        engine,
    };
    json(&power::power_analysis(&plan, required(effect, "effect"), required(units, "units") as f64, p.power).or_raise())
}

/// The 0.1.0 SQL's `analytics.sample_size` (symbol `sample_size_wrapper`, statsmodels): kept, without SQL of its
/// own, so that a database still at 0.1.0 works with this library (docs/upgrading.md).
#[pg_extern(sql = false, immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn sample_size(
    baseline: Option<f64>,
    mde: Option<f64>,
    metric_type: Option<&str>,
    std_dev: Option<f64>,
    relative: Option<bool>,
    alpha: Option<f64>,
    power: Option<f64>,
    variants: Option<i32>,
) -> pgrx::JsonB {
    plan_sample_size(baseline, mde, metric_type, std_dev, relative, alpha, power, variants, Some("statsmodels"))
}

/// The 0.1.0 SQL's `analytics.minimum_detectable_effect` (symbol `minimum_detectable_effect_wrapper`), kept like
/// `sample_size`.
#[pg_extern(sql = false, immutable, parallel_safe)]
#[allow(clippy::too_many_arguments)]
pub fn minimum_detectable_effect(
    baseline: Option<f64>,
    units_per_variant: Option<i64>,
    metric_type: Option<&str>,
    std_dev: Option<f64>,
    relative: Option<bool>,
    alpha: Option<f64>,
    power: Option<f64>,
    variants: Option<i32>,
) -> pgrx::JsonB {
    plan_minimum_detectable_effect(baseline, units_per_variant, metric_type, std_dev, relative, alpha, power, variants, Some("statsmodels"))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value;

    use super::growthbook;

    const CASES: &str = include_str!("../../tests/data/growthbook/cases.json");

    /// GrowthBook's `run` cases, end to end through SQL: every case through `analytics._gb_decide` (the one
    /// assignment decision), and every case an experiment can express (two or more variations, a unit id, valid
    /// weights) through `create_experiment` + `start_experiment` + `peek_variant` + `assign_variant`, each case as
    /// its own user so experiment keys can repeat.
    #[pg_test]
    fn growthbook_run_cases_pass_through_assign_variant() {
        let cases: Value = serde_json::from_str(CASES).unwrap();
        let (mut decided, mut through_experiments) = (0, 0);
        for (i, case) in growthbook::run_cases(&cases).into_iter().enumerate() {
            let growthbook::RunCase { name, key, seed, hash_version, variations, weights, coverage, namespace: ns, unit, .. } = case.clone();
            let n = variations.len() as i32;
            let (key, seed) = (key.as_str(), seed.as_deref());
            let want_variation = case.expected_variation();
            let (want_in, want_hash) = (case.in_experiment, case.hash_used);

            let row = Spi::get_two_with_args::<i32, f64>(
                "select variation, hash_value from analytics._gb_decide($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    key.into(),
                    seed.into(),
                    hash_version.into(),
                    n.into(),
                    weights.clone().into(),
                    coverage.into(),
                    ns.as_ref().map(|n| n.0.clone()).into(),
                    ns.as_ref().map(|n| n.1).into(),
                    ns.as_ref().map(|n| n.2).into(),
                    unit.clone().unwrap_or_default().into(),
                ],
            );
            let (variation, hash) = match row {
                Ok((v, h)) => (v, h),
                Err(pgrx::spi::Error::InvalidPosition) => (None, None),
                Err(e) => panic!("run {name}: {e}"),
            };
            assert_eq!(variation.map(|v| v as usize), want_variation, "run {name}: _gb_decide variation");
            assert_eq!(hash.is_some(), want_hash, "run {name}: _gb_decide hashUsed");
            decided += 1;

            // the same case as a stored experiment, when an experiment can express it
            let weights_ok = weights.as_ref().map_or(true, |w| {
                w.len() == variations.len() && w.iter().all(|x| (0.0..=1.0).contains(x)) && (w.iter().sum::<f64>() - 1.0).abs() <= 1e-9
            });
            let Some(unit) = unit.filter(|u| !u.is_empty()) else { continue };
            if n < 2 || !weights_ok || !(0.0..=1.0).contains(&coverage) {
                continue;
            }
            Spi::run(&format!(
                "select set_config('request.jwt.claims', '{{\"sub\":\"00000000-0000-4000-8000-{i:012}\",\"role\":\"authenticated\"}}', true)"
            ))
            .unwrap();
            let variants: Vec<Value> = (0..variations.len())
                .map(|k| match &weights {
                    Some(w) => serde_json::json!({"key": format!("v{k}"), "weight": w[k]}),
                    None => serde_json::json!({"key": format!("v{k}")}),
                })
                .collect();
            Spi::run_with_args(
                "select analytics.create_experiment(key => $1, name => $1, variants => $2, seed => $3, hash_version => $4,
                        coverage => $5, namespace_name => $6, namespace_start => $7, namespace_end => $8)",
                &[
                    key.into(),
                    pgrx::JsonB(Value::Array(variants)).into(),
                    seed.into(),
                    hash_version.into(),
                    coverage.into(),
                    ns.as_ref().map(|n| n.0.clone()).into(),
                    ns.as_ref().map(|n| n.1).into(),
                    ns.as_ref().map(|n| n.2).into(),
                ],
            )
            .unwrap();
            Spi::run_with_args("select analytics.start_experiment($1)", &[key.into()]).unwrap();
            for function in ["peek_variant", "assign_variant"] {
                let (in_experiment, variation) = Spi::get_two_with_args::<bool, i32>(
                    &format!("select in_experiment, variation from analytics.{function}($1, $2)"),
                    &[key.into(), unit.clone().into()],
                )
                .unwrap();
                assert_eq!(in_experiment, Some(want_in), "run {name}: {function} in_experiment");
                assert_eq!(variation.map(|v| v as usize), want_variation, "run {name}: {function} variation");
            }
            through_experiments += 1;
        }
        assert_eq!(decided, 49, "run cases through _gb_decide");
        // the other 5 have one variation, no unit id, or weights/coverage an experiment refuses (tested elsewhere)
        assert_eq!(through_experiments, 44, "run cases through create_experiment + assign_variant");
    }

    /// The SQL functions agree with the GrowthBook cases too (the pure module is checked case by case in its
    /// unit test; this checks the bindings: argument passing, NULLs, arrays).
    #[pg_test]
    fn sql_functions_pass_the_growthbook_cases() {
        let cases: Value = serde_json::from_str(CASES).unwrap();
        for c in cases["hash"].as_array().unwrap() {
            let got = Spi::get_one_with_args::<f64>(
                "select analytics.gb_hash($1, $2, $3)",
                &[c[0].as_str().unwrap().into(), c[1].as_str().unwrap().into(), (c[2].as_i64().unwrap() as i32).into()],
            )
            .unwrap();
            assert_eq!(got, c[3].as_f64(), "gb_hash {c}");
        }
        for c in cases["inNamespace"].as_array().unwrap() {
            let ns = &c[2];
            let got = Spi::get_one_with_args::<bool>(
                "select analytics.in_namespace($1, $2, $3, $4)",
                &[c[1].as_str().unwrap().into(), ns[0].as_str().unwrap().into(), ns[1].as_f64().unwrap().into(), ns[2].as_f64().unwrap().into()],
            )
            .unwrap();
            assert_eq!(got, c[3].as_bool(), "in_namespace {}", c[0]);
        }
        for c in cases["getBucketRange"].as_array().unwrap() {
            let args = &c[1];
            let weights: Option<Vec<f64>> = args[2].as_array().map(|w| w.iter().map(|x| x.as_f64().unwrap()).collect());
            let got = Spi::get_one_with_args::<String>(
                "select array(select floor(x * 1e8) / 1e8 from unnest(analytics.bucket_ranges($1, $2, $3)) x)::text",
                &[(args[0].as_i64().unwrap() as i32).into(), args[1].as_f64().unwrap().into(), weights.into()],
            )
            .unwrap()
            .unwrap();
            let want: Vec<String> = c[2]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| format!("{}", (x.as_f64().unwrap() * 1e8).floor() / 1e8)))
                .collect();
            assert_eq!(got, format!("{{{}}}", want.join(",")), "bucket_ranges {}", c[0]);
        }
        for c in cases["chooseVariation"].as_array().unwrap() {
            let ranges: Vec<String> =
                c[2].as_array().unwrap().iter().map(|r| format!("{{{},{}}}", r[0], r[1])).collect();
            let got = Spi::get_one_with_args::<i32>(
                "select analytics.choose_variation($1, $2::float8[][])",
                &[c[1].as_f64().unwrap().into(), format!("{{{}}}", ranges.join(",")).into()],
            )
            .unwrap();
            assert_eq!(got.map(i64::from), c[3].as_i64(), "choose_variation {}", c[0]);
        }
    }

    #[pg_test]
    fn unknown_hash_version_is_null_and_ranges_have_two_columns() {
        assert_eq!(Spi::get_one::<f64>("select analytics.gb_hash('a', 'b', 3)").unwrap(), None);
        assert_eq!(Spi::get_one::<i32>("select array_length(analytics.bucket_ranges(3), 2)").unwrap(), Some(2));
        assert_eq!(Spi::get_one::<i32>("select analytics.choose_variation(0.99, analytics.bucket_ranges(2, 0.5))").unwrap(), Some(-1));
    }

    #[pg_test]
    fn statistics_functions_in_sql() {
        // GrowthBook's published case, from sums and sums of squares
        let r = Spi::get_one::<pgrx::JsonB>(
            "select analytics.welch_t_test(3407, 1396.87 / 3407, (52377.9767 - 1396.87 ^ 2 / 3407) / 3406,
                                           3461, 2422.7 / 3461, (134698.29 - 2422.7 ^ 2 / 3461) / 3460, relative => true)",
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!((r["effect"].as_f64().unwrap() * 1e5).round() / 1e5, 0.70732);
        assert_eq!((r["p_value"].as_f64().unwrap() * 1e5).round() / 1e5, 0.06191);
        let z = Spi::get_one::<pgrx::JsonB>("select analytics.two_proportion_z_test(116, 1000, 129, 1000)").unwrap().unwrap().0;
        assert_eq!(z["significant"], false);
        let s = Spi::get_one::<pgrx::JsonB>("select analytics.srm_check('{5300,4700}', '{0.5,0.5}')").unwrap().unwrap().0;
        assert_eq!(s["srm"], true);
        let holm = Spi::get_one::<Vec<f64>>("select analytics.adjust_p_values('{0.01,0.04,0.03,0.005,0.55,0.6}')").unwrap().unwrap();
        assert_eq!(holm.iter().map(|x| (x * 1e6).round() / 1e6).collect::<Vec<_>>(), [0.05, 0.12, 0.12, 0.03, 1.0, 1.0]);
    }

    #[pg_test(error = "method: unknown correction \"bonferroni\"; allowed: holm, bh")]
    fn unknown_correction_is_rejected() {
        Spi::run("select analytics.adjust_p_values('{0.1}', 'bonferroni')").unwrap();
    }

    #[pg_test(error = "ranges: must be an array of [start, end] pairs without NULLs")]
    fn malformed_ranges_are_rejected() {
        Spi::run("select analytics.choose_variation(0.5, '{0, 0.5, 1}'::float8[])").unwrap();
    }
}

/// `analytics._quantile_grid(quantile double precision) returns double precision[]`: the 41 levels a quantile
/// metric's order statistics are taken at (ν, then ν ∓ 1.96·sqrt(ν(1 - ν)/n*) for GrowthBook's grid of n*); 22023
/// naming `quantile` outside (0, 1). Declared in sql/022_experiments_lifecycle.sql.
#[pg_extern(sql = false, immutable, strict, parallel_safe)]
pub fn quantile_grid(quantile: f64) -> Vec<f64> {
    analysis::quantile_grid(quantile).or_raise()
}

/// `analytics._quantile_bounds(n bigint, grid double precision[]) returns double precision[]`: from the order
/// statistics at `_quantile_grid`'s levels over n values, {n*, lower, upper} for the largest n* below n.
#[pg_extern(sql = false, immutable, strict, parallel_safe)]
pub fn quantile_bounds(n: i64, grid: pgrx::Array<'_, f64>) -> Vec<f64> {
    let values: Vec<f64> = grid.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let (nstar, lower, upper) = analysis::pick_quantile_bounds(n as f64, &values)
        .ok_or_else(|| AnalyticsError::invalid(format!("grid: must have 41 order statistics, got {}", values.len())))
        .or_raise();
    vec![nstar, lower, upper]
}

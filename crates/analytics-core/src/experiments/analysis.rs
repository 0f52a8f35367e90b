//! Comparing a treatment with its control from sufficient statistics ("moments") of the per-unit values:
//! binomial, mean and ratio metrics, CUPED variance reduction, the Bayesian view (chance to beat control,
//! expected loss) and the sequential view (always-valid p-value and confidence sequence). Plain Rust, no database;
//! checked against scipy in `tests/data/stats/reference.json`.
//!
//! The moments of a group are sums over its units, so the database computes them in one aggregate pass:
//! `n`, `sum` (Σy), `sum_squares` (Σy²); for ratio metrics the per-unit denominator d: `den_sum` (Σd),
//! `den_sum_squares` (Σd²), `cross_sum` (Σyd); for CUPED the unit's pre-assignment value x of the same metric:
//! `pre_sum` (Σx), `pre_sum_squares` (Σx²), `pre_cross_sum` (Σxy); for CUPED of a ratio metric also x's
//! denominator e: `pre_den_sum` (Σe), `pre_den_sum_squares` (Σe²), `pre_den_cross_sum` (Σed), `pre_ratio_cross_sum`
//! (Σxe), `post_num_pre_den_sum` (Σye), `pre_num_post_den_sum` (Σxd).

use serde::{Deserialize, Serialize};
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

use super::stats::{self, TestResult};
use crate::errors::AnalyticsError;

/// GrowthBook's default tuning parameter N* of its sequential testing: the total sample size at which the
/// confidence sequence is tightest.
pub const DEFAULT_SEQUENTIAL_TUNING: f64 = 5000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// per unit 0 or 1 (converted or not): the share of units converting
    Binomial,
    /// per unit any number: the mean per unit
    Mean,
    /// per unit a numerator y and a denominator d (e.g. total latency and spans): Σy / Σd, delta method
    Ratio,
    /// a quantile of the per-unit values (GrowthBook's unit quantile metric, gbstats' QuantileStatistic): its
    /// variance from the order statistics around it
    Quantile,
    /// a quantile of every event's value, the events clustered in their units (GrowthBook's event quantile metric,
    /// gbstats' QuantileClusteredStatistic)
    QuantileEvent,
}

impl MetricType {
    pub fn parse(s: &str) -> Result<MetricType, AnalyticsError> {
        match s {
            "binomial" => Ok(MetricType::Binomial),
            "mean" => Ok(MetricType::Mean),
            "ratio" => Ok(MetricType::Ratio),
            "quantile" => Ok(MetricType::Quantile),
            "quantile_event" => Ok(MetricType::QuantileEvent),
            other => Err(AnalyticsError::invalid(format!(
                "metric_type: must be binomial, mean, ratio, quantile or quantile_event, got \"{other}\""
            ))),
        }
    }
}

/// Sufficient statistics of one group's per-unit values (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Moments {
    pub n: f64,
    pub sum: f64,
    pub sum_squares: f64,
    #[serde(default)]
    pub den_sum: Option<f64>,
    #[serde(default)]
    pub den_sum_squares: Option<f64>,
    #[serde(default)]
    pub cross_sum: Option<f64>,
    #[serde(default)]
    pub pre_sum: Option<f64>,
    #[serde(default)]
    pub pre_sum_squares: Option<f64>,
    #[serde(default)]
    pub pre_cross_sum: Option<f64>,
    /// CUPED of a ratio metric (gbstats' RegressionAdjustedRatioStatistic): the pre-assignment numerator is x
    /// (pre_sum, pre_sum_squares; pre_cross_sum = Σ x·y) and its denominator e: Σe, Σe², and the cross products
    /// Σ e·d (with the post denominator d), Σ x·e, Σ y·e and Σ x·d.
    #[serde(default)]
    pub pre_den_sum: Option<f64>,
    #[serde(default)]
    pub pre_den_sum_squares: Option<f64>,
    #[serde(default)]
    pub pre_den_cross_sum: Option<f64>,
    #[serde(default)]
    pub pre_ratio_cross_sum: Option<f64>,
    #[serde(default)]
    pub post_num_pre_den_sum: Option<f64>,
    #[serde(default)]
    pub pre_num_post_den_sum: Option<f64>,
    /// quantile metrics: the quantile level ν (0.95 for p95), the number of values it is taken over (units, or
    /// events for an event quantile), the sample quantile, and the order statistics at the levels
    /// ν ∓ z·sqrt(ν(1 - ν)/n*) for the grid size n* (`quantile_grid` / `pick_quantile_bounds`). For an event
    /// quantile `n` is the number of units (clusters) and sum, sum_squares, den_sum, den_sum_squares, cross_sum are
    /// over units: the unit's events at or below the quantile, and its events.
    #[serde(default)]
    pub quantile_level: Option<f64>,
    #[serde(default)]
    pub quantile_n: Option<f64>,
    #[serde(default)]
    pub quantile_nstar: Option<f64>,
    #[serde(default)]
    pub quantile: Option<f64>,
    #[serde(default)]
    pub quantile_lower: Option<f64>,
    #[serde(default)]
    pub quantile_upper: Option<f64>,
}

/// GrowthBook's grid of n* (its N_STAR_VALUES): the order statistics bounding a quantile are taken at the levels
/// ν ∓ z·sqrt(ν(1 - ν)/n*) for the largest n* below the number of values.
pub const QUANTILE_NSTAR: [f64; 20] = [
    100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0, 25600.0, 51200.0, 102400.0, 204800.0, 409600.0,
    819200.0, 1638400.0, 3276800.0, 6553600.0, 13107200.0, 26214400.0, 52428800.0,
];

fn z_975() -> f64 {
    Normal::new(0.0, 1.0).expect("standard normal").inverse_cdf(0.975)
}

/// The levels to take order statistics at for a quantile ν: ν itself, then for each n* of `QUANTILE_NSTAR` the
/// lower and upper level ν ∓ 1.96·sqrt(ν(1 - ν)/n*), clamped to [1e-8, 1 - 1e-8] (41 levels).
pub fn quantile_grid(nu: f64) -> Result<Vec<f64>, AnalyticsError> {
    if !(nu > 0.0 && nu < 1.0) {
        return Err(AnalyticsError::invalid(format!("quantile: must be between 0 and 1 (0.95 for the 95th percentile), got {nu}")));
    }
    let z = z_975();
    let mut levels = vec![nu];
    for nstar in QUANTILE_NSTAR {
        let se = (nu * (1.0 - nu) / nstar).sqrt();
        levels.push((nu - z * se).max(1e-8));
        levels.push((nu + z * se).min(0.999_999_99));
    }
    Ok(levels)
}

/// From the order statistics at `quantile_grid`'s levels over `n` values: (n*, lower, upper) for the largest n*
/// below n (the smallest n* when none is).
pub fn pick_quantile_bounds(n: f64, values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.len() != 1 + 2 * QUANTILE_NSTAR.len() {
        return None;
    }
    let k = QUANTILE_NSTAR.iter().rposition(|&nstar| nstar < n).unwrap_or(0);
    Some((QUANTILE_NSTAR[k], values[1 + 2 * k], values[2 + 2 * k]))
}

/// Options of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    pub metric_type: MetricType,
    pub relative: bool,
    pub alpha: f64,
    pub cuped: bool,
    pub sequential_tuning: f64,
    /// for costs, latencies and error rates: "better" means lower in the Bayesian view
    pub lower_is_better: bool,
    /// GrowthBook's informative ("proper") Gaussian prior on the effect (the relative lift when relative); None is
    /// its default flat prior
    pub prior: Option<GaussianPrior>,
    /// the frequentist and sequential tests' alternative hypothesis
    pub alternative: Alternative,
}

/// Which difference the frequentist tests look for: any (two-sided, the default), or only the treatment being
/// higher or lower (GrowthBook's one-sided t-tests, and its sequential one-sided tests on its main branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alternative {
    #[default]
    TwoSided,
    Greater,
    Less,
}

impl Alternative {
    pub fn parse(s: &str) -> Result<Alternative, AnalyticsError> {
        match s {
            "two-sided" => Ok(Alternative::TwoSided),
            "greater" => Ok(Alternative::Greater),
            "less" => Ok(Alternative::Less),
            other => Err(AnalyticsError::invalid(format!(
                "alternative: must be two-sided, greater (the treatment is higher) or less (it is lower), got \"{other}\""
            ))),
        }
    }
}

/// A Gaussian prior on the effect: N(mean, variance), variance > 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianPrior {
    pub mean: f64,
    pub variance: f64,
}

impl GaussianPrior {
    /// Both or neither; a variance > 0 and finite numbers (errors name the argument).
    pub fn from_args(mean: Option<f64>, variance: Option<f64>) -> Result<Option<GaussianPrior>, AnalyticsError> {
        match (mean, variance) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(AnalyticsError::invalid("prior_variance: is required with prior_mean (both, or neither for the flat prior)")),
            (None, Some(_)) => Err(AnalyticsError::invalid("prior_mean: is required with prior_variance (both, or neither for the flat prior)")),
            (Some(m), Some(v)) => {
                if !m.is_finite() {
                    return Err(AnalyticsError::invalid(format!("prior_mean: must be a finite number, got {m}")));
                }
                if !(v > 0.0 && v.is_finite()) {
                    return Err(AnalyticsError::invalid(format!("prior_variance: must be a positive number, got {v}")));
                }
                Ok(Some(GaussianPrior { mean: m, variance: v }))
            }
        }
    }

    /// The posterior N(mean, sd²) of an effect measured as N(effect, se²), as gbstats' EffectBayesianABTest:
    /// precision-weighted.
    pub fn posterior(&self, effect: f64, se: f64) -> (f64, f64) {
        if se == 0.0 {
            return (effect, 0.0);
        }
        let precision = 1.0 / (se * se) + 1.0 / self.variance;
        ((effect / (se * se) + self.mean / self.variance) / precision, (1.0 / precision).sqrt())
    }
}

/// A treatment against its control: the frequentist test plus the Bayesian and sequential views of the same
/// effect and standard error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// the metric's value in each group (rate, mean or ratio), before any CUPED adjustment
    pub control_value: Option<f64>,
    pub treatment_value: Option<f64>,
    #[serde(flatten)]
    pub test: TestResult,
    /// posterior probability that the treatment is better than the control (higher, or lower when
    /// lower_is_better), flat prior, Gaussian
    pub chance_to_beat_control: Option<f64>,
    /// expected loss of shipping the treatment: E[max(0, -effect)] (E[max(0, effect)] when lower is better), in
    /// the effect's units (GrowthBook's risk of the treatment)
    pub expected_loss: Option<f64>,
    /// expected loss of keeping the control: E[max(0, effect)] (E[max(0, -effect)] when lower is better)
    /// (GrowthBook's risk of the control)
    pub control_risk: Option<f64>,
    /// the Bayesian view's effect and credible interval at 1 - alpha: the measured effect and its normal interval
    /// under the flat prior, shrunk towards the prior mean under an informative one (GrowthBook's "expected" and ci)
    pub posterior_mean: Option<f64>,
    pub posterior_ci_lower: Option<f64>,
    pub posterior_ci_upper: Option<f64>,
    /// always-valid p-value: may be checked after every new unit without inflating false positives
    pub sequential_p_value: Option<f64>,
    pub sequential_ci_lower: Option<f64>,
    pub sequential_ci_upper: Option<f64>,
    /// CUPED: the regression coefficient of the metric on its pre-assignment value, and the share of the
    /// effect's variance it removed
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuped_theta: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variance_reduction: Option<f64>,
}

/// n, mean and sample variance (n - 1) of per-unit values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    n: f64,
    mean: f64,
    var: f64,
}

fn sample_cov(n: f64, sum_a: f64, sum_b: f64, sum_ab: f64) -> f64 {
    if n < 2.0 { 0.0 } else { (sum_ab - sum_a * sum_b / n) / (n - 1.0) }
}

fn check_moments(m: &Moments, group: &str, o: &CompareOptions) -> Result<(), AnalyticsError> {
    let field = |f: &str| format!("{group}.{f}");
    let all = [
        ("n", Some(m.n)),
        ("sum", Some(m.sum)),
        ("sum_squares", Some(m.sum_squares)),
        ("den_sum", m.den_sum),
        ("den_sum_squares", m.den_sum_squares),
        ("cross_sum", m.cross_sum),
        ("pre_sum", m.pre_sum),
        ("pre_sum_squares", m.pre_sum_squares),
        ("pre_cross_sum", m.pre_cross_sum),
        ("pre_den_sum", m.pre_den_sum),
        ("pre_den_sum_squares", m.pre_den_sum_squares),
        ("pre_den_cross_sum", m.pre_den_cross_sum),
        ("pre_ratio_cross_sum", m.pre_ratio_cross_sum),
        ("post_num_pre_den_sum", m.post_num_pre_den_sum),
        ("pre_num_post_den_sum", m.pre_num_post_den_sum),
        ("quantile_level", m.quantile_level),
        ("quantile_n", m.quantile_n),
        ("quantile_nstar", m.quantile_nstar),
        ("quantile", m.quantile),
        ("quantile_lower", m.quantile_lower),
        ("quantile_upper", m.quantile_upper),
    ];
    for (name, v) in all {
        if let Some(v) = v {
            if !v.is_finite() {
                return Err(AnalyticsError::invalid(format!("{}: must be a finite number, got {v}", field(name))));
            }
        }
    }
    if m.n < 0.0 || m.n.fract() != 0.0 {
        return Err(AnalyticsError::invalid(format!("{}: must be a whole number of units, got {}", field("n"), m.n)));
    }
    for (name, v) in [
        ("sum_squares", Some(m.sum_squares)),
        ("den_sum_squares", m.den_sum_squares),
        ("pre_sum_squares", m.pre_sum_squares),
        ("pre_den_sum_squares", m.pre_den_sum_squares),
    ] {
        if v.is_some_and(|v| v < 0.0) {
            return Err(AnalyticsError::invalid(format!("{}: a sum of squares cannot be negative", field(name))));
        }
    }
    if o.metric_type == MetricType::Binomial && !(m.sum >= 0.0 && m.sum <= m.n) {
        return Err(AnalyticsError::invalid(format!(
            "{}: conversions must be between 0 and n ({}), got {}",
            field("sum"),
            m.n,
            m.sum
        )));
    }
    if o.metric_type == MetricType::Ratio {
        for (name, v) in [("den_sum", m.den_sum), ("den_sum_squares", m.den_sum_squares), ("cross_sum", m.cross_sum)] {
            if v.is_none() {
                return Err(AnalyticsError::new(crate::errors::ErrorKind::NullValue, format!("{}: is required for a ratio metric", field(name))));
            }
        }
    }
    if matches!(o.metric_type, MetricType::Quantile | MetricType::QuantileEvent) {
        let required = [
            ("quantile_level", m.quantile_level),
            ("quantile_n", m.quantile_n),
            ("quantile_nstar", m.quantile_nstar),
            ("quantile", m.quantile),
            ("quantile_lower", m.quantile_lower),
            ("quantile_upper", m.quantile_upper),
        ];
        for (name, v) in required {
            if v.is_none() {
                return Err(AnalyticsError::new(crate::errors::ErrorKind::NullValue, format!("{}: is required for a quantile metric", field(name))));
            }
        }
        let nu = m.quantile_level.unwrap_or(0.5);
        if !(nu > 0.0 && nu < 1.0) {
            return Err(AnalyticsError::invalid(format!("{}: must be between 0 and 1, got {nu}", field("quantile_level"))));
        }
        if m.quantile_n.is_some_and(|n| n < 0.0 || n.fract() != 0.0) {
            return Err(AnalyticsError::invalid(format!("{}: must be a whole number of values", field("quantile_n"))));
        }
        if !m.quantile_nstar.is_some_and(|n| n > 0.0) {
            return Err(AnalyticsError::invalid(format!("{}: must be a positive number", field("quantile_nstar"))));
        }
    }
    if o.metric_type == MetricType::QuantileEvent {
        for (name, v) in [("den_sum", m.den_sum), ("den_sum_squares", m.den_sum_squares), ("cross_sum", m.cross_sum)] {
            if v.is_none() {
                return Err(AnalyticsError::new(crate::errors::ErrorKind::NullValue, format!("{}: is required for an event quantile metric", field(name))));
            }
        }
    }
    if o.cuped {
        for (name, v) in [("pre_sum", m.pre_sum), ("pre_sum_squares", m.pre_sum_squares), ("pre_cross_sum", m.pre_cross_sum)] {
            if v.is_none() {
                return Err(AnalyticsError::new(crate::errors::ErrorKind::NullValue, format!("{}: is required for CUPED", field(name))));
            }
        }
    }
    if o.cuped && o.metric_type == MetricType::Ratio {
        let required = [
            ("pre_den_sum", m.pre_den_sum),
            ("pre_den_sum_squares", m.pre_den_sum_squares),
            ("pre_den_cross_sum", m.pre_den_cross_sum),
            ("pre_ratio_cross_sum", m.pre_ratio_cross_sum),
            ("post_num_pre_den_sum", m.post_num_pre_den_sum),
            ("pre_num_post_den_sum", m.pre_num_post_den_sum),
        ];
        for (name, v) in required {
            if v.is_none() {
                return Err(AnalyticsError::new(crate::errors::ErrorKind::NullValue, format!("{}: is required for CUPED of a ratio metric", field(name))));
            }
        }
    }
    Ok(())
}

/// The metric's value per group: rate, mean, or Σy / Σd (None when the group has no units or no denominator).
fn value(m: &Moments, t: MetricType) -> Option<f64> {
    match t {
        MetricType::Ratio => m.den_sum.filter(|&d| d != 0.0).map(|d| m.sum / d),
        MetricType::Quantile | MetricType::QuantileEvent => m.quantile.filter(|_| m.quantile_n.is_some_and(|n| n > 0.0)),
        _ => (m.n > 0.0).then(|| m.sum / m.n),
    }
}

/// A ratio metric as a per-unit summary: mean Σy/Σd, and the variance whose n-th part is the delta-method
/// variance of the ratio: (s_y² - 2R s_yd + R² s_d²) / d̄².
fn ratio_summary(m: &Moments) -> Option<Summary> {
    let (den, den_sq, cross) = (m.den_sum?, m.den_sum_squares?, m.cross_sum?);
    if m.n == 0.0 || den == 0.0 {
        return None;
    }
    let r = m.sum / den;
    let d_mean = den / m.n;
    let var_y = sample_cov(m.n, m.sum, m.sum, m.sum_squares);
    let var_d = sample_cov(m.n, den, den, den_sq);
    let cov = sample_cov(m.n, m.sum, den, cross);
    let var = ((var_y - 2.0 * r * cov + r * r * var_d) / (d_mean * d_mean)).max(0.0);
    Some(Summary { n: m.n, mean: r, var })
}

/// A quantile as gbstats' QuantileStatistic (or, for an event quantile, QuantileClusteredStatistic) sees it: over
/// the quantile_n values, mean the sample quantile, and the variance of one value whose n-th part is the quantile's
/// variance: (n*/n)(n - 1)((upper - lower) / 2z)², for an event quantile scaled by the clustered variance of the
/// share of events at or below the quantile over its i.i.d. variance ν(1 - ν)/n; at least 1e-5 from 100 values on.
/// Also whether gbstats calls it "zero variance": too few values for the quantile's interval to stay inside (0, 1)
/// (n ≤ z²ν/(1 - ν) or n ≤ z²(1 - ν)/ν), or no spread below 1,000 values.
fn quantile_summary(m: &Moments, clustered: bool) -> (Summary, bool) {
    let (nu, n) = (m.quantile_level.unwrap_or(0.5), m.quantile_n.unwrap_or(0.0));
    let (nstar, lower, upper) = (m.quantile_nstar.unwrap_or(1.0), m.quantile_lower.unwrap_or(0.0), m.quantile_upper.unwrap_or(0.0));
    let z = z_975();
    let iid = if n <= 1.0 { 0.0 } else { (nstar / n) * (n - 1.0) * ((upper - lower) / (2.0 * z)).powi(2) };
    let var_init = if !clustered {
        iid
    } else {
        let (k, den) = (m.n, m.den_sum.unwrap_or(0.0));
        if n <= 1.0 || k <= 1.0 || den <= 0.0 {
            0.0
        } else {
            let (mu_s, mu_n) = (m.sum / k, den / k);
            let bessel = k / (k - 1.0);
            let var_s = (m.sum_squares / k - mu_s * mu_s) * bessel;
            let var_n = (m.den_sum_squares.unwrap_or(0.0) / k - mu_n * mu_n) * bessel;
            let cov = (m.cross_sum.unwrap_or(0.0) / k - mu_s * mu_n) * bessel;
            let cluster = (var_s - 2.0 * mu_s * cov / mu_n + mu_s * mu_s * var_n / (mu_n * mu_n)) / (k * mu_n * mu_n);
            iid * cluster / (nu * (1.0 - nu) / n)
        }
    };
    let var = if n < 100.0 { var_init } else { var_init.max(1e-5) };
    let zero = n <= z * z * nu / (1.0 - nu) || n <= z * z * (1.0 - nu) / nu || (var_init <= 0.0 && n < 1000.0);
    (Summary { n, mean: m.quantile.unwrap_or(0.0), var }, zero)
}

/// A conversion rate as GrowthBook's ProportionStatistic sees it: mean p = x / n and variance p(1 - p).
fn proportion_summary(m: &Moments) -> Summary {
    let p = if m.n > 0.0 { m.sum / m.n } else { 0.0 };
    Summary { n: m.n, mean: p, var: p * (1.0 - p) }
}

fn plain_summary(m: &Moments) -> Summary {
    let mean = if m.n > 0.0 { m.sum / m.n } else { 0.0 };
    Summary { n: m.n, mean, var: sample_cov(m.n, m.sum, m.sum, m.sum_squares).max(0.0) }
}

/// One group's parts of CUPED: (mean of y, variance of y, variance of x, covariance of x and y), the variances as
/// GrowthBook's statistics have them: p(1 - p) for a binomial metric's y and x (its ProportionStatistic), the sample
/// variance for a mean metric; the covariance is the sample covariance either way (its RegressionAdjustedStatistic).
fn cuped_parts(m: &Moments, binomial: bool) -> (f64, f64, f64, f64) {
    let (x, xx, xy) = (m.pre_sum.unwrap_or(0.0), m.pre_sum_squares.unwrap_or(0.0), m.pre_cross_sum.unwrap_or(0.0));
    let variance = |sum: f64, sum_squares: f64| {
        if binomial {
            let p = if m.n > 0.0 { sum / m.n } else { 0.0 };
            p * (1.0 - p)
        } else {
            sample_cov(m.n, sum, sum, sum_squares)
        }
    };
    let mean = if m.n > 0.0 { m.sum / m.n } else { 0.0 };
    (mean, variance(m.sum, m.sum_squares), variance(x, xx), sample_cov(m.n, x, m.sum, xy))
}

/// CUPED (Deng, Xu, Kohavi, Walker 2013): θ = cov(y, x) / var(x) over both groups pooled; each group's mean
/// becomes ȳ - θ(x̄ - x̄_pooled) and its variance s_y² + θ²s_x² - 2θ s_xy (variances as `cuped_parts`, which makes
/// it gbstats' RegressionAdjustedStatistic with its pooled theta). Returns the adjusted summaries, θ and the share
/// of the difference's variance removed.
fn cuped(c: &Moments, t: &Moments, binomial: bool) -> (Summary, Summary, f64, Option<f64>) {
    let pooled = Moments {
        n: c.n + t.n,
        sum: c.sum + t.sum,
        sum_squares: c.sum_squares + t.sum_squares,
        pre_sum: Some(c.pre_sum.unwrap_or(0.0) + t.pre_sum.unwrap_or(0.0)),
        pre_sum_squares: Some(c.pre_sum_squares.unwrap_or(0.0) + t.pre_sum_squares.unwrap_or(0.0)),
        pre_cross_sum: Some(c.pre_cross_sum.unwrap_or(0.0) + t.pre_cross_sum.unwrap_or(0.0)),
        ..Moments::default()
    };
    let (_, var_y, var_x, cov_xy) = cuped_parts(&pooled, binomial);
    let theta = if var_x > 0.0 && var_y > 0.0 { cov_xy / var_x } else { 0.0 };
    let x_mean = |m: &Moments| if m.n > 0.0 { m.pre_sum.unwrap_or(0.0) / m.n } else { 0.0 };
    let x_pooled = x_mean(&pooled);
    let adjust = |m: &Moments| {
        let (mean, vy, vx, cov) = cuped_parts(m, binomial);
        Summary { n: m.n, mean: mean - theta * (x_mean(m) - x_pooled), var: (vy + theta * theta * vx - 2.0 * theta * cov).max(0.0) }
    };
    let (ac, at) = (adjust(c), adjust(t));
    // the difference's variance without the adjustment: each group's unadjusted variance over its units
    let unadjusted = |m: &Moments| cuped_parts(m, binomial).1.max(0.0) / m.n;
    let before = if c.n > 0.0 && t.n > 0.0 { unadjusted(c) + unadjusted(t) } else { 0.0 };
    let after = if ac.n > 0.0 && at.n > 0.0 { ac.var / ac.n + at.var / at.n } else { 0.0 };
    let reduction = (before > 0.0).then(|| 1.0 - after / before);
    (ac, at, theta, reduction)
}

/// The relative lift with CUPED as GrowthBook computes it (gbstats' `frequentist_variance_relative_cuped` on its
/// main branch; 0.8.0 divided by the adjusted control mean with the plain delta method): the adjusted difference
/// divided by the control's **unadjusted** mean |ȳa|, with the variance
///
///   v_trt  = (s²_yb + θ² s²_xb - 2θ s_xyb) / (n_b ȳa²)
///   v_ctrl = (s²_ya ȳb²/ȳa² - 2θ s_xya ȳb/ȳa + θ² s²_xa) / (n_a ȳa²)
///
/// (the delta method for ((ȳb - θx̄b) - (ȳa - θx̄a)) / ȳa, its gradient taken where the pre-period means agree, as
/// randomisation makes them), and Welch's degrees of freedom of the adjusted groups. With θ = 0 it is the plain
/// relative test.
fn relative_cuped_test(control: &Moments, treatment: &Moments, binomial: bool, ac: &Summary, at: &Summary, theta: f64, alpha: f64) -> Result<TestResult, AnalyticsError> {
    let ((ya, vya, vxa, cova), (yb, vyb, vxb, covb)) = (cuped_parts(control, binomial), cuped_parts(treatment, binomial));
    let v_trt = (vyb + theta * theta * vxb - 2.0 * theta * covb) / (treatment.n * ya * ya);
    let v_ctrl = (vya * yb * yb / (ya * ya) - 2.0 * theta * cova * yb / ya + theta * theta * vxa) / (control.n * ya * ya);
    let effect = (at.mean - ac.mean) / ya.abs();
    let df = stats::welch_df(ac.n, ac.var, at.n, at.var);
    stats::t_test_of_estimate(effect, (v_trt + v_ctrl).max(0.0).sqrt(), df, true, alpha)
}

/// One group of a ratio metric with CUPED as gbstats' RegressionAdjustedRatioStatistic (GrowthBook's main branch)
/// sees it: the per-unit means of (y, d, x, e) — post numerator and denominator, pre numerator and denominator —,
/// their 4×4 sample covariance Λ, and the ratios Σy/Σd and Σx/Σe.
struct RatioCuped {
    n: f64,
    means: [f64; 4],
    lambda: [[f64; 4]; 4],
    post: f64,
    pre: f64,
}

fn ratio_cuped_parts(m: &Moments) -> RatioCuped {
    let v = |o: Option<f64>| o.unwrap_or(0.0);
    let sums = [m.sum, v(m.den_sum), v(m.pre_sum), v(m.pre_den_sum)];
    // Σ of the products of each pair, in the order (y, d, x, e)
    let products = [
        [m.sum_squares, v(m.cross_sum), v(m.pre_cross_sum), v(m.post_num_pre_den_sum)],
        [v(m.cross_sum), v(m.den_sum_squares), v(m.pre_num_post_den_sum), v(m.pre_den_cross_sum)],
        [v(m.pre_cross_sum), v(m.pre_num_post_den_sum), v(m.pre_sum_squares), v(m.pre_ratio_cross_sum)],
        [v(m.post_num_pre_den_sum), v(m.pre_den_cross_sum), v(m.pre_ratio_cross_sum), v(m.pre_den_sum_squares)],
    ];
    let mut lambda = [[0.0; 4]; 4];
    for (i, row) in lambda.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = sample_cov(m.n, sums[i], sums[j], products[i][j]);
        }
    }
    let means = sums.map(|s| if m.n > 0.0 { s / m.n } else { 0.0 });
    let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    RatioCuped { n: m.n, means, lambda, post: ratio(sums[0], sums[1]), pre: ratio(sums[2], sums[3]) }
}

impl RatioCuped {
    /// the gradient of Σy/Σd - θ·Σx/Σe in the four means (zero when a denominator's mean is 0)
    fn gradient(&self, theta: f64) -> [f64; 4] {
        let b = self.means;
        if b[1] == 0.0 || b[3] == 0.0 {
            return [0.0; 4];
        }
        [1.0 / b[1], -b[0] / (b[1] * b[1]), -theta / b[3], theta * b[2] / (b[3] * b[3])]
    }

    /// uᵀ Λ w over the rows `rows` and columns `cols` of Λ
    fn form(&self, u: &[f64; 4], w: &[f64; 4], rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> f64 {
        rows.map(|i| cols.clone().map(|j| u[i] * self.lambda[i][j] * w[j]).sum::<f64>()).sum()
    }

    fn adjusted(&self, theta: f64) -> Summary {
        let g = self.gradient(theta);
        let mean = if self.means[1] == 0.0 || self.means[3] == 0.0 { 0.0 } else { self.post - theta * self.pre };
        Summary { n: self.n, mean, var: self.form(&g, &g, 0..4, 0..4) }
    }
}

/// CUPED of a ratio metric: θ = -(Σ cov(post, pre)) / (Σ var(pre)) over both groups, from the pre part of the
/// gradient at θ = 1 (gbstats' compute_theta_regression_adjusted_ratio); each group's value Σy/Σd - θ·Σx/Σe and
/// variance ∇ᵀΛ∇. θ within 1e-8 of 0 (no pre-period information) is GrowthBook's fallback to the plain ratio: None.
fn ratio_cuped(c: &Moments, t: &Moments) -> Option<(RatioCuped, RatioCuped, f64)> {
    let (a, b) = (ratio_cuped_parts(c), ratio_cuped_parts(t));
    let (ga, gb) = (a.gradient(1.0), b.gradient(1.0));
    let var_pre = a.form(&ga, &ga, 2..4, 2..4) + b.form(&gb, &gb, 2..4, 2..4);
    let cov = a.form(&ga, &ga, 2..4, 0..2) + b.form(&gb, &gb, 2..4, 0..2);
    let theta = if var_pre == 0.0 { 0.0 } else { -cov / var_pre };
    (theta.abs() >= 1e-8).then_some((a, b, theta))
}

/// The relative lift of a ratio metric with CUPED as GrowthBook's main branch computes it
/// (`frequentist_variance_relative_cuped_ratio`): the adjusted difference over the control's unadjusted ratio
/// |Σya/Σda|, its variance by the delta method in the eight means of both groups, Welch's degrees of freedom of the
/// adjusted groups. GrowthBook's published case (frequentist test_two_sided_ttest_test_runs_ratio_ra) is a unit test.
fn relative_ratio_cuped_test(a: &RatioCuped, b: &RatioCuped, theta: f64, alpha: f64) -> Result<TestResult, AnalyticsError> {
    let (sa, sb) = (a.adjusted(theta), b.adjusted(theta));
    let den = a.post.abs();
    let d_mean = a.means[1];
    let variance = if a.post == 0.0 || d_mean == 0.0 {
        0.0
    } else {
        let g_abs = sb.mean - sa.mean;
        let (ga, gb) = (a.gradient(theta), b.gradient(theta));
        let control = [
            -(den + g_abs) / d_mean / (den * den),
            (a.means[0] * den / (d_mean * d_mean) + a.means[0] * g_abs / (d_mean * d_mean)) / (den * den),
            -ga[2] / den,
            -ga[3] / den,
        ];
        let treatment = gb.map(|g| g / den);
        a.form(&control, &control, 0..4, 0..4) / a.n + b.form(&treatment, &treatment, 0..4, 0..4) / b.n
    };
    let effect = (sb.mean - sa.mean) / den;
    let df = stats::welch_df(sa.n, sa.var, sb.n, sb.var);
    stats::t_test_of_estimate(effect, variance.max(0.0).sqrt(), df, true, alpha)
}

/// Chance to beat control Φ(effect / se), the expected loss of shipping the treatment E[max(0, -Δ)] =
/// se·φ(z) - effect·Φ(-z) and that of keeping the control E[max(0, Δ)] = se·φ(z) + effect·Φ(z) (GrowthBook's two
/// risks) of a Gaussian posterior N(effect, se²). A zero standard error is a certain effect.
pub fn bayesian(effect: f64, se: f64) -> (f64, f64, f64) {
    if se == 0.0 {
        let chance = if effect > 0.0 { 1.0 } else if effect < 0.0 { 0.0 } else { 0.5 };
        return (chance, (-effect).max(0.0), effect.max(0.0));
    }
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    let z = effect / se;
    let density = se * normal.pdf(z);
    (normal.cdf(z), (density - effect * normal.cdf(-z)).max(0.0), (density + effect * normal.cdf(z)).max(0.0))
}

/// The always-valid (sequential) view of an estimate with standard error `se` from `n_total` units: the
/// normal-mixture confidence sequence of Howard, Ramdas, McAuliffe and Sekhon (2021), in the form GrowthBook
/// uses, with ρ² = (-2 ln α + ln(1 - 2 ln α)) / N* for the tuning parameter N*. With v = n·ρ² the half-width is
/// `se · sqrt(2(v + 1) ln(sqrt(v + 1) / α) / v)`, and the always-valid p-value — the smallest α whose sequence
/// excludes 0 — is `min(1, sqrt(v + 1) · exp(-z² v / (2(v + 1))))` with z = effect / se.
/// Returns (p-value, lower, upper).
pub fn sequential(effect: f64, se: f64, n_total: f64, alpha: f64, tuning: f64) -> Result<(f64, f64, f64), AnalyticsError> {
    if !(tuning > 0.0 && tuning.is_finite()) {
        return Err(AnalyticsError::invalid(format!("sequential_tuning: must be a positive number of units, got {tuning}")));
    }
    if se == 0.0 {
        return Ok((if effect == 0.0 { 1.0 } else { 0.0 }, effect, effect));
    }
    let la = alpha.ln();
    let rho2 = (-2.0 * la + (1.0 - 2.0 * la).ln()) / tuning;
    let v = n_total * rho2;
    let half = se * (2.0 * (v + 1.0) * (((v + 1.0).sqrt()).ln() - la) / v).sqrt();
    let z = effect / se;
    let p = ((v + 1.0).sqrt() * (-z * z * v / (2.0 * (v + 1.0))).exp()).min(1.0);
    Ok((p, effect - half, effect + half))
}

/// GrowthBook's sequential one-sided test (its main branch: SequentialOneSidedTreatmentGreaterTTest /
/// ...LesserTTest): the one-sided confidence sequence with ρ tuned for 2·alpha, half-width
/// se·√N·√(2(Nρ² + 1)/(Nρ)² · ln(1 + √(Nρ² + 1)/(2a))) at level a, the interval [effect - hw, ∞) for `greater` or
/// (-∞, effect + hw] for less, and the p-value GrowthBook finds by bisection: the level a in [1e-5, 0.4999] at
/// which the closed end reaches 0 (1e-5 or 0.4999 when it does not cross there; None when the bisection does not
/// converge, GrowthBook's NUMERICAL_PVALUE_NOT_CONVERGED).
pub fn sequential_one_sided(effect: f64, se: f64, n_total: f64, alpha: f64, tuning: f64, greater: bool) -> Result<(Option<f64>, f64, f64), AnalyticsError> {
    if !(tuning > 0.0 && tuning.is_finite()) {
        return Err(AnalyticsError::invalid(format!("sequential_tuning: must be a positive number of units, got {tuning}")));
    }
    let la = (2.0 * alpha).ln();
    let rho2 = (-2.0 * la + (1.0 - 2.0 * la).ln()) / tuning;
    let v = n_total * rho2;
    // s² = se²·N and (Nρ)² = N·v, so the half-width is se·√(2(v + 1)/v · ln(1 + √(v + 1)/(2a))), v = Nρ²
    let half = |a: f64| se * (2.0 * (v + 1.0) / v * (1.0 + (v + 1.0).sqrt() / (2.0 * a)).ln()).sqrt();
    // the closed end at level a, signed so that "excludes 0" is > 0
    let end = |a: f64| if greater { effect - half(a) } else { -(effect + half(a)) };
    let interval = if greater { (effect - half(alpha), f64::INFINITY) } else { (f64::NEG_INFINITY, effect + half(alpha)) };
    let (mut lo, mut hi) = (1e-5, 0.4999);
    if end(lo) > 0.0 {
        return Ok((Some(lo), interval.0, interval.1));
    }
    if end(hi) < 0.0 {
        return Ok((Some(hi), interval.0, interval.1));
    }
    let mut a = 0.5 * (lo + hi);
    let mut diff = 0.0;
    for _ in 0..100 {
        diff = end(a);
        if diff < 0.0 { lo = a } else { hi = a }
        a = 0.5 * (lo + hi);
        if diff.abs() < 1e-6 {
            break;
        }
    }
    Ok(((diff.abs() < 1e-6).then_some(a), interval.0, interval.1))
}

/// Compares a treatment with its control.
pub fn compare(control: &Moments, treatment: &Moments, o: &CompareOptions) -> Result<Comparison, AnalyticsError> {
    if !(o.alpha > 0.0 && o.alpha < 1.0) {
        return Err(AnalyticsError::invalid(format!("alpha: must be between 0 and 1, got {}", o.alpha)));
    }
    if !(o.sequential_tuning > 0.0 && o.sequential_tuning.is_finite()) {
        return Err(AnalyticsError::invalid(format!("sequential_tuning: must be a positive number of units, got {}", o.sequential_tuning)));
    }
    check_moments(control, "control", o)?;
    check_moments(treatment, "treatment", o)?;
    // each group as (n, mean, variance) the way GrowthBook's statistics see it
    if o.cuped && matches!(o.metric_type, MetricType::Quantile | MetricType::QuantileEvent) {
        return Err(AnalyticsError::invalid("cuped: is available for binomial, mean and ratio metrics, not for quantile metrics"));
    }
    let (mut cuped_theta, mut variance_reduction) = (None, None);
    let mut quantile_zero_variance = false;
    let mut ratio_parts = None;
    let summaries = if o.cuped && o.metric_type == MetricType::Ratio {
        // no result without units or with a zero denominator, as the plain ratio
        let plain = ratio_summary(control).zip(ratio_summary(treatment));
        match (plain, ratio_cuped(control, treatment)) {
            (Some((pc, pt)), Some((a, b, theta))) => {
                let (ac, at) = (a.adjusted(theta), b.adjusted(theta));
                let (before, after) = (pc.var / pc.n + pt.var / pt.n, ac.var / ac.n + at.var / at.n);
                variance_reduction = (before > 0.0).then(|| 1.0 - after / before);
                cuped_theta = Some(theta);
                ratio_parts = Some((a, b, theta));
                Some((ac, at))
            }
            (plain, _) => {
                cuped_theta = plain.map(|_| 0.0);
                plain
            }
        }
    } else if o.cuped {
        let (c, t, theta, reduction) = cuped(control, treatment, o.metric_type == MetricType::Binomial);
        cuped_theta = Some(theta);
        variance_reduction = reduction;
        Some((c, t))
    } else {
        match o.metric_type {
            MetricType::Binomial => Some((proportion_summary(control), proportion_summary(treatment))),
            MetricType::Mean => Some((plain_summary(control), plain_summary(treatment))),
            MetricType::Ratio => ratio_summary(control).zip(ratio_summary(treatment)),
            MetricType::Quantile | MetricType::QuantileEvent => {
                let clustered = o.metric_type == MetricType::QuantileEvent;
                let ((c, zc), (t, zt)) = (quantile_summary(control, clustered), quantile_summary(treatment, clustered));
                quantile_zero_variance = zc || zt;
                Some((c, t))
            }
        }
    };
    let Some((c, t)) = summaries else {
        let test = TestResult::empty(o.relative, o.alpha, "a group has no units or a zero denominator");
        return Ok(comparison(control, treatment, o, test, (None, (None, None), (None, None, None)), cuped_theta, variance_reduction));
    };
    // GrowthBook's rules for "no result" (gbstats' TTest.compute_result): a control mean of 0, or a group without
    // variance (every unit alike, or fewer than 2 units). GrowthBook then answers p = 1 and chance to win 0.5 with
    // an error code; the effect and intervals it shows as 0 are left NULL here.
    // (with CUPED GrowthBook looks at the control's unadjusted mean and at its adjusted mean in its own form,
    // ȳ - θx̄: either 0 is no result)
    let gb_adjusted_zero = o.metric_type != MetricType::Ratio && cuped_theta.is_some_and(|theta| {
        let x_mean = if control.n > 0.0 { control.pre_sum.unwrap_or(0.0) / control.n } else { 0.0 };
        control.n > 0.0 && control.sum / control.n - theta * x_mean == 0.0
    });
    let unusable = if c.mean == 0.0 || (o.cuped && (control.sum == 0.0 || gb_adjusted_zero)) {
        Some(("ZERO_NEGATIVE_BASELINE_VARIATION", "the control's mean is 0"))
    } else if quantile_zero_variance {
        Some(("ZERO_NEGATIVE_VARIANCE", "a group has too few values for the quantile's interval, or no spread around it"))
    } else if !matches!(o.metric_type, MetricType::Quantile | MetricType::QuantileEvent)
        && (c.var <= 0.0 || t.var <= 0.0 || c.n < 2.0 || t.n < 2.0)
    {
        Some(("ZERO_NEGATIVE_VARIANCE", "a group has no variance (every unit has the same value, or fewer than 2 units)"))
    } else {
        None
    };
    if let Some((code, why)) = unusable {
        let mut test = TestResult::empty(o.relative, o.alpha, &format!("{code}: {why}; no result, as GrowthBook"));
        test.p_value = Some(1.0);
        return Ok(comparison(control, treatment, o, test, (Some(0.5), (Some(0.0), Some(0.0)), (Some(1.0), None, None)), cuped_theta, variance_reduction));
    }
    let test = match (o.cuped && o.relative, cuped_theta, &ratio_parts) {
        (true, _, Some((a, b, theta))) => relative_ratio_cuped_test(a, b, *theta, o.alpha)?,
        (true, Some(theta), None) if o.metric_type != MetricType::Ratio => {
            relative_cuped_test(control, treatment, o.metric_type == MetricType::Binomial, &c, &t, theta, o.alpha)?
        }
        _ => stats::welch_t_test(c.n, c.mean, c.var, t.n, t.mean, t.var, o.relative, o.alpha)?,
    };
    let test = match o.alternative {
        Alternative::TwoSided => test,
        Alternative::Greater => stats::one_sided(&test, true)?,
        Alternative::Less => stats::one_sided(&test, false)?,
    };
    // N of the sequential view: the units, or the values a quantile is taken over (gbstats' stat.n)
    let n_total = c.n + t.n;
    let (mut chance, mut loss, mut seq, mut posterior) = (None, (None, None), (None, None, None), (None, None, None));
    if let (Some(effect), Some(se)) = (test.effect, test.std_error) {
        let (m, sd) = o.prior.map_or((effect, se), |p| p.posterior(effect, se));
        let (c, treatment_risk, control_risk) = bayesian(if o.lower_is_better { -m } else { m }, sd);
        (chance, loss) = (Some(c), (Some(treatment_risk), Some(control_risk)));
        let z = Normal::new(0.0, 1.0).expect("standard normal").inverse_cdf(1.0 - o.alpha / 2.0);
        posterior = (Some(m), Some(m - z * sd), Some(m + z * sd));
        seq = match o.alternative {
            Alternative::TwoSided => {
                let (p, lo, hi) = sequential(effect, se, n_total, o.alpha, o.sequential_tuning)?;
                (Some(p), Some(lo), Some(hi))
            }
            one_sided => {
                let (p, lo, hi) = sequential_one_sided(effect, se, n_total, o.alpha, o.sequential_tuning, one_sided == Alternative::Greater)?;
                (p, Some(lo), Some(hi))
            }
        };
    }
    let mut r = comparison(control, treatment, o, test, (chance, loss, seq), cuped_theta, variance_reduction);
    (r.posterior_mean, r.posterior_ci_lower, r.posterior_ci_upper) = posterior;
    Ok(r)
}

/// The views of a comparison: (chance to beat control, (risk of the treatment, of the control), (sequential p,
/// lower, upper)).
type Views = (Option<f64>, (Option<f64>, Option<f64>), (Option<f64>, Option<f64>, Option<f64>));

fn comparison(
    control: &Moments,
    treatment: &Moments,
    o: &CompareOptions,
    test: TestResult,
    (chance, loss, seq): Views,
    cuped_theta: Option<f64>,
    variance_reduction: Option<f64>,
) -> Comparison {
    Comparison {
        control_value: value(control, o.metric_type),
        treatment_value: value(treatment, o.metric_type),
        test,
        chance_to_beat_control: chance,
        expected_loss: loss.0,
        control_risk: loss.1,
        posterior_mean: None,
        posterior_ci_lower: None,
        posterior_ci_upper: None,
        sequential_p_value: seq.0,
        sequential_ci_lower: seq.1,
        sequential_ci_upper: seq.2,
        cuped_theta,
        variance_reduction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const REFERENCE: &str = include_str!("../../../../tests/data/stats/reference.json");

    fn close(got: f64, want: f64, what: &str) {
        let tol = 1e-9 * want.abs();
        assert!((got - want).abs() <= tol.max(1e-15), "{what}: got {got}, want {want}");
    }

    fn moments(values: &[f64]) -> Moments {
        Moments {
            n: values.len() as f64,
            sum: values.iter().sum(),
            sum_squares: values.iter().map(|v| v * v).sum(),
            ..Moments::default()
        }
    }

    fn opts(metric_type: MetricType, relative: bool) -> CompareOptions {
        CompareOptions {
            metric_type,
            relative,
            alpha: 0.05,
            cuped: false,
            sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
            lower_is_better: false,
            prior: None,
            alternative: Alternative::TwoSided,
        }
    }

    const GBSTATS: &str = include_str!("../../../../tests/data/stats/gbstats.json");

    /// Equal to 1e-9 relative, or to 1e-12 absolute for values near 0 (p-values far in a tail).
    fn near(got: Option<f64>, want: f64, what: &str) {
        let got = got.unwrap_or_else(|| panic!("{what}: got nothing, want {want}"));
        assert!((got - want).abs() <= (1e-9 * want.abs()).max(1e-12), "{what}: got {got}, want {want}");
    }

    /// GrowthBook's engine (gbstats, tests/data/stats/generate_gbstats.py): 400 random comparisons of proportion and
    /// mean metrics, relative and absolute, several alphas and tuning parameters (effect, interval and p-value of
    /// the frequentist test and of the sequential test; chance to win and risk of the Bayesian test with the default
    /// flat prior), and 16 cases where GrowthBook gives no result.
    #[test]
    fn agrees_with_gbstats() {
        let data: Value = serde_json::from_str(GBSTATS).unwrap();
        let (mut checked, mut errors, mut flipped) = (0, 0, 0usize);
        for (i, c) in data["comparisons"].as_array().unwrap().iter().enumerate() {
            let o = CompareOptions {
                metric_type: MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(),
                relative: c["relative"].as_bool().unwrap(),
                alpha: c["alpha"].as_f64().unwrap(),
                cuped: false,
                sequential_tuning: c["sequential_tuning"].as_f64().unwrap(),
                lower_is_better: false,
                prior: None,
                alternative: Alternative::TwoSided,
            };
            match check_gbstats_case(i, c, &o) {
                GbstatsCase::NoResult => errors += 1,
                GbstatsCase::Checked { flipped: f } => {
                    checked += 1;
                    flipped += usize::from(f);
                }
            }
        }
        assert_eq!((checked, errors), (400, 16));
        assert!(flipped > 10, "the fixture has relative cases over a negative control: {flipped}");
    }

    /// gbstats 0.8.0 on ratio metrics (RatioStatistic, relative and absolute: the delta method) and on CUPED
    /// (RegressionAdjustedStatistic with its pooled theta; absolute, binomial and mean): 120 cases, every field of the
    /// three tests as in `agrees_with_gbstats`.
    #[test]
    fn agrees_with_gbstats_ratio_and_cuped() {
        let data: Value = serde_json::from_str(GBSTATS).unwrap();
        let cases = data["ratio_cuped"].as_array().unwrap();
        let mut kinds = std::collections::BTreeMap::new();
        for (i, c) in cases.iter().enumerate() {
            let o = CompareOptions {
                metric_type: MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(),
                relative: c["relative"].as_bool().unwrap(),
                alpha: c["alpha"].as_f64().unwrap(),
                cuped: c["cuped"].as_bool().unwrap(),
                sequential_tuning: c["sequential_tuning"].as_f64().unwrap(),
                lower_is_better: false,
                prior: None,
                alternative: Alternative::TwoSided,
            };
            assert!(matches!(check_gbstats_case(i, c, &o), GbstatsCase::Checked { .. }), "case {i}: no result");
            *kinds.entry(format!("{} cuped={} relative={}", c["metric_type"], o.cuped, o.relative)).or_insert(0) += 1;
        }
        assert_eq!(cases.len(), 120, "{kinds:?}");
        assert_eq!(kinds.len(), 4, "{kinds:?}"); // ratio relative, ratio absolute, CUPED binomial, CUPED mean
    }

    /// gbstats 0.8.0 on quantile metrics (QuantileStatistic over units' values, QuantileClusteredStatistic over
    /// events clustered in units; relative and absolute) from simulated latencies: the levels of the order statistics
    /// (GrowthBook's grid of n*), the choice of n* and its bounds from the 41 order statistics, every group's
    /// variance, and every field of the three tests as in `agrees_with_gbstats`; the groups too small for a quantile's
    /// interval are GrowthBook's "no result".
    #[test]
    fn agrees_with_gbstats_quantiles() {
        let data: Value = serde_json::from_str(GBSTATS).unwrap();
        let cases = data["quantiles"].as_array().unwrap();
        let (mut checked, mut no_result, mut kinds) = (0, 0, std::collections::BTreeSet::new());
        for (i, c) in cases.iter().enumerate() {
            let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<f64>>();
            let nu = c["control"]["quantile_level"].as_f64().unwrap();
            for (got, want) in quantile_grid(nu).unwrap().iter().zip(floats(&c["levels"])) {
                close(*got, want, &format!("case {i}: level"));
            }
            for group in ["control", "treatment"] {
                let g = &c[group];
                let (nstar, lower, upper) = pick_quantile_bounds(g["quantile_n"].as_f64().unwrap(), &floats(&c[format!("{group}_grid")])).unwrap();
                assert_eq!(nstar, g["quantile_nstar"].as_f64().unwrap(), "case {i} {group}: n*");
                assert_eq!((lower, upper), (g["quantile_lower"].as_f64().unwrap(), g["quantile_upper"].as_f64().unwrap()), "case {i} {group}: bounds");
            }
            let o = CompareOptions {
                metric_type: MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(),
                relative: c["relative"].as_bool().unwrap(),
                alpha: c["alpha"].as_f64().unwrap(),
                cuped: false,
                sequential_tuning: c["sequential_tuning"].as_f64().unwrap(),
                lower_is_better: false,
                prior: None,
                alternative: Alternative::TwoSided,
            };
            let clustered = o.metric_type == MetricType::QuantileEvent;
            for (k, group) in ["control", "treatment"].into_iter().enumerate() {
                let (summary, _) = quantile_summary(&fixture_group(&c[group]), clustered);
                near(Some(summary.var), c["variance"][k].as_f64().unwrap(), &format!("case {i} {group}: variance"));
            }
            match check_gbstats_case(i, c, &o) {
                GbstatsCase::NoResult => no_result += 1,
                GbstatsCase::Checked { .. } => checked += 1,
            }
            kinds.insert(format!("{} relative={}", c["metric_type"], o.relative));
        }
        assert_eq!((checked, no_result), (75, 25));
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn quantile_levels_are_refused_outside_zero_one() {
        for nu in [0.0, 1.0, -0.5, f64::NAN] {
            let e = quantile_grid(nu).unwrap_err();
            assert!(e.message.starts_with("quantile: must be between 0 and 1"), "{}", e.message);
        }
        // fewer values than the smallest n*: its bounds
        let grid: Vec<f64> = (0..41).map(f64::from).collect();
        assert_eq!(pick_quantile_bounds(50.0, &grid), Some((100.0, 1.0, 2.0)));
        assert_eq!(pick_quantile_bounds(100.0, &grid), Some((100.0, 1.0, 2.0)));
        assert_eq!(pick_quantile_bounds(101.0, &grid), Some((100.0, 1.0, 2.0)));
        assert_eq!(pick_quantile_bounds(201.0, &grid), Some((200.0, 3.0, 4.0)));
        assert_eq!(pick_quantile_bounds(1e12, &grid), Some((52428800.0, 39.0, 40.0)));
        assert_eq!(pick_quantile_bounds(500.0, &grid[..40]), None);
    }

    enum GbstatsCase {
        NoResult,
        Checked { flipped: bool },
    }

    /// One case of the gbstats fixture against `compare`: GrowthBook's "no result", or the effect, interval and
    /// p-value of the frequentist and sequential tests and the chance to win and risk of the Bayesian test.
    fn check_gbstats_case(i: usize, c: &Value, o: &CompareOptions) -> GbstatsCase {
        let r = compare(&fixture_group(&c["control"]), &fixture_group(&c["treatment"]), o).unwrap();
        let (f, s) = (&c["frequentist"], &c["sequential"]);
        let what = |field: &str| format!("case {i} ({} {}): {field}", c["metric_type"], if o.relative { "relative" } else { "absolute" });
        if let Some(code) = f["error"].as_str() {
            // GrowthBook's "no result": p = 1 (sequential too), chance 0.5, the same error code
            assert_eq!(s["error"].as_str(), Some(code));
            assert_eq!((r.test.p_value, r.sequential_p_value, r.chance_to_beat_control), (Some(1.0), Some(1.0), Some(0.5)), "{}", what("no result"));
            assert!(r.test.note.as_deref().is_some_and(|n| n.starts_with(&format!("{code}:"))), "{}: {:?}", what("error"), r.test.note);
            assert_eq!(f["p_value"].as_f64(), Some(1.0));
            return GbstatsCase::NoResult;
        }
        // A relative lift over a negative control mean: gbstats 0.8.0 divides by the signed mean
        // (mean2 / mean1 - 1), GrowthBook's later relative-CUPED code and this crate by its absolute value, so
        // that the lift's sign is the direction of the change (issue #12, item 1). The same numbers, mirrored:
        // effect and intervals change sign, the chance to win is 1 minus gbstats', the risks swap sides.
        let flip = o.relative && c["control"]["sum"].as_f64().unwrap() < 0.0;
        let sign = if flip { -1.0 } else { 1.0 };
        let (lo, hi) = if flip { (1, 0) } else { (0, 1) };
        near(r.test.effect, sign * f["effect"].as_f64().unwrap(), &what("effect"));
        near(r.test.ci_lower, sign * f["ci"][lo].as_f64().unwrap(), &what("ci_lower"));
        near(r.test.ci_upper, sign * f["ci"][hi].as_f64().unwrap(), &what("ci_upper"));
        near(r.test.p_value, f["p_value"].as_f64().unwrap(), &what("p_value"));
        near(r.sequential_p_value, s["p_value"].as_f64().unwrap(), &what("sequential_p_value"));
        near(r.sequential_ci_lower, sign * s["ci"][lo].as_f64().unwrap(), &what("sequential_ci_lower"));
        near(r.sequential_ci_upper, sign * s["ci"][hi].as_f64().unwrap(), &what("sequential_ci_upper"));
        // the Bayesian view with GrowthBook's default flat prior: chance to win, and the risk of the treatment
        let b = &c["bayesian"];
        assert!(b["error"].is_null(), "{}", what("bayesian error"));
        let chance = b["chance_to_win"].as_f64().unwrap();
        near(r.chance_to_beat_control, if flip { 1.0 - chance } else { chance }, &what("chance_to_beat_control"));
        // gbstats gets the risk from scipy's truncated-normal means, ours is the closed form se·φ(z) - Δ·Φ(-z):
        // they differ in the tenth digit, so 1e-7 relative here
        let (got, want) = (r.expected_loss.unwrap(), b["risk"][if flip { 0 } else { 1 }].as_f64().unwrap());
        assert!((got - want).abs() <= (1e-7 * want.abs()).max(1e-12), "{}: got {got}, want {want}", what("expected_loss"));
        let (got, want) = (r.control_risk.unwrap(), b["risk"][if flip { 1 } else { 0 }].as_f64().unwrap());
        assert!((got - want).abs() <= (1e-7 * want.abs()).max(1e-12), "{}: got {got}, want {want}", what("control_risk"));
        GbstatsCase::Checked { flipped: flip }
    }

    /// GrowthBook's published binomial case, and the case where the pooled z-test said "significant" beside an
    /// interval containing 0 (100/5000 vs 130/5000): the p-value now tests the lift the interval is of.
    /// A group of the gbstats fixture: {"n", "sum", "sum_squares"}.
    fn fixture_group(g: &Value) -> Moments {
        serde_json::from_value(g.clone()).expect("a group of the fixture")
    }

    /// GrowthBook's Bayesian test with an informative Gaussian prior on the effect (gbstats 0.8.0's
    /// EffectBayesianABTest with a proper GaussianPrior): the posterior mean, credible interval and chance to win to
    /// 1e-9, the risk to 1e-7 (gbstats integrates a truncated normal), over 80 random cases.
    #[test]
    fn agrees_with_gbstats_informative_priors() {
        let data: Value = serde_json::from_str(GBSTATS).unwrap();
        let cases = data["priors"].as_array().unwrap();
        assert_eq!(cases.len(), 80);
        for (i, c) in cases.iter().enumerate() {
            let o = CompareOptions {
                metric_type: MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(),
                relative: c["relative"].as_bool().unwrap(),
                alpha: c["alpha"].as_f64().unwrap(),
                prior: GaussianPrior::from_args(c["prior_mean"].as_f64(), c["prior_variance"].as_f64()).unwrap(),
                ..opts(MetricType::Mean, true)
            };
            let r = compare(&fixture_group(&c["control"]), &fixture_group(&c["treatment"]), &o).unwrap();
            let what = |f: &str| format!("prior case {i}: {f}");
            near(r.posterior_mean, c["expected"].as_f64().unwrap(), &what("posterior_mean"));
            near(r.posterior_ci_lower, c["ci"][0].as_f64().unwrap(), &what("posterior_ci_lower"));
            near(r.posterior_ci_upper, c["ci"][1].as_f64().unwrap(), &what("posterior_ci_upper"));
            near(r.chance_to_beat_control, c["chance_to_win"].as_f64().unwrap(), &what("chance_to_beat_control"));
            let (got, want) = (r.expected_loss.unwrap(), c["risk"][1].as_f64().unwrap());
            assert!((got - want).abs() <= (1e-7 * want.abs()).max(1e-12), "{}: got {got}, want {want}", what("expected_loss"));
            let (got, want) = (r.control_risk.unwrap(), c["risk"][0].as_f64().unwrap());
            assert!((got - want).abs() <= (1e-7 * want.abs()).max(1e-12), "{}: got {got}, want {want}", what("control_risk"));
        }
        // a prior shrinks the effect towards its mean; bad priors name the argument
        assert!(GaussianPrior::from_args(Some(0.0), Some(0.0)).unwrap_err().message.starts_with("prior_variance:"));
        assert!(GaussianPrior::from_args(Some(0.1), None).unwrap_err().message.starts_with("prior_variance:"));
        assert!(GaussianPrior::from_args(None, Some(0.1)).unwrap_err().message.starts_with("prior_mean:"));
        let p = GaussianPrior { mean: 0.0, variance: 0.01 };
        let (m, sd) = p.posterior(0.2, 0.1);
        close(m, 0.1, "equal precisions: halfway to the prior mean");
        close(sd, (0.005f64).sqrt(), "posterior sd");
    }

    /// Issue #12, item 1: control -1.0, treatment -0.8 is a 20% improvement (the value went up), not -20%.
    /// 100 units each, sample variance 4.2741: z = 0.2 / se = 0.7554, so the chance to beat control is 0.775
    /// (0.225 with the lift's sign wrong).
    #[test]
    fn relative_lift_over_a_negative_control_has_the_sign_of_the_change() {
        let group = |mean: f64| {
            let (n, var) = (100.0, 4.2741);
            Moments { n, sum: mean * n, sum_squares: var * (n - 1.0) + mean * mean * n, ..Moments::default() }
        };
        let r = compare(&group(-1.0), &group(-0.8), &opts(MetricType::Mean, true)).unwrap();
        close(r.test.effect.unwrap(), 0.2, "lift");
        assert!((r.chance_to_beat_control.unwrap() - 0.775).abs() < 5e-4, "chance {:?}", r.chance_to_beat_control);
        assert!(r.test.ci_lower.unwrap() < 0.2 && r.test.ci_upper.unwrap() > 0.2);
        // a positive control is unchanged: mean2 / mean1 - 1
        let r = compare(&group(1.0), &group(1.2), &opts(MetricType::Mean, true)).unwrap();
        close(r.test.effect.unwrap(), 0.2, "lift over a positive control");
    }

    /// Issue #12, item 3: relative CUPED divides the adjusted difference by the control's unadjusted mean, with
    /// GrowthBook's relative-CUPED variance (checked here against the formula written out by hand), and is the plain
    /// relative test when the covariate explains nothing (θ = 0).
    /// gbstats 0.8.0's one-sided t-tests (OneSidedTreatmentGreaterTTest / OneSidedTreatmentLesserTTest) on 100 random
    /// cases (`one_sided` in tests/data/stats/gbstats.json): effect, p-value and the closed end of the interval to
    /// 1e-9. 0.8.0 put the lesser test's end at effect - width, GrowthBook's main branch (followed here) at
    /// effect + width: the fixture's value is mirrored around the effect.
    #[test]
    fn agrees_with_gbstats_one_sided() {
        let data: Value = serde_json::from_str(GBSTATS).unwrap();
        let cases = data["one_sided"].as_array().unwrap();
        assert_eq!(cases.len(), 100);
        for (i, c) in cases.iter().enumerate() {
            assert!(c["error"].is_null(), "case {i} is a no-result case");
            let o = CompareOptions {
                alpha: c["alpha"].as_f64().unwrap(),
                alternative: Alternative::parse(c["alternative"].as_str().unwrap()).unwrap(),
                ..opts(MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(), c["relative"].as_bool().unwrap())
            };
            let r = compare(&fixture_group(&c["control"]), &fixture_group(&c["treatment"]), &o).unwrap();
            let what = |f: &str| format!("one-sided case {i}: {f}");
            let effect = c["effect"].as_f64().unwrap();
            near(r.test.effect, effect, &what("effect"));
            near(r.test.p_value, c["p_value"].as_f64().unwrap(), &what("p_value"));
            if o.alternative == Alternative::Greater {
                near(r.test.ci_lower, c["ci"][0].as_f64().unwrap(), &what("ci_lower"));
                assert!(c["ci"][1].is_null() && r.test.ci_upper == Some(f64::INFINITY), "{}", what("ci_upper"));
            } else {
                near(r.test.ci_upper, 2.0 * effect - c["ci"][1].as_f64().unwrap(), &what("ci_upper (main's end)"));
                assert!(c["ci"][0].is_null() && r.test.ci_lower == Some(f64::NEG_INFINITY), "{}", what("ci_lower"));
            }
        }
    }

    /// GrowthBook's own published one-sided cases (its main branch, packages/stats/tests/frequentist/test_tests.py:
    /// TestOneSidedGreaterTTest, TestOneSidedLesserTTest and their sequential forms), relative and absolute, for the
    /// groups (n 3000, Σ 1396.87, Σ² 52377.9767) and (3461, 2422.7, 134698.29), compared as GrowthBook's test does
    /// (rounded to 5 decimals); the open end of each interval is infinite.
    #[test]
    fn one_sided_as_growthbook() {
        let a = Moments { n: 3000.0, sum: 1396.87, sum_squares: 52377.9767, ..Moments::default() };
        let b = Moments { n: 3461.0, sum: 2422.7, sum_squares: 134698.29, ..Moments::default() };
        let r5 = |x: f64| if x.is_finite() { (x * 1e5).round() / 1e5 } else { x };
        let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
        // (alternative, relative, effect, std error, fixed (p, lower, upper), sequential (p, lower, upper))
        let cases = [
            (Alternative::Greater, true, 0.5033610858562358, 0.3334122146400735, (0.06558262868467746, -0.045136675850396046, inf), (0.4999, -0.42356454602790883, inf)),
            (Alternative::Greater, false, 0.23437666666666668, 0.12983081254184736, (0.03554272489873023, 0.020791480063255735, inf), (0.46316491943359384, -0.12656844172804982, inf)),
            (Alternative::Less, true, 0.5033610858562358, 0.3334122146400735, (0.9344173713153225, ninf, 1.0518588475628676), (0.4999, ninf, 1.4302867177403806)),
            (Alternative::Less, false, 0.23437666666666668, 0.12983081254184736, (0.9644572751012698, ninf, 0.44796185327007765), (0.4999, ninf, 0.5953217750613832)),
        ];
        for (alternative, relative, effect, se, fixed, seq) in cases {
            let o = CompareOptions { alternative, ..opts(MetricType::Mean, relative) };
            let r = compare(&a, &b, &o).unwrap();
            let what = format!("{alternative:?} relative {relative}");
            assert_eq!((r5(r.test.effect.unwrap()), r5(r.test.std_error.unwrap())), (r5(effect), r5(se)), "{what}");
            assert_eq!(
                (r5(r.test.p_value.unwrap()), r5(r.test.ci_lower.unwrap()), r5(r.test.ci_upper.unwrap())),
                (r5(fixed.0), r5(fixed.1), r5(fixed.2)),
                "{what}: fixed-horizon"
            );
            assert_eq!(
                (r5(r.sequential_p_value.unwrap()), r5(r.sequential_ci_lower.unwrap()), r5(r.sequential_ci_upper.unwrap())),
                (r5(seq.0), r5(seq.1), r5(seq.2)),
                "{what}: sequential"
            );
            assert_eq!(r.test.significant, fixed.0 < 0.05, "{what}");
        }
        // the two one-sided p-values add up to 1, and the smaller is half the two-sided one
        let two = compare(&a, &b, &opts(MetricType::Mean, true)).unwrap().test.p_value.unwrap();
        let greater = compare(&a, &b, &CompareOptions { alternative: Alternative::Greater, ..opts(MetricType::Mean, true) }).unwrap();
        let less = compare(&a, &b, &CompareOptions { alternative: Alternative::Less, ..opts(MetricType::Mean, true) }).unwrap();
        close(greater.test.p_value.unwrap() + less.test.p_value.unwrap(), 1.0, "p greater + p less");
        close(greater.test.p_value.unwrap(), two / 2.0, "p greater = two-sided / 2");
        // a one-sided interval in JSON: the open end is null
        let json = serde_json::to_value(&greater).unwrap();
        assert!(json["ci_upper"].is_null() && json["ci_lower"].is_f64(), "{json}");
        assert!(Alternative::parse("up").unwrap_err().message.starts_with("alternative:"));
    }

    /// A ratio metric's moments with CUPED from per-unit (y, d, x, e): post numerator and denominator, pre ones.
    fn ratio_cuped_moments(units: &[[f64; 4]]) -> Moments {
        let sum = |f: &dyn Fn(&[f64; 4]) -> f64| units.iter().map(f).sum::<f64>();
        Moments {
            n: units.len() as f64,
            sum: sum(&|u| u[0]),
            sum_squares: sum(&|u| u[0] * u[0]),
            den_sum: Some(sum(&|u| u[1])),
            den_sum_squares: Some(sum(&|u| u[1] * u[1])),
            cross_sum: Some(sum(&|u| u[0] * u[1])),
            pre_sum: Some(sum(&|u| u[2])),
            pre_sum_squares: Some(sum(&|u| u[2] * u[2])),
            pre_cross_sum: Some(sum(&|u| u[2] * u[0])),
            pre_den_sum: Some(sum(&|u| u[3])),
            pre_den_sum_squares: Some(sum(&|u| u[3] * u[3])),
            pre_den_cross_sum: Some(sum(&|u| u[3] * u[1])),
            pre_ratio_cross_sum: Some(sum(&|u| u[2] * u[3])),
            post_num_pre_den_sum: Some(sum(&|u| u[0] * u[3])),
            pre_num_post_den_sum: Some(sum(&|u| u[2] * u[1])),
            ..Moments::default()
        }
    }

    /// GrowthBook's own published case for a ratio metric with CUPED (its main branch, packages/stats/tests/
    /// frequentist/test_tests.py, test_two_sided_ttest_test_runs_ratio_ra and test_sequential_test_runs_ratio_ra):
    /// relative lift -0.0007, CI (-0.00841, 0.00700), std error 0.00391, p 0.85771; sequential CI (-0.02063, 0.01923)
    /// and p 1.0 (rounded to 5 decimals there).
    #[test]
    fn ratio_cuped_as_growthbook() {
        let group = |n: f64, s: [f64; 8], p: [f64; 6]| Moments {
            n,
            sum: s[0],
            sum_squares: s[1],
            den_sum: Some(s[2]),
            den_sum_squares: Some(s[3]),
            pre_sum: Some(s[4]),
            pre_sum_squares: Some(s[5]),
            pre_den_sum: Some(s[6]),
            pre_den_sum_squares: Some(s[7]),
            // m_post_m_pre, d_post_d_pre, m_pre_d_pre, m_post_d_post, m_post_d_pre, m_pre_d_post
            pre_cross_sum: Some(p[0]),
            pre_den_cross_sum: Some(p[1]),
            pre_ratio_cross_sum: Some(p[2]),
            cross_sum: Some(p[3]),
            post_num_pre_den_sum: Some(p[4]),
            pre_num_post_den_sum: Some(p[5]),
            ..Moments::default()
        };
        let a = group(
            100.0,
            [485.112236689623, 2715.484666118136, 679.9093275844917, 4939.424001640236, 192.59138069991536, 460.076026390857, 290.1398399750233, 920.9461385038898],
            [1113.6215759318352, 2130.9404074446747, 634.239482353647, 3602.146836776702, 1559.2878434944676, 1460.3181079276983],
        );
        let b = group(
            100.0,
            [514.7757826608777, 2994.897482705013, 705.4090874383759, 5291.36604146392, 206.94157227402536, 514.2903702246757, 302.54389139107326, 994.4506208125663],
            [1237.0953021125997, 2292.081739775257, 698.4173425817908, 3918.1561431600717, 1701.0287270040265, 1604.0759503266522],
        );
        let o = CompareOptions { cuped: true, ..opts(MetricType::Ratio, true) };
        let r = compare(&a, &b, &o).unwrap();
        let round5 = |x: Option<f64>| (x.unwrap() * 1e5).round() / 1e5;
        assert_eq!(round5(r.test.effect), -0.0007);
        assert_eq!((round5(r.test.ci_lower), round5(r.test.ci_upper)), (-0.00841, 0.00700));
        assert_eq!(round5(r.test.std_error), 0.00391);
        assert_eq!(round5(r.test.p_value), 0.85771);
        assert_eq!((round5(r.sequential_ci_lower), round5(r.sequential_ci_upper)), (-0.02063, 0.01923));
        assert_eq!(round5(r.sequential_p_value), 1.0);
        // θ of both groups: the pre-period ratio explains most of the post one here
        assert!((r.cuped_theta.unwrap() - 0.8290044254063291).abs() < 1e-12, "{:?}", r.cuped_theta);
        assert!(r.variance_reduction.unwrap() > 0.5, "{:?}", r.variance_reduction);
    }

    /// The adjusted variance ∇ᵀΛ∇ assembled from the ten sums is the sample variance of the linearised per-unit
    /// values ∇·(y, d, x, e) (which checks that every cross product lands in its place of Λ), θ minimises the pooled
    /// variance of the adjusted values, and the absolute test is Welch's on the adjusted groups; without any
    /// pre-period signal (θ = 0) it is the plain ratio test, as GrowthBook falls back.
    #[test]
    fn ratio_cuped_by_linearisation() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut draw = |shift: f64| -> Vec<[f64; 4]> {
            (0..400)
                .map(|_| {
                    let activity = 1.0 + 9.0 * next();
                    let (d, e) = ((activity + 3.0 * next()).round().max(1.0), (activity + 3.0 * next()).round().max(1.0));
                    let rate = 0.8 + 0.4 * next();
                    [d * rate * (1.0 + shift) + next(), d, e * rate + next(), e]
                })
                .collect()
        };
        let (cu, tu) = (draw(0.0), draw(0.05));
        let (c, t) = (ratio_cuped_moments(&cu), ratio_cuped_moments(&tu));
        let (a, b, theta) = ratio_cuped(&c, &t).expect("a pre-period signal");
        let linear_var = |units: &[[f64; 4]], parts: &RatioCuped, theta: f64| {
            let g = parts.gradient(theta);
            let z: Vec<f64> = units.iter().map(|u| (0..4).map(|i| g[i] * u[i]).sum()).collect();
            let mean = z.iter().sum::<f64>() / z.len() as f64;
            z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (z.len() as f64 - 1.0)
        };
        for (units, parts) in [(&cu, &a), (&tu, &b)] {
            let want = linear_var(units, parts, theta);
            close(parts.adjusted(theta).var, want, "adjusted variance = variance of the linearised values");
        }
        let pooled = |th: f64| linear_var(&cu, &a, th) + linear_var(&tu, &b, th);
        assert!(pooled(theta) <= pooled(theta * 1.001) && pooled(theta) <= pooled(theta * 0.999), "theta minimises the pooled variance");
        let r = compare(&c, &t, &CompareOptions { cuped: true, ..opts(MetricType::Ratio, false) }).unwrap();
        let (sa, sb) = (a.adjusted(theta), b.adjusted(theta));
        let welch = stats::welch_t_test(sa.n, sa.mean, sa.var, sb.n, sb.mean, sb.var, false, 0.05).unwrap();
        close(r.test.effect.unwrap(), welch.effect.unwrap(), "absolute effect");
        close(r.test.p_value.unwrap(), welch.p_value.unwrap(), "absolute p");
        assert!(r.test.std_error.unwrap() < compare(&c, &t, &opts(MetricType::Ratio, false)).unwrap().test.std_error.unwrap());
        // no pre-period signal: every unit's pre values alike gives θ = 0 and the plain ratio test
        let flat = |m: &Moments| Moments {
            pre_sum: Some(m.n),
            pre_sum_squares: Some(m.n),
            pre_cross_sum: Some(m.sum),
            pre_den_sum: Some(m.n),
            pre_den_sum_squares: Some(m.n),
            pre_den_cross_sum: m.den_sum,
            pre_ratio_cross_sum: Some(m.n),
            post_num_pre_den_sum: Some(m.sum),
            pre_num_post_den_sum: m.den_sum,
            ..m.clone()
        };
        for relative in [true, false] {
            let with = compare(&flat(&c), &flat(&t), &CompareOptions { cuped: true, ..opts(MetricType::Ratio, relative) }).unwrap();
            let without = compare(&c, &t, &opts(MetricType::Ratio, relative)).unwrap();
            assert_eq!(with.cuped_theta, Some(0.0));
            assert_eq!(with.test, without.test);
        }
        // a missing pre-period denominator sum is refused, naming it
        let missing = Moments { pre_den_sum: None, ..c.clone() };
        let err = compare(&missing, &t, &CompareOptions { cuped: true, ..opts(MetricType::Ratio, true) }).unwrap_err();
        assert!(err.to_string().contains("control.pre_den_sum"), "{err}");
    }

    #[test]
    fn relative_cuped_as_growthbook() {
        let group = |ys: &[f64], xs: &[f64]| Moments {
            n: ys.len() as f64,
            sum: ys.iter().sum(),
            sum_squares: ys.iter().map(|y| y * y).sum(),
            pre_sum: Some(xs.iter().sum()),
            pre_sum_squares: Some(xs.iter().map(|x| x * x).sum()),
            pre_cross_sum: Some(ys.iter().zip(xs).map(|(y, x)| y * x).sum()),
            ..Moments::default()
        };
        let c = group(&[10.0, 12.0, 9.0, 15.0, 11.0, 13.0, 8.0, 14.0], &[9.0, 11.0, 9.5, 13.0, 10.0, 12.5, 7.0, 13.5]);
        let t = group(&[13.0, 12.5, 16.0, 11.0, 14.0, 17.0, 12.0], &[10.0, 10.5, 14.0, 9.0, 12.0, 15.5, 10.5]);
        let o = CompareOptions { cuped: true, ..opts(MetricType::Mean, true) };
        let r = compare(&c, &t, &o).unwrap();
        let abs = compare(&c, &t, &CompareOptions { cuped: true, ..opts(MetricType::Mean, false) }).unwrap();
        let theta = r.cuped_theta.unwrap();
        // the effect: the absolute CUPED difference over the unadjusted control mean
        let ya = c.sum / c.n;
        let yb = t.sum / t.n;
        close(r.test.effect.unwrap(), abs.test.effect.unwrap() / ya, "relative CUPED lift");
        // the variance, term by term from the raw values
        let cov = |m: &Moments, a: f64, b: f64, ab: f64| (ab - a * b / m.n) / (m.n - 1.0);
        let (vya, vxa, ca) = (cov(&c, c.sum, c.sum, c.sum_squares), cov(&c, c.pre_sum.unwrap(), c.pre_sum.unwrap(), c.pre_sum_squares.unwrap()),
            cov(&c, c.pre_sum.unwrap(), c.sum, c.pre_cross_sum.unwrap()));
        let (vyb, vxb, cb) = (cov(&t, t.sum, t.sum, t.sum_squares), cov(&t, t.pre_sum.unwrap(), t.pre_sum.unwrap(), t.pre_sum_squares.unwrap()),
            cov(&t, t.pre_sum.unwrap(), t.sum, t.pre_cross_sum.unwrap()));
        let v = (vyb + theta * theta * vxb - 2.0 * theta * cb) / (t.n * ya * ya)
            + (vya * (yb / ya).powi(2) - 2.0 * theta * ca * yb / ya + theta * theta * vxa) / (c.n * ya * ya);
        close(r.test.std_error.unwrap(), v.sqrt(), "relative CUPED standard error");
        // a covariate that explains nothing: θ = 0 and the plain relative test
        let flat = |m: &Moments| Moments { pre_sum: Some(m.n), pre_sum_squares: Some(m.n), pre_cross_sum: Some(m.sum), ..m.clone() };
        let r0 = compare(&flat(&c), &flat(&t), &o).unwrap();
        let plain = compare(&c, &t, &opts(MetricType::Mean, true)).unwrap();
        assert_eq!(r0.cuped_theta, Some(0.0));
        close(r0.test.effect.unwrap(), plain.test.effect.unwrap(), "θ = 0 lift");
        close(r0.test.std_error.unwrap(), plain.test.std_error.unwrap(), "θ = 0 standard error");
    }

    #[test]
    fn binomial_p_value_agrees_with_its_interval() {
        let rate = |x: f64, n: f64| Moments { n, sum: x, sum_squares: x, ..Moments::default() };
        let o = opts(MetricType::Binomial, true);
        let r = compare(&rate(14.0, 28.0), &rate(16.0, 30.0), &o).unwrap();
        near(r.test.p_value, 0.8070716832021887, "published case p");
        near(r.test.ci_lower, -0.4776740282706786, "published case ci_lower");
        near(r.test.ci_upper, 0.6110073616040119, "published case ci_upper");
        let r = compare(&rate(100.0, 5000.0), &rate(130.0, 5000.0), &o).unwrap();
        near(r.test.p_value, 0.07930819430174352, "100/5000 vs 130/5000 p");
        assert!(!r.test.significant && r.test.ci_lower.unwrap() < 0.0);
    }

    /// Values computed by hand: control [1, 2, 3], treatment [2, 3, 4, 5].
    #[test]
    fn mean_metric_by_hand() {
        let r = compare(&moments(&[1.0, 2.0, 3.0]), &moments(&[2.0, 3.0, 4.0, 5.0]), &opts(MetricType::Mean, false)).unwrap();
        assert_eq!((r.control_value, r.treatment_value), (Some(2.0), Some(3.5)));
        // var 1 and 5/3: se = sqrt(1/3 + 5/12) = sqrt(0.75)
        close(r.test.std_error.unwrap(), 0.75f64.sqrt(), "se");
        close(r.test.effect.unwrap(), 1.5, "effect");
    }

    /// A ratio with a constant denominator of 1 per unit is the mean metric.
    #[test]
    fn ratio_with_unit_denominators_is_the_mean() {
        let (c, t) = (moments(&[1.0, 2.0, 3.0, 7.0]), moments(&[2.0, 3.0, 4.0, 5.0, 9.0]));
        let with_den = |m: &Moments| Moments { den_sum: Some(m.n), den_sum_squares: Some(m.n), cross_sum: Some(m.sum), ..m.clone() };
        for relative in [false, true] {
            let mean = compare(&c, &t, &opts(MetricType::Mean, relative)).unwrap();
            let ratio = compare(&with_den(&c), &with_den(&t), &opts(MetricType::Ratio, relative)).unwrap();
            for (a, b) in [(mean.test.p_value, ratio.test.p_value), (mean.test.ci_lower, ratio.test.ci_lower)] {
                close(b.unwrap(), a.unwrap(), "ratio = mean");
            }
        }
    }

    #[test]
    fn bayesian_and_sequential_by_hand() {
        // effect 0 => chance 1/2, loss se·φ(0)
        let (c, l, lc) = bayesian(0.0, 2.0);
        close(c, 0.5, "chance");
        close(l, 2.0 / (2.0 * std::f64::consts::PI).sqrt(), "loss");
        close(lc, l, "the control's risk equals the treatment's at effect 0");
        // the two risks differ by the effect: E[max(0, Δ)] - E[max(0, -Δ)] = E[Δ]
        let (_, l, lc) = bayesian(0.7, 0.4);
        close(lc - l, 0.7, "control risk - treatment risk");
        // the always-valid p-value is never below the fixed-horizon one, and its interval is wider
        for (effect, se, n) in [(0.1f64, 0.05f64, 1000.0), (0.3, 0.1, 200.0), (0.01, 0.002, 1e6), (0.0, 0.1, 50.0)] {
            let fixed = 2.0 * Normal::new(0.0, 1.0).unwrap().sf((effect / se).abs());
            let (p, lo, hi) = sequential(effect, se, n, 0.05, DEFAULT_SEQUENTIAL_TUNING).unwrap();
            assert!(p >= fixed - 1e-15, "{p} < {fixed}");
            assert!(hi - lo > 2.0 * 1.959963984540054 * se);
        }
        assert!(sequential(0.1, 0.1, 10.0, 0.05, 0.0).unwrap_err().message.starts_with("sequential_tuning:"));
    }

    /// Same ρ at another α: keeps ρ fixed when inverting the p-value (test helper).
    fn tuning_for(alpha: f64) -> f64 {
        let la = 0.05f64.ln();
        let rho2 = (-2.0 * la + (1.0 - 2.0 * la).ln()) / DEFAULT_SEQUENTIAL_TUNING;
        let lb = alpha.ln();
        (-2.0 * lb + (1.0 - 2.0 * lb).ln()) / rho2
    }

    #[test]
    fn sequential_p_value_is_where_the_sequence_touches_zero() {
        let (effect, se, n) = (0.12, 0.05, 4000.0);
        let (p, _, _) = sequential(effect, se, n, 0.05, DEFAULT_SEQUENTIAL_TUNING).unwrap();
        // at alpha = p (with the same ρ) the lower bound is 0
        let (_, lo, _) = sequential(effect, se, n, p, tuning_for(p)).unwrap();
        assert!(lo.abs() < 1e-12, "lower bound at alpha = p: {lo}");
    }

    #[test]
    fn cuped_removes_variance_explained_by_the_covariate() {
        // y = x + small noise: CUPED should remove almost all variance, theta near 1
        let xs_c = [1.0, 5.0, 3.0, 8.0, 2.0, 9.0, 4.0];
        let xs_t = [2.0, 7.0, 1.0, 6.0, 9.0, 3.0];
        let noise = [0.1, -0.2, 0.05, 0.0, 0.15, -0.1, 0.2];
        let build = |xs: &[f64], lift: f64| {
            let ys: Vec<f64> = xs.iter().zip(noise).map(|(x, e)| x + e + lift).collect();
            Moments {
                pre_sum: Some(xs.iter().sum()),
                pre_sum_squares: Some(xs.iter().map(|x| x * x).sum()),
                pre_cross_sum: Some(xs.iter().zip(&ys).map(|(x, y)| x * y).sum()),
                ..moments(&ys)
            }
        };
        let (c, t) = (build(&xs_c, 0.0), build(&xs_t, 0.5));
        let o = CompareOptions { cuped: true, ..opts(MetricType::Mean, false) };
        let r = compare(&c, &t, &o).unwrap();
        assert!((r.cuped_theta.unwrap() - 1.0).abs() < 0.05, "{:?}", r.cuped_theta);
        assert!(r.variance_reduction.unwrap() > 0.99);
        assert!(r.test.p_value.unwrap() < 0.001, "the lift of 0.5 is clear once x is removed: {:?}", r.test.p_value);
        let plain = compare(&c, &t, &opts(MetricType::Mean, false)).unwrap();
        assert!(plain.test.p_value.unwrap() > 0.3);
        // a constant covariate changes nothing
        let flat = |m: &Moments| Moments { pre_sum: Some(m.n), pre_sum_squares: Some(m.n), pre_cross_sum: Some(m.sum), ..m.clone() };
        let r = compare(&flat(&c), &flat(&t), &o).unwrap();
        assert_eq!(r.cuped_theta, Some(0.0));
        close(r.test.p_value.unwrap(), plain.test.p_value.unwrap(), "constant covariate");
    }

    /// Every comparison case of the scipy fixture, to 1e-9 relative.
    #[test]
    fn agrees_with_scipy() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        let f = |v: &Value| v.as_f64().unwrap();
        for c in reference["compare"].as_array().unwrap() {
            let control: Moments = serde_json::from_value(c["control"].clone()).unwrap();
            let treatment: Moments = serde_json::from_value(c["treatment"].clone()).unwrap();
            let o = CompareOptions {
                metric_type: MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(),
                relative: c["relative"].as_bool().unwrap(),
                alpha: f(&c["alpha"]),
                cuped: c["cuped"].as_bool().unwrap(),
                sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
                lower_is_better: false,
                prior: None,
                alternative: Alternative::TwoSided,
            };
            let r = compare(&control, &treatment, &o).unwrap();
            let got = serde_json::to_value(&r).unwrap();
            for (k, want) in c["want"].as_object().unwrap() {
                close(f(&got[k]), f(want), &format!("{} {k}", c["name"]));
            }
        }
    }

    /// Lower is better (costs, latency): the Bayesian view flips, the test does not.
    #[test]
    fn lower_is_better_flips_the_bayesian_view() {
        let (c, t) = (moments(&[5.0, 6.0, 7.0, 6.5]), moments(&[3.0, 4.0, 3.5, 4.2]));
        let higher = compare(&c, &t, &opts(MetricType::Mean, false)).unwrap();
        let lower = compare(&c, &t, &CompareOptions { lower_is_better: true, ..opts(MetricType::Mean, false) }).unwrap();
        close(lower.chance_to_beat_control.unwrap(), 1.0 - higher.chance_to_beat_control.unwrap(), "flipped chance");
        assert!(lower.chance_to_beat_control.unwrap() > 0.99 && lower.expected_loss.unwrap() < 1e-3);
        assert_eq!((lower.test.p_value, lower.sequential_p_value), (higher.test.p_value, higher.sequential_p_value));
    }

    #[test]
    fn degenerate_and_bad_input() {
        let o = opts(MetricType::Mean, true);
        // GrowthBook's "no result" (p = 1, chance 0.5, an error code; effect and intervals NULL), never NaN:
        let no_result = |r: &Comparison, code: &str| {
            assert_eq!((r.test.p_value, r.chance_to_beat_control, r.sequential_p_value), (Some(1.0), Some(0.5), Some(1.0)));
            assert_eq!((r.test.effect, r.test.ci_lower, r.test.significant), (None, None, false));
            assert!(r.test.note.as_deref().is_some_and(|n| n.starts_with(code)), "{:?}", r.test.note);
        };
        // a variant with no units
        let r = compare(&moments(&[1.0, 2.0]), &moments(&[]), &o).unwrap();
        assert_eq!(r.treatment_value, None);
        no_result(&r, "ZERO_NEGATIVE_VARIANCE");
        // both groups constant, 2 units each: this used to say p = 0 and chance 1
        no_result(&compare(&moments(&[1.0, 1.0]), &moments(&[2.0, 2.0]), &opts(MetricType::Mean, false)).unwrap(), "ZERO_NEGATIVE_VARIANCE");
        // one unit in a group
        no_result(&compare(&moments(&[1.0, 3.0]), &moments(&[2.0]), &o).unwrap(), "ZERO_NEGATIVE_VARIANCE");
        // a control mean of 0, for a lift and for a difference alike (GrowthBook checks it first)
        no_result(&compare(&moments(&[-1.0, 1.0]), &moments(&[2.0, 3.0]), &o).unwrap(), "ZERO_NEGATIVE_BASELINE_VARIATION");
        let rate = |x: f64, n: f64| Moments { n, sum: x, sum_squares: x, ..Moments::default() };
        no_result(&compare(&rate(0.0, 100.0), &rate(5.0, 100.0), &opts(MetricType::Binomial, false)).unwrap(), "ZERO_NEGATIVE_BASELINE_VARIATION");
        // every unit of the treatment converted: no variance there
        no_result(&compare(&rate(50.0, 100.0), &rate(100.0, 100.0), &opts(MetricType::Binomial, true)).unwrap(), "ZERO_NEGATIVE_VARIANCE");
        // a ratio with no denominator
        let z = Moments { den_sum: Some(0.0), den_sum_squares: Some(0.0), cross_sum: Some(0.0), ..moments(&[0.0, 0.0]) };
        assert_eq!(compare(&z, &z, &opts(MetricType::Ratio, false)).unwrap().test.p_value, None);
        // bad input names the field
        let e = |c: &Moments, t: &Moments, o: &CompareOptions| compare(c, t, o).unwrap_err().message;
        assert!(e(&moments(&[1.0]), &Moments { n: -1.0, ..Moments::default() }, &o).starts_with("treatment.n:"));
        assert!(e(&Moments { sum: 5.0, ..moments(&[1.0, 1.0]) }, &moments(&[1.0]), &opts(MetricType::Binomial, false)).starts_with("control.sum:"));
        assert!(e(&moments(&[1.0]), &moments(&[1.0]), &opts(MetricType::Ratio, false)).starts_with("control.den_sum:"));
        assert!(e(&moments(&[1.0]), &moments(&[1.0]), &CompareOptions { cuped: true, ..o }).starts_with("control.pre_sum:"));
        assert!(e(&moments(&[1.0]), &moments(&[1.0]), &CompareOptions { cuped: true, ..opts(MetricType::Ratio, false) }).starts_with("control.den_sum:"));
        assert!(e(&Moments { sum: f64::INFINITY, ..moments(&[1.0]) }, &moments(&[1.0]), &o).starts_with("control.sum:"));
        assert!(e(&moments(&[1.0]), &moments(&[1.0]), &CompareOptions { sequential_tuning: -1.0, ..o }).starts_with("sequential_tuning:"));
        assert!(MetricType::parse("median").unwrap_err().message.starts_with("metric_type:"));
    }
}

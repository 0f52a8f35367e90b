//! Planning a test: units needed per variant to detect an effect, and the smallest effect a planned size can
//! detect, by one of two methods:
//!
//! - `GrowthBook` (the default), as GrowthBook's power calculator (`packages/shared/src/power/power.ts`,
//!   frequentist, fixed horizon): the standard error of the **relative** lift by the delta method with the control's
//!   variance for both groups (`v / (m² n) + v (m(1+e))² / (m⁴ n)`), both tails counted, alpha as given (variants
//!   only split the traffic), and its closed-form MDE. 10% baseline, +5%: 59,409 units per variant.
//! - `Statsmodels`: a two-sided z-test of the difference with each group's own variance, both tails counted (as
//!   statsmodels' NormalIndPower), Bonferroni-adjusted alpha when several treatments share one control; checked
//!   against statsmodels in `tests/data/stats/reference.json`. 10% baseline, +5%: 57,760 units per variant.
//!
//! And GrowthBook's power calculator as it answers for a planned number of units (`power_analysis`): the power to
//! detect a lift and the MDE at a target power, frequentist (fixed horizon or sequential) or Bayesian (flat or
//! proper prior on the lift), checked against the figures of GrowthBook's own tests (`power.test.ts`).
//!
//! Plain Rust.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::analysis::MetricType;
use crate::errors::AnalyticsError;

/// What is planned.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub metric_type: MetricType,
    /// control conversion rate (binomial) or mean (mean)
    pub baseline: f64,
    /// standard deviation of the per-unit value (mean metrics; binomial derive it from the rate)
    pub std_dev: Option<f64>,
    /// the effect is relative to the baseline (0.05 = +5%) rather than absolute
    pub relative: bool,
    pub alpha: f64,
    pub power: f64,
    /// variants including the control (statsmodels: alpha is split over the variants - 1 comparisons, Bonferroni)
    pub variants: u32,
    pub method: PowerMethod,
}

/// How power is computed (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerMethod {
    GrowthBook,
    Statsmodels,
}

impl PowerMethod {
    pub fn parse(s: &str) -> Result<PowerMethod, AnalyticsError> {
        match s {
            "growthbook" => Ok(PowerMethod::GrowthBook),
            "statsmodels" => Ok(PowerMethod::Statsmodels),
            _ => Err(AnalyticsError::invalid(format!("method: must be growthbook or statsmodels, got \"{s}\""))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleSize {
    /// units per variant, rounded up
    pub per_variant: u64,
    pub total: u64,
    /// the unrounded solution
    pub per_variant_exact: f64,
    pub treatment_value: f64,
    pub alpha_per_comparison: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectableEffect {
    /// the smallest effect (increase; relative or absolute, as planned) detected with the planned power
    pub effect: f64,
    pub treatment_value: f64,
    pub alpha_per_comparison: f64,
}

fn normal() -> Normal {
    Normal::new(0.0, 1.0).expect("standard normal")
}

impl Plan {
    fn check(&self) -> Result<f64, AnalyticsError> {
        let bad = |m: String| Err(AnalyticsError::invalid(m));
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad(format!("alpha: must be between 0 and 1, got {}", self.alpha));
        }
        if !(self.power > 0.0 && self.power < 1.0) {
            return bad(format!("power: must be between 0 and 1, got {}", self.power));
        }
        if self.variants < 2 {
            return bad(format!("variants: a test needs at least 2 variants (control included), got {}", self.variants));
        }
        if !self.baseline.is_finite() {
            return bad(format!("baseline: must be a finite number, got {}", self.baseline));
        }
        match self.metric_type {
            MetricType::Binomial => {
                if !(self.baseline > 0.0 && self.baseline < 1.0) {
                    return bad(format!("baseline: a conversion rate must be between 0 and 1 (exclusive), got {}", self.baseline));
                }
            }
            MetricType::Mean => match self.std_dev {
                Some(s) if s > 0.0 && s.is_finite() => {}
                Some(s) => return bad(format!("std_dev: must be a positive number, got {s}")),
                None => {
                    return Err(AnalyticsError::new(
                        crate::errors::ErrorKind::NullValue,
                        "std_dev: is required for a mean metric (the standard deviation of the per-unit value)",
                    ))
                }
            },
            MetricType::Ratio => return bad("metric_type: plan ratio metrics as mean metrics of the per-unit ratio".into()),
            MetricType::Quantile | MetricType::QuantileEvent => {
                return bad("metric_type: power is planned for binomial and mean metrics, not for quantile metrics".into())
            }
        }
        if self.baseline == 0.0 && (self.relative || self.method == PowerMethod::GrowthBook) {
            return bad("baseline: must not be 0 (the effect is relative to it)".into());
        }
        Ok(match self.method {
            PowerMethod::GrowthBook => self.alpha,
            PowerMethod::Statsmodels => self.alpha / f64::from(self.variants - 1),
        })
    }

    /// The planned effect as a lift relative to the baseline (GrowthBook plans relative lifts).
    fn lift(&self, effect: f64) -> f64 {
        if self.relative { effect } else { effect / self.baseline }
    }

    /// This plan as GrowthBook's power calculator takes it, for one variant's units (fixed horizon).
    fn calculator(&self, alpha: f64) -> PowerPlan {
        PowerPlan {
            metric_type: self.metric_type,
            baseline: self.baseline,
            std_dev: self.std_dev,
            variants: 1,
            alpha,
            engine: Engine::Frequentist { sequential_tuning: None },
        }
    }

    /// GrowthBook: power of the two-sided test of the relative lift with n units per variant.
    fn growthbook_power(&self, n: f64, lift: f64, alpha: f64) -> f64 {
        self.calculator(alpha).power(lift, n)
    }

    fn treatment_value(&self, effect: f64) -> f64 {
        if self.relative { self.baseline * (1.0 + effect) } else { self.baseline + effect }
    }

    /// Variance of one unit's value in each group: (control, treatment).
    fn variances(&self, treatment: f64) -> (f64, f64) {
        match self.metric_type {
            MetricType::Binomial => (self.baseline * (1.0 - self.baseline), treatment * (1.0 - treatment)),
            _ => {
                let s = self.std_dev.unwrap_or(1.0);
                (s * s, s * s)
            }
        }
    }

    /// Power of the two-sided test with n units per group, both tails counted.
    fn power_at(&self, n: f64, treatment: f64, alpha: f64) -> f64 {
        let (v1, v2) = self.variances(treatment);
        let z = normal().inverse_cdf(1.0 - alpha / 2.0);
        let shift = (treatment - self.baseline).abs() / ((v1 + v2) / n).sqrt();
        normal().cdf(shift - z) + normal().cdf(-shift - z)
    }
}

/// Solves increasing `f(x) = target` on [lo, hi] by bisection to machine precision.
fn bisect(f: impl Fn(f64) -> f64, target: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        if f(mid) < target { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// Units per variant to detect `effect` (relative or absolute, as planned) with the planned power.
pub fn sample_size(plan: &Plan, effect: f64) -> Result<SampleSize, AnalyticsError> {
    let alpha = plan.check()?;
    if !(effect.is_finite() && effect != 0.0) {
        return Err(AnalyticsError::invalid(format!("mde: must be a non-zero number, got {effect}")));
    }
    let treatment = plan.treatment_value(effect);
    if plan.metric_type == MetricType::Binomial && !(treatment > 0.0 && treatment < 1.0) {
        return Err(AnalyticsError::invalid(format!(
            "mde: the treatment rate would be {treatment}, outside (0, 1)"
        )));
    }
    let n = match plan.method {
        PowerMethod::GrowthBook => {
            let lift = plan.lift(effect);
            let power = |n: f64| plan.growthbook_power(n, lift, alpha);
            let mut hi = 1.0;
            while power(hi) < plan.power && hi < 1e16 {
                hi *= 2.0;
            }
            bisect(power, plan.power, 0.0, hi)
        }
        PowerMethod::Statsmodels => statsmodels_sample_size(plan, treatment, alpha),
    };
    if !(n.is_finite() && n < 1e15) {
        return Err(AnalyticsError::invalid(format!("mde: {effect} is too small to plan for (more than 1e15 units)")));
    }
    let per_variant = n.ceil().max(2.0) as u64;
    Ok(SampleSize {
        per_variant,
        total: per_variant * u64::from(plan.variants),
        per_variant_exact: n,
        treatment_value: treatment,
        alpha_per_comparison: alpha,
    })
}

/// statsmodels' NormalIndPower solved for n: the power grows with n; the one-tail closed form is a lower bound, so
/// search above it.
fn statsmodels_sample_size(plan: &Plan, treatment: f64, alpha: f64) -> f64 {
    let (v1, v2) = plan.variances(treatment);
    let z = normal().inverse_cdf(1.0 - alpha / 2.0) + normal().inverse_cdf(plan.power);
    let closed = z * z * (v1 + v2) / (treatment - plan.baseline).powi(2);
    let mut lo = closed * 0.5;
    while plan.power_at(lo, treatment, alpha) > plan.power && lo > 1e-12 {
        lo *= 0.5;
    }
    bisect(|n| plan.power_at(n, treatment, alpha), plan.power, lo, closed.max(lo) * 2.0 + 1.0)
}

/// The smallest increase detectable with `n` units per variant at the planned power.
pub fn minimum_detectable_effect(plan: &Plan, n: f64) -> Result<DetectableEffect, AnalyticsError> {
    let alpha = plan.check()?;
    if !(n >= 2.0 && n.is_finite()) {
        return Err(AnalyticsError::invalid(format!("units_per_variant: must be at least 2, got {n}")));
    }
    if plan.method == PowerMethod::GrowthBook {
        return growthbook_mde(plan, n, alpha);
    }
    let hi_treatment = match plan.metric_type {
        MetricType::Binomial => 1.0 - 1e-12,
        _ => plan.baseline + 100.0 * plan.std_dev.unwrap_or(1.0) * (1.0 + 1.0 / n.sqrt()) + 1.0,
    };
    if plan.power_at(n, hi_treatment, alpha) < plan.power {
        return Err(AnalyticsError::invalid(format!(
            "units_per_variant: {n} units cannot reach power {} for any increase",
            plan.power
        )));
    }
    let treatment = bisect(|t| plan.power_at(n, t, alpha), plan.power, plan.baseline, hi_treatment);
    let effect = if plan.relative { treatment / plan.baseline - 1.0 } else { treatment - plan.baseline };
    Ok(DetectableEffect { effect, treatment_value: treatment, alpha_per_comparison: alpha })
}

/// GrowthBook's closed form (its calculator's `findMdeFrequentist`): with σ² = v / n (v the control's variance)
/// and z = z(1 - α/2) - z(1 - power), the treatment mean μ is the larger root of a*μ² + b*μ + c* = 0 where
/// a* = 1 - z²σ²/m², b* = -2m, c* = m² - z²σ²; the MDE is (μ - m) / m. None when n ≤ v z² / m².
fn growthbook_mde(plan: &Plan, n: f64, alpha: f64) -> Result<DetectableEffect, AnalyticsError> {
    if plan.power <= alpha {
        return Err(AnalyticsError::invalid(format!("power: must be greater than alpha ({alpha}), got {}", plan.power)));
    }
    let m = plan.baseline;
    let z = normal().inverse_cdf(1.0 - alpha / 2.0) - normal().inverse_cdf(1.0 - plan.power);
    let v = plan.calculator(alpha).variance();
    if n <= v * z * z / (m * m) {
        return Err(AnalyticsError::invalid(format!(
            "units_per_variant: {n} units cannot reach power {} for any increase (more units, or fewer variants)",
            plan.power
        )));
    }
    let treatment = closed_form_treatment_mean(m, v, n, z);
    let lift = (treatment - m) / m;
    let effect = if plan.relative { lift } else { treatment - m };
    Ok(DetectableEffect { effect, treatment_value: treatment, alpha_per_comparison: alpha })
}

/// The larger root μ of a*μ² + b*μ + c* = 0 (`growthbook_mde`), for a mean m, a variance v per unit, n units per
/// variant and z = z(1 - α/2) - z(1 - power); callers check n > v z² / m² first.
fn closed_form_treatment_mean(m: f64, v: f64, n: f64, z: f64) -> f64 {
    let sigma2 = v / n;
    let a = 1.0 - z * z * sigma2 / (m * m);
    let b = -2.0 * m;
    let c = m * m - z * z * sigma2;
    (-b + (b * b - 4.0 * a * c).sqrt()) / (2.0 * a)
}

// ---- GrowthBook's power calculator: power and MDE of a planned experiment ----------------------------------------

/// Which analysis the experiment will get (GrowthBook's stats engine setting).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Engine {
    /// fixed-horizon t-test, or with `Some(tuning)` GrowthBook's sequential testing
    Frequentist { sequential_tuning: Option<f64> },
    /// Gaussian posterior of the lift; `prior` = Some((mean, std_dev)) of the lift is a proper prior, None flat
    Bayesian { prior: Option<(f64, f64)> },
}

/// One metric of a planned experiment, as GrowthBook's power calculator takes it: everything relative to the
/// baseline (the effect is a lift: 0.05 = +5%; a proper prior is on the lift).
#[derive(Debug, Clone, Copy)]
pub struct PowerPlan {
    pub metric_type: MetricType,
    /// conversion rate (binomial) or mean (mean) of the control
    pub baseline: f64,
    pub std_dev: Option<f64>,
    /// variants including the control; the units are split evenly among them
    pub variants: u32,
    pub alpha: f64,
    pub engine: Engine,
}

/// The power of a planned experiment for an effect, and the smallest effect it detects with a target power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerAnalysis {
    pub power: f64,
    /// the MDE (a lift) at the target power; None when none exists (the note says why)
    pub mde: Option<f64>,
    pub units_per_variant: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PowerPlan {
    fn check(&self, effect: f64, units: f64, target_power: f64) -> Result<(), AnalyticsError> {
        let plan = Plan {
            metric_type: self.metric_type,
            baseline: self.baseline,
            std_dev: self.std_dev,
            relative: true,
            alpha: self.alpha,
            power: target_power,
            variants: self.variants,
            method: PowerMethod::GrowthBook,
        };
        plan.check()?;
        let bad = |m: String| Err(AnalyticsError::invalid(m));
        if !effect.is_finite() {
            return bad(format!("effect: must be a finite lift (0.05 = +5%), got {effect}"));
        }
        if !(units.is_finite() && units >= 2.0 * f64::from(self.variants)) {
            return bad(format!("units: must be at least 2 per variant ({}), got {units}", 2 * self.variants));
        }
        match self.engine {
            Engine::Frequentist { sequential_tuning: Some(t) } if !(t > 0.0 && t.is_finite()) => {
                bad(format!("sequential_tuning: must be a positive number of units, got {t}"))
            }
            Engine::Bayesian { prior: Some((mean, sd)) } if !(mean.is_finite() && sd > 0.0 && sd.is_finite()) => {
                bad(format!("prior_std_dev: must be a positive number (and prior_mean finite), got {sd} (prior_mean {mean})"))
            }
            _ => Ok(()),
        }
    }

    /// The variance of one unit's value, the control's, used for both groups.
    fn variance(&self) -> f64 {
        match self.metric_type {
            MetricType::Binomial => self.baseline * (1.0 - self.baseline),
            _ => self.std_dev.unwrap_or(1.0).powi(2),
        }
    }

    /// The variance of the estimated lift with n units per variant, the control's variance in both groups (GrowthBook's
    /// `powerStandardError` squared: the delta method for (m(1+e) - m) / m).
    fn lift_variance(&self, effect: f64, n: f64) -> f64 {
        let (v, m) = (self.variance(), self.baseline);
        v / (m * m * n) + v * (m * (1.0 + effect)).powi(2) / (m.powi(4) * n)
    }

    /// GrowthBook's `sequentialPowerSequentialVariance`: the variance that makes a fixed-horizon interval as wide as
    /// the always-valid one after n units (the normal-mixture boundary with ρ for the tuning parameter).
    fn sequential_variance(&self, variance: f64, n: f64, tuning: f64) -> f64 {
        let alpha = self.alpha;
        let rho = ((-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning).sqrt();
        let n_rho2 = n * rho * rho;
        let under = 2.0 * (n_rho2 + 1.0) * ((n_rho2 + 1.0).sqrt() / alpha).ln() / (n * rho).powi(2);
        let z_sequential = n.sqrt() * under.sqrt();
        let z_star = normal().inverse_cdf(1.0 - 0.5 * alpha);
        let se = (variance / n).sqrt() * z_sequential / z_star;
        n * se * se
    }

    /// Power of the two-sided test of the lift `effect` with `units` in all (GrowthBook's `powerEstFrequentist` and
    /// `powerEstBayesian` with relative effects).
    pub fn power(&self, effect: f64, units: f64) -> f64 {
        let k = f64::from(self.variants);
        let n = units / k;
        let z_star = normal().inverse_cdf(1.0 - 0.5 * self.alpha);
        match self.engine {
            Engine::Frequentist { sequential_tuning } => {
                let se = match sequential_tuning {
                    Some(t) => self.sequential_variance(self.lift_variance(effect, n), 2.0 * n, t).sqrt(),
                    None => self.lift_variance(effect, n).sqrt(),
                };
                let standardized = effect / se;
                1.0 - normal().cdf(z_star - standardized) + normal().cdf(-z_star - standardized)
            }
            Engine::Bayesian { prior } => {
                // the estimate's variance given the effect; the effect itself is fixed (no variance in the data's
                // generating process); a proper prior N(mean, sd²) pulls the posterior towards its mean
                let tau_variance = self.lift_variance(effect, n);
                let (proper, prior_mean, prior_variance) = match prior {
                    Some((mean, sd)) => (1.0, mean, sd * sd),
                    None => (0.0, 0.0, 1.0),
                };
                let precision = 1.0 / tau_variance + proper / prior_variance;
                let cutpoint = |sign: f64| {
                    (sign * tau_variance * precision.sqrt() * z_star - proper * tau_variance * prior_mean / prior_variance
                        - effect)
                        / tau_variance.sqrt()
                };
                1.0 - normal().cdf(cutpoint(1.0)) + normal().cdf(cutpoint(-1.0))
            }
        }
    }

    /// The smallest lift detected with `target_power` (GrowthBook's `findMdeFrequentist`: a closed form, with the
    /// sequential variance when sequential; `findMdeBayesian`: a grid of 0.001 then 0.00001 up to +500%).
    pub fn mde(&self, target_power: f64, units: f64) -> Result<f64, String> {
        let n = units / f64::from(self.variants);
        match self.engine {
            Engine::Frequentist { sequential_tuning } => {
                if target_power <= self.alpha {
                    return Err("power must be greater than alpha".into());
                }
                let z = normal().inverse_cdf(1.0 - 0.5 * self.alpha) - normal().inverse_cdf(1.0 - target_power);
                let m = self.baseline;
                let v = match sequential_tuning {
                    Some(t) => self.sequential_variance(self.variance(), 2.0 * n, t),
                    None => self.variance(),
                };
                if n <= v * z * z / (m * m) {
                    return Err("too few units for any effect to reach the power (more units, or fewer variants)".into());
                }
                Ok((closed_form_treatment_mean(m, v, n, z) - m) / m)
            }
            Engine::Bayesian { .. } => {
                if self.power(0.0, units) >= target_power {
                    return Ok(0.0);
                }
                const STEP: f64 = 1e-3;
                let max_error = STEP / (2.0 * std::f64::consts::PI).sqrt();
                for i in 0..5000 {
                    let coarse = STEP * f64::from(i);
                    if self.power(coarse, units) >= target_power - max_error {
                        // the finer sweep below this step, accumulated as GrowthBook's loop accumulates it
                        let fine_step = STEP / 100.0;
                        let mut fine = coarse - STEP;
                        while fine < coarse {
                            if self.power(fine, units) >= target_power {
                                return Ok(fine);
                            }
                            fine += fine_step;
                        }
                    }
                }
                Err("no lift up to +500% reaches the power".into())
            }
        }
    }
}

/// Power for `effect` and the MDE at `target_power`, for `units` split evenly over the variants.
pub fn power_analysis(plan: &PowerPlan, effect: f64, units: f64, target_power: f64) -> Result<PowerAnalysis, AnalyticsError> {
    plan.check(effect, units, target_power)?;
    let (mde, note) = match plan.mde(target_power, units) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    Ok(PowerAnalysis { power: plan.power(effect, units), mde, units_per_variant: units / f64::from(plan.variants), note })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const REFERENCE: &str = include_str!("../../../../tests/data/stats/reference.json");

    fn plan(metric_type: MetricType, baseline: f64, std_dev: Option<f64>, relative: bool) -> Plan {
        Plan { metric_type, baseline, std_dev, relative, alpha: 0.05, power: 0.8, variants: 2, method: PowerMethod::Statsmodels }
    }

    fn growthbook(metric_type: MetricType, baseline: f64, std_dev: Option<f64>) -> Plan {
        Plan { method: PowerMethod::GrowthBook, ..plan(metric_type, baseline, std_dev, true) }
    }

    /// Issue #12, item 7: a 10% conversion rate and a +5% lift. GrowthBook's calculator: the control variance
    /// 0.09 for both groups, se² = 0.09 / (0.01 n) · (1 + 1.05²) = 18.9225 / n, power 0.8 at
    /// n = 18.9225 (2.80158 / 0.05)² = 59,408.x: 59,409 per variant. statsmodels (each group's own variance, the
    /// difference): 57,760.
    #[test]
    fn growthbook_power_calculator_figures() {
        let gb = sample_size(&growthbook(MetricType::Binomial, 0.10, None), 0.05).unwrap();
        assert_eq!(gb.per_variant, 59_409, "{gb:?}");
        let sm = sample_size(&plan(MetricType::Binomial, 0.10, None, true), 0.05).unwrap();
        assert_eq!(sm.per_variant, 57_760, "{sm:?}");
        // the power at that size is the target, both tails counted: 1 - Φ(z* - e/se) + Φ(-z* - e/se)
        let p = growthbook(MetricType::Binomial, 0.10, None);
        let se = (18.9225f64 / gb.per_variant_exact).sqrt();
        let z = normal().inverse_cdf(0.975);
        let power = 1.0 - normal().cdf(z - 0.05 / se) + normal().cdf(-z - 0.05 / se);
        assert!((power - 0.8).abs() < 1e-9, "{power}");
        assert!((p.growthbook_power(gb.per_variant_exact, 0.05, 0.05) - 0.8).abs() < 1e-12);
        // variants split the traffic and leave alpha alone
        let four = sample_size(&Plan { variants: 4, ..growthbook(MetricType::Binomial, 0.10, None) }, 0.05).unwrap();
        assert_eq!((four.per_variant, four.total, four.alpha_per_comparison), (59_409, 4 * 59_409, 0.05));
        // an absolute effect is the same plan: +0.005 on 0.10 is +5%
        let abs = sample_size(&Plan { relative: false, ..growthbook(MetricType::Binomial, 0.10, None) }, 0.005).unwrap();
        assert_eq!(abs.per_variant, 59_409);
    }

    /// GrowthBook's MDE is its closed form, and inverts the sample size within the one-tail approximation it makes
    /// (the far tail adds less than 1e-6 of power here).
    #[test]
    fn growthbook_mde_closed_form() {
        let p = growthbook(MetricType::Mean, 12.5, Some(8.0));
        let m = minimum_detectable_effect(&p, 20_000.0).unwrap();
        // by hand: z = 1.959964 + 0.841621, σ² = 64 / 20000, a = 1 - z²σ²/m², b = -25, c = m² - z²σ²
        let z: f64 = 1.959963984540054 + 0.8416212335729143;
        let s2 = 64.0 / 20_000.0;
        let (a, b, c) = (1.0 - z * z * s2 / 156.25, -25.0, 156.25 - z * z * s2);
        let mu = (-b + (b * b - 4.0 * a * c).sqrt()) / (2.0 * a);
        assert!((m.effect - (mu - 12.5) / 12.5).abs() < 1e-12, "{m:?}");
        let back = sample_size(&p, m.effect).unwrap();
        assert!((back.per_variant_exact - 20_000.0).abs() < 1.0, "{back:?}");
        let e = minimum_detectable_effect(&p, 3.0).unwrap_err().message; // 3 <= v z² / m² = 3.2
        assert!(e.starts_with("units_per_variant:"), "{e}");
        assert_eq!(PowerMethod::parse("bayes").unwrap_err().message, "method: must be growthbook or statsmodels, got \"bayes\"");
    }

    /// The textbook figure: 10% baseline, +2 points absolute, 80% power, 5% two-sided: about 3,839 per variant
    /// (closed form (1.96 + 0.8416)² (0.09 + 0.0384) / 0.02² = 3840.3 ignores the far tail).
    #[test]
    fn textbook_conversion_case() {
        let s = sample_size(&plan(MetricType::Binomial, 0.10, None, false), 0.02).unwrap();
        assert!((s.per_variant_exact - 3840.0).abs() < 2.0, "{s:?}");
        assert_eq!(s.total, 2 * s.per_variant);
        // and the MDE of that size is the effect again
        let m = minimum_detectable_effect(&plan(MetricType::Binomial, 0.10, None, false), s.per_variant_exact).unwrap();
        assert!((m.effect - 0.02).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn agrees_with_statsmodels() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        for c in reference["sample_size"].as_array().unwrap() {
            let p = Plan {
                metric_type: MetricType::parse(c["metric_type"].as_str().unwrap()).unwrap(),
                baseline: c["baseline"].as_f64().unwrap(),
                std_dev: c["std_dev"].as_f64(),
                relative: c["relative"].as_bool().unwrap(),
                alpha: c["alpha"].as_f64().unwrap(),
                power: c["power"].as_f64().unwrap(),
                variants: c["variants"].as_u64().unwrap() as u32,
                method: PowerMethod::Statsmodels,
            };
            let s = sample_size(&p, c["mde"].as_f64().unwrap()).unwrap();
            let want = c["per_variant_exact"].as_f64().unwrap();
            assert!((s.per_variant_exact - want).abs() <= 1e-9 * want, "{c}: got {}", s.per_variant_exact);
            let want_effect = c["mde"].as_f64().unwrap();
            if want_effect < 0.0 {
                continue; // the MDE is the smallest increase
            }
            let m = minimum_detectable_effect(&p, want).unwrap();
            assert!((m.effect - want_effect).abs() <= 1e-8 * want_effect.abs(), "{c}: mde {}", m.effect);
        }
    }

    #[test]
    fn more_variants_need_more_units() {
        let two = sample_size(&plan(MetricType::Mean, 10.0, Some(4.0), true), 0.05).unwrap();
        let four = sample_size(&Plan { variants: 4, ..plan(MetricType::Mean, 10.0, Some(4.0), true) }, 0.05).unwrap();
        assert!(four.per_variant > two.per_variant);
        assert_eq!(four.total, 4 * four.per_variant);
        assert!((four.alpha_per_comparison - 0.05 / 3.0).abs() < 1e-15);
    }

    fn round5(x: f64) -> f64 {
        (x * 1e5).round() / 1e5
    }

    fn gb_plan(metric_type: MetricType, baseline: f64, std_dev: Option<f64>, variants: u32, engine: Engine) -> PowerPlan {
        PowerPlan { metric_type, baseline, std_dev, variants, alpha: 0.05, engine }
    }

    const FIXED: Engine = Engine::Frequentist { sequential_tuning: None };

    /// GrowthBook's own tests of its power calculator (packages/shared/test/power.test.ts): a mean metric (10, sd²
    /// 3909.9997749994377), +5%, 400,000 units over 3 variations: power 0.52144 and MDE 0.07027; sequential
    /// (tuning 5,000): power 0.20596 and MDE 0.12821. Compared as GrowthBook compares them, to 5 decimals.
    #[test]
    fn growthbook_power_test_values() {
        let sd = Some(3909.9997749994377f64.sqrt());
        let fixed = gb_plan(MetricType::Mean, 10.0, sd, 3, FIXED);
        assert_eq!(round5(fixed.power(0.05, 400_000.0)), 0.52144);
        assert_eq!(round5(fixed.mde(0.8, 400_000.0).unwrap()), 0.07027);
        let seq = gb_plan(MetricType::Mean, 10.0, sd, 3, Engine::Frequentist { sequential_tuning: Some(5000.0) });
        assert_eq!(round5(seq.power(0.05, 400_000.0)), 0.20596);
        assert_eq!(round5(seq.mde(0.8, 400_000.0).unwrap()), 0.12821);
    }

    /// GrowthBook's `checks power` and `checks sequential power` tests: 4,500 units a week for 9 weeks over 3
    /// variations; a click-through rate of 10% (+5%) and revenue of mean 0.1, variance 0.5 (+30%); the power and the
    /// MDE at 80% power each week, frequentist, sequential (5,000) and Bayesian with the proper prior N(0.2, 0.3) on
    /// the lift. Every figure equals GrowthBook's to 5 decimals.
    #[test]
    fn growthbook_power_weeks() {
        let frequentist_power = [
            0.073, 0.17053, 0.0965, 0.29389, 0.1204, 0.41122, 0.14458, 0.51749, 0.16895, 0.61037, 0.19342, 0.68938,
            0.21791, 0.75513, 0.24235, 0.80886, 0.26666, 0.85213,
        ];
        let frequentist_mde = [
            0.36767, 1.26769, 0.24505, 0.71941, 0.19525, 0.54299, 0.16673, 0.4506, 0.14774, 0.39208, 0.13394, 0.35099,
            0.12336, 0.32018, 0.11491, 0.29603, 0.10796, 0.27647,
        ];
        let bayesian_power = [
            0.0752, 0.15127, 0.10103, 0.29358, 0.12581, 0.41893, 0.15048, 0.52858, 0.17516, 0.62241, 0.19984, 0.70103,
            0.22446, 0.7657, 0.24899, 0.81807, 0.27334, 0.8599,
        ];
        let bayesian_mde = [
            0.36259, 1.65287, 0.24173, 0.73248, 0.1929, 0.54036, 0.16492, 0.44561, 0.14626, 0.38687, 0.1327, 0.34604,
            0.12228, 0.3156, 0.11396, 0.29182, 0.10712, 0.27258,
        ];
        let sequential_power = [
            0.05936, 0.09832, 0.06912, 0.14992, 0.07849, 0.19972, 0.08761, 0.24784, 0.09657, 0.29426, 0.10541, 0.33888,
            0.11415, 0.38165, 0.12282, 0.42249, 0.13142, 0.46136,
        ];
        let sequential_mde = [
            0.65545, 4.33868, 0.4112, 1.51846, 0.32394, 1.04943, 0.27607, 0.84084, 0.24484, 0.71862, 0.22241, 0.63663,
            0.20532, 0.577, 0.19172, 0.53123, 0.18058, 0.49473,
        ];
        let bayes = Engine::Bayesian { prior: Some((0.2, 0.3f64.sqrt())) };
        let sequential = Engine::Frequentist { sequential_tuning: Some(5000.0) };
        for (engine, want_power, want_mde) in
            [(FIXED, frequentist_power, frequentist_mde), (bayes, bayesian_power, bayesian_mde), (sequential, sequential_power, sequential_mde)]
        {
            let metrics = [
                (gb_plan(MetricType::Binomial, 0.1, None, 3, engine), 0.05),
                (gb_plan(MetricType::Mean, 0.1, Some(0.5f64.sqrt()), 3, engine), 0.3),
            ];
            for week in 0..9 {
                let units = 4500.0 * (week + 1) as f64;
                for (i, (plan, effect)) in metrics.iter().enumerate() {
                    let at = 2 * week + i;
                    assert_eq!(round5(plan.power(*effect, units)), want_power[at], "{engine:?} week {} metric {i}", week + 1);
                    assert_eq!(round5(plan.mde(0.8, units).unwrap()), want_mde[at], "{engine:?} week {} metric {i}", week + 1);
                }
            }
        }
    }

    /// GrowthBook's `powerEstBayesian` test: the MDE at 80% power, given as the effect, has 80% power (relative lift,
    /// mean 10, proper prior N(0.05, 0.5476), 400,000 / 3 units per variation).
    #[test]
    fn growthbook_bayesian_mde_has_the_power() {
        let plan = gb_plan(MetricType::Mean, 10.0, Some(3909.9997749994377f64.sqrt()), 3,
                           Engine::Bayesian { prior: Some((0.05, 0.5476f64.sqrt())) });
        let mde = plan.mde(0.8, 400_000.0).unwrap();
        assert_eq!(round5(mde), round5(0.07024999999999991));
        assert_eq!((plan.power(mde, 400_000.0) * 1e3).round() / 1e3, 0.8);
        // the answer of power_analysis, and its checks
        let a = power_analysis(&plan, 0.05, 400_000.0, 0.8).unwrap();
        assert_eq!((a.mde, a.units_per_variant), (Some(mde), 400_000.0 / 3.0));
        let e = |plan: PowerPlan, effect: f64, units: f64| power_analysis(&plan, effect, units, 0.8).unwrap_err().message;
        assert!(e(plan, f64::NAN, 1000.0).starts_with("effect:"));
        assert!(e(plan, 0.05, 4.0).starts_with("units:"));
        let seq0 = gb_plan(MetricType::Binomial, 0.1, None, 2, Engine::Frequentist { sequential_tuning: Some(0.0) });
        assert!(e(seq0, 0.05, 1000.0).starts_with("sequential_tuning:"));
        let bad_prior = gb_plan(MetricType::Binomial, 0.1, None, 2, Engine::Bayesian { prior: Some((0.0, -1.0)) });
        assert!(e(bad_prior, 0.05, 1000.0).starts_with("prior_std_dev:"));
        // too few units: no MDE, a note instead
        let small = power_analysis(&gb_plan(MetricType::Binomial, 0.1, None, 2, FIXED), 0.05, 10.0, 0.8).unwrap();
        assert_eq!(small.mde, None);
        assert!(small.note.unwrap().starts_with("too few units"));
    }

    #[test]
    fn bad_plans_name_the_field() {
        let e = |p: Plan, mde: f64| sample_size(&p, mde).unwrap_err().message;
        assert!(e(plan(MetricType::Binomial, 1.5, None, false), 0.1).starts_with("baseline:"));
        assert!(e(plan(MetricType::Binomial, 0.9, None, false), 0.2).starts_with("mde:"));
        assert!(e(plan(MetricType::Mean, 1.0, None, false), 0.2).starts_with("std_dev:"));
        assert!(e(plan(MetricType::Mean, 1.0, Some(-1.0), false), 0.2).starts_with("std_dev:"));
        assert!(e(plan(MetricType::Mean, 1.0, Some(1.0), false), 0.0).starts_with("mde:"));
        assert!(e(Plan { power: 1.0, ..plan(MetricType::Mean, 1.0, Some(1.0), false) }, 0.1).starts_with("power:"));
        assert!(e(Plan { variants: 1, ..plan(MetricType::Mean, 1.0, Some(1.0), false) }, 0.1).starts_with("variants:"));
        let m = minimum_detectable_effect(&plan(MetricType::Mean, 1.0, Some(1.0), false), 1.0).unwrap_err().message;
        assert!(m.starts_with("units_per_variant:"));
    }
}

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

    /// GrowthBook: variance of one unit's value, the control's, used for both groups.
    fn control_variance(&self) -> f64 {
        match self.metric_type {
            MetricType::Binomial => self.baseline * (1.0 - self.baseline),
            _ => self.std_dev.unwrap_or(1.0).powi(2),
        }
    }

    /// GrowthBook: the standard error of the relative lift `lift` with n units per variant.
    fn lift_standard_error(&self, n: f64, lift: f64) -> f64 {
        let (v, m) = (self.control_variance(), self.baseline);
        (v / (m * m * n) + v * (m * (1.0 + lift)).powi(2) / (m.powi(4) * n)).sqrt()
    }

    /// GrowthBook: power of the two-sided test of the relative lift with n units per variant.
    fn growthbook_power(&self, n: f64, lift: f64, alpha: f64) -> f64 {
        let z = normal().inverse_cdf(1.0 - alpha / 2.0);
        let standardized = lift / self.lift_standard_error(n, lift);
        1.0 - normal().cdf(z - standardized) + normal().cdf(-z - standardized)
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
    let v = plan.control_variance();
    if n <= v * z * z / (m * m) {
        return Err(AnalyticsError::invalid(format!(
            "units_per_variant: {n} units cannot reach power {} for any increase (more units, or fewer variants)",
            plan.power
        )));
    }
    let sigma2 = v / n;
    let a = 1.0 - z * z * sigma2 / (m * m);
    let b = -2.0 * m;
    let c = m * m - z * z * sigma2;
    let treatment = (-b + (b * b - 4.0 * a * c).sqrt()) / (2.0 * a);
    let lift = (treatment - m) / m;
    let effect = if plan.relative { lift } else { treatment - m };
    Ok(DetectableEffect { effect, treatment_value: treatment, alpha_per_comparison: alpha })
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

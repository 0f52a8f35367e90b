//! Planning a test: units needed per variant to detect an effect, and the smallest effect a planned size can
//! detect. Two-sided z-test power with both tails counted (as statsmodels' NormalIndPower), Bonferroni-adjusted
//! alpha when several treatments share one control. Plain Rust; checked against statsmodels in
//! `tests/data/stats/reference.json`.

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
    /// variants including the control; alpha is split over the variants - 1 comparisons (Bonferroni)
    pub variants: u32,
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
        if self.relative && self.baseline == 0.0 {
            return bad("baseline: must not be 0 for a relative effect".into());
        }
        Ok(self.alpha / f64::from(self.variants - 1))
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
    // the power grows with n; the one-tail closed form is a lower bound, so search above it
    let (v1, v2) = plan.variances(treatment);
    let z = normal().inverse_cdf(1.0 - alpha / 2.0) + normal().inverse_cdf(plan.power);
    let closed = z * z * (v1 + v2) / (treatment - plan.baseline).powi(2);
    let mut lo = closed * 0.5;
    while plan.power_at(lo, treatment, alpha) > plan.power && lo > 1e-12 {
        lo *= 0.5;
    }
    let n = bisect(|n| plan.power_at(n, treatment, alpha), plan.power, lo, closed.max(lo) * 2.0 + 1.0);
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

/// The smallest increase detectable with `n` units per variant at the planned power.
pub fn minimum_detectable_effect(plan: &Plan, n: f64) -> Result<DetectableEffect, AnalyticsError> {
    let alpha = plan.check()?;
    if !(n >= 2.0 && n.is_finite()) {
        return Err(AnalyticsError::invalid(format!("units_per_variant: must be at least 2, got {n}")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const REFERENCE: &str = include_str!("../../../../tests/data/stats/reference.json");

    fn plan(metric_type: MetricType, baseline: f64, std_dev: Option<f64>, relative: bool) -> Plan {
        Plan { metric_type, baseline, std_dev, relative, alpha: 0.05, power: 0.8, variants: 2 }
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

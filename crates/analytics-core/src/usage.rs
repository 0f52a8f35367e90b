//! Usage projections: a straight line fitted by least squares to daily usage snapshots, and what it predicts with
//! its uncertainty. Plain Rust, no database.
//!
//! `y = a + b·x` over the points (x: day number, y: a day's value). The residual standard deviation is
//! `s = sqrt(Σ(y − ŷ)² / (n − 2))`; with `Sxx = Σ(x − x̄)²`, the prediction interval at level `1 − α` is
//!
//! - for one future value at `x0` (a stock: bytes or spans stored on a day):
//!   `ŷ(x0) ± t(1 − α/2, n − 2) · s · sqrt(1 + 1/n + (x0 − x̄)² / Sxx)`
//! - for the sum of future values at `x1 … xh` (a flow: the spend or tokens of the next h days), whose variance is
//!   `h·σ²` (each day's own noise) plus that of `Σ ŷ(xi)`, `σ²·(h²/n + (Σ(xi − x̄))² / Sxx)`:
//!   `Σ ŷ(xi) ± t(1 − α/2, n − 2) · s · sqrt(h + h²/n + (Σ(xi − x̄))² / Sxx)`
//!
//! (the textbook intervals of simple linear regression, with normal, independent residuals). Usage cannot be
//! negative: a falling trend's value and bounds are floored at 0.

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::errors::{AnalyticsError, ErrorKind};

/// A line fitted to points.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub n: usize,
    pub intercept: f64,
    pub slope: f64,
    /// the residual standard deviation (0 for points on a line; NaN with two points)
    pub residual_sd: f64,
    /// the share of the variance the line explains (1 when y does not vary)
    pub r_squared: f64,
    x_mean: f64,
    sxx: f64,
}

/// A prediction: the value, and its interval (None with fewer than three points: no residual to measure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub value: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl Fit {
    /// Least squares through (xs, ys); at least two points with two distinct x, all finite.
    pub fn new(xs: &[f64], ys: &[f64]) -> Result<Fit, AnalyticsError> {
        if xs.len() != ys.len() {
            return Err(AnalyticsError::invalid(format!("points: {} x values but {} y values", xs.len(), ys.len())));
        }
        if let Some(v) = xs.iter().chain(ys).find(|v| !v.is_finite()) {
            return Err(AnalyticsError::invalid(format!("points: every value must be a finite number, got {v}")));
        }
        let n = xs.len();
        if n < 2 {
            return Err(AnalyticsError::new(ErrorKind::NoDataFound, format!("points: a trend needs at least 2 days, got {n}")));
        }
        let x_mean = xs.iter().sum::<f64>() / n as f64;
        let y_mean = ys.iter().sum::<f64>() / n as f64;
        let sxx: f64 = xs.iter().map(|x| (x - x_mean).powi(2)).sum();
        if sxx == 0.0 {
            return Err(AnalyticsError::invalid("points: a trend needs at least 2 different days".to_string()));
        }
        let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - x_mean) * (y - y_mean)).sum();
        let syy: f64 = ys.iter().map(|y| (y - y_mean).powi(2)).sum();
        let slope = sxy / sxx;
        let intercept = y_mean - slope * x_mean;
        let sse: f64 = xs.iter().zip(ys).map(|(x, y)| (y - intercept - slope * x).powi(2)).sum();
        let residual_sd = if n > 2 { (sse / (n - 2) as f64).sqrt() } else { f64::NAN };
        let r_squared = if syy > 0.0 { (1.0 - sse / syy).clamp(0.0, 1.0) } else { 1.0 };
        Ok(Fit { n, intercept, slope, residual_sd, r_squared, x_mean, sxx })
    }

    /// The line's value at x.
    pub fn at(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }

    /// The t quantile of the interval at `level` (None with two points).
    fn t(&self, level: f64) -> Result<Option<f64>, AnalyticsError> {
        if !(level > 0.0 && level < 1.0) {
            return Err(AnalyticsError::invalid(format!("level: must be between 0 and 1, got {level}")));
        }
        if self.n < 3 {
            return Ok(None);
        }
        let t = StudentsT::new(0.0, 1.0, (self.n - 2) as f64)
            .map_err(|e| AnalyticsError::invalid(format!("degrees of freedom {}: {e}", self.n - 2)))?;
        Ok(Some(t.inverse_cdf(1.0 - (1.0 - level) / 2.0)))
    }

    fn projection(value: f64, half_width: Option<f64>) -> Projection {
        Projection {
            value: value.max(0.0),
            lower: half_width.map(|w| (value - w).max(0.0)),
            upper: half_width.map(|w| (value + w).max(0.0)),
        }
    }

    /// One future value at x0 (a stock), with its prediction interval at `level`.
    pub fn predict(&self, x0: f64, level: f64) -> Result<Projection, AnalyticsError> {
        let n = self.n as f64;
        let half = self.t(level)?.map(|t| t * self.residual_sd * (1.0 + 1.0 / n + (x0 - self.x_mean).powi(2) / self.sxx).sqrt());
        Ok(Fit::projection(self.at(x0), half))
    }

    /// The sum of future values at `xs` (a flow over days to come), with its prediction interval at `level`.
    pub fn predict_sum(&self, xs: &[f64], level: f64) -> Result<Projection, AnalyticsError> {
        let n = self.n as f64;
        let h = xs.len() as f64;
        let value: f64 = xs.iter().map(|x| self.at(*x)).sum();
        let spread: f64 = xs.iter().map(|x| x - self.x_mean).sum();
        let half = self.t(level)?.map(|t| t * self.residual_sd * (h + h * h / n + spread * spread / self.sxx).sqrt());
        Ok(Fit::projection(value, half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reproducible normal-ish noise (sum of 12 uniforms, minus 6): no rand crate needed.
    fn noise(seed: &mut u64) -> f64 {
        (0..12)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (*seed >> 11) as f64 / (1u64 << 53) as f64
            })
            .sum::<f64>()
            - 6.0
    }

    #[test]
    fn points_on_a_line_give_the_line_and_no_width() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 100.0 + 5.0 * x).collect();
        let fit = Fit::new(&xs, &ys).unwrap();
        assert!((fit.slope - 5.0).abs() < 1e-12 && (fit.intercept - 100.0).abs() < 1e-9);
        assert_eq!(fit.r_squared, 1.0);
        let p = fit.predict(39.0, 0.95).unwrap();
        assert!((p.value - 295.0).abs() < 1e-9 && (p.upper.unwrap() - p.lower.unwrap()).abs() < 1e-9);
        // the next 30 days of a flow: Σ (100 + 5x) for x = 10..39
        let next: Vec<f64> = (10..40).map(f64::from).collect();
        let s = fit.predict_sum(&next, 0.95).unwrap();
        assert!((s.value - (30.0 * 100.0 + 5.0 * (10..40).sum::<i32>() as f64)).abs() < 1e-6);
    }

    #[test]
    fn a_known_noisy_trend_lies_within_its_interval_as_often_as_the_level_says() {
        // y = 1000 + 20 x + N(0, 50²), 60 days; the true value at day 60 + 30 is 1000 + 20·89, and the true sum of
        // the next 30 days' noiseless values ± their own noise. Over 400 seeds, the 95 % intervals must cover the
        // realised value about 95 % of the time (binomial sd ~1.1 %).
        let (mut covered_point, mut covered_sum, trials) = (0, 0, 400);
        let mut seed = 7u64;
        for _ in 0..trials {
            let xs: Vec<f64> = (0..60).map(f64::from).collect();
            let ys: Vec<f64> = xs.iter().map(|x| 1000.0 + 20.0 * x + 50.0 * noise(&mut seed)).collect();
            let fit = Fit::new(&xs, &ys).unwrap();
            assert!((fit.slope - 20.0).abs() < 2.0, "slope {}", fit.slope);
            let realised = 1000.0 + 20.0 * 89.0 + 50.0 * noise(&mut seed);
            let p = fit.predict(89.0, 0.95).unwrap();
            covered_point += (p.lower.unwrap() <= realised && realised <= p.upper.unwrap()) as i32;
            let next: Vec<f64> = (60..90).map(f64::from).collect();
            let realised_sum: f64 = next.iter().map(|x| 1000.0 + 20.0 * x + 50.0 * noise(&mut seed)).sum();
            let s = fit.predict_sum(&next, 0.95).unwrap();
            covered_sum += (s.lower.unwrap() <= realised_sum && realised_sum <= s.upper.unwrap()) as i32;
        }
        for (what, c) in [("point", covered_point), ("sum", covered_sum)] {
            let rate = c as f64 / trials as f64;
            assert!((0.91..=0.99).contains(&rate), "{what}: coverage {rate}");
        }
    }

    #[test]
    fn two_points_have_a_trend_but_no_interval_and_usage_is_never_negative() {
        let fit = Fit::new(&[0.0, 1.0], &[10.0, 4.0]).unwrap();
        let p = fit.predict(5.0, 0.95).unwrap();
        assert_eq!((p.value, p.lower, p.upper), (0.0, None, None), "10 - 6·5 < 0 is floored at 0");
        assert!(fit.residual_sd.is_nan());
    }

    #[test]
    fn bad_points_name_what_is_wrong() {
        assert!(Fit::new(&[1.0], &[1.0]).unwrap_err().message.contains("at least 2 days"));
        assert!(Fit::new(&[1.0, 1.0], &[1.0, 2.0]).unwrap_err().message.contains("2 different days"));
        assert!(Fit::new(&[1.0, 2.0], &[1.0]).unwrap_err().message.contains("1 y values"));
        assert!(Fit::new(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap_err().message.contains("finite"));
        let fit = Fit::new(&[0.0, 1.0, 2.0], &[1.0, 2.0, 4.0]).unwrap();
        assert!(fit.predict(3.0, 1.5).unwrap_err().message.starts_with("level:"));
    }
}

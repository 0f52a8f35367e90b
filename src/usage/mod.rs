//! Usage: the SQL binding of the trend projection (`analytics_core::usage`). Storage figures, snapshots, the cost
//! report and `usage_projection` itself (which reads the snapshots and calls this) are SQL, sql/046_usage.sql.

use analytics_core::usage::Fit;
use pgrx::prelude::*;

use crate::bind::{required, AnalyticsError, ErrorKind, OrRaise, Raise};

/// `analytics._project_trend(xs, ys, last_x, horizons, stock, level)`: a least-squares line through (xs, ys) and,
/// for each horizon h (days after last_x), a stock's value at last_x + h or a flow's total over last_x + 1 ..
/// last_x + h, with the prediction interval at `level`. Internal: `analytics.usage_projection`.
#[pg_extern(immutable, parallel_safe, name = "_project_trend")]
#[allow(clippy::type_complexity)]
pub fn project_trend(
    xs: Option<Vec<Option<f64>>>,
    ys: Option<Vec<Option<f64>>>,
    last_x: Option<f64>,
    horizons: Option<Vec<Option<i32>>>,
    stock: Option<bool>,
    level: Option<f64>,
) -> TableIterator<
    'static,
    (
        name!(horizon_days, i32),
        name!(projected, f64),
        name!(lower_bound, Option<f64>),
        name!(upper_bound, Option<f64>),
        name!(slope_per_day, f64),
        name!(r_squared, f64),
        name!(days_fitted, i32),
    ),
> {
    let no_nulls = |v: Vec<Option<f64>>, name: &str| -> Vec<f64> {
        v.into_iter()
            .map(|x| x.unwrap_or_else(|| AnalyticsError::new(ErrorKind::NullValue, format!("{name}: has a NULL element")).raise()))
            .collect()
    };
    let xs = no_nulls(required(xs, "xs"), "xs");
    let ys = no_nulls(required(ys, "ys"), "ys");
    let last_x = required(last_x, "last_x");
    let horizons = required(horizons, "horizons");
    let stock = required(stock, "stock");
    let level = required(level, "level");
    if horizons.is_empty() {
        AnalyticsError::invalid("horizons: must name at least one horizon (days)".to_string()).raise();
    }
    let fit = Fit::new(&xs, &ys).or_raise();
    let rows: Vec<_> = horizons
        .into_iter()
        .map(|h| {
            let h = match h {
                Some(h) if (1..=3660).contains(&h) => h,
                other => AnalyticsError::invalid(format!(
                    "horizons: every horizon must be between 1 and 3660 days, got {}",
                    other.map_or("NULL".to_string(), |h| h.to_string())
                ))
                .raise(),
            };
            let p = if stock {
                fit.predict(last_x + f64::from(h), level)
            } else {
                let days: Vec<f64> = (1..=h).map(|d| last_x + f64::from(d)).collect();
                fit.predict_sum(&days, level)
            }
            .or_raise();
            (h, p.value, p.lower, p.upper, fit.slope, fit.r_squared, fit.n as i32)
        })
        .collect();
    TableIterator::new(rows)
}

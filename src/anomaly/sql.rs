//! SQL bindings of the anomaly detectors. `detect_anomalies` is pure (IMMUTABLE, PARALLEL SAFE, reads no table);
//! the series helpers and `run_anomaly_detection` (which reads llm_traces and writes anomaly_detections) are in
//! sql/031_anomaly_functions.sql.

use pgrx::prelude::*;

use super::detectors::{self, Method, Params};
use crate::bind::OrRaise;
use crate::jsonb::JsonbText;

/// `analytics.detect_anomalies(values float8[], method text = 'surprise', params jsonb = '{}')`
///
/// Runs a detector over a series (NULL or NaN elements are gaps) and returns one row per element, in order:
/// its 1-based position, the value, the signed score, the anomaly score in [0, 1] (what NAB's scorer sweeps a
/// threshold over), whether it is an anomaly, whether that anomaly starts an episode (an alert: no other anomaly
/// in the `cooldown` points before it), the expected value and the band. Methods: zscore, mad, iqr, ewma,
/// seasonal, cusum, likelihood, surprise; params: see docs/anomalies.md. Unknown methods or parameters, a window
/// not smaller than the series, and infinite values are errors (22023) naming the argument.
#[pg_extern(immutable, strict, parallel_safe, name = "detect_anomalies")]
pub fn detect_anomalies_scored(
    values: Vec<Option<f64>>,
    method: default!(&str, "'surprise'"),
    params: default!(JsonbText, "'{}'"),
) -> TableIterator<
    'static,
    (
        name!(idx, i32),
        name!(value, Option<f64>),
        name!(score, Option<f64>),
        name!(anomaly_score, Option<f64>),
        name!(is_anomaly, bool),
        name!(alert, bool),
        name!(expected, Option<f64>),
        name!(lower_bound, Option<f64>),
        name!(upper_bound, Option<f64>),
    ),
> {
    TableIterator::new(
        run(&values, method, &params)
            .into_iter()
            .enumerate()
            .map(|(i, pt)| (i as i32 + 1, values[i], pt.score, pt.probability, pt.is_anomaly, pt.alert, pt.expected, pt.lower, pt.upper))
            .collect::<Vec<_>>(),
    )
}

fn run(values: &[Option<f64>], method: &str, params: &JsonbText) -> Vec<detectors::Point> {
    let method = Method::parse(method).or_raise();
    let p = Params::from_json(method, &params.parse("params")).or_raise();
    detectors::detect(values, method, &p).or_raise()
}

/// The 0.1.0 SQL's `analytics.detect_anomalies` (symbol `detect_anomalies_wrapper`, without anomaly_score): kept,
/// without SQL of its own, so that a database still at 0.1.0 works with this library (docs/upgrading.md).
#[pg_extern(sql = false, immutable, strict, parallel_safe)]
pub fn detect_anomalies(
    values: Vec<Option<f64>>,
    method: default!(&str, "'mad'"),
    params: default!(JsonbText, "'{}'"),
) -> TableIterator<
    'static,
    (
        name!(idx, i32),
        name!(value, Option<f64>),
        name!(score, Option<f64>),
        name!(is_anomaly, bool),
        name!(alert, bool),
        name!(expected, Option<f64>),
        name!(lower_bound, Option<f64>),
        name!(upper_bound, Option<f64>),
    ),
> {
    TableIterator::new(
        run(&values, method, &params)
            .into_iter()
            .enumerate()
            .map(|(i, pt)| (i as i32 + 1, values[i], pt.score, pt.is_anomaly, pt.alert, pt.expected, pt.lower, pt.upper))
            .collect::<Vec<_>>(),
    )
}

/// `analytics.anomaly_params(method text, params jsonb = '{}') returns jsonb`: the parameters a detector runs
/// with (its defaults overridden by `params`), validated; recorded with every finding.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn anomaly_params(method: &str, params: default!(JsonbText, "'{}'")) -> pgrx::JsonB {
    let method = Method::parse(method).or_raise();
    let p = Params::from_json(method, &params.parse("params")).or_raise();
    pgrx::JsonB(p.to_json(method))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn detect_anomalies_finds_a_spike_in_sql() {
        let hit = Spi::get_one::<i32>(
            "select idx from analytics.detect_anomalies(
                 array(select 10 + (i % 3) from generate_series(1, 40) i) || array[40::float8, 10, 11],
                 'mad', '{\"window\": 20}') where is_anomaly",
        )
        .unwrap();
        assert_eq!(hit, Some(41));
    }

    #[pg_test]
    fn anomaly_score_is_in_unit_interval_and_surprise_runs() {
        let (lo, hi, hit) = Spi::get_three::<f64, f64, i32>(
            "select min(anomaly_score), max(anomaly_score), min(idx) filter (where is_anomaly)
             from analytics.detect_anomalies(
                 array(select 10 + sin(i) from generate_series(1, 300) i) || array[40::float8, 10, 11], 'surprise')",
        )
        .unwrap();
        assert!(lo.unwrap() >= 0.0 && hi.unwrap() <= 1.0 && hi.unwrap() > 0.5, "{lo:?} {hi:?}");
        assert_eq!(hit, Some(301));
    }

    #[pg_test(error = "params.window: 50 is not smaller than the series (10 points)")]
    fn window_larger_than_series_is_rejected() {
        Spi::run("select * from analytics.detect_anomalies(array(select i::float8 from generate_series(1, 10) i), 'zscore', '{\"window\": 50}')").unwrap();
    }

    #[pg_test]
    fn params_are_reported_with_defaults() {
        let p = Spi::get_one::<pgrx::JsonB>("select analytics.anomaly_params('seasonal', '{\"period\": 168}')").unwrap().unwrap().0;
        assert_eq!(p["period"], 168);
        assert_eq!(p["min_history"], 336);
        assert_eq!(p["threshold"], 3.5);
        assert!(p.get("base").is_none(), "likelihood keys only for the likelihood");
        let l = Spi::get_one::<pgrx::JsonB>("select analytics.anomaly_params('likelihood', '{\"base\": \"zscore\"}')").unwrap().unwrap().0;
        assert_eq!((l["base"].as_str(), l["short"].as_u64(), l["history"].as_u64(), l["min_history"].as_u64()), (Some("zscore"), Some(10), Some(1000), Some(30)));
    }
}

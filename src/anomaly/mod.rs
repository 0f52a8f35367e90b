//! Anomaly detection over metric series.
//!
//! - `detectors`: rolling z-score, MAD, IQR, EWMA, seasonal and CUSUM detectors (pure)
//! - `sql`: the SQL functions binding them (`#[pg_extern]`, `#[pg_test]`)

pub mod detectors;

pub mod sql;
